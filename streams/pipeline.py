"""One micro-batch, from raw Kafka records to enriched events and dead letters.

Sans-IO and synchronous: decode + validate every record, score the valid ones
in one model call, build the enriched events. A bad record becomes a dead
letter and never holds back or drops the valid records around it. The agents
run :meth:`BatchProcessor.process` in a thread executor.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from models.scorer import Scorer
from streams import records
from streams.errors import InvalidEvent
from streams.records import Question, Review, Source

log = logging.getLogger(__name__)

Kind = Literal["review", "question"]
Clock = Callable[[], int]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class RawRecord:
    value: bytes
    source: Source


@dataclass
class BatchResult:
    """What one batch produces: enriched events (keyed by product) and dead letters."""

    enriched: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Stats:
    """Running counters, exposed on /metrics."""

    processed: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    stored: Counter[str] = field(default_factory=Counter)


class BatchProcessor:
    """Decodes, validates and scores batches of one kind of event."""

    def __init__(
        self,
        kind: Kind,
        scorer: Scorer,
        *,
        max_text_chars: int = 5000,
        clock: Clock = now_ms,
        stats: Stats | None = None,
    ) -> None:
        self.kind = kind
        self.scorer = scorer
        self.max_text_chars = max_text_chars
        self.clock = clock
        self.stats = stats if stats is not None else Stats()
        package = scorer.package
        self.model = records.model_info(package.name, package.version)

    def process(self, batch: Sequence[RawRecord]) -> BatchResult:
        result = BatchResult()
        valid: list[Review | Question] = []
        for record in batch:
            try:
                valid.append(self._parse(record))
            except InvalidEvent as exc:
                log.warning("dead letter %s: %s", record.source, exc)
                self.stats.dead_letters[exc.reason] += 1
                result.dead_letters.append(
                    records.dead_letter(record.value, record.source, exc, self.clock())
                )
        if valid:
            result.enriched = self._enrich(valid)
            self.stats.processed[self.kind] += len(valid)
        return result

    def _parse(self, record: RawRecord) -> Review | Question:
        ts = record.source.timestamp_ms
        if self.kind == "review":
            return records.parse_review(record.value, ts, self.max_text_chars)
        return records.parse_question(record.value, ts, self.max_text_chars)

    def _enrich(self, events: list[Review | Question]) -> list[dict[str, Any]]:
        if self.kind == "question":
            processed = self.clock()
            return [
                records.enriched_question(q, self.model, processed)
                for q in events
                if isinstance(q, Question)
            ]
        reviews = [r for r in events if isinstance(r, Review)]
        scores = self.scorer.score([r.text for r in reviews])
        if scores.probs is None:
            raise TypeError("the review model must be a classification package")
        processed = self.clock()
        return [
            records.enriched_review(
                review, scores.labels, scores.probs[i].tolist(), self.model, processed
            )
            for i, review in enumerate(reviews)
        ]
