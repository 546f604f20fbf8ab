"""Tail probabilities against direct sums of every term, and their limits."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.alerts.tails import beta_binomial_sf, binomial_sf


def _lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _choose(n: int, j: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)


def direct_beta_binomial(k: int, n: int, a: float, b: float) -> float:
    return math.fsum(
        math.exp(_choose(n, j) + _lbeta(j + a, n - j + b) - _lbeta(a, b)) for j in range(k, n + 1)
    )


def direct_binomial(k: int, n: int, p: float) -> float:
    return math.fsum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(0, 300),
    data=st.data(),
    a=st.floats(0.05, 60.0),
    b=st.floats(0.05, 60.0),
)
def test_beta_binomial_matches_the_direct_sum(
    n: int, data: st.DataObject, a: float, b: float
) -> None:
    k = data.draw(st.integers(0, n + 1))
    expected = min(1.0, direct_beta_binomial(k, n, a, b))
    assert beta_binomial_sf(k, n, a, b) == pytest.approx(expected, rel=1e-9, abs=1e-15)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 300), data=st.data(), p=st.floats(0.001, 0.999))
def test_binomial_matches_the_direct_sum(n: int, data: st.DataObject, p: float) -> None:
    k = data.draw(st.integers(0, n + 1))
    expected = min(1.0, direct_binomial(k, n, p))
    assert binomial_sf(k, n, p) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_beta_binomial_with_a_flat_prior_is_uniform() -> None:
    for k in range(12):
        assert beta_binomial_sf(k, 10, 1.0, 1.0) == pytest.approx(max(0, 11 - k) / 11)


def test_beta_binomial_is_wider_than_the_binomial_and_meets_it_with_much_history() -> None:
    # 12 of 20 negative at a 20 % share: rare if the share is known, less so if it is a guess.
    thin = beta_binomial_sf(12, 20, 2.0, 8.0)
    thick = beta_binomial_sf(12, 20, 2e5, 8e5)
    known = binomial_sf(12, 20, 0.2)
    assert thin > 100 * known
    assert thick == pytest.approx(known, rel=1e-3)


def test_far_tails_stay_finite() -> None:
    assert 0.0 <= binomial_sf(9000, 10_000, 0.1) < 1e-300
    assert binomial_sf(1, 10_000, 0.1) == 1.0
    assert 0.0 < beta_binomial_sf(900, 1000, 50.0, 450.0) < 1e-100
    # U-shaped (a, b < 1): the mass sits at both ends, and both ends are summed.
    end = math.exp(_lbeta(0.5, 100_000.5) - _lbeta(0.5, 0.5))
    assert beta_binomial_sf(1, 100_000, 0.5, 0.5) == pytest.approx(1 - end, rel=1e-12)
    assert beta_binomial_sf(100_000, 100_000, 0.5, 0.5) == pytest.approx(end, rel=1e-9)


@pytest.mark.parametrize(("a", "b"), [(0.0, 1.0), (1.0, -1.0)])
def test_beta_binomial_needs_positive_parameters(a: float, b: float) -> None:
    with pytest.raises(ValueError, match="a, b > 0"):
        beta_binomial_sf(1, 2, a, b)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_binomial_needs_a_share_inside_zero_one(p: float) -> None:
    with pytest.raises(ValueError, match="0 < p < 1"):
        binomial_sf(1, 2, p)
