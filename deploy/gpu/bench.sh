#!/usr/bin/env bash
# The GPU path, measured in one prepared command (a few minutes on a GPU machine):
#
#   deploy/gpu/bench.sh [reviewpulse bench gpu options, e.g. --rows 4096]
#
# Makes its own virtual environment (build/gpu-venv; $GPU_VENV to change) with
# onnxruntime-gpu and the few runtime packages the scorer needs, converts the default
# package's int8 model to fp16 (build/gpu/model-fp16.onnx), runs it on the CUDA
# execution provider through IO binding with large token budgets, and prints
# model-only and end-to-end reviews/s as JSON. Without a usable GPU it says so and
# measures the CPU instead ("fallback": true).
# Offline machine: WHEELS=/path/to/wheelhouse installs from there only.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${GPU_VENV:-build/gpu-venv}"
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
    pip_args=(--quiet --disable-pip-version-check)
    if [ -n "${WHEELS:-}" ]; then pip_args+=(--no-index --find-links "$WHEELS"); fi
    "$venv/bin/pip" install "${pip_args[@]}" "onnxruntime-gpu[cuda,cudnn]>=1.21" "onnx>=1.16" \
        "numpy>=1.26" "tokenizers>=0.20" "orjson>=3.10" "pyarrow>=15" "pydantic>=2.7" \
        "pydantic-settings>=2.3" "click>=8.1"
fi
{ command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2; } ||
    echo "nvidia-smi: no NVIDIA GPU visible" >&2
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "$venv/bin/python" -m streams \
    --log-level WARNING bench gpu "$@"
