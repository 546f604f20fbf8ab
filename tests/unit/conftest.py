"""Unit fixtures: a tiny real model, committed as a package (no torch needed to load it),
and the committed default packages.

The tiny package was built and exported by the project's own export code (``make
tiny-fixture``); ``tests/export/test_tiny_fixture.py`` keeps the two in step. ``scorer``
and ``questions`` are the default review and question packages (hash-checked), loaded
once per session for the tests that need the real models.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from models.package import ModelPackage, load_package
from models.questions import QuestionPackage, load_question_package
from models.runtime import open_scorer
from models.scorer import Scorer
from streams.settings import DEFAULT_MODEL, DEFAULT_QUESTION_MODEL
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


@pytest.fixture(scope="session")
def scorer() -> Scorer:
    return open_scorer(DEFAULT_MODEL)  # sha256 of the manifest, model and tokenizer checked


@pytest.fixture(scope="session")
def questions() -> QuestionPackage:
    return load_question_package(DEFAULT_QUESTION_MODEL)
