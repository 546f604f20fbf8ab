"""Customer questions: intent and FAQ answer from encoder embeddings (sans-IO, numpy only).

The question package (``models/packages/questions-zh-en``) holds no encoder. It is a small
head and a knowledge base embedded by an encoder package named in its manifest (the
sentiment package's encoder, run with the ``query: `` prefix). The caller runs that encoder
(:class:`models.scorer.Scorer`: ``scorer.score(texts, prefix=package.encoder.query_prefix)``)
and hands the L2-normalised ``embeddings`` to :meth:`QuestionModel.predict`::

    qp = load_question_package(Path("models/packages/questions-zh-en"))
    check_encoder(qp, scorer.package)          # the head was trained on this encoder
    emb = scorer.score(texts, prefix=qp.encoder.query_prefix).embeddings
    results = qp.model.predict(emb, languages=["zh", "en", ...])  # languages optional

Package files, all hashed in ``manifest.json`` (``sha256``) plus the manifest's own digest
(``manifest_sha256``, :func:`models.package.manifest_digest`):

* ``head.npz``: ``weights`` [dim, labels] and ``bias`` [labels] of a softmax layer over the
  embedding (feature standardisation folded in);
* ``kb.json``: the FAQ entries (id, language, intent, category, scope, questions, answer);
* ``kb.npz``: ``vectors`` [rows, dim] (one row per KB question, L2-normalised) and
  ``owner`` [rows] (the entry of each row, non-decreasing);
* ``MODEL_CARD.md``, ``metrics.json``: documentation and measured metrics.

Decision rules (thresholds in the manifest, calibrated on dev data):

* intent: the arg-max label; an in-scope label whose probability is below
  ``thresholds.other`` becomes ``other`` (its score is then 1 - that probability);
* answer: the KB entry with the highest score, if it reaches ``thresholds.answer`` and the
  ``answer_gate`` holds. An entry's score is its best cosine with the question over the
  entry's vectors (KB questions and/or answer, see ``kb_side``), blended with the head's
  probability of the entry's intent: ``(1 - intent_weight) * cos + intent_weight * P``
  (``not_other``: the intent is not ``other``; ``agree``: the entry's intent equals the
  predicted intent; ``none``); otherwise ``needs_human``. A question whose language is
  given is matched against the entries in its language only (if the KB has any).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from models.errors import ModelIntegrityError, ModelPackageError
from models.package import MANIFEST, MANIFEST_DIGEST, ModelPackage, manifest_digest, sha256_file

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
Gate = Literal["none", "not_other", "agree"]

OTHER: Final = "other"
TASK: Final = "question-intent-faq"
HEAD_FILE: Final = "head.npz"
KB_FILE: Final = "kb.json"
KB_VECTORS_FILE: Final = "kb.npz"
REQUIRED_FILES: Final = (HEAD_FILE, KB_FILE, KB_VECTORS_FILE)
GATES: Final = ("none", "not_other", "agree")


@dataclass(frozen=True)
class Intent:
    """The intent of one question: label, its score and the top labels by probability."""

    label: str
    score: float
    top: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Answer:
    """The FAQ answer chosen for one question."""

    faq_id: str
    text: str
    score: float
    language: str


@dataclass(frozen=True)
class QuestionResult:
    """Intent and answer (None: needs a human) for one question."""

    intent: Intent
    answer: Answer | None

    @property
    def needs_human(self) -> bool:
        return self.answer is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        answer = None
        if self.answer is not None:
            answer = {
                "faq_id": self.answer.faq_id,
                "text": self.answer.text,
                "score": round(self.answer.score, 4),
                "language": self.answer.language,
            }
        return {
            "intent": {
                "label": self.intent.label,
                "score": round(self.intent.score, 4),
                "top": [{"label": k, "score": round(v, 4)} for k, v in self.intent.top],
            },
            "answer": answer,
            "needs_human": self.needs_human,
        }


def _softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    out: FloatArray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def _as_matrix(embeddings: Any, dim: int) -> FloatArray:
    matrix = np.asarray(embeddings, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise ValueError(f"expected embeddings of shape [n, {dim}], got {matrix.shape}")
    return matrix


class IntentHead:
    """A softmax layer over embeddings, with an ``other`` threshold."""

    def __init__(
        self,
        weights: FloatArray,
        bias: FloatArray,
        labels: Sequence[str],
        *,
        other_threshold: float = 0.0,
        top_k: int = 3,
    ) -> None:
        if weights.ndim != 2 or weights.shape[1] != len(labels) or bias.shape != (len(labels),):
            raise ModelPackageError(
                f"head shapes {weights.shape} / {bias.shape} do not fit {len(labels)} labels"
            )
        if len(set(labels)) != len(labels):
            raise ModelPackageError("head labels are not unique")
        self.weights = weights.astype(np.float32)
        self.bias = bias.astype(np.float32)
        self.labels = tuple(labels)
        self.other_threshold = float(other_threshold)
        self.top_k = top_k
        self._other = self.labels.index(OTHER) if OTHER in self.labels else None

    @property
    def dim(self) -> int:
        return int(self.weights.shape[0])

    def probs(self, embeddings: Any) -> FloatArray:
        """Label probabilities [n, labels]."""
        x = _as_matrix(embeddings, self.dim)
        return _softmax(x @ self.weights + self.bias)

    def classify(self, embeddings: Any) -> list[Intent]:
        """One :class:`Intent` per row."""
        return self.classify_probs(self.probs(embeddings))

    def classify_probs(self, probs: FloatArray) -> list[Intent]:
        """One :class:`Intent` per row of label probabilities."""
        out = []
        k = min(self.top_k, len(self.labels))
        for row in probs:
            order = np.argsort(-row, kind="stable")[:k]
            top = tuple((self.labels[j], float(row[j])) for j in order)
            best = int(order[0])
            label, score = self.labels[best], float(row[best])
            if best != self._other and score < self.other_threshold:
                label, score = OTHER, 1.0 - score
            out.append(Intent(label, score, top))
        return out


@dataclass(frozen=True)
class FaqEntry:
    """One knowledge-base entry."""

    id: str
    language: str
    answer: str
    questions: tuple[str, ...]
    intent: str | None = None
    category: str | None = None
    scope: Mapping[str, str] | None = None


class FaqIndex:
    """KB entries and one embedding per KB question; an entry scores its best question."""

    def __init__(self, entries: Sequence[FaqEntry], vectors: FloatArray, owner: IntArray) -> None:
        if not entries:
            raise ModelPackageError("the knowledge base is empty")
        if vectors.ndim != 2 or len(vectors) != len(owner) or len(owner) == 0:
            raise ModelPackageError("KB vectors and owner rows do not match")
        owner = owner.astype(np.int64)
        if np.any(np.diff(owner) < 0) or owner[0] != 0 or owner[-1] != len(entries) - 1:
            raise ModelPackageError("KB owner must be non-decreasing over every entry")
        starts = np.flatnonzero(np.r_[True, np.diff(owner) > 0])
        if len(starts) != len(entries):
            raise ModelPackageError("every KB entry needs at least one question vector")
        self.entries = tuple(entries)
        self.vectors = vectors.astype(np.float32)
        self.owner = owner
        self._starts = starts
        self._languages = np.array([e.language for e in entries])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def entry_scores(self, embeddings: Any) -> FloatArray:
        """Cosine of each question with each entry (its best question): [n, entries]."""
        x = _as_matrix(embeddings, self.dim)
        sims = x @ self.vectors.T
        out: FloatArray = np.maximum.reduceat(sims, self._starts, axis=1).astype(np.float32)
        return out

    def language_mask(self, language: str | None) -> npt.NDArray[np.bool_]:
        """Entries searched for a question in ``language``: that language's, if it has any."""
        if language is not None:
            mask: npt.NDArray[np.bool_] = np.asarray(self._languages == language, dtype=bool)
            if mask.any():
                return mask
        return np.ones(len(self.entries), dtype=bool)


