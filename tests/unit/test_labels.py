"""One label contract: the store's DDL and the model packages must follow SENTIMENT_LABELS."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from models.package import ModelPackage
from streams.errors import ModelLabelsError, ModelPackageError
from streams.events.enriched import QUESTION_SCHEMA, REVIEW_SCHEMA
from streams.events.sentiment import SENTIMENT_LABELS, count_column, prob_column
from streams.service.pipeline import BatchProcessor
from streams.settings import StoreSettings
from streams.store import open_store
from streams.store.rollup import ROLLUP_TARGETS
from streams.store.shadow import SHADOW_SCHEMA
from streams.store.windows import MEASURES

AGGREGATES = [target[0] for target in ROLLUP_TARGETS]


def test_the_migrated_tables_have_one_column_per_label(tmp_path: Path) -> None:
    """The SQL files spell the columns out; here they meet the declaration and the Arrow schemas."""
    store = open_store(StoreSettings(path=tmp_path / "chdb", database="rp_labels"))
    try:
        rows = store.backend.query(
            "SELECT table, name FROM system.columns WHERE database = {db:String} "
            "ORDER BY table, position",
            {"db": store.db},
        )
    finally:
        store.close()
    columns: dict[str, list[str]] = {}
    for row in rows:
        columns.setdefault(row["table"], []).append(row["name"])
    probs = [prob_column(label) for label in SENTIMENT_LABELS]
    counts = [count_column(label) for label in SENTIMENT_LABELS]
    assert [c for c in columns["reviews"] if c.startswith("p_")] == probs
    assert columns["reviews"] == [*REVIEW_SCHEMA.names, "content_hash", "version"]
    assert columns["questions"] == [*QUESTION_SCHEMA.names, "content_hash", "version"]
    assert columns["shadow_scores"] == [*SHADOW_SCHEMA.names, "content_hash", "version"]
    for table in AGGREGATES:
        assert [c for c in columns[table] if c.startswith("n_")] == counts, table
        assert set(MEASURES) <= set(columns[table]), table


def model_with_labels(package: ModelPackage, labels: tuple[str, ...]) -> Any:
    return SimpleNamespace(package=replace(package, labels=labels))


@pytest.mark.parametrize(
    "labels",
    [
        ("positive", "neutral", "negative"),  # the right names in another order
        ("negative", "positive"),
        ("neg", "neu", "pos"),
        (),  # an embedding package
    ],
)
def test_a_review_model_with_other_labels_is_refused(
    tiny_package: ModelPackage, labels: tuple[str, ...]
) -> None:
    with pytest.raises(ModelLabelsError) as err:
        BatchProcessor("review", model_with_labels(tiny_package, labels))
    assert isinstance(err.value, ModelPackageError)
    assert f"declares labels {list(labels)}" in str(err.value)
    assert f"expects {list(SENTIMENT_LABELS)}" in str(err.value)


def test_the_contract_labels_are_accepted(tiny_package: ModelPackage) -> None:
    assert tiny_package.labels == SENTIMENT_LABELS
    BatchProcessor("review", model_with_labels(tiny_package, SENTIMENT_LABELS))
