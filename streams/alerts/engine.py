"""Window counts in, alert events out: the incremental engine and its batch form.

The caller counts reviews per tumbling event-time window (one record per
product and per category with reviews in the window) and hands each closed
window to :meth:`AlertEngine.close_window`, in order of window end, shorter
windows first at the same end. :func:`run_alerts` does the same for a whole
list of records. The output depends on nothing but the counts: a replay of the
same events gives the same alerts, ids and order included.

Within a window, products are tested before categories (a category alert
lists its products firing) and keys in sorted order; every baseline is read
as it was before the window, and the window joins the histories afterwards
when it is not in alert. A series with an open alert and no reviews in a
window is tested as an empty window, which is back to baseline; windows in
which nothing at all was reviewed are filled in the same way, so feeding
them or leaving them out gives the same result.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

from streams.alerts.baseline import Baseline, History, overall_share
from streams.alerts.detector import Tail, assess, smallest_p_value, tarone_alpha, window_budget
from streams.alerts.event import AlertEvent, NegativeReview, alert_id, top_evidence
from streams.alerts.lifecycle import Lifecycle
from streams.alerts.settings import AlertSettings
from streams.alerts.tails import beta_binomial_sf

DAY_MS = 86_400_000

Scope = Literal["product", "category"]


@dataclass(frozen=True)
class WindowCount:
    """Reviews of one product or category in one closed window; a category's key is its name."""

    scope: Scope
    key: str
    category: str | None
    window_start_ms: int
    window_end_ms: int
    n: int
    negative: int

    def __post_init__(self) -> None:
        if not 0 <= self.negative <= self.n:
            raise ValueError(f"{self.scope} {self.key!r}: {self.negative} negative of {self.n}")
        if self.window_end_ms <= self.window_start_ms:
            raise ValueError(f"{self.scope} {self.key!r}: window ends before it starts")
        if self.scope == "category" and self.category != self.key:
            raise ValueError(f"category {self.key!r} carries category {self.category!r}")


# A window's records by scope and key.
Seen = dict[Scope, dict[str, WindowCount]]

# The negative reviews of a window, asked for only when an alert about it is sent.
Evidence = Callable[[WindowCount], Iterable[NegativeReview]]


@dataclass
class _Series:
    history: History
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    category: str | None = None
    last_start_ms: int = 0


class _Size:
    """Every series at one window size; sizes never read each other's state."""

    def __init__(self, label: str, length_ms: int, pending: int, overall: History) -> None:
        self.label = label
        self.length_ms = length_ms
        self.pending = pending
        # Least recently seen first, so that series gone quiet expire from the front.
        self.series: dict[Scope, OrderedDict[str, _Series]] = {
            "product": OrderedDict(),
            "category": OrderedDict(),
        }
        self.open: dict[Scope, set[str]] = {"product": set(), "category": set()}
        self.overall = overall
        self.last_end_ms: int | None = None


