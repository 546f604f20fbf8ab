"""Taking the class-weight prior out of the neutral logit: the shift, fine-tuning's
saved head, and the correction of an already exported package."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from export.data import Example
from export.errors import ExportError
from export.finetune import FinetuneConfig, finetune
from export.onnx_export import export_package
from export.prior import (
    RECORD,
    class_weights,
    correct_package,
    neutral_shift,
    training_weights,
)
from export.tiny import (
    MAX_POSITIONS,
    build_tiny_checkpoint,
    labelled_sample_texts,
    sample_texts,
)
from models.package import load_package
from models.runtime import open_scorer
from tests.packages import TINY_PACKAGE

TRAINING = {
    "labels_by_source": {
        "zh_shopping": {"negative": 900, "positive": 1100},
        "en_clothing": {"negative": 100, "neutral": 50, "positive": 300},
    }
}


def test_shift_takes_out_neutrals_extra_weight_only() -> None:
    assert neutral_shift([1.0, 1.0, 1.0]) == 0.0
    assert neutral_shift([0.5, 2.0, 0.5]) == pytest.approx(-math.log(4))
    # relative to the geometric mean of negative and positive
    assert neutral_shift([0.5, 2.0, 2.0]) == pytest.approx(-math.log(2))
    assert neutral_shift([1.0, 0.0, 1.0]) == 0.0  # no neutral examples, nothing to undo
    with pytest.raises(ExportError):
        neutral_shift([1.0, 1.0])


def test_training_weights_come_from_the_recorded_label_counts() -> None:
    labels = [0] * 1000 + [1] * 50 + [2] * 1400
    assert training_weights(TRAINING) == pytest.approx(class_weights(labels, 3))
    assert neutral_shift(training_weights(TRAINING)) < -1
    with pytest.raises(ExportError, match="labels_by_source"):
        training_weights({"recipe": "tiny"})


def test_finetune_saves_the_corrected_head(tmp_path: Path) -> None:
    base = build_tiny_checkpoint(tmp_path / "base", seed=1)
    examples = [Example(text, label, "tiny", "all") for text, label in labelled_sample_texts()]
    # learning rates of zero: the saved head differs from the base by the correction alone
    config = FinetuneConfig(
        seed=3, train_layers=1, batch_size=16, max_steps=2, max_length=32, lr_layers=0, lr_head=0
    )
    report = finetune(base, tmp_path / "out", examples, config, progress=False)
    shift = neutral_shift(class_weights([e.label for e in examples], 3))
    assert shift < 0 and report["neutral_logit_shift"] == pytest.approx(shift, abs=1e-6)
    before = load_file(base / "model.safetensors")["classifier.bias"].numpy()
    after = load_file(tmp_path / "out" / "model.safetensors")["classifier.bias"].numpy()
    np.testing.assert_allclose(after - before, [0.0, shift, 0.0], atol=1e-6)


def with_training(src: Path, dst: Path, training: Mapping[str, object]) -> Path:
    """A copy of ``src`` whose manifest carries ``training`` (digest recomputed), with a
    metrics.json of its own."""
    from models.package import manifest_digest

    shutil.copytree(src, dst)
    (dst / "metrics.json").write_text("{}")
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["training"] = training
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def test_correct_package_moves_only_the_neutral_logit(tmp_path: Path) -> None:
    src = with_training(TINY_PACKAGE, tmp_path / "src", TRAINING)
    record = correct_package(src, tmp_path / "out", TRAINING, version="9.9.9")
    shift = neutral_shift(training_weights(TRAINING))
    assert record["neutral_logit_shift"] == pytest.approx(shift, abs=1e-6)
    corrected = load_package(tmp_path / "out")  # hashes and digest verified
    assert corrected.version == "9.9.9" and corrected.manifest[RECORD] == record
    assert record["from_version"] == load_package(src).version
    assert not (tmp_path / "out" / "metrics.json").exists()  # it measured src

    texts = [text for text, _ in labelled_sample_texts()][:40]
    before = open_scorer(src).score(texts).probs
    after = open_scorer(tmp_path / "out").score(texts).probs
    assert before is not None and after is not None
    # log-odds against positive: negative's unchanged, neutral's moved by the shift
    np.testing.assert_allclose(
        np.log(after[:, 0] / after[:, 2]), np.log(before[:, 0] / before[:, 2]), atol=1e-4
    )
    np.testing.assert_allclose(
        np.log(after[:, 1] / after[:, 2]) - np.log(before[:, 1] / before[:, 2]),
        np.full(len(texts), shift),
        atol=1e-4,
    )


def test_correct_package_refuses_twice_and_existing_out(tmp_path: Path) -> None:
    src = with_training(TINY_PACKAGE, tmp_path / "src", TRAINING)
    correct_package(src, tmp_path / "once", TRAINING, version="2")
    with pytest.raises(ExportError, match="already corrected"):
        correct_package(tmp_path / "once", tmp_path / "twice", TRAINING, version="3")
    with pytest.raises(ExportError, match="exists"):
        correct_package(src, tmp_path / "once", TRAINING, version="3")
    with pytest.raises(ExportError, match="labels_by_source"):
        correct_package(
            TINY_PACKAGE,
            tmp_path / "tiny",
            load_package(TINY_PACKAGE).manifest["training"],
            version="2",
        )
    assert not (tmp_path / "tiny").exists()


def test_parity_is_measured_again_against_the_shifted_checkpoint(tmp_path: Path) -> None:
    checkpoint = build_tiny_checkpoint(tmp_path / "checkpoint")
    src = export_package(
        checkpoint,
        tmp_path / "src",
        task="sequence-classification",
        name="tiny",
        version="1",
        max_length=MAX_POSITIONS,
        quantize=True,
        training=TRAINING,
        validation_texts=sample_texts()[::4],
        int8_label_agreement_min=0.9,  # a 2-layer toy; the real package is held to 0.99
    )
    texts = sample_texts()[1::8]
    record = correct_package(
        src, tmp_path / "out", TRAINING, version="2", checkpoint=checkpoint, texts=texts
    )
    assert record["label_agreement"] == "measured again against the checkpoint with the shift"
    parity = load_package(tmp_path / "out").manifest["parity"]
    assert parity["int8"]["n_texts"] == len(texts)  # the fresh check, not the export's
    assert parity["fp32"] == load_package(src).manifest["parity"]["fp32"]
    uncorrected = correct_package(src, tmp_path / "plain", TRAINING, version="2")
    assert uncorrected["label_agreement"] == "measured before the shift"
    with pytest.raises(ExportError, match="validation texts"):
        correct_package(src, tmp_path / "x", TRAINING, version="2", checkpoint=checkpoint)
