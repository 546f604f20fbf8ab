"""What the demo sends, and when: the sample data given event times (sans-IO).

Two phases, both pure functions of the sample, a seed and a ``now`` passed in:

* :func:`history` — every sample line once, sent as fast as possible, with
  event times spread over the past ``days``: each product and category gets
  a baseline before anything is live.
* :func:`live_cycle` — one cycle of the live stream, paced at ``rate`` events a
  second with event times from the cycle's start (the wall clock when the demo
  runs it, so the API's rolling windows see it arrive). The sample goes round in
  a seeded order, copies under new event ids; in each cycle one product (taking
  turns) gets a burst of real sample reviews that the model scored negative
  (the caller says which: the demo reads the worker's enriched history) inside
  one alert window, which makes that window a spike.

Lines that are not JSON objects go out as they are (they become dead letters,
as in production); JSON objects get a ``ts``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from streams.alerts.settings import AlertSettings

DAY_MS = 86_400_000
Topic = Literal["reviews", "questions"]

# The worker's alert settings in the demo: one-minute windows (the shortest a
# duration can spell), so a spike fires a minute or two after it starts; a
# baseline over the history's days. The rest as in production.
ALERTS = AlertSettings(
    windows=["1m"], allowed_lateness="1m", interval_s=2.0, history_days=2, half_life_days=1.0
)


def alert_env(settings: AlertSettings = ALERTS) -> dict[str, str]:
    """``REVIEWPULSE_ALERTS__*`` variables for the fields that differ from the defaults."""
    default = AlertSettings()
    env: dict[str, str] = {}
    for name in AlertSettings.model_fields:
        value = getattr(settings, name)
        if value != getattr(default, name):
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            env[f"REVIEWPULSE_ALERTS__{name.upper()}"] = text
    return env


@dataclass(frozen=True)
class Line:
    """One sample line: parsed when it is a JSON object, else only its bytes."""

    topic: Topic
    raw: bytes
    event: dict[str, Any] | None


@dataclass(frozen=True)
class Outgoing:
    """A record to send ``at_s`` seconds after its phase started, to the base ``topic``."""

    at_s: float
    topic: Topic
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Spike:
    """A cycle's burst: ``count`` negative reviews of ``product_id`` in one window."""

    product_id: str
    count: int
    window_start_ms: int
    window_end_ms: int


def parse_lines(topic: Topic, lines: Iterable[bytes]) -> list[Line]:
    out: list[Line] = []
    for line in lines:
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        out.append(Line(topic, raw, parsed if isinstance(parsed, dict) else None))
    return out


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _outgoing(at_s: float, line: Line, ts_ms: int, id_suffix: str = "") -> Outgoing:
    """The line as sent: a JSON object with ``ts`` (and its event id suffixed), else as it is."""
    if line.event is None:
        return Outgoing(at_s, line.topic, None, line.raw)
    event = {**line.event, "ts": iso(ts_ms)}
    if id_suffix:
        event["event_id"] = f"{event.get('event_id')}{id_suffix}"
    product = event.get("product_id")
    key = product.encode() if isinstance(product, str) else None
    return Outgoing(at_s, line.topic, key, orjson.dumps(event))


def history(lines: list[Line], now_ms: int, days: float, seed: int) -> list[Outgoing]:
    """Every line once (at ``at_s`` 0), event times drawn in the ``days`` before the last minute.

    Sorted by event time, so each partition's stored time only moves forward.
    """
    rng = random.Random(seed)
    span_ms = int(days * DAY_MS)
    stamped = sorted(
        ((now_ms - 60_000 - rng.randrange(span_ms), i) for i in range(len(lines))),
    )
    return [_outgoing(0.0, lines[i], ts) for ts, i in stamped]


def products(lines: list[Line]) -> list[str]:
    """Review products, most reviewed first (ties by id): the spike takes them in turn."""
    counts = Counter(
        line.event["product_id"]
        for line in lines
        if line.topic == "reviews" and line.event and isinstance(line.event.get("product_id"), str)
    )
    return sorted(counts, key=lambda p: (-counts[p], p))


