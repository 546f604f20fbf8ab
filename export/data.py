"""Training and evaluation data from ``shared/data`` with fixed, documented splits.

Labels are negative / neutral / positive:

- Chinese ``online_shopping_10_cats``: the upstream binary label (0 → negative,
  1 → positive); ``_train`` trains, ``_dev`` evaluates.
- English star ratings (women's clothing, Amazon Alexa): 1–2 → negative,
  3 → neutral, 4–5 → positive. The held-out split is deterministic: a text is
  held out when the first byte of sha1(text) is below 26 (≈ 10 %).
"""

from __future__ import annotations

import csv
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LABELS = ("negative", "neutral", "positive")
HELD_OUT_BYTE = 26  # sha1(text)[0] < 26  →  26/256 ≈ 10.2 % held out


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # index into LABELS
    source: str  # zh_shopping | en_clothing | en_alexa
    group: str  # category (zh) or product class (en), for per-group metrics


def star_label(rating: int) -> int:
    """1–2 → negative, 3 → neutral, 4–5 → positive."""
    if not 1 <= rating <= 5:
        raise ValueError(f"rating {rating} outside 1-5")
    return 0 if rating <= 2 else 1 if rating == 3 else 2


def held_out(text: str) -> bool:
    return hashlib.sha1(text.encode("utf-8")).digest()[0] < HELD_OUT_BYTE


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def zh_shopping(data_dir: Path, split: str) -> list[Example]:
    """``split`` is ``train`` or ``dev``."""
    rows = _rows(data_dir / f"online_shopping_10_cats_{split}.csv")
    return [
        Example(r["review"], 2 if r["label"] == "1" else 0, "zh_shopping", r["cat"]) for r in rows
    ]


def en_rated(data_dir: Path, split: str) -> list[tuple[Example, int]]:
    """English reviews with their star rating; ``split`` is ``train`` or ``heldout``."""
    out = []
    for r in _rows(data_dir / "en_womens_clothing_reviews.csv"):
        title = r["title"].strip()
        text = f"{title}. {r['review']}" if title else r["review"]
        stars = int(r["rating"])
        out.append((Example(text, star_label(stars), "en_clothing", r["department"]), stars))
    for r in _rows(data_dir / "en_amazon_alexa_reviews.csv"):
        stars = int(r["rating"])
        out.append((Example(r["review"], star_label(stars), "en_alexa", "alexa"), stars))
    want_held_out = split == "heldout"
    return [(e, stars) for e, stars in out if held_out(e.text) == want_held_out]


def en_reviews(data_dir: Path, split: str) -> list[Example]:
    """English star-rated reviews; ``split`` is ``train`` or ``heldout``."""
    return [e for e, _ in en_rated(data_dir, split)]


def training_set(
    data_dir: Path,
    *,
    zh_limit: int | None = None,
    en_positive_limit: int | None = None,
    seed: int = 13,
) -> list[Example]:
    """The fine-tuning set: Chinese train split + English non-held-out reviews.

    ``zh_limit`` keeps a deterministic, category×label-stratified subset of the
    Chinese rows; ``en_positive_limit`` caps the (dominant) positive English rows.
    Every English negative and neutral review is kept.
    """
    rng = random.Random(seed)
    zh = zh_shopping(data_dir, "train")
    if zh_limit is not None and zh_limit < len(zh):
        groups: dict[tuple[str, int], list[Example]] = {}
        for e in zh:
            groups.setdefault((e.group, e.label), []).append(e)
        share = zh_limit / len(zh)
        zh = [
            e
            for key in sorted(groups)
            for e in rng.sample(groups[key], round(len(groups[key]) * share))
        ]
    en = en_reviews(data_dir, "train")
    positives = [e for e in en if e.label == 2]
    if en_positive_limit is not None and en_positive_limit < len(positives):
        keep = set(map(id, rng.sample(positives, en_positive_limit)))
        en = [e for e in en if e.label != 2 or id(e) in keep]
    return zh + en


def calibration_texts(data_dir: Path, n: int, *, seed: int = 0) -> list[str]:
    """``n`` training texts (zh and en in their training-set proportions), never dev texts."""
    examples = training_set(data_dir)
    return [e.text for e in random.Random(seed).sample(examples, min(n, len(examples)))]


def validation_texts(data_dir: Path, n: int) -> list[str]:
    """``n`` dev texts for export parity: half Chinese dev, half English held-out, evenly spaced."""
    half = max(1, n // 2)
    zh = [e.text for e in zh_shopping(data_dir, "dev")]
    en = [e.text for e in en_reviews(data_dir, "heldout")]
    return zh[:: max(1, len(zh) // half)][:half] + en[:: max(1, len(en) // half)][:half]


def source_rated(data_dir: Path, source: str, n: int, *, seed: int = 13) -> list[dict[str, object]]:
    """``n`` non-held-out English reviews of ``source`` with their real star ratings."""
    rows = [(e, stars) for e, stars in en_rated(data_dir, "train") if e.source == source]
    if not rows:
        raise ValueError(f"no English training reviews from {source!r}")
    picked = random.Random(seed).sample(rows, min(n, len(rows)))
    return [{"text": e.text, "rating": stars} for e, stars in picked]


def as_rated(examples: Sequence[Example], n: int, *, seed: int = 13) -> list[dict[str, object]]:
    """A seeded sample of ``n`` labelled examples as rated rows (negative → 1 star,
    neutral → 3, positive → 5): what ``adapt --replay`` reads."""
    picked = random.Random(seed).sample(list(examples), min(n, len(examples)))
    return [{"text": e.text, "rating": (1, 3, 5)[e.label]} for e in picked]


def category_rated(
    data_dir: Path, category: str, n: int, *, seed: int = 13
) -> list[dict[str, object]]:
    """``n`` Chinese training reviews of ``category`` as rated rows for ``adapt``.

    The corpus is binary, so the stars are simulated from the label: negative → 1,
    positive → 5 (no 3-star rows). A seeded sample, never dev texts.
    """
    rows = [e for e in zh_shopping(data_dir, "train") if e.group == category]
    if not rows:
        raise ValueError(f"no training reviews in category {category!r}")
    return as_rated(rows, n, seed=seed)
