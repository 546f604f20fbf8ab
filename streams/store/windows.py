"""Rolling-window queries over the aggregate tables, and the shapes they return.

A window of length L ending at ``now`` is the L of buckets up to and
including the bucket that holds ``now``; it is compared with the L before it.
Windows under a day read per-minute rows, longer ones per-hour rows (so a
24 h window spans 24 whole hours, the current one partial). The mean score
is the mean over reviews of P(positive) − P(negative), in [−1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from streams.durations import parse_duration
from streams.events.sentiment import NEGATIVE, SENTIMENT_LABELS, count_column

MEASURES = (
    "n",
    *(count_column(label) for label in SENTIMENT_LABELS),
    "rating_sum",
    "rating_n",
    "sentiment_sum",
)

# Per key: the measures of the current window (cur_*) and of the previous one (prev_*);
# aliases differ from the column names, which ClickHouse would otherwise substitute.
WINDOW_PAIR_SQL = """
SELECT {key} AS key, {current}, {previous}
FROM {db}.{table} FINAL
WHERE {time_col} >= toDateTime({prev_start}, 'UTC') AND {time_col} < toDateTime({end}, 'UTC')
  AND {where}
GROUP BY key
HAVING {having}
ORDER BY cur_{negatives} / greatest(cur_n, 1) DESC, cur_n DESC, key
LIMIT {limit}
"""

SERIES_SQL = """
SELECT toUInt32(toStartOfInterval({time_col}, INTERVAL {step} SECOND)) AS bucket, {measures}
FROM {db}.{table} FINAL
WHERE product_id = {{product_id:String}}
  AND {time_col} >= toDateTime({start}, 'UTC') AND {time_col} < toDateTime({end}, 'UTC')
GROUP BY bucket
ORDER BY bucket
"""


# Each sentiment label's share of the reviews, in SENTIMENT_LABELS order.
Shares = dict[str, float]


class WindowStats(TypedDict):
    start: str
    end: str
    volume: int
    shares: Shares
    mean_score: float | None
    mean_rating: float | None


class Change(TypedDict):
    """Current minus previous window; shares and means are None where either is empty."""

    volume: int
    negative_share: float | None
    mean_score: float | None


class KeyWindow(WindowStats):
    window: str
    previous: WindowStats
    change: Change


class ProductWindow(KeyWindow):
    product_id: str


class CategoryWindow(KeyWindow):
    category: str


class SeriesPoint(TypedDict):
    start: str
    volume: int
    shares: Shares
    mean_score: float | None


@dataclass(frozen=True)
class Span:
    """Where a window's rows live and its bounds, as epoch seconds."""

    table_suffix: str  # "minute" or "hour": the aggregate table and its time column
    step: int
    prev_start: int
    start: int
    end: int


def span(window: timedelta, now: datetime, step: timedelta | None = None) -> Span:
    """Bounds of ``window`` ending in the bucket of ``now`` (bucket: minute under a day)."""
    if step is None:
        step = timedelta(minutes=1) if window < timedelta(days=1) else timedelta(hours=1)
    suffix = "hour" if step % timedelta(hours=1) == timedelta(0) else "minute"
    seconds = int(step.total_seconds())
    epoch = int(now.timestamp())
    end = epoch - epoch % seconds + seconds
    length = int(window.total_seconds())
    return Span(suffix, seconds, end - 2 * length, end - length, end)


def check_window(window: str, allowed: list[str]) -> timedelta:
    """The length of a configured window; anything else is a ValueError for the caller."""
    if window not in allowed:
        raise ValueError(f"unknown window {window!r}; one of {', '.join(allowed)}")
    return parse_duration(window)


def check_bucket(bucket: str, window: timedelta) -> timedelta:
    step = parse_duration(bucket)
    if window % step != timedelta(0):
        raise ValueError(f"bucket {bucket!r} does not divide the window evenly")
    return step


