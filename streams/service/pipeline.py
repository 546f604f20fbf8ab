"""One micro-batch, from raw Kafka records to enriched events and dead letters.

Sans-IO and synchronous: decode + validate every record, score the valid ones
in one model call, build the enriched events. A bad record becomes a dead
letter and never holds back or drops the valid records around it.
:meth:`BatchProcessor.process` never raises: when anything fails past
validation (scoring, enriching, a bug), the batch is split in halves down to
single records, and a record that still fails alone becomes a dead letter
with reason ``processing_error``. The agents run it in a thread executor.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from models.questions import QuestionPackage, check_encoder
from models.scorer import Scorer
from streams.errors import InvalidEvent
from streams.events import contract
from streams.events.contract import Limits, Question, Review, Source
from streams.events.deadletter import DeadLetter
from streams.events.enriched import Enriched, EnrichedQuestion, EnrichedReview, ModelRef
from streams.events.sentiment import Sentiment, require_sentiment_labels
from streams.service.metrics import Metrics
from streams.service.shadow import ShadowScorer

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
    """What one batch produces: enriched events and dead letters.

    ``enriched_from[i]`` is the input record of ``enriched[i]`` (so a later
    stage that refuses an enriched event can dead-letter its original).
    """

    enriched: list[Enriched] = field(default_factory=list)
    enriched_from: list[RawRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def extend(self, other: BatchResult) -> None:
        self.enriched += other.enriched
        self.enriched_from += other.enriched_from
        self.dead_letters += other.dead_letters


@dataclass
class Stats:
    """Running counters, exposed on /metrics."""

    processed: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    stored: Counter[str] = field(default_factory=Counter)


class BatchProcessor:
    """Decodes, validates and scores batches of one kind of event.

    A review processor refuses, when it is built (so when the worker starts),
    a model whose labels are not the sentiment contract's. A question processor
    given a question package runs the review model's encoder over the questions
    (one pass per batch, the package's query prefix) and the package's head; it
    refuses a package built on another encoder. Without one, questions pass
    through with their input fields only. A review processor given a ``shadow``
    scorer has it score a sample of each batch's reviews after the live model
    (:mod:`streams.service.shadow`).
    """

    def __init__(
        self,
        kind: Kind,
        scorer: Scorer,
        *,
        limits: Limits | None = None,
        clock: Clock = now_ms,
        stats: Stats | None = None,
        questions: QuestionPackage | None = None,
        metrics: Metrics | None = None,
        shadow: ShadowScorer | None = None,
    ) -> None:
        self.kind = kind
        self.scorer = scorer
        self.limits = limits or Limits()
        self.clock = clock
        self.stats = stats if stats is not None else Stats()
        self.metrics = metrics if metrics is not None else Metrics()
        package = scorer.package
        if kind == "review":
            require_sentiment_labels(package)
        self.model = ModelRef(package.name, package.version)
        self.questions = questions if kind == "question" else None
        self.shadow = shadow if kind == "review" else None
        self.question_model: ModelRef | None = None
        if self.questions is not None:
            check_encoder(self.questions, package)
            self.question_model = ModelRef(self.questions.name, self.questions.version)

    def use_questions(self, questions: QuestionPackage) -> None:
        """Answer from ``questions`` (the same package, another knowledge base) from the next
        batch on: one reference assignment, and a batch reads it once, so it is scored with
        either the old or the new package, never a mix. Call it from the scoring thread.
        """
        if self.questions is None or questions.name != self.questions.name:
            raise ValueError("use_questions swaps the knowledge base of the package in use")
        check_encoder(questions, self.scorer.package)
        self.questions = questions

    def process(self, batch: Sequence[RawRecord]) -> BatchResult:
        """One enriched event or one dead letter per input record; never raises."""
        self.metrics.consumed.labels(self.kind).inc(len(batch))
        self.metrics.batch_size.labels(self.kind).observe(len(batch))
        result = self._isolating(batch)
        self.stats.processed[self.kind] += len(result.enriched)
        for d in result.dead_letters:
            self.stats.dead_letters[d.reason] += 1
            self.metrics.dead_lettered.labels(self.kind, d.reason).inc()
        return result

    def dead_letter(self, record: RawRecord, reason: str, detail: str) -> DeadLetter:
        """The bounded dead letter of ``record``."""
        log.warning("dead letter %s: %s: %s", record.source, reason, detail[:200])
        return DeadLetter.of(
            record.value,
            record.source,
            reason,
            detail,
            self.clock(),
            self.limits.max_original_bytes,
        )

    def _isolating(self, batch: Sequence[RawRecord]) -> BatchResult:
        try:
            return self._process(batch)
        except Exception as exc:
            if len(batch) == 1:
                log.exception("processing %s failed", batch[0].source)
                detail = f"{type(exc).__name__}: {exc}"
                return BatchResult(
                    dead_letters=[self.dead_letter(batch[0], "processing_error", detail)]
                )
            log.warning("batch of %d failed (%r); splitting it", len(batch), exc)
            half = len(batch) // 2
            result = self._isolating(batch[:half])
            result.extend(self._isolating(batch[half:]))
            return result

    def _process(self, batch: Sequence[RawRecord]) -> BatchResult:
        result = BatchResult()
        valid: list[tuple[RawRecord, Review | Question]] = []
        now = self.clock()
        for record in batch:
            try:
                valid.append((record, self._parse(record, now)))
            except InvalidEvent as exc:
                result.dead_letters.append(self.dead_letter(record, exc.reason, exc.detail))
        if valid:
            result.enriched = self._enrich([event for _, event in valid])
            result.enriched_from = [record for record, _ in valid]
        return result

    def _parse(self, record: RawRecord, now: int) -> Review | Question:
        ts = record.source.timestamp_ms
        if self.kind == "review":
            return contract.parse_review(record.value, ts, self.limits, now)
        return contract.parse_question(record.value, ts, self.limits, now)

    def _enrich(self, events: list[Review | Question]) -> list[Enriched]:
        if self.kind == "question":
            return self._enrich_questions([q for q in events if isinstance(q, Question)])
        reviews = [r for r in events if isinstance(r, Review)]
        with self.metrics.inference_seconds.labels(self.kind).time():
            scores = self.scorer.score([r.text for r in reviews])
        if scores.probs is None:
            raise TypeError("the review model must be a classification package")
        processed = self.clock()
        enriched = [
            EnrichedReview(review, Sentiment.from_probs(row.tolist()), self.model, processed)
            for review, row in zip(reviews, scores.probs, strict=True)
        ]
        if self.shadow is not None:
            enriched = self.shadow.attach(enriched)
        return list(enriched)

    def _enrich_questions(self, questions: list[Question]) -> list[Enriched]:
        qp, model = self.questions, self.question_model
        if qp is None or model is None:
            processed = self.clock()
            return [EnrichedQuestion(q, processed) for q in questions]
        texts = [q.text for q in questions]
        with self.metrics.inference_seconds.labels(self.kind).time():
            embeddings = self.scorer.score(texts, prefix=qp.encoder.query_prefix).embeddings
            if embeddings is None:
                raise TypeError("the review model gave no embeddings for the question model")
            results = qp.model.predict(embeddings)
        if len(results) != len(questions):
            raise ValueError(f"{len(results)} question results for {len(questions)} questions")
        processed = self.clock()
        return [
            EnrichedQuestion(q, processed, result, model)
            for q, result in zip(questions, results, strict=True)
        ]
