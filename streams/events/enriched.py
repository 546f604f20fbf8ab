"""The enriched events: one frozen type per output topic, its JSON and its Arrow batch.

An enriched event keeps its validated input event (``input``) and adds what
the pipeline computed; times stay epoch milliseconds until they leave the
process. :meth:`to_json` is what the output topic carries (``ts`` and
``processed_at`` as ISO-8601 UTC, see the JSON Schemas in ``schemas/``);
:func:`reviews_table` and :func:`questions_table` are the columnar batches the
store inserts (times as Arrow timestamps, no text in between).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from streams.events.contract import Question, Review, iso_ms
from streams.events.sentiment import SENTIMENT_LABELS, Sentiment, prob_column

TIMESTAMP = pa.timestamp("ms", tz="UTC")


@dataclass(frozen=True)
class ModelRef:
    """The model that produced an event's fields: its package name and version."""

    name: str
    version: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class EnrichedReview:
    """A review with its sentiment (topic ``reviews.enriched``)."""

    input: Review
    sentiment: Sentiment
    model: ModelRef
    processed_at_ms: int

    @property
    def key(self) -> bytes:
        """The Kafka key: one product's events stay in one partition, in order."""
        return self.input.product_id.encode()

    def to_json(self) -> bytes:
        """Input fields + ``sentiment`` {label, score, probs} + ``model`` + ``processed_at``."""
        return orjson.dumps(
            {
                **self.input.fields(),
                "sentiment": self.sentiment.to_dict(),
                "model": self.model.to_dict(),
                "processed_at": iso_ms(self.processed_at_ms),
            }
        )


@dataclass(frozen=True)
class EnrichedQuestion:
    """A customer question (topic ``questions.enriched``).

    No model has looked at it yet: ``intent`` and the ``model`` that produced
    it arrive together with the intent model, and are absent until then.
    """

    input: Question
    processed_at_ms: int

    @property
    def key(self) -> bytes:
        """The Kafka key: one product's events stay in one partition, in order."""
        return self.input.product_id.encode()

    def to_json(self) -> bytes:
        """Input fields + ``processed_at``."""
        return orjson.dumps({**self.input.fields(), "processed_at": iso_ms(self.processed_at_ms)})


Enriched = EnrichedReview | EnrichedQuestion

REVIEW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("product_id", pa.string()),
        ("category", pa.string()),
        ("user_id", pa.string()),
        ("lang", pa.string()),
        ("text", pa.string()),
        ("rating", pa.uint8()),
        ("label", pa.string()),
        ("score", pa.float32()),
        *((prob_column(label), pa.float32()) for label in SENTIMENT_LABELS),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("ts", TIMESTAMP),
        ("processed_at", TIMESTAMP),
    ]
)

QUESTION_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("product_id", pa.string()),
        ("user_id", pa.string()),
        ("text", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("ts", TIMESTAMP),
        ("processed_at", TIMESTAMP),
    ]
)


def reviews_table(events: Sequence[EnrichedReview]) -> pa.Table:
    """Enriched reviews → one ``REVIEW_SCHEMA`` batch; a missing optional value is 0 or ''."""
    reviews = [e.input for e in events]
    columns: dict[str, list[Any]] = {
        "event_id": [r.event_id for r in reviews],
        "product_id": [r.product_id for r in reviews],
        "category": [r.category or "" for r in reviews],
        "user_id": [r.user_id or "" for r in reviews],
        "lang": [r.lang or "" for r in reviews],
        "text": [r.text for r in reviews],
        "rating": [r.rating or 0 for r in reviews],
        "label": [e.sentiment.label for e in events],
        "score": [e.sentiment.score for e in events],
        **{
            prob_column(label): [e.sentiment.prob(label) for e in events]
            for label in SENTIMENT_LABELS
        },
        "model_name": [e.model.name for e in events],
        "model_version": [e.model.version for e in events],
        "ts": [r.ts_ms for r in reviews],
        "processed_at": [e.processed_at_ms for e in events],
    }
    return pa.table(columns, schema=REVIEW_SCHEMA)


def questions_table(events: Sequence[EnrichedQuestion]) -> pa.Table:
    """Enriched questions → one ``QUESTION_SCHEMA`` batch; no model yet: its columns are ''."""
    questions = [e.input for e in events]
    columns: dict[str, list[Any]] = {
        "event_id": [q.event_id for q in questions],
        "product_id": [q.product_id for q in questions],
        "user_id": [q.user_id or "" for q in questions],
        "text": [q.text for q in questions],
        "model_name": [""] * len(events),
        "model_version": [""] * len(events),
        "ts": [q.ts_ms for q in questions],
        "processed_at": [e.processed_at_ms for e in events],
    }
    return pa.table(columns, schema=QUESTION_SCHEMA)
