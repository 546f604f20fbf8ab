"""The Grafana dashboards (deploy/grafana) against what they read.

Every ClickHouse panel's SQL runs, its Grafana macros replaced by concrete SQL,
on a real store (chdb, the store's own migrations) holding a few reviews and
alerts, and must return rows; every PromQL expression may name only metrics the
worker exports (the sample names of a registry built by :class:`Metrics`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import yaml

from streams.errors import StoreError
from streams.service.metrics import Metrics
from streams.settings import REPO_ROOT, StoreSettings
from streams.store import Store, open_store
from streams.store.alerts import AlertStore
from tests.clock import DAY, day_at
from tests.events import ms, review_event
from tests.unit.test_alertmanager import FIRING

GRAFANA = REPO_ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
CLICKHOUSE = "grafana-clickhouse-datasource"


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # panels inside a row


def targets(kind: str) -> list[Any]:
    """``pytest.param(target, id=dashboard/panel)`` for each query of data source ``kind``."""
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in _panels(dashboard["panels"]):
            for i, target in enumerate(panel.get("targets", [])):
                source = target.get("datasource") or panel.get("datasource") or {}
                if source.get("type") == kind:
                    found.append(pytest.param(target, id=f"{path.stem}/{panel['title']}/{i}"))
    return found


SQL = targets(CLICKHOUSE)
PROMQL = targets("prometheus")


def test_both_dashboards_have_queries_of_both_kinds() -> None:
    assert {p.stem for p in DASHBOARDS} == {"service", "product-sentiment"}
    assert len(SQL) >= 6 and len(PROMQL) >= 10


def test_every_panel_uses_a_provisioned_data_source() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "reviewpulse.yaml").read_text()
    )["datasources"]
    uids = {(d["type"], d["uid"]) for d in provisioned}
    for param in SQL + PROMQL:
        (target,) = param.values
        source = target["datasource"]
        assert (source["type"], source["uid"]) in uids, param.id
    clickhouse = next(d for d in provisioned if d["type"] == CLICKHOUSE)
    readonly = (REPO_ROOT / "deploy" / "clickhouse" / "grafana-readonly.xml").read_text()
    assert f"<{clickhouse['jsonData']['username']}>" in readonly  # the read-only user


# --- SQL -------------------------------------------------------------------------------

FROM = DAY - timedelta(days=1)
TO = DAY + timedelta(days=2)
INTERVAL_S = 3600


def concrete(sql: str) -> str:
    """The SQL the ClickHouse plugin sends for the range FROM…TO at a one-hour interval."""
    start, end = int(FROM.timestamp()), int(TO.timestamp())
    start_ms, end_ms = ms(FROM), ms(TO)
    macros = [
        (
            r"\$__timeFilter_ms\((\w+)\)",
            rf"\1 >= fromUnixTimestamp64Milli({start_ms}) AND "
            rf"\1 <= fromUnixTimestamp64Milli({end_ms})",
        ),
        (r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime({start}) AND \1 <= toDateTime({end})"),
        (
            r"\$__timeInterval\((\w+)\)",
            rf"toStartOfInterval(toDateTime(\1), INTERVAL {INTERVAL_S} second)",
        ),
        (r"\$__fromTime_ms\b", f"fromUnixTimestamp64Milli({start_ms})"),
        (r"\$__toTime_ms\b", f"fromUnixTimestamp64Milli({end_ms})"),
        (r"\$__fromTime\b", f"toDateTime({start})"),
        (r"\$__toTime\b", f"toDateTime({end})"),
        (r"\$__interval_s\b", str(INTERVAL_S)),
    ]
    for pattern, replacement in macros:
        sql = re.sub(pattern, replacement, sql)
    assert "$" not in sql, f"a macro this test does not know: {sql}"
    return sql


PROBS = {
    "bad": {"negative": 0.9, "neutral": 0.05, "positive": 0.05},
    "good": {"negative": 0.05, "neutral": 0.05, "positive": 0.9},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The store's schema (database ``reviewpulse``, as the data source's default), with
    15 reviews of three products in two categories over two hours and three alert events."""
    s = open_store(StoreSettings(path=tmp_path_factory.mktemp("dash") / "chdb"))
    assert s.db == "reviewpulse"
    events = []
    for i in range(15):
        product, category = [("p1", "Dresses"), ("p2", "Dresses"), ("p3", "Tops")][i % 3]
        events.append(
            review_event(
                f"e{i}",
                product,
                ts=day_at(10 + i % 2, i),
                processed_at=day_at(12),
                probs=PROBS["bad" if product == "p1" else "good"],
                category=category,
                rating=1 + i % 5,
            )
        )
    s.write(events)
    firing = replace(FIRING, window_start_ms=ms(day_at(10)), window_end_ms=ms(day_at(11)))
    resolved = replace(firing, status="resolved", window_end_ms=ms(day_at(13)))
    other = replace(firing, alert_id="a2", product_id="p2", severity="warning")
    AlertStore(s.backend, s.db).write([], [firing, resolved, other])
    s.backend.command(f"USE {s.db}")  # panels name tables as the data source's default db
    yield s
    s.close()


