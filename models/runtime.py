"""onnxruntime sessions (CPU by default, CUDA when configured and present) and scorers.

:func:`open_scorer` is the one way a package becomes a :class:`~models.scorer.Scorer`:
the worker, the export commands and the tests all call it. Sessions are created when
the service starts (never at import time) and are safe to call from a worker thread:
onnxruntime releases the GIL while it runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import onnxruntime as ort

from models.cache import ScoreCache
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


class IOBindingRunner:
    """Runs a session through IO binding: inputs copied to ``device`` once per run,
    outputs left there until copied back in one go (the CUDA path; works on CPU too)."""

    def __init__(self, session: ort.InferenceSession, device: Device = "cuda") -> None:
        self._session = session
        self._device = device
        self._all_outputs = [o.name for o in session.get_outputs()]

    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> list[Any]:
        binding = self._session.io_binding()
        for name, value in input_feed.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, self._device))
        for name in output_names or self._all_outputs:
            binding.bind_output(name, self._device)
        self._session.run_with_iobinding(binding)
        outputs: list[Any] = binding.copy_outputs_to_cpu()
        return outputs


def open_scorer(
    package_dir: Path,
    *,
    model_path: Path | None = None,
    device: Device = "cpu",
    threads: int = 0,
    sub_batch: int = 16,
    max_tokens: int = 0,
    cache_size: int = 0,
    verify: bool = True,
) -> Scorer:
    """Load the package at ``package_dir`` (hash-checked unless ``verify`` is false) and
    return a scorer on a fresh session (``threads`` = 0: one per physical core).

    ``max_tokens`` > 0 caps each ONNX run at that many token slots, padding included;
    ``cache_size`` > 0 keeps that many texts' scores in a dedup cache. ``model_path``
    replaces the package's model file (an fp16 conversion of it for CUDA, say); the
    package's tokenizer, labels and version still apply. On CUDA runs go through
    IO binding."""
    package = load_package(package_dir, verify=verify)
    session = create_session(
        model_path or package.model_path, device=device, intra_op_threads=threads
    )
    log.info("model %s %s loaded from %s", package.name, package.version, package.root)
    on_gpu = session.get_providers()[0] == CUDA
    return Scorer(
        package,
        IOBindingRunner(session) if on_gpu else session,
        load_tokenizer(package),
        sub_batch=sub_batch,
        max_tokens=max_tokens,
        cache=ScoreCache(cache_size) if cache_size else None,
        device="cuda" if on_gpu else "cpu",
    )
