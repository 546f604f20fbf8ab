"""onnxruntime sessions: CPU by default, CUDA when configured and present.

Sessions are created when the service starts (never at import time) and are
safe to call from a worker thread: onnxruntime releases the GIL while it runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import onnxruntime as ort

from models.errors import ModelPackageError, ProviderError

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
