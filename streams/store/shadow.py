"""Shadow comparisons: the rows of ``shadow_scores`` (migration 007) and their window summary.

:func:`shadow_table` turns the reviews of a batch that carry a candidate's
result (:attr:`~streams.events.enriched.EnrichedReview.shadow`) into one Arrow
batch; :data:`COMPARISON_SQL` counts the reviews of a window per model pair
and (live label, candidate label); :func:`comparisons` reduces those counts to
what ``/api/models`` shows per pair: reviews compared, agreement (share with
the same label), each label's share under both models and its shift
(candidate minus live), and the confusion counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

import pyarrow as pa

from streams.events.enriched import TIMESTAMP, EnrichedReview, ModelRef
from streams.events.sentiment import SENTIMENT_LABELS, prob_column
from streams.store.rollup import content_hashes

SHADOW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("product_id", pa.string()),
        ("ts", TIMESTAMP),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("label", pa.string()),
        *((prob_column(label), pa.float32()) for label in SENTIMENT_LABELS),
        ("candidate_name", pa.string()),
        ("candidate_version", pa.string()),
        ("candidate_label", pa.string()),
        *((f"candidate_{prob_column(label)}", pa.float32()) for label in SENTIMENT_LABELS),
        ("processed_at", TIMESTAMP),
    ]
)
# The columns whose content ranks two versions that share ``processed_at``.
SHADOW_CONTENT = tuple(n for n in SHADOW_SCHEMA.names if n not in ("event_id", "processed_at"))

# Per model pair and (live label, candidate label): reviews in the window, each once.
COMPARISON_SQL = """
SELECT model_name, model_version, candidate_name, candidate_version, label, candidate_label,
       count() AS n
FROM {db}.shadow_scores FINAL
WHERE ts >= toDateTime64({start}, 3, 'UTC') AND ts < toDateTime64({end}, 3, 'UTC')
GROUP BY model_name, model_version, candidate_name, candidate_version, label, candidate_label
"""


class LabelShare(TypedDict):
    primary: float | None
    candidate: float | None
    shift: float | None  # candidate − primary


class Comparison(TypedDict):
    primary: dict[str, str]
    candidate: dict[str, str]
    compared: int
    agreement: float | None
    shares: dict[str, LabelShare]
    confusion: dict[str, dict[str, int]]  # live label → candidate label → reviews


def shadow_table(events: Sequence[EnrichedReview]) -> pa.Table | None:
    """The ``shadow_scores`` rows (content hash included) of the events with a shadow result."""
    rows = [(e, e.shadow) for e in events if e.shadow is not None]
    if not rows:
        return None
    columns: dict[str, list[Any]] = {
        "event_id": [e.input.event_id for e, _ in rows],
        "product_id": [e.input.product_id for e, _ in rows],
        "ts": [e.input.ts_ms for e, _ in rows],
        "model_name": [e.model.name for e, _ in rows],
        "model_version": [e.model.version for e, _ in rows],
        "label": [e.sentiment.label for e, _ in rows],
        **{prob_column(lb): [e.sentiment.prob(lb) for e, _ in rows] for lb in SENTIMENT_LABELS},
        "candidate_name": [s.model.name for _, s in rows],
        "candidate_version": [s.model.version for _, s in rows],
        "candidate_label": [s.sentiment.label for _, s in rows],
        **{
            f"candidate_{prob_column(lb)}": [s.sentiment.prob(lb) for _, s in rows]
            for lb in SENTIMENT_LABELS
        },
        "processed_at": [e.processed_at_ms for e, _ in rows],
    }
    table = pa.table(columns, schema=SHADOW_SCHEMA)
    return table.append_column("content_hash", content_hashes(table, SHADOW_CONTENT))


def comparison(
    primary: ModelRef, candidate: ModelRef, counts: Mapping[tuple[str, str], int]
) -> Comparison:
    """One model pair's summary from its counts per (live label, candidate label)."""
    n = sum(counts.values())
    agree = sum(c for (live, cand), c in counts.items() if live == cand)
    shares: dict[str, LabelShare] = {}
    for label in SENTIMENT_LABELS:
        live = sum(c for (lv, _), c in counts.items() if lv == label) / n if n else None
        cand = sum(c for (_, cd), c in counts.items() if cd == label) / n if n else None
        shift = cand - live if cand is not None and live is not None else None
        shares[label] = {"primary": live, "candidate": cand, "shift": shift}
    confusion = {
        live: {cand: counts.get((live, cand), 0) for cand in SENTIMENT_LABELS}
        for live in SENTIMENT_LABELS
    }
    return {
        "primary": primary.to_dict(),
        "candidate": candidate.to_dict(),
        "compared": n,
        "agreement": agree / n if n else None,
        "shares": shares,
        "confusion": confusion,
    }


def comparisons(rows: Iterable[Mapping[str, Any]]) -> list[Comparison]:
    """The summary of each model pair in ``COMPARISON_SQL``'s rows, most reviews first."""
    pairs: dict[tuple[ModelRef, ModelRef], dict[tuple[str, str], int]] = {}
    for r in rows:
        primary = ModelRef(str(r["model_name"]), str(r["model_version"]))
        candidate = ModelRef(str(r["candidate_name"]), str(r["candidate_version"]))
        counts = pairs.setdefault((primary, candidate), {})
        key = (str(r["label"]), str(r["candidate_label"]))
        counts[key] = counts.get(key, 0) + int(r["n"])

    def rank(pair: tuple[ModelRef, ModelRef]) -> tuple[int, str, str, str, str]:
        (p, c) = pair
        return -sum(pairs[pair].values()), p.name, p.version, c.name, c.version

    return [comparison(p, c, pairs[p, c]) for p, c in sorted(pairs, key=rank)]
