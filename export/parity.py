"""Parity of a model package with its PyTorch checkpoint, proven in a fresh process.

``python -m export.parity --checkpoint CKPT --texts TEXTS.jsonl PKG [PKG ...] [--out FILE]``
loads each package with onnxruntime alone (as ``models/`` does) and the
checkpoint with PyTorch, and compares them on the texts: with the package's
``text_prefix``, tokenised by the package's tokenizer.json, padded to the
longest text of each batch. A fresh process means nothing from the export
(traced modules, patched globals, cached sessions) can leak into the verdict.

Checks, with thresholds read from the package manifest's ``tolerance``:

* every package: the package tokenizer gives the same ids as the checkpoint's
  ``AutoTokenizer``; output shapes match the manifest; recorded sha256 (if
  any) match the files;
* fp32 package: max |logits diff| and max |embedding diff| <= ``atol``;
* int8 package: argmax label agreement with the fp32 PyTorch model >=
  ``int8_label_agreement_min`` and mean embedding cosine >=
  ``int8_embedding_cosine_mean_min``.

Exit status 0: passed; 1: a check failed; 2: the check could not run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from export.errors import ExportError, ParityError, QuantizationLossError
from export.spec import (
    EMBEDDING,
    LOGITS,
    TASK_CLASSIFICATION,
)
from models.package import MANIFEST as MANIFEST_FILE
from models.package import MODEL_FILE, TOKENIZER_FILE, sha256_file

logger = logging.getLogger(__name__)

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_ERROR = 2
BATCH_SIZE = 16
DEFAULT_TIMEOUT_S = 3600.0

# Smoke sample used when the caller gives no texts: zh, en, mixed, emoji, an
# empty string and one text longer than any max_length (truncation path).
# Far too small to establish a 99% agreement rate; real exports pass real reviews.
DEFAULT_VALIDATION_TEXTS: tuple[str, ...] = (
    "The food was amazing and the staff were very friendly.",
    "Terrible service, we waited an hour and nobody apologised.",
    "It was okay, nothing special.",
    "Delivery was fast but the box was damaged.",
    "I would not recommend this hotel to anyone.",
    "Great value for money, will buy again!",
    "The app keeps crashing after the last update.",
    "Battery life is decent, screen is too dim outdoors.",
    "这家餐厅的菜很好吃，服务也很周到。",
    "快递太慢了，等了一个星期才到。",
    "价格一般，质量还行吧。",
    "客服态度非常差，再也不会买了！",
    "房间干净整洁，位置也方便。",
    "包装破损，商品有划痕，很失望。",
    "性价比很高，推荐购买。",
    "味道一般般，没有想象中好。",
    "The noodles 很好吃 but the waiter was rude.",
    "质量不错 highly recommended 👍",
    "😡😡😡 worst purchase ever",
    "",
    "ok",
    "Long review: " + "the room was clean, the bed was comfortable, 早餐也很丰盛。" * 60,
)


def run_parity(
    packages: Sequence[Path],
    checkpoint: Path,
    texts: Sequence[str],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[dict[str, Any]]:
    """Check each package against ``checkpoint`` on ``texts`` in one fresh Python process.

    Returns each package's measured results (for manifest["parity"]), in
    order. Raises ParityError with the numbers when any check fails
    (QuantizationLossError when only int8 tolerances failed),
    ExportError when the check could not run.
    """
    with tempfile.TemporaryDirectory(prefix="parity-") as tmp:
        texts_path, out_path = Path(tmp) / "texts.jsonl", Path(tmp) / "report.json"
        write_texts(texts_path, texts)
        command = [
            sys.executable,
            "-m",
            "export.parity",
            "--checkpoint",
            str(checkpoint),
            "--texts",
            str(texts_path),
            "--out",
            str(out_path),
            *map(str, packages),
        ]
        try:
            proc = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=_child_env(),
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise ExportError(f"parity process did not finish within {timeout_s:.0f} s") from error
        if proc.returncode not in (EXIT_PASSED, EXIT_FAILED) or not out_path.is_file():
            raise ExportError(
                f"parity process failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
            )
        reports = json.loads(out_path.read_text(encoding="utf-8"))
    failures = [
        f"{report['package']}: {failure}" for report in reports for failure in report["failures"]
    ]
    if failures:
        failed = [report for report in reports if report["failures"]]
        only_int8 = all(report["quantization_loss"] for report in failed)
        raise (QuantizationLossError if only_int8 else ParityError)("; ".join(failures))
    return [report["results"] for report in reports]


def _child_env() -> dict[str, str]:
    """The parent's environment, with this package's root importable in the child."""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def write_texts(path: Path, texts: Sequence[str]) -> None:
    """One ``{"text": ...}`` JSON object per line."""
    lines = (json.dumps({"text": text}, ensure_ascii=False) for text in texts)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_texts(path: Path) -> list[str]:
    """Texts from a JSONL file whose lines are JSON strings or objects with a "text" field."""
    texts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        item = json.loads(line)
        text = item.get("text") if isinstance(item, dict) else item
        if not isinstance(text, str):
            raise ExportError(
                f"{path}:{number}: expected a JSON string or an object with a 'text' string"
            )
        texts.append(text)
    return texts


FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass
class _Outputs:
    """Per-text outputs of one side (package or PyTorch), accumulated over batches."""

    logits: list[FloatArray] = field(default_factory=list)
    embedding: list[FloatArray] = field(default_factory=list)

    def add(self, outputs: dict[str, FloatArray]) -> None:
        if LOGITS in outputs:
            self.logits.append(outputs[LOGITS])
        self.embedding.append(outputs[EMBEDDING])


@dataclass(frozen=True)
class PackageReport:
    """Outcome of checking one package: measured numbers and failed checks (empty: passed)."""

    package: str
    results: dict[str, Any]
    failures: list[str]
    # an int8 package whose only failures are the int8 tolerances: the export is faithful
    quantization_loss: bool = False


class Reference:
    """The PyTorch side of the comparison, shared by all packages checked in one process.

    Models are loaded once per task and outputs cached per token-id batch, so
    checking an fp32 and an int8 package of the same export runs the
    (expensive) PyTorch forward passes only once.
    """

    def __init__(self, checkpoint: Path) -> None:
        from transformers import AutoTokenizer

        self.checkpoint = checkpoint
        self.hf_tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self._models: dict[str, Any] = {}
        self._cache: dict[tuple[str, str], dict[str, FloatArray]] = {}

    def outputs(
        self, task: str, input_ids: IntArray, attention_mask: IntArray
    ) -> dict[str, FloatArray]:
        """Logits (classification) and pooled embedding of the fp32 checkpoint for one batch."""
        key = (task, hashlib.sha256(input_ids.tobytes() + attention_mask.tobytes()).hexdigest())
        if key not in self._cache:
            if task not in self._models:
                self._models[task] = _load_reference(self.checkpoint, task)
            self._cache[key] = _reference_outputs(self._models[task], input_ids, attention_mask)
        return self._cache[key]


def check_packages(
    packages: Sequence[Path], checkpoint: Path, texts: Sequence[str]
) -> list[PackageReport]:
    """Compare each package with ``checkpoint`` in this process (run_parity's fresh one)."""
    if not texts:
        raise ExportError("parity needs at least one text")
    reference = Reference(checkpoint)
    return [check_package(package, reference, texts) for package in packages]


def check_package(package: Path, reference: Reference, texts: Sequence[str]) -> PackageReport:
    """Run every check of the module docstring on one package."""
    started = time.monotonic()
    manifest = json.loads((package / MANIFEST_FILE).read_text(encoding="utf-8"))
    failures = _sha256_failures(package, manifest.get("sha256") or {})
    onnx_side, torch_side, mismatches = _run_both(package, reference, manifest, texts)
    if mismatches:
        failures.append(
            f"package tokenizer differs from the checkpoint's on {mismatches} of {len(texts)} texts"
        )
    failures += _shape_failures(manifest, onnx_side)
    quantized = bool(manifest.get("quantization"))
    results, more = (_int8_checks if quantized else _fp32_checks)(manifest, onnx_side, torch_side)
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
    results.update(
        n_texts=len(texts),
        texts_sha256=digest,
        tokenizer_mismatches=mismatches,
        seconds=round(time.monotonic() - started, 2),
    )
    return PackageReport(
        str(package), results, failures + more, quantized and bool(more) and not failures
    )


def _sha256_failures(package: Path, recorded: dict[str, str]) -> list[str]:
    return [
        f"sha256 of {name} does not match the manifest"
        for name, digest in sorted(recorded.items())
        if sha256_file(package / name) != digest
    ]


def _run_both(
    package: Path, reference: Reference, manifest: dict[str, Any], texts: Sequence[str]
) -> tuple[_Outputs, _Outputs, int]:
    """Run package and checkpoint on the package tokenizer's ids; count tokenizer mismatches."""
    import onnxruntime
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(package / TOKENIZER_FILE))
    session = onnxruntime.InferenceSession(
        str(package / MODEL_FILE), providers=["CPUExecutionProvider"]
    )
    names = [output.name for output in session.get_outputs()]
    onnx_side, torch_side, mismatches = _Outputs(), _Outputs(), 0
    for batch in _batches([manifest["text_prefix"] + text for text in texts]):
        inputs = model_inputs(tokenizer, batch)
        input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
        expected = reference.hf_tokenizer(
            batch, truncation=True, max_length=manifest["max_length"]
        )["input_ids"]
        mismatches += sum(
            list(ids[mask == 1]) != list(ref)
            for ids, mask, ref in zip(input_ids, attention_mask, expected, strict=True)
        )
        values = session.run(names, inputs)
        onnx_side.add(dict(zip(names, values, strict=True)))
        torch_side.add(reference.outputs(manifest["task"], input_ids, attention_mask))
    return onnx_side, torch_side, mismatches


