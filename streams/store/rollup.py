"""Replay-safe roll-ups: aggregates recomputed from deduplicated facts, never added to.

A write inserts its reviews into ``reviews`` and a slim copy into
``review_facts`` tagged with a fresh ``write_id``; then each aggregate table
gets its touched keys recomputed from ``review_facts FINAL``, the set of
distinct events, and inserted whole. Writing the same events again, in any
batching, recomputes the same rows; a late event touches only the keys of its
own event-time minute and hour. The aggregate tables are ReplacingMergeTree
versioned by ``n`` and read with ``FINAL``, so the newest, most complete row
of a key is the one that counts.
"""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.compute as pc

# Rows backfilled by migration 002 from reviews stored before the roll-ups existed.
BACKFILL_WRITE_ID = 0

# The four aggregate tables: (table, time column, bucket of a fact's minute, key column).
ROLLUP_TARGETS = (
    ("product_minute", "minute", "minute", "product_id"),
    ("category_minute", "minute", "minute", "category"),
    ("product_hour", "hour", "toStartOfHour(minute)", "product_id"),
    ("category_hour", "hour", "toStartOfHour(minute)", "category"),
)

# Recompute every (bucket, key) that the facts of one write touch. The IN set
# leads with the time bucket, the first column of review_facts' sorting key, so
# only the index ranges of those buckets are read. Reviews without a category
# count for their product but form no '' category.
ROLLUP_SQL = """
INSERT INTO {db}.{table}
SELECT {bucket} AS {time_col},
       {key},
       count() AS n,
       countIf(label = 'negative') AS n_negative,
       countIf(label = 'neutral') AS n_neutral,
       countIf(label = 'positive') AS n_positive,
       sum(rating) AS rating_sum,
       countIf(rating > 0) AS rating_n,
       sum(toDecimal64(sentiment, 6)) AS sentiment_sum
FROM {db}.review_facts FINAL
WHERE ({bucket}, {key}) IN (
          SELECT {bucket}, {key} FROM {db}.review_facts
          WHERE write_id = {write_id} AND {key_filter})
  AND {key_filter}
GROUP BY {time_col}, {key}
"""

# Retention per table: (TTL expression on a day count, StoreSettings field).
TTLS = {
    "reviews": ("toDateTime(ts) + toIntervalDay({days})", "raw_ttl_days"),
    "questions": ("toDateTime(ts) + toIntervalDay({days})", "raw_ttl_days"),
    "review_facts": ("minute + toIntervalDay({days})", "raw_ttl_days"),
    "product_minute": ("minute + toIntervalDay({days})", "minute_ttl_days"),
    "category_minute": ("minute + toIntervalDay({days})", "minute_ttl_days"),
    "product_hour": ("hour + toIntervalDay({days})", "hour_ttl_days"),
    "category_hour": ("hour + toIntervalDay({days})", "hour_ttl_days"),
}


def rollup_statements(db: str, write_id: int) -> list[str]:
    """The INSERT … SELECT statements that re-roll every key ``write_id`` touched."""
    return [
        ROLLUP_SQL.format(
            db=db,
            table=table,
            time_col=time_col,
            bucket=bucket,
            key=key,
            write_id=int(write_id),
            key_filter="category != ''" if key == "category" else "1",
        )
        for table, time_col, bucket, key in ROLLUP_TARGETS
    ]


def review_facts(reviews: pa.Table, write_id: int) -> pa.Table:
    """The ``review_facts`` rows of a ``reviews`` batch (columnar, no per-row Python)."""
    return pa.table(
        {
            "minute": pc.floor_temporal(reviews["ts"], unit="minute"),
            "product_id": reviews["product_id"],
            "event_id": reviews["event_id"],
            "category": reviews["category"],
            "label": reviews["label"],
            "rating": reviews["rating"],
            "sentiment": pc.subtract(reviews["p_positive"], reviews["p_negative"]),
            "processed_at": reviews["processed_at"],
            "write_id": pa.repeat(pa.scalar(write_id, pa.uint64()), reviews.num_rows),
        }
    )


class WriteIds:
    """Increasing ids for writes: wall-clock nanoseconds, bumped past the last one.

    Increasing ids keep ``write_id = N`` cheap (older granules' minmax lies
    below N) and, across restarts and several workers, unique enough: two
    writes sharing an id only make each other's roll-up recompute a few more
    keys, which changes nothing.
    """

    def __init__(self) -> None:
        self._last = BACKFILL_WRITE_ID

    def next(self) -> int:
        self._last = max(time.time_ns(), self._last + 1)
        return self._last
