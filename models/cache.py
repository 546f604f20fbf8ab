"""A bounded LRU cache of per-text scores, keyed by text hash and model identity.

Bots, copy-paste reviews and producer retries send the same text again; a hit
skips the model. It also makes repeats consistent: with int8 dynamic
quantisation the activation scale is computed per ONNX run, so a text's
probabilities depend (in the last digits) on which texts share its sub-batch;
a cached row is the one computed the first time, returned bit for bit.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class CachedRow:
    """One text's outputs: its probabilities (classification packages) and embedding."""

    probs: FloatArray | None
    embedding: FloatArray


def cache_key(model: str, text: str) -> bytes:
    """The key of ``text`` (prefix included) under ``model`` (name, version, digest)."""
    digest = hashlib.blake2b(model.encode(), digest_size=16)
    digest.update(b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.digest()


class ScoreCache:
    """At most ``capacity`` rows, least recently used evicted first; thread-safe.

    ``hits`` counts texts answered without the model, ``misses`` texts the model scored.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._rows: OrderedDict[bytes, CachedRow] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def hit_rate(self) -> float:
        """Hits over lookups so far (0 before the first)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def get_many(self, keys: list[bytes]) -> list[CachedRow | None]:
        """The cached rows of ``keys`` (None where absent), refreshed as recently used."""
        with self._lock:
            found = [self._rows.get(k) for k in keys]
            for k, row in zip(keys, found, strict=True):
                if row is not None:
                    self._rows.move_to_end(k)
            return found

    def put_many(self, items: dict[bytes, CachedRow]) -> None:
        with self._lock:
            for k, row in items.items():
                self._rows[k] = row
                self._rows.move_to_end(k)
            while len(self._rows) > self.capacity:
                self._rows.popitem(last=False)

    def count(self, hits: int, misses: int) -> None:
        with self._lock:
            self.hits += hits
            self.misses += misses
