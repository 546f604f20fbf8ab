"""Model packages committed for the tests."""

from __future__ import annotations

from pathlib import Path

from models.scorer import Scorer

#: A 2-layer, 32-wide zh+en sentiment model (fp32, ~180 kB) built by ``export.tiny``:
#: ``make tiny-fixture`` rebuilds it, ``tests/export/test_tiny_fixture.py`` proves that
#: the export code still builds the same model.
TINY_PACKAGE = Path(__file__).resolve().parent / "fixtures" / "tiny-package"


#: Reviews no sentiment model worth shipping gets wrong, in both languages.
UNAMBIGUOUS_REVIEWS = {
    "质量很好，物流也快，非常满意，还会再来买": "positive",
    "太差了，用了两天就坏了，客服也不理人，退货！": "negative",
    "Love this dress, fits perfectly and the fabric is beautiful.": "positive",
    "Terrible quality. It ripped after one wash and I returned it.": "negative",
}


def labels_of(scorer: Scorer, texts: list[str]) -> list[str]:
    """The arg-max label of each text."""
    scores = scorer.score(texts)
    assert scores.probs is not None
    return [scores.labels[int(row.argmax())] for row in scores.probs]
