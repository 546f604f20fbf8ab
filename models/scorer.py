"""The sans-IO scoring core: texts → token ids → ONNX run → probabilities.

:class:`Scorer` is synchronous and holds no I/O beyond the onnxruntime session
it is given. Within one call it sorts texts by token length and cuts them into
sub-batches padded to the longest text of each (never to a fixed length):
random-order padding wastes most of the compute on short reviews. A sub-batch
holds at most ``sub_batch`` texts and, when ``max_tokens`` is set, at most
``max_tokens`` token slots, padding included (rows × padded length), so a mix of
short and long reviews neither pads short ones to long ones nor makes one huge
run; a single text longer than the budget still runs, alone.

With a :class:`~models.cache.ScoreCache` repeated texts skip the model (a text
repeated within one call is scored once). :meth:`Scorer.score_many` tokenises
the next batch in a thread while the current one runs (both release the GIL).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from models.cache import CachedRow, ScoreCache, cache_key
from models.errors import ModelPackageError
from models.package import ModelPackage

FloatArray = npt.NDArray[np.float32]


class Runner(Protocol):
    """What :class:`Scorer` needs from an onnxruntime ``InferenceSession``."""

    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> list[Any]: ...


@dataclass(frozen=True)
class Scores:
    """Scores for a batch, in input order."""

    labels: tuple[str, ...]
    probs: FloatArray | None  # [n, len(labels)] for classification packages
    embeddings: FloatArray | None  # [n, hidden], L2-normalised

    def top(self, i: int) -> tuple[str, float]:
        """The most probable label of row ``i`` and its probability."""
        if self.probs is None:
            raise ModelPackageError("this package has no classification head")
        j = int(np.argmax(self.probs[i]))
        return self.labels[j], float(self.probs[i, j])


def softmax(logits: FloatArray) -> FloatArray:
    """Row-wise softmax, stable for large logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs: FloatArray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs


