"""Drop multi-character vocabulary pieces that Chinese and English text do not need.

The base encoder's vocabulary was already pruned by script (``export.e5.pruning``). The
size budget of the shipped int8 package (≤ 80 MB, with the accuracy-critical
FFN output weights kept at 16 bits) needs ~12 MB more, so this drops the
*multi-character* pieces that contain Latin-extended letters (French,
Spanish, German, Vietnamese … words) or Japanese kana. Every single-character
piece stays, so such text still tokenises, one character per piece; ASCII,
CJK and punctuation pieces are untouched, and any text written only in those
tokenises exactly as before. Embedding rows of the kept pieces are copied, so
the model's outputs on such text do not change.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

METASPACE = "\u2581"
DROPPED_RANGES = ((0x00C0, 0x024F), (0x0250, 0x02AF), (0x1E00, 0x1EFF), (0x3040, 0x30FF))


def not_needed(piece: str) -> bool:
    """A multi-character piece with a Latin-extended letter or kana in it."""
    chars = piece.replace(METASPACE, "")
    if len(chars) <= 1:
        return False
    return any(lo <= ord(c) <= hi for c in chars for lo, hi in DROPPED_RANGES)


def _remap_tokenizer(tj: dict[str, Any], keep: list[int]) -> dict[str, Any]:
    new_id = {old: new for new, old in enumerate(keep)}
    model = tj["model"]
    model["vocab"] = [model["vocab"][i] for i in keep]
    model["unk_id"] = new_id[model["unk_id"]]
    for token in tj.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    post = tj.get("post_processor") or {}
    for special in (post.get("special_tokens") or {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    if tj.get("padding"):
        tj["padding"]["pad_id"] = new_id[tj["padding"]["pad_id"]]
    return tj


def prune_checkpoint(
    checkpoint: Path, out: Path, drop: Callable[[str], bool] = not_needed
) -> dict[str, int]:
    """Write ``checkpoint`` to ``out`` without the pieces ``drop`` selects; return counts."""
    import torch
    from safetensors.torch import load_file, save_file

    tj = json.loads((checkpoint / "tokenizer.json").read_text(encoding="utf-8"))
    specials = {t["id"] for t in tj.get("added_tokens", [])}
    vocab = tj["model"]["vocab"]
    keep = [i for i, (piece, _) in enumerate(vocab) if i in specials or not drop(piece)]
    out.mkdir(parents=True, exist_ok=True)
    for item in checkpoint.iterdir():
        if item.is_file() and item.name not in ("tokenizer.json", "model.safetensors"):
            shutil.copy2(item, out / item.name)
    tj = _remap_tokenizer(tj, keep)
    (out / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")

    weights = load_file(str(checkpoint / "model.safetensors"))
    index = torch.tensor(keep)
    for name in [n for n in weights if n.endswith("word_embeddings.weight")]:
        weights[name] = weights[name][index].contiguous()
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((checkpoint / "config.json").read_text())
    config["vocab_size"] = len(keep)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return {"before": len(vocab), "after": len(keep), "dropped": len(vocab) - len(keep)}


def same_tokens_share(before: Path, after: Path, texts: list[str]) -> float:
    """Share of ``texts`` whose token pieces are identical under both tokenizer.json files."""
    from tokenizers import Tokenizer

    old, new = Tokenizer.from_file(str(before)), Tokenizer.from_file(str(after))
    for tok in (old, new):
        tok.no_padding()
        tok.no_truncation()
    a = old.encode_batch(texts)
    b = new.encode_batch(texts)
    return sum(x.tokens == y.tokens for x, y in zip(a, b, strict=True)) / len(texts)
