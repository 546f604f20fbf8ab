"""Adapting the sentiment package to a shop's own domain from its star ratings.

``reviewpulse export adapt RATED.jsonl --out DIR`` (and ``reviewpulse adapt``):

1. Weak labels from the ratings: 1–2 stars → negative, 3 → neutral, 4–5 → positive.
2. A deterministic held-out slice (``sha1(text)`` below the share; identical texts
   fall on the same side) that is never trained on.
3. Fine-tuning of the current model's PyTorch checkpoint on the rest — beside
   general reviews replayed from other domains when given (``--replay``) — planned
   to fit a time budget (measured pace, see :func:`export.finetune.train_steps`).
4. An int8 package of the candidate, parity-checked like every package
   (:func:`export.onnx_export.export_package`).
5. Both packages scored on the held-out slice through the serving runtime. The
   candidate is published to ``out`` with a model card of the before/after metrics
   only when its macro-F1 gain over the current package clears ``min_gain`` with
   ``confidence`` (a paired bootstrap over the held-out reviews, :func:`paired_gain`:
   a gain of a few reviews on a small slice is noise, not a better model);
   otherwise :class:`NotBetterError` carries the comparison and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.data import LABELS, Example, star_label
from export.errors import AdaptError, NotBetterError, QuantizationLossError

log = logging.getLogger(__name__)

NEG, NEU, POS = (LABELS.index(x) for x in ("negative", "neutral", "positive"))
MIN_HELD_OUT = 50  # fewer held-out reviews cannot tell two models apart
MIN_TRAIN = 100


@dataclass(frozen=True)
class RatedReview:
    text: str
    rating: int  # 1–5 stars


@dataclass(frozen=True)
class AdaptConfig:
    budget_s: float = 900.0  # the whole run: fine-tuning, export, evaluation
    export_reserve_s: float = 240.0  # of the budget, kept for export + evaluation
    held_out_share: float = 0.2
    min_gain: float = 0.0  # macro-F1 the candidate must gain over the current package
    confidence: float = 0.95  # one-sided, of the paired bootstrap: the gain's lower bound
    bootstrap_rounds: int = 2000
    seed: int = 13
    train_layers: int = 4  # top encoder layers that train (all, if the model has fewer)
    epochs: float = 3.0
    batch_size: int = 16
    lr_layers: float = 5e-5
    lr_head: float = 2e-4
    max_length: int = 160
    int8_agreement_min: float = 0.99  # the parity floor of the candidate's int8 export
    # False: a float32 package (about half the int8 speed, no int8 parity floor) for a
    # candidate whose int8 export changes too many labels
    int8: bool = True
    # with int8: package the same candidate in float32 when its int8 export misses the
    # parity floor, instead of failing (the training is not thrown away)
    fp32_fallback: bool = False
    # general reviews mixed into training per shop review, when adapt is given some
    # (``replay``): they keep what the model knew about other domains
    replay_ratio: float = 1.0


def read_rated(lines: Iterable[str], source: str = "input") -> list[RatedReview]:
    """Rated reviews from JSON lines with ``text`` (or ``review``) and ``rating`` 1–5.

    Blank lines are skipped; anything else that is not such an object is an
    :class:`AdaptError` naming the line, so a broken export is never half-used.
    """
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AdaptError(f"{source}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise AdaptError(f"{source}:{number}: expected an object, got {type(obj).__name__}")
        text = obj.get("text", obj.get("review"))
        rating = obj.get("rating")
        if not isinstance(text, str) or not text.strip():
            raise AdaptError(f"{source}:{number}: 'text' must be a non-empty string")
        if isinstance(rating, bool) or not isinstance(rating, int | float) or rating != int(rating):
            raise AdaptError(f"{source}:{number}: 'rating' must be a whole number of stars")
        if not 1 <= rating <= 5:
            raise AdaptError(f"{source}:{number}: rating {rating} outside 1-5")
        rows.append(RatedReview(text.strip(), int(rating)))
    return rows


def weak_examples(rows: Sequence[RatedReview], group: str = "shop") -> list[Example]:
    """One example per distinct text (the first rating wins), labelled from its stars."""
    seen: set[str] = set()
    out = []
    for r in rows:
        if r.text not in seen:
            seen.add(r.text)
            out.append(Example(r.text, star_label(r.rating), "rated", group))
    return out


def replay_examples(
    rows: Sequence[RatedReview], shop: Sequence[Example], n: int, seed: int
) -> list[Example]:
    """A seeded sample of ``n`` general reviews to train on beside the shop's own; texts
    the shop also has (trained on or held out) are left out, so the held-out slice
    stays unseen."""
    taken = {e.text for e in shop}
    pool = [e for e in weak_examples(rows, group="replay") if e.text not in taken]
    return random.Random(seed).sample(pool, min(len(pool), n))


def held_out(text: str, share: float) -> bool:
    """Deterministic: the first two bytes of sha1(text) below ``share`` of their range."""
    digest = hashlib.sha1(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:2], "big") < share * 65536


def split(examples: Sequence[Example], share: float) -> tuple[list[Example], list[Example]]:
    """(train, held_out), checked to be big enough and to hold more than one label."""
    if not 0 < share < 1:
        raise AdaptError(f"held-out share must be in (0, 1), not {share}")
    test = [e for e in examples if held_out(e.text, share)]
    train = [e for e in examples if not held_out(e.text, share)]
    if len(test) < MIN_HELD_OUT or len(train) < MIN_TRAIN:
        raise AdaptError(
            f"{len(examples)} distinct rated reviews give {len(train)} to train on and "
            f"{len(test)} held out; need at least {MIN_TRAIN} and {MIN_HELD_OUT}"
        )
    if len({e.label for e in train}) < 2:
        raise AdaptError("every training review has the same weak label; nothing to learn")
    return train, test


def slice_metrics(gold: Sequence[int], probs: np.ndarray[Any, Any]) -> dict[str, Any]:
    """Held-out metrics: 3-class accuracy, macro-F1 over the gold classes present,
    and binary accuracy (negative vs positive reviews, the larger of the two)."""
    from export.evaluate import per_class_f1

    pred = [int(np.argmax(p)) for p in probs]
    present = sorted(set(gold))
    f1 = per_class_f1(gold, pred, len(LABELS))
    binary = [(g, POS if p[POS] >= p[NEG] else NEG) for g, p in zip(gold, probs, strict=True)]
    binary = [(g, p) for g, p in binary if g != NEU]
    return {
        "n": len(gold),
        "labels": {LABELS[c]: n for c, n in sorted(Counter(gold).items())},
        "macro_f1": round(sum(f1[c] for c in present) / len(present), 4),
        "accuracy": round(sum(p == g for p, g in zip(pred, gold, strict=True)) / len(gold), 4),
        "binary_accuracy": (
            round(sum(g == p for g, p in binary) / len(binary), 4) if binary else None
        ),
        "f1": {LABELS[c]: round(f1[c], 4) for c in present},
    }


def score_probs(package: Path, examples: Sequence[Example]) -> np.ndarray[Any, Any]:
    from export.evaluate import class_probs
    from models.runtime import open_scorer

    return class_probs(open_scorer(package), examples)


def _macro_f1_rows(
    gold: np.ndarray[Any, Any], pred: np.ndarray[Any, Any], classes: list[int]
) -> np.ndarray[Any, Any]:
    """Macro-F1 of each row of (resampled) ``gold``/``pred``, over ``classes``."""
    scores = []
    for c in classes:
        tp = ((gold == c) & (pred == c)).sum(axis=-1)
        fp = ((gold != c) & (pred == c)).sum(axis=-1)
        fn = ((gold == c) & (pred != c)).sum(axis=-1)
        denom = 2 * tp + fp + fn
        scores.append(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))
    return np.asarray(np.mean(scores, axis=0))


def paired_gain(
    gold: Sequence[int],
    before: np.ndarray[Any, Any],
    after: np.ndarray[Any, Any],
    *,
    confidence: float,
    rounds: int,
    seed: int,
) -> dict[str, float]:
    """The candidate's macro-F1 gain on the held-out slice and its one-sided lower
    bound at ``confidence``: both models' predictions resampled together (the same
    reviews in every round), so the bound reflects how much the gain depends on
    which reviews happened to be held out. Deterministic for a ``seed``."""
    g = np.asarray(gold)
    pb, pa = before.argmax(axis=1), after.argmax(axis=1)
    classes = sorted(set(g.tolist()))
    idx = np.random.default_rng(seed).integers(0, len(g), size=(rounds, len(g)))
    gains = _macro_f1_rows(g[idx], pa[idx], classes) - _macro_f1_rows(g[idx], pb[idx], classes)
    observed = float(_macro_f1_rows(g, pa, classes) - _macro_f1_rows(g, pb, classes))
    return {
        "gain": round(observed, 4),
        "lower_bound": round(float(np.quantile(gains, 1 - confidence)), 4),
        "confidence": confidence,
        "rounds": rounds,
    }


def data_digest(examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for e in sorted(examples, key=lambda e: e.text):
        h.update(f"{e.label}\t{e.text}\n".encode())
    return h.hexdigest()


def adapt(
    package: Path,
    checkpoint: Path | None,
    rows: Sequence[RatedReview],
    out: Path,
    config: AdaptConfig = AdaptConfig(),
    *,
    replay: Sequence[RatedReview] = (),
    version: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune ``package`` on ``rows``; publish an int8 package to ``out`` only if it
    beats ``package`` on the held-out slice. Returns the comparison; raises
    :class:`NotBetterError` otherwise.

    ``replay``: general rated reviews (other domains), ``config.replay_ratio`` of them
    per shop review mixed into training so that adapting does not forget them.

    Training starts from ``checkpoint`` (the PyTorch weights the package was
    exported from) when given, else from the package itself, unpacked by
    :func:`export.unpack.unpack`."""
    from transformers import AutoConfig

    from export.finetune import FinetuneConfig, finetune
    from export.onnx_export import export_package
    from models.package import load_package

    started = time.monotonic()
    if out.exists():
        raise AdaptError(f"{out} exists; choose a new directory for the adapted package")
    if checkpoint is not None and not (checkpoint / "config.json").is_file():
        raise AdaptError(
            f"{checkpoint} is not a Hugging Face checkpoint (no config.json); leave the "
            "checkpoint out to fine-tune the package's own weights"
        )
    current = load_package(package)
    examples = weak_examples(rows)
    train, test = split(examples, config.held_out_share)
    if config.replay_ratio < 0:
        raise AdaptError(f"replay ratio must be >= 0, not {config.replay_ratio}")
    replayed = replay_examples(
        replay, examples, round(config.replay_ratio * len(train)), config.seed
    )
    digest = data_digest(train + replayed)
    version = version or f"{current.version}+adapt.{digest[:8]}"
    log.info(
        "adapting %s %s on %d reviews (%d held out, %d replayed)",
        current.name,
        current.version,
        len(train),
        len(test),
        len(replayed),
    )
    gold = [e.label for e in test]
    before_probs = score_probs(package, test)
    before = slice_metrics(gold, before_probs)

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if checkpoint is None:
            from export.unpack import unpack

            checkpoint = unpack(package, work / "unpacked", [e.text for e in test])
        layers = int(AutoConfig.from_pretrained(checkpoint).num_hidden_layers)
        budget = config.budget_s - config.export_reserve_s - (time.monotonic() - started)
        if budget <= 60:
            raise AdaptError(
                f"budget {config.budget_s:.0f} s leaves {budget:.0f} s to train after the "
                f"{config.export_reserve_s:.0f} s export reserve"
            )
        report = finetune(
            checkpoint,
            work / "checkpoint",
            train + replayed,
            FinetuneConfig(
                seed=config.seed,
                train_layers=min(config.train_layers, layers),
                epochs=config.epochs,
                batch_size=config.batch_size,
                lr_layers=config.lr_layers,
                lr_head=config.lr_head,
                max_length=config.max_length,
                time_budget_s=budget,
            ),
            progress=progress,
        )
        report["adapt"] = {
            "source_package": f"{current.name} {current.version}",
            "data_sha256": digest,
        }
        candidate_dir = work / "package"

        def export(quantize: bool) -> None:
            export_package(
                work / "checkpoint",
                candidate_dir,
                task="sequence-classification",
                name=current.name,
                version=version,
                text_prefix=current.text_prefix,
                max_length=current.max_length,
                quantize=quantize,
                smooth_ffn_output=0.75 if quantize else None,
                calibration_texts=[e.text for e in train[:512]],
                training=report,
                validation_texts=[e.text for e in test],
                int8_label_agreement_min=config.int8_agreement_min,
            )

        int8_refused: str | None = None
        try:
            export(config.int8)
        except QuantizationLossError as exc:
            if not config.fp32_fallback:
                raise QuantizationLossError(
                    f"{exc}: the candidate's int8 export changes too many labels of the "
                    "held-out reviews; --fp32 writes a float32 package instead "
                    "(--fp32-fallback: only when int8 misses its floor)"
                ) from exc
            # the same trained candidate, packaged without quantisation: no retraining
            log.warning("%s; packaging the candidate in float32 instead", exc)
            int8_refused = str(exc)
            shutil.rmtree(candidate_dir, ignore_errors=True)
            export(False)
        after_probs = score_probs(candidate_dir, test)
        after = slice_metrics(gold, after_probs)
        gain = paired_gain(
            gold,
            before_probs,
            after_probs,
            confidence=config.confidence,
            rounds=config.bootstrap_rounds,
            seed=config.seed,
        )
        comparison = {
            "current": before,
            "candidate": after,
            "held_out": len(test),
            "trained_on": len(train),
            "replayed": len(replayed),
            "min_gain": config.min_gain,
            "gain": gain,
            "better": gain["lower_bound"] > config.min_gain,
            "package": {"name": current.name, "from": current.version, "to": version},
            "train_seconds": report["train_seconds"],
            "steps": report["steps"],
            "seconds": round(time.monotonic() - started, 1),
            "config": asdict(config),
            "precision": "int8" if config.int8 and int8_refused is None else "float32",
        }
        if int8_refused is not None:
            comparison["int8_refused"] = int8_refused
        if not comparison["better"]:
            raise NotBetterError(comparison)
        (candidate_dir / "adapt.json").write_text(json.dumps(comparison, indent=2) + "\n")
        (candidate_dir / "MODEL_CARD.md").write_text(model_card(comparison, report))
        candidate_dir.rename(out)
        return comparison
    finally:
        shutil.rmtree(work, ignore_errors=True)


