"""Domain fine-tuning of the negative/neutral/positive head, on CPU or GPU.

The encoder's embeddings and lower layers stay frozen; the top
``train_layers`` layers, the pooler and the classifier are trained. On the
2-core machines this project runs on, that keeps one epoch over the review
data to minutes (bf16 autocast where the CPU has AMX/AVX-512-BF16), while
still adapting the representation, not only a linear probe.

The loss is weighted by inverse-sqrt class frequency; before saving, the neutral
class's share of that weighting is taken back out of the head's bias
(:mod:`export.prior`), so the saved model does not over-call neutral.

Seeded and reproducible: the same seed, data and config give the same
batches and the same weights (up to the nondeterminism of the BLAS library).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from export.data import LABELS, Example
from export.errors import ExportError
from export.prior import class_weights, correct_head, neutral_shift

log = logging.getLogger(__name__)
TIMING_STEPS = 10  # steps timed before a time budget fixes the plan


@dataclass(frozen=True)
class FinetuneConfig:
    seed: int = 13
    train_layers: int = 4  # top encoder layers that train; the rest stay frozen
    epochs: float = 1.0
    batch_size: int = 32
    lr_layers: float = 1e-4
    lr_head: float = 1e-3
    warmup: float = 0.05  # fraction of steps
    max_length: int = 256
    text_prefix: str = "passage: "
    max_steps: int | None = None  # stop early (smoke runs)
    bf16: bool = True  # autocast where supported
    time_budget_s: float | None = None  # fit the steps into this many seconds (measured)


def _encoder_layers(model: Any) -> Any:
    base = model.base_model
    if hasattr(base, "encoder"):
        return base.encoder.layer
    if hasattr(base, "transformer"):
        return base.transformer.layer
    raise ExportError(f"cannot find encoder layers of {type(base).__name__}")


def _freeze_lower(model: Any, train_layers: int) -> list[Any]:
    """Freeze all but the top ``train_layers`` layers and the head; return the head params."""
    layers = _encoder_layers(model)
    if not 0 <= train_layers <= len(layers):
        raise ExportError(f"train_layers={train_layers} but the encoder has {len(layers)} layers")
    for p in model.base_model.parameters():
        p.requires_grad = False
    for layer in layers[len(layers) - train_layers :]:
        for p in layer.parameters():
            p.requires_grad = True
    pooler = getattr(model.base_model, "pooler", None)
    head = [p for n, p in model.named_parameters() if not n.startswith(model.base_model_prefix)]
    if pooler is not None:
        for p in pooler.parameters():
            p.requires_grad = True
        head += list(pooler.parameters())
    for p in head:
        p.requires_grad = True
    return head


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random
) -> list[list[int]]:
    """Length-bucketed batches: shuffle, sort within pools of 50 batches, shuffle batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


class Schedule(Protocol):
    """The training-loop fields :class:`FinetuneConfig` and the distillation config share."""

    @property
    def seed(self) -> int: ...
    @property
    def epochs(self) -> float: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def lr_layers(self) -> float: ...
    @property
    def lr_head(self) -> float: ...
    @property
    def warmup(self) -> float: ...
    @property
    def max_steps(self) -> int | None: ...
    @property
    def bf16(self) -> bool: ...
    @property
    def time_budget_s(self) -> float | None: ...


