"""An int8 model package back to a PyTorch checkpoint, so it can be fine-tuned again.

``adapt`` starts from the package a shop runs, not from a build directory it may
never have had. Every weight of a package exported by :mod:`export.onnx_export`
is recoverable from ``model.onnx``: the fp32 tensors keep their Hugging Face
names, each int8 MatMul weight is named by its node (``/model/<module>/MatMul_quant``)
and de-quantised per output channel, the SmoothQuant factors are folded back
(``x·s⁻¹`` feeding ``diag(s)·W``), and the int8 word-embedding table is
de-quantised. The result is a ``BertForSequenceClassification`` whose weights
are the package's up to int8 rounding; :func:`unpack` checks that it labels
``texts`` like the package before returning.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from tokenizers import Tokenizer
from transformers import BertConfig, BertForSequenceClassification

from export.errors import ExportError
from models.package import load_package

log = logging.getLogger(__name__)

PREFIX = "model."  # the export wraps the checkpoint in a module named ``model``
_QUANT_SUFFIXES = ("/MatMul_quant", "/Gemm_MatMul_quant")
_SPECIALS = {
    "<pad>": ("<s>", "</s>", "<unk>", "<pad>", "<mask>"),
    "[PAD]": ("[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]"),
}


def _module_of(node_name: str, suffixes: Sequence[str]) -> str | None:
    for suffix in suffixes:
        if node_name.endswith(suffix):
            return node_name[1 : -len(suffix)].replace("/", ".")
    return None


def _hf_name(onnx_name: str) -> str:
    if not onnx_name.startswith(PREFIX):
        raise ExportError(f"unexpected weight name {onnx_name!r}: not exported by this project")
    return onnx_name[len(PREFIX) :]


def package_weights(model: onnx.ModelProto) -> dict[str, np.ndarray[Any, Any]]:
    """Hugging Face name → fp32 array, for every weight in the graph."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:  # small tensors may live in Constant nodes
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            inits.setdefault(node.output[0], numpy_helper.to_array(node.attribute[0].t))
    weights: dict[str, np.ndarray[Any, Any]] = {}
    smooth: dict[str, np.ndarray[Any, Any]] = {}
    for name, value in inits.items():
        plain = name.rsplit(".", 1)[-1] in ("weight", "bias")
        if name.startswith(PREFIX) and plain and value.dtype == np.float32:
            weights[_hf_name(name)] = value
    for node in model.graph.node:
        if node.op_type == "MatMulInteger":
            module = _module_of(node.name, _QUANT_SUFFIXES)
            weight = node.input[1]
            if module is None or weight not in inits:
                raise ExportError(f"cannot map the int8 MatMul {node.name!r} to a module")
            base = weight.removesuffix("_quantized")
            q = inits[weight].astype(np.float32)  # [in, out]
            w = (q - inits[f"{base}_zero_point"].astype(np.float32)) * inits[f"{base}_scale"]
            weights[_hf_name(module + ".weight")] = w.T.copy()
        elif node.op_type == "Mul" and node.name.endswith("/MatMul/Smooth"):
            module = _module_of(node.name, ("/MatMul/Smooth",))
            assert module is not None
            smooth[_hf_name(module + ".weight")] = inits[node.input[1]]
        elif node.op_type == "MatMul" and len(node.input) == 2 and node.input[1] in inits:
            raise ExportError("unpack reads int8 packages; this one has fp32 MatMuls")
    for name, inverse in smooth.items():
        weights[name] = (weights[name] * inverse[None, :]).astype(np.float32)
    table = "word_embeddings.weight"
    for name, value in inits.items():
        if name.endswith(f"{table}_quantized"):
            base = name.removesuffix("_quantized")
            zero = inits[f"{base}_zero_point"].astype(np.float32)
            weights[_hf_name(base)] = (value.astype(np.float32) - zero) * inits[f"{base}_scale"]
    return weights


def _head_dim(model: onnx.ModelProto) -> int:
    prefix = "/model/bert/encoder/layer.0/attention/self/Constant"
    for node in model.graph.node:
        if node.op_type == "Constant" and node.name.startswith(prefix):
            value = numpy_helper.to_array(node.attribute[0].t)
            if value.shape == (1,) and value[0] > 1:
                return int(value[0])
    raise ExportError("cannot read the attention head size from the graph")


