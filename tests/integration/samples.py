"""Input for the integration tests: real reviews from the demo sample, as JSONL lines."""

from __future__ import annotations

from pathlib import Path

from streams.settings import REPO_ROOT

SAMPLE = REPO_ROOT / "deploy" / "demo" / "reviews.jsonl"
QUESTIONS = REPO_ROOT / "deploy" / "demo" / "questions.jsonl"


def real_reviews(n: int) -> list[bytes]:
    lines = [
        ln for ln in SAMPLE.read_bytes().splitlines() if ln.startswith(b'{"event_id": "clothing-')
    ]
    return lines[:n]


def real_questions(n: int) -> list[bytes]:
    return [ln for ln in QUESTIONS.read_bytes().splitlines() if ln.strip()][:n]


def write_jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path
