"""Leave-one-category-out: how the model does on a product category it never saw,
and how much ``adapt`` recovers from that category's own ratings.

For a category X of ``online_shopping_10_cats`` (``reviewpulse export loco X``), or
an English corpus (``en_clothing``, ``en_alexa``: cross-corpus, adapted on its real
star ratings, 3-star neutrals included):

1. fine-tune the base encoder on the training data without X (the "LOCO" model) and,
   with ``--reference``, the same recipe with X (what in-domain data would give);
2. package both int8 and evaluate them on the dev split — X's rows are the
   out-of-domain figure, the other categories and English show what is kept;
3. run :func:`export.adapt.adapt` from the LOCO model on ``adapt_n`` of X's training
   reviews (their binary labels as 1 or 5 stars) and evaluate the adapted package
   the same way.

Everything lands in ``work/`` with a ``loco.json`` summary; the recipe is a short
top-4-layer fine-tune (minutes on 2 cores), not the full default recipe, so the
absolute figures sit below the default package's and the comparison is within
the recipe.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from export.adapt import AdaptConfig, RatedReview, adapt, read_rated
from export.data import (
    Example,
    as_rated,
    calibration_texts,
    category_rated,
    en_reviews,
    source_rated,
    training_set,
    validation_texts,
)
from export.errors import ExportError, NotBetterError
from export.evaluate import class_probs, evaluate
from export.finetune import FinetuneConfig, finetune
from export.onnx_export import export_package

log = logging.getLogger(__name__)
# The short recipe leaves more texts near the decision boundary than the default
# package (97.8 % int8 label agreement on the first run, against 99.9 %): the
# experiments accept 97 %, the shipped packages keep the 99 % default.
INT8_AGREEMENT_MIN = 0.97
# Held-out units besides the Chinese categories: a whole English corpus (cross-corpus).
EN_SOURCES = ("en_clothing", "en_alexa")


@dataclass(frozen=True)
class LocoRecipe:
    steps: int = 350
    train_layers: int = 4
    max_length: int = 128
    en_positive_limit: int = 7000
    seed: int = 13
    adapt_n: int = 2000
    adapt_budget_s: float = 900.0


def _package(checkpoint: Path, out: Path, data: Path, version: str) -> Path:
    if out.exists():
        return out
    export_package(
        checkpoint,
        out,
        task="sequence-classification",
        name="sentiment-zh-en",
        version=version,
        text_prefix="passage: ",
        max_length=512,
        quantize=True,
        smooth_ffn_output=0.75,
        calibration_texts=calibration_texts(data, 512),
        validation_texts=validation_texts(data, 500),
        int8_label_agreement_min=INT8_AGREEMENT_MIN,
    )
    return out


def left_out(example: Example, held: str) -> bool:
    """Whether ``example`` belongs to ``held``: an English source or a Chinese category."""
    if held in EN_SOURCES:
        return example.source == held
    return example.source == "zh_shopping" and example.group == held


def _train(base: Path, out: Path, data: Path, recipe: LocoRecipe, exclude: str | None) -> Path:
    if (out / "config.json").is_file():
        return out
    examples = training_set(data, en_positive_limit=recipe.en_positive_limit, seed=recipe.seed)
    if exclude is not None:
        examples = [e for e in examples if not left_out(e, exclude)]
    finetune(
        base,
        out,
        examples,
        FinetuneConfig(
            seed=recipe.seed,
            train_layers=recipe.train_layers,
            max_length=recipe.max_length,
            max_steps=recipe.steps,
        ),
    )
    return out


def _source_metrics(package: Path, data: Path, source: str) -> dict[str, Any]:
    from export.adapt import slice_metrics
    from models.runtime import open_scorer

    examples = [e for e in en_reviews(data, "heldout") if e.source == source]
    probs = class_probs(open_scorer(package), examples)
    m = slice_metrics([e.label for e in examples], probs)
    return {"n": m["n"], "accuracy": m["binary_accuracy"], "macro_f1": m["macro_f1"]}


def _summary(package: Path, data: Path, category: str) -> dict[str, Any]:
    """The package's dev figures for this unit, cached next to it (packages here are
    written once, so a resumed run need not evaluate them again)."""
    cache = package.with_name(f"{package.name}.{category}.json")
    if cache.is_file():
        cached: dict[str, Any] = json.loads(cache.read_text(encoding="utf-8"))
        return cached
    summary = _evaluate(package, data, category)
    cache.write_text(json.dumps(summary, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def _evaluate(package: Path, data: Path, category: str) -> dict[str, Any]:
    metrics = evaluate(package, data)
    zh = metrics["zh_online_shopping_dev"]
    groups = zh["by_group"]
    others = [(g["n"], g["accuracy"]) for name, g in groups.items() if name != category]
    held = _source_metrics(package, data, category) if category in EN_SOURCES else groups[category]
    return {
        "category": held,
        "other_categories": round(sum(n * a for n, a in others) / sum(n for n, _ in others), 4),
        "zh_dev": zh["accuracy"],
        "en_binary": metrics["en_heldout_binary"]["accuracy"],
        "en_macro_f1": metrics["en_heldout_3class"]["macro_f1"],
    }


def _adapt(
    package: Path,
    checkpoint: Path,
    shop: list[RatedReview],
    replay: Sequence[RatedReview],
    out: Path,
    recipe: LocoRecipe,
) -> tuple[dict[str, Any], Path | None]:
    """``adapt`` the LOCO model on the unit's ratings (resumable): its comparison, and
    the adapted package, or None when adapting failed."""
    if out.exists():
        result: dict[str, Any] = json.loads((out / "adapt.json").read_text())
    else:
        try:
            result = adapt(
                package,
                checkpoint,
                shop,
                out,
                # publish whatever the slice says, so the dev figures show what adapting
                # did to the category either way; ``published_by_default`` records the
                # command's own verdict (the lower bound above the default min_gain). A
                # candidate whose int8 export misses the floor is packaged in float32
                # (marked "fp32" in the table) rather than lost.
                AdaptConfig(
                    budget_s=recipe.adapt_budget_s,
                    int8_agreement_min=INT8_AGREEMENT_MIN,
                    fp32_fallback=True,
                    min_gain=-1.0,
                ),
                replay=replay,
                progress=False,
            )
        except NotBetterError as exc:
            return exc.comparison, None
        except ExportError as exc:  # too little data, a parity floor missed, …
            return {"error": str(exc)}, None
    result["published_by_default"] = result["gain"]["lower_bound"] > AdaptConfig().min_gain
    return result, out


def run_loco(
    category: str, data: Path, base: Path, work: Path, recipe: LocoRecipe, *, reference: bool
) -> dict[str, Any]:
    """Train, package, adapt and evaluate for one left-out ``category``; resumable."""
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"category": category, "recipe": asdict(recipe)}
    loco_ckpt = _train(base, work / "loco-checkpoint", data, recipe, category)
    loco_pkg = _package(loco_ckpt, work / "loco-package", data, "0.0.0-loco")
    result["loco"] = _summary(loco_pkg, data, category)
    if reference:
        ref_ckpt = _train(base, work.parent / "reference-checkpoint", data, recipe, None)
        ref_pkg = _package(ref_ckpt, work.parent / "reference-package", data, "0.0.0-ref")
        result["reference"] = _summary(ref_pkg, data, category)
    rated = source_rated if category in EN_SOURCES else category_rated
    rows = rated(data, category, recipe.adapt_n, seed=recipe.seed)
    (work / "rated.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    shop = read_rated(json.dumps(r) for r in rows)
    # general reviews to replay: the LOCO model's own training data, never the unit's
    general = [
        e
        for e in training_set(data, en_positive_limit=recipe.en_positive_limit, seed=recipe.seed)
        if not left_out(e, category)
    ]
    replay = read_rated(json.dumps(r) for r in as_rated(general, recipe.adapt_n, seed=recipe.seed))
    for key, summary_key, dir_name, replayed in (
        ("adapt", "adapted", "adapted-package", ()),
        ("adapt_replay", "adapted_replay", "adapted-replay-package", replay),
    ):
        comparison, package = _adapt(loco_pkg, loco_ckpt, shop, replayed, work / dir_name, recipe)
        result[key] = comparison
        if package is not None:
            result[summary_key] = _summary(package, data, category)
    (work / "loco.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _verdict(a: dict[str, Any]) -> str:
    if "gain" in a:
        return (
            f"{a['current']['macro_f1']:.3f} → {a['candidate']['macro_f1']:.3f} "
            f"({a['gain']['gain']:+.3f}, {a['gain']['lower_bound']:+.3f})"
        )
    return f"failed: {a['error']}" if "error" in a else "–"


def loco_table(results: list[dict[str, Any]]) -> str:
    """The model card's table: each held-out unit's accuracy without it (LOCO), with it
    (reference) and after adapting the LOCO model on its ratings — alone and with as
    many general reviews replayed — plus what adapting cost on the other categories
    and the command's own held-out verdicts."""
    lines = [
        "| held out | n | without it | with it (reference) | adapted | + replay "
        "| other zh categories: without → adapted / + replay "
        "| adapt held-out macro-F1 (gain, 95 % lower bound): alone / + replay |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        loco = r["loco"]
        ref = r.get("reference", {}).get("category", {}).get("accuracy")
        cells = []
        for key, adapt_key in (("adapted", "adapt"), ("adapted_replay", "adapt_replay")):
            acc = r[key]["category"]["accuracy"] if key in r else None
            delta = (
                f" ({100 * (acc - loco['category']['accuracy']):+.1f})" if acc is not None else ""
            )
            fp32 = " fp32" if r.get(adapt_key, {}).get("precision") == "float32" else ""
            cells.append(f"{_pct(acc)}{delta}{fp32}")
        others = " / ".join(
            _pct(r[key]["other_categories"] if key in r else None)
            for key in ("adapted", "adapted_replay")
        )
        verdicts = " / ".join(_verdict(r.get(key, {})) for key in ("adapt", "adapt_replay"))
        lines.append(
            f"| {r['category']} | {loco['category']['n']} | {_pct(loco['category']['accuracy'])} "
            f"| {_pct(ref)} | {cells[0]} | {cells[1]} | {_pct(loco['other_categories'])} → "
            f"{others} | {verdicts} |"
        )
    return "\n".join(lines)
