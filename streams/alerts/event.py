"""The alert event: what the alerts topic carries (``streams/events/schemas/alert.json``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streams.alerts.lifecycle import Severity, Status
from streams.events.contract import iso_ms

EVIDENCE_LIMIT = 5


@dataclass(frozen=True)
class NegativeReview:
    """A negative review shown as evidence; ``score`` is its P(negative)."""

    event_id: str
    text: str
    score: float


def top_evidence(reviews: Iterable[NegativeReview]) -> tuple[NegativeReview, ...]:
    """The most negative reviews, at most five; ties by event_id so a replay picks the same."""
    ranked = sorted(reviews, key=lambda r: (-r.score, r.event_id))
    return tuple(ranked[:EVIDENCE_LIMIT])


def alert_id(rule: str, key: str, episode_start_ms: int) -> str:
    """One id per episode of one fingerprint (rule + product or category), the same on replay."""
    return hashlib.sha256(json.dumps([rule, key, episode_start_ms]).encode()).hexdigest()


@dataclass(frozen=True)
class AlertEvent:
    """One notification: an episode fires, is reminded, turns critical or resolves.

    A product alert has ``product_id``; a category alert has ``product_id``
    None and lists in ``product_ids`` the category's products firing the same
    rule window (None on product alerts). ``baseline_n`` is the decayed number
    of reviews behind the baseline, the category prior not included.
    """

    alert_id: str
    status: Status
    severity: Severity
    rule: str
    product_id: str | None
    category: str | None
    product_ids: tuple[str, ...] | None
    started_ms: int
    window_start_ms: int
    window_end_ms: int
    n: int
    negative: int
    baseline_share: float
    baseline_n: float
    p_value: float
    model_name: str
    model_version: str
    evidence: tuple[NegativeReview, ...]

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (``streams.events.contract.dumps`` serialises it)."""
        return {
            "alert_id": self.alert_id,
            "status": self.status,
            "severity": self.severity,
            "rule": self.rule,
            "product_id": self.product_id,
            "category": self.category,
            "product_ids": None if self.product_ids is None else list(self.product_ids),
            "started_at": iso_ms(self.started_ms),
            "window": {"start": iso_ms(self.window_start_ms), "end": iso_ms(self.window_end_ms)},
            "counts": {"n": self.n, "negative": self.negative},
            "baseline": {"share": self.baseline_share, "n": self.baseline_n},
            "p_value": self.p_value,
            "model": {"name": self.model_name, "version": self.model_version},
            "evidence": [
                {"event_id": r.event_id, "text": r.text, "score": r.score} for r in self.evidence
            ],
        }
