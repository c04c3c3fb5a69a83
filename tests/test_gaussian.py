"""Closed forms of docs/math.md §3.1 and §4 against adaptive quadrature and Monte Carlo."""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermeval
from scipy.integrate import quad

from mfdyn.gaussian import (
    MEHLER_TERMS,
    Ramp,
    hermite_coefficients,
    mehler_sum,
    npdf,
    pair_expectation,
    pair_expectation_quadrature,
    q,
    ramp_mean,
    ramp_second_moment,
    sphere_cosine_moments,
)

RAMP = Ramp()
OTHER = Ramp(t1=-0.3, t2=0.9, s1=0.4, s2=-1.1)   # kinks on both sides of 0, decreasing


def gauss_quad(fun, kinks):
    """∫ fun(g) φ(g) dg, split at the kinks of the integrand."""
    pts = sorted(k for k in kinks if -14 < k < 14)
    return quad(lambda g: fun(g) * npdf(g), -14, 14, points=pts, limit=400, epsabs=1e-12, epsrel=1e-10)[0]


@pytest.mark.parametrize("ramp", [RAMP, OTHER])
@pytest.mark.parametrize("s", [0.05, 0.4, 1.0, 2.7, 9.0])
def test_q_and_second_moment_match_quadrature(ramp, s):
    kinks = [ramp.t1 / s, ramp.t2 / s]
    assert q(ramp, s) == pytest.approx(gauss_quad(lambda g: ramp(s * g), kinks), abs=1e-12)
    assert ramp_second_moment(ramp, s) == pytest.approx(gauss_quad(lambda g: ramp(s * g) ** 2, kinks), abs=1e-11)


def test_ramp_mean_matches_quadrature():
    for mu, nu in [(0.3, 0.7), (-1.0, 2.0), (2.0, 0.1), (0.7, 0.0)]:
        expected = gauss_quad(lambda g: RAMP(mu + nu * g), [(RAMP.t1 - mu) / max(nu, 1e-300),
                                                            (RAMP.t2 - mu) / max(nu, 1e-300)])
        assert ramp_mean(RAMP, mu, nu) == pytest.approx(expected, abs=1e-11)


@pytest.mark.parametrize("ramp", [RAMP, OTHER])
@pytest.mark.parametrize("a", [0.2, 0.9, 3.0])
def test_hermite_coefficients_match_quadrature(ramp, a):
    kmax = 14
    h = hermite_coefficients(ramp, np.array(a), kmax)
    for k in range(kmax + 1):
        coef = np.zeros(k + 1)
        coef[k] = 1.0
        expected = gauss_quad(lambda g: ramp(a * g) * hermeval(g, coef), [ramp.t1 / a, ramp.t2 / a])
        assert h[k] == pytest.approx(expected / math.sqrt(math.factorial(k)), abs=1e-11)


def test_hermite_coefficients_at_zero_radius():
    h = hermite_coefficients(RAMP, np.array([0.0, 1e-9]), 6)
    assert h[0, 0] == RAMP(0.0) and np.all(h[1:, 0] == 0.0)
    np.testing.assert_allclose(h[:, 1], h[:, 0], atol=1e-12)   # continuous at a = 0


def test_parseval_on_the_diagonal():
    """Σ_k ĥ_k² = E σ(aG)² (Mehler at c = 1): ties the coefficients to the second moment."""
    a = np.array([0.3, 1.1])
    h = hermite_coefficients(RAMP, a, 3000)
    np.testing.assert_allclose((h**2).sum(axis=0), ramp_second_moment(RAMP, a), rtol=2e-4)


@pytest.mark.parametrize("c", [-0.5, -0.2, 0.1, 0.35, 0.5])
def test_mehler_and_quadrature_agree_at_moderate_correlation(c):
    a, b = np.array([0.3, 0.8, 2.0]), np.array([1.4, 0.9, 0.6])
    mehler = mehler_sum(hermite_coefficients(RAMP, a, MEHLER_TERMS), hermite_coefficients(RAMP, b, MEHLER_TERMS), c)
    np.testing.assert_allclose(mehler, pair_expectation_quadrature(RAMP, a, b, c), atol=1e-10)


@pytest.mark.parametrize("c", [0.75, -0.9, 0.99])
def test_pair_expectation_matches_monte_carlo(c):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(2_000_000)
    y = c * x + math.sqrt(1 - c * c) * rng.standard_normal(x.size)
    sample = RAMP(0.8 * x) * RAMP(1.1 * y)
    err = sample.std() / math.sqrt(x.size)
    assert abs(pair_expectation(RAMP, 0.8, 1.1, c) - sample.mean()) < 4 * err


def test_pair_expectation_tends_to_second_moment():
    assert pair_expectation(RAMP, 1.3, 1.3, 1 - 1e-7) == pytest.approx(ramp_second_moment(RAMP, 1.3), abs=1e-4)
    assert pair_expectation(RAMP, 1.3, 0.7, 0.0) == pytest.approx(q(RAMP, 1.3) * q(RAMP, 0.7), abs=1e-13)


def test_sphere_cosine_moments_match_monte_carlo():
    d = 7
    rng = np.random.default_rng(3)
    u = rng.standard_normal((400_000, d))
    c = u[:, 0] / np.linalg.norm(u, axis=1)
    moments = sphere_cosine_moments(d, 6)
    for k in range(7):
        sample = c**k
        assert abs(moments[k] - sample.mean()) < 5 * sample.std() / math.sqrt(c.size) + 1e-15


def test_ramp_rejects_reversed_kinks():
    with pytest.raises(ValueError, match="t1 < t2"):
        Ramp(t1=1.0, t2=0.5)


def test_offdiagonal_mehler_kernel_matches_numpy_twin():
    from mfdyn.gaussian import mehler_offdiagonal_sum, mehler_offdiagonal_sum_numpy

    rng = np.random.default_rng(11)
    w = rng.standard_normal((60, 6))
    unit = w / np.linalg.norm(w, axis=1)[:, None]
    cos = np.ascontiguousarray(unit @ unit.T)
    h = np.ascontiguousarray(hermite_coefficients(RAMP, rng.uniform(0, 3, 60), MEHLER_TERMS))
    kernel = mehler_offdiagonal_sum(h, cos, 0.5)
    twin = mehler_offdiagonal_sum_numpy(h, cos, 0.5)
    assert np.sum(np.abs(np.triu(cos, 1)) > 0.5) > 50          # both branches are exercised
    assert kernel == pytest.approx(twin, rel=1e-12)
