"""The sentiment labels, declared once: the model, the events, the store and the API follow it.

:data:`SENTIMENT_LABELS` is the order of a review model's outputs, the keys
of ``sentiment.probs`` on the enriched topic, the ``p_<label>`` and
``n_<label>`` store columns and the ``shares`` of the API. The SQL migrations
spell the column names out; a unit test checks them against this declaration.
A model package whose manifest declares other labels, or the same in another
order, is refused when the service starts (:func:`require_sentiment_labels`):
its probabilities would otherwise be stored under the wrong names, or as zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.errors import ModelLabelsError
from models.package import ModelPackage

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
NEGATIVE, NEUTRAL, POSITIVE = SENTIMENT_LABELS


def prob_column(label: str) -> str:
    """The store column holding P(``label``)."""
    return f"p_{label}"


def count_column(label: str) -> str:
    """The aggregate column counting reviews labelled ``label``."""
    return f"n_{label}"


def require_sentiment_labels(package: ModelPackage) -> None:
    """Refuse a review model whose labels are not :data:`SENTIMENT_LABELS`, in that order."""
    if package.labels != SENTIMENT_LABELS:
        raise ModelLabelsError(
            f"{package.root}: model {package.name} {package.version} declares labels "
            f"{list(package.labels)}; the sentiment contract expects {list(SENTIMENT_LABELS)} "
            "(same names, same order)"
        )


@dataclass(frozen=True)
class Sentiment:
    """A review's sentiment: the top label, its probability, and P(label) per label.

    ``probs`` follows :data:`SENTIMENT_LABELS`.
    """

    label: str
    score: float
    probs: tuple[float, ...]

    @classmethod
    def from_probs(cls, probs: list[float]) -> Sentiment:
        """The most probable label of one model output row (first wins a tie)."""
        best = max(range(len(SENTIMENT_LABELS)), key=probs.__getitem__)
        return cls(SENTIMENT_LABELS[best], probs[best], tuple(probs))

    def prob(self, label: str) -> float:
        return self.probs[SENTIMENT_LABELS.index(label)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": self.score,
            "probs": dict(zip(SENTIMENT_LABELS, self.probs, strict=True)),
        }
