"""``reviewpulse bench gpu`` (``deploy/gpu/bench.sh``): reviews/s on the CUDA provider.

On a GPU the default package's int8 model is converted to fp16
(:func:`export.fp16.fp16_model`) and run on the CUDA execution provider through
IO binding, with large token budgets. It prints, as JSON:

* ``model_only_per_s``: ONNX runs alone on ready token ids (``tokens`` each,
  real reviews cut to that length), ``rows`` texts per run;
* ``scorer_per_s``: :meth:`Scorer.score` on the demo reviews (tokenise, pad, run,
  softmax), one micro-batch of ``batch`` texts per call;
* ``end_to_end_per_s``: the worker's processing of the same reviews as JSON
  records (parse, validate, score, enriched JSON), without Kafka or the store.

Without a CUDA provider it says so on stderr and in the JSON
(``"fallback": true``) and measures the int8 package on the CPU instead.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from models.runtime import CUDA, IOBindingRunner, create_session, open_scorer
from models.scorer import Scorer
from streams.events.contract import Source
from streams.service.pipeline import BatchProcessor, RawRecord
from streams.tools.samples import review_events


def _rate(n_texts: int, started: float) -> float:
    return round(n_texts / (time.perf_counter() - started), 1)


def _token_rows(scorer: Scorer, texts: list[str], rows: int, tokens: int) -> dict[str, Any]:
    """A ``rows`` × ``tokens`` feed of real reviews' ids, each cut to ``tokens``."""
    ids = [x for x in scorer.encode(texts) if len(x) >= tokens]
    if not ids:
        raise ValueError(f"no sample review has {tokens} tokens")
    input_ids = np.array([ids[i % len(ids)][:tokens] for i in range(rows)], dtype=np.int64)
    return {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}


def run_gpu_bench(
    package_dir: Path,
    work_dir: Path,
    *,
    tokens: int = 36,
    rows: int = 2048,
    runs: int = 50,
    batch: int = 4096,
    events: int = 40_000,
    max_tokens: int = 262_144,
) -> dict[str, Any]:
    """The measurements above; ``runs`` ONNX runs for model-only."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    report: dict[str, Any] = {
        "onnxruntime": ort.__version__,
        "available_providers": available,
        "machine": platform.machine(),
    }
    if CUDA in available:
        from export.fp16 import fp16_model

        if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from the nvidia-* wheels, if there
            ort.preload_dlls()

        started = time.perf_counter()
        model = fp16_model(package_dir / "model.onnx", work_dir / "model-fp16.onnx")
        report |= {"device": "cuda", "precision": "fp16", "fallback": False}
        report["fp16_conversion_s"] = round(time.perf_counter() - started, 1)
    else:
        message = (
            f"no CUDA execution provider (onnxruntime offers {available}): falling back to "
            "CPU with the package's own (int8) model; these are CPU numbers, not GPU ones"
        )
        print(message, file=sys.stderr)
        model = package_dir / "model.onnx"
        report |= {"device": "cpu", "precision": "int8", "fallback": True, "message": message}
    device = report["device"]
    scorer = open_scorer(
        package_dir, model_path=model, device=device, sub_batch=batch, max_tokens=max_tokens
    )
    session = create_session(model, device=device)
    report["providers"] = session.get_providers()
    if device == "cuda" and report["providers"][0] != CUDA:
        report["message"] = "the CUDA provider did not load (CUDA or cuDNN libraries?): CPU numbers"
        report["fallback"] = True
        print(report["message"], file=sys.stderr)
    runner = IOBindingRunner(session, device=device)

    sample = review_events(events)
    texts = [str(e["text"]) for e in sample]
    feed = _token_rows(scorer, texts[:1000], rows, tokens)
    runner.run(None, feed)  # warm-up: kernels picked, memory arena grown
    started = time.perf_counter()
    for _ in range(runs):
        runner.run(None, feed)
    report["model_only"] = {"tokens": tokens, "rows": rows, "runs": runs}
    report["model_only_per_s"] = _rate(rows * runs, started)

    scorer.score(texts[:batch])
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        scorer.score(texts[i : i + batch])
    report["scorer_per_s"] = _rate(len(texts), started)
    lengths = [len(x) for x in scorer.encode(texts[:1000])]
    report["sample_tokens_p50"] = int(np.median(lengths))

    processor = BatchProcessor("review", scorer)
    now = time.time_ns() // 1_000_000  # the Kafka timestamp stands in for a missing ts
    records = [RawRecord(orjson.dumps(e), Source("bench", 0, i, now)) for i, e in enumerate(sample)]
    started = time.perf_counter()
    enriched = 0
    for i in range(0, len(records), batch):
        for event in processor.process(records[i : i + batch]).enriched:
            event.to_json()
            enriched += 1
    report["end_to_end_per_s"] = _rate(len(records), started)
    report["end_to_end_enriched"] = enriched
    report["end_to_end_over_scorer"] = round(report["end_to_end_per_s"] / report["scorer_per_s"], 3)
    report["sizes"] = {"events": events, "batch": batch, "max_tokens": max_tokens}
    return report