def cpu_has_bf16() -> bool:
    """Whether this CPU does bfloat16 in hardware (AVX-512-BF16 or AMX). Without it,
    autocast to bfloat16 is emulated: measured on a 2-core AVX2 EPYC, a top-4-layer step of
    32 reviews took ~25 s against ~2 s in float32."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def uses_bf16(config: Schedule, device: str) -> bool:
    """Whether training autocasts to bfloat16: asked for, and the device does it in hardware."""
    return config.bf16 and (device == "cuda" or cpu_has_bf16())


def train_steps(
    model: Any,
    encoded: Sequence[Sequence[int]],
    pad: int,
    body: list[Any],
    head: list[Any],
    config: Schedule,
    loss_of: Callable[[Any, list[int], str], Any],
    *,
    device: str,
    desc: str,
    progress: bool,
) -> list[float]:
    """AdamW over length-bucketed batches with warm-up and linear decay; the loss per step.

    With ``config.time_budget_s`` the plan shrinks, after the first
    :data:`TIMING_STEPS` steps, to the steps that fit the budget at the measured
    pace, so the learning rate still decays to zero at the last step.

    ``loss_of(logits, batch, device)`` is the loss of a batch (indices into ``encoded``):
    class-weighted cross-entropy for fine-tuning, soft targets for distillation.
    """
    import torch
    from tqdm import tqdm

    rng = random.Random(config.seed)
    total = max(1, int(math.ceil(len(encoded) / config.batch_size) * config.epochs))
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": config.lr_layers}, {"params": head, "lr": config.lr_head}],
        weight_decay=0.01,
    )
    warmup = max(1, int(total * config.warmup))
    started = time.perf_counter()
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / (total - warmup + 1)))
    )
    use_bf16 = uses_bf16(config, device)

    model.train()
    losses: list[float] = []
    bar = tqdm(total=total, desc=desc, unit="step", disable=not progress)
    while len(losses) < total:
        for batch in length_bucketed_batches([len(x) for x in encoded], config.batch_size, rng):
            width = max(len(encoded[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[row, : len(encoded[i])] = 1
            with torch.autocast(device, dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            loss = loss_of(logits.float(), batch, device)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(body + head, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
            if config.time_budget_s is not None and len(losses) == TIMING_STEPS:
                pace = (time.perf_counter() - started) / TIMING_STEPS
                fit = TIMING_STEPS + int((config.time_budget_s - pace * TIMING_STEPS) / pace)
                if fit < total:
                    log.info("time budget: %d of %d steps fit (%.2f s/step)", fit, total, pace)
                    total = max(TIMING_STEPS, fit)
                    bar.total = total
            if len(losses) >= total:
                break
    bar.close()
    model.eval()
    return losses


def finetune(
    base: Path,
    out: Path,
    examples: Sequence[Example],
    config: FinetuneConfig = FinetuneConfig(),
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the sentiment head on ``examples``; write an HF checkpoint to ``out``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not examples:
        raise ExportError("no training examples")
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    ).to(device)
    head = _freeze_lower(model, config.train_layers)
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]

    encoded = tokenizer(
        [config.text_prefix + e.text for e in examples],
        truncation=True,
        max_length=config.max_length,
    )["input_ids"]
    labels = [e.label for e in examples]
    weights = class_weights(labels, len(LABELS))
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, device=device))

    def loss_of(logits: Any, batch: list[int], device: str) -> Any:
        return loss_fn(logits, torch.tensor([labels[i] for i in batch], device=device))

    pad = tokenizer.pad_token_id or 0
    losses = train_steps(
        model,
        encoded,
        pad,
        body,
        head,
        config,
        loss_of,
        device=device,
        desc="fine-tune",
        progress=progress,
    )
    step = len(losses)
    shift = neutral_shift(weights)
    correct_head(model, shift)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    report = {
        "config": asdict(config),
        "base": str(base),
        "device": device,
        "bf16": uses_bf16(config, device),
        "examples": len(examples),
        "examples_by_source": dict(Counter(e.source for e in examples)),
        "labels_by_source": {
            s: dict(Counter(LABELS[e.label] for e in examples if e.source == s))
            for s in sorted({e.source for e in examples})
        },
        "steps": step,
        "class_weights": [round(w, 6) for w in weights],
        "neutral_logit_shift": round(shift, 6),
        "loss_first_50": sum(losses[:50]) / len(losses[:50]),
        "loss_last_50": sum(losses[-50:]) / len(losses[-50:]),
        "train_seconds": round(time.perf_counter() - started, 1),
        "torch_threads": torch.get_num_threads(),
    }
    (out / "training.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    log.info("fine-tuned %d steps in %.0fs", step, report["train_seconds"])
    return report
