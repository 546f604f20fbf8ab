"""The fp16 conversion for the GPU path: int8 dequantised, then cast to fp16, I/O kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnxruntime.quantization import QuantType, quantize_dynamic

from export.fp16 import dequantize, fp16_model
from models.runtime import open_scorer
from tests.packages import TINY_PACKAGE

TEXTS = ["质量很好，物流也快", "terrible, it broke after one day", "ok", "Fits well, nice fabric."]


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("int8") / "model.onnx"
    quantize_dynamic(
        TINY_PACKAGE / "model.onnx",
        target,
        per_channel=True,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return target


def _ops(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_dequantized_model_has_no_int8_ops_and_matches_int8(
    int8_model: Path, tmp_path: Path
) -> None:
    assert {"MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear"} <= _ops(int8_model)
    target = tmp_path / "dequantized.onnx"
    onnx.save(dequantize(onnx.load(str(int8_model))), str(target))
    assert not {"MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear"} & _ops(target)
    int8 = open_scorer(TINY_PACKAGE, model_path=int8_model).score(TEXTS)
    back = open_scorer(TINY_PACKAGE, model_path=target).score(TEXTS)
    assert int8.probs is not None and back.probs is not None
    # the same weights; only the int8 model quantises activations (per batch, at run time),
    # which moves the tiny 32-wide model's probabilities by up to ~0.035 (onnxruntime 1.32)
    assert (back.probs.argmax(axis=1) == int8.probs.argmax(axis=1)).all()
    np.testing.assert_allclose(back.probs, int8.probs, atol=0.05)


def test_fp16_model_keeps_io_types_and_scores_like_fp32(int8_model: Path, tmp_path: Path) -> None:
    target = fp16_model(int8_model, tmp_path / "fp16.onnx")
    graph = onnx.load(str(target)).graph
    float_inits = [i for i in graph.initializer if i.data_type in (1, 10)]  # FLOAT, FLOAT16
    assert float_inits and all(i.data_type == onnx.TensorProto.FLOAT16 for i in float_inits)
    assert [i.type.tensor_type.elem_type for i in graph.input] == [onnx.TensorProto.INT64] * 2
    assert {o.type.tensor_type.elem_type for o in graph.output} == {onnx.TensorProto.FLOAT}
    fp32 = open_scorer(TINY_PACKAGE).score(TEXTS)
    half = open_scorer(TINY_PACKAGE, model_path=target).score(TEXTS)  # runs on the CPU too
    assert fp32.probs is not None and half.probs is not None
    np.testing.assert_allclose(half.probs, fp32.probs, atol=0.03)


def test_a_float_model_passes_through_unchanged() -> None:
    model = onnx.load(str(TINY_PACKAGE / "model.onnx"))
    before = len(model.graph.node)
    assert len(dequantize(model).graph.node) == before
