"""Shadow scoring with a real second package: the tiny model trained from another seed.

The pipeline scores the tiny fixture live and the other seed's package in shadow;
the store's agreement and label shares must be what the two models say when
each scores the texts directly.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

from export.tiny import build_tiny_package, sample_texts
from models.runtime import open_scorer
from streams.events.contract import Source
from streams.events.sentiment import SENTIMENT_LABELS
from streams.service.pipeline import BatchProcessor, RawRecord
from streams.service.shadow import ShadowScorer
from streams.settings import StoreSettings
from streams.store import open_store
from tests.clock import day_at
from tests.events import ms
from tests.packages import TINY_PACKAGE

NOW = day_at(10, 30)


def test_a_candidate_trained_from_another_seed_is_compared(tmp_path: Path) -> None:
    live = open_scorer(TINY_PACKAGE)
    other = open_scorer(build_tiny_package(tmp_path / "tiny-seed-1", seed=1))
    texts = sample_texts()
    processor = BatchProcessor(
        "review", live, clock=lambda: ms(NOW), shadow=ShadowScorer(other, 1.0)
    )
    records = [
        RawRecord(
            orjson.dumps({"event_id": f"e{i}", "product_id": "p", "text": text}),
            Source("reviews", 0, i, ms(day_at(10))),
        )
        for i, text in enumerate(texts)
    ]
    result = processor.process(records)
    assert len(result.enriched) == len(texts)

    ours, theirs = live.score(texts).probs, other.score(texts).probs
    assert ours is not None and theirs is not None
    want_live = [SENTIMENT_LABELS[int(i)] for i in ours.argmax(axis=1)]
    want_other = [SENTIMENT_LABELS[int(i)] for i in theirs.argmax(axis=1)]
    agree = sum(a == b for a, b in zip(want_live, want_other, strict=True))
    assert 0 < agree < len(texts)  # two different models, both fit to the same templates

    store = open_store(StoreSettings(path=tmp_path / "chdb", database="rp_shadow"))
    try:
        store.write(result.enriched)
        [found] = store.shadow_comparisons("24h", NOW)
    finally:
        store.close()
    assert found["compared"] == len(texts)
    assert found["agreement"] == agree / len(texts)
    live_counts, other_counts = Counter(want_live), Counter(want_other)
    for label in SENTIMENT_LABELS:
        share = found["shares"][label]
        assert share["primary"] == live_counts[label] / len(texts)
        assert share["candidate"] == other_counts[label] / len(texts)
