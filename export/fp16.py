"""An fp16 ONNX model from a package's model, for the CUDA execution provider.

The default package is int8 with dynamic quantisation (``MatMulInteger`` on
activations quantised per run, an int8 embedding table): CPU kernels. For a
GPU the int8 weights are dequantised back to float (the model the int8 weights
stand for, activations unquantised), then the graph is cast to fp16 with
onnxruntime's float16 tool, inputs and outputs kept as they are (int64 ids,
float32 logits/embedding), so the :class:`~models.scorer.Scorer` runs it as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from export.errors import ExportError


class _Graph:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.graph = model.graph
        self.inits = {i.name: i for i in self.graph.initializer}
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def array(self, name: str) -> np.ndarray[Any, Any]:
        if name not in self.inits:
            raise ExportError(f"{name}: expected an initializer (constant weight)")
        return numpy_helper.to_array(self.inits[name])

    def only_consumer(self, name: str, op_type: str) -> onnx.NodeProto:
        users = self.consumers.get(name, [])
        if len(users) != 1 or users[0].op_type != op_type:
            raise ExportError(f"{name}: expected one {op_type} consumer, found {users}")
        return users[0]

    def add_init(self, name: str, value: np.ndarray[Any, Any]) -> None:
        self.graph.initializer.append(numpy_helper.from_array(value, name))


def _dequantized_matmul(g: _Graph, node: onnx.NodeProto) -> tuple[onnx.NodeProto, str]:
    """``MatMulInteger(DQL(x), W)`` → Cast → Mul(scale) becomes ``MatMul(x, W_float)``."""
    quantize = g.producer.get(node.input[0])
    if quantize is None or quantize.op_type != "DynamicQuantizeLinear":
        raise ExportError(f"{node.name}: MatMulInteger not fed by DynamicQuantizeLinear")
    cast = g.only_consumer(node.output[0], "Cast")
    rescale = g.only_consumer(cast.output[0], "Mul")
    scales = g.producer[next(i for i in rescale.input if i != cast.output[0])]
    weight_scale = next(i for i in scales.input if i != quantize.output[1])
    weight = g.array(node.input[1]).astype(np.float32)
    zero = g.array(node.input[3]).astype(np.float32) if len(node.input) > 3 else np.float32(0)
    name = f"{node.input[1]}_dequantized"
    g.add_init(name, ((weight - zero) * g.array(weight_scale)).astype(np.float32))
    matmul = helper.make_node(
        "MatMul", [quantize.input[0], name], [rescale.output[0]], name=f"{node.name}_float"
    )
    return matmul, rescale.name


def _dequantized_gather(g: _Graph, node: onnx.NodeProto) -> tuple[onnx.NodeProto, str]:
    """``DequantizeLinear(Gather(W_int8, ids))`` becomes ``Gather(W_float, ids)``."""
    gather = g.producer.get(node.input[0])
    if gather is None or gather.op_type != "Gather":
        raise ExportError(f"{node.name}: DequantizeLinear not fed by a Gather of weights")
    table = g.array(gather.input[0]).astype(np.float32)
    zero = g.array(node.input[2]).astype(np.float32) if len(node.input) > 2 else np.float32(0)
    name = f"{gather.input[0]}_dequantized"
    g.add_init(name, ((table - zero) * g.array(node.input[1])).astype(np.float32))
    axis = next((a.i for a in gather.attribute if a.name == "axis"), 0)
    new = helper.make_node(
        "Gather", [name, gather.input[1]], [node.output[0]], name=f"{gather.name}_float", axis=axis
    )
    return new, node.name


def dequantize(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with dynamic int8 quantisation undone (float weights, float MatMuls);
    a float model comes back unchanged."""
    g = _Graph(model)
    replaced: dict[str, onnx.NodeProto] = {}  # name of the node the new one stands in for
    for node in list(g.graph.node):
        if node.op_type == "MatMulInteger":
            new, at = _dequantized_matmul(g, node)
            replaced[at] = new
        elif node.op_type == "DequantizeLinear":
            new, at = _dequantized_gather(g, node)
            replaced[at] = new
    if not replaced:
        return model
    nodes = [replaced.get(n.name, n) for n in g.graph.node]
    del g.graph.node[:]
    g.graph.node.extend(_live(nodes, [o.name for o in g.graph.output]))
    used = {i for n in g.graph.node for i in n.input}
    kept = [i for i in g.graph.initializer if i.name in used]
    del g.graph.initializer[:]
    g.graph.initializer.extend(kept)
    return model


def _live(nodes: list[onnx.NodeProto], outputs: list[str]) -> list[onnx.NodeProto]:
    """The nodes the graph outputs depend on, in their original order."""
    producer = {o: n for n in nodes for o in n.output}
    needed = set(outputs)
    live: set[int] = set()
    stack = list(outputs)
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in live:
            continue
        live.add(id(node))
        for i in node.input:
            if i and i not in needed:
                needed.add(i)
                stack.append(i)
    return [n for n in nodes if id(n) in live]


def fp16_model(source: Path, target: Path) -> Path:
    """Write ``source`` (int8 or fp32 ONNX) to ``target`` as fp16, I/O types kept."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = dequantize(onnx.load(str(source)))
    half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(half, str(target))
    return target
