"""The model package: ``model.onnx`` + ``tokenizer.json`` + ``manifest.json``.

Written by :mod:`export.onnx_export`; read here. The manifest records the task,
labels, maximum length, text prefix, opset, quantisation, parity results,
training data/metrics and the sha256 of every file, and ``manifest_sha256``:
the digest of the manifest itself (:func:`manifest_digest`), so that an edited
field (labels in another order, a different prefix) is caught as surely as an
edited model file. :func:`load_package` refuses a package whose manifest or
files do not hash to the recorded values. The digests catch accidental or
partial changes; they are not a signature (whoever can rewrite the manifest can
rewrite its digest).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.errors import ModelIntegrityError, ModelPackageError

MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_DIGEST = "manifest_sha256"
TASKS = ("sequence-classification", "embedding")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """Hex sha256 of the manifest's canonical JSON, leaving out its own ``manifest_sha256``.

    Canonical: sorted keys, no whitespace, UTF-8 (not ASCII escapes), so the
    digest does not depend on how the file is indented.
    """
    body = {key: value for key, value in manifest.items() if key != MANIFEST_DIGEST}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ModelPackage:
    """A validated model package on disk."""

    root: Path
    name: str
    version: str
    task: str
    labels: tuple[str, ...]
    max_length: int
    text_prefix: str
    manifest: dict[str, Any] = field(repr=False, compare=False)

    @property
    def model_path(self) -> Path:
        return self.root / MODEL_FILE

    @property
    def tokenizer_path(self) -> Path:
        return self.root / TOKENIZER_FILE


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise ModelPackageError(f"{root}: no {MANIFEST}; is this a model package directory?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelPackageError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelPackageError(f"{path}: expected a JSON object")
    return data


def _verify_manifest_digest(root: Path, manifest: Mapping[str, Any]) -> None:
    want = manifest.get(MANIFEST_DIGEST)
    if not isinstance(want, str) or not want:
        raise ModelPackageError(
            f"{root}/{MANIFEST}: no {MANIFEST_DIGEST}; re-export the package "
            "(or record it with models.package.manifest_digest)"
        )
    got = manifest_digest(manifest)
    if got != want:
        raise ModelIntegrityError(
            f"{root}/{MANIFEST}: manifest sha256 {got} does not match its {MANIFEST_DIGEST} "
            f"({want}); the manifest was edited after export"
        )


def _verify_hashes(root: Path, expected: Any) -> None:
    if not isinstance(expected, dict) or not expected:
        raise ModelPackageError(f"{root}/{MANIFEST}: missing 'sha256' table")
    for name in (MODEL_FILE, TOKENIZER_FILE):
        path = root / name
        if not path.is_file():
            raise ModelPackageError(f"{root}: missing {name}")
        want = expected.get(name)
        if want is None:
            raise ModelPackageError(f"{root}/{MANIFEST}: no sha256 for {name}")
        got = sha256_file(path)
        if got != want:
            raise ModelIntegrityError(
                f"{path}: sha256 {got} does not match the manifest ({want}); "
                "the package was modified or is incomplete"
            )


def load_package(root: Path, *, verify: bool = True) -> ModelPackage:
    """Read and validate a model package; check its digests unless ``verify`` is False."""
    root = Path(root)
    data = _read_manifest(root)
    try:
        task = str(data["task"])
        labels = tuple(str(x) for x in data.get("labels") or ())
        package = ModelPackage(
            root=root,
            name=str(data["name"]),
            version=str(data["version"]),
            task=task,
            labels=labels,
            max_length=int(data["max_length"]),
            text_prefix=str(data.get("text_prefix", "")),
            manifest=data,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelPackageError(f"{root}/{MANIFEST}: bad or missing field: {exc}") from exc
    if task not in TASKS:
        raise ModelPackageError(f"{root}: unsupported task {task!r}; expected one of {TASKS}")
    if task == "sequence-classification" and not labels:
        raise ModelPackageError(f"{root}: a classification package needs 'labels'")
    if verify:
        _verify_manifest_digest(root, data)
        _verify_hashes(root, data.get("sha256"))
    return package
