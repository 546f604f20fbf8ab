"""Unit fixtures: a tiny real model, built and exported by the project's own export code."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.onnx_export import export_package
from export.tiny import build_tiny_checkpoint
from models.package import ModelPackage, load_package
from models.runtime import open_scorer
from models.scorer import Scorer


@pytest.fixture(scope="session")
def tiny_package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    checkpoint = build_tiny_checkpoint(root / "checkpoint")
    return export_package(
        checkpoint,
        root / "package",
        task="sequence-classification",
        name="tiny",
        version="0.0.1",
        text_prefix="passage: ",
        max_length=128,
    )


@pytest.fixture(scope="session")
def tiny_package(tiny_package_dir: Path) -> ModelPackage:
    return load_package(tiny_package_dir)


@pytest.fixture
def tiny_scorer(tiny_package: ModelPackage) -> Scorer:
    return open_scorer(tiny_package.root, sub_batch=4)
