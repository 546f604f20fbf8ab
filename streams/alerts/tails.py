"""Upper-tail probabilities P(K ≥ k) of the beta-binomial and the binomial.

No scipy: terms come from ``math.lgamma`` and the ratio of neighbouring
terms. A tail is summed from its first term outward, and the shorter side is
summed: above the mean the upper tail itself, below it one minus the lower
tail, so no sum starts deep in a tail where its first term would underflow
while the mass lies elsewhere. For log-concave distributions (the binomial;
the beta-binomial when a, b ≥ 1) the terms only shrink once they start to, so
the sum stops when they no longer change it; otherwise every term is added.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

# Relative size of a term that no longer changes a float sum.
NEGLIGIBLE = 1e-17


def _lchoose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _outward_sum(log_first: float, ratios: Iterable[float], log_concave: bool) -> float:
    """exp(log_first) · (1 + r₀ + r₀r₁ + …), the terms given as ratios to their predecessor."""
    total = term = 1.0
    for ratio in ratios:
        term *= ratio
        total += term
        if log_concave and ratio < 1 and term < NEGLIGIBLE * total:
            break
    return math.exp(log_first + math.log(total))


def _upper_tail(
    k: int,
    n: int,
    mean: float,
    log_pmf: Callable[[int], float],
    ratio_up: Callable[[int], float],
    log_concave: bool,
) -> float:
    """P(K ≥ k) given log pmf(j) and pmf(j+1)/pmf(j)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if k > mean:
        upper = (ratio_up(j) for j in range(k, n))
        return min(1.0, _outward_sum(log_pmf(k), upper, log_concave))
    lower = (1.0 / ratio_up(j - 1) for j in range(k - 1, 0, -1))
    return max(0.0, 1.0 - _outward_sum(log_pmf(k - 1), lower, log_concave))


def beta_binomial_sf(k: int, n: int, a: float, b: float) -> float:
    """P(K ≥ k) for K ~ BetaBinomial(n, a, b): k of n when the share itself is uncertain.

    The predictive distribution of a window's negatives when the share is
    Beta(a, b): wider than the binomial when a + b is small (thin history),
    the binomial with share a/(a+b) as a + b grows.
    """
    if a <= 0 or b <= 0:
        raise ValueError(f"beta-binomial needs a, b > 0, got a={a}, b={b}")
    log_norm = _lbeta(a, b)

    def log_pmf(j: int) -> float:
        return _lchoose(n, j) + _lbeta(j + a, n - j + b) - log_norm

    def ratio_up(j: int) -> float:
        return (n - j) * (j + a) / ((j + 1) * (n - j - 1 + b))

    return _upper_tail(k, n, n * a / (a + b), log_pmf, ratio_up, a >= 1 and b >= 1)


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(K ≥ k) for K ~ Binomial(n, p), 0 < p < 1."""
    if not 0 < p < 1:
        raise ValueError(f"binomial needs 0 < p < 1, got {p}")
    log_p, log_q, odds = math.log(p), math.log1p(-p), p / (1 - p)

    def log_pmf(j: int) -> float:
        return _lchoose(n, j) + j * log_p + (n - j) * log_q

    def ratio_up(j: int) -> float:
        return (n - j) / (j + 1) * odds

    return _upper_tail(k, n, n * p, log_pmf, ratio_up, True)
