"""The export pipeline on tiny checkpoints built by export.tiny (no network, CPU only).

Every export below runs its parity check in a fresh process, as in production;
the tests then look at what landed on disk the way the runtime will.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
from tokenizers import Tokenizer

from export.errors import (
    E5BaseError,
    ExportError,
    ParityError,
    QuantizationLossError,
    UnsupportedModelError,
)
from export.onnx_export import export_package
from export.parity import model_inputs, read_texts, run_parity, write_texts
from export.smoothing import activation_ranges, smooth_matmul_inputs
from export.spec import TASK_CLASSIFICATION, TASK_EMBEDDING, ExportSpec, family_for
from export.tiny import SENTIMENT_LABELS, build_tiny_checkpoint, sample_texts
from models.errors import ReviewPulseError
from models.package import sha256_file

MAX_LENGTH = 64
HIDDEN = 32
# Every 4th template sentence plus mixed, empty and over-long texts.
VALIDATION = [
    *sample_texts()[::4],
    "The noodles 很好吃 but the waiter was rude 👍",
    "",
    "the room was clean and the staff were friendly " * 20,
]
MANIFEST_KEYS = {
    "format",
    "manifest_sha256",
    "name",
    "version",
    "task",
    "labels",
    "max_length",
    "text_prefix",
    "opset",
    "onnxruntime_version",
    "torch_version",
    "transformers_version",
    "quantization",
    "optimized",
    "tolerance",
    "parity",
    "sha256",
    "source",
    "training",
}


def _manifest(package: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((package / "manifest.json").read_text(encoding="utf-8"))
    return manifest


def _session(package: Path) -> Any:
    return onnxruntime.InferenceSession(
        str(package / "model.onnx"), providers=["CPUExecutionProvider"]
    )


def _encode(package: Path, texts: list[str]) -> dict[str, Any]:
    return model_inputs(Tokenizer.from_file(str(package / "tokenizer.json")), texts)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="module")
def fp32_package(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_package(
        checkpoint,
        tmp_path_factory.mktemp("packages") / "fp32",
        task=TASK_CLASSIFICATION,
        name="tiny-sentiment",
        version="0.0.1",
        text_prefix="review: ",
        max_length=MAX_LENGTH,
        training={"data": "tiny templates", "steps": 20},
        validation_texts=VALIDATION,
    )


def test_fp32_manifest_is_complete_and_hashes_match(fp32_package: Path, checkpoint: Path) -> None:
    manifest = _manifest(fp32_package)
    text = (fp32_package / "manifest.json").read_text(encoding="utf-8")
    assert text == json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert set(manifest) == MANIFEST_KEYS
    assert sorted(p.name for p in fp32_package.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "tokenizer.json",
    ]
    assert manifest["format"] == 1
    assert manifest["task"] == TASK_CLASSIFICATION
    assert manifest["labels"] == list(SENTIMENT_LABELS)
    assert (manifest["max_length"], manifest["text_prefix"]) == (MAX_LENGTH, "review: ")
    assert manifest["quantization"] is None
    assert manifest["optimized"] is False
    assert manifest["training"] == {"data": "tiny templates", "steps": 20}
    assert manifest["source"] == {
        "checkpoint": str(checkpoint),
        "architecture": "BertForSequenceClassification",
    }
    assert manifest["sha256"] == {
        name: sha256_file(fp32_package / name) for name in ("model.onnx", "tokenizer.json")
    }
    parity = manifest["parity"]["fp32"]
    assert parity["n_texts"] == len(VALIDATION)
    assert parity["tokenizer_mismatches"] == 0
    assert parity["logits_max_abs_diff"] <= manifest["tolerance"]["atol"] == 1e-4
    assert parity["embedding_max_abs_diff"] <= manifest["tolerance"]["atol"]
    assert manifest["parity"]["validation_sample"] == "caller"


def test_graph_has_the_contracted_inputs_outputs_and_dynamic_axes(fp32_package: Path) -> None:
    graph = onnx.load(str(fp32_package / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert {i.type.tensor_type.elem_type for i in graph.input} == {onnx.TensorProto.INT64}
    for graph_input in graph.input:
        dims = [d.dim_param for d in graph_input.type.tensor_type.shape.dim]
        assert dims == ["batch", "seq"]
    assert [o.name for o in graph.output] == ["logits", "embedding"]
    session = _session(fp32_package)
    for texts in (["ok"], ["short", "a much longer review text " * 10, "中文评论很好"]):
        logits, embedding = session.run(None, _encode(fp32_package, texts))
        assert logits.shape == (len(texts), len(SENTIMENT_LABELS))
        assert embedding.shape == (len(texts), HIDDEN)
        assert logits.dtype == embedding.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-5)


def test_padding_does_not_change_a_texts_outputs(fp32_package: Path) -> None:
    session = _session(fp32_package)
    text = "这家的服务很好。"
    alone = session.run(None, _encode(fp32_package, [text]))
    padded = session.run(None, _encode(fp32_package, [text, "a far longer review " * 8]))
    for single, batched in zip(alone, padded, strict=True):
        np.testing.assert_allclose(single[0], batched[0], atol=1e-5)


def test_package_tokenizer_pads_to_longest_and_truncates(fp32_package: Path) -> None:
    batch = _encode(fp32_package, ["ok", "word " * 500])
    assert batch["input_ids"].shape == (2, MAX_LENGTH)
    assert batch["attention_mask"][0].sum() == 3  # [CLS] ok [SEP]
    assert batch["attention_mask"][1].sum() == MAX_LENGTH


def test_int8_export_is_smaller_and_agrees_with_pytorch(
    checkpoint: Path, fp32_package: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    package = export_package(
        checkpoint,
        tmp_path / "int8",
        task=TASK_CLASSIFICATION,
        name="tiny-sentiment",
        version="0.0.1-int8",
        text_prefix="review: ",
        max_length=MAX_LENGTH,
        quantize=True,
        validation_texts=VALIDATION,
        # A 32-wide, 2-layer model loses far more to int8 activation quantisation than
        # e5-small: a few of its near-tie texts flip. The real package is held to 0.99.
        int8_label_agreement_min=0.9,
    )
    # our own progress lines, not the quantiser's hundreds of per-tensor INFO lines
    assert any(r.message.startswith("quantised ") for r in caplog.records)
    assert not [
        r for r in caplog.records if r.levelno <= logging.INFO and "onnxruntime" in r.pathname
    ]
    manifest = _manifest(package)
    assert (package / "model.onnx").stat().st_size < (fp32_package / "model.onnx").stat().st_size
    assert manifest["quantization"] == {
        "method": "dynamic-int8",
        "per_channel": True,
        "excluded_nodes": [  # the small tables stay fp32
            "/model/bert/embeddings/token_type_embeddings/Gather",
            "/model/bert/embeddings/position_embeddings/Gather",
        ],
    }
    graph = onnx.load(str(package / "model.onnx")).graph
    word_table = [i for i in graph.initializer if "word_embeddings" in i.name]
    assert {onnx.TensorProto.INT8, onnx.TensorProto.UINT8} & {i.data_type for i in word_table}
    int8 = manifest["parity"]["int8"]
    assert manifest["tolerance"]["int8_label_agreement_min"] == 0.9
    assert int8["label_agreement"] >= manifest["tolerance"]["int8_label_agreement_min"]
    assert 0.9 < int8["embedding_cosine_min"] <= int8["embedding_cosine_mean"] <= 1.0 + 1e-6
    assert manifest["parity"]["fp32"]["logits_max_abs_diff"] <= manifest["tolerance"]["atol"]
    assert manifest["sha256"]["model.onnx"] == sha256_file(package / "model.onnx")


def test_fp32_layers_stay_float_in_an_int8_export(checkpoint: Path, tmp_path: Path) -> None:
    common: dict[str, Any] = {
        "task": TASK_CLASSIFICATION,
        "name": "tiny-sentiment",
        "version": "0.0.1",
        "max_length": MAX_LENGTH,
        "validation_texts": VALIDATION,
        "int8_label_agreement_min": 0.9,  # tiny model, see the int8 test above
    }
    with pytest.raises(ExportError, match="only applies to a quantised export"):
        export_package(checkpoint, tmp_path / "fp32", fp32_layers=[0], **common)
    with pytest.raises(ExportError, match="no weight MatMuls of encoder layer 7"):
        export_package(checkpoint, tmp_path / "none", quantize=True, fp32_layers=[7], **common)
    assert not (tmp_path / "none").exists()
    package = export_package(
        checkpoint, tmp_path / "package", quantize=True, fp32_layers=[1], **common
    )
    quantization = _manifest(package)["quantization"]
    assert quantization["fp32_layers"] == [1]
    kept = {name for name in quantization["excluded_nodes"] if "/layer.1/" in name}
    assert len(kept) == 6  # query, key, value, attention output, intermediate, output
    graph = onnx.load(str(package / "model.onnx")).graph
    ops = {node.name: node.op_type for node in graph.node}
    assert all(ops[name] == "MatMul" for name in kept)  # still float MatMuls
    layer0 = [op for name, op in ops.items() if "/layer.0/" in name and "MatMul" in op]
    assert "MatMulInteger" in layer0  # the other layer was quantised


def test_optimized_smoothed_int8_distilbert(tmp_path: Path) -> None:
    checkpoint = build_tiny_checkpoint(tmp_path / "distilbert", model_type="distilbert")
    package = export_package(
        checkpoint,
        tmp_path / "package",
        task=TASK_CLASSIFICATION,
        name="tiny-distilbert",
        version="0.0.1",
        max_length=MAX_LENGTH,
        quantize=True,
        smooth_ffn_output=0.75,
        calibration_texts=sample_texts()[1::4],
        optimize=True,
        validation_texts=VALIDATION,
        int8_label_agreement_min=0.9,  # tiny model, see the int8 test above
    )
    manifest = _manifest(package)
    assert manifest["optimized"] is True
    assert manifest["source"]["architecture"] == "DistilBertForSequenceClassification"
    smoothed = manifest["quantization"]["smoothing"]["nodes"]
    assert sorted(smoothed) == [
        f"/model/distilbert/transformer/layer.{i}/ffn/lin2/MatMul" for i in (0, 1)
    ]
    excluded = manifest["quantization"]["excluded_nodes"]
    assert any(name.endswith("/position_embeddings/Gather") for name in excluded)
    graph = onnx.load(str(package / "model.onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert "QAttention" in ops  # the fused attention was quantised
    assert manifest["parity"]["fp32"]["logits_max_abs_diff"] <= manifest["tolerance"]["atol"]
    assert manifest["parity"]["int8"]["label_agreement"] >= 0.9


def test_smoothed_int8_export_quantises_the_ffn_output_too(
    checkpoint: Path, tmp_path: Path
) -> None:
    package = export_package(
        checkpoint,
        tmp_path / "smoothed",
        task=TASK_CLASSIFICATION,
        name="tiny-smoothed",
        version="0.0.1",
        max_length=MAX_LENGTH,
        quantize=True,
        smooth_ffn_output=0.75,
        calibration_texts=sample_texts()[1::4],  # disjoint from VALIDATION
        validation_texts=VALIDATION,
        int8_label_agreement_min=0.9,  # tiny model, see the int8 test above
    )
    manifest = _manifest(package)
    smoothing = manifest["quantization"]["smoothing"]
    assert smoothing["alpha"] == 0.75
    assert smoothing["calibration_texts"] == len(sample_texts()[1::4])
    assert len(smoothing["nodes"]) == 2  # one FFN output per layer
    assert not any("/output/dense/" in name for name in manifest["quantization"]["excluded_nodes"])
    # the rewrite is exact in fp32: the fp32 stage passed parity with the same atol
    assert manifest["parity"]["fp32"]["logits_max_abs_diff"] <= manifest["tolerance"]["atol"]
    graph = onnx.load(str(package / "model.onnx")).graph
    ops = {node.name: node.op_type for node in graph.node}
    assert all(ops[f"{name}/Smooth"] == "Mul" for name in smoothing["nodes"])
    float_matmuls = {name for name, op in ops.items() if op == "MatMul"}
    assert not float_matmuls & set(smoothing["nodes"])  # quantised, not kept fp32


def test_smoothing_is_exact_and_narrows_the_outlier_channels(
    fp32_package: Path, tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(fp32_package, tmp_path / "copy"))
    model_path = copy / "model.onnx"
    feeds = [_encode(copy, sample_texts()[i : i + 8]) for i in range(0, 32, 8)]
    before = [_session(copy).run(None, feed) for feed in feeds]
    pattern = family_for("bert").ffn_output_matmul
    original = onnx.load(str(model_path))
    inputs = {n.name: n.input[0] for n in original.graph.node if n.name.endswith("dense/MatMul")}
    nodes = smooth_matmul_inputs(model_path, pattern, feeds, alpha=0.75)
    after = [_session(copy).run(None, feed) for feed in feeds]
    for old, new in zip(before, after, strict=True):
        for a, b in zip(old, new, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)

    def spread(model: onnx.ModelProto, tensor: str) -> float:
        peak = activation_ranges(model, [tensor], feeds)[tensor]
        return float(peak.max() / np.median(peak))

    smoothed = onnx.load(str(model_path))
    for name in nodes:
        assert spread(smoothed, f"{inputs[name]}/smoothed") < spread(original, inputs[name])
    with pytest.raises(ExportError, match="alpha"):
        smooth_matmul_inputs(model_path, pattern, feeds, alpha=1.0)
    with pytest.raises(ExportError, match="no MatMul"):
        smooth_matmul_inputs(model_path, r"/nothing/MatMul$", feeds, alpha=0.5)


def test_optimized_xlm_roberta_embedding_export(tmp_path: Path) -> None:
    checkpoint = build_tiny_checkpoint(tmp_path / "xlmr", model_type="xlm-roberta")
    package = export_package(
        checkpoint,
        tmp_path / "package",
        task=TASK_EMBEDDING,
        name="tiny-xlmr",
        version="0.0.1",
        text_prefix="passage: ",
        max_length=128,  # the whole position table: XLM-R reserves pad_token_id + 1 slots
        optimize=True,
        validation_texts=None,  # the built-in smoke sample, incl. an over-long text
    )
    manifest = _manifest(package)
    assert "labels" not in manifest
    assert manifest["optimized"] is True
    assert manifest["parity"]["validation_sample"] == "builtin"
    assert manifest["source"]["architecture"] == "XLMRobertaModel"
    graph = onnx.load(str(package / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["embedding"]
    assert "Attention" in {node.op_type for node in graph.node}
    assert manifest["parity"]["fp32"]["embedding_max_abs_diff"] <= manifest["tolerance"]["atol"]


def test_tampered_packages_fail_parity_in_a_fresh_process(
    fp32_package: Path, checkpoint: Path, tmp_path: Path
) -> None:
    def tampered(name: str, **changes: Any) -> Path:
        copy = Path(shutil.copytree(fp32_package, tmp_path / name))
        manifest = _manifest(copy)
        for key, value in changes.items():
            manifest[key] = value
        (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        return copy

    zero_atol = tampered("atol0", tolerance={**_manifest(fp32_package)["tolerance"], "atol": 0.0})
    impossible = tampered(
        "agreement",
        quantization={"method": "dynamic-int8", "per_channel": True, "excluded_nodes": []},
        tolerance={**_manifest(fp32_package)["tolerance"], "int8_label_agreement_min": 1.01},
    )
    edited = tampered("edited")
    with (edited / "tokenizer.json").open("a", encoding="utf-8") as handle:
        handle.write("\n")
    with pytest.raises(ParityError) as raised:
        run_parity([zero_atol, impossible, edited], checkpoint, VALIDATION[:8])
    message = str(raised.value)
    assert f"{zero_atol}: max |logits diff|" in message
    assert "> atol 0" in message
    assert f"{impossible}: int8 label agreement 100.00% < 101%" in message
    assert f"{edited}: sha256 of tokenizer.json does not match" in message
    assert not isinstance(raised.value, QuantizationLossError)  # not only int8 losses
    with pytest.raises(QuantizationLossError, match=r"int8 label agreement 100\.00% < 101%"):
        run_parity([impossible], checkpoint, VALIDATION[:8])


def test_unsupported_model_type_is_refused_before_any_work(
    checkpoint: Path, tmp_path: Path
) -> None:
    gpt2 = Path(shutil.copytree(checkpoint, tmp_path / "gpt2"))
    config = json.loads((gpt2 / "config.json").read_text(encoding="utf-8"))
    (gpt2 / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(UnsupportedModelError, match="'gpt2' is not supported"):
        export_package(gpt2, tmp_path / "out", task=TASK_EMBEDDING, name="x", version="1")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ExportError, match="llama"):
        family_for("llama")
    with pytest.raises(ExportError, match="token-classification"):
        ExportSpec(task="token-classification", family=family_for("bert"))


def test_export_arguments_are_validated(checkpoint: Path, tmp_path: Path) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("x")
    common: dict[str, Any] = {"task": TASK_CLASSIFICATION, "name": "x", "version": "1"}
    with pytest.raises(ExportError, match="not an empty directory"):
        export_package(checkpoint, occupied, max_length=MAX_LENGTH, **common)
    with pytest.raises(ExportError, match=r"outside 1\.\.128"):
        export_package(checkpoint, tmp_path / "a", max_length=512, **common)
    with pytest.raises(ExportError, match="empty"):
        export_package(checkpoint, tmp_path / "c", max_length=8, validation_texts=[], **common)
    with pytest.raises(ExportError, match="only applies to a quantised export"):
        export_package(checkpoint, tmp_path / "d", smooth_ffn_output=0.5, **common)
    with pytest.raises(ExportError, match="needs calibration_texts"):
        export_package(checkpoint, tmp_path / "e", quantize=True, smooth_ffn_output=0.5, **common)


def test_validation_texts_round_trip_through_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "texts.jsonl"
    write_texts(path, ["好评 👍", "", 'quote " and\nnewline'])
    assert read_texts(path) == ["好评 👍", "", 'quote " and\nnewline']
    path.write_text('"plain string"\n\n{"text": "object", "id": 3}\n', encoding="utf-8")
    assert read_texts(path) == ["plain string", "object"]
    path.write_text('{"body": "no text field"}\n', encoding="utf-8")
    with pytest.raises(ExportError, match=":1:"):
        read_texts(path)


def test_export_errors_sit_under_the_project_root_error() -> None:
    assert issubclass(ExportError, ReviewPulseError)
    for error in (UnsupportedModelError, ParityError, E5BaseError):
        assert issubclass(error, ExportError)
    # the root lives in models (export never imports the service); streams re-exports it
    from streams.errors import ReviewPulseError as ServiceRoot

    assert ServiceRoot is ReviewPulseError
