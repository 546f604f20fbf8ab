"""The manifest's own digest: an edited manifest field is refused like an edited model file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from models.errors import ModelIntegrityError, ModelPackageError
from models.package import (
    MANIFEST,
    MANIFEST_DIGEST,
    MODEL_FILE,
    TOKENIZER_FILE,
    load_package,
    manifest_digest,
)
from streams.settings import DEFAULT_MODEL


def copy_package(tmp_path: Path, edit: Any = None) -> Path:
    """The default package with links to its large files and a (possibly edited) manifest."""
    root = tmp_path / "pkg"
    root.mkdir()
    for name in (MODEL_FILE, TOKENIZER_FILE):
        (root / name).symlink_to(DEFAULT_MODEL / name)
    manifest = json.loads((DEFAULT_MODEL / MANIFEST).read_text(encoding="utf-8"))
    if edit is not None:
        edit(manifest)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return root


def test_committed_manifest_records_its_digest() -> None:
    manifest = json.loads((DEFAULT_MODEL / MANIFEST).read_text(encoding="utf-8"))
    assert manifest[MANIFEST_DIGEST] == manifest_digest(manifest)


def test_digest_ignores_formatting_and_key_order_but_not_values() -> None:
    manifest = {"name": "m", "labels": ["negative", "positive"], "parity": {"b": 1.5, "a": "中"}}
    reordered = json.loads(json.dumps(dict(reversed(manifest.items())), indent=4))
    assert manifest_digest(manifest) == manifest_digest(reordered)
    assert manifest_digest(manifest) == manifest_digest({**manifest, MANIFEST_DIGEST: "x"})
    edited = {**manifest, "labels": ["positive", "negative"]}
    assert manifest_digest(edited) != manifest_digest(manifest)


def test_an_unedited_copy_loads(tmp_path: Path) -> None:
    assert load_package(copy_package(tmp_path)).labels == ("negative", "neutral", "positive")


def test_reversed_labels_are_refused(tmp_path: Path) -> None:
    def reverse_labels(manifest: dict[str, Any]) -> None:
        manifest["labels"].reverse()

    package = copy_package(tmp_path, reverse_labels)
    with pytest.raises(ModelIntegrityError, match="manifest was edited"):
        load_package(package)
    # without verification it loads, labels reversed: the check is what stops it
    assert load_package(package, verify=False).labels[0] == "positive"


def test_a_manifest_without_its_digest_is_a_package_error(tmp_path: Path) -> None:
    def drop_digest(manifest: dict[str, Any]) -> None:
        del manifest[MANIFEST_DIGEST]

    with pytest.raises(ModelPackageError, match=MANIFEST_DIGEST):
        load_package(copy_package(tmp_path, drop_digest))


def test_a_changed_file_hash_in_the_manifest_is_refused(tmp_path: Path) -> None:
    def new_model_hash(manifest: dict[str, Any]) -> None:
        manifest["sha256"][MODEL_FILE] = "0" * 64

    with pytest.raises(ModelIntegrityError, match="manifest"):
        load_package(copy_package(tmp_path, new_model_hash))
