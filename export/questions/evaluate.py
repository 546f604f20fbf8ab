"""Metrics and dev-set calibration for the intent head and the FAQ retrieval."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from export.questions.data import OTHER
from models.questions import FaqEntry, FaqIndex, Gate, Intent, QuestionModel

FloatArray = npt.NDArray[np.float32]
ANSWER_PRECISION_TARGET = 0.95
GATE_CHOICES: tuple[Gate, ...] = ("not_other", "agree", "none")  # ties: the first


def _r(x: float) -> float:
    return round(float(x), 4)


def intent_metrics(pred: Sequence[str], gold: Sequence[str]) -> dict[str, Any]:
    """Accuracy, in-scope accuracy and ``other`` precision/recall/F1."""
    p, g = np.array(pred), np.array(gold)
    if len(g) == 0:
        return {"n": 0}
    tp = int(((p == OTHER) & (g == OTHER)).sum())
    pred_other, gold_other = int((p == OTHER).sum()), int((g == OTHER).sum())
    precision = tp / pred_other if pred_other else 1.0
    recall = tp / gold_other if gold_other else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    scope = g != OTHER
    return {
        "n": len(g),
        "accuracy": _r((p == g).mean()),
        "in_scope_n": int(scope.sum()),
        "in_scope_accuracy": _r((p[scope] == g[scope]).mean()) if scope.any() else None,
        "other_n": gold_other,
        "other_precision": _r(precision),
        "other_recall": _r(recall),
        "other_f1": _r(f1),
    }


def decide(probs: FloatArray, labels: Sequence[str], threshold: float) -> list[str]:
    """Arg-max labels, in-scope ones below ``threshold`` turned into ``other``."""
    best = probs.argmax(axis=1)
    out = []
    for i, j in enumerate(best):
        label = labels[j]
        out.append(OTHER if label != OTHER and probs[i, j] < threshold else label)
    return out


def tune_other_threshold(
    probs: FloatArray, gold: Sequence[str], langs: Sequence[str], labels: Sequence[str]
) -> tuple[float, float]:
    """The threshold (0.00-0.95) maximising the mean over languages of dev accuracy."""
    g, lg = np.array(gold), np.array(langs)
    best = (-1.0, 0.0)
    for t in np.round(np.arange(0.0, 0.96, 0.01), 2):
        p = np.array(decide(probs, labels, float(t)))
        score = float(np.mean([(p[lg == x] == g[lg == x]).mean() for x in sorted(set(langs))]))
        if score > best[0] + 1e-12:
            best = (score, float(t))
    return best[1], _r(best[0])


def ranking_metrics(
    scores: FloatArray, entry_intents: Sequence[str | None], gold: Sequence[str]
) -> dict[str, Any]:
    """recall@1 / recall@3 of the gold intent's entry, over in-scope questions."""
    g = np.array(gold)
    scope = g != OTHER
    if not scope.any():
        return {"n": 0}
    order = np.argsort(-scores[scope], axis=1, kind="stable")[:, :3]
    intents = np.array([x or "" for x in entry_intents])[order]
    hit = intents == g[scope][:, None]
    return {
        "n": int(scope.sum()),
        "recall_at_1": _r(hit[:, 0].mean()),
        "recall_at_3": _r(hit.any(axis=1).mean()),
    }


def answer_metrics(
    intents: Sequence[Intent],
    answer_intents: Sequence[str | bool | None],
    gold: Sequence[str],
) -> dict[str, Any]:
    """Precision when answering, coverage of in-scope questions, ``other`` answered rate.

    ``answer_intents[i]`` is the intent of the chosen entry, or False when the question
    went to a human. An answer is correct iff the question is in scope and the entry's
    intent is the gold intent.
    """
    del intents
    g = np.array(gold)
    answered = np.array([a is not False for a in answer_intents])
    correct = np.array([a is not False and a == x for a, x in zip(answer_intents, g, strict=True)])
    scope = g != OTHER
    return {
        "n": len(g),
        "answered": int(answered.sum()),
        "precision_when_answering": _r(correct.sum() / answered.sum()) if answered.any() else None,
        "coverage_in_scope": _r((answered & scope).sum() / scope.sum()) if scope.any() else None,
        "correct_in_scope": _r(correct.sum() / scope.sum()) if scope.any() else None,
        "other_answered_rate": _r((answered & ~scope).sum() / (~scope).sum())
        if (~scope).any()
        else None,
    }


def run_model(
    model: QuestionModel, x: FloatArray, langs: Sequence[str | None] | None
) -> tuple[list[Intent], list[str | bool | None]]:
    """Intents and the chosen entries' intents (False: needs_human) through the runtime."""
    results = model.predict(x, langs)
    by_id = {e.id: e.intent for e in model.faq.entries}
    return [r.intent for r in results], [
        False if r.answer is None else by_id[r.answer.faq_id] for r in results
    ]


def tune_answer(
    model_for: Any,
    x: FloatArray,
    langs: Sequence[str],
    gold: Sequence[str],
    target: float = ANSWER_PRECISION_TARGET,
) -> dict[str, Any]:
    """Gate and threshold whose dev precision-when-answering is >= ``target`` in *every*
    language, with the highest coverage (mean over languages) of in-scope questions.

    Per-language precision keeps the large English dev set from hiding out-of-scope
    answers in the small Chinese one. ``model_for(gate, threshold)`` builds the runtime
    model (the KB search is restricted to each question's language). Thresholds
    0.30-0.99 by 0.005 (e5 cosines are compressed into roughly 0.7-1; blended scores
    spread lower).
    """
    lg = np.array(langs)
    g = np.array(gold)
    best: dict[str, Any] = {"coverage_mean": -1.0}
    for gate in GATE_CHOICES:
        for t in np.round(np.arange(0.30, 0.995, 0.005), 3):
            intents, chosen = run_model(model_for(gate, float(t)), x, list(langs))
            ch = np.array(chosen, dtype=object)
            per = {
                x_: answer_metrics(intents, list(ch[lg == x_]), list(g[lg == x_]))
                for x_ in sorted(set(langs))
            }
            precisions = [m["precision_when_answering"] for m in per.values()]
            if any(p is None or p < target for p in precisions):
                continue
            coverage = float(np.mean([m["coverage_in_scope"] for m in per.values()]))
            if coverage > best["coverage_mean"]:
                best = {"gate": gate, "threshold": float(t), "coverage_mean": _r(coverage), **per}
            break  # the lowest threshold that meets the target covers the most
    if "gate" not in best:
        best = {"gate": "agree", "threshold": 0.99, "note": f"no setting reached {target}"}
    return best


def faq_subset(faq: FaqIndex, keep: npt.NDArray[np.bool_]) -> FaqIndex:
    """The index restricted to the entries where ``keep`` is True."""
    starts = [*np.flatnonzero(np.r_[True, np.diff(faq.owner) > 0]).tolist(), len(faq.vectors)]
    entries: list[FaqEntry] = []
    rows: list[int] = []
    owner: list[int] = []
    for i, e in enumerate(faq.entries):
        if keep[i]:
            rows.extend(range(starts[i], starts[i + 1]))
            owner.extend([len(entries)] * (starts[i + 1] - starts[i]))
            entries.append(e)
    return FaqIndex(entries, faq.vectors[rows], np.array(owner, dtype=np.int64))
