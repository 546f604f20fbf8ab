"""The committed fast (distilled) package: intact, smaller than the default, and a real model.

Its dev metrics come from ``reviewpulse export evaluate`` (``make fast-model``);
here they are held to the release rule (at most 2 points below the default
package's on each binary dev set), and a few unambiguous reviews in both
languages must come out right through the serving runtime.
"""

from __future__ import annotations

import json

import pytest

from models.runtime import open_scorer
from models.scorer import Scorer
from streams.settings import DEFAULT_MODEL
from tests.packages import UNAMBIGUOUS_REVIEWS, labels_of

FAST_MODEL = DEFAULT_MODEL.parent / "sentiment-zh-en-fast"
MAX_ACCURACY_LOSS = 0.02
BINARY_SETS = ("zh_online_shopping_dev", "en_heldout_binary")


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return open_scorer(FAST_MODEL)  # sha256 of the manifest, model and tokenizer checked


def test_package_is_an_int8_student_smaller_than_its_teacher(scorer: Scorer) -> None:
    manifest = scorer.package.manifest
    teacher = json.loads((DEFAULT_MODEL / "manifest.json").read_text(encoding="utf-8"))
    assert scorer.package.labels == tuple(teacher["labels"])
    assert scorer.package.text_prefix == teacher["text_prefix"]
    assert manifest["quantization"]["method"] == "dynamic-int8"
    assert manifest["training"]["kind"] == "distillation"
    assert len(manifest["training"]["kept_layers"]) < 12
    size = scorer.package.model_path.stat().st_size
    # the int8 word-embedding table is most of both files: the student saves its
    # layers (6 of 12, the first kept in float32 for int8 parity: --fp32-layer 0)
    assert size < (DEFAULT_MODEL / "model.onnx").stat().st_size
    assert set(manifest["quantization"].get("fp32_layers", [])) < set(range(6))
    int8 = manifest["parity"]["int8"]
    assert int8["n_texts"] >= 1000
    assert int8["label_agreement"] >= manifest["tolerance"]["int8_label_agreement_min"] >= 0.99
    assert manifest["parity"]["fp32"]["logits_max_abs_diff"] <= manifest["tolerance"]["atol"]


def test_recorded_dev_metrics_are_within_two_points_of_the_default() -> None:
    fast = json.loads((FAST_MODEL / "metrics.json").read_text(encoding="utf-8"))
    default = json.loads((DEFAULT_MODEL / "metrics.json").read_text(encoding="utf-8"))
    assert fast["package"]["name"] == "sentiment-zh-en-fast"
    for name in BINARY_SETS:
        assert fast[name]["n"] == default[name]["n"]
        assert fast[name]["accuracy"] >= default[name]["accuracy"] - MAX_ACCURACY_LOSS, name


def test_unambiguous_reviews_in_both_languages(scorer: Scorer) -> None:
    texts = list(UNAMBIGUOUS_REVIEWS)
    assert labels_of(scorer, texts) == list(UNAMBIGUOUS_REVIEWS.values())
