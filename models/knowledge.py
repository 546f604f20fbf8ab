"""FAQ knowledge-base files: read and check one, embed it into a question model (sans-IO core).

A KB file is YAML (``.yaml``/``.yml``) or JSON (``.json``, the package's ``kb.json``)::

    format: 1
    language: zh            # optional: default language of the entries
    source: ...             # optional: provenance
    entries:
      - id: zh-cancel_order          # unique
        intent: cancel_order         # optional: one of the head's labels
        category: ORDER              # optional
        scope: {product: ..., category: ...}   # optional: where the answer applies
        language: zh                 # language code; overrides the file's
        questions: [如何取消订单？, ...]        # one or more
        answer: ...

:func:`parse_kb` refuses a file it cannot use with a :class:`~models.errors.ModelPackageError`
naming the file and the entry. :func:`embed_kb` embeds the entries with the encoder the
question package was built on, the way the package's own KB was (manifest ``kb_side``), and
returns a question model with the package's head and thresholds over the new KB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import yaml  # type: ignore[import-untyped]

from models.errors import ModelPackageError
from models.questions import FaqEntry, FaqIndex, FloatArray, IntArray, QuestionPackage
from models.scorer import Scores

KB_FORMAT: Final = 1
PASSAGE_PREFIX: Final = "passage: "
KB_SIDES: Final = (
    "questions_query",
    "questions_passage",
    "answers_passage",
    "questions_query+answers_passage",
)
_FILE_KEYS: Final = frozenset({"format", "language", "source", "entries"})
_ENTRY_KEYS: Final = frozenset(
    {"id", "intent", "category", "scope", "language", "questions", "answer"}
)
_LANGUAGE: Final = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


class Encoder(Protocol):
    """What :func:`embed_kb` needs from :class:`models.scorer.Scorer`."""

    def score(self, texts: Sequence[str], prefix: str | None = None) -> Scores: ...


def _load(data: bytes, path: Path) -> Any:
    try:
        text = data.decode("utf-8")
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ModelPackageError(f"{path}: not a readable KB file: {exc}") from exc


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"{what} must be text, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise ValueError(f"{what} is empty")
    return text


def _optional(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return None if value is None or value == "" else _text(value, key)


def _entry(raw: Any, default_language: str | None) -> FaqEntry:
    if not isinstance(raw, dict):
        raise ValueError(f"must be a mapping, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in _ENTRY_KEYS)
    if unknown:
        raise ValueError(f"unknown keys {unknown} (known: {sorted(_ENTRY_KEYS)})")
    questions = raw.get("questions")
    if isinstance(questions, str):
        questions = [questions]
    if not isinstance(questions, list) or not questions:
        raise ValueError("needs 'questions': a list of one or more questions")
    language = raw.get("language", default_language)
    if language is None:
        raise ValueError("has no language (set 'language' on the entry or the file)")
    language = _text(language, "language")
    if not _LANGUAGE.match(language):
        raise ValueError(f"language {language!r} is not a language code such as zh or en")
    scope = raw.get("scope") or None
    if scope is not None and not isinstance(scope, dict):
        raise ValueError(f"scope must be a mapping, got {type(scope).__name__}")
    return FaqEntry(
        id=_text(raw.get("id"), "id"),
        language=language,
        answer=_text(raw.get("answer"), "answer"),
        questions=tuple(_text(q, f"question {i + 1}") for i, q in enumerate(questions)),
        intent=_optional(raw, "intent"),
        category=_optional(raw, "category"),
        scope={str(k): _text(v, f"scope {k}") for k, v in scope.items()} if scope else None,
    )


def parse_kb(data: bytes, path: Path) -> list[FaqEntry]:
    """The entries of a KB file's content (``path`` only names it and picks JSON or YAML)."""
    doc = _load(data, path)
    if not isinstance(doc, dict) or doc.get("format") != KB_FORMAT:
        raise ModelPackageError(f"{path}: expected a mapping with 'format: {KB_FORMAT}'")
    unknown = sorted(str(k) for k in doc if k not in _FILE_KEYS)
    if unknown:
        raise ModelPackageError(f"{path}: unknown keys {unknown} (known: {sorted(_FILE_KEYS)})")
    raw_entries = doc.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise ModelPackageError(f"{path}: the knowledge base has no entries")
    default_language = doc.get("language")
    entries: list[FaqEntry] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_entries):
        name = f"entry {i + 1}"
        if isinstance(raw, dict) and raw.get("id") is not None:
            name += f" ({raw['id']!r})"
        try:
            entry = _entry(raw, default_language)
        except ValueError as exc:
            raise ModelPackageError(f"{path}: {name}: {exc}") from exc
        if entry.id in seen:
            raise ModelPackageError(f"{path}: {name}: duplicate id {entry.id!r}")
        seen.add(entry.id)
        entries.append(entry)
    return entries


def read_kb(path: Path) -> list[FaqEntry]:
    """The entries of the KB file at ``path``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelPackageError(f"{path}: cannot read the knowledge base: {exc}") from exc
    return parse_kb(data, path)


def _embed(encoder: Encoder, texts: list[str], prefix: str) -> FloatArray:
    embeddings = encoder.score(texts, prefix=prefix).embeddings
    if embeddings is None or len(embeddings) != len(texts):
        raise ModelPackageError("the encoder gave no embedding for each KB text")
    return embeddings


def kb_vectors(
    entries: Sequence[FaqEntry], encoder: Encoder, side: str, query_prefix: str
) -> tuple[FloatArray, IntArray]:
    """One embedding per KB text of ``side`` and the entry of each row (non-decreasing)."""
    if side not in KB_SIDES:
        raise ModelPackageError(f"unknown kb_side {side!r} (known: {', '.join(KB_SIDES)})")
    texts = [q for e in entries for q in e.questions]
    questions_owner = np.array([i for i, e in enumerate(entries) for _ in e.questions], np.int64)
    answers_owner = np.arange(len(entries), dtype=np.int64)
    parts: list[tuple[FloatArray, IntArray]] = []
    if side in ("questions_query", "questions_query+answers_passage"):
        parts.append((_embed(encoder, texts, query_prefix), questions_owner))
    if side == "questions_passage":
        parts.append((_embed(encoder, texts, PASSAGE_PREFIX), questions_owner))
    if side in ("answers_passage", "questions_query+answers_passage"):
        answers = [e.answer for e in entries]
        parts.append((_embed(encoder, answers, PASSAGE_PREFIX), answers_owner))
    vectors = np.concatenate([v for v, _ in parts])
    owner = np.concatenate([o for _, o in parts])
    order = np.argsort(owner, kind="stable")
    return vectors[order], owner[order]


def embed_kb(
    package: QuestionPackage, entries: Sequence[FaqEntry], encoder: Encoder
) -> QuestionPackage:
    """``package`` answering from ``entries``, embedded by ``encoder`` (the package's encoder).

    An entry's intent must be one of the head's labels.
    """
    labels = set(package.model.head.labels)
    for e in entries:
        if e.intent is not None and e.intent not in labels:
            raise ModelPackageError(f"entry {e.id!r}: intent {e.intent!r} is not a head label")
    side = str(package.manifest.get("kb_side", "questions_query"))
    vectors, owner = kb_vectors(entries, encoder, side, package.encoder.query_prefix)
    return package.with_faq(FaqIndex(entries, vectors, owner))
