"""Distilling the sentiment package (teacher) into a shallower student encoder.

The teacher is a model package, run through the serving runtime
(:func:`models.runtime.open_scorer`), so what the student learns from is
exactly what production computes. Its probabilities over the training texts
are cached (``.npz`` keyed by the teacher's model hash and the texts' hash).

The student is the base encoder with a subset of its layers (evenly spaced,
first and last kept: 12 → 6 keeps 0, 2, 4, 7, 9, 11), a fresh pooler-free
classification head, trained on soft cross-entropy against the teacher's
probabilities plus a weighted hard-label term. Word embeddings stay frozen
(they are most of the parameters and the teacher's were frozen too).

Seeded and reproducible like :mod:`export.finetune`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from export.data import LABELS, Example
from export.errors import ExportError
from export.finetune import train_steps, uses_bf16
from export.prior import class_weights

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class DistillConfig:
    seed: int = 21
    layers: int = 6  # student encoder layers, taken evenly spaced from the base
    epochs: float = 1.0
    batch_size: int = 32
    lr_layers: float = 1e-4
    lr_head: float = 1e-3
    warmup: float = 0.05
    max_length: int = 128
    hard_weight: float = 0.2  # weight of the hard-label CE next to the soft CE
    text_prefix: str = "passage: "
    max_steps: int | None = None
    bf16: bool = True
    time_budget_s: float | None = None


def kept_layers(total: int, keep: int) -> list[int]:
    """``keep`` evenly spaced layer indices out of ``total``, first and last included."""
    if not 1 <= keep <= total:
        raise ExportError(f"cannot keep {keep} of {total} layers")
    if keep == 1:
        return [total - 1]
    return [round(i * (total - 1) / (keep - 1)) for i in range(keep)]


def _texts_key(teacher: Path, texts: Sequence[str]) -> str:
    digest = hashlib.sha256((teacher / "model.onnx").read_bytes())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()


def teacher_probs(
    teacher: Path,
    texts: Sequence[str],
    cache: Path | None = None,
    *,
    threads: int = 2,
    batch: int = 32,
) -> FloatArray:
    """The teacher package's class probabilities for ``texts`` (cached in ``cache``)."""
    from models.runtime import open_scorer

    key = _texts_key(teacher, texts)
    if cache is not None and cache.is_file():
        stored = np.load(cache)
        if str(stored["key"]) == key:
            probs: FloatArray = stored["probs"]
            return probs
    scorer = open_scorer(teacher, threads=threads, sub_batch=batch)
    started = time.perf_counter()
    out = np.zeros((len(texts), len(scorer.package.labels)), np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    chunk = batch * 64
    for n, start in enumerate(range(0, len(order), chunk)):
        idx = order[start : start + chunk]
        scores = scorer.score([texts[i] for i in idx])
        if scores.probs is None:
            raise ExportError(f"{teacher}: the teacher must be a classification package")
        out[idx] = scores.probs
        if n % 10 == 0:
            log.info(
                "teacher: %d/%d texts, %.0fs",
                start + len(idx),
                len(texts),
                time.perf_counter() - started,
            )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, key=np.array(key), probs=out)
    return out


def _student(base: Path, layers: int) -> Any:
    from torch import nn
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    encoder = model.base_model.encoder
    keep = kept_layers(len(encoder.layer), layers)
    encoder.layer = nn.ModuleList([encoder.layer[i] for i in keep])
    model.config.num_hidden_layers = layers
    return model, keep


def distill(
    base: Path,
    out: Path,
    examples: Sequence[Example],
    soft: FloatArray,
    config: DistillConfig = DistillConfig(),
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a ``config.layers``-layer student of ``base`` on ``soft`` (teacher probabilities)."""
    import torch
    from transformers import AutoTokenizer

    if not examples or len(examples) != len(soft):
        raise ExportError(f"{len(examples)} examples but {len(soft)} teacher rows")
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(base)
    model, keep = _student(base, config.layers)
    model.to(device)
    for p in model.base_model.embeddings.parameters():
        p.requires_grad = False
    head = [p for n, p in model.named_parameters() if not n.startswith(model.base_model_prefix)]
    pooler = getattr(model.base_model, "pooler", None)
    if pooler is not None:
        head += list(pooler.parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]

    encoded = tokenizer(
        [config.text_prefix + e.text for e in examples],
        truncation=True,
        max_length=config.max_length,
    )["input_ids"]
    labels = [e.label for e in examples]
    targets = torch.tensor(np.asarray(soft, np.float32))
    hard_loss = torch.nn.CrossEntropyLoss(
        weight=torch.tensor(class_weights(labels, len(LABELS)), device=device)
    )

    def loss_of(logits: Any, batch: list[int], device: str) -> Any:
        """Soft cross-entropy against the teacher plus ``hard_weight`` × the labels' CE."""
        soft_ce = -(targets[batch].to(device) * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
        hard = torch.tensor([labels[i] for i in batch], device=device)
        return soft_ce + config.hard_weight * hard_loss(logits, hard)

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
        desc="distil",
        progress=progress,
    )
    step = len(losses)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    agreement = float(
        np.mean(np.argmax(soft, axis=1) == np.asarray(labels))
    )  # teacher vs gold on the training texts, for the record
    report = {
        "config": asdict(config),
        "kind": "distillation",
        "base": str(base),
        "kept_layers": keep,
        "device": device,
        "bf16": uses_bf16(config, device),
        "examples": len(examples),
        "examples_by_source": dict(Counter(e.source for e in examples)),
        "teacher_train_label_agreement": round(agreement, 4),
        "steps": step,
        "loss_first_50": sum(losses[:50]) / len(losses[:50]),
        "loss_last_50": sum(losses[-50:]) / len(losses[-50:]),
        "train_seconds": round(time.perf_counter() - started, 1),
        "torch_threads": torch.get_num_threads(),
    }
    (out / "training.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    log.info("distilled %d steps in %.0fs", step, report["train_seconds"])
    return report