@pytest.mark.parametrize("target", SQL)
def test_every_dashboard_sql_query_runs_on_the_store_schema(
    store: Store, target: dict[str, Any]
) -> None:
    rows = store.backend.query(concrete(target["rawSql"]))
    assert rows, "no rows: the data inserted above should show in every panel"


def test_the_sql_panels_count_what_was_stored(store: Store) -> None:
    by_title = {
        p.id.split("/")[1]: p.values[0]["rawSql"] for p in SQL if p.id.startswith("product-")
    }
    series = store.backend.query(concrete(by_title["Reviews and negative share"]))
    assert sum(int(r["reviews"]) for r in series) == 15
    top = store.backend.query(
        concrete(by_title["Most negative products (at least 5 reviews in the range)"])
    )
    assert [(r["product_id"], r["negative_share"]) for r in top] == [
        ("p1", 1.0),
        ("p2", 0.0),
        ("p3", 0.0),
    ]
    categories = store.backend.query(concrete(by_title["Categories"]))
    assert [(r["category"], int(r["reviews"])) for r in categories] == [
        ("Dresses", 10),
        ("Tops", 5),
    ]
    firing = store.backend.query(concrete(by_title["Alerts firing at the end of the range"]))
    assert [int(r["firing"]) for r in firing] == [1]  # a2 fires; a1 fired, then resolved


def test_a_typo_in_a_column_fails(store: Store) -> None:
    """The checks above can fail: chdb refuses a column the schema does not have."""
    (target,) = SQL[0].values
    with pytest.raises(StoreError, match="n_negatve"):
        store.backend.query(concrete(target["rawSql"].replace("n_negative", "n_negatve")))


# --- PromQL ----------------------------------------------------------------------------

SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "info": ("_info",),
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right"}


def exported() -> set[str]:
    """The sample names the worker's /metrics carries."""
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in SUFFIXES[family.type]
    }


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression (not functions, labels, keywords or ranges)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range and subquery durations
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = re.findall(r"(?<![\w$.])([A-Za-z_:][\w:]*)\b(?!\s*\()", expr)
    return {n for n in names if n not in KEYWORDS}


def test_metric_names_are_extracted_from_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, kind) (rate(a_bucket{kind="review"}[5m])))'
        " / on (kind) group_left b_total offset 1h and c"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}
    assert "reviewpulse_events_consumed_total" in exported()
    assert {"reviewpulse_batch_size_bucket", "reviewpulse_model_info"} <= exported()
    assert "reviewpulse_consumer_lag" in exported()


@pytest.mark.parametrize("target", PROMQL)
def test_every_promql_expression_names_only_exported_metrics(target: dict[str, Any]) -> None:
    names = metric_names(target["expr"])
    assert names, target["expr"]
    assert names <= exported(), f"not exported by the worker: {names - exported()}"
