"""Shadow scoring: a candidate review model scores a sample of reviews next to the live one.

:class:`ShadowScorer` runs on the scoring thread after the live model scored a
batch: it picks the reviews whose ``event_id`` hashes into the sample
(:func:`sampled`: deterministic, so a replay or a re-delivery picks the same
reviews) and attaches the candidate's sentiment to them
(:attr:`~streams.events.enriched.EnrichedReview.shadow`). The store keeps both
(``shadow_scores``) and ``/api/models`` compares them per window; the enriched
topic carries only the live model's result. A candidate that fails on a batch
is logged and counted (``reviewpulse_shadow_failures_total``) and the batch
goes on without shadow results: the candidate never fails or dead-letters a
live event (it delays each batch by its own inference time). Switching models
is a restart with the candidate as ``model.package``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from models.errors import ModelError
from models.runtime import open_scorer
from models.scorer import Scorer
from streams.events.enriched import EnrichedReview, ModelRef, ShadowScore
from streams.events.sentiment import Sentiment, require_sentiment_labels
from streams.service.metrics import Metrics
from streams.settings import Settings

log = logging.getLogger(__name__)

_SPAN = 1 << 64


def sampled(event_id: str, rate: float) -> bool:
    """Whether the review ``event_id`` is in a sample of ``rate`` (0–1) of all reviews.

    A function of the id alone (64 bits of its BLAKE2b), the same on every
    worker and every run; a larger rate keeps every review a smaller one picked.
    """
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * _SPAN


@dataclass(frozen=True)
class PackageInfo:
    """A loaded review package as ``/api/models`` shows it."""

    name: str
    version: str
    labels: tuple[str, ...]
    device: str

    @classmethod
    def of(cls, scorer: Scorer) -> PackageInfo:
        p = scorer.package
        return cls(p.name, p.version, p.labels, scorer.device)

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.name, self.version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "labels": list(self.labels),
            "device": self.device,
        }


@dataclass(frozen=True)
class RollOut:
    """The live review package and the candidate in shadow (None: no shadow scoring)."""

    primary: PackageInfo
    candidate: PackageInfo | None = None
    sample: float = 0.0

    @classmethod
    def of(cls, scorer: Scorer, shadow: ShadowScorer | None) -> RollOut:
        if shadow is None:
            return cls(PackageInfo.of(scorer))
        return cls(PackageInfo.of(scorer), PackageInfo.of(shadow.scorer), shadow.sample)


class ShadowScorer:
    """Scores the sampled reviews of a batch with the candidate model.

    Refuses (``ModelLabelsError``), when it is built, a candidate whose labels
    are not the sentiment contract's, which the live model's are too.
    """

    def __init__(self, scorer: Scorer, sample: float, metrics: Metrics | None = None) -> None:
        require_sentiment_labels(scorer.package)
        self.scorer = scorer
        self.sample = sample
        self.metrics = metrics if metrics is not None else Metrics()
        self.model = ModelRef(scorer.package.name, scorer.package.version)

    def attach(self, events: Sequence[EnrichedReview]) -> list[EnrichedReview]:
        """``events`` with the candidate's sentiment on the sampled ones; never raises."""
        out = list(events)
        picked = [i for i, e in enumerate(out) if sampled(e.input.event_id, self.sample)]
        if not picked:
            return out
        try:
            with self.metrics.shadow_seconds.time():
                scores = self.scorer.score([out[i].input.text for i in picked])
            if scores.probs is None or len(scores.probs) != len(picked):
                raise ValueError(f"the candidate gave no probabilities for {len(picked)} texts")
            shadows = [
                ShadowScore(Sentiment.from_probs(row.tolist()), self.model) for row in scores.probs
            ]
        except Exception:  # the candidate must never fail the live batch
            log.exception(
                "shadow model %s %s failed on %d reviews; the batch goes on without it",
                self.model.name,
                self.model.version,
                len(picked),
            )
            self.metrics.shadow_failures.inc()
            return out
        for i, shadow in zip(picked, shadows, strict=True):
            out[i] = replace(out[i], shadow=shadow)
        self.metrics.shadow_scored.inc(len(picked))
        return out


def open_shadow(settings: Settings, metrics: Metrics) -> ShadowScorer | None:
    """The candidate from ``settings.shadow`` (hash-checked), or None when none is set.

    Refused (ModelError, the worker does not start) when the package is missing or
    broken or its labels are not the sentiment contract's.
    """
    cfg, model = settings.shadow, settings.model
    if cfg.package is None:
        return None
    try:
        scorer = open_scorer(
            cfg.package,
            device=model.device,
            threads=model.intra_op_threads,
            sub_batch=model.sub_batch,
            verify=cfg.verify_hash,
        )
        shadow = ShadowScorer(scorer, cfg.sample, metrics)
    except ModelError as exc:
        raise type(exc)(
            f"shadow model {cfg.package}: {exc} (REVIEWPULSE_SHADOW__PACKAGE; a review "
            "package with the labels negative, neutral, positive, or unset it)"
        ) from exc
    log.info(
        "shadow model %s %s scores %.1f%% of reviews",
        shadow.model.name,
        shadow.model.version,
        100 * cfg.sample,
    )
    return shadow