def load_tokenizer(package: ModelPackage) -> Tokenizer:
    """The package tokenizer, truncating to its maximum length, without padding."""
    tokenizer = Tokenizer.from_file(str(package.tokenizer_path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=package.max_length)
    return tokenizer


def _pad_id(tokenizer: Tokenizer) -> int:
    for token in ("<pad>", "[PAD]"):
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return int(token_id)
    return 0


def plan_sub_batches(lengths: Sequence[int], max_rows: int, max_tokens: int = 0) -> list[list[int]]:
    """Indices into ``lengths``, shortest first, cut into ONNX runs.

    A run holds at most ``max_rows`` texts and, when ``max_tokens`` > 0, at most
    ``max_tokens`` token slots counting padding (rows × its longest text); a text
    alone over the budget is a run of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    runs: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # sorted ascending: with i added the padded width is lengths[i]
        full = len(current) >= max_rows
        over = max_tokens > 0 and (len(current) + 1) * lengths[i] > max_tokens
        if current and (full or over):
            runs.append(current)
            current = []
        current.append(i)
    if current:
        runs.append(current)
    return runs


def _model_id(package: ModelPackage) -> str:
    return f"{package.name}\0{package.version}\0{package.manifest.get('manifest_sha256', '')}"


class Scorer:
    """Scores text batches with one model package and one session."""

    def __init__(
        self,
        package: ModelPackage,
        runner: Runner,
        tokenizer: Tokenizer,
        *,
        sub_batch: int = 16,
        max_tokens: int = 0,
        cache: ScoreCache | None = None,
        device: str = "cpu",
    ) -> None:
        if sub_batch < 1:
            raise ValueError("sub_batch must be >= 1")
        if max_tokens < 0:
            raise ValueError("max_tokens must be >= 0 (0: cut by sub_batch only)")
        self.package = package
        self.cache = cache
        self.device = device  # where the session runs: "cpu" or "cuda" (for /metrics)
        self._runner = runner
        self._tokenizer = tokenizer
        self._pad_id = _pad_id(tokenizer)
        self._sub_batch = sub_batch
        self._max_tokens = max_tokens
        self._model_id = _model_id(package)
        self._classifies = package.task == "sequence-classification"
        self._outputs = ["logits", "embedding"] if self._classifies else ["embedding"]

    @property
    def cache_hits(self) -> int:
        """Texts answered from the dedup cache (0 without one)."""
        return self.cache.hits if self.cache is not None else 0

    @property
    def cache_misses(self) -> int:
        """Texts the model scored while a dedup cache was on (0 without one)."""
        return self.cache.misses if self.cache is not None else 0

    def encode(self, texts: Sequence[str], prefix: str | None = None) -> list[list[int]]:
        """Token ids per text (prefix prepended, truncated to the package maximum)."""
        return self._encode(self._prefixed(texts, prefix))

    def score(self, texts: Sequence[str], prefix: str | None = None) -> Scores:
        """Score ``texts``; results are in input order."""
        return self._score(self._prefixed(texts, prefix), None)

    def score_many(
        self, batches: Iterable[Sequence[str]], prefix: str | None = None
    ) -> Iterator[Scores]:
        """``score`` of each batch, in order, tokenising batch k+1 in a thread while
        batch k runs in onnxruntime; the same results as scoring them one by one."""
        with ThreadPoolExecutor(1, thread_name_prefix="tokenize") as pool:
            ahead: tuple[list[str], Future[list[list[int]]]] | None = None
            for texts in batches:
                full = self._prefixed(texts, prefix)
                following = (full, pool.submit(self._encode, full))
                if ahead is not None:
                    yield self._score(ahead[0], ahead[1].result())
                ahead = following
            if ahead is not None:
                yield self._score(ahead[0], ahead[1].result())

    def _prefixed(self, texts: Sequence[str], prefix: str | None) -> list[str]:
        prefix = self.package.text_prefix if prefix is None else prefix
        return [prefix + t for t in texts]

    def _encode(self, full: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tokenizer.encode_batch(list(full))]

    def _score(self, full: list[str], ids: list[list[int]] | None) -> Scores:
        """Scores of the prefixed texts ``full`` (``ids``: their token ids, if known)."""
        if self.cache is None:
            return self._model_scores(ids if ids is not None else self._encode(full))
        keys = [cache_key(self._model_id, t) for t in full]
        rows = self.cache.get_many(keys)
        todo: dict[bytes, int] = {}  # key → index of its first text, for texts not cached
        for i, (key, row) in enumerate(zip(keys, rows, strict=True)):
            if row is None and key not in todo:
                todo[key] = i
        self.cache.count(len(full) - len(todo), len(todo))
        if not full:
            return self._model_scores([])
        if todo:
            firsts = list(todo.values())
            fresh = self._model_scores(
                [ids[i] for i in firsts]
                if ids is not None
                else self._encode([full[i] for i in firsts])
            )
            assert fresh.embeddings is not None
            new = {
                key: CachedRow(
                    None if fresh.probs is None else fresh.probs[j].copy(),
                    fresh.embeddings[j].copy(),
                )
                for j, key in enumerate(todo)
            }
            self.cache.put_many(new)
            rows = [new[key] if row is None else row for key, row in zip(keys, rows, strict=True)]
        found = [row for row in rows if row is not None]
        probs = (
            np.stack([r.probs for r in found if r.probs is not None]) if self._classifies else None
        )
        return Scores(self.package.labels, probs, np.stack([r.embedding for r in found]))

    def _model_scores(self, ids: list[list[int]]) -> Scores:
        n = len(ids)
        probs = np.zeros((n, len(self.package.labels)), np.float32) if self._classifies else None
        embeddings: FloatArray | None = None
        for chunk in plan_sub_batches([len(x) for x in ids], self._sub_batch, self._max_tokens):
            outputs = self._run([ids[i] for i in chunk])
            if probs is not None:
                probs[chunk] = softmax(outputs[0])
            emb = outputs[-1]
            if embeddings is None:
                embeddings = np.zeros((n, emb.shape[1]), np.float32)
            embeddings[chunk] = emb
        return Scores(self.package.labels, probs, embeddings)

    def _run(self, batch: list[list[int]]) -> list[FloatArray]:
        width = max(len(x) for x in batch)
        input_ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        outputs = self._runner.run(self._outputs, {"input_ids": input_ids, "attention_mask": mask})
        return [np.asarray(o, dtype=np.float32) for o in outputs]
