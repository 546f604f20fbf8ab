"""The FAQ knowledge base from a file: parsed and checked, embedded, and hot-reloaded.

The real review model (the question head's encoder) and the real question package; the
knowledge-base files are small ones written by each test. The reload is driven through
``KnowledgeBase.check`` (what the worker's timer runs), never by waiting on the timer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from models.errors import ModelPackageError
from models.knowledge import PASSAGE_PREFIX, kb_vectors, parse_kb, read_kb
from models.questions import KB_FILE, FaqEntry, QuestionPackage, read_entries
from models.scorer import Scorer, Scores
from streams.events.contract import Source
from streams.service.app import load_knowledge_base
from streams.service.knowledge import KnowledgeBase
from streams.service.metrics import Metrics
from streams.service.pipeline import BatchProcessor, RawRecord
from streams.settings import DEFAULT_QUESTION_MODEL, QuestionSettings, Settings
from tests.clock import day_at
from tests.faq import CANCEL, kb_yaml

NOW = int(day_at(10).timestamp() * 1000)
PROJECT_KB = Path(__file__).resolve().parents[2] / "export" / "questions" / "data" / "kb_zh.yaml"


class Counting:
    """The real scorer, counting the texts it embeds."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.package = scorer.package
        self.texts = 0

    def score(self, texts: Sequence[str], prefix: str | None = None) -> Scores:
        self.texts += len(texts)
        return self.scorer.score(texts, prefix=prefix)


def answer_ids(processor: BatchProcessor, texts: Sequence[str]) -> list[str | None]:
    batch = [
        RawRecord(
            orjson.dumps({"event_id": f"q{i}", "product_id": "p1", "text": t}),
            Source("questions", 0, i, NOW),
        )
        for i, t in enumerate(texts)
    ]
    result = processor.process(batch)
    assert result.dead_letters == []
    out = []
    for event in result.enriched:
        answer = orjson.loads(event.to_json()).get("answer")
        out.append(answer["faq_id"] if answer else None)
    return out


# --- the file format -----------------------------------------------------------------


def test_a_yaml_file_and_the_packages_kb_json_read_as_entries() -> None:
    entries = parse_kb(kb_yaml("cancel").encode(), Path("faq.yaml"))
    assert [(e.id, e.language, e.intent) for e in entries] == [
        ("cancel", "en", "cancel_order"),
        ("refund", "en", "get_refund"),
        ("zh-refund", "zh", "get_refund"),
    ]
    assert entries[0].questions == ("How can I cancel an order?", "I want to cancel my purchase")
    package_kb = DEFAULT_QUESTION_MODEL / KB_FILE
    assert read_kb(package_kb) == read_entries(package_kb)
    project = read_kb(PROJECT_KB)
    assert len(project) > 20 and {e.language for e in project} == {"zh"}


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("kb.yaml", "format: 1\nentries: [", r"kb\.yaml: not a readable KB file"),
        ("kb.json", '{"format": 1, "entries": [}', r"kb\.json: not a readable KB file"),
        ("kb.yaml", "- just a list\n", r"kb\.yaml: expected a mapping with 'format: 1'"),
        ("kb.yaml", "format: 2\nentries: []\n", r"expected a mapping with 'format: 1'"),
        ("kb.yaml", "format: 1\nentries: []\n", r"kb\.yaml: the knowledge base has no entries"),
        ("kb.yaml", "format: 1\nentrys: []\n", r"unknown keys \['entrys'\]"),
        (
            "kb.yaml",
            "format: 1\nlanguage: en\nentries:\n"
            "  - {id: a, questions: [q], answer: x}\n  - {id: a, questions: [r], answer: y}\n",
            r"kb\.yaml: entry 2 \('a'\): duplicate id 'a'",
        ),
        (
            "kb.yaml",
            "format: 1\nentries:\n  - {id: a, language: English, questions: [q], answer: x}\n",
            r"entry 1 \('a'\): language 'English' is not a language code",
        ),
        (
            "kb.yaml",
            "format: 1\nentries:\n  - {id: a, questions: [q], answer: x}\n",
            r"entry 1 \('a'\): has no language",
        ),
        (
            "kb.yaml",
            "format: 1\nlanguage: en\nentries:\n  - {id: a, questions: [], answer: x}\n",
            r"entry 1 \('a'\): needs 'questions'",
        ),
        (
            "kb.yaml",
            "format: 1\nlanguage: en\nentries:\n  - {id: a, questions: [q, ' '], answer: x}\n",
            r"entry 1 \('a'\): question 2 is empty",
        ),
        (
            "kb.yaml",
            "format: 1\nlanguage: en\nentries:\n  - {id: a, questions: [q]}\n",
            r"entry 1 \('a'\): answer must be text, got NoneType",
        ),
        (
            "kb.yaml",
            "format: 1\nlanguage: en\nentries:\n  - {id: a, question: [q], answer: x}\n",
            r"entry 1 \('a'\): unknown keys \['question'\]",
        ),
        (
            "kb.yaml",
            "format: 1\nlanguage: en\nentries:\n  - {questions: [q], answer: x}\n",
            r"entry 1: id must be text",
        ),
    ],
)
def test_a_kb_file_it_cannot_use_is_refused_naming_the_file_and_entry(
    tmp_path: Path, name: str, content: str, reason: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ModelPackageError, match=reason) as info:
        read_kb(path)
    assert str(info.value).startswith(str(path))


