"""FAQ knowledge bases: the file format, the project's Chinese KB and the English KB from Bitext.

A KB file is YAML in the format :mod:`models.knowledge` documents and reads (the worker
reads the same files at runtime).

The English KB is built from the Bitext file: one entry per intent, its questions are the
first :data:`EN_KB_QUESTIONS` *train-split* utterances of that intent by sha1 order (never a
dev/test utterance), its answer the Bitext ``response`` of the median-length train row whose
placeholders can all be filled generically and that quotes no order or invoice number
(see :func:`fill_placeholders`).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml  # type: ignore[import-untyped]

from export.errors import ExportError
from export.questions.data import PROJECT_DATA, bitext_rows, bitext_split
from models.errors import ModelPackageError
from models.knowledge import KB_FORMAT, read_kb

EN_KB_QUESTIONS: Final = 8
ZH_KB_FILE: Final = "kb_zh.yaml"

# Placeholders with a generic English rendering; any other Title Case placeholder is a
# UI element ("{{Order History}}" -> "'Order History'"). Rows with anonymised ids or
# numbers in placeholders are not used as answers.
_GENERIC: Final[dict[str, str]] = {
    "Customer Support Phone Number": "the phone number on our Contact Us page",
    "Customer Service Phone Number": "the phone number on our Contact Us page",
    "Support Phone Number": "the phone number on our Contact Us page",
    "Phone Number": "the phone number on our Contact Us page",
    "Customer Support Email": "the support email address on our Contact Us page",
    "Customer Support Email Address": "the support email address on our Contact Us page",
    "Support Email": "the support email address on our Contact Us page",
    "Email": "email",
    "Live Chat": "live chat",
    "Website Name": "our website",
    "Website URL": "our website",
    "Website": "our website",
    "website": "our website",
    "Website or App": "our website or app",
    "Company Name": "our company",
    "Customer Support Availability": "during our customer support hours",
    "Customer Support Hours": "during our customer support hours",
    "Customer Service Hours": "during our customer service hours",
}
_PLACEHOLDER: Final = re.compile(r"\{\{([^{}]+)\}\}")
_UI_NAME: Final = re.compile(r"^[A-Z][A-Za-z]*( [A-Za-z]+){0,3}$")
_LONG_NUMBER: Final = re.compile(r"\d{5,}|#\d+")  # an order/invoice number copied from the question
_DOUBLED: Final = re.compile(r"\b(our|your|the) (?:our|the)\b")


@dataclass(frozen=True)
class KbEntry:
    """One FAQ entry."""

    id: str
    language: str
    questions: tuple[str, ...]
    answer: str
    intent: str | None = None
    category: str | None = None
    scope: dict[str, str] = field(default_factory=dict)

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "language": self.language}
        if self.intent:
            out["intent"] = self.intent
        if self.category:
            out["category"] = self.category
        if self.scope:
            out["scope"] = dict(self.scope)
        out["questions"] = list(self.questions)
        out["answer"] = self.answer
        return out


def fill_placeholders(text: str) -> str | None:
    """``text`` with every ``{{...}}`` filled generically, or None if one cannot be."""

    failed = False

    def one(match: re.Match[str]) -> str:
        nonlocal failed
        name = match.group(1).strip()
        if name in _GENERIC:
            return _GENERIC[name]
        if "Anonymized" in name or any(c.isdigit() for c in name) or not _UI_NAME.match(name):
            failed = True
            return ""
        return f"'{name}'"

    filled = _PLACEHOLDER.sub(one, text)
    if failed or _LONG_NUMBER.search(filled):
        return None
    return _DOUBLED.sub(r"\1", filled).strip()


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def english_kb(data_dir: Path, questions_per_entry: int = EN_KB_QUESTIONS) -> list[KbEntry]:
    """The default English KB, one entry per Bitext intent, from train-split rows only."""
    by_intent: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in bitext_rows(data_dir):
        if bitext_split(row["utterance"]) == "train":
            by_intent[row["intent"]].append(row)
    entries = []
    for intent in sorted(by_intent):
        rows = sorted(by_intent[intent], key=lambda r: _sha(r["utterance"]))
        seen: set[str] = set()
        questions: list[str] = []
        for r in rows:
            key = " ".join(r["utterance"].lower().split())
            if key not in seen:
                seen.add(key)
                questions.append(r["utterance"])
            if len(questions) == questions_per_entry:
                break
        answers = sorted(
            (a for r in rows if r["response"] and (a := fill_placeholders(r["response"]))),
            key=lambda a: (len(a), _sha(a)),
        )
        if not answers:
            raise ExportError(f"no Bitext response for {intent} can be filled generically")
        entries.append(
            KbEntry(
                id=f"en-{intent}",
                language="en",
                questions=tuple(questions),
                answer=answers[len(answers) // 2],
                intent=intent,
                category=rows[0]["category"],
            )
        )
    return entries


def load_kb(path: Path) -> list[KbEntry]:
    """Read and validate a KB YAML file (the runtime's reader, :func:`models.knowledge.read_kb`)."""
    try:
        entries = read_kb(path)
    except ModelPackageError as exc:
        raise ExportError(str(exc)) from exc
    return [
        KbEntry(e.id, e.language, e.questions, e.answer, e.intent, e.category, dict(e.scope or {}))
        for e in entries
    ]


def chinese_kb(project_dir: Path = PROJECT_DATA) -> list[KbEntry]:
    """The project-written Chinese KB."""
    return load_kb(project_dir / ZH_KB_FILE)


def dump_kb(entries: list[KbEntry], path: Path, *, source: str) -> None:
    """Write ``entries`` as a KB YAML file."""
    doc = {"format": KB_FORMAT, "source": source, "entries": [e.to_yaml() for e in entries]}
    path.write_text(
        yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100), encoding="utf-8"
    )
