"""Unit fixtures: a tiny real model, committed as a package (no torch needed to load it).

The package was built and exported by the project's own export code (``make
tiny-fixture``); ``tests/export/test_tiny_fixture.py`` keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from models.package import ModelPackage, load_package
from models.runtime import open_scorer
from models.scorer import Scorer
from tests.packages import TINY_PACKAGE


@pytest.fixture(scope="session")
def tiny_package_dir() -> Path:
    return TINY_PACKAGE


@pytest.fixture(scope="session")
def tiny_package(tiny_package_dir: Path) -> ModelPackage:
    return load_package(tiny_package_dir)


@pytest.fixture
def tiny_scorer(tiny_package: ModelPackage) -> Scorer:
    return open_scorer(tiny_package.root, sub_batch=4)
