"""Model speed, one run, side by side: int8 with count batching vs token-budget
batching (and with tokenisation overlapped), intra-op threads, fp32 ONNX and
PyTorch ``pipeline()``.

Every runner scores the same texts in the same process, interleaved batch by
batch, so the ratios hold on a noisy shared machine. Text sets:

* ``dev_median``: dev reviews (Chinese dev + English held-out) whose token count
  is the median of those sets (36 tokens for the default model);
* ``en_100``: English held-out reviews of 80–128 tokens (~100);
* ``dev_mixed``: dev reviews at their natural lengths, shuffled (what a stream sees).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.data import en_reviews, zh_shopping
from models.runtime import open_scorer
from models.scorer import Scorer

COUNT_SUB_BATCH = 16  # the worker's sub-batch before token budgets
EN_TOKENS = (80, 128)


def _pick(texts: list[str], n: int) -> list[str]:
    order = np.random.default_rng(0).permutation(len(texts))
    return [texts[i] for i in order[:n]]


def text_sets(scorer: Scorer, data_dir: Path, n: int) -> tuple[dict[str, list[str]], int]:
    """The three text sets of ``n`` texts each, and the dev median token count."""
    zh = [e.text for e in zh_shopping(data_dir, "dev")]
    en = [e.text for e in en_reviews(data_dir, "heldout")]
    texts = zh + en
    lengths = [len(ids) for ids in scorer.encode(texts)]
    median = int(statistics.median(lengths))
    en_lengths = lengths[len(zh) :]
    sets = {
        "dev_median": _pick([t for t, k in zip(texts, lengths, strict=True) if k == median], n),
        "en_100": _pick(
            [t for t, k in zip(en, en_lengths, strict=True) if EN_TOKENS[0] <= k <= EN_TOKENS[1]],
            n,
        ),
        "dev_mixed": _pick(texts, n),
    }
    return sets, median


def _throughput(
    run: Callable[[Sequence[str]], object], texts: list[str], batch: int, repeats: int
) -> dict[str, float]:
    run(texts[:batch])  # warm-up
    rates, latencies = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(0, len(texts), batch):
            t0 = time.perf_counter()
            run(texts[i : i + batch])
            latencies.append((time.perf_counter() - t0) * 1000)
        rates.append(len(texts) / (time.perf_counter() - started))
    q = np.percentile(latencies, [50, 95, 99])
    return {
        "per_s": round(statistics.median(rates), 1),
        "batch_ms_p50": round(q[0], 2),
        "batch_ms_p95": round(q[1], 2),
        "batch_ms_p99": round(q[2], 2),
    }


def _overlapped(scorer: Scorer, texts: list[str], batch: int, repeats: int) -> dict[str, float]:
    """Reviews/s of :meth:`Scorer.score_many` (tokenising ahead in a thread)."""
    batches = [texts[i : i + batch] for i in range(0, len(texts), batch)]
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _scores in scorer.score_many(batches):
            pass
        rates.append(len(texts) / (time.perf_counter() - started))
    return {"per_s": round(statistics.median(rates), 1)}


def _hf_runner(checkpoint: Path, prefix: str, threads: int) -> Callable[[Sequence[str]], object]:
    import torch
    import transformers

    torch.set_num_threads(threads)
    pipe = transformers.pipeline(
        "text-classification",
        model=str(checkpoint),
        tokenizer=str(checkpoint),
        device="cpu",
        top_k=None,
    )

    def hf(batch: Sequence[str]) -> object:
        return pipe([prefix + t for t in batch], batch_size=len(batch), truncation=True)

    return hf


def _ratios(results: dict[str, dict[str, Any]], over: str, under: str) -> dict[str, float]:
    if over not in results or under not in results:
        return {}
    return {
        b: round(results[over][b]["per_s"] / results[under][b]["per_s"], 2)
        for b in results[over]
        if b in results[under]
    }


def run_model_bench(
    package_dir: Path,
    fp32_dir: Path | None,
    checkpoint: Path | None,
    data_dir: Path,
    *,
    batches: Sequence[int] = (1, 64),
    max_tokens: int = 1024,
    sweep: Sequence[int] = (),
    n: int = 256,
    repeats: int = 3,
) -> dict[str, Any]:
    """Reviews/s and batch latencies per text set, runner and micro-batch size."""
    import onnxruntime as ort

    threads = os.cpu_count() or 1
    count = open_scorer(package_dir, threads=threads, sub_batch=COUNT_SUB_BATCH)
    budget = open_scorer(package_dir, threads=threads, sub_batch=10**6, max_tokens=max_tokens)
    one_thread = open_scorer(package_dir, threads=1, sub_batch=10**6, max_tokens=max_tokens)
    sets, median = text_sets(count, data_dir, n)
    runners: dict[str, Callable[[Sequence[str]], object]] = {
        "int8_count": count.score,
        "int8_budget": budget.score,
        "int8_budget_1_thread": one_thread.score,
    }
    versions = {"onnxruntime": ort.__version__}
    if fp32_dir is not None:
        fp32 = open_scorer(fp32_dir, threads=threads, sub_batch=10**6, max_tokens=max_tokens)
        runners["fp32_budget"] = fp32.score
    if checkpoint is not None:
        import torch
        import transformers

        runners["hf_pipeline_torch_fp32"] = _hf_runner(
            checkpoint, count.package.text_prefix, threads
        )
        versions |= {"torch": torch.__version__, "transformers": transformers.__version__}

    report: dict[str, Any] = {
        "texts_per_set": n,
        "median_tokens": median,
        "count_sub_batch": COUNT_SUB_BATCH,
        "max_tokens": max_tokens,
        "threads": threads,
        "cpu": platform.processor() or platform.machine(),
        "versions": versions,
    }
    for set_name, texts in sets.items():
        lengths = [len(ids) for ids in count.encode(texts)]
        results: dict[str, dict[str, Any]] = {name: {} for name in runners}
        results["int8_budget_overlap"] = {}
        for batch in batches:  # interleaved: every runner sees the same machine state
            for name, run in runners.items():
                results[name][str(batch)] = _throughput(run, texts, batch, repeats)
            results["int8_budget_overlap"][str(batch)] = _overlapped(budget, texts, batch, repeats)
        report[set_name] = {
            "tokens_p50": int(np.median(lengths)),
            "tokens_max": max(lengths),
            "results": results,
            "ratio_budget_over_count": _ratios(results, "int8_budget", "int8_count"),
            "ratio_overlap_over_budget": _ratios(results, "int8_budget_overlap", "int8_budget"),
            "ratio_2_threads_over_1": _ratios(results, "int8_budget", "int8_budget_1_thread"),
            "ratio_int8_over_fp32": _ratios(results, "int8_budget", "fp32_budget"),
            "ratio_int8_over_pipeline": _ratios(results, "int8_budget", "hf_pipeline_torch_fp32"),
        }
    if sweep:
        report["budget_sweep"] = _sweep(package_dir, sets, threads, sweep, max(batches), repeats)
    return report


def _sweep(
    package_dir: Path,
    sets: dict[str, list[str]],
    threads: int,
    budgets: Sequence[int],
    batch: int,
    repeats: int,
) -> dict[str, dict[str, float]]:
    """int8 reviews/s per token budget (micro-batch ``batch``), budgets interleaved."""
    scorers = {
        str(t): open_scorer(package_dir, threads=threads, sub_batch=10**6, max_tokens=t)
        for t in budgets
    }
    out: dict[str, dict[str, float]] = {name: {} for name in sets}
    for name, texts in sets.items():
        for t, scorer in scorers.items():
            out[name][t] = _throughput(scorer.score, texts, batch, repeats)["per_s"]
    return out


def run_package_comparison(
    fast_dir: Path,
    default_dir: Path,
    data_dir: Path,
    *,
    batch: int = 32,
    threads: int = 2,
    n: int = 256,
    repeats: int = 7,
) -> dict[str, Any]:
    """Reviews/s of two packages on the same texts, interleaved in one run: dev reviews at
    the dev median length, and English held-out reviews of 80–128 tokens (:func:`text_sets`)."""
    runners = {
        "fast": open_scorer(fast_dir, threads=threads, sub_batch=batch),
        "default": open_scorer(default_dir, threads=threads, sub_batch=batch),
    }
    picked, median = text_sets(runners["default"], data_dir, n)
    sets = {
        f"dev_median_{median}_tokens": picked["dev_median"],
        f"en_{EN_TOKENS[0]}_{EN_TOKENS[1]}_tokens": picked["en_100"],
    }
    results: dict[str, dict[str, Any]] = {}
    for set_name, texts in sets.items():
        passes: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(repeats):  # alternating passes: both see the same machine state
            for name, scorer in runners.items():
                passes[name].append(_throughput(scorer.score, texts, batch, 1)["per_s"])
        rates = {name: round(statistics.median(v), 1) for name, v in passes.items()}
        results[set_name] = {
            "per_s": rates,
            "passes_per_s": passes,
            "texts": len(texts),
            "ratio_fast_over_default": round(rates["fast"] / rates["default"], 2),
        }
    return {
        "packages": {name: str(s.package.root) for name, s in runners.items()},
        "batch": batch,
        "threads": threads,
        "repeats": repeats,
        "cpu": platform.processor() or platform.machine(),
        "results": results,
    }
