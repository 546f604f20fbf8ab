"""A seeded softmax-regression head over frozen embeddings (numpy, full-batch Adam)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class HeadConfig:
    """Training settings of the head."""

    l2: float = 1e-4
    steps: int = 400
    lr: float = 0.05
    seed: int = 13


def train_head(
    x: FloatArray,
    y: npt.NDArray[np.int64],
    n_classes: int,
    weights: FloatArray,
    config: HeadConfig,
) -> tuple[FloatArray, FloatArray]:
    """Weighted multinomial logistic regression; returns (W [dim, classes], b [classes]).

    Features are standardised with the (weighted) training mean and std; the
    standardisation is folded into the returned W and b, so the runtime computes
    ``softmax(x @ W + b)`` on raw embeddings.
    """
    rng = np.random.default_rng(config.seed)
    w_norm = (weights / weights.sum()).astype(np.float64)
    mu = (w_norm[:, None] * x).sum(axis=0)
    sd = np.sqrt((w_norm[:, None] * (x - mu) ** 2).sum(axis=0)) + 1e-6
    z = ((x - mu) / sd).astype(np.float64)
    onehot = np.eye(n_classes)[y]
    weight = rng.normal(0.0, 0.01, (x.shape[1], n_classes))
    bias = np.zeros(n_classes)
    m_w, v_w = np.zeros_like(weight), np.zeros_like(weight)
    m_b, v_b = np.zeros_like(bias), np.zeros_like(bias)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, config.steps + 1):
        logits = z @ weight + bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        err = (p - onehot) * w_norm[:, None]
        g_w = z.T @ err + config.l2 * weight
        g_b = err.sum(axis=0)
        m_w = beta1 * m_w + (1 - beta1) * g_w
        v_w = beta2 * v_w + (1 - beta2) * g_w**2
        m_b = beta1 * m_b + (1 - beta1) * g_b
        v_b = beta2 * v_b + (1 - beta2) * g_b**2
        corr1, corr2 = 1 - beta1**step, 1 - beta2**step
        weight -= config.lr * (m_w / corr1) / (np.sqrt(v_w / corr2) + eps)
        bias -= config.lr * (m_b / corr1) / (np.sqrt(v_b / corr2) + eps)
    folded_w = weight / sd[:, None]
    folded_b = bias - (mu / sd) @ weight
    return folded_w.astype(np.float32), folded_b.astype(np.float32)