def test_a_missing_file_is_refused() -> None:
    with pytest.raises(ModelPackageError, match="cannot read the knowledge base"):
        read_kb(Path("/nonexistent/faq.yaml"))


def test_each_kb_side_embeds_its_texts_with_its_prefix() -> None:
    entries = [
        FaqEntry("a", "en", "answer a", ("a1", "a2")),
        FaqEntry("b", "en", "answer b", ("b1",)),
    ]
    seen: list[tuple[tuple[str, ...], str | None]] = []

    class Fake:
        def score(self, texts: Sequence[str], prefix: str | None = None) -> Scores:
            seen.append((tuple(texts), prefix))
            return Scores((), None, np.eye(len(texts), 4, dtype=np.float32))

    fake: Any = Fake()
    _, owner = kb_vectors(entries, fake, "questions_query", "query: ")
    assert seen == [(("a1", "a2", "b1"), "query: ")] and owner.tolist() == [0, 0, 1]
    seen.clear()
    _, owner = kb_vectors(entries, fake, "answers_passage", "query: ")
    assert seen == [(("answer a", "answer b"), PASSAGE_PREFIX)] and owner.tolist() == [0, 1]
    seen.clear()
    vectors, owner = kb_vectors(entries, fake, "questions_query+answers_passage", "query: ")
    assert [prefix for _, prefix in seen] == ["query: ", PASSAGE_PREFIX]
    assert owner.tolist() == [0, 0, 0, 1, 1]  # each entry's question rows, then its answer
    assert vectors[2].tolist() == np.eye(2, 4)[0].tolist()  # entry a's answer row
    with pytest.raises(ModelPackageError, match="unknown kb_side 'both'"):
        kb_vectors(entries, fake, "both", "query: ")


# --- loading and reloading -----------------------------------------------------------


