"""The sans-IO scorer and the model package loader, on a tiny exported model."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.errors import ModelIntegrityError, ModelPackageError, ProviderError
from models.package import load_package
from models.runtime import choose_providers
from models.scorer import Scorer

TEXTS = [
    "质量很好，物流也快",
    "terrible, it broke after one day and support never answered",
    "ok",
    "这本书内容空洞，不建议购买。印刷也一般，纸张很薄，还有错别字。",
    "Fits well, nice fabric.",
]


def test_batch_scores_equal_one_by_one_scores(tiny_scorer: Scorer) -> None:
    batch = tiny_scorer.score(TEXTS)
    assert batch.probs is not None and batch.embeddings is not None
    for i, text in enumerate(TEXTS):
        alone = tiny_scorer.score([text])
        assert alone.probs is not None and alone.embeddings is not None
        np.testing.assert_allclose(batch.probs[i], alone.probs[0], atol=1e-5)
        np.testing.assert_allclose(batch.embeddings[i], alone.embeddings[0], atol=1e-5)


def test_probabilities_are_distributions_in_label_order(tiny_scorer: Scorer) -> None:
    scores = tiny_scorer.score(TEXTS)
    assert scores.labels == ("negative", "neutral", "positive")
    assert scores.probs is not None
    np.testing.assert_allclose(scores.probs.sum(axis=1), 1.0, atol=1e-5)
    label, p = scores.top(1)
    assert label in scores.labels and p == pytest.approx(float(scores.probs[1].max()))


def test_texts_are_prefixed_and_truncated(tiny_scorer: Scorer) -> None:
    plain = tiny_scorer.encode(["ok"], prefix="")[0]
    prefixed = tiny_scorer.encode(["ok"])[0]
    assert len(prefixed) > len(plain)
    assert len(tiny_scorer.encode(["ok " * 1000])[0]) == tiny_scorer.package.max_length


def test_tampered_model_is_refused(tiny_package_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "pkg"
    shutil.copytree(tiny_package_dir, copy)
    with (copy / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_package(copy)


def test_missing_or_bad_manifest_is_a_package_error(tiny_package_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelPackageError, match="manifest"):
        load_package(tmp_path)
    copy = tmp_path / "pkg"
    shutil.copytree(tiny_package_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["task"] = "translation"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelPackageError, match="unsupported task"):
        load_package(copy)


def test_cuda_falls_back_to_cpu_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert choose_providers("cuda")[0] == "CUDAExecutionProvider"
        return
    with caplog.at_level(logging.WARNING):
        assert choose_providers("cuda") == ["CPUExecutionProvider"]
    assert "falling back to CPU" in caplog.text
    with pytest.raises(ProviderError):
        choose_providers("cuda", strict=True)
