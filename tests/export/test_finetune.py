"""Fine-tuning smoke run on the tiny model: seeded, reproducible, and it learns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from export.data import Example, held_out, star_label
from export.finetune import FinetuneConfig, finetune
from export.prior import class_weights
from export.tiny import build_tiny_checkpoint, labelled_sample_texts


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("ft") / "base", seed=1)


def examples() -> list[Example]:
    return [Example(text, label, "tiny", "all") for text, label in labelled_sample_texts()]


def test_star_mapping_and_held_out_split_are_fixed() -> None:
    assert [star_label(r) for r in (1, 2, 3, 4, 5)] == [0, 0, 1, 2, 2]
    with pytest.raises(ValueError):
        star_label(0)
    assert held_out("a") == held_out("a")
    share = sum(held_out(f"review {i}") for i in range(5000)) / 5000
    assert 0.08 < share < 0.12


def test_class_weights_favour_rare_classes() -> None:
    weights = class_weights([0] * 10 + [1] * 90 + [2] * 900, 3)
    assert weights[0] > weights[1] > weights[2]


def test_smoke_run_is_reproducible(base: Path, tmp_path: Path) -> None:
    config = FinetuneConfig(seed=7, train_layers=1, batch_size=16, max_steps=6, max_length=32)
    first = finetune(base, tmp_path / "a", examples(), config, progress=False)
    second = finetune(base, tmp_path / "b", examples(), config, progress=False)
    assert first["steps"] == second["steps"] == 6
    assert first["loss_last_50"] == pytest.approx(second["loss_last_50"], rel=1e-5)
    a, b = (
        load_file(tmp_path / "a" / "model.safetensors"),
        load_file(tmp_path / "b" / "model.safetensors"),
    )
    for name in a:
        assert (a[name] - b[name]).abs().max() < 1e-5, name
    report = json.loads((tmp_path / "a" / "training.json").read_text())
    assert report["config"]["seed"] == 7 and report["examples"] == len(examples())
    config_json = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config_json["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}


def test_frozen_layers_do_not_change(base: Path, tmp_path: Path) -> None:
    config = FinetuneConfig(seed=3, train_layers=1, batch_size=16, max_steps=4, max_length=32)
    finetune(base, tmp_path / "out", examples(), config, progress=False)
    before = load_file(base / "model.safetensors")
    after = load_file(tmp_path / "out" / "model.safetensors")
    frozen = [n for n in before if "layer.0." in n or "embeddings" in n]
    trained = [n for n in before if "layer.1." in n]
    assert frozen and trained
    assert all((before[n] - after[n]).abs().max() == 0 for n in frozen)
    assert any((before[n] - after[n]).abs().max() > 0 for n in trained)


def test_bf16_only_where_the_hardware_does_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from export.finetune import uses_bf16

    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    assert not uses_bf16(FinetuneConfig(), "cpu")  # emulated bf16 is many times slower
    assert uses_bf16(FinetuneConfig(), "cuda")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert uses_bf16(FinetuneConfig(), "cpu")
    assert not uses_bf16(FinetuneConfig(bf16=False), "cpu")
