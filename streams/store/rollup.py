"""Event identity and replay-safe roll-ups: aggregates recomputed, never added to.

Every stored row of a review carries its ``version``: ``processed_at`` (ms) in
the high 64 bits and a hash of the row's content (:func:`content_hashes`) in the
low 64. The highest version of an event wins everywhere (see
:mod:`streams.store`). A write (:meth:`Store.insert_reviews`) runs, in order:

1. ``review_writes`` ← the batch's event ids under a fresh ``write_id``;
2. ``review_versions`` ← (event, version, minute, product, category) of every row,
   one row per distinct version, ordered by event id;
3. ``reviews`` (one row per event: ReplacingMergeTree by ``version`` on ``event_id``)
   and ``review_facts`` (one slim row per event and (minute, product));
4. :data:`TOMBSTONE_SQL`: for every event of the write, a deleted fact at every
   (minute, product) its versions hold except the winner's, versioned by the
   winner, so ``review_facts FINAL`` holds the winning version of each event
   and nothing else — a re-send that changes ``ts``, ``product_id`` or
   ``category`` moves the event;
5. the server's clock, read now (after every insert above);
6. :data:`ROLLUP_SQL` per aggregate table: every (bucket, key) any version of
   the write's events lies in is recomputed from ``review_facts FINAL`` and
   inserted whole, ``computed_at`` = that clock reading; a key left with no
   event gets a deleted row.

The aggregate tables are ReplacingMergeTree by ``computed_at`` (with
``is_deleted``), read with ``FINAL``: the latest recompute of a key wins. Each
writer recomputes every key it wrote a fact or tombstone into, with a clock
read after those writes and before the recompute reads, so the recompute
that wins a key read every write that came before any recompute of that key:
racing writers, and writes redone after a crash, converge on the same rows.
A count may legitimately go down (an event moved away). What protected a full
row from a recompute after raw TTL removed facts (versioning by ``n``) is now
a horizon: buckets within ten minutes of the raw retention are no longer
recomputed, so their rows stay as they were when the facts were complete.
"""

from __future__ import annotations

import hashlib
import time

import pyarrow as pa
import pyarrow.compute as pc

from streams.events.sentiment import (
    NEGATIVE,
    POSITIVE,
    SENTIMENT_LABELS,
    count_column,
    prob_column,
)

# The columns whose content ranks two versions that share ``processed_at``.
REVIEW_CONTENT = (
    "product_id",
    "category",
    "user_id",
    "lang",
    "text",
    "rating",
    "label",
    "score",
    *(prob_column(label) for label in SENTIMENT_LABELS),
    "model_name",
    "model_version",
    "ts",
)
QUESTION_CONTENT = (
    "product_id",
    "user_id",
    "text",
    "intent",
    "intent_score",
    "faq_id",
    "answer_score",
    "needs_human",
    "model_name",
    "model_version",
    "ts",
)

# Migrations after which the aggregates are rebuilt from review_facts.
REBUILD_AFTER = (2, 3)

# The four aggregate tables: (table, time column, bucket of a fact's minute, key column).
ROLLUP_TARGETS = (
    ("product_minute", "minute", "minute", "product_id"),
    ("category_minute", "minute", "minute", "category"),
    ("product_hour", "hour", "toStartOfHour(minute)", "product_id"),
    ("category_hour", "hour", "toStartOfHour(minute)", "category"),
)

# Buckets older than this have facts that raw TTL may already be removing: never recomputed.
HORIZON = "now() - toIntervalDay({days}) + toIntervalMinute(10)"

_WRITE_EVENTS = "SELECT event_id FROM {db}.review_writes WHERE write_id = {write_id}"

# A deleted fact, versioned by the event's winner, at every (minute, product)
# another version of a written event holds.
TOMBSTONE_SQL = """
INSERT INTO {db}.review_facts
    (minute, product_id, event_id, category, label, rating, sentiment, processed_at,
     content_hash, version, is_deleted)
SELECT v.minute, v.product_id, v.event_id, v.category, '', 0, 0, v.processed_at,
       v.content_hash, w.top, 1
FROM {db}.review_versions AS v
INNER JOIN (
    SELECT event_id, max(version) AS top, argMax((minute, product_id), version) AS home
    FROM {db}.review_versions
    WHERE event_id IN ({events})
    GROUP BY event_id
) AS w ON v.event_id = w.event_id
WHERE v.event_id IN ({events})
  AND (v.minute, v.product_id) != w.home
"""

