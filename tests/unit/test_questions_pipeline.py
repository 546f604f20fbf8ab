"""Questions in the stream: intent and FAQ answer from the committed packages, end to end
through one micro-batch, the JSON Schema, the Arrow batch and the store.

The real default sentiment package (whose encoder the question head was trained on)
and the real question package load in a few seconds; no torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from models.errors import ModelIntegrityError, ModelPackageError
from models.package import ModelPackage
from models.questions import QuestionPackage
from models.scorer import Scorer, Scores
from streams.events.contract import Source
from streams.events.enriched import EnrichedQuestion, ModelRef, questions_table
from streams.service.app import load_questions
from streams.service.pipeline import BatchProcessor, RawRecord
from streams.settings import (
    DEFAULT_QUESTION_MODEL,
    ModelSettings,
    QuestionSettings,
    Settings,
    StoreSettings,
)
from streams.store import Store, open_store
from streams.tools.score import score_lines
from streams.web.api import product_questions_reply
from tests.clock import day_at
from tests.schemas import validate

NOW = int(day_at(10).timestamp() * 1000)  # within the store's retention, on any date

# Unambiguous questions, both languages: (text, intent, answered).
CLEAR = [
    ("How do I cancel my order?", "cancel_order", True),
    ("我想取消订单", "cancel_order", True),
    ("I forgot my password", "recover_password", True),
    ("我要退款", "get_refund", True),
    ("Is this jacket waterproof?", "other", False),
    ("这件衣服是纯棉的吗？", "other", False),
]


def record(offset: int, value: bytes) -> RawRecord:
    return RawRecord(value, Source("questions", 0, offset, NOW))


def question(i: int, text: str) -> bytes:
    return orjson.dumps({"event_id": f"q{i}", "product_id": f"p{i % 2}", "text": text})


def process(processor: BatchProcessor, texts: Sequence[str]) -> list[EnrichedQuestion]:
    result = processor.process([record(i, question(i, t)) for i, t in enumerate(texts)])
    assert result.dead_letters == []
    events = [e for e in result.enriched if isinstance(e, EnrichedQuestion)]
    assert len(events) == len(texts)
    return events


def test_clear_questions_get_their_intent_and_answer(
    scorer: Scorer, questions: QuestionPackage
) -> None:
    processor = BatchProcessor("question", scorer, clock=lambda: NOW, questions=questions)
    events = process(processor, [text for text, _, _ in CLEAR])
    for event, (text, intent, answered) in zip(events, CLEAR, strict=True):
        data = orjson.loads(event.to_json())
        validate("question.enriched", data)
        assert data["text"] == text
        assert data["intent"]["label"] == intent, text
        assert len(data["intent"]["top"]) == 3
        assert data["model"] == {"name": "questions-zh-en", "version": questions.version}
        assert event.model == ModelRef(questions.name, questions.version)
        assert event.model != processor.model  # the question package, not the review model
        if answered:
            assert data["needs_human"] is False
            assert data["answer"]["faq_id"].endswith(intent), text
            assert set(data["answer"]) == {"faq_id", "text", "score"}
        else:
            assert data["needs_human"] is True and "answer" not in data, text
    assert processor.stats.processed["question"] == len(CLEAR)


def test_one_encoder_pass_per_batch_with_the_query_prefix(
    scorer: Scorer, questions: QuestionPackage
) -> None:
    calls: list[tuple[int, str | None]] = []

    class Counting:
        package = scorer.package

        def score(self, texts: Sequence[str], prefix: str | None = None) -> Scores:
            calls.append((len(texts), prefix))
            return scorer.score(texts, prefix=prefix)

    counting: Any = Counting()
    processor = BatchProcessor("question", counting, clock=lambda: NOW, questions=questions)
    process(processor, [text for text, _, _ in CLEAR])
    assert calls == [(len(CLEAR), questions.encoder.query_prefix)]


class FailingOn:
    """The real scorer, except that a batch holding ``poison`` fails."""

    def __init__(self, scorer: Scorer, poison: str) -> None:
        self.scorer = scorer
        self.package = scorer.package
        self.poison = poison

    def score(self, texts: Sequence[str], prefix: str | None = None) -> Scores:
        if self.poison in texts:
            raise RuntimeError("onnxruntime: simulated kernel failure")
        return self.scorer.score(texts, prefix=prefix)


def test_a_poison_question_is_isolated(scorer: Scorer, questions: QuestionPackage) -> None:
    failing: Any = FailingOn(scorer, "poison?")
    processor = BatchProcessor("question", failing, clock=lambda: NOW, questions=questions)
    texts = [text for text, _, _ in CLEAR]
    texts.insert(3, "poison?")
    batch = [record(i, question(i, t)) for i, t in enumerate(texts)]
    batch.insert(1, record(99, b"\xff\xfe"))
    result = processor.process(batch)
    assert [d.source.offset for d in result.dead_letters] == [99, 3]
    assert [d.reason for d in result.dead_letters] == ["invalid_utf8", "processing_error"]
    assert "simulated kernel failure" in result.dead_letters[1].detail
    labels = [orjson.loads(e.to_json())["intent"]["label"] for e in result.enriched]
    assert labels == [intent for _, intent, _ in CLEAR]
    assert [r.source.offset for r in result.enriched_from] == [0, 1, 2, 4, 5, 6]
    assert processor.stats.processed["question"] == len(CLEAR)
    assert processor.stats.dead_letters == {"invalid_utf8": 1, "processing_error": 1}


def test_a_head_failure_is_isolated_too(scorer: Scorer, questions: QuestionPackage) -> None:
    """A failure past the encoder (in the head or the KB search) splits the batch as well."""
    real = questions.model

    class FailingHead:
        def predict(self, embeddings: Any, languages: Any = None) -> Any:
            if len(embeddings) > 1:
                raise FloatingPointError("simulated head failure")
            return real.predict(embeddings, languages)

    failing = replace(questions, model=cast(Any, FailingHead()))
    processor = BatchProcessor("question", scorer, clock=lambda: NOW, questions=failing)
    texts = ["How do I cancel my order?", "我要退款"]
    result = processor.process([record(i, question(i, t)) for i, t in enumerate(texts)])
    assert result.dead_letters == []  # each one alone goes through
    labels = [orjson.loads(e.to_json())["intent"]["label"] for e in result.enriched]
    assert labels == ["cancel_order", "get_refund"]


def test_a_package_built_on_another_encoder_is_refused(
    tiny_scorer: Scorer, tiny_package: ModelPackage, questions: QuestionPackage
) -> None:
    with pytest.raises(ModelIntegrityError, match="built for encoder sentiment-zh-en"):
        BatchProcessor("question", tiny_scorer, questions=questions)
    settings = Settings(model=ModelSettings(package=tiny_package.root))
    with pytest.raises(ModelIntegrityError, match="REVIEWPULSE_QUESTIONS__ENABLED=false"):
        load_questions(settings, tiny_scorer)


def test_the_question_settings(scorer: Scorer, tmp_path: Path) -> None:
    assert Settings().questions == QuestionSettings(enabled=True, package=DEFAULT_QUESTION_MODEL)
    package = load_questions(Settings(), scorer)
    assert package is not None and package.name == "questions-zh-en"
    assert load_questions(Settings(questions=QuestionSettings(enabled=False)), scorer) is None
    missing = Settings(questions=QuestionSettings(package=tmp_path))
    with pytest.raises(ModelPackageError, match="REVIEWPULSE_QUESTIONS__PACKAGE"):
        load_questions(missing, scorer)


def test_without_the_question_model_questions_pass_through(scorer: Scorer) -> None:
    processor = BatchProcessor("question", scorer, clock=lambda: NOW)
    (event,) = process(processor, ["How do I cancel my order?"])
    data = orjson.loads(event.to_json())
    validate("question.enriched", data)
    assert "intent" not in data and "model" not in data and "needs_human" not in data
    row = questions_table([event]).to_pylist()[0]
    assert (row["intent"], row["needs_human"], row["model_name"]) == ("", 0, "")


def test_score_command_prints_the_enriched_question(
    scorer: Scorer, questions: QuestionPackage
) -> None:
    processor = BatchProcessor("question", scorer, questions=questions)
    lines = [b'{"text": "How do I cancel my order?"}', b"not json", b'{"text": "Is it red?"}']
    out = [orjson.loads(line) for line in score_lines(lines, processor)]
    assert out[0]["intent"]["label"] == "cancel_order" and out[0]["needs_human"] is False
    assert out[0]["model"]["name"] == "questions-zh-en"
    assert out[1]["error"]["reason"] == "invalid_json"
    assert "intent" in out[2] and out[2]["model"]["name"] == "questions-zh-en"


@pytest.fixture
def store(store_settings: StoreSettings) -> Iterator[Store]:
    s = open_store(store_settings)
    yield s
    s.close()


def test_the_store_keeps_intent_and_answer(
    store: Store, scorer: Scorer, questions: QuestionPackage
) -> None:
    processor = BatchProcessor("question", scorer, clock=lambda: NOW, questions=questions)
    events = process(processor, [text for text, _, _ in CLEAR])
    store.write(events)
    store.write(events)  # re-delivered: still one row per event
    assert store.count("questions") == len(CLEAR)
    rows = store.backend.query(
        f"SELECT event_id, intent, intent_score, faq_id, answer_score, needs_human, "
        f"model_name, model_version FROM {store.db}.questions FINAL ORDER BY event_id"
    )
    for row, event in zip(rows, events, strict=True):
        result = event.result
        assert result is not None and row["event_id"] == event.input.event_id
        assert row["intent"] == result.intent.label
        assert abs(float(row["intent_score"]) - result.intent.score) < 1e-6
        assert int(row["needs_human"]) == int(result.needs_human)
        if result.answer is None:
            assert (row["faq_id"], float(row["answer_score"])) == ("", 0.0)
        else:
            assert row["faq_id"] == result.answer.faq_id
            assert abs(float(row["answer_score"]) - result.answer.score) < 1e-6
        assert (row["model_name"], row["model_version"]) == (questions.name, questions.version)


def test_a_products_question_view_counts_each_question_once(
    store: Store, scorer: Scorer, questions: QuestionPackage
) -> None:
    processor = BatchProcessor("question", scorer, clock=lambda: NOW, questions=questions)
    events = process(processor, [text for text, _, _ in CLEAR])
    store.write(events)
    store.write(events[:2])  # re-delivered
    view = store.product_questions("p0", "24h", now=day_at(12))
    assert view["questions"] == 3
    assert view["intents"] == {"cancel_order": 1, "other": 1, "recover_password": 1}
    assert view["unanswered_share"] == pytest.approx(1 / 3)
    later = store.product_questions("p0", "24h", now=day_at(40))
    assert (later["questions"], later["intents"], later["unanswered_share"]) == (0, {}, None)
    assert product_questions_reply(store, "p0", {"window": "2y"})[0] == 400
    assert product_questions_reply(store, "p9", {"window": "24h"})[1]["questions"] == 0
