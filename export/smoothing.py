"""Activation smoothing (SmoothQuant) for the MatMuls that dynamic int8 handles worst.

Dynamic quantisation gives each activation tensor one int8 scale for the
whole batch. The input of a BERT FFN output projection (the GELU output) has a
few channels that reach 10–70 while the rest stay near 1–5, so that one scale
wastes most of the int8 range. Smoothing divides each input channel ``j`` by
``s_j`` and multiplies row ``j`` of the weight by ``s_j`` — the product is
unchanged in exact arithmetic — with
``s_j = max|x_j| ** alpha / max|w_j| ** (1 - alpha)``, so part of the outlier
range moves from the activation (quantised per tensor at run time) into the
weight (quantised per output channel, offline). ``max|x_j|`` comes from
running the fp32 graph on calibration texts, which should be training data,
not the texts parity is measured on.

Reference: Xiao et al., "SmoothQuant", ICML 2023.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
from onnx import helper, numpy_helper

from export.errors import ExportError

_FLOOR = 1e-5  # dead channels: keep the scale finite


def smooth_matmul_inputs(
    model_path: Path,
    node_pattern: str,
    feeds: Iterable[dict[str, Any]],
    alpha: float,
) -> list[str]:
    """Smooth the inputs of the MatMuls whose name matches ``node_pattern``, in place.

    ``feeds`` are model inputs (token-id batches) for calibration. Returns the
    names of the smoothed MatMuls; each gets a ``<name>/Smooth`` Mul in front.
    """
    if not 0 < alpha < 1:
        raise ExportError(f"smoothing alpha must be in (0, 1), got {alpha}")
    model = onnx.load(str(model_path))
    weights = {init.name: init for init in model.graph.initializer}
    pattern = re.compile(node_pattern)
    nodes = [
        node
        for node in model.graph.node
        if node.op_type == "MatMul" and pattern.search(node.name) and node.input[1] in weights
    ]
    if not nodes:
        raise ExportError(f"no MatMul with a constant weight matches {node_pattern!r}")
    ranges = activation_ranges(model, [node.input[0] for node in nodes], feeds)
    for node in nodes:
        _smooth(model.graph, node, weights[node.input[1]], ranges[node.input[0]], alpha)
    onnx.save(model, str(model_path))
    return [node.name for node in nodes]


def activation_ranges(
    model: onnx.ModelProto, tensors: list[str], feeds: Iterable[dict[str, Any]]
) -> dict[str, np.ndarray]:
    """Per-channel max |value| of ``tensors`` (last axis) over all ``feeds``."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    for name in tensors:
        probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    with tempfile.TemporaryDirectory(prefix="calibrate.") as tmp:
        path = Path(tmp) / "probe.onnx"
        onnx.save(probe, str(path))
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        ranges: dict[str, np.ndarray] = {}
        batches = 0
        for feed in feeds:
            batches += 1
            outputs = session.run(tensors, feed)
            mask = feed["attention_mask"].astype(bool)
            for name, value in zip(tensors, outputs, strict=True):
                peak = np.abs(value[mask]).max(axis=0)  # padding positions excluded
                ranges[name] = np.maximum(ranges[name], peak) if name in ranges else peak
    if not batches:
        raise ExportError("smoothing needs calibration texts")
    return ranges


def _smooth(
    graph: onnx.GraphProto,
    node: onnx.NodeProto,
    weight: onnx.TensorProto,
    activation_max: np.ndarray,
    alpha: float,
) -> None:
    w = numpy_helper.to_array(weight)  # (in_features, out_features)
    weight_max = np.abs(w).max(axis=1)
    scale = np.maximum(activation_max, _FLOOR) ** alpha / np.maximum(weight_max, _FLOOR) ** (
        1 - alpha
    )
    scale = scale.astype(np.float32)
    weight.CopyFrom(numpy_helper.from_array((w * scale[:, None]).astype(w.dtype), weight.name))
    inverse = numpy_helper.from_array((1 / scale).astype(np.float32), f"{node.name}/smooth_inv")
    graph.initializer.append(inverse)
    smoothed = f"{node.input[0]}/smoothed"
    mul = helper.make_node(
        "Mul", [node.input[0], inverse.name], [smoothed], name=f"{node.name}/Smooth"
    )
    graph.node.insert(list(graph.node).index(node), mul)
    node.input[0] = smoothed