# The (bucket, key) cells of every version of the events one write carried.
TOUCHED_BY_WRITE = """
SELECT DISTINCT {bucket} AS _b, {key} AS _k
FROM {db}.review_versions
WHERE event_id IN ({events}) AND {key_filter} AND _b >= {horizon}
"""

# Every cell with facts or with an aggregate row (after a migration).
TOUCHED_ALL = """
SELECT DISTINCT _b, _k FROM (
    SELECT {bucket} AS _b, {key} AS _k FROM {db}.review_facts WHERE {key_filter}
    UNION ALL
    SELECT {time_col} AS _b, {key} AS _k FROM {db}.{table}
)
WHERE _b >= {horizon}
"""

# Recompute the touched cells from the facts of the winning versions; a cell
# left empty gets a deleted row. The IN set leads with the time bucket, the
# first column of review_facts' sorting key, so only those buckets are read.
# Reviews without a category count for their product but form no '' category.
# {counts}, {a_counts} and {count_exprs}: the n_<label> columns of every sentiment label.
ROLLUP_SQL = """
INSERT INTO {db}.{table}
    ({time_col}, {key}, n, {counts}, rating_sum, rating_n,
     sentiment_sum, computed_at, is_deleted)
WITH touched AS ({touched})
SELECT t._b, t._k, a.n, {a_counts}, a.rating_sum, a.rating_n,
       a.sentiment_sum, {computed_at}, a.n = 0
FROM touched AS t
LEFT JOIN (
    SELECT {bucket} AS _b,
           {key} AS _k,
           toUInt32(count()) AS n,
           {count_exprs},
           toUInt32(sum(rating)) AS rating_sum,
           toUInt32(countIf(rating > 0)) AS rating_n,
           sum(toDecimal64(sentiment, 6)) AS sentiment_sum
    FROM {db}.review_facts FINAL
    WHERE ({bucket}, {key}) IN (SELECT _b, _k FROM touched) AND {key_filter}
    GROUP BY _b, _k
) AS a ON t._b = a._b AND t._k = a._k
"""
_COUNTS = [count_column(label) for label in SENTIMENT_LABELS]
LABEL_COUNTS = {
    "counts": ", ".join(_COUNTS),
    "a_counts": ", ".join(f"a.{c}" for c in _COUNTS),
    "count_exprs": ",\n           ".join(
        f"toUInt32(countIf(label = '{label}')) AS {count_column(label)}"
        for label in SENTIMENT_LABELS
    ),
}

# The server's clock in nanoseconds: the version of the recomputes that follow.
CLOCK_SQL = "SELECT toString(toUnixTimestamp64Nano(now64(9))) AS ns"

# Retention per table: (TTL expression on a day count, StoreSettings field).
TTLS = {
    "reviews": ("toDateTime(ts) + toIntervalDay({days})", "raw_ttl_days"),
    "questions": ("toDateTime(ts) + toIntervalDay({days})", "raw_ttl_days"),
    "shadow_scores": ("toDateTime(ts) + toIntervalDay({days})", "raw_ttl_days"),
    "review_facts": ("minute + toIntervalDay({days})", "raw_ttl_days"),
    "review_versions": ("minute + toIntervalDay({days})", "raw_ttl_days"),
    "product_minute": ("minute + toIntervalDay({days})", "minute_ttl_days"),
    "category_minute": ("minute + toIntervalDay({days})", "minute_ttl_days"),
    "product_hour": ("hour + toIntervalDay({days})", "hour_ttl_days"),
    "category_hour": ("hour + toIntervalDay({days})", "hour_ttl_days"),
}


def tombstone_statement(db: str, write_id: int) -> str:
    """Delete, in ``review_facts``, every losing version of the events ``write_id`` carried."""
    events = _WRITE_EVENTS.format(db=db, write_id=int(write_id))
    return TOMBSTONE_SQL.format(db=db, events=events)


