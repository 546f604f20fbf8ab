"""Frozen-encoder embeddings through the serving runtime, cached on disk, and a speed bench.

Texts are encoded by :class:`models.scorer.Scorer` over an onnxruntime session: exactly what
the service runs. The cache (``build/questions-cache/<package>-<model sha>.npz``) maps
``sha1(prefix + text)`` to the embedding, so no text is encoded twice.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from models.package import ModelPackage, load_package
from models.runtime import create_session
from models.scorer import Scorer, load_tokenizer

FloatArray = npt.NDArray[np.float32]
CACHE_DIR = Path("build/questions-cache")


def open_encoder(package_dir: Path, *, threads: int = 2, sub_batch: int = 32) -> Scorer:
    """A Scorer for the package in ``package_dir`` (hashes verified)."""
    package = load_package(package_dir)
    session = create_session(package.model_path, intra_op_threads=threads)
    return Scorer(package, session, load_tokenizer(package), sub_batch=sub_batch)


def _key(prefix: str, text: str) -> str:
    return hashlib.sha1((prefix + text).encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Embeddings of one encoder package, keyed by prefixed text, persisted as .npz."""

    def __init__(self, package: ModelPackage, cache_dir: Path = CACHE_DIR) -> None:
        model_sha = str(package.manifest["sha256"]["model.onnx"])[:12]
        self.path = cache_dir / f"{package.name}-{model_sha}.npz"
        self._vectors: dict[str, FloatArray] = {}
        if self.path.is_file():
            with np.load(self.path) as data:
                keys = [str(k) for k in data["keys"]]
                self._vectors = dict(zip(keys, data["vectors"], strict=True))
        self.encoded = 0

    def embed(self, scorer: Scorer, texts: Sequence[str], prefix: str) -> FloatArray:
        """Embeddings of ``texts`` (with ``prefix``), encoding only the ones not cached."""
        keys = [_key(prefix, t) for t in texts]
        missing = sorted(
            {k: t for k, t in zip(keys, texts, strict=True) if k not in self._vectors}.items()
        )
        if missing:
            scores = scorer.score([t for _, t in missing], prefix=prefix)
            assert scores.embeddings is not None
            for (k, _), vec in zip(missing, scores.embeddings, strict=True):
                self._vectors[k] = vec
            self.encoded += len(missing)
            self.save()
        return np.stack([self._vectors[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self._vectors)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self._vectors[k] for k in keys]))
        tmp.replace(self.path)


def bench(
    scorer: Scorer,
    texts: Sequence[str],
    prefix: str,
    *,
    batch: int = 32,
    repeats: int = 3,
    threads: int = 2,
) -> dict[str, Any]:
    """Questions/s when the texts arrive in batches of ``batch`` in the given order.

    One warm-up pass over the first batches, then ``repeats`` timed passes; reports the
    median pass and p50/p95 per batch. The Scorer sorts by length inside each batch only.
    """
    batches = [list(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    for b in batches[:3]:
        scorer.score(b, prefix=prefix)
    passes: list[float] = []
    per_batch: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        for b in batches:
            t0 = time.perf_counter()
            scorer.score(b, prefix=prefix)
            per_batch.append(time.perf_counter() - t0)
        passes.append(time.perf_counter() - start)
    per_batch.sort()
    tokens = [len(ids) for ids in scorer.encode(list(texts), prefix)]
    seconds = statistics.median(passes)
    return {
        "texts": len(texts),
        "batch": batch,
        "repeats": repeats,
        "questions_per_s": round(len(texts) / seconds, 1),
        "batch_ms_p50": round(1000 * per_batch[len(per_batch) // 2], 2),
        "batch_ms_p95": round(1000 * per_batch[int(0.95 * (len(per_batch) - 1))], 2),
        "tokens_mean": round(float(np.mean(tokens)), 1),
        "threads": threads,
        "onnxruntime": ort.__version__,
        "providers": ["CPUExecutionProvider"],
    }
