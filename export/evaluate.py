"""Dev metrics of a model package, measured through the runtime that serves it.

Binary sets (Chinese dev; English 1–2 vs 4–5 stars): prediction = the larger
of P(negative) and P(positive). English 3-class: argmax over all three,
macro-F1 reported.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.data import LABELS, Example, en_reviews, zh_shopping
from models.runtime import open_scorer
from models.scorer import Scorer

NEG, NEU, POS = (LABELS.index(x) for x in ("negative", "neutral", "positive"))


def per_class_f1(gold: Sequence[int], pred: Sequence[int], n_classes: int) -> list[float]:
    scores = []
    for c in range(n_classes):
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g == c and p == c)
        fp = sum(1 for g, p in zip(gold, pred, strict=True) if g != c and p == c)
        fn = sum(1 for g, p in zip(gold, pred, strict=True) if g == c and p != c)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return scores


def macro_f1(gold: Sequence[int], pred: Sequence[int], n_classes: int) -> float:
    return sum(per_class_f1(gold, pred, n_classes)) / n_classes


def class_probs(
    scorer: Scorer, examples: Sequence[Example], batch: int = 64
) -> np.ndarray[Any, Any]:
    out = []
    for i in range(0, len(examples), batch):
        scores = scorer.score([e.text for e in examples[i : i + batch]])
        if scores.probs is None:
            raise ValueError("evaluation needs a classification package")
        out.append(scores.probs)
    return np.concatenate(out)


def binary_metrics(examples: Sequence[Example], probs: np.ndarray[Any, Any]) -> dict[str, Any]:
    keep = [i for i, e in enumerate(examples) if e.label != NEU]
    pred = [POS if probs[i, POS] >= probs[i, NEG] else NEG for i in keep]
    gold = [examples[i].label for i in keep]
    by_group: dict[str, list[bool]] = defaultdict(list)
    for i, p, g in zip(keep, pred, gold, strict=True):
        by_group[examples[i].group].append(p == g)
    return {
        "n": len(keep),
        "accuracy": round(sum(p == g for p, g in zip(pred, gold, strict=True)) / len(keep), 4),
        "by_group": {
            k: {"n": len(v), "accuracy": round(sum(v) / len(v), 4)}
            for k, v in sorted(by_group.items())
        },
    }


def evaluate(package_dir: Path, data_dir: Path, *, limit: int | None = None) -> dict[str, Any]:
    """Metrics on the Chinese dev split and the English held-out split."""
    scorer = open_scorer(package_dir)
    package = scorer.package
    zh = zh_shopping(data_dir, "dev")[:limit]
    en = en_reviews(data_dir, "heldout")[:limit]
    started = time.perf_counter()
    zh_probs = class_probs(scorer, zh)
    en_probs = class_probs(scorer, en)
    seconds = time.perf_counter() - started
    en_pred = [int(np.argmax(p)) for p in en_probs]
    en_gold = [e.label for e in en]
    return {
        "package": {"name": package.name, "version": package.version},
        "zh_online_shopping_dev": binary_metrics(zh, zh_probs),
        "en_heldout_binary": binary_metrics(en, en_probs),
        "en_heldout_3class": {
            "n": len(en),
            "macro_f1": round(macro_f1(en_gold, en_pred, len(LABELS)), 4),
            "accuracy": round(
                sum(p == g for p, g in zip(en_pred, en_gold, strict=True)) / len(en), 4
            ),
        },
        "split": "zh: online_shopping_10_cats_dev; en: sha1(text)[0] < 26 of the star-rated files",
        "eval_seconds": round(seconds, 1),
        "texts_per_s": round((len(zh) + len(en)) / seconds, 1),
    }