class QuestionModel:
    """Intent head + FAQ index + decision thresholds: embeddings in, results out."""

    def __init__(
        self,
        head: IntentHead,
        faq: FaqIndex,
        *,
        answer_threshold: float,
        answer_gate: Gate = "not_other",
        intent_weight: float = 0.0,
    ) -> None:
        if head.dim != faq.dim:
            raise ModelPackageError(f"head dim {head.dim} != KB dim {faq.dim}")
        if answer_gate not in GATES:
            raise ModelPackageError(f"unknown answer gate {answer_gate!r}")
        if not 0.0 <= intent_weight <= 1.0:
            raise ModelPackageError("intent_weight must be in [0, 1]")
        self.head = head
        self.faq = faq
        self.answer_threshold = float(answer_threshold)
        self.answer_gate: Gate = answer_gate
        self.intent_weight = float(intent_weight)
        index = {label: j for j, label in enumerate(head.labels)}
        # head column of each entry's intent; -1 for entries without a known intent
        self._entry_label = np.array(
            [index.get(e.intent, -1) if e.intent else -1 for e in faq.entries], dtype=np.int64
        )

    def with_faq(self, faq: FaqIndex) -> QuestionModel:
        """This head and these thresholds over another knowledge base."""
        return QuestionModel(
            self.head,
            faq,
            answer_threshold=self.answer_threshold,
            answer_gate=self.answer_gate,
            intent_weight=self.intent_weight,
        )

    def entry_scores(
        self,
        embeddings: Any,
        languages: Sequence[str | None] | None = None,
        probs: FloatArray | None = None,
    ) -> FloatArray:
        """Entry scores [n, entries]; entries outside a question's language are -inf.

        Score = (1 - w) * cosine + w * P(entry's intent), w = ``intent_weight``; an entry
        without a known intent scores its cosine.
        """
        x = _as_matrix(embeddings, self.head.dim)
        if languages is not None and len(languages) != len(x):
            raise ValueError("languages must have one entry per embedding row")
        scores = self.faq.entry_scores(x)
        if self.intent_weight > 0.0:
            p = self.head.probs(x) if probs is None else probs
            known = self._entry_label >= 0
            fused = (1.0 - self.intent_weight) * scores[:, known]
            fused += self.intent_weight * p[:, self._entry_label[known]]
            scores[:, known] = fused
        if languages is not None:
            for i, language in enumerate(languages):
                scores[i, ~self.faq.language_mask(language)] = -np.inf
        return scores

    def predict(
        self, embeddings: Any, languages: Sequence[str | None] | None = None
    ) -> list[QuestionResult]:
        """Intent and answer per row of ``embeddings`` (L2-normalised, ``query: `` prefix).

        ``languages`` (optional, one per row: "en", "zh" or None) restricts the KB search
        to entries in the question's language when the KB has any; None searches all.
        """
        x = _as_matrix(embeddings, self.head.dim)
        probs = self.head.probs(x)
        intents = self.head.classify_probs(probs)
        scores = self.entry_scores(x, languages, probs)
        results = []
        for i, intent in enumerate(intents):
            best = int(np.argmax(scores[i]))
            entry, score = self.faq.entries[best], float(scores[i, best])
            answer = None
            if score >= self.answer_threshold and self._gate(intent, entry):
                answer = Answer(entry.id, entry.answer, score, entry.language)
            results.append(QuestionResult(intent, answer))
        return results

    def _gate(self, intent: Intent, entry: FaqEntry) -> bool:
        if self.answer_gate == "not_other":
            return intent.label != OTHER
        if self.answer_gate == "agree":
            return intent.label != OTHER and entry.intent == intent.label
        return True


