"""One micro-batch: poison records become dead letters without touching their neighbours."""

from __future__ import annotations

import io

import orjson

from models.scorer import Scorer
from streams.pipeline import BatchProcessor, RawRecord
from streams.records import Source
from streams.score import score_lines
from tests.schemas import validate

NOW = 1_764_300_000_000


def record(offset: int, value: bytes) -> RawRecord:
    return RawRecord(value, Source("reviews", 1, offset, NOW))


def review(i: int, text: str = "很好用，推荐") -> bytes:
    return orjson.dumps({"event_id": f"e{i}", "product_id": f"p{i % 3}", "text": text})


def test_poison_inside_a_batch_neither_blocks_nor_loses_neighbours(tiny_scorer: Scorer) -> None:
    processor = BatchProcessor("review", tiny_scorer, clock=lambda: NOW)
    batch = [
        record(0, review(0)),
        record(1, b"\xff\xfe"),
        record(2, review(2, "bad, broke")),
        record(3, review(3, "   ")),
        record(4, review(4, "fine")),
    ]
    result = processor.process(batch)
    assert [e["event_id"] for e in result.enriched] == ["e0", "e2", "e4"]
    assert [(d["source"]["offset"], d["reason"]) for d in result.dead_letters] == [
        (1, "invalid_utf8"),
        (3, "empty_text"),
    ]
    for event in result.enriched:
        validate("review.enriched", event)
        assert event["model"] == {"name": "tiny", "version": "0.0.1"}
    assert processor.stats.processed["review"] == 3
    assert processor.stats.dead_letters == {"invalid_utf8": 1, "empty_text": 1}


def test_enriched_scores_match_the_scorer(tiny_scorer: Scorer) -> None:
    processor = BatchProcessor("review", tiny_scorer, clock=lambda: NOW)
    texts = ["质量很好", "terrible product", "it is ok I guess"]
    result = processor.process([record(i, review(i, t)) for i, t in enumerate(texts)])
    scores = tiny_scorer.score(texts)
    assert scores.probs is not None
    for i, event in enumerate(result.enriched):
        label, p = scores.top(i)
        assert event["sentiment"]["label"] == label
        assert abs(event["sentiment"]["score"] - p) < 1e-6


def test_all_poison_batch_yields_only_dead_letters(tiny_scorer: Scorer) -> None:
    processor = BatchProcessor("question", tiny_scorer, clock=lambda: NOW)
    result = processor.process([record(0, b"{"), record(1, b"[]")])
    assert result.enriched == [] and len(result.dead_letters) == 2


def test_score_command_gives_one_line_per_input_line(tiny_scorer: Scorer) -> None:
    processor = BatchProcessor("review", tiny_scorer)
    lines = io.BytesIO(b'{"text": "good"}\nnot json\n{"text": "bad", "event_id": "x"}\n')
    out = list(score_lines(lines, processor, batch_size=2))
    assert len(out) == 3
    assert out[0]["event_id"] and out[0]["product_id"] == "unknown"
    assert out[1] == {
        "line": 2,
        "error": {"reason": "invalid_json", "detail": out[1]["error"]["detail"]},
    }
    assert out[2]["event_id"] == "x" and out[2]["sentiment"]["label"] in (
        "negative",
        "neutral",
        "positive",
    )
