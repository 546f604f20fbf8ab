"""Take the class-weight prior back out of the neutral logit.

Fine-tuning weights the cross-entropy by inverse-sqrt class frequency
(:func:`class_weights`) so that the rare neutral class, which
only the English star-rated reviews supply, gets a useful gradient. Weighted
cross-entropy is minimised by logits ``log p(y|x) + log w_y + c``: the trained
head keeps the weights as a prior and over-calls the up-weighted class. Measured
on the 1.1.0 default (English held-out, 2,478 reviews, 278 of them 3-star): 700
neutral calls, 186 of the 251 negatives among them; 3-class macro-F1 0.598.

The correction subtracts, from the neutral logit only, how much more neutral was
weighted than the geometric mean of negative and positive::

    shift = -(log w_neutral - (log w_negative + log w_positive) / 2)

Negatives and positives are weighted within ~10 % of each other and carry the
binary decision the alerts count, so their difference is left as trained: binary
accuracy does not move, by construction. A training set without neutral examples
(the Chinese corpus alone) gets no shift.

:func:`correct_head` applies the shift to a PyTorch head (``finetune`` does it
before saving); :func:`correct_package` applies it to a package exported before
the correction existed, by moving the classifier's float32 bias in ``model.onnx``
— the last op of the logits, so the shift is exact: the package's logit and
embedding differences from its checkpoint stay what its parity report says. Its
label agreement does not carry over (the decision boundary moved), so given the
checkpoint the package was exported from, the parity check runs again against
that checkpoint with the same shift; without it, the manifest says the label
agreement was measured before the shift.
"""

from __future__ import annotations

import math
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from export.data import LABELS
from export.errors import ExportError

NEG, NEU, POS = (LABELS.index(x) for x in ("negative", "neutral", "positive"))
BIAS = "model.classifier.bias"  # the head's bias initializer in an exported package
RECORD = "neutral_prior"  # manifest key of a package corrected after export


def class_weights(labels: Sequence[int], n_classes: int) -> list[float]:
    """Inverse square-root frequency, normalised to mean 1 over present classes."""
    counts = Counter(labels)
    return count_weights([counts[c] for c in range(n_classes)])


def count_weights(counts: Sequence[int]) -> list[float]:
    """:func:`class_weights` from the number of examples per class."""
    raw = [1 / math.sqrt(n) if n else 0.0 for n in counts]
    present = [w for w in raw if w]
    mean = sum(present) / len(present)
    return [w / mean for w in raw]


def neutral_shift(weights: Sequence[float]) -> float:
    """The logit shift for the neutral class that undoes its extra weight (0 if absent)."""
    if len(weights) != len(LABELS):
        raise ExportError(f"expected {len(LABELS)} class weights, got {len(weights)}")
    if weights[NEU] <= 0 or weights[NEG] <= 0 or weights[POS] <= 0:
        return 0.0
    return -(math.log(weights[NEU]) - (math.log(weights[NEG]) + math.log(weights[POS])) / 2)


def training_weights(training: Mapping[str, Any]) -> list[float]:
    """The class weights a fine-tuning run used, from its ``training.json`` record."""
    by_source = training.get("labels_by_source")
    if not isinstance(by_source, Mapping) or not by_source:
        raise ExportError(
            "the training record has no labels_by_source (not a `reviewpulse export "
            "finetune` run); pass the package whose training the head inherits"
        )
    return count_weights(
        [sum(int(c.get(label, 0)) for c in by_source.values()) for label in LABELS]
    )


def correct_head(model: Any, shift: float) -> None:
    """Add ``shift`` to the neutral bias of a Hugging Face sequence classifier."""
    import torch

    bias = getattr(getattr(model, "classifier", None), "bias", None)
    if bias is None or tuple(bias.shape) != (len(LABELS),):
        raise ExportError(f"{type(model).__name__} has no {len(LABELS)}-way classifier bias")
    with torch.no_grad():
        bias[NEU] += shift


def correct_package(
    src: Path,
    out: Path,
    training: Mapping[str, Any],
    *,
    version: str,
    checkpoint: Path | None = None,
    texts: Sequence[str] = (),
) -> dict[str, Any]:
    """Copy the package ``src`` to ``out`` with the neutral prior of ``training`` taken
    out of its head, as ``version``; returns the manifest's record of it.

    ``checkpoint``: the PyTorch checkpoint ``src`` was exported from; the parity check
    then runs again on ``texts`` against it with the same shift (ParityError: nothing
    written). ``metrics.json`` is not copied: it measured ``src`` (``reviewpulse export
    evaluate`` writes the new one); the model card is, for its author to update."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from export.onnx_export import finalize_manifest
    from models.package import load_package

    if checkpoint is not None and not texts:
        raise ExportError("re-checking parity against the checkpoint needs validation texts")
    package = load_package(src)
    if RECORD in package.manifest:
        raise ExportError(f"{src} is already corrected ({package.manifest[RECORD]})")
    if out.exists():
        raise ExportError(f"{out} exists; choose a new directory")
    weights = training_weights(training)
    shift = neutral_shift(weights)
    model = onnx.load(str(src / "model.onnx"))
    found = [init for init in model.graph.initializer if init.name == BIAS]
    if len(found) != 1:
        raise ExportError(f"{src}/model.onnx has no {BIAS} initializer")
    bias = numpy_helper.to_array(found[0]).copy()
    if bias.shape != (len(LABELS),):
        raise ExportError(f"{BIAS} has shape {bias.shape}, expected ({len(LABELS)},)")
    bias[NEU] += np.float32(shift)
    found[0].CopyFrom(numpy_helper.from_array(bias, BIAS))

    record = {
        "from_version": package.version,
        "class_weights": [round(w, 6) for w in weights],
        "neutral_logit_shift": round(shift, 6),
        "label_agreement": "measured before the shift"
        if checkpoint is None
        else "measured again against the checkpoint with the shift",
    }
    work = out.with_name(f".{out.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    try:
        shutil.copytree(src, work, ignore=shutil.ignore_patterns("metrics.json"))
        onnx.save(model, str(work / "model.onnx"))
        manifest = {**package.manifest, "version": version, RECORD: record}
        finalize_manifest(work, manifest)
        if checkpoint is not None:  # the parity process loads the package: hashes first
            kind = "int8" if manifest.get("quantization") else "fp32"
            manifest["parity"] = {
                **manifest["parity"],
                kind: _parity(work, checkpoint, shift, texts),
            }
            finalize_manifest(work, manifest)
        load_package(work)  # hashes and digest check out
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    work.rename(out)
    return record


def _parity(package: Path, checkpoint: Path, shift: float, texts: Sequence[str]) -> Any:
    """Parity results of ``package`` against ``checkpoint`` with its head shifted likewise."""
    import tempfile

    from transformers import AutoModelForSequenceClassification

    from export.parity import run_parity

    with tempfile.TemporaryDirectory(prefix="neutral-prior.") as tmp:
        shifted = Path(tmp) / "checkpoint"
        shutil.copytree(checkpoint, shifted)
        model = AutoModelForSequenceClassification.from_pretrained(shifted)
        correct_head(model, shift)
        model.save_pretrained(shifted)
        (results,) = run_parity([package], shifted, texts)
    return results
