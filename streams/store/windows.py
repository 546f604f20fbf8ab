"""Rolling-window queries over the aggregate tables, and the shapes they return.

A window of length L ending at ``now`` is the L of buckets up to and
including the bucket that holds ``now``; it is compared with the L before it.
Windows under a day read per-minute rows, longer ones per-hour rows (so a
24 h window spans 24 whole hours, the current one partial). The mean score
is the mean over reviews of P(positive) − P(negative), in [−1, 1].
"""

from __future__ import annotations

import math
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
ORDER BY {order}, cur_n DESC, key
LIMIT {limit}
"""

# How a window-pair query ranks its keys: by negative share, or by its change
# against the previous window (keys without reviews in it rank last).
_NEG = count_column(NEGATIVE)
ORDERS = {
    "negative": f"cur_{_NEG} / greatest(cur_n, 1) DESC",
    "change": f"prev_n > 0 DESC, "
    f"cur_{_NEG} / greatest(cur_n, 1) - prev_{_NEG} / greatest(prev_n, 1) DESC",
}

SERIES_SQL = """
SELECT toUInt32(toStartOfInterval({time_col}, INTERVAL {step} SECOND)) AS bucket, {measures}
FROM {db}.{table} FINAL
WHERE product_id = {{product_id:String}}
  AND {time_col} >= toDateTime({start}, 'UTC') AND {time_col} < toDateTime({end}, 'UTC')
GROUP BY bucket
ORDER BY bucket
"""

# Reviews and negatives per (product, bucket), for the sparklines of a ranked list.
SPARK_SQL = """
SELECT product_id, toUInt32(toStartOfInterval({time_col}, INTERVAL {step} SECOND)) AS bucket,
       sum(n) AS n, sum(n_negative) AS negative
FROM {db}.{table} FINAL
WHERE product_id IN ({ids})
  AND {time_col} >= toDateTime({start}, 'UTC') AND {time_col} < toDateTime({end}, 'UTC')
GROUP BY product_id, bucket
"""

# Candidate sparkline buckets, finest first: the first that cuts a window in at most
# SPARK_POINTS buckets (and divides it) is used.
SPARK_STEPS = ("1m", "5m", "15m", "1h", "3h", "6h", "1d")
SPARK_POINTS = 30


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


def window_pair_sql(
    db: str, kind: str, s: Span, where: str, having: str, limit: int, order: str = "negative"
) -> str:
    """Current and previous window measures per product or category (``kind``), ranked."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
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
        order=ORDERS[order],
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


def spark_step(window: timedelta) -> timedelta:
    """The sparkline bucket of a window: the finest that gives at most SPARK_POINTS points."""
    for text in SPARK_STEPS:
        step = parse_duration(text)
        if window % step == timedelta(0) and window // step <= SPARK_POINTS:
            return step
    return window


def spark_sql(db: str, s: Span, count: int) -> str:
    """Per product and bucket of ``s``, for the products in parameters ``p0`` … ``p{count-1}``."""
    t = s.table_suffix
    ids = ", ".join(f"{{p{i}:String}}" for i in range(count))
    return SPARK_SQL.format(
        db=db, table=f"product_{t}", time_col=t, step=s.step, ids=ids, start=s.start, end=s.end
    )


def spark_lines(
    rows: list[dict[str, Any]], s: Span, product_ids: list[str]
) -> dict[str, list[float | None]]:
    """Each product's negative share per bucket of ``s``; None where a bucket has no reviews."""
    cells = {(str(r["product_id"]), int(r["bucket"])): r for r in rows}
    out: dict[str, list[float | None]] = {}
    for product in product_ids:
        line: list[float | None] = []
        for bucket in range(s.start, s.end, s.step):
            row = cells.get((product, bucket))
            n = int(row["n"]) if row else 0
            line.append(round(int(row["negative"]) / n, 6) if row and n else None)
        out[product] = line
    return out


def baseline_band(
    share: float | None, points: list[SeriesPoint], z: float = 1.96
) -> list[tuple[float, float] | None]:
    """Where each bucket's negative share falls ~95% of the time if it kept ``share``.

    The binomial spread of a bucket of n reviews around the baseline share
    (normal approximation, clipped to [0, 1]); None for an empty bucket or
    without a baseline. A point outside its band moved against the baseline.
    """
    band: list[tuple[float, float] | None] = []
    for point in points:
        n = point["volume"]
        if share is None or n == 0:
            band.append(None)
            continue
        half = z * math.sqrt(share * (1 - share) / n)
        band.append((round(max(0.0, share - half), 6), round(min(1.0, share + half), 6)))
    return band


def _measure(expr: str, alias: str) -> str:
    # Decimal sums leave as Float64, so both backends return plain numbers.
    if alias.endswith("sentiment_sum"):
        expr = f"toFloat64({expr})"
    return f"{expr} AS {alias}"


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as ``2026-11-28T10:00:00.250Z``."""
    when = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
