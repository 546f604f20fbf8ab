"""The sans-IO scoring core: texts → token ids → ONNX run → probabilities.

:class:`Scorer` is synchronous and holds no I/O beyond the onnxruntime session
it is given. Within one call it sorts texts by token length and runs them in
sub-batches padded to the longest text of each sub-batch (never to a fixed
length): random-order padding wastes most of the compute on short reviews.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

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


class Scorer:
    """Scores text batches with one model package and one session."""

    def __init__(
        self,
        package: ModelPackage,
        runner: Runner,
        tokenizer: Tokenizer,
        *,
        sub_batch: int = 16,
        device: str = "cpu",
    ) -> None:
        if sub_batch < 1:
            raise ValueError("sub_batch must be >= 1")
        self.package = package
        self.device = device  # where the session runs: "cpu" or "cuda" (for /metrics)
        self._runner = runner
        self._tokenizer = tokenizer
        self._pad_id = _pad_id(tokenizer)
        self._sub_batch = sub_batch
        self._classifies = package.task == "sequence-classification"
        self._outputs = ["logits", "embedding"] if self._classifies else ["embedding"]

    def encode(self, texts: Sequence[str], prefix: str | None = None) -> list[list[int]]:
        """Token ids per text (prefix prepended, truncated to the package maximum)."""
        prefix = self.package.text_prefix if prefix is None else prefix
        encodings = self._tokenizer.encode_batch([prefix + t for t in texts])
        return [e.ids for e in encodings]

    def score(self, texts: Sequence[str], prefix: str | None = None) -> Scores:
        """Score ``texts``; results are in input order."""
        n = len(texts)
        ids = self.encode(texts, prefix)
        order = sorted(range(n), key=lambda i: len(ids[i]))
        probs = np.zeros((n, len(self.package.labels)), np.float32) if self._classifies else None
        embeddings: FloatArray | None = None
        for start in range(0, n, self._sub_batch):
            chunk = order[start : start + self._sub_batch]
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