@dataclass(frozen=True)
class EncoderRef:
    """The encoder package whose embeddings the head and KB vectors were made with."""

    name: str
    model_sha256: str
    query_prefix: str


@dataclass(frozen=True)
class QuestionPackage:
    """A loaded question package."""

    root: Path
    name: str
    version: str
    encoder: EncoderRef
    model: QuestionModel
    manifest: dict[str, Any]

    def with_faq(self, faq: FaqIndex) -> QuestionPackage:
        """This package answering from another knowledge base."""
        return replace(self, model=self.model.with_faq(faq))


def _verify(root: Path, manifest: Mapping[str, Any]) -> None:
    want = manifest.get(MANIFEST_DIGEST)
    if not isinstance(want, str) or manifest_digest(manifest) != want:
        raise ModelIntegrityError(f"{root}/{MANIFEST}: missing or wrong {MANIFEST_DIGEST}")
    table = manifest.get("sha256")
    if not isinstance(table, dict) or any(name not in table for name in REQUIRED_FILES):
        raise ModelPackageError(f"{root}/{MANIFEST}: 'sha256' must list {REQUIRED_FILES}")
    for name, digest in table.items():
        path = root / name
        if not path.is_file():
            raise ModelPackageError(f"{root}: missing {name}")
        if sha256_file(path) != digest:
            raise ModelIntegrityError(f"{path}: sha256 does not match the manifest")


