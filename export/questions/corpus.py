"""Everything the question model is trained and evaluated on, embedded by one encoder."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from export.errors import ExportError
from export.questions.data import OTHER, PROJECT_DATA, Question, all_questions, question_key
from export.questions.encode import EmbeddingCache, open_encoder
from export.questions.kb import KbEntry, chinese_kb, english_kb

FloatArray = npt.NDArray[np.float32]
QUERY = "query: "
PASSAGE = "passage: "


@dataclass(frozen=True)
class KbVectors:
    """One KB with its question and answer embeddings under both prefixes."""

    entries: list[KbEntry]
    owner: npt.NDArray[np.int64]  # row of `questions_*` -> entry index
    questions_query: FloatArray
    questions_passage: FloatArray
    answers_passage: FloatArray


@dataclass(frozen=True)
class Corpus:
    """Questions + KBs with embeddings from one encoder."""

    encoder: str
    encoder_dir: Path
    questions: list[Question]
    vectors: FloatArray  # one row per question, "query: " prefix
    kb_en: KbVectors
    kb_zh: KbVectors
    encoded: int


def _kb_vectors(cache: EmbeddingCache, scorer: object, entries: list[KbEntry]) -> KbVectors:
    from models.scorer import Scorer

    assert isinstance(scorer, Scorer)
    texts = [q for e in entries for q in e.questions]
    owner = np.array([i for i, e in enumerate(entries) for _ in e.questions], dtype=np.int64)
    return KbVectors(
        entries,
        owner,
        cache.embed(scorer, texts, QUERY),
        cache.embed(scorer, texts, PASSAGE),
        cache.embed(scorer, [e.answer for e in entries], PASSAGE),
    )


def with_training_questions(entries: list[KbEntry], questions: list[Question]) -> list[KbEntry]:
    """Entries whose questions are extended by the *train*-split questions of their intent.

    The project's Chinese KB has two questions per entry; its Chinese training questions
    (never dev or test ones) are added as further ways of asking.
    """
    extra: dict[str, list[str]] = {}
    for q in questions:
        if q.split == "train":
            extra.setdefault(q.intent, []).append(q.text)
    out = []
    for e in entries:
        more = [t for t in extra.get(e.intent or "", []) if t not in e.questions]
        out.append(replace(e, questions=(*e.questions, *more)))
    return out


def check_kb_disjoint(entries: list[KbEntry], questions: list[Question]) -> None:
    """No KB question is (up to case, spacing and punctuation) a dev or test question."""
    held_out = {question_key(q.text) for q in questions if q.split != "train"}
    for e in entries:
        for text in e.questions:
            if question_key(text) in held_out:
                raise ExportError(f"KB entry {e.id}: {text!r} is a dev/test question")


def load_corpus(
    encoder_dir: Path,
    data_dir: Path,
    project_dir: Path = PROJECT_DATA,
    *,
    threads: int = 2,
    en_kb_questions: int = 16,
) -> Corpus:
    """Embed (or read from the cache) every question and KB text with ``encoder_dir``."""
    scorer = open_encoder(encoder_dir, threads=threads)
    cache = EmbeddingCache(scorer.package)
    questions = all_questions(data_dir, project_dir)
    vectors = cache.embed(scorer, [q.text for q in questions], QUERY)
    zh_train = [q for q in questions if q.lang == "zh" and q.intent != OTHER]
    en_entries = english_kb(data_dir, en_kb_questions)
    zh_entries = with_training_questions(chinese_kb(project_dir), zh_train)
    check_kb_disjoint([*en_entries, *zh_entries], questions)
    kb_en = _kb_vectors(cache, scorer, en_entries)
    kb_zh = _kb_vectors(cache, scorer, zh_entries)
    return Corpus(scorer.package.name, encoder_dir, questions, vectors, kb_en, kb_zh, cache.encoded)