def model_card(comparison: dict[str, Any], training: dict[str, Any]) -> str:
    pkg = comparison["package"]
    rows = []
    for key, label in (
        ("macro_f1", "macro-F1"),
        ("accuracy", "accuracy (3 classes)"),
        ("binary_accuracy", "accuracy (1–2 vs 4–5 stars)"),
    ):
        b, a = comparison["current"][key], comparison["candidate"][key]
        rows.append(f"| {label} | {b if b is not None else '–'} | {a if a is not None else '–'} |")
    labels = ", ".join(f"{k} {v}" for k, v in comparison["current"]["labels"].items())
    replayed = (
        f" beside {comparison['replayed']} general reviews replayed from other domains"
        if comparison.get("replayed")
        else ""
    )
    precision = "int8" if comparison["precision"] == "int8" else "float32 (not quantised)"
    if "int8_refused" in comparison:
        precision += " (its int8 export missed the parity floor: `int8_refused` in adapt.json)"
    return f"""# {pkg["name"]} {pkg["to"]} — adapted from {pkg["from"]}

Fine-tuned by `reviewpulse adapt` on {comparison["trained_on"]} of a shop's own star-rated
reviews (weak labels: 1–2 stars negative, 3 neutral, 4–5 positive){replayed}, {precision}
and parity-checked against its PyTorch weights (parity figures in `manifest.json`).

## Held-out slice of the same reviews ({comparison["held_out"]}: {labels})

Never trained on (`sha1(text)` below {comparison["config"]["held_out_share"]} of its range).
Both packages scored through the serving runtime.

| metric | {pkg["from"]} | {pkg["to"]} |
|---|---:|---:|
{chr(10).join(rows)}

Macro-F1 gain {comparison["gain"]["gain"]:+.4f}; its one-sided
{comparison["gain"]["confidence"]:.0%} lower bound {comparison["gain"]["lower_bound"]:+.4f}
(paired bootstrap over the held-out reviews, {comparison["gain"]["rounds"]} rounds) had to
clear {comparison["min_gain"]}.

## Training

{training["steps"]} steps × {comparison["config"]["batch_size"]} in {training["train_seconds"]} s
({training["device"]}), top {comparison["config"]["train_layers"]} layers + head, time budget
{comparison["config"]["budget_s"]:.0f} s for the whole run ({comparison["seconds"]} s used).
Training data sha256 `{training["adapt"]["data_sha256"]}`.

## Limits

Star ratings are noisy labels, and the held-out slice comes from the same shop and period:
watch the shadow agreement (`/api/models`) before switching the worker to this package.
Quality outside this shop's reviews is not measured here; the source package's card holds
its dev metrics.
"""
