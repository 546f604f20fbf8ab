"""onnxruntime sessions (CPU by default, CUDA when configured and present) and scorers.

:func:`open_scorer` is the one way a package becomes a :class:`~models.scorer.Scorer`:
the worker, the export commands and the tests all call it. Sessions are created when
the service starts (never at import time) and are safe to call from a worker thread:
onnxruntime releases the GIL while it runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import onnxruntime as ort

from models.errors import ModelPackageError, ProviderError
from models.package import load_package
from models.scorer import Scorer, load_tokenizer

log = logging.getLogger(__name__)

Device = Literal["cpu", "cuda"]
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def choose_providers(device: Device, *, strict: bool = False) -> list[str]:
    """Execution providers for ``device``; CUDA falls back to CPU with a warning.

    With ``strict`` a missing CUDA provider raises :class:`ProviderError` instead.
    """
    if device == "cpu":
        return [CPU]
    available = ort.get_available_providers()
    if CUDA in available:
        return [CUDA, CPU]
    message = (
        f"CUDA requested but onnxruntime offers only {available}; "
        "install onnxruntime-gpu (extra 'gpu') on a machine with a GPU"
    )
    if strict:
        raise ProviderError(message)
    log.warning("%s: falling back to CPU", message)
    return [CPU]


def create_session(
    model_path: Path,
    *,
    device: Device = "cpu",
    intra_op_threads: int = 0,
    strict_device: bool = False,
) -> ort.InferenceSession:
    """Open ``model_path`` with full graph optimisation.

    ``intra_op_threads`` = 0 lets onnxruntime use one thread per physical core.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    providers = choose_providers(device, strict=strict_device)
    try:
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own unexported exception types
        raise ModelPackageError(f"{model_path}: onnxruntime cannot load it: {exc}") from exc
    log.info("onnx session %s on %s", model_path, session.get_providers())
    return session


def open_scorer(
    package_dir: Path,
    *,
    device: Device = "cpu",
    threads: int = 0,
    sub_batch: int = 16,
    verify: bool = True,
) -> Scorer:
    """Load the package at ``package_dir`` (hash-checked unless ``verify`` is false) and
    return a scorer on a fresh session (``threads`` = 0: one per physical core)."""
    package = load_package(package_dir, verify=verify)
    session = create_session(package.model_path, device=device, intra_op_threads=threads)
    log.info("model %s %s loaded from %s", package.name, package.version, package.root)
    ran_on = "cuda" if session.get_providers()[0] == CUDA else "cpu"
    return Scorer(package, session, load_tokenizer(package), sub_batch=sub_batch, device=ran_on)
