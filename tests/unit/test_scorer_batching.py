"""Token-budget sub-batches, the dedup cache and tokenisation overlap, on the tiny model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.cache import ScoreCache
from models.package import ModelPackage
from models.runtime import create_session
from models.scorer import Scorer, load_tokenizer, plan_sub_batches

TEXTS = [
    "质量很好，物流也快",
    "terrible, it broke after one day and support never answered " * 3,
    "ok",
    "这本书内容空洞，不建议购买。印刷也一般，纸张很薄，还有错别字。",
    "Fits well, nice fabric.",
    "great",
    "the zipper broke in a week, the seams came apart and the colour ran in the first wash",
]


class RecordingRunner:
    """The real session, remembering the shape of every run."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.shapes: list[tuple[int, int]] = []

    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> list[Any]:
        self.shapes.append(input_feed["input_ids"].shape)
        result: list[Any] = self.session.run(output_names, input_feed)
        return result


def _scorer(package: ModelPackage, **kwargs: Any) -> tuple[Scorer, RecordingRunner]:
    runner = RecordingRunner(create_session(package.model_path))
    return Scorer(package, runner, load_tokenizer(package), **kwargs), runner


@given(
    st.lists(st.integers(1, 128), max_size=60),
    st.integers(1, 64),
    st.sampled_from([0, 1, 64, 128, 300, 1024]),
)
def test_plan_scores_every_text_once_within_the_budget(
    lengths: list[int], max_rows: int, max_tokens: int
) -> None:
    runs = plan_sub_batches(lengths, max_rows, max_tokens)
    flat = [i for run in runs for i in run]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)
    for run in runs:
        assert 1 <= len(run) <= max_rows
        padded = len(run) * max(lengths[i] for i in run)
        if max_tokens and len(run) > 1:
            assert padded <= max_tokens
        if max_tokens and padded > max_tokens:
            assert len(run) == 1  # an over-long text alone


def test_budget_cuts_runs_by_padded_tokens(tiny_package: ModelPackage) -> None:
    budget = 64
    scorer, runner = _scorer(tiny_package, sub_batch=100, max_tokens=budget)
    reference, _ = _scorer(tiny_package, sub_batch=1)
    long_text = "word " * 500  # truncated to max_length, over the budget: runs alone
    texts = [*TEXTS, long_text]
    scores = scorer.score(texts)
    alone = reference.score(texts)
    assert scores.probs is not None and alone.probs is not None
    np.testing.assert_allclose(scores.probs, alone.probs, atol=1e-5)  # input order kept
    assert sum(rows for rows, _ in runner.shapes) == len(texts)  # each text scored once
    over = [(rows, width) for rows, width in runner.shapes if rows * width > budget]
    assert over == [(1, tiny_package.max_length)]
    assert len(runner.shapes) < len(texts)  # short ones share runs


def test_cache_hits_return_the_first_result_bit_for_bit(tiny_package: ModelPackage) -> None:
    scorer, runner = _scorer(tiny_package, sub_batch=4, cache=ScoreCache(100))
    plain, _ = _scorer(tiny_package, sub_batch=4)
    first = scorer.score(TEXTS)
    fresh = plain.score(TEXTS)
    assert first.probs is not None and fresh.probs is not None and first.embeddings is not None
    np.testing.assert_array_equal(first.probs, fresh.probs)  # same runs as without a cache
    assert (scorer.cache_hits, scorer.cache_misses) == (0, len(TEXTS))
    runs = len(runner.shapes)

    again = scorer.score([TEXTS[3], TEXTS[0], TEXTS[3]])
    assert len(runner.shapes) == runs  # all hits: no model run
    assert again.probs is not None and again.embeddings is not None
    np.testing.assert_array_equal(again.probs, first.probs[[3, 0, 3]])
    np.testing.assert_array_equal(again.embeddings, first.embeddings[[3, 0, 3]])
    assert (scorer.cache_hits, scorer.cache_misses) == (3, len(TEXTS))


def test_cache_scores_a_text_repeated_in_one_call_once(tiny_package: ModelPackage) -> None:
    scorer, runner = _scorer(tiny_package, sub_batch=100, cache=ScoreCache(100))
    scores = scorer.score(["ok", "great", "ok", "ok"])
    assert runner.shapes == [(2, runner.shapes[0][1])]
    assert scores.probs is not None
    np.testing.assert_array_equal(scores.probs[0], scores.probs[2])
    assert (scorer.cache_hits, scorer.cache_misses) == (2, 2)


def test_cache_is_keyed_by_prefix_and_bounded(tiny_package: ModelPackage) -> None:
    cache = ScoreCache(3)
    scorer, _ = _scorer(tiny_package, cache=cache)
    scorer.score(["ok"])
    scorer.score(["ok"], prefix="query: ")  # another input to the model: a miss
    assert (cache.hits, cache.misses) == (0, 2)
    others = [t for t in TEXTS if t != "ok"]
    scorer.score(others)
    assert len(cache) == 3
    scorer.score([others[-1]])  # most recent: kept
    scorer.score(["ok"])  # least recent: evicted
    assert (cache.hits, cache.misses) == (1, 2 + len(others) + 1)
    assert cache.hit_rate == pytest.approx(1 / (3 + len(others) + 1))


def test_empty_input_with_and_without_cache(tiny_package: ModelPackage) -> None:
    for cache in (None, ScoreCache(4)):
        scores, _ = _scorer(tiny_package, cache=cache)
        empty = scores.score([])
        assert empty.probs is not None and empty.probs.shape == (0, 3)


def test_overlapped_tokenisation_gives_the_sequential_results(
    tiny_package: ModelPackage,
) -> None:
    batches = [TEXTS[:3], TEXTS[3:], [], TEXTS[::-1], ["ok", "ok"]]
    for cache_size in (0, 100):
        scorer, _ = _scorer(tiny_package, sub_batch=2, max_tokens=40)
        overlapped, _ = _scorer(tiny_package, sub_batch=2, max_tokens=40)
        if cache_size:
            scorer.cache, overlapped.cache = ScoreCache(cache_size), ScoreCache(cache_size)
        sequential = [scorer.score(b) for b in batches]
        together = list(overlapped.score_many(batches))
        assert len(together) == len(batches)
        for a, b in zip(sequential, together, strict=True):
            assert a.probs is not None and b.probs is not None
            np.testing.assert_array_equal(a.probs, b.probs)
            if a.embeddings is not None or b.embeddings is not None:
                np.testing.assert_array_equal(a.embeddings, b.embeddings)
        assert overlapped.cache_hits == scorer.cache_hits
