"""The engine over daily windows of one category: when alerts fire, resolve and repeat.

Two or three series are active, so a budget of 0.01 false alerts per day
gives each 0.005 a day; a warning needs two days over the line, so alpha is
0.066 (detector.alert_alpha: 0.066 / 100 + 0.066² ≈ 0.005), and critical is
below 6.6e-4. Products sell 40 reviews a day at
a 20 % negative share; the category adds 160 reviews of other products.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.alerts.detector import alert_alpha
from streams.alerts.engine import AlertEngine, WindowCount, run_alerts
from streams.alerts.event import AlertEvent
from streams.alerts.settings import AlertSettings

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
# A warning pends one day: ``pending_for`` 48h is two daily windows.
DAILY = AlertSettings(windows=["24h"], false_alerts_per_day=0.01, pending_for="48h")
NORMAL = (40, 8)
OTHERS = (160, 32)


def window(d: int, **products: tuple[int, int]) -> list[WindowCount]:
    """Day ``d``: the given products' (reviews, negatives) and their category c1."""
    start, end = T0 + d * DAY, T0 + (d + 1) * DAY
    records = [WindowCount("product", p, "c1", start, end, n, k) for p, (n, k) in products.items()]
    n = OTHERS[0] + sum(n for n, _ in products.values())
    k = OTHERS[1] + sum(k for _, k in products.values())
    return [*records, WindowCount("category", "c1", "c1", start, end, n, k)]


def days(first: int, last: int, **products: tuple[int, int]) -> list[WindowCount]:
    return [r for d in range(first, last) for r in window(d, **products)]


def run(records: list[WindowCount], settings: AlertSettings = DAILY) -> list[AlertEvent]:
    return run_alerts(records, settings, "sentiment-zh-en", "1.0.0")


