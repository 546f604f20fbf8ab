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
@click.option("--max-steps", type=int, default=None, help="stop after N steps (smoke runs)")
@click.option("--zh-limit", type=int, default=None, help="stratified subset of the Chinese rows")
@click.option("--en-positive-limit", type=int, default=None, help="cap on English 4-5 star rows")
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
    zh_limit: int | None,
    en_positive_limit: int | None,
) -> None:
    """Train the negative/neutral/positive head on shared/data (seeded)."""
    from export.data import training_set
    from export.finetune import FinetuneConfig, finetune

    examples = training_set(data, zh_limit=zh_limit, en_positive_limit=en_positive_limit, seed=seed)
    config = FinetuneConfig(
        seed=seed,
        epochs=epochs,
        train_layers=train_layers,
        batch_size=batch_size,
        max_length=max_length,
        max_steps=max_steps,
    )
    report = finetune(base, out, examples, config)
    report["data"] = {
        "dir": str(data),
        "zh_limit": zh_limit,
        "en_positive_limit": en_positive_limit,
    }
    (out / "training.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    click.echo(json.dumps({k: report[k] for k in ("steps", "train_seconds", "loss_last_50")}))