def test_the_file_replaces_the_packages_kb_and_a_change_swaps_it(
    tmp_path: Path, scorer: Scorer, questions: QuestionPackage
) -> None:
    path = tmp_path / "faq.yaml"
    path.write_text(kb_yaml("old-cancel"), encoding="utf-8")
    metrics = Metrics()
    kb = KnowledgeBase(path, questions, scorer, metrics)
    assert kb.live.entries == 3 and kb.package.model.head is questions.model.head
    processor = BatchProcessor("question", scorer, clock=lambda: NOW, questions=kb.package)
    assert answer_ids(processor, [CANCEL, "我要退款"]) == ["old-cancel", "zh-refund"]
    assert kb.check() is None  # nothing changed

    path.write_text(kb_yaml("new-cancel"), encoding="utf-8")
    package = kb.check()
    assert package is not None and kb.package is package
    processor.use_questions(package)
    assert answer_ids(processor, [CANCEL]) == ["new-cancel"]
    live = metrics.registry.get_sample_value(
        "reviewpulse_knowledge_base_info",
        {"path": str(path), "sha256": kb.live.sha256, "entries": "3"},
    )
    assert live == 1.0


def test_a_broken_file_keeps_the_old_kb_logs_why_and_is_not_retried(
    tmp_path: Path, scorer: Scorer, questions: QuestionPackage, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "faq.yaml"
    path.write_text(kb_yaml("old-cancel"), encoding="utf-8")
    metrics = Metrics()
    counting: Any = Counting(scorer)
    kb = KnowledgeBase(path, questions, counting, metrics)
    processor = BatchProcessor("question", scorer, clock=lambda: NOW, questions=kb.package)
    old, embedded = kb.live, counting.texts
    refused = "reviewpulse_knowledge_base_refused_total"

    broken = kb_yaml("old-cancel") + "  - id: refund\n    questions: [x]\n    answer: y\n"
    for content, reason in [
        (broken, "entry 4 ('refund'): duplicate id 'refund'"),
        ("format: 1\nentries: [\n", "not a readable KB file"),
        (kb_yaml("old-cancel").replace("get_refund", "refunds"), "intent 'refunds' is not"),
    ]:
        path.write_text(content, encoding="utf-8")
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="streams.service.knowledge"):
            assert kb.check() is None
            assert kb.check() is None  # the same broken content: not tried again
        (record,) = caplog.records
        assert reason in record.getMessage() and str(path) in record.getMessage()
        assert "still answering from" in record.getMessage()
        assert kb.live == old
    assert metrics.registry.get_sample_value(refused) == 3.0
    path.write_text(kb_yaml("old-cancel"), encoding="utf-8")  # back to the live content
    assert kb.check() is None
    path.write_text(broken, encoding="utf-8")  # and broken again: said again
    assert kb.check() is None
    assert metrics.registry.get_sample_value(refused) == 4.0
    assert counting.texts == embedded  # each one was refused before the encoder
    path.unlink()
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="streams.service.knowledge"):
        assert kb.check() is None
        assert kb.check() is None
    (record,) = caplog.records
    assert "cannot read the knowledge base" in record.getMessage()
    assert answer_ids(processor, [CANCEL]) == ["old-cancel"]

    path.write_text(kb_yaml("fixed-cancel"), encoding="utf-8")
    package = kb.check()
    assert package is not None
    processor.use_questions(package)
    assert answer_ids(processor, [CANCEL]) == ["fixed-cancel"]


