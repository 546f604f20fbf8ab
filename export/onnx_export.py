"""Local Hugging Face checkpoint → ONNX model package (model.onnx, tokenizer.json, manifest.json).

The package is what ``models/`` loads at run time with onnxruntime alone. The
export is only published (renamed into ``out_dir``) after the parity check has
passed in a fresh process, so a package on disk is always a verified one and
its manifest records the measured parity and the sha256 of the final files.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import onnxruntime
import torch
import transformers
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from export.errors import ExportError
from export.parity import DEFAULT_VALIDATION_TEXTS, model_inputs, run_parity
from export.smoothing import smooth_matmul_inputs
from export.spec import (
    PACKAGE_FORMAT,
    QUANTIZATION_METHOD,
    TASK_CLASSIFICATION,
    ExportSpec,
    FamilySpec,
    family_for,
)
from models.package import MANIFEST as MANIFEST_FILE
from models.package import MANIFEST_DIGEST, MODEL_FILE, TOKENIZER_FILE, manifest_digest, sha256_file

logger = logging.getLogger(__name__)

# Two texts of different length: the traced graph then sees real padding.
_TRACE_TEXTS = ("ReviewPulse traces the encoder with this example sentence.", "ok")
# Embedding tables whose Gather is int8-quantised. Only the word table is big
# enough to matter (e.g. 250k x 384); position/token-type tables stay fp32.
_QUANTIZED_GATHER_TABLE = "word_embeddings"


@dataclass(frozen=True)
class _Build:
    """Everything one export needs after the arguments have been validated."""

    checkpoint: Path
    config: Any
    spec: ExportSpec
    texts: list[str]
    quantize: bool
    per_channel: bool
    optimize: bool
    smooth_alpha: float | None
    calibration_texts: list[str]
    fp32_layers: tuple[int, ...]


def export_package(
    checkpoint: Path,
    out_dir: Path,
    *,
    task: str,
    name: str,
    version: str,
    text_prefix: str = "",
    max_length: int = 512,
    quantize: bool = False,
    per_channel: bool = True,
    optimize: bool = False,
    smooth_ffn_output: float | None = None,
    calibration_texts: list[str] | None = None,
    training: dict[str, Any] | None = None,
    validation_texts: list[str] | None = None,
    int8_label_agreement_min: float = 0.99,
    fp32_layers: Sequence[int] = (),
) -> Path:
    """Export ``checkpoint`` as a verified model package in ``out_dir``; return ``out_dir``.

    ``task`` is "sequence-classification" (outputs logits and embedding) or
    "embedding". ``optimize`` runs onnxruntime's transformer fusions;
    ``quantize`` applies dynamic int8 quantisation (``per_channel`` weights);
    ``smooth_ffn_output`` (alpha in (0, 1)) first smooths the inputs of the
    FFN output MatMuls with statistics from ``calibration_texts`` (see
    ``export.smoothing``), where plain int8 loses the most; ``fp32_layers``
    (encoder layer indices) keep those layers' weight MatMuls in float32, for a
    model whose int8 export misses the parity floor. Parity against the
    PyTorch checkpoint is checked on ``validation_texts`` (a small built-in
    zh+en sample if None) in a fresh process; failure raises ParityError and
    leaves ``out_dir`` untouched.
    """
    started = time.monotonic()
    if smooth_ffn_output is not None:
        if not quantize:
            raise ExportError("smooth_ffn_output only applies to a quantised export")
        if not calibration_texts:
            raise ExportError("smooth_ffn_output needs calibration_texts")
    if fp32_layers and not quantize:
        raise ExportError("fp32_layers only applies to a quantised export")
    _check_out_dir(out_dir)
    config = AutoConfig.from_pretrained(checkpoint)
    if not 0 < int8_label_agreement_min <= 1:
        raise ExportError("int8_label_agreement_min must be in (0, 1]")
    spec = ExportSpec(
        task=task,
        family=family_for(config.model_type),
        int8_label_agreement_min=int8_label_agreement_min,
    )
    _check_max_length(config, spec.family, max_length)
    build = _Build(
        checkpoint,
        config,
        spec,
        _validation_sample(validation_texts),
        quantize,
        per_channel,
        optimize,
        smooth_ffn_output,
        list(calibration_texts or []),
        tuple(sorted(set(fp32_layers))),
    )
    manifest = _base_manifest(checkpoint, config, spec, name, version, text_prefix, max_length)
    manifest["training"] = dict(training or {})
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        package = _build_verified(build, staging, manifest)
        manifest["parity"]["validation_sample"] = "caller" if validation_texts else "builtin"
        finalize_manifest(package, manifest)
        _publish(package, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "exported %s %s to %s in %.1f s", name, version, out_dir, time.monotonic() - started
    )
    return out_dir


def _build_verified(build: _Build, staging: Path, manifest: dict[str, Any]) -> Path:
    """Export (and optionally quantise) into ``staging``, proving parity at each stage.

    The fp32 graph is checked against ``atol`` even when an int8 package is the
    goal, so that an export bug is never mistaken for quantisation loss (both
    are checked in the same fresh process, sharing the PyTorch reference run).
    Returns the directory of the package to publish; ``manifest`` gets the
    ``optimized``, ``quantization`` and ``parity`` entries.
    """
    fp32_dir = staging / "fp32"
    fp32_dir.mkdir()
    tokenizer = _package_tokenizer(build.checkpoint, manifest["max_length"])
    tokenizer.save(str(fp32_dir / TOKENIZER_FILE))
    manifest["source"]["architecture"] = _export_onnx(build, tokenizer, fp32_dir / MODEL_FILE)
    smoothed = _smooth(build, tokenizer, fp32_dir / MODEL_FILE, manifest["text_prefix"])
    manifest["optimized"] = build.optimize
    if build.optimize:
        _optimize(fp32_dir / MODEL_FILE, build.config, build.spec.family)
    _write_manifest(fp32_dir, manifest)
    if not build.quantize:
        manifest["parity"] = {"fp32": run_parity([fp32_dir], build.checkpoint, build.texts)[0]}
        return fp32_dir
    int8_dir = staging / "int8"
    int8_dir.mkdir()
    shutil.copyfile(fp32_dir / TOKENIZER_FILE, int8_dir / TOKENIZER_FILE)
    manifest["quantization"] = _quantize(fp32_dir / MODEL_FILE, int8_dir / MODEL_FILE, build)
    if smoothed:
        manifest["quantization"]["smoothing"] = {
            "alpha": build.smooth_alpha,
            "calibration_texts": len(build.calibration_texts),
            "nodes": smoothed,
        }
    _write_manifest(int8_dir, manifest)
    fp32_parity, int8_parity = run_parity([fp32_dir, int8_dir], build.checkpoint, build.texts)
    manifest["parity"] = {"fp32": fp32_parity, "int8": int8_parity}
    return int8_dir


class PooledEncoder(torch.nn.Module):
    """The exported computation: encoder pass → (logits, embedding) or (embedding,).

    The embedding is the attention-mask mean of the last hidden state,
    L2-normalised; for classification it comes from the same encoder pass as
    the logits. ``token_type_ids`` are fed as zeros inside the graph so that
    every package has the same two inputs.
    """

    def __init__(self, model: torch.nn.Module, spec: ExportSpec) -> None:
        super().__init__()
        self.model = model
        self.classify = spec.task == TASK_CLASSIFICATION
        self.token_type_ids = spec.family.uses_token_type_ids

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """Run the encoder once and pool its last hidden state."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.token_type_ids:
            inputs["token_type_ids"] = torch.zeros_like(input_ids)
        if not self.classify:
            return (mean_pool(self.model(**inputs).last_hidden_state, attention_mask),)
        outputs = self.model(**inputs, output_hidden_states=True)
        return outputs.logits, mean_pool(outputs.hidden_states[-1], attention_mask)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` over unmasked tokens, L2-normalised (sentence-transformers convention)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(summed / counts, p=2.0, dim=1)


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ExportError(f"{out_dir} exists and is not an empty directory; refusing to overwrite")
    out_dir.parent.mkdir(parents=True, exist_ok=True)


def _check_max_length(config: Any, family: FamilySpec, max_length: int) -> None:
    """``max_length`` must fit the position table (RoBERTa-likes reserve ``pad_token_id + 1``)."""
    reserved = config.pad_token_id + 1 if family.positions_after_pad_id else 0
    limit = int(config.max_position_embeddings) - reserved
    if not 1 <= max_length <= limit:
        raise ExportError(f"max_length {max_length} is outside 1..{limit} for this checkpoint")


def _validation_sample(texts: list[str] | None) -> list[str]:
    if texts is None:
        logger.warning(
            "no validation texts given: parity runs on the small built-in zh+en sample only"
        )
        return list(DEFAULT_VALIDATION_TEXTS)
    if not texts:
        raise ExportError("validation_texts is empty: parity needs at least one text")
    return list(texts)


def _base_manifest(
    checkpoint: Path,
    config: Any,
    spec: ExportSpec,
    name: str,
    version: str,
    text_prefix: str,
    max_length: int,
) -> dict[str, Any]:
    """Manifest fields known before export; parity and sha256 stay empty until verified."""
    manifest: dict[str, Any] = {
        "format": PACKAGE_FORMAT,
        "name": name,
        "version": version,
        "task": spec.task,
        "max_length": max_length,
        "text_prefix": text_prefix,
        "opset": spec.opset,
        "onnxruntime_version": onnxruntime.__version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "quantization": None,
        "optimized": False,
        "tolerance": spec.tolerance(),
        "parity": {},
        "sha256": {},
        "source": {"checkpoint": str(checkpoint), "architecture": ""},
        "training": {},
    }
    if spec.task == TASK_CLASSIFICATION:
        manifest["labels"] = [config.id2label[i] for i in range(config.num_labels)]
    return manifest


def _package_tokenizer(checkpoint: Path, max_length: int) -> Tokenizer:
    """The checkpoint's fast tokenizer, set to truncate at ``max_length`` and pad to the longest.

    Padding and truncation are stored in tokenizer.json so the runtime gets
    model-ready batches from ``encode_batch`` alone (some checkpoints ship a
    fixed-length padding setting, which this replaces).
    """
    hf_tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if not hf_tokenizer.is_fast:
        raise ExportError(f"{checkpoint} has no fast (tokenizers) tokenizer")
    if hf_tokenizer.pad_token is None:
        raise ExportError(f"{checkpoint}: tokenizer has no pad token")
    source = checkpoint / TOKENIZER_FILE
    if source.is_file():
        tokenizer = Tokenizer.from_file(str(source))
    else:
        tokenizer = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())
    tokenizer.enable_padding(pad_id=hf_tokenizer.pad_token_id, pad_token=hf_tokenizer.pad_token)
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def _load_model(checkpoint: Path, task: str) -> torch.nn.Module:
    """fp32 model in eval mode; eager attention traces to plain ops the ORT optimiser can fuse."""
    auto = AutoModelForSequenceClassification if task == TASK_CLASSIFICATION else AutoModel
    model: torch.nn.Module = auto.from_pretrained(
        checkpoint, dtype=torch.float32, attn_implementation="eager"
    )
    return model.eval()


def _export_onnx(build: _Build, tokenizer: Tokenizer, path: Path) -> str:
    """Trace the pooled encoder to ``path``; return the exported architecture's class name."""
    spec = build.spec
    model = _load_model(build.checkpoint, spec.task)
    wrapper = PooledEncoder(model, spec).eval()
    encodings = tokenizer.encode_batch(list(_TRACE_TEXTS))
    input_ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
    attention_mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)
    started = time.monotonic()
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.onnx.export(
            wrapper,
            (input_ids, attention_mask),
            str(path),
            input_names=list(spec.input_names),
            output_names=list(spec.output_names),
            dynamic_axes=spec.dynamic_axes,
            opset_version=spec.opset,
            do_constant_folding=True,
            dynamo=False,
        )
    _log_export_warnings(caught)
    _check_single_file(path)
    onnx.checker.check_model(str(path))
    logger.info(
        "torch.onnx.export (TorchScript, opset %d) took %.1f s",
        spec.opset,
        time.monotonic() - started,
    )
    return type(model).__name__


def _log_export_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Exporter warnings (legacy-exporter deprecation, benign tracer notes) go to DEBUG.

    Whether tracing generalised is decided by the parity check, not by these.
    """
    for message in sorted({f"{w.category.__name__}: {w.message}" for w in caught}):
        logger.debug("export warning: %s", message)
    if caught:
        logger.info("torch.onnx.export emitted %d warnings (logged at DEBUG)", len(caught))


def _check_single_file(path: Path) -> None:
    """A package holds one self-contained model.onnx: no external-data files (models > 2 GiB)."""
    extra = sorted(
        p.name for p in path.parent.iterdir() if p.name not in {MODEL_FILE, TOKENIZER_FILE}
    )
    if extra:
        raise ExportError(
            f"export wrote external data {extra}; models over 2 GiB are not supported"
        )


def _optimize(path: Path, config: Any, family: FamilySpec) -> None:
    """Fuse attention/LayerNorm/GELU with onnxruntime's offline transformer optimiser (in place).

    ``opt_level=0`` keeps to the portable Python fusions; onnxruntime's own
    graph optimisations still run at session creation on the target machine.
    The EmbedLayerNormalization fusion is off: it would swallow the embedding
    Gathers, and its quantised form int8-encodes every table, not just the
    word table (measured on multilingual-e5-small, 300 reviews: min cosine
    0.9877 with it, 0.9912 without, same 75 MB).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions(family.ort_model_type)
    options.enable_embed_layer_norm = False
    optimized = optimize_model(
        str(path),
        model_type=family.ort_model_type,
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        optimization_options=options,
        opt_level=0,
    )
    fused = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
    logger.info("onnxruntime transformer optimizer fused: %s", fused)
    optimized.save_model_to_file(str(path))


def _smooth(build: _Build, tokenizer: Tokenizer, path: Path, prefix: str) -> list[str]:
    """SmoothQuant the FFN output MatMuls of the fp32 graph in place, if asked.

    Done before parity, so the fp32 check also proves the rewrite exact.
    """
    if build.smooth_alpha is None:
        return []
    texts = sorted(build.calibration_texts, key=len)  # similar lengths: little padding

    feeds = (
        model_inputs(tokenizer, [prefix + t for t in texts[start : start + 32]])
        for start in range(0, len(texts), 32)
    )
    started = time.monotonic()
    nodes = smooth_matmul_inputs(
        path, build.spec.family.ffn_output_matmul, feeds, build.smooth_alpha
    )
    logger.info(
        "smoothed %d FFN output MatMuls (alpha %s, %d calibration texts) in %.1f s",
        len(nodes),
        build.smooth_alpha,
        len(texts),
        time.monotonic() - started,
    )
    return nodes


def _quantize(source: Path, target: Path, build: _Build) -> dict[str, Any]:
    """Dynamic int8 quantisation of ``source`` into ``target``; return the manifest entry.

    Weights are int8 (per output channel if ``per_channel``), activations are
    quantised at run time. The word-embedding Gather is quantised too (per
    tensor: onnxruntime has no per-channel Gather), which shrinks the largest
    table fourfold. ``DefaultTensorType`` lets the quantiser handle tensors
    whose type shape inference could not determine on a raw export.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source)).graph
    excluded = _excluded_gathers(graph) + _layer_matmuls(graph, build.fp32_layers)
    root = logging.getLogger()
    root.addFilter(_quantizer_chatter)
    try:
        quantize_dynamic(
            source,
            target,
            per_channel=build.per_channel,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.removeFilter(_quantizer_chatter)
    logger.info("quantised %s -> %s bytes", source.stat().st_size, target.stat().st_size)
    entry: dict[str, Any] = {
        "method": QUANTIZATION_METHOD,
        "per_channel": build.per_channel,
        "excluded_nodes": excluded,
    }
    if build.fp32_layers:
        entry["fp32_layers"] = list(build.fp32_layers)
    return entry


def _quantizer_chatter(record: logging.LogRecord) -> bool:
    """Drop the quantiser's per-tensor INFO lines (hundreds, logged on the root logger)."""
    return record.levelno > logging.INFO or "onnxruntime" not in record.pathname


def _excluded_gathers(graph: onnx.GraphProto) -> list[str]:
    """The small embedding-table Gathers (position, token type) stay fp32."""
    initializers = {init.name for init in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type == "Gather"
        and node.input[0] in initializers
        and _QUANTIZED_GATHER_TABLE not in node.input[0]
    ]


def _layer_matmuls(graph: onnx.GraphProto, layers: Sequence[int]) -> list[str]:
    """The weight MatMuls of the encoder ``layers`` (``…/layer.N/…`` in the node name)."""
    initializers = {init.name for init in graph.initializer}
    names = []
    for layer in layers:
        found = [
            node.name
            for node in graph.node
            if node.op_type == "MatMul"
            and f"/layer.{layer}/" in node.name
            and any(name in initializers for name in node.input)
        ]
        if not found:
            raise ExportError(f"no weight MatMuls of encoder layer {layer} in the graph")
        names += found
    return names


def _write_manifest(package: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (package / MANIFEST_FILE).write_text(text, encoding="utf-8")


def finalize_manifest(package: Path, manifest: dict[str, Any]) -> None:
    """Record the sha256 of the final files, then of the manifest itself, and write it."""
    manifest["sha256"] = {
        name: sha256_file(package / name) for name in (MODEL_FILE, TOKENIZER_FILE)
    }
    manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
    _write_manifest(package, manifest)


def _publish(package: Path, out_dir: Path) -> None:
    """Move the verified package into place (``out_dir`` is absent or empty, checked up front)."""
    if out_dir.exists():
        out_dir.rmdir()
    package.rename(out_dir)
