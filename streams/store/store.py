"""The store: writes enriched batches, keeps the roll-ups in step, answers the queries.

:class:`Store` drives a :class:`~streams.store.backend.Backend` (chdb or a
ClickHouse server): it inserts the columnar batches of the typed events
(:mod:`streams.events.enriched`), re-rolls the aggregate cells every write
touched (:mod:`streams.store.rollup`), owns the schema through
:mod:`streams.store.migrations`, and answers the rolling-window queries
(:mod:`streams.store.windows`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from streams.errors import StoreError, StoreRejected
from streams.events.enriched import (
    Enriched,
    EnrichedQuestion,
    EnrichedReview,
    questions_table,
    reviews_table,
)
from streams.events.sentiment import NEGATIVE, SENTIMENT_LABELS, count_column, prob_column
from streams.settings import StoreSettings
from streams.store import migrations
from streams.store import shadow as sh
from streams.store import windows as w
from streams.store.backend import Backend
from streams.store.rollup import (
    CLOCK_SQL,
    QUESTION_CONTENT,
    REVIEW_CONTENT,
    WriteIds,
    content_hashes,
    rebuild_statements,
    review_facts,
    review_versions,
    rollup_statements,
    tombstone_statement,
    write_log,
)


class Store:
    """Writes enriched batches, keeps the roll-ups and answers product-health queries."""

    def __init__(self, backend: Backend, settings: StoreSettings) -> None:
        if not settings.database.isidentifier():
            raise StoreError(f"database name {settings.database!r} must be a plain identifier")
        self.backend = backend
        self.settings = settings
        self.db = settings.database
        self._write_ids = WriteIds()

    def migrate(self) -> list[int]:
        """Apply pending migrations, then retention; returns the versions applied now."""
        return migrations.migrate(self.backend, self.settings, self._rebuild)

    def write(self, events: Sequence[Enriched]) -> None:
        """Insert one batch of enriched events (columnar) and re-roll what its reviews touch.

        StoreRejected when the events cannot form an Arrow batch (a value out
        of its column's range or type): writing them again cannot succeed.
        """
        reviews = [e for e in events if isinstance(e, EnrichedReview)]
        questions = [e for e in events if isinstance(e, EnrichedQuestion)]
        try:
            review_table = reviews_table(reviews) if reviews else None
            question_table = questions_table(questions) if questions else None
            shadow_table = sh.shadow_table(reviews)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise StoreRejected(f"events do not fit the store's columns: {exc}") from exc
        if review_table is not None:
            self.insert_reviews(review_table)
        if shadow_table is not None:
            self.backend.insert_arrow(f"{self.db}.shadow_scores", shadow_table)
        if question_table is not None:
            hashes = content_hashes(question_table, QUESTION_CONTENT)
            self.backend.insert_arrow(
                f"{self.db}.questions", question_table.append_column("content_hash", hashes)
            )

    def record_progress(self, topic: str, progress: Mapping[int, int]) -> None:
        """Note, per partition of ``topic``, the latest review ``ts`` (ms) stored from it.

        Written after the reviews themselves: spike alerts close a window only
        once every partition has passed it (:mod:`streams.service.alerting`).
        """
        parts = sorted(progress)
        table = pa.table(
            {
                "topic": pa.array([topic] * len(parts), pa.string()),
                "partition": pa.array(parts, pa.uint32()),
                "max_ts": pa.array([progress[p] for p in parts], pa.timestamp("ms", tz="UTC")),
            }
        )
        self.backend.insert_arrow(f"{self.db}.partition_progress", table)

    def insert_reviews(self, reviews: pa.Table) -> None:
        """Insert a ``reviews_table`` batch, then re-roll every aggregate cell it touched.

        Safe to repeat: a failure anywhere leaves the batch to be written
        again, and writing it again yields the same aggregates. The order of
        the steps is what keeps racing writers exact (see :mod:`streams.store.rollup`).
        """
        db = self.db
        write_id = self._write_ids.next()
        hashes = content_hashes(reviews, REVIEW_CONTENT)
        self.backend.insert_arrow(f"{db}.review_writes", write_log(reviews, write_id))
        self.backend.insert_arrow(f"{db}.review_versions", review_versions(reviews, hashes))
        self.backend.insert_arrow(f"{db}.reviews", reviews.append_column("content_hash", hashes))
        self.backend.insert_arrow(f"{db}.review_facts", review_facts(reviews, hashes))
        self.backend.command(tombstone_statement(db, write_id))
        computed_at = self._clock()
        for statement in rollup_statements(db, write_id, computed_at, self.settings.raw_ttl_days):
            self.backend.command(statement)

    def _clock(self) -> int:
        """The server's clock in ns, read after a write's inserts: its recomputes' version."""
        return int(self.backend.query(CLOCK_SQL)[0]["ns"])

    def _rebuild(self) -> None:
        """Re-roll every aggregate cell within the raw retention from ``review_facts``."""
        computed_at = self._clock()
        for statement in rebuild_statements(self.db, computed_at, self.settings.raw_ttl_days):
            self.backend.command(statement)

    def event_ids(self, table: str) -> set[str]:
        """Distinct event ids stored in ``reviews`` or ``questions``."""
        if table not in ("reviews", "questions"):
            raise StoreError(f"unknown table {table!r}")
        rows = self.backend.query(f"SELECT DISTINCT event_id FROM {self.db}.{table}")
        return {str(r["event_id"]) for r in rows}

    def count(self, table: str) -> int:
        """Events in ``table``, each counted once however often it was written."""
        if table not in ("reviews", "questions"):
            raise StoreError(f"unknown table {table!r}")
        rows = self.backend.query(f"SELECT count() AS n FROM {self.db}.{table} FINAL")
        return int(rows[0]["n"])

    def product_health(self, limit: int = 10) -> list[dict[str, Any]]:
        """All retained hours, per product: volume, label shares, mean score, mean rating.

        Sorted by negative share (then volume), the products that need attention first.
        """
        shares = "".join(
            f"sum({count_column(label)}) / volume AS {label},\n" for label in SENTIMENT_LABELS
        )
        sql = f"""
            SELECT product_id,
                   sum(n) AS volume,
                   {shares}
                   toFloat64(sum(sentiment_sum)) / volume AS mean_score,
                   if(sum(rating_n) > 0, sum(rating_sum) / sum(rating_n), NULL) AS mean_rating
            FROM {self.db}.product_hour FINAL
            GROUP BY product_id
            ORDER BY {NEGATIVE} DESC, volume DESC, product_id
            LIMIT {int(limit)}
        """
        return self.backend.query(sql)

    def products(
        self,
        window: str,
        limit: int = 10,
        min_volume: int | None = None,
        now: datetime | None = None,
        *,
        order: str = "negative",
        category: str | None = None,
    ) -> list[w.ProductWindow]:
        """Top ``limit`` products over ``window``, by negative share or by its change.

        ``order="change"`` ranks by the negative share's change against the
        previous window (the worst movers; products new in this window last).
        Only products with at least ``min_volume`` reviews in the window rank
        (default: settings.top_min_volume); ``category`` keeps the products
        with a review of that category in the two windows. ValueError for a
        window not configured or an unknown order.
        """
        volume = self.settings.top_min_volume if min_volume is None else int(min_volume)
        where, params = "1", None
        if category is not None:
            length = w.check_window(window, self.settings.windows)
            since = w.span(length, now or datetime.now(UTC)).prev_start
            where = (
                f"product_id IN (SELECT product_id FROM {self.db}.review_facts "
                f"WHERE category = {{category:String}} AND minute >= toDateTime({since}, 'UTC'))"
            )
            params = {"category": category}
        rows, s = self._window_pairs(
            "product",
            window,
            now,
            where=where,
            having=f"cur_n >= {max(volume, 1)}",
            limit=limit,
            params=params,
            order=order,
        )
        return [
            w.ProductWindow(product_id=str(r["key"]), **w.key_window(r, window, s)) for r in rows
        ]

    def sparklines(
        self, product_ids: Sequence[str], window: str, now: datetime | None = None
    ) -> dict[str, list[float | None]]:
        """Each product's negative share per bucket of ``window`` (``spark_step``), oldest first."""
        length = w.check_window(window, self.settings.windows)
        s = w.span(length, now or datetime.now(UTC), w.spark_step(length))
        ids = list(dict.fromkeys(product_ids))
        if not ids:
            return {}
        params = {f"p{i}": product for i, product in enumerate(ids)}
        rows = self.backend.query(w.spark_sql(self.db, s, len(ids)), params)
        return w.spark_lines(rows, s, ids)

    def ratings(self, product_id: str, window: str, now: datetime | None = None) -> dict[str, int]:
        """Reviews of a product in ``window`` per star rating, ``"1"`` … ``"5"`` and ``"none"``."""
        s = w.span(w.check_window(window, self.settings.windows), now or datetime.now(UTC))
        rows = self.backend.query(
            f"SELECT rating, count() AS n FROM {self.db}.reviews FINAL "
            f"WHERE product_id = {{product_id:String}} AND {_raw_between(s)} GROUP BY rating",
            {"product_id": product_id},
        )
        counts = {str(stars): 0 for stars in range(1, 6)} | {"none": 0}
        for r in rows:
            counts[str(r["rating"]) if int(r["rating"]) else "none"] = int(r["n"])
        return counts

    def reviews(
        self,
        product_id: str,
        window: str,
        label: str | None = None,
        limit: int = 10,
        now: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """A product's latest reviews in ``window`` (of one sentiment ``label``), newest first.

        Each: ``event_id``, ``ts``, ``text``, ``rating`` (None when unrated),
        ``label``, ``score`` (P(label)), ``p_negative``, ``model`` {name, version}.
        """
        s = w.span(w.check_window(window, self.settings.windows), now or datetime.now(UTC))
        params = {"product_id": product_id}
        where = f"product_id = {{product_id:String}} AND {_raw_between(s)}"
        if label is not None:
            if label not in SENTIMENT_LABELS:
                allowed = ", ".join(SENTIMENT_LABELS)
                raise ValueError(f"label must be one of {allowed}, not {label!r}")
            where += " AND label = {label:String}"
            params["label"] = label
        rows = self.backend.query(
            f"SELECT event_id, toUnixTimestamp64Milli(ts) AS ts_ms, text, rating, label, score, "
            f"{prob_column(NEGATIVE)} AS p_negative, model_name, model_version "
            f"FROM {self.db}.reviews FINAL WHERE {where} "
            f"ORDER BY ts DESC, event_id LIMIT {int(limit)}",
            params,
        )
        return [
            {
                "event_id": str(r["event_id"]),
                "ts": w.iso_ms(int(r["ts_ms"])),
                "text": str(r["text"]),
                "rating": int(r["rating"]) or None,
                "label": str(r["label"]),
                "score": round(float(r["score"]), 6),
                "p_negative": round(float(r["p_negative"]), 6),
                "model": {"name": str(r["model_name"]), "version": str(r["model_version"])},
            }
            for r in rows
        ]

    def rated_reviews(
        self, limit: int = 100_000, category: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored reviews that carry a star rating (``text``, ``rating``), newest first:
        the input of ``reviewpulse adapt --from-store``. Every distinct event once."""
        params: dict[str, Any] = {}
        where = "rating > 0"
        if category is not None:
            where += " AND category = {category:String}"
            params["category"] = category
        rows = self.backend.query(
            f"SELECT text, rating FROM {self.db}.reviews FINAL WHERE {where} "
            f"ORDER BY ts DESC, event_id LIMIT {int(limit)}",
            params,
        )
        return [{"text": str(r["text"]), "rating": int(r["rating"])} for r in rows]

    def categories(
        self, window: str, limit: int = 10, now: datetime | None = None
    ) -> list[w.CategoryWindow]:
        """Categories with reviews in ``window``, by negative share (then volume)."""
        rows, s = self._window_pairs("category", window, now, having="cur_n > 0", limit=limit)
        return [
            w.CategoryWindow(category=str(r["key"]), **w.key_window(r, window, s)) for r in rows
        ]

    def product(
        self, product_id: str, window: str, now: datetime | None = None
    ) -> w.ProductWindow | None:
        """One product over ``window`` and the window before; None if it has no reviews at all."""
        params = {"product_id": product_id}
        where = "product_id = {product_id:String}"
        rows, s = self._window_pairs("product", window, now, where=where, params=params)
        if not rows:
            known = self.backend.query(
                f"SELECT 1 AS known FROM {self.db}.reviews WHERE {where} LIMIT 1", params
            )
            if not known:
                return None
        row = rows[0] if rows else w.empty_row()
        return w.ProductWindow(product_id=product_id, **w.key_window(row, window, s))

    def product_questions(
        self, product_id: str, window: str, now: datetime | None = None
    ) -> dict[str, Any]:
        """A product's questions in ``window``: count per intent and the unanswered share.

        Read from the raw questions with ``FINAL``, so each event counts once
        however often it was delivered, and a re-sent question counts in its
        latest version's window and intent.
        """
        s = w.span(w.check_window(window, self.settings.windows), now or datetime.now(UTC))
        rows = self.backend.query(
            f"SELECT intent, count() AS n, sum(needs_human) AS unanswered "
            f"FROM {self.db}.questions FINAL WHERE product_id = {{product_id:String}} "
            f"AND ts >= toDateTime64({s.start}, 3, 'UTC') AND ts < toDateTime64({s.end}, 3, 'UTC') "
            f"GROUP BY intent ORDER BY n DESC, intent",
            {"product_id": product_id},
        )
        total = sum(int(r["n"]) for r in rows)
        unanswered = sum(int(r["unanswered"]) for r in rows)
        return {
            "product_id": product_id,
            "window": window,
            "start": w.iso(s.start),
            "end": w.iso(s.end),
            "questions": total,
            "intents": {str(r["intent"]) or "unclassified": int(r["n"]) for r in rows},
            "unanswered_share": unanswered / total if total else None,
        }

    def shadow_comparisons(self, window: str, now: datetime | None = None) -> list[sh.Comparison]:
        """Live against candidate model over the reviews of ``window`` scored in shadow.

        One summary per model pair (most reviews first), each review once (``FINAL``).
        """
        s = w.span(w.check_window(window, self.settings.windows), now or datetime.now(UTC))
        sql = sh.COMPARISON_SQL.format(db=self.db, start=s.start, end=s.end)
        return sh.comparisons(self.backend.query(sql))

    def _window_pairs(
        self,
        kind: str,
        window: str,
        now: datetime | None,
        *,
        where: str = "1",
        having: str = "1",
        limit: int = 1,
        params: Mapping[str, str] | None = None,
        order: str = "negative",
    ) -> tuple[list[dict[str, Any]], w.Span]:
        s = w.span(w.check_window(window, self.settings.windows), now or datetime.now(UTC))
        sql = w.window_pair_sql(self.db, kind, s, where, having, limit, order)
        return self.backend.query(sql, params), s

    def series(
        self,
        product_id: str,
        window: str,
        bucket: str | None = None,
        now: datetime | None = None,
    ) -> list[w.SeriesPoint]:
        """One point per ``bucket`` of ``window``, empty buckets included (for charts).

        The default bucket is a minute for windows up to an hour, an hour
        beyond; buckets of whole hours read the per-hour table.
        """
        length = w.check_window(window, self.settings.windows)
        step = w.check_bucket(bucket or ("1m" if length <= timedelta(hours=1) else "1h"), length)
        s = w.span(length, now or datetime.now(UTC), step)
        rows = self.backend.query(w.series_sql(self.db, s), {"product_id": product_id})
        return w.series_points(rows, s)

    def close(self) -> None:
        self.backend.close()


def _raw_between(s: w.Span) -> str:
    """The raw tables' rows with ``ts`` in the window of ``s``."""
    return f"ts >= toDateTime64({s.start}, 3, 'UTC') AND ts < toDateTime64({s.end}, 3, 'UTC')"