def test_an_encoder_failure_keeps_the_old_kb_and_is_not_retried(
    tmp_path: Path, scorer: Scorer, questions: QuestionPackage, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "faq.yaml"
    path.write_text(kb_yaml("old-cancel"), encoding="utf-8")

    class DiesLater(Counting):
        def score(self, texts: Sequence[str], prefix: str | None = None) -> Scores:
            if self.texts:
                raise RuntimeError("ort died")
            return super().score(texts, prefix)

    dies: Any = DiesLater(scorer)
    kb = KnowledgeBase(path, questions, dies)
    old = kb.live
    path.write_text(kb_yaml("new-cancel"), encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="streams.service.knowledge"):
        assert kb.check() is None
        assert kb.check() is None
    errors = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(errors) == 1 and "RuntimeError: ort died" in errors[0]
    assert kb.live == old


def test_unchanged_content_is_not_embedded_again(
    tmp_path: Path, scorer: Scorer, questions: QuestionPackage
) -> None:
    path = tmp_path / "faq.yaml"
    path.write_text(kb_yaml("cancel"), encoding="utf-8")
    counting: Any = Counting(scorer)
    kb = KnowledgeBase(path, questions, counting)
    assert counting.texts == 4  # the KB questions, "questions_query"
    path.write_text(kb_yaml("cancel"), encoding="utf-8")  # rewritten, same content
    assert kb.check() is None and counting.texts == 4
    path.write_text(kb_yaml("cancel", answer="Press Cancel in 'My orders'."), encoding="utf-8")
    assert kb.check() is not None and counting.texts == 8


def test_a_batch_answers_from_one_kb_even_when_it_is_swapped_meanwhile(
    tmp_path: Path, scorer: Scorer, questions: QuestionPackage
) -> None:
    """The processor reads the package once per batch: a swap lands between batches."""
    path = tmp_path / "faq.yaml"
    path.write_text(kb_yaml("old-cancel"), encoding="utf-8")
    kb = KnowledgeBase(path, questions, scorer)
    old = kb.package
    path.write_text(kb_yaml("new-cancel"), encoding="utf-8")
    new = kb.check()
    assert new is not None

    class SwapsWhileScoring:
        package = scorer.package

        def score(self, texts: Sequence[str], prefix: str | None = None) -> Scores:
            processor.use_questions(new)
            return scorer.score(texts, prefix=prefix)

    swapping: Any = SwapsWhileScoring()
    processor = BatchProcessor("question", swapping, clock=lambda: NOW, questions=old)
    assert answer_ids(processor, [CANCEL, CANCEL]) == ["old-cancel", "old-cancel"]
    assert processor.questions is new
    assert answer_ids(processor, [CANCEL]) == ["new-cancel"]


def test_another_package_is_not_swapped_in(scorer: Scorer, questions: QuestionPackage) -> None:
    processor = BatchProcessor("question", scorer, questions=questions)
    other = QuestionPackage(
        questions.root, "other", "1", questions.encoder, questions.model, questions.manifest
    )
    with pytest.raises(ValueError, match="knowledge base of the package in use"):
        processor.use_questions(other)


# --- settings and start --------------------------------------------------------------


def test_the_settings_name_the_file_and_a_broken_one_stops_the_start(
    tmp_path: Path,
    scorer: Scorer,
    questions: QuestionPackage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "faq.json"
    monkeypatch.setenv("REVIEWPULSE_QUESTIONS__KNOWLEDGE_BASE", str(path))
    monkeypatch.setenv("REVIEWPULSE_QUESTIONS__RELOAD_S", "2.5")
    settings = Settings()
    assert (settings.questions.knowledge_base, settings.questions.reload_s) == (path, 2.5)
    assert QuestionSettings().knowledge_base is None
    assert load_knowledge_base(Settings(questions=QuestionSettings()), questions, scorer) is None
    assert load_knowledge_base(settings, None, scorer) is None  # questions not scored

    with pytest.raises(ModelPackageError, match="REVIEWPULSE_QUESTIONS__KNOWLEDGE_BASE") as info:
        load_knowledge_base(settings, questions, scorer)
    assert "cannot read the knowledge base" in str(info.value) and str(path) in str(info.value)
    path.write_text(json.dumps({"format": 1, "entries": []}), encoding="utf-8")
    with pytest.raises(ModelPackageError, match="the knowledge base has no entries"):
        load_knowledge_base(settings, questions, scorer)

    entries = json.loads((DEFAULT_QUESTION_MODEL / KB_FILE).read_text(encoding="utf-8"))
    entries["entries"] = [e for e in entries["entries"] if e["language"] == "zh"]
    path.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    kb = load_knowledge_base(settings, questions, scorer)
    assert kb is not None and kb.live.entries == len(entries["entries"])
    assert {e.language for e in kb.package.model.faq.entries} == {"zh"}
