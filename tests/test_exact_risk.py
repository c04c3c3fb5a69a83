"""The exact R_N of the MMN problems (docs/math.md §4): SingleIndexRamp.exact_risk, which sums the pairs with
mfdyn.pair_kernel.pair_energy, against an independent reference, in every way particles/engine.py calls it.

The reference builds every pair's E σ(aX)σ(bY) on its own: Mehler's series for |c| ≤ 0.5 and the quadrature
conditioned on X (gaussian.pair_expectation, accurate to ~1e−11 while 1 − |c| ≥ ADAPTIVE_BELOW), adaptive
quadrature with the boundary layers split off below that, and the closed-form second moment on the diagonal.
The clouds have nearly parallel (1 − c down to 1e−8) and antiparallel partners, exact copies and a tiny particle.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad

from mfdyn.config import load_config
from mfdyn.gaussian import npdf, pair_expectation, q, ramp_mean, ramp_second_moment
from mfdyn.problems import make_problem
from mfdyn.problems.single_index import CLASSES

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"iso": ROOT / "configs/mmn_isotropic.toml", "aniso": ROOT / "configs/mmn_anisotropic.toml"}
ADAPTIVE_BELOW = 0.03        # 1 − |c| where gaussian.pair_expectation's fixed quadrature drops below 1e−11
CASES = [pytest.param("iso", ("problem.d=3",), marks=pytest.mark.slow),          # ~20 s: many adaptive pairs
         pytest.param("aniso", ("problem.d=5", "problem.s0=2"), marks=pytest.mark.slow),
         ("iso", ()), ("aniso", ("problem.d=320", "problem.s0=40"))]


def adaptive_pair(ramp, a: float, b: float, c: float) -> float:
    """E σ(aX)σ(bY) = ∫ σ(ax) E[σ(bY) | x] φ(x) dx by adaptive quadrature, split at the kinks and around the
    boundary layers of width ~√(1 − c²) at the limit's kinks."""
    s = np.sqrt(max(1.0 - c * c, 0.0))
    f = lambda x: float(ramp(a * x) * ramp_mean(ramp, b * c * x, b * s) * npdf(x))
    kinks = [ramp.t1 / a, ramp.t2 / a, ramp.t1 / (b * c), ramp.t2 / (b * c)]
    layers = (p + g * s * k for p in kinks[2:] for k in (1, 4, 16) for g in (-1, 1))
    edges = sorted({-12.0, 12.0, *(min(max(p, -12.0), 12.0) for p in (*kinks, *layers))})
    return sum(quad(f, lo, hi, epsabs=1e-15, epsrel=1e-14, limit=200)[0] for lo, hi in zip(edges, edges[1:]))


def reference_parts(problem, theta: np.ndarray, theta0: np.ndarray | None) -> tuple[float, float]:
    """(L, E) with R_α = 1 − α L + α² E: L = Σ_y y Σ_i c_i q(τ_yi), E = Σ_y ½ Σ_ij c_i c_j P_y,ij, pair by pair
    (module docstring)."""
    n = len(theta)
    points = theta if theta0 is None else np.concatenate([theta, theta0])
    coeff = np.full(n, 1.0 / n) if theta0 is None else np.r_[np.full(n, 1.0 / n), np.full(n, -1.0 / n)]
    ramp, linear, energy = problem.ramp, 0.0, 0.0
    for y in CLASSES:
        scaled = points * problem.class_scale(y)
        tau = np.linalg.norm(scaled, axis=1)
        unit = scaled / np.where(tau > 0, tau, 1.0)[:, None]
        cos = np.clip(unit @ unit.T, -1.0, 1.0)
        i, j = np.triu_indices(len(points), k=1)
        pairs = pair_expectation(ramp, tau[i], tau[j], cos[i, j])
        for k in np.nonzero((1.0 - np.abs(cos[i, j]) < ADAPTIVE_BELOW) & (tau[i] > 0) & (tau[j] > 0))[0]:
            pairs[k] = adaptive_pair(ramp, tau[i[k]], tau[j[k]], cos[i[k], j[k]])
        gram = 2.0 * np.sum(coeff[i] * coeff[j] * pairs) + np.sum(coeff**2 * ramp_second_moment(ramp, tau))
        linear += y * (coeff @ q(ramp, tau))
        energy += 0.5 * gram
    return float(linear), float(energy)


def awkward_cloud(problem, n: int, rng: np.random.Generator) -> np.ndarray:
    """ρ_0 with radii spread ×0.5..2, partners of θ_0 at 1 − c ~ 1e−2 .. 1e−8 (same and other radii), antiparallel
    ones, an exact copy, a negative and a tiny particle."""
    theta = problem.sample_initial(n, rng) * rng.uniform(0.5, 2.0, (n, 1))
    d = problem.dim
    for k, eps in enumerate((1e-1, 1e-2, 1e-3, 1e-4)):
        theta[1 + k] = theta[0] * (1.0 + 0.2 * k) + eps * np.linalg.norm(theta[0]) / np.sqrt(d) * rng.standard_normal(d)
        theta[5 + k] = -theta[0] * (0.6 + 0.3 * k) + eps * np.linalg.norm(theta[0]) / np.sqrt(d) * rng.standard_normal(d)
    theta[9], theta[10], theta[11] = theta[12], -theta[13], 1e-3 * theta[11]
    return theta


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize("which,overrides", CASES)
def test_exact_risk_matches_the_independent_reference(which, overrides):
    """exact_risk(θ), exact_risk(θ, α) and exact_risk(θ, α, θ_0) (particles/engine.py::cloud_snapshot's calls) to
    1e−9 of R on a cloud whose nearly parallel pairs the old conditional quadrature got wrong by up to ~4e−5."""
    problem = problem_of(which, *overrides)
    rng = np.random.default_rng(17)
    theta = awkward_cloud(problem, 24, rng)
    theta0 = theta + 0.3 * np.linalg.norm(theta, axis=1, keepdims=True) * rng.standard_normal(theta.shape)
    parts = {None: reference_parts(problem, theta, None), "centred": reference_parts(problem, theta, theta0)}
    for alpha, start in ((1.0, None), (3.0, None), (1.0, theta0), (4.0, theta0)):
        linear, energy = parts[None if start is None else "centred"]
        reference = 1.0 - alpha * linear + alpha**2 * energy
        ours = problem.exact_risk(theta) if alpha == 1.0 and start is None else problem.exact_risk(theta, alpha, start)
        assert ours == pytest.approx(reference, rel=1e-9, abs=0)


def test_the_old_quadrature_is_wrong_where_the_reference_switches_to_adaptive():
    """The reference is needed: at 1 − c = 1e−4 the fixed quadrature conditioned on X is off by > 1e−6, and the
    exact risk sees the difference on a cloud with such a pair (so the test above can tell the two apart)."""
    problem = problem_of("iso", "problem.d=3")
    a, b, c = 1.2, 0.9, 1.0 - 1e-4
    assert abs(pair_expectation(problem.ramp, a, b, c) - adaptive_pair(problem.ramp, a, b, c)) > 1e-6


def problem_of(which: str, *overrides: str):
    return make_problem(load_config(CONFIGS[which], list(overrides)))