def read_entries(path: Path) -> list[FaqEntry]:
    """The entries of a ``kb.json`` file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [
            FaqEntry(
                id=str(e["id"]),
                language=str(e["language"]),
                answer=str(e["answer"]),
                questions=tuple(str(q) for q in e["questions"]),
                intent=e.get("intent"),
                category=e.get("category"),
                scope=e.get("scope") or None,
            )
            for e in raw["entries"]
        ]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelPackageError(f"{path}: not a KB file: {exc}") from exc


def load_question_package(root: Path, *, verify: bool = True) -> QuestionPackage:
    """Read a question package; check every file's sha256 unless ``verify`` is False."""
    root = Path(root)
    path = root / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelPackageError(f"{path}: cannot read the manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("task") != TASK:
        raise ModelPackageError(f"{path}: not a {TASK} package")
    if verify:
        _verify(root, manifest)
    try:
        labels = [str(x) for x in manifest["labels"]]
        thresholds = manifest["thresholds"]
        encoder = EncoderRef(**{k: str(v) for k, v in manifest["encoder"].items()})
        with np.load(root / HEAD_FILE) as head_data:
            head = IntentHead(
                head_data["weights"],
                head_data["bias"],
                labels,
                other_threshold=float(thresholds["other"]),
            )
        with np.load(root / KB_VECTORS_FILE) as kb_data:
            faq = FaqIndex(read_entries(root / KB_FILE), kb_data["vectors"], kb_data["owner"])
        model = QuestionModel(
            head,
            faq,
            answer_threshold=float(thresholds["answer"]),
            answer_gate=manifest.get("answer_gate", "not_other"),
            intent_weight=float(manifest.get("intent_weight", 0.0)),
        )
        return QuestionPackage(
            root, str(manifest["name"]), str(manifest["version"]), encoder, model, manifest
        )
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ModelPackageError(f"{root}: bad question package: {exc}") from exc


def check_encoder(package: QuestionPackage, encoder: ModelPackage) -> None:
    """Refuse an encoder other than the one the head and KB vectors were built with."""
    got = encoder.manifest.get("sha256", {}).get("model.onnx")
    if got != package.encoder.model_sha256:
        raise ModelIntegrityError(
            f"{package.root}: built for encoder {package.encoder.name} "
            f"(model sha256 {package.encoder.model_sha256[:12]}…), "
            f"got {encoder.name} ({str(got)[:12]}…)"
        )
