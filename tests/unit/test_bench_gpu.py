"""The GPU benchmark script's path on a machine without CUDA: a clear CPU fallback."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from models.package import ModelPackage
from streams.tools.bench_gpu import run_gpu_bench


def test_without_cuda_it_falls_back_to_the_cpu_and_says_so(
    tiny_package: ModelPackage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_gpu_bench(tiny_package.root, tmp_path, rows=8, runs=2, batch=32, events=100)
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert (report["device"], report["precision"], report["fallback"]) == (
            "cuda",
            "fp16",
            False,
        )
        assert (tmp_path / "model-fp16.onnx").is_file()
    else:
        assert (report["device"], report["fallback"]) == ("cpu", True)
        assert report["providers"] == ["CPUExecutionProvider"]
        assert "falling back to CPU" in capsys.readouterr().err
        assert "not GPU ones" in report["message"]
        assert not (tmp_path / "model-fp16.onnx").exists()
    assert report["end_to_end_enriched"] == 100
    assert report["model_only"] == {"tokens": 36, "rows": 8, "runs": 2}
    for key in ("model_only_per_s", "scorer_per_s", "end_to_end_per_s"):
        assert report[key] > 0