def plan_spike(
    lines: list[Line], index: int, start_ms: int, rate: float, window_ms: int, seed: int
) -> Spike:
    """Cycle ``index``'s spike: in the first window to end at or after ``start_ms`` + 30 s.

    The product takes turns among the five most reviewed (a baseline to stand
    out from); the burst is half its usual reviews in one window at ``rate``,
    at least 20, so the window's negative share jumps to a third or more.
    """
    candidates = products(lines)[:5]
    product = candidates[(seed + index) % len(candidates)]
    reviews = [ln for ln in lines if ln.topic == "reviews"]
    own = sum(1 for ln in reviews if ln.event and ln.event.get("product_id") == product)
    usual = rate * window_ms / 1000 * own / len(lines)
    end = -(-(start_ms + 30_000) // window_ms) * window_ms
    return Spike(product, max(20, round(usual / 2)), end - window_ms, end)


def _spike_events(
    lines: list[Line], spike: Spike, negative: frozenset[str], rng: random.Random
) -> list[dict[str, Any]]:
    """``spike.count`` of the ``negative`` reviews, the product's category first, then any."""
    category = _category(lines, spike.product_id)
    pool = [
        ln.event
        for ln in lines
        if ln.topic == "reviews" and ln.event and ln.event.get("event_id") in negative
    ]
    if not pool:
        raise ValueError("no sample review is among the negative ones")
    same = [e for e in pool if e.get("category") == category]
    other = [e for e in pool if e.get("category") != category]
    rng.shuffle(same)
    rng.shuffle(other)
    ordered = same + other
    return [ordered[i % len(ordered)] for i in range(spike.count)]


def live_cycle(
    lines: list[Line],
    index: int,
    start_ms: int,
    *,
    rate: float,
    cycle_s: float,
    window_ms: int,
    seed: int,
    negative: frozenset[str],
) -> tuple[Spike, list[Outgoing]]:
    """Cycle ``index`` of the live stream, starting at ``start_ms``: its spike and its records.

    ``negative``: event ids of sample reviews the model scores negative, the spike's texts.

    ``rate × cycle_s`` sample lines (going on round the seeded order where the
    previous cycle stopped) ``1 / rate`` s apart, event time = ``start_ms`` +
    offset, event ids suffixed ``~live<n>`` on the n-th time round the sample;
    plus the spike's reviews, spread over the 20 s that end 5 s before its
    window does, product and category set to the spike's. Sorted by ``at_s``.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, not {rate}")
    spike = plan_spike(lines, index, start_ms, rate, window_ms, seed)
    if spike.window_end_ms - 25_000 < start_ms or spike.window_end_ms > start_ms + cycle_s * 1000:
        raise ValueError(f"a {cycle_s:.0f} s cycle cannot hold a spike in a {window_ms} ms window")
    order = list(range(len(lines)))
    random.Random(seed).shuffle(order)
    slots = round(rate * cycle_s)
    out: list[Outgoing] = []
    for j in range(slots):
        turn, position = divmod(index * slots + j, len(order))
        at_s = j / rate
        line = lines[order[position]]
        out.append(_outgoing(at_s, line, start_ms + round(at_s * 1000), f"~live{turn}"))
    category = _category(lines, spike.product_id)
    first_ms = spike.window_end_ms - 25_000
    rng = random.Random(f"{seed}:{index}")
    for k, event in enumerate(_spike_events(lines, spike, negative, rng)):
        ts = first_ms + k * 20_000 // spike.count
        copy = {
            **event,
            "event_id": f"spike{index}-{k}-{event.get('event_id')}",
            "product_id": spike.product_id,
            "category": category,
        }
        out.append(_outgoing((ts - start_ms) / 1000, Line("reviews", b"", copy), ts))
    out.sort(key=lambda o: o.at_s)
    return spike, out


def _category(lines: list[Line], product_id: str) -> str | None:
    for ln in lines:
        if ln.event and ln.event.get("product_id") == product_id:
            category = ln.event.get("category")
            return category if isinstance(category, str) else None
    return None