def window_pair_sql(db: str, kind: str, s: Span, where: str, having: str, limit: int) -> str:
    """Current and previous window measures per product or category (``kind``)."""
    t = s.table_suffix
    current = ", ".join(
        _measure(f"sumIf({m}, {t} >= toDateTime({s.start}, 'UTC'))", f"cur_{m}") for m in MEASURES
    )
    previous = ", ".join(
        _measure(f"sumIf({m}, {t} < toDateTime({s.start}, 'UTC'))", f"prev_{m}") for m in MEASURES
    )
    return WINDOW_PAIR_SQL.format(
        db=db,
        table=f"{kind}_{t}",
        key=kind if kind == "category" else "product_id",
        time_col=t,
        current=current,
        previous=previous,
        prev_start=s.prev_start,
        end=s.end,
        where=where,
        having=having,
        limit=int(limit),
        negatives=count_column(NEGATIVE),
    )


def series_sql(db: str, s: Span) -> str:
    t = s.table_suffix
    measures = ", ".join(_measure(f"sum({m})", f"cur_{m}") for m in MEASURES)
    return SERIES_SQL.format(
        db=db,
        table=f"product_{t}",
        time_col=t,
        step=s.step,
        measures=measures,
        start=s.start,
        end=s.end,
    )


def _measure(expr: str, alias: str) -> str:
    # Decimal sums leave as Float64, so both backends return plain numbers.
    if alias.endswith("sentiment_sum"):
        expr = f"toFloat64({expr})"
    return f"{expr} AS {alias}"


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _shares(row: dict[str, Any], prefix: str, n: int) -> Shares:
    def share(label: str) -> float:
        return round(int(row[prefix + count_column(label)]) / n, 6) if n else 0.0

    return {label: share(label) for label in SENTIMENT_LABELS}


def window_stats(row: dict[str, Any], prefix: str, start: int, end: int) -> WindowStats:
    """One window's measures (``cur_n``… or ``prev_n``…) → volume, shares and means."""
    n = int(row[f"{prefix}n"])
    rated = int(row[f"{prefix}rating_n"])
    return WindowStats(
        start=iso(start),
        end=iso(end),
        volume=n,
        shares=_shares(row, prefix, n),
        mean_score=round(float(row[f"{prefix}sentiment_sum"]) / n, 6) if n else None,
        mean_rating=round(int(row[f"{prefix}rating_sum"]) / rated, 6) if rated else None,
    )


def key_window(row: dict[str, Any], window: str, s: Span) -> KeyWindow:
    """A window-pair row → current stats, previous stats and the change between them."""
    cur = window_stats(row, "cur_", s.start, s.end)
    prev = window_stats(row, "prev_", s.prev_start, s.start)

    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(a - b, 6)

    both = cur["volume"] and prev["volume"]
    return KeyWindow(
        **cur,
        window=window,
        previous=prev,
        change=Change(
            volume=cur["volume"] - prev["volume"],
            negative_share=(
                diff(cur["shares"][NEGATIVE], prev["shares"][NEGATIVE]) if both else None
            ),
            mean_score=diff(cur["mean_score"], prev["mean_score"]),
        ),
    )


def empty_row() -> dict[str, Any]:
    """A window-pair row for a key with no reviews in either window."""
    return {f"{p}{m}": 0 for p in ("cur_", "prev_") for m in MEASURES}


def series_points(rows: list[dict[str, Any]], s: Span) -> list[SeriesPoint]:
    """One point per bucket of the window, empty buckets included (for charts)."""
    by_bucket = {int(r["bucket"]): r for r in rows}
    points = []
    for bucket in range(s.start, s.end, s.step):
        row = by_bucket.get(bucket) or empty_row()
        stats = window_stats(row, "cur_", bucket, bucket + s.step)
        points.append(
            SeriesPoint(
                start=stats["start"],
                volume=stats["volume"],
                shares=stats["shares"],
                mean_score=stats["mean_score"],
            )
        )
    return points