def rollup_statements(db: str, write_id: int, computed_at: int, raw_days: int) -> list[str]:
    """The INSERT … SELECT statements that re-roll every cell ``write_id`` touched."""
    events = _WRITE_EVENTS.format(db=db, write_id=int(write_id))
    return [
        _rollup(db, target, computed_at, raw_days, TOUCHED_BY_WRITE, events)
        for target in ROLLUP_TARGETS
    ]


def rebuild_statements(db: str, computed_at: int, raw_days: int) -> list[str]:
    """Re-roll every cell within the raw retention (after a migration)."""
    return [
        _rollup(db, target, computed_at, raw_days, TOUCHED_ALL, "") for target in ROLLUP_TARGETS
    ]


def _rollup(
    db: str,
    target: tuple[str, str, str, str],
    computed_at: int,
    raw_days: int,
    touched: str,
    events: str,
) -> str:
    table, time_col, bucket, key = target
    fields = {
        "db": db,
        "table": table,
        "time_col": time_col,
        "bucket": bucket,
        "key": key,
        "key_filter": "category != ''" if key == "category" else "1",
        "horizon": HORIZON.format(days=int(raw_days)),
        "events": events,
    }
    return ROLLUP_SQL.format(
        **fields,
        **LABEL_COUNTS,
        touched=touched.format(**fields),
        computed_at=f"toUInt64({int(computed_at)})",
    )


def content_hashes(table: pa.Table, columns: tuple[str, ...]) -> pa.Array:
    """A 64-bit BLAKE2b of each row's ``columns``: the same on every worker and release.

    Floats are hashed by their bits and timestamps as integers, never through
    a text rendering that could change between library versions.
    """
    parts = []
    for name in columns:
        column = table[name].combine_chunks()
        if pa.types.is_floating(column.type):
            column = column.view(pa.uint32() if column.type == pa.float32() else pa.uint64())
        elif pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        parts.append(pc.fill_null(column.cast(pa.string()), ""))
    joined = pc.binary_join_element_wise(*parts, "\x1f").cast(pa.binary())
    blake = hashlib.blake2b
    return pa.array(
        [int.from_bytes(blake(row, digest_size=8).digest(), "big") for row in joined.to_pylist()],
        pa.uint64(),
    )


def review_facts(reviews: pa.Table, hashes: pa.Array) -> pa.Table:
    """The ``review_facts`` rows of a ``reviews`` batch (columnar, no per-row Python)."""
    return pa.table(
        {
            "minute": pc.floor_temporal(reviews["ts"], unit="minute"),
            "product_id": reviews["product_id"],
            "event_id": reviews["event_id"],
            "category": reviews["category"],
            "label": reviews["label"],
            "rating": reviews["rating"],
            "sentiment": pc.subtract(
                reviews[prob_column(POSITIVE)], reviews[prob_column(NEGATIVE)]
            ),
            "processed_at": reviews["processed_at"],
            "content_hash": hashes,
        }
    )


def review_versions(reviews: pa.Table, hashes: pa.Array) -> pa.Table:
    """The ``review_versions`` rows of a ``reviews`` batch: where each version lies."""
    return pa.table(
        {
            "event_id": reviews["event_id"],
            "processed_at": reviews["processed_at"],
            "content_hash": hashes,
            "minute": pc.floor_temporal(reviews["ts"], unit="minute"),
            "product_id": reviews["product_id"],
            "category": reviews["category"],
        }
    )


def write_log(reviews: pa.Table, write_id: int) -> pa.Table:
    """The ``review_writes`` rows of one write: its id and the event ids it carried."""
    return pa.table(
        {
            "write_id": pa.repeat(pa.scalar(write_id, pa.uint64()), reviews.num_rows),
            "event_id": reviews["event_id"],
        }
    )


class WriteIds:
    """Increasing ids for writes: wall-clock nanoseconds, bumped past the last one.

    Ids only name a write's rows in ``review_writes``; two writes sharing an
    id (several workers) only make each other's roll-up recompute a few more
    cells, which changes nothing.
    """

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(time.time_ns(), self._last + 1)
        return self._last
