"""The store's side of spike alerting: window counts in, alerts and their inputs out.

:class:`AlertStore` reads what the detector tests (per-window review counts
per product and per category, read with ``FINAL`` so each event counts once),
the evidence of an alert (the window's most negative reviews), and keeps what
the detector needs to survive a restart: the alerts it sent (``alerts``) and
the exact counts each window was tested with (``alert_windows``, migration 004).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from streams.alerts.engine import Scope, WindowCount
from streams.alerts.event import AlertEvent, NegativeReview
from streams.events.sentiment import NEGATIVE, prob_column
from streams.store.backend import Backend

MARKER: Scope | str = "window"
P_NEGATIVE = prob_column(NEGATIVE)  # alert_windows scope of the row that marks a window as tested

_MS = pa.timestamp("ms", tz="UTC")
WINDOW_SCHEMA = pa.schema(
    [
        ("size", pa.string()),
        ("window_start", _MS),
        ("window_end", _MS),
        ("scope", pa.string()),
        ("key", pa.string()),
        ("category", pa.string()),
        ("n", pa.uint32()),
        ("negative", pa.uint32()),
    ]
)
ALERT_SCHEMA = pa.schema(
    [
        ("alert_id", pa.string()),
        ("status", pa.string()),
        ("severity", pa.string()),
        ("rule", pa.string()),
        ("product_id", pa.string()),
        ("category", pa.string()),
        ("window_start", _MS),
        ("window_end", _MS),
        ("started_at", _MS),
        ("p_value", pa.float64()),
        ("body", pa.string()),
    ]
)


@dataclass(frozen=True)
class TestedWindow:
    """One closed window of one size, with the counts it was tested with."""

    size: str
    start_ms: int
    end_ms: int
    counts: tuple[WindowCount, ...]


def _between(start_ms: int, end_ms: int) -> str:
    return (
        f"ts >= fromUnixTimestamp64Milli(toInt64({int(start_ms)}), 'UTC') "
        f"AND ts < fromUnixTimestamp64Milli(toInt64({int(end_ms)}), 'UTC')"
    )


class AlertStore:
    """Alert reads and writes on a store's backend and database."""

    def __init__(self, backend: Backend, db: str) -> None:
        self.backend = backend
        self.db = db

    def event_time_bounds(self) -> tuple[int, int] | None:
        """(earliest review ``ts``, how far every input partition is stored) in ms, or None.

        The second is the lowest over the input partitions of the latest review
        time stored from each (``partition_progress``, written by the worker after
        each batch); a store filled some other way, without that table's rows,
        falls back to the latest review time.
        """
        rows = self.backend.query(
            f"SELECT count() AS n, toUnixTimestamp64Milli(min(ts)) AS lo, "
            f"toUnixTimestamp64Milli(max(ts)) AS hi FROM {self.db}.reviews"
        )
        if not rows or not int(rows[0]["n"]):
            return None
        progress = self.backend.query(
            f"SELECT count() AS n, toUnixTimestamp64Milli(min(latest)) AS low FROM "
            f"(SELECT max(max_ts) AS latest FROM {self.db}.partition_progress "
            f"GROUP BY topic, partition)"
        )
        if progress and int(progress[0]["n"]):
            return int(rows[0]["lo"]), int(progress[0]["low"])
        return int(rows[0]["lo"]), int(rows[0]["hi"])

    def window_counts(
        self, size: str, length_ms: int, start_ms: int, end_ms: int
    ) -> dict[int, list[WindowCount]]:
        """Counts per window of ``length_ms`` in ``[start_ms, end_ms)``, by window start.

        One record per product and per category with reviews in the window; a
        product's category is the smallest one its reviews in the window name.
        """
        bucket = f"intDiv(toUnixTimestamp64Milli(ts), {int(length_ms)}) * {int(length_ms)}"
        where = _between(start_ms, end_ms)
        products = self.backend.query(
            f"SELECT {bucket} AS w, product_id AS key, min(category) AS category, "
            f"count() AS n, countIf(label = '{NEGATIVE}') AS negative "
            f"FROM {self.db}.reviews FINAL WHERE {where} GROUP BY w, key"
        )
        categories = self.backend.query(
            f"SELECT {bucket} AS w, category AS key, count() AS n, "
            f"countIf(label = '{NEGATIVE}') AS negative "
            f"FROM {self.db}.reviews FINAL WHERE {where} AND category != '' GROUP BY w, key"
        )
        out: dict[int, list[WindowCount]] = {}
        for scope, rows in (("product", products), ("category", categories)):
            for r in rows:
                w = int(r["w"])
                category = str(r["category"]) if scope == "product" else str(r["key"])
                out.setdefault(w, []).append(
                    WindowCount(
                        scope,  # type: ignore[arg-type]
                        str(r["key"]),
                        category or None,
                        w,
                        w + length_ms,
                        int(r["n"]),
                        int(r["negative"]),
                    )
                )
        for counts in out.values():
            counts.sort(key=lambda c: (c.scope, c.key))
        return out

    def negative_reviews(self, record: WindowCount, limit: int = 5) -> list[NegativeReview]:
        """The window's most negative reviews of a product or category (the evidence)."""
        column = "product_id" if record.scope == "product" else "category"
        rows = self.backend.query(
            f"SELECT event_id, text, {P_NEGATIVE} AS p FROM {self.db}.reviews FINAL "
            f"WHERE {column} = {{key:String}} AND label = '{NEGATIVE}' AND "
            f"{_between(record.window_start_ms, record.window_end_ms)} "
            f"ORDER BY p DESC, event_id LIMIT {int(limit)}",
            {"key": record.key},
        )
        return [NegativeReview(str(r["event_id"]), str(r["text"]), float(r["p"])) for r in rows]

    def tested_windows(self) -> list[TestedWindow]:
        """Every window tested so far with its counts, in the order they were tested."""
        rows = self.backend.query(
            f"SELECT size, toUnixTimestamp64Milli(window_start) AS start, "
            f"toUnixTimestamp64Milli(window_end) AS end, scope, key, category, n, negative "
            f"FROM {self.db}.alert_windows FINAL ORDER BY end, end - start, scope, key"
        )
        windows: dict[tuple[str, int, int], list[WindowCount]] = {}
        for r in rows:
            at = (str(r["size"]), int(r["start"]), int(r["end"]))
            counts = windows.setdefault(at, [])
            if r["scope"] != MARKER:
                counts.append(
                    WindowCount(
                        r["scope"],
                        str(r["key"]),
                        str(r["category"]) or None,
                        at[1],
                        at[2],
                        int(r["n"]),
                        int(r["negative"]),
                    )
                )
        return [TestedWindow(s, a, b, tuple(c)) for (s, a, b), c in windows.items()]

    def write(self, tested: Sequence[TestedWindow], events: Sequence[AlertEvent]) -> None:
        """Store alert events, then the windows they came from (which mark them as done)."""
        if events:
            self.backend.insert_arrow(f"{self.db}.alerts", _alert_table(events))
        if tested:
            self.backend.insert_arrow(f"{self.db}.alert_windows", _window_table(tested))

    def alerts(
        self,
        *,
        status: str | None = None,
        since_ms: int | None = None,
        product_id: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The latest event of each alert (newest first), filtered; each as sent on the topic."""
        where = ["1"]
        params: dict[str, str] = {}
        if product_id is not None:
            where.append("product_id = {product:String}")
            params["product"] = product_id
        having = ["1"]
        if status is not None:
            having.append("last_status = {status:String}")
            params["status"] = status
        if since_ms is not None:
            having.append(f"last_end >= fromUnixTimestamp64Milli(toInt64({int(since_ms)}), 'UTC')")
        rows = self.backend.query(
            f"SELECT alert_id, argMax(body, (window_end, status = 'resolved')) AS last_body, "
            f"argMax(status, (window_end, status = 'resolved')) AS last_status, "
            f"max(window_end) AS last_end "
            f"FROM {self.db}.alerts FINAL WHERE {' AND '.join(where)} GROUP BY alert_id "
            f"HAVING {' AND '.join(having)} ORDER BY last_end DESC, alert_id LIMIT {int(limit)}",
            params,
        )
        return [orjson.loads(r["last_body"]) for r in rows]


def _window_table(tested: Sequence[TestedWindow]) -> pa.Table:
    rows: list[dict[str, Any]] = []
    for t in tested:
        rows.append(
            {
                "size": t.size,
                "window_start": t.start_ms,
                "window_end": t.end_ms,
                "scope": MARKER,
                "key": "",
                "category": "",
                "n": 0,
                "negative": 0,
            }
        )
        rows += [
            {
                "size": t.size,
                "window_start": c.window_start_ms,
                "window_end": c.window_end_ms,
                "scope": c.scope,
                "key": c.key,
                "category": c.category or "",
                "n": c.n,
                "negative": c.negative,
            }
            for c in t.counts
        ]
    return pa.Table.from_pylist(rows, schema=WINDOW_SCHEMA)


def _alert_table(events: Sequence[AlertEvent]) -> pa.Table:
    rows = []
    for e in events:
        body = e.to_json()
        rows.append(
            {
                "alert_id": e.alert_id,
                "status": e.status,
                "severity": e.severity,
                "rule": e.rule,
                "product_id": e.product_id or "",
                "category": e.category or "",
                "window_start": e.window_start_ms,
                "window_end": e.window_end_ms,
                "started_at": e.started_ms,
                "p_value": e.p_value,
                "body": orjson.dumps(body).decode(),
            }
        )
    return pa.Table.from_pylist(rows, schema=ALERT_SCHEMA)