class AlertEngine:
    """Incremental spike alerting over closed windows; holds every series' state in memory."""

    def __init__(
        self,
        settings: AlertSettings,
        model_name: str,
        model_version: str,
        evidence: Evidence | None = None,
        tail: Tail = beta_binomial_sf,
    ) -> None:
        self._settings = settings
        self._model = (model_name, model_version)
        self._evidence = evidence
        self._tail = tail
        self._half_life_ms = settings.half_life_days * DAY_MS
        self._horizon_ms = settings.history_days * DAY_MS
        self._sizes = {
            length: _Size(label, length, settings.pending_windows(length), self._history())
            for label, length in settings.window_lengths_ms().items()
        }

    def close_window(
        self, start_ms: int, end_ms: int, counts: Iterable[WindowCount]
    ) -> list[AlertEvent]:
        """Test one closed window of one size; the alert events it causes, in a fixed order.

        ``counts`` holds a record per series with reviews in the window
        (possibly none). A window must not start before the previous window
        of its size ended; windows skipped in between count as empty.
        """
        size = self._sizes.get(end_ms - start_ms)
        if size is None:
            raise ValueError(f"window of {end_ms - start_ms} ms is not one of the alert windows")
        seen: Seen = {"product": {}, "category": {}}
        for r in counts:
            if (r.window_start_ms, r.window_end_ms) != (start_ms, end_ms):
                raise ValueError(f"{r.scope} {r.key!r} is counted in another window")
            if r.key in seen[r.scope]:
                raise ValueError(f"{r.scope} {r.key!r} is counted twice in one window")
            seen[r.scope][r.key] = r
        events: list[AlertEvent] = []
        if size.last_end_ms is not None:
            if start_ms < size.last_end_ms or (start_ms - size.last_end_ms) % size.length_ms:
                raise ValueError(
                    f"{size.label} window at {start_ms} does not follow the one ending at "
                    f"{size.last_end_ms}"
                )
            for gap_ms in range(size.last_end_ms, start_ms, size.length_ms):
                if not (size.open["product"] or size.open["category"]):
                    break
                empty: Seen = {"product": {}, "category": {}}
                events += self._test_window(size, gap_ms, gap_ms + size.length_ms, empty)
        events += self._test_window(size, start_ms, end_ms, seen)
        size.last_end_ms = end_ms
        return events

    def _history(self) -> History:
        return History(self._half_life_ms, self._horizon_ms)

    def _test_window(self, size: _Size, start_ms: int, end_ms: int, seen: Seen) -> list[AlertEvent]:
        for scope, records in seen.items():
            table = size.series[scope]
            for key, r in records.items():
                series = table.pop(key, None) or _Series(self._history())
                series.category, series.last_start_ms = r.category, start_ms
                table[key] = series
        self._expire(size, start_ms)
        overall = overall_share(*size.overall.counts(start_ms))
        categories = size.series["category"]
        strength = self._settings.prior_strength

        @cache
        def category_share(category: str | None) -> float:
            if category is None or category not in categories:
                return overall
            negative, other = categories[category].history.counts(start_ms)
            return Baseline(negative, other, overall, strength).share

        @cache
        def baseline(scope: Scope, key: str) -> Baseline:
            """The series' belief before this window: products lean on their category."""
            series = size.series[scope][key]
            prior = overall if scope == "category" else category_share(series.category)
            return Baseline(*series.history.counts(start_ms), prior, strength)

        # Alpha is spent only on the series that could fire, whatever their share of negatives:
        # at least min_negative reviews, and a smallest possible p-value that alpha can beat
        # (detector.tarone_alpha). A series with fewer reviews needs no baseline here. The
        # budget is of alerts: where a warning needs several windows over the line in a row,
        # each test may be looser (detector.alert_alpha).
        alpha = tarone_alpha(
            window_budget(
                self._settings.false_alerts_per_day, len(self._sizes), DAY_MS / size.length_ms
            ),
            (
                smallest_p_value(r.n, baseline(scope, key), self._settings, self._tail)
                for scope, rs in seen.items()
                for key, r in rs.items()
                if r.n >= self._settings.min_negative
            ),
            size.pending,
            self._settings.critical_factor,
        )

        def window(scope: Scope, key: str, series: _Series) -> WindowCount:
            """The series' counts, or an empty window for an open alert without reviews."""
            return seen[scope].get(key) or WindowCount(
                scope, key, series.category, start_ms, end_ms, 0, 0
            )

        remember: list[tuple[History, WindowCount]] = []
        events: list[AlertEvent] = []
        products = size.series["product"]
        for key in sorted(seen["product"].keys() | size.open["product"]):
            series = products[key]
            record = window("product", key, series)
            events += self._test(size, series, record, baseline, alpha, None, remember)

        firing: defaultdict[str | None, list[str]] = defaultdict(list)
        for key in sorted(size.open["product"]):
            if products[key].lifecycle.state == "firing":
                firing[products[key].category].append(key)
        for key in sorted(seen["category"].keys() | size.open["category"]):
            record = window("category", key, categories[key])
            group = tuple(firing[key])
            events += self._test(size, categories[key], record, baseline, alpha, group, remember)

        for history, record in remember:
            history.add(record.window_start_ms, record.n, record.negative)
        n = sum(r.n for r in seen["product"].values())
        if n:
            size.overall.add(start_ms, n, sum(r.negative for r in seen["product"].values()))
        return events

    def _test(
        self,
        size: _Size,
        series: _Series,
        record: WindowCount,
        baseline_of: Callable[[Scope, str], Baseline],
        alpha: float,
        product_ids: tuple[str, ...] | None,
        remember: list[tuple[History, WindowCount]],
    ) -> list[AlertEvent]:
        """Test one series' window and advance its alert; the event to send, if any."""
        life = series.lifecycle
        if record.negative < self._settings.min_negative and not life.in_alert:
            # Cannot be over threshold, and a quiet series has nothing to advance: most
            # windows end here, without a baseline or a p-value.
            remember.append((series.history, record))
            return []
        baseline = baseline_of(record.scope, record.key)
        verdict = assess(record.negative, record.n, baseline, alpha, self._settings, self._tail)
        status = life.advance(
            record.window_start_ms, verdict.over, verdict.critical, self._settings, size.pending
        )
        if life.in_alert:
            size.open[record.scope].add(record.key)
        else:
            size.open[record.scope].discard(record.key)
            remember.append((series.history, record))
        if status is None:
            return []
        rule = f"negative_share_{record.scope}_{size.label}"
        evidence = self._evidence(record) if self._evidence and record.negative else ()
        return [
            AlertEvent(
                alert_id=alert_id(rule, record.key, life.episode_start_ms),
                status=status,
                severity=life.severity,
                rule=rule,
                product_id=record.key if record.scope == "product" else None,
                category=record.category,
                product_ids=product_ids,
                started_ms=life.episode_start_ms,
                window_start_ms=record.window_start_ms,
                window_end_ms=record.window_end_ms,
                n=record.n,
                negative=record.negative,
                baseline_share=baseline.share,
                baseline_n=baseline.n,
                p_value=verdict.p_value,
                model_name=self._model[0],
                model_version=self._model[1],
                evidence=top_evidence(evidence),
            )
        ]

    def _expire(self, size: _Size, start_ms: int) -> None:
        """Forget series with no window in the history horizon and no open alert."""
        for table in size.series.values():
            while table:
                key, series = next(iter(table.items()))
                if series.last_start_ms >= start_ms - self._horizon_ms or series.lifecycle.in_alert:
                    break
                del table[key]


def run_alerts(
    counts: Iterable[WindowCount],
    settings: AlertSettings,
    model_name: str,
    model_version: str,
    evidence: Evidence | None = None,
    tail: Tail = beta_binomial_sf,
) -> list[AlertEvent]:
    """All alert events of a set of window counts, in any order: the engine fed window by window.

    Every window of each size from its first counted one to its last is fed, empty ones
    included, in order of end (shorter first), as the worker closes them: the events come
    in the order the worker would send them.
    """
    windows: defaultdict[tuple[int, int], list[WindowCount]] = defaultdict(list)
    for c in counts:
        windows[(c.window_start_ms, c.window_end_ms)].append(c)
    for length in {end - start for start, end in list(windows)}:
        starts = [start for start, end in windows if end - start == length]
        for start in range(min(starts), max(starts), length):
            windows.setdefault((start, start + length), [])
    engine = AlertEngine(settings, model_name, model_version, evidence, tail)
    events: list[AlertEvent] = []
    for start_ms, end_ms in sorted(windows, key=lambda w: (w[1], w[1] - w[0])):
        events += engine.close_window(start_ms, end_ms, windows[(start_ms, end_ms)])
    return events
