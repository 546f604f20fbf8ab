"""The committed question package: intact, bound to the default encoder, and right on
a few unambiguous questions in both languages (runs the real int8 encoder)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from models.errors import ModelIntegrityError
from models.package import load_package
from models.questions import OTHER, QuestionPackage, check_encoder, load_question_package
from models.runtime import create_session
from models.scorer import Scorer, load_tokenizer
from streams.settings import DEFAULT_MODEL

QUESTIONS = Path(__file__).resolve().parents[2] / "models" / "packages" / "questions-zh-en"
MAX_PACKAGE_BYTES = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def package() -> QuestionPackage:
    return load_question_package(QUESTIONS)  # every file's sha256 checked here


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    encoder = load_package(DEFAULT_MODEL)
    return Scorer(encoder, create_session(encoder.model_path), load_tokenizer(encoder))


def test_package_is_small_and_bound_to_the_default_encoder(
    package: QuestionPackage, scorer: Scorer
) -> None:
    size = sum(p.stat().st_size for p in QUESTIONS.iterdir())
    assert size <= MAX_PACKAGE_BYTES
    check_encoder(package, scorer.package)
    assert len(package.model.head.labels) == 28 and OTHER in package.model.head.labels
    other = replace(scorer.package, manifest={"sha256": {"model.onnx": "0" * 64}})
    with pytest.raises(ModelIntegrityError):
        check_encoder(package, other)


def test_recorded_test_metrics_meet_the_targets(package: QuestionPackage) -> None:
    metrics = json.loads((QUESTIONS / "metrics.json").read_text(encoding="utf-8"))
    intent = metrics["comparison"][package.encoder.name]["test"]["intent"]
    assert intent["en"]["accuracy"] >= 0.97
    assert intent["zh"]["accuracy"] >= 0.85
    assert intent["zh"]["n"] >= 200


def test_unambiguous_questions_in_both_languages(package: QuestionPackage, scorer: Scorer) -> None:
    cases = {
        ("I want to cancel my order", "en"): "cancel_order",
        ("where is my package? I need the tracking", "en"): "track_order",
        ("I forgot my password and can't log in", "en"): "recover_password",
        ("is this jacket waterproof?", "en"): OTHER,
        ("我要申请退款", "zh"): "get_refund",
        ("我忘记密码了，怎么重置？", "zh"): "recover_password",
        ("支持微信支付吗？", "zh"): "check_payment_methods",
        ("这件外套是纯棉的吗", "zh"): OTHER,
    }
    texts = [text for text, _ in cases]
    langs = [lang for _, lang in cases]
    emb = scorer.score(texts, prefix=package.encoder.query_prefix).embeddings
    results = package.model.predict(emb, langs)
    assert [r.intent.label for r in results] == list(cases.values())
    for r, lang in zip(results, langs, strict=True):
        if r.intent.label == OTHER:
            assert r.needs_human
        else:
            assert r.answer is not None and r.answer.language == lang
