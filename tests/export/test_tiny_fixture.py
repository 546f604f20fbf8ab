"""The committed tiny package (tests/fixtures/tiny-package) is what the export code builds.

The unit tests load that package without torch; this test rebuilds it from
``export.tiny`` and compares. The tokenizer must be identical; the model's
outputs must agree to ``ATOL``: the same seed gives byte-identical packages on
one machine, but another torch build may round the 30 training steps
differently in the last bits, while any change of the recipe (seed, data,
steps, sizes, export settings) moves outputs far more. On failure, rebuild the
fixture with ``make tiny-fixture`` and commit it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from export.tiny import build_tiny_package, sample_texts
from models.runtime import open_scorer
from models.scorer import load_tokenizer
from tests.packages import TINY_PACKAGE

ATOL = 1e-3
SAME_FIELDS = ("name", "version", "task", "labels", "max_length", "text_prefix", "training")
TEXTS = [
    *sample_texts()[::8],
    "质量很好，物流也快",
    "terrible, it broke after one day and support never answered",
    "The noodles 很好吃 but the waiter was rude 👍",
    "",
    "ok " * 200,
]


def test_the_committed_tiny_package_is_what_export_tiny_builds(tmp_path: Path) -> None:
    committed = open_scorer(TINY_PACKAGE)
    rebuilt = open_scorer(build_tiny_package(tmp_path / "tiny"))
    for field in SAME_FIELDS:
        assert rebuilt.package.manifest.get(field) == committed.package.manifest.get(field), field

    tokenizers = [load_tokenizer(s.package) for s in (committed, rebuilt)]
    assert tokenizers[0].get_vocab() == tokenizers[1].get_vocab()
    assert committed.encode(TEXTS) == rebuilt.encode(TEXTS)

    ours, theirs = committed.score(TEXTS), rebuilt.score(TEXTS)
    assert ours.probs is not None and theirs.probs is not None
    assert ours.embeddings is not None and theirs.embeddings is not None
    np.testing.assert_allclose(theirs.probs, ours.probs, atol=ATOL)
    np.testing.assert_allclose(theirs.embeddings, ours.embeddings, atol=ATOL)
    # not a degenerate model: its fit gives the template sentences different labels
    assert len(set(ours.probs.argmax(axis=1).tolist())) > 1
