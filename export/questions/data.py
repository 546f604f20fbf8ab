"""Question data: the Bitext intents (English) and the project-written files in ``data/``.

Splits are deterministic. A Bitext utterance goes to ``test`` when the first byte of
``sha1(question_key(utterance))`` (lower case, letters and digits only, so that case,
spacing and punctuation variants of one utterance share a split) is < 26 (≈ 10 %), to
``dev`` when it is in [26, 52) (≈ 10 %), else to ``train``. The project files carry their
split in their name (zh) or a column (en other).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from export.errors import ExportError

Split = Literal["train", "dev", "test"]
OTHER: Final = "other"
BITEXT_FILE: Final = "bitext_customer_support_intents.csv"
PROJECT_DATA: Final = Path(__file__).resolve().parent / "data"
ZH_FILES: Final[dict[str, str]] = {
    "train": "zh_train.csv",
    "dev": "zh_dev.csv",
    "test": "zh_test.csv",
}
EN_OTHER_FILE: Final = "en_other.csv"


@dataclass(frozen=True)
class Question:
    """One labelled question."""

    text: str
    intent: str
    lang: str  # "en" | "zh"
    source: str  # "bitext" | "project"
    split: Split


def normalise(text: str) -> str:
    """Lower case, whitespace collapsed: the identity of a question across splits."""
    return " ".join(text.lower().split())


def question_key(text: str) -> str:
    """:func:`normalise` without punctuation: two questions that differ only in
    punctuation or spacing are the same question for the split-disjointness checks."""
    return "".join(ch for ch in normalise(text) if ch.isalnum())


def bitext_split(utterance: str) -> Split:
    """The deterministic split of a Bitext utterance (hash of its text)."""
    first = hashlib.sha1(question_key(utterance).encode("utf-8")).digest()[0]
    if first < 26:
        return "test"
    if first < 52:
        return "dev"
    return "train"


def _data_rows(path: Path) -> Iterator[dict[str, str]]:
    """CSV rows after the leading ``#`` comment lines (the provenance header)."""
    if not path.is_file():
        raise ExportError(f"{path}: missing question data file")
    with path.open(encoding="utf-8", newline="") as fh:
        lines = (line for line in fh if not line.startswith("#"))
        yield from csv.DictReader(lines)


def bitext_rows(data_dir: Path) -> list[dict[str, str]]:
    """All rows of the Bitext file, in file order."""
    return list(_data_rows(data_dir / BITEXT_FILE))


def bitext_questions(data_dir: Path) -> list[Question]:
    """The Bitext utterances with their intent and hash split."""
    return [
        Question(r["utterance"], r["intent"], "en", "bitext", bitext_split(r["utterance"]))
        for r in bitext_rows(data_dir)
    ]


def bitext_intents(data_dir: Path) -> tuple[str, ...]:
    """The 27 intent names, sorted."""
    return tuple(sorted({r["intent"] for r in bitext_rows(data_dir)}))


def project_questions(project_dir: Path = PROJECT_DATA) -> list[Question]:
    """The project-written questions: zh train/dev/test and English out-of-scope."""
    out: list[Question] = []
    for split, name in ZH_FILES.items():
        for row in _data_rows(project_dir / name):
            out.append(Question(row["text"].strip(), row["intent"].strip(), "zh", "project", split))  # type: ignore[arg-type]
    for row in _data_rows(project_dir / EN_OTHER_FILE):
        split = row["split"].strip()
        if split not in ("train", "dev", "test"):
            raise ExportError(f"{EN_OTHER_FILE}: bad split {split!r}")
        out.append(Question(row["text"].strip(), OTHER, "en", "project", split))  # type: ignore[arg-type]
    return out


def all_questions(data_dir: Path, project_dir: Path = PROJECT_DATA) -> list[Question]:
    """Bitext + project questions, after checking labels and split disjointness."""
    questions = bitext_questions(data_dir) + project_questions(project_dir)
    check_questions(questions, bitext_intents(data_dir))
    return questions


def check_questions(questions: Iterable[Question], intents: tuple[str, ...]) -> None:
    """Labels are known intents or ``other``; no text is in two splits of its language."""
    allowed = {*intents, OTHER}
    seen: dict[tuple[str, str], str] = {}
    for q in questions:
        if q.intent not in allowed:
            raise ExportError(f"unknown intent {q.intent!r} for {q.text!r}")
        key = (q.lang, question_key(q.text))
        first = seen.setdefault(key, q.split)
        if first != q.split:
            raise ExportError(f"{q.text!r} is in both {first} and {q.split}")
