"""Shadow scoring in the pipeline: a deterministic sample, never on the topic, never in the way."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from models.errors import ModelIntegrityError, ModelLabelsError, ModelPackageError
from models.package import ModelPackage
from models.runtime import create_session
from models.scorer import Scorer, Scores, load_tokenizer
from streams.events.contract import Source
from streams.events.enriched import EnrichedReview, ModelRef
from streams.service.metrics import Metrics
from streams.service.pipeline import BatchProcessor, RawRecord
from streams.service.shadow import PackageInfo, RollOut, ShadowScorer, open_shadow, sampled
from streams.settings import Settings, ShadowSettings
from tests.exposition import Exposition
from tests.schemas import validate

NOW = 1_764_300_000_000
TEXTS = ["质量很好", "terrible product", "it is ok I guess", "物流太慢了", "love it", "meh"]


def records(ids: Sequence[int]) -> list[RawRecord]:
    return [
        RawRecord(
            orjson.dumps(
                {"event_id": f"e{i}", "product_id": f"p{i % 3}", "text": TEXTS[i % len(TEXTS)]}
            ),
            Source("reviews", 0, i, NOW),
        )
        for i in ids
    ]


def reviews(processor: BatchProcessor, ids: Sequence[int]) -> list[EnrichedReview]:
    result = processor.process(records(ids))
    assert not result.dead_letters
    out = [e for e in result.enriched if isinstance(e, EnrichedReview)]
    assert len(out) == len(ids)
    return out


class Reversed:
    """The tiny model with its logits in reverse label order: a candidate that disagrees."""

    def __init__(self, package: ModelPackage) -> None:
        self.session = create_session(package.model_path)

    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> list[Any]:
        logits, *rest = self.session.run(output_names, input_feed)
        return [logits[:, ::-1], *rest]


class Failing:
    """A candidate whose every call fails."""

    def __init__(self, scorer: Scorer) -> None:
        self.package = scorer.package

    def score(self, texts: Sequence[str], prefix: str | None = None) -> Scores:
        raise RuntimeError("candidate session lost")


def counted(metrics: Metrics, name: str) -> float:
    return Exposition(metrics.exposition().decode()).value(name)


def candidate(package: ModelPackage, version: str = "0.0.2") -> Scorer:
    reversed_package = replace(package, version=version)
    return Scorer(reversed_package, Reversed(package), load_tokenizer(package), sub_batch=4)


def test_the_sample_is_a_function_of_the_event_id() -> None:
    ids = [f"review-{i}" for i in range(10_000)]
    tenth = {i for i in ids if sampled(i, 0.1)}
    assert tenth == {i for i in ids if sampled(i, 0.1)}  # the same picks on every run
    assert 900 <= len(tenth) <= 1100
    assert tenth < {i for i in ids if sampled(i, 0.3)}  # a larger sample keeps the smaller
    assert not any(sampled(i, 0.0) for i in ids)
    assert all(sampled(i, 1.0) for i in ids)


def test_shadow_results_ride_along_but_never_reach_the_topic(tiny_scorer: Scorer) -> None:
    metrics = Metrics()
    shadow = ShadowScorer(tiny_scorer, 1.0, metrics)
    processor = BatchProcessor("review", tiny_scorer, clock=lambda: NOW, shadow=shadow)
    plain = BatchProcessor("review", tiny_scorer, clock=lambda: NOW)
    events = reviews(processor, range(6))
    for event, without in zip(events, reviews(plain, range(6)), strict=True):
        assert event.shadow is not None
        assert event.shadow.model == ModelRef("tiny", "0.0.1")
        assert event.shadow.sentiment == event.sentiment  # the same package agrees
        assert event.to_json() == without.to_json()  # the topic never sees the candidate
        assert "shadow" not in orjson.loads(event.to_json())
        validate("review.enriched", orjson.loads(event.to_json()))
    assert counted(metrics, "reviewpulse_shadow_scored_total") == 6
    assert counted(metrics, "reviewpulse_shadow_inference_seconds_count") == 1


def test_the_same_reviews_are_sampled_however_they_are_batched(
    tiny_package: ModelPackage, tiny_scorer: Scorer
) -> None:
    shadow = ShadowScorer(candidate(tiny_package), 0.5)
    processor = BatchProcessor("review", tiny_scorer, clock=lambda: NOW, shadow=shadow)
    ids = range(40)
    whole = reviews(processor, ids)
    replayed = [e for part in (ids[:7], ids[7:8], ids[8:]) for e in reviews(processor, part)]
    picked = {e.input.event_id for e in whole if e.shadow is not None}
    assert picked == {e.input.event_id for e in replayed if e.shadow is not None}
    assert picked == {f"e{i}" for i in ids if sampled(f"e{i}", 0.5)}
    assert 0 < len(picked) < len(ids)
    for event in whole:
        if event.shadow is None:
            continue
        assert event.shadow.model == ModelRef("tiny", "0.0.2")
        # the candidate reads the logits backwards: P(negative) and P(positive) swap
        assert event.shadow.sentiment.probs == pytest.approx(event.sentiment.probs[::-1])


def test_a_failing_candidate_never_fails_the_batch(tiny_scorer: Scorer) -> None:
    metrics = Metrics()
    shadow = ShadowScorer(tiny_scorer, 1.0, metrics)
    shadow.scorer = Failing(tiny_scorer)  # type: ignore[assignment]
    processor = BatchProcessor(
        "review", tiny_scorer, clock=lambda: NOW, shadow=shadow, metrics=metrics
    )
    result = processor.process(records(range(6)))
    assert len(result.enriched) == 6 and result.dead_letters == []
    assert all(isinstance(e, EnrichedReview) and e.shadow is None for e in result.enriched)
    assert processor.stats.processed["review"] == 6
    assert counted(metrics, "reviewpulse_shadow_failures_total") == 1
    assert counted(metrics, "reviewpulse_shadow_scored_total") == 0


def test_questions_are_never_shadow_scored(tiny_scorer: Scorer) -> None:
    shadow = ShadowScorer(tiny_scorer, 1.0)
    assert BatchProcessor("question", tiny_scorer, shadow=shadow).shadow is None


def test_a_candidate_with_other_labels_is_refused(tiny_package: ModelPackage) -> None:
    other = Scorer(
        replace(tiny_package, labels=("positive", "neutral", "negative")),
        Reversed(tiny_package),
        load_tokenizer(tiny_package),
    )
    with pytest.raises(ModelLabelsError, match="declares labels"):
        ShadowScorer(other, 0.1)


def test_a_broken_candidate_package_stops_the_start(tiny_package_dir: Path, tmp_path: Path) -> None:
    metrics = Metrics()
    missing = Settings(shadow=ShadowSettings(package=tmp_path / "nope"))
    with pytest.raises(ModelPackageError, match="REVIEWPULSE_SHADOW__PACKAGE"):
        open_shadow(missing, metrics)
    tampered = tmp_path / "tampered"
    shutil.copytree(tiny_package_dir, tampered)
    model = tampered / "model.onnx"
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ModelIntegrityError, match="shadow model"):
        open_shadow(Settings(shadow=ShadowSettings(package=tampered)), metrics)
    assert open_shadow(Settings(), metrics) is None
    shadow = open_shadow(
        Settings(shadow=ShadowSettings(package=tiny_package_dir, sample=0.25)), metrics
    )
    assert shadow is not None and shadow.sample == 0.25


def test_roll_out_describes_both_packages(tiny_scorer: Scorer, tiny_package: ModelPackage) -> None:
    assert RollOut.of(tiny_scorer, None) == RollOut(PackageInfo.of(tiny_scorer))
    roll_out = RollOut.of(tiny_scorer, ShadowScorer(candidate(tiny_package), 0.2))
    assert roll_out.sample == 0.2
    assert roll_out.candidate is not None
    assert roll_out.candidate.to_dict() == {
        "name": "tiny",
        "version": "0.0.2",
        "labels": ["negative", "neutral", "positive"],
        "device": "cpu",
    }
