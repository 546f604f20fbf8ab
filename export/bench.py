"""Model speed at the median review length: int8 vs fp32 ONNX vs PyTorch ``pipeline()``.

All three score the same texts in the same process and run, batch by batch,
so the ratios hold on a noisy shared machine. Texts are dev reviews (Chinese
dev + English held-out) whose token count equals the median of those sets.
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


def median_length_texts(scorer: Scorer, data_dir: Path, n: int) -> tuple[list[str], int]:
    """``n`` dev reviews whose token count (prefix included) is the dev-set median."""
    texts = [e.text for e in zh_shopping(data_dir, "dev")] + [
        e.text for e in en_reviews(data_dir, "heldout")
    ]
    lengths = [len(ids) for ids in scorer.encode(texts)]
    median = int(statistics.median(lengths))
    picked = [t for t, n_tok in zip(texts, lengths, strict=True) if n_tok == median]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(picked))
    return [picked[i] for i in order[:n]], median


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


def run_model_bench(
    package_dir: Path,
    fp32_dir: Path | None,
    checkpoint: Path | None,
    data_dir: Path,
    *,
    batches: Sequence[int] = (1, 8, 32, 64),
    n: int = 256,
    repeats: int = 3,
) -> dict[str, Any]:
    import onnxruntime as ort

    threads = os.cpu_count() or 1
    int8 = open_scorer(package_dir, threads=threads, sub_batch=10**6)
    texts, median = median_length_texts(int8, data_dir, n)
    runners: dict[str, Callable[[Sequence[str]], object]] = {"onnx_int8": int8.score}
    if fp32_dir is not None:
        runners["onnx_fp32"] = open_scorer(fp32_dir, threads=threads, sub_batch=10**6).score
    versions = {"onnxruntime": ort.__version__}
    if checkpoint is not None:
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
        prefix = int8.package.text_prefix

        def hf(batch: Sequence[str]) -> object:
            return pipe([prefix + t for t in batch], batch_size=len(batch), truncation=True)

        runners["hf_pipeline_torch_fp32"] = hf
        versions |= {"torch": torch.__version__, "transformers": transformers.__version__}

    results: dict[str, dict[str, Any]] = {name: {} for name in runners}
    for batch in batches:  # interleaved: every runner sees the same machine state
        for name, run in runners.items():
            results[name][str(batch)] = _throughput(run, texts, batch, repeats)
    report: dict[str, Any] = {
        "texts": len(texts),
        "median_tokens": median,
        "threads": threads,
        "cpu": platform.processor() or platform.machine(),
        "versions": versions,
        "results": results,
    }
    best = max(batches, key=lambda b: results["onnx_int8"][str(b)]["per_s"])
    report["best_int8_batch"] = best
    for other in ("onnx_fp32", "hf_pipeline_torch_fp32"):
        if other in results:
            report[f"ratio_int8_over_{other}"] = {
                str(b): round(
                    results["onnx_int8"][str(b)]["per_s"] / results[other][str(b)]["per_s"], 2
                )
                for b in batches
            }
    return report


def length_texts(scorer: Scorer, texts: Sequence[str], tokens: int, n: int) -> list[str]:
    """Up to ``n`` of ``texts`` whose token count (prefix included) is ``tokens`` ± 5 %,
    closest first, shuffled with a fixed seed."""
    lengths = [len(ids) for ids in scorer.encode(texts)]
    slack = max(1, round(tokens * 0.05))
    near = sorted(
        (abs(n_tok - tokens), i) for i, n_tok in enumerate(lengths) if abs(n_tok - tokens) <= slack
    )
    picked = [texts[i] for _, i in near[:n]]
    order = np.random.default_rng(0).permutation(len(picked))
    return [picked[i] for i in order]


def run_package_comparison(
    fast_dir: Path,
    default_dir: Path,
    data_dir: Path,
    *,
    batch: int = 32,
    threads: int = 2,
    n: int = 256,
    long_tokens: int = 100,
    repeats: int = 7,
) -> dict[str, Any]:
    """Reviews/s of two packages on the same texts, interleaved in one run: dev reviews at
    the dev median length, and English held-out reviews of ~``long_tokens`` tokens."""
    runners = {
        "fast": open_scorer(fast_dir, threads=threads, sub_batch=batch),
        "default": open_scorer(default_dir, threads=threads, sub_batch=batch),
    }
    median_texts, median = median_length_texts(runners["default"], data_dir, n)
    english = [e.text for e in en_reviews(data_dir, "heldout")]
    sets = {
        f"dev_median_{median}_tokens": median_texts,
        f"en_{long_tokens}_tokens": length_texts(runners["default"], english, long_tokens, n),
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