def brief(events: list[AlertEvent]) -> list[tuple[int, str | None, str, str]]:
    """(day, product or None for the category, status, severity) of each event."""
    return [((e.window_start_ms - T0) // DAY, e.product_id, e.status, e.severity) for e in events]


def test_a_sudden_spike_fires_critical_and_resolves_after_two_normal_days() -> None:
    records = days(0, 28, p1=NORMAL) + window(28, p1=(40, 24)) + days(29, 31, p1=NORMAL)
    events = run(records)
    assert brief(events) == [(28, "p1", "firing", "critical"), (30, "p1", "resolved", "critical")]
    fired, resolved = events
    assert fired.alert_id == resolved.alert_id
    assert fired.rule == "negative_share_product_24h"
    assert (fired.n, fired.negative) == (40, 24)
    assert fired.baseline_share == pytest.approx(0.2, abs=0.001)
    assert fired.baseline_n == pytest.approx(sum(40 * 2 ** (-age / 7) for age in range(1, 29)))
    assert fired.p_value < 0.005 / 100


def test_a_moderate_spike_pends_one_day_then_warns() -> None:
    records = days(0, 28, p1=NORMAL) + days(28, 31, p1=(40, 17)) + days(31, 33, p1=NORMAL)
    events = run(records)
    assert brief(events) == [(29, "p1", "firing", "warning"), (32, "p1", "resolved", "warning")]
    assert events[0].started_ms == T0 + 28 * DAY  # the episode began with the pending day


def test_pending_for_is_event_time_a_daily_window_spans_two_hours_alone() -> None:
    """By default (2h) a 24h window over the line warns at once; 1h windows need two in a row."""
    records = days(0, 28, p1=NORMAL) + window(28, p1=(40, 17)) + days(29, 31, p1=NORMAL)
    assert run(records) == []  # pending, then back to normal
    default = AlertSettings(windows=["24h"], false_alerts_per_day=0.01)
    assert AlertSettings().pending_windows(HOUR) == 2
    assert default.pending_windows(DAY) == 1
    assert brief(run(records, default)) == [
        (28, "p1", "firing", "warning"),
        (30, "p1", "resolved", "warning"),
    ]


def test_a_promotion_that_multiplies_volume_at_the_same_share_does_not_fire() -> None:
    history = days(0, 28, p1=NORMAL)
    assert run(history + days(28, 31, p1=(200, 40))) == []  # 5 × the reviews, still 20 %
    # The same volume with a worse share does.
    assert brief(run(history + window(28, p1=(200, 80))))[0] == (28, "p1", "firing", "critical")


def test_a_promotion_on_hourly_windows_does_not_fire_either() -> None:
    hourly = AlertSettings(windows=["1h"], false_alerts_per_day=0.24)  # 0.01 an hour

    def hours(first: int, last: int, n: int, k: int) -> list[WindowCount]:
        return [
            WindowCount("product", "p1", "c1", T0 + h * HOUR, T0 + (h + 1) * HOUR, n, k)
            for h in range(first, last)
        ]

    history = hours(0, 14 * 24, 5, 1)
    assert run(history + hours(14 * 24, 14 * 24 + 6, 25, 5), hourly) == []
    assert brief(run(history + hours(14 * 24, 14 * 24 + 2, 25, 15), hourly))[0][1:] == (
        "p1",
        "firing",
        "critical",
    )


def test_products_that_cannot_fire_leave_alpha_alone() -> None:
    """Forty products at 3 reviews an hour (1 negative) cannot fire: 3 of 3 is not rare enough.

    Counting them as tests would divide the hour's budget (0.01) by 42 instead of by 2 (the
    spiking product and its category), and 5 negatives of 5 at a usual 20 % (p ≈ 3e-4) would
    not be critical: it would wait for a second hour to warn.
    """
    hourly = AlertSettings(windows=["1h"], false_alerts_per_day=0.24)
    quiet = {f"q{i:02d}": (3, 1) for i in range(40)}

    def hours(first: int, last: int, p1: tuple[int, int]) -> list[WindowCount]:
        out: list[WindowCount] = []
        for h in range(first, last):
            start, end = T0 + h * HOUR, T0 + (h + 1) * HOUR
            products = {"p1": p1, **quiet}
            out += [
                WindowCount("product", p, "c1", start, end, n, k) for p, (n, k) in products.items()
            ]
            n, k = sum(n for n, _ in products.values()), sum(k for _, k in products.values())
            out.append(WindowCount("category", "c1", "c1", start, end, n, k))
        return out

    history = hours(0, 14 * 24, (5, 1))
    events = run(history + hours(14 * 24, 14 * 24 + 2, (5, 5)), hourly)
    assert brief(events) == [(14, "p1", "firing", "critical")]
    assert events[0].window_start_ms == T0 + 14 * DAY  # the first hour
    # Hourly warnings need two hours over the line, so alpha is detector.alert_alpha's.
    critical_of_42, critical_of_2 = (alert_alpha(0.01 / m, 2, 100) / 100 for m in (42, 2))
    assert critical_of_42 < events[0].p_value < critical_of_2


def test_two_hours_over_a_looser_line_warn() -> None:
    """An hourly warning needs two hours over the line: each may be tested at a looser alpha.

    One product, so the hour's whole budget (0.01) is its own. Two hours of 3 negatives of 5
    at a usual 20 % (p ≈ 0.06 each) stay under a line of 0.01, the alpha if every hour over
    it were an alert; both are under 0.095, whose false alerts (1 % of that in critical
    hours, and two hours in a row: 0.095² ≈ 0.009) stay within 0.01.
    """
    hourly = AlertSettings(windows=["1h"], false_alerts_per_day=0.24)
    alpha = alert_alpha(0.01, 2, 100)
    assert alpha == pytest.approx(0.0951, abs=1e-4)

    def hours(first: int, last: int, n: int, k: int) -> list[WindowCount]:
        return [
            WindowCount("product", "p1", "c1", T0 + h * HOUR, T0 + (h + 1) * HOUR, n, k)
            for h in range(first, last)
        ]

    history, spike = hours(0, 14 * 24, 5, 1), 14 * 24
    one_hour = hours(spike, spike + 1, 5, 3) + hours(spike + 1, spike + 4, 5, 1)
    assert run(history + one_hour, hourly) == []  # pending one hour, then back to normal
    two_hours = hours(spike, spike + 2, 5, 3) + hours(spike + 2, spike + 6, 5, 1)
    events = run(history + two_hours, hourly)
    assert [((e.window_start_ms - T0) // HOUR, e.status, e.severity) for e in events] == [
        (spike + 1, "firing", "warning"),
        (spike + 3, "resolved", "warning"),
    ]
    assert 0.01 < events[0].p_value < alpha


def test_windows_in_alert_stay_out_of_the_baseline() -> None:
    records = (
        days(0, 28, p1=NORMAL)
        + days(28, 34, p1=(40, 24))  # six bad days: fires, reminded after four
        + days(34, 36, p1=NORMAL)
        + window(36, p1=(40, 24))  # the same spike again
    )
    events = run(records)
    assert brief(events) == [
        (28, "p1", "firing", "critical"),
        (32, "p1", "firing", "critical"),
        (35, "p1", "resolved", "critical"),
        (36, "p1", "firing", "critical"),
    ]
    # Had the six bad days joined the baseline, it would have risen to about 0.33.
    assert [round(e.baseline_share, 2) for e in events] == [0.2, 0.2, 0.2, 0.2]
    assert len({e.alert_id for e in events[:3]}) == 1
    assert events[3].alert_id != events[0].alert_id  # a new episode, a new alert


def test_a_category_alert_lists_its_firing_products() -> None:
    records = days(0, 28, p1=NORMAL, p2=NORMAL) + days(28, 30, p1=(40, 30), p2=(40, 30))
    events = run(records)
    assert brief(events) == [
        (28, "p1", "firing", "critical"),
        (28, "p2", "firing", "critical"),
        (28, None, "firing", "critical"),
    ]
    category = events[2]
    assert category.rule == "negative_share_category_24h"
    assert (category.category, category.product_ids) == ("c1", ("p1", "p2"))
    assert (category.n, category.negative) == (240, 92)
    assert events[0].product_ids is None


def test_an_alert_resolves_when_its_product_goes_quiet() -> None:
    """No reviews at all is back to baseline: the gap is filled, fed or not."""
    records = days(0, 28, p1=NORMAL) + window(28, p1=(40, 24)) + window(40, p1=NORMAL)
    batch = run(records)
    assert brief(batch) == [(28, "p1", "firing", "critical"), (30, "p1", "resolved", "critical")]
    assert (batch[1].n, batch[1].negative) == (0, 0)

    engine = AlertEngine(DAILY, "sentiment-zh-en", "1.0.0")
    fed: list[AlertEvent] = []
    for d in range(41):
        fed += engine.close_window(
            T0 + d * DAY,
            T0 + (d + 1) * DAY,
            [r for r in records if r.window_start_ms == T0 + d * DAY],
        )
    assert fed == batch


def incremental(records: list[WindowCount], settings: AlertSettings) -> list[AlertEvent]:
    """Feed every window of every size in order, empty ones included, up to each size's last.

    Empty windows after a size's last counted one are left out as :func:`run_alerts` never
    sees them: they could resolve an alert that the batch form leaves firing.
    """
    engine = AlertEngine(settings, "sentiment-zh-en", "1.0.0")
    last = max((r.window_end_ms for r in records), default=T0)
    last_of = {
        length: max(
            (r.window_end_ms for r in records if r.window_end_ms - r.window_start_ms == length),
            default=T0,
        )
        for length in settings.window_lengths_ms().values()
    }
    events: list[AlertEvent] = []
    for end in range(T0 + HOUR, last + 1, HOUR):
        for length in sorted(settings.window_lengths_ms().values()):
            if (end - T0) % length == 0 and end <= last_of[length]:
                start = end - length
                batch = [r for r in records if (r.window_start_ms, r.window_end_ms) == (start, end)]
                events += engine.close_window(start, end, batch)
    return events


@st.composite
def streams(draw: st.DrawFn) -> list[WindowCount]:
    """Hourly counts of three products in two categories, their 3 h sums and category sums."""
    hours = draw(st.integers(1, 40))
    cell = st.integers(0, 6).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n)))
    counts = {(p, h): draw(cell) for p in ("a", "b", "c") for h in range(hours)}
    category = {"a": "x", "b": "x", "c": "y"}
    records: list[WindowCount] = []
    for step in (1, 3):
        for w in range(hours // step):
            start, end = T0 + w * step * HOUR, T0 + (w + 1) * step * HOUR
            sums: dict[str, tuple[int, int]] = {}
            for p, c in category.items():
                n = sum(counts[p, h][0] for h in range(w * step, (w + 1) * step))
                k = sum(counts[p, h][1] for h in range(w * step, (w + 1) * step))
                if n:
                    records.append(WindowCount("product", p, c, start, end, n, k))
                    cn, ck = sums.get(c, (0, 0))
                    sums[c] = (cn + n, ck + k)
            records += [
                WindowCount("category", c, c, start, end, n, k) for c, (n, k) in sums.items()
            ]
    return records


# Thresholds loose enough that random counts raise and resolve plenty of alerts.
LOOSE = AlertSettings(
    windows=["1h", "3h"],
    history_days=1,
    half_life_days=0.25,
    prior_strength=2,
    min_negative=1,
    effect_floor=0.0,
    false_alerts_per_day=20,
    pending_for="2h",  # two 1h windows, one 3h window
    resolve_windows=2,
    repeat_windows=2,
)


@settings(max_examples=60, deadline=None)
@given(records=streams(), seed=st.integers(0, 2**32 - 1))
def test_batch_incremental_and_replay_agree(records: list[WindowCount], seed: int) -> None:
    batch = run(records, LOOSE)
    assert incremental(records, LOOSE) == batch
    shuffled = records.copy()
    random.Random(seed).shuffle(shuffled)
    assert run(shuffled, LOOSE) == batch  # arrival order within event time does not matter
    assert [e.to_json() for e in run(records, LOOSE)] == [e.to_json() for e in batch]


def test_loose_streams_do_raise_alerts() -> None:
    """Guards the property above against agreeing on nothing."""
    records = [
        WindowCount("product", "a", "x", T0 + h * HOUR, T0 + (h + 1) * HOUR, 4, 4 * (h % 5 == 4))
        for h in range(30)
    ]
    statuses = {e.status for e in run(records, LOOSE)}
    assert statuses == {"firing", "resolved"}


def test_windows_must_come_in_order_and_match_the_settings() -> None:
    engine = AlertEngine(DAILY, "m", "1")
    engine.close_window(T0 + DAY, T0 + 2 * DAY, window(1, p1=NORMAL))
    with pytest.raises(ValueError, match="does not follow"):
        engine.close_window(T0, T0 + DAY, window(0, p1=NORMAL))
    with pytest.raises(ValueError, match="does not follow"):
        engine.close_window(T0 + 2 * DAY + HOUR, T0 + 3 * DAY + HOUR, [])
    with pytest.raises(ValueError, match="not one of the alert windows"):
        engine.close_window(T0 + 2 * DAY, T0 + 2 * DAY + HOUR, [])
    with pytest.raises(ValueError, match="another window"):
        engine.close_window(T0 + 2 * DAY, T0 + 3 * DAY, window(3, p1=NORMAL))
    with pytest.raises(ValueError, match="counted twice"):
        engine.close_window(T0 + 2 * DAY, T0 + 3 * DAY, window(2, p1=NORMAL) * 2)


@pytest.mark.parametrize(
    ("scope", "category", "n", "negative", "end", "match"),
    [
        ("product", "c1", 3, 4, T0 + DAY, "4 negative of 3"),
        ("product", "c1", 3, -1, T0 + DAY, "negative of"),
        ("product", "c1", 3, 1, T0, "ends before it starts"),
        ("category", "c2", 3, 1, T0 + DAY, "carries category"),
    ],
)
def test_window_counts_are_checked(
    scope: str, category: str, n: int, negative: int, end: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        WindowCount(scope, "c1", category, T0, end, n, negative)  # type: ignore[arg-type]
