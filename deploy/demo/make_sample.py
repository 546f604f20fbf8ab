"""Rebuild the demo's sample events from ../shared/data (run from the repo root).

    python deploy/demo/make_sample.py ../shared/data

reviews.jsonl   — 1,500 English clothing reviews (CC0 1.0, Kaggle "Women's
                  E-Commerce Clothing Reviews"), product_id = clothing id,
                  category = class name, rating = the customer's stars, plus
                  6 malformed lines to show dead letters.
questions.jsonl — 300 customer-support utterances (CDLA-Sharing-1.0,
                  (c) Bitext Innovations 2023; modified: see LICENSE-DATA.md).
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BAD_LINES = [
    '{"event_id": "bad-1", "product_id": "1078", "text": ',  # truncated JSON
    '{"event_id": "bad-2", "product_id": "1078"}',  # missing text
    '{"event_id": "bad-3", "product_id": "1078", "text": "   "}',  # empty after trimming
    '{"event_id": "bad-4", "product_id": 1078, "text": "wrong type of id"}',
    '{"event_id": "bad-5", "product_id": "1078", "text": "ok", "rating": 9}',
    '["not", "an", "object"]',
]


def _stable(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def main(data_dir: Path) -> None:
    with (data_dir / "en_womens_clothing_reviews.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # The 40 most-reviewed products, a deterministic sample of their reviews.
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["clothing_id"]] = counts.get(r["clothing_id"], 0) + 1
    top = set(sorted(counts, key=lambda k: (-counts[k], k))[:40])
    chosen = sorted(
        (r for r in rows if r["clothing_id"] in top), key=lambda r: _stable(r["review"])
    )
    lines = []
    for i, r in enumerate(chosen[:1500]):
        title = r["title"].strip()
        lines.append(
            json.dumps(
                {
                    "event_id": f"clothing-{i:05d}",
                    "product_id": r["clothing_id"],
                    "text": f"{title}. {r['review']}" if title else r["review"],
                    "rating": int(r["rating"]),
                    "category": r["class_name"],
                    "lang": "en",
                },
                ensure_ascii=False,
            )
        )
    for n, bad in enumerate(BAD_LINES):
        lines.insert(100 + 200 * n, bad)
    (HERE / "reviews.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    with (data_dir / "bitext_customer_support_intents.csv").open(encoding="utf-8") as fh:
        utterances = sorted((r["utterance"] for r in csv.DictReader(fh)), key=_stable)[:300]
    products = sorted(top)
    questions = [
        json.dumps(
            {"event_id": f"question-{i:05d}", "product_id": products[i % len(products)], "text": u},
            ensure_ascii=False,
        )
        for i, u in enumerate(utterances)
    ]
    (HERE / "questions.jsonl").write_text("\n".join(questions) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