def model_inputs(tokenizer: Any, texts: Sequence[str]) -> dict[str, IntArray]:
    """The two graph inputs for ``texts`` (prefix already applied), padded to the longest."""
    encodings = tokenizer.encode_batch(list(texts))
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
    }


def _batches(texts: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(texts), BATCH_SIZE):
        yield texts[start : start + BATCH_SIZE]


def _load_reference(checkpoint: Path, task: str) -> Any:
    """The fp32 PyTorch model with its default attention implementation (not the export's)."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    auto = AutoModelForSequenceClassification if task == TASK_CLASSIFICATION else AutoModel
    return auto.from_pretrained(checkpoint, dtype=torch.float32).eval()


def _reference_outputs(
    model: Any, input_ids: IntArray, attention_mask: IntArray
) -> dict[str, FloatArray]:
    """Logits (if the model has a head) and the pooled embedding, pooled here in numpy.

    The pooling is re-implemented rather than reusing the export wrapper, so a
    pooling bug in the wrapper cannot pass by agreeing with itself.
    """
    import torch

    with torch.inference_mode():
        out = model(
            input_ids=torch.from_numpy(input_ids),
            attention_mask=torch.from_numpy(attention_mask),
            output_hidden_states=True,
        )
    outputs = {EMBEDDING: _mean_pool(out.hidden_states[-1].numpy(), attention_mask)}
    if hasattr(out, "logits"):
        outputs[LOGITS] = out.logits.numpy()
    return outputs


def _mean_pool(hidden: FloatArray, attention_mask: IntArray) -> FloatArray:
    mask = attention_mask[..., None].astype(np.float32)
    mean = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
    norm = np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    pooled: FloatArray = (mean / norm).astype(np.float32)
    return pooled


def _shape_failures(manifest: dict[str, Any], onnx_side: _Outputs) -> list[str]:
    failures = []
    if manifest["task"] == TASK_CLASSIFICATION:
        columns = {logits.shape[1] for logits in onnx_side.logits}
        labels = len(manifest["labels"])
        if columns != {labels}:
            failures.append(
                f"logits have {sorted(columns)} columns, manifest lists {labels} labels"
            )
    elif onnx_side.logits:
        failures.append("embedding package has a logits output")
    return failures


def _fp32_checks(
    manifest: dict[str, Any], onnx_side: _Outputs, torch_side: _Outputs
) -> tuple[dict[str, Any], list[str]]:
    """Max and mean absolute differences of every output, each max against ``atol``."""
    atol = float(manifest["tolerance"]["atol"])
    results: dict[str, Any] = {"atol": atol}
    failures = []
    for output in (LOGITS, EMBEDDING):
        ours, ref = getattr(onnx_side, output), getattr(torch_side, output)
        if not ours:
            continue
        diff = np.abs(np.concatenate(ours) - np.concatenate(ref))
        results[f"{output}_max_abs_diff"] = float(diff.max())
        results[f"{output}_mean_abs_diff"] = float(diff.mean())
        if not diff.max() <= atol:
            failures.append(
                f"max |{output} diff| {diff.max():.3g} > atol {atol:.3g} (mean {diff.mean():.3g})"
            )
    return results, failures


def _int8_checks(
    manifest: dict[str, Any], onnx_side: _Outputs, torch_side: _Outputs
) -> tuple[dict[str, Any], list[str]]:
    """Label agreement (classification) and embedding cosine against the fp32 PyTorch model."""
    tolerance = manifest["tolerance"]
    ours, ref = np.concatenate(onnx_side.embedding), np.concatenate(torch_side.embedding)
    cosine = (ours * ref).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    results: dict[str, Any] = {
        "embedding_cosine_mean": float(cosine.mean()),
        "embedding_cosine_min": float(cosine.min()),
    }
    failures = []
    cosine_min = float(tolerance["int8_embedding_cosine_mean_min"])
    if not cosine.mean() >= cosine_min:
        failures.append(
            f"int8 embedding cosine mean {cosine.mean():.4f} < {cosine_min}"
            f" (min {cosine.min():.4f})"
        )
    if onnx_side.logits:
        labels, ref_labels = (
            np.concatenate(onnx_side.logits).argmax(1),
            np.concatenate(torch_side.logits).argmax(1),
        )
        agreement = float((labels == ref_labels).mean())
        results["label_agreement"] = agreement
        results["logits_max_abs_diff"] = float(
            np.abs(np.concatenate(onnx_side.logits) - np.concatenate(torch_side.logits)).max()
        )
        agreement_min = float(tolerance["int8_label_agreement_min"])
        if not agreement >= agreement_min:
            failures.append(
                f"int8 label agreement {agreement:.2%} < {agreement_min:.0%} "
                f"({int((labels != ref_labels).sum())} of {len(labels)} texts differ)"
            )
    return results, failures


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: check packages, write a JSON list of package/results/failures, exit 0, 1 or 2."""
    parser = argparse.ArgumentParser(
        prog="python -m export.parity",
        description="Check ONNX model packages against their PyTorch checkpoint.",
    )
    parser.add_argument("packages", type=Path, nargs="+", help="model package directories")
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="the Hugging Face checkpoint directory"
    )
    parser.add_argument(
        "--texts",
        type=Path,
        required=True,
        help='JSONL validation sample: one JSON string or {"text": ...} per line',
    )
    parser.add_argument("--out", type=Path, help="write the JSON report here instead of stdout")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        reports = check_packages(args.packages, args.checkpoint, read_texts(args.texts))
    except (ExportError, OSError, ValueError) as error:
        logger.error("parity check could not run: %s", error)
        return EXIT_ERROR
    text = json.dumps([asdict(report) for report in reports], indent=2, sort_keys=True) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    failures = [f"{report.package}: {failure}" for report in reports for failure in report.failures]
    for failure in failures:
        logger.error("parity failed: %s", failure)
    return EXIT_FAILED if failures else EXIT_PASSED


if __name__ == "__main__":
    sys.exit(main())
