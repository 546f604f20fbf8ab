"""The real reviews the simulated streams are drawn from, and real products' negative shares.
The English clothing reviews of ``shared/data`` (category = ``department``, negative =
``rating`` ≤ 2, i.e. the dataset's ``sentiment`` negative) and the Chinese online-shopping
reviews (category = ``cat``, negative = ``label`` 0), by category and polarity, and the
per-product negative shares of the English clothing items with at least 30 reviews
(Jeffreys-smoothed: median about 10 %, 90th percentile about 19 %). The Chinese corpus is
balanced by construction, so its per-product shares mean nothing and the English ones are used
for every product.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

CLOTHING = "en_womens_clothing_reviews.csv"
SHOPPING = ("online_shopping_10_cats_train.csv", "online_shopping_10_cats_dev.csv")
MIN_PRODUCT_REVIEWS = 30  # clothing items whose negative share is taken as a real product's


@dataclass(frozen=True)
class Text:
    """One real review: where it comes from (``file:row``) and its text."""

    ref: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """Real reviews by category and polarity, and real per-product negative shares."""

    negative: dict[str, tuple[Text, ...]]
    other: dict[str, tuple[Text, ...]]
    product_shares: tuple[float, ...]

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted(self.negative))

    def __post_init__(self) -> None:
        if set(self.negative) != set(self.other) or not self.negative:
            raise ValueError("every category needs negative and other reviews")
        if any(not v for v in (*self.negative.values(), *self.other.values())):
            raise ValueError("a category has no reviews of one polarity")
        if not self.product_shares or not all(0 < s < 1 for s in self.product_shares):
            raise ValueError("product shares must lie strictly between 0 and 1")


def load_corpus(data_dir: Path) -> Corpus:
    """The clothing and online-shopping reviews of ``data_dir`` (``shared/data``)."""
    negative: dict[str, list[Text]] = {}
    other: dict[str, list[Text]] = {}
    per_item: dict[str, list[int]] = {}  # clothing_id -> [negative, reviews]

    def add(category: str, is_negative: bool, ref: str, text: str) -> None:
        (negative if is_negative else other).setdefault(category, []).append(Text(ref, text))
        (other if is_negative else negative).setdefault(category, [])

    with (data_dir / CLOTHING).open(encoding="utf-8", newline="") as f:
        for row_no, row in enumerate(csv.DictReader(f), start=2):
            is_negative = int(row["rating"]) <= 2
            counts = per_item.setdefault(row["clothing_id"], [0, 0])
            counts[0] += is_negative
            counts[1] += 1
            if row["department"]:
                add(row["department"], is_negative, f"{CLOTHING}:{row_no}", row["review"])
    for name in SHOPPING:
        with (data_dir / name).open(encoding="utf-8", newline="") as f:
            for row_no, row in enumerate(csv.DictReader(f), start=2):
                add(row["cat"], row["label"] == "0", f"{name}:{row_no}", row["review"])
    shares = tuple(
        (neg + 0.5) / (n + 1.0) for neg, n in per_item.values() if n >= MIN_PRODUCT_REVIEWS
    )
    keep = sorted(c for c in negative if negative[c] and other[c])
    return Corpus(
        negative={c: tuple(negative[c]) for c in keep},
        other={c: tuple(other[c]) for c in keep},
        product_shares=shares,
    )
