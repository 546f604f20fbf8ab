"""The question runtime (models.questions) with a tiny hand-made head and KB: no model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.errors import ModelIntegrityError, ModelPackageError
from models.package import MANIFEST, MANIFEST_DIGEST, manifest_digest, sha256_file
from models.questions import (
    OTHER,
    TASK,
    FaqEntry,
    FaqIndex,
    IntentHead,
    QuestionModel,
    load_question_package,
)

LABELS = ("cancel_order", "track_order", OTHER)
# 3-dim embeddings; axis i points at label i
WEIGHTS = np.eye(3, dtype=np.float32) * 10.0
BIAS = np.zeros(3, dtype=np.float32)


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def tiny_head(other_threshold: float = 0.0) -> IntentHead:
    return IntentHead(WEIGHTS, BIAS, LABELS, other_threshold=other_threshold)


def tiny_faq() -> FaqIndex:
    entries = [
        FaqEntry("en-cancel", "en", "Cancel it in My Orders.", ("cancel?",), "cancel_order"),
        FaqEntry("en-track", "en", "Track it in My Orders.", ("where?",), "track_order"),
        FaqEntry("zh-cancel", "zh", "在我的订单中取消。", ("取消？", "退订单"), "cancel_order"),
    ]
    vectors = np.stack([unit(1, 0, 0), unit(0, 1, 0), unit(1, 0.2, 0), unit(1, 0, 0.1)])
    return FaqIndex(entries, vectors, np.array([0, 1, 2, 2]))


def test_head_picks_the_label_with_top_three_in_order() -> None:
    [intent] = tiny_head().classify(unit(0, 1, 0.1)[None])
    assert intent.label == "track_order"
    assert [label for label, _ in intent.top] == ["track_order", OTHER, "cancel_order"]
    assert intent.score == pytest.approx(intent.top[0][1])
    assert sum(p for _, p in intent.top) == pytest.approx(1.0, abs=1e-5)


def test_a_weak_in_scope_label_becomes_other_below_the_threshold() -> None:
    x = unit(1, 0.9, 0)[None]  # cancel_order barely ahead of track_order
    assert tiny_head().classify(x)[0].label == "cancel_order"
    intent = tiny_head(other_threshold=0.9).classify(x)[0]
    assert intent.label == OTHER
    assert intent.score == pytest.approx(1.0 - intent.top[0][1])


def test_an_entry_scores_its_best_question_and_language_restricts_the_search() -> None:
    faq = tiny_faq()
    scores = faq.entry_scores(unit(1, 0, 0.1)[None])
    assert scores.shape == (1, 3)
    assert scores[0, 2] == pytest.approx(1.0, abs=1e-6)  # zh-cancel's second question
    assert list(faq.language_mask("en")) == [True, True, False]
    assert list(faq.language_mask("fr")) == [True, True, True]  # no fr entries: search all


def test_predict_answers_above_the_threshold_and_otherwise_needs_a_human() -> None:
    model = QuestionModel(tiny_head(), tiny_faq(), answer_threshold=0.95)
    x = np.stack([unit(1, 0, 0), unit(1, 1, 0.3)])
    first, second = model.predict(x, ["en", "en"])
    assert first.answer is not None and first.answer.faq_id == "en-cancel"
    assert not first.needs_human
    assert second.needs_human  # best cosine ~0.69 < 0.95
    record = second.to_dict()
    assert record["answer"] is None and record["needs_human"] is True
    assert len(record["intent"]["top"]) == 3


def test_gate_not_other_sends_out_of_scope_questions_to_a_human() -> None:
    x = unit(0.3, 0, 1)[None]  # intent: other; nearest entry: cancel
    assert (
        QuestionModel(tiny_head(), tiny_faq(), answer_threshold=0.0, answer_gate="none")
        .predict(x)[0]
        .answer
        is not None
    )
    gated = QuestionModel(tiny_head(), tiny_faq(), answer_threshold=0.0, answer_gate="not_other")
    [result] = gated.predict(x)
    assert result.intent.label == OTHER and result.needs_human


def test_gate_agree_needs_the_entry_intent_to_match() -> None:
    model = QuestionModel(tiny_head(), tiny_faq(), answer_threshold=0.0, answer_gate="agree")
    [result] = model.predict(unit(1, 0, 0)[None], ["zh"])
    assert result.answer is not None and result.answer.faq_id == "zh-cancel"


def test_intent_weight_blends_the_head_probability_into_entry_scores() -> None:
    faq = tiny_faq()
    x = unit(0.6, 1, 0)[None]  # track_order by the head
    plain = QuestionModel(tiny_head(), faq, answer_threshold=0.0).entry_scores(x)
    blended = QuestionModel(tiny_head(), faq, answer_threshold=0.0, intent_weight=0.5)
    probs = tiny_head().probs(x)
    expected = 0.5 * plain[0, 1] + 0.5 * probs[0, 1]
    assert blended.entry_scores(x)[0, 1] == pytest.approx(expected, abs=1e-6)


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="shape"):
        tiny_head().classify(np.zeros((2, 4), np.float32))
    with pytest.raises(ModelPackageError, match="non-decreasing"):
        FaqIndex(tiny_faq().entries, np.zeros((3, 3), np.float32), np.array([1, 0, 2]))
    with pytest.raises(ValueError, match="one entry per"):
        QuestionModel(tiny_head(), tiny_faq(), answer_threshold=0.5).predict(
            unit(1, 0, 0)[None], ["en", "zh"]
        )


def write_tiny_package(root: Path) -> Path:
    """A question package in the committed format, written by hand."""
    root.mkdir()
    faq = tiny_faq()
    np.savez(root / "head.npz", weights=WEIGHTS, bias=BIAS)
    np.savez(root / "kb.npz", vectors=faq.vectors, owner=faq.owner)
    entries = [
        {
            "id": e.id,
            "language": e.language,
            "intent": e.intent,
            "questions": list(e.questions),
            "answer": e.answer,
        }
        for e in faq.entries
    ]
    (root / "kb.json").write_text(json.dumps({"format": 1, "entries": entries}), "utf-8")
    manifest = {
        "format": 1,
        "name": "questions-tiny",
        "version": "0",
        "task": TASK,
        "labels": list(LABELS),
        "thresholds": {"other": 0.0, "answer": 0.9},
        "answer_gate": "not_other",
        "intent_weight": 0.0,
        "encoder": {"name": "tiny", "model_sha256": "0" * 64, "query_prefix": "query: "},
    }
    manifest["sha256"] = {n: sha256_file(root / n) for n in ("head.npz", "kb.npz", "kb.json")}
    manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
    (root / MANIFEST).write_text(json.dumps(manifest), "utf-8")
    return root


def test_a_package_round_trips_and_classifies(tmp_path: Path) -> None:
    package = load_question_package(write_tiny_package(tmp_path / "q"))
    assert package.encoder.query_prefix == "query: "
    [result] = package.model.predict(unit(0, 1, 0)[None], ["en"])
    assert result.intent.label == "track_order"
    assert result.answer is not None and result.answer.faq_id == "en-track"


def test_a_modified_file_or_manifest_is_refused(tmp_path: Path) -> None:
    root = write_tiny_package(tmp_path / "q")
    with (root / "kb.json").open("a", encoding="utf-8") as fh:
        fh.write(" ")
    with pytest.raises(ModelIntegrityError, match=r"kb\.json"):
        load_question_package(root)
    root2 = write_tiny_package(tmp_path / "q2")
    manifest = json.loads((root2 / MANIFEST).read_text("utf-8"))
    manifest["thresholds"]["answer"] = 0.1
    (root2 / MANIFEST).write_text(json.dumps(manifest), "utf-8")
    with pytest.raises(ModelIntegrityError, match=MANIFEST_DIGEST):
        load_question_package(root2)
