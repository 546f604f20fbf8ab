"""Distillation end to end on tiny models: teacher package → soft labels → student → package."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from export.data import Example
from export.distill import DistillConfig, distill, kept_layers, teacher_probs
from export.errors import ExportError
from export.onnx_export import export_package
from export.tiny import build_tiny_checkpoint, labelled_sample_texts, sample_texts
from models.runtime import open_scorer

TEACHER = Path(__file__).parents[1] / "fixtures" / "tiny-package"
CONFIG = DistillConfig(seed=5, layers=1, batch_size=16, max_steps=8, max_length=32, lr_head=1e-2)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("distill") / "base", seed=2)


def examples() -> list[Example]:
    return [Example(text, label, "tiny", "all") for text, label in labelled_sample_texts()]


def test_kept_layers_are_evenly_spaced_with_first_and_last() -> None:
    assert kept_layers(12, 6) == [0, 2, 4, 7, 9, 11]
    assert kept_layers(12, 4) == [0, 4, 7, 11]
    assert kept_layers(2, 1) == [1]
    with pytest.raises(ExportError):
        kept_layers(2, 3)


def test_teacher_probabilities_come_from_the_package_and_are_cached(tmp_path: Path) -> None:
    texts = [e.text for e in examples()]
    cache = tmp_path / "probs.npz"
    probs = teacher_probs(TEACHER, texts, cache, threads=1, batch=8)
    assert probs.shape == (len(texts), 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    direct = open_scorer(TEACHER, threads=1).score(texts[:5]).probs
    assert direct is not None
    np.testing.assert_allclose(probs[:5], direct, atol=1e-6)
    stored = np.load(cache)["probs"]
    np.testing.assert_array_equal(teacher_probs(TEACHER, texts, cache), stored)
    # other texts: the cache is not reused
    assert teacher_probs(TEACHER, texts[:3], cache).shape == (3, 3)


def test_student_trains_reproducibly_and_exports_as_a_package(base: Path, tmp_path: Path) -> None:
    data = examples()
    soft = teacher_probs(TEACHER, [e.text for e in data], threads=1)
    first = distill(base, tmp_path / "a", data, soft, CONFIG, progress=False)
    second = distill(base, tmp_path / "b", data, soft, CONFIG, progress=False)
    assert first["steps"] == second["steps"] == 8
    assert first["kept_layers"] == [1]
    assert first["loss_last_50"] == pytest.approx(second["loss_last_50"], rel=1e-5)
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model.safetensors")
    assert not any("layer.1." in name for name in a)
    for name in a:
        assert (a[name] - b[name]).abs().max() < 1e-5, name
    # the student's layer 0 is the base's layer 1 (before training moved it a little)
    before = load_file(base / "model.safetensors")
    weight = "encoder.layer.0.attention.self.query.weight"
    assert (a[f"bert.{weight}"] - before[f"bert.{weight.replace('0', '1', 1)}"]).abs().max() < 0.1
    assert json.loads((tmp_path / "a" / "config.json").read_text())["num_hidden_layers"] == 1
    with pytest.raises(ExportError):
        distill(base, tmp_path / "c", data, soft[:-1], CONFIG, progress=False)

    package = export_package(
        tmp_path / "a",
        tmp_path / "pkg",
        task="sequence-classification",
        name="tiny-fast",
        version="0.0.1",
        text_prefix="passage: ",
        max_length=64,
        quantize=True,
        training=first,
        validation_texts=sample_texts(),
        int8_label_agreement_min=0.8,
    )
    scorer = open_scorer(package, threads=1)
    assert scorer.package.manifest["training"]["kind"] == "distillation"
    scores = scorer.score(["great value", "太差了"])
    assert scores.probs is not None and scores.probs.shape == (2, 3)
