"""One micro-batch: poison records become dead letters without touching their neighbours."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.package import load_package
from models.scorer import Scorer, Scores
from streams.cli import main
from streams.events.contract import Source
from streams.events.enriched import EnrichedReview, ModelRef
from streams.service.pipeline import BatchProcessor, RawRecord
from streams.tools.score import score_lines
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
    assert [e.input.event_id for e in result.enriched] == ["e0", "e2", "e4"]
    assert [(d.source.offset, d.reason) for d in result.dead_letters] == [
        (1, "invalid_utf8"),
        (3, "empty_text"),
    ]
    for event in result.enriched:
        validate("review.enriched", orjson.loads(event.to_json()))
        assert event.model == ModelRef("tiny", "0.0.1")
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
        assert isinstance(event, EnrichedReview)
        assert event.sentiment.label == label
        assert abs(event.sentiment.score - p) < 1e-6


def test_all_poison_batch_yields_only_dead_letters(tiny_scorer: Scorer) -> None:
    processor = BatchProcessor("question", tiny_scorer, clock=lambda: NOW)
    result = processor.process([record(0, b"{"), record(1, b"[]")])
    assert result.enriched == [] and len(result.dead_letters) == 2


def test_score_command_gives_one_line_per_input_line(tiny_scorer: Scorer) -> None:
    processor = BatchProcessor("review", tiny_scorer)
    lines = io.BytesIO(b'{"text": "good"}\nnot json\n{"text": "bad", "event_id": "x"}\n')
    out = [orjson.loads(line) for line in score_lines(lines, processor, batch_size=2)]
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


class FailingOn:
    """The real tiny scorer, made to fail on batches holding a given text (a fault, not a stub)."""

    def __init__(self, scorer: Scorer, poison: str) -> None:
        self.scorer = scorer
        self.package = scorer.package
        self.poison = poison

    def score(self, texts: Sequence[str]) -> Scores:
        if self.poison in texts:
            raise RuntimeError("onnxruntime: simulated kernel failure")
        return self.scorer.score(texts)


def test_a_record_that_fails_after_validation_is_isolated(tiny_scorer: Scorer) -> None:
    scorer: Any = FailingOn(tiny_scorer, "poison")
    processor = BatchProcessor("review", scorer, clock=lambda: NOW)
    texts = ["good", "fine", "poison", "bad", "ok", "great", "meh"]
    result = processor.process([record(i, review(i, t)) for i, t in enumerate(texts)])
    assert [e.input.event_id for e in result.enriched] == [f"e{i}" for i in (0, 1, 3, 4, 5, 6)]
    assert result.enriched_from[2].source.offset == 3
    (dead,) = result.dead_letters
    assert (dead.reason, dead.source.offset) == ("processing_error", 2)
    assert "simulated kernel failure" in dead.detail
    validate("deadletter", orjson.loads(dead.to_json()))
    assert processor.stats.processed["review"] == 6
    assert processor.stats.dead_letters == {"processing_error": 1}


POISON_TS = [10**15, 2**64 - 1, "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


def test_poison_timestamps_become_dead_letters(tiny_scorer: Scorer) -> None:
    processor = BatchProcessor("review", tiny_scorer, clock=lambda: NOW)
    lines = [
        orjson.dumps({"event_id": f"t{i}", "product_id": "p", "text": "x", "ts": ts})
        for i, ts in enumerate(POISON_TS)
    ]
    batch = [record(0, review(0))] + [record(i + 1, v) for i, v in enumerate(lines)]
    result = processor.process(batch)
    assert [e.input.event_id for e in result.enriched] == ["e0"]
    assert [d.reason for d in result.dead_letters] == ["invalid_value"] * len(POISON_TS)


def test_score_command_keeps_one_line_per_input_through_poison(tiny_scorer: Scorer) -> None:
    scorer: Any = FailingOn(tiny_scorer, "poison")
    processor = BatchProcessor("review", scorer)
    lines = [b'{"text": "good"}', b'{"text": "poison"}', b'{"text": "x", "ts": 1e400}']
    lines += [orjson.dumps({"text": "ok", "ts": ts}) for ts in POISON_TS] + [b'{"text": "fine"}']
    text = io.BytesIO(b"\n".join(lines) + b"\n")
    out = [orjson.loads(line) for line in score_lines(text, processor, batch_size=4)]
    assert len(out) == len(lines)
    assert [o.get("error", {}).get("reason") for o in out] == [
        None,
        "processing_error",
        "invalid_json",
        *["invalid_value"] * 4,
        None,
    ]


VALID = {"event_id": "e", "product_id": "p", "text": "好评 good", "rating": 4, "ts": 1_764_000_000}
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
MUTATED = st.builds(  # the stdlib encoder: it also writes big integers and Infinity
    lambda drop, extra: json.dumps(
        {**{k: v for k, v in VALID.items() if k not in drop}, **extra}
    ).encode(),
    st.sets(st.sampled_from(sorted(VALID))),
    st.dictionaries(st.sampled_from([*VALID, "user_id", "category", "lang"]), VALUES, max_size=3),
)
RECORDS = st.lists(st.one_of(st.binary(max_size=200), MUTATED), min_size=1, max_size=12)
FUZZ_COUNTS = {"inputs": 0, "enriched": 0, "dead_letters": 0}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=RECORDS)
def test_fuzz_process_never_raises_and_accounts_for_every_input(
    tiny_scorer: Scorer, values: list[bytes]
) -> None:
    processor = BatchProcessor("review", tiny_scorer, clock=lambda: NOW)
    batch = [record(i, v) for i, v in enumerate(values)]
    result = processor.process(batch)
    offsets = [r.source.offset for r in result.enriched_from]
    offsets += [d.source.offset for d in result.dead_letters]
    assert sorted(offsets) == list(range(len(values)))  # exactly one output per input
    assert len(result.enriched) == len(result.enriched_from)
    for d in result.dead_letters:
        assert d.reason != "processing_error", d.detail  # validation caught it
    for event in result.enriched:
        validate("review.enriched", orjson.loads(event.to_json()))
    FUZZ_COUNTS["inputs"] += len(values)
    FUZZ_COUNTS["enriched"] += len(result.enriched)
    FUZZ_COUNTS["dead_letters"] += len(result.dead_letters)


def test_fuzz_counts_are_printed() -> None:
    """Prints the fuzz test's totals (run after it: pytest runs a file's tests in order)."""
    print(f"\nprocess() fuzz: {FUZZ_COUNTS}, crashes 0, unaccounted 0")
    assert FUZZ_COUNTS["inputs"] == FUZZ_COUNTS["enriched"] + FUZZ_COUNTS["dead_letters"]


def test_score_command_takes_another_package(tiny_package_dir: Path, tmp_path: Path) -> None:
    reviews = tmp_path / "reviews.jsonl"
    reviews.write_text('{"text": "good"}\n{"text": "terrible"}\n')
    args = ["score", "--model", str(tiny_package_dir), str(reviews)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 2
    assert {o["model"]["name"] for o in out} == {load_package(tiny_package_dir).name}
    missing = CliRunner().invoke(main, ["score", "--model", str(tmp_path / "nope"), str(reviews)])
    assert missing.exit_code == 2 and "does not exist" in missing.output