def _layer_norm_eps(model: onnx.ModelProto) -> float:
    for node in model.graph.node:
        if node.op_type == "LayerNormalization":
            for attr in node.attribute:
                if attr.name == "epsilon":
                    return float(attr.f)
    return 1e-12


def _config(
    model: onnx.ModelProto, weights: dict[str, Any], labels: Sequence[str], pad: int
) -> Any:
    layers = 1 + max(
        int(name.split(".")[3]) for name in weights if name.startswith("bert.encoder.layer.")
    )
    hidden = weights["bert.embeddings.word_embeddings.weight"].shape[1]
    return BertConfig(
        vocab_size=weights["bert.embeddings.word_embeddings.weight"].shape[0],
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // _head_dim(model),
        intermediate_size=weights["bert.encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=weights["bert.embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=weights["bert.embeddings.token_type_embeddings.weight"].shape[0],
        layer_norm_eps=_layer_norm_eps(model),
        pad_token_id=pad,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )


def _write_tokenizer(tokenizer_file: Path, out: Path, max_length: int) -> int:
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    tokenizer.save(str(out / "tokenizer.json"))
    for pad, (cls, sep, unk, _, mask) in _SPECIALS.items():
        pad_id = tokenizer.token_to_id(pad)
        if pad_id is not None:
            config = {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "model_max_length": max_length,
                "cls_token": cls,
                "bos_token": cls,
                "sep_token": sep,
                "eos_token": sep,
                "unk_token": unk,
                "pad_token": pad,
                "mask_token": mask,
                "clean_up_tokenization_spaces": False,
                "model_input_names": ["input_ids", "attention_mask"],
            }
            (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
            return int(pad_id)
    raise ExportError("the package tokenizer has no <pad> or [PAD] token")


def unpack(
    package_dir: Path, out: Path, texts: Sequence[str], *, min_agreement: float = 0.98
) -> Path:
    """Write the checkpoint of the int8 package at ``package_dir`` to ``out``.

    Raises :class:`ExportError` when the package is not a BERT classification
    package of this project, or when the checkpoint's labels on ``texts`` agree
    with the package's on fewer than ``min_agreement`` of them.
    """
    from models.runtime import open_scorer

    package = load_package(package_dir)
    if package.task != "sequence-classification":
        raise ExportError(f"unpack needs a classification package, not {package.task!r}")
    if package.manifest.get("source", {}).get("architecture") != "BertForSequenceClassification":
        raise ExportError("unpack reads BertForSequenceClassification packages only")
    graph = onnx.load(str(package.model_path))
    weights = package_weights(graph)
    out.mkdir(parents=True, exist_ok=True)
    pad = _write_tokenizer(package.tokenizer_path, out, package.max_length)
    model = BertForSequenceClassification(_config(graph, weights, package.labels, pad))
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in weights.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ExportError(f"package weights do not fit BERT: missing {missing}, extra {unexpected}")
    model.eval()
    agreement = _agreement(model, out, open_scorer(package_dir), package.text_prefix, texts)
    if agreement < min_agreement:
        raise ExportError(
            f"the unpacked checkpoint labels {agreement:.3f} of {len(texts)} texts like the "
            f"package (< {min_agreement}); not writing it"
        )
    model.save_pretrained(out)
    (out / "unpacked.json").write_text(
        json.dumps(
            {
                "package": f"{package.name} {package.version}",
                "label_agreement": agreement,
                "texts": len(texts),
            },
            indent=2,
        )
        + "\n"
    )
    log.info("unpacked %s %s: label agreement %.4f", package.name, package.version, agreement)
    return out


def _agreement(model: Any, out: Path, scorer: Any, prefix: str, texts: Sequence[str]) -> float:
    from transformers import AutoTokenizer

    if not texts:
        raise ExportError("unpack needs texts to check the checkpoint against the package")
    tokenizer = AutoTokenizer.from_pretrained(out)
    same = 0
    for i in range(0, len(texts), 32):
        chunk = list(texts[i : i + 32])
        batch = tokenizer(
            [prefix + t for t in chunk], padding=True, truncation=True, return_tensors="pt"
        )
        with torch.no_grad():
            mine = model(**batch).logits.argmax(-1).tolist()
        theirs = scorer.score(chunk).probs.argmax(-1).tolist()
        same += sum(a == b for a, b in zip(mine, theirs, strict=True))
    return same / len(texts)
