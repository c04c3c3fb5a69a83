"""MMN isotropic (docs/math.md §3.1, §4): reduced potential, kernel and exact risk against full-space sampling."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mfdyn.config import InitConfig
from mfdyn.problems.mmn_isotropic import MMNIsotropic, MMNIsotropicParams
from pde import Grid, PotentialOperator


def mc_risk(problem, theta, n_samples, rng, chunk=20000):
    """Monte Carlo E (y − ŷ(x))² with its standard error, in full w-space."""
    losses = []
    for _ in range(n_samples // chunk):
        x, y = problem.sample_data(chunk, rng)
        yhat = problem.ramp(x @ theta.T).mean(axis=1)
        losses.append((y - yhat) ** 2)
    losses = np.concatenate(losses)
    return losses.mean(), losses.std() / math.sqrt(losses.size)


def test_potential_matches_full_space_sampling(iso, rng):
    w = rng.standard_normal(40)
    w *= 1.3 / np.linalg.norm(w)
    x, y = iso.sample_data(1_000_000, rng)
    sample = -y * iso.ramp(x @ w)
    assert abs(iso.potential(np.array([1.3]))[0] - sample.mean()) < 4 * sample.std() / 1000


def test_reduced_kernel_is_the_direction_average(rng):
    """u_d(r, r') = E over a uniform direction of U(w, w'): compare with sampling w' on the sphere."""
    problem = MMNIsotropic(MMNIsotropicParams(d=5), InitConfig())
    r, r2 = 1.2, 0.7
    feats = problem.kernel_features(np.array([r, r2]))
    u_reduced = feats[:, 0] @ feats[:, 1]
    e = np.zeros(5)
    e[0] = 1.0
    x, y = problem.sample_data(400_000, rng)
    u = rng.standard_normal((x.shape[0], 5))
    u /= np.linalg.norm(u, axis=1)[:, None]
    sample = problem.ramp(r * x[:, 0]) * problem.ramp(r2 * np.einsum("ij,ij->i", x, u))
    assert abs(u_reduced - sample.mean()) < 4 * sample.std() / math.sqrt(x.shape[0])


def test_kernel_truncation_is_below_tolerance(iso):
    """Adding the next even terms to u_d changes it by less than 1e−9 anywhere on the grid."""
    from mfdyn.gaussian import hermite_coefficients, sphere_cosine_moments

    r = np.linspace(0.0025, 8, 400)
    feats = iso.kernel_features(r)
    kmax = 2 * (feats.shape[0] // 2 - 1)
    extra = 0.0
    moments = sphere_cosine_moments(40, kmax + 40)
    for tau in iso.taus:
        h = hermite_coefficients(iso.ramp, tau * r, kmax + 40)
        extra += 0.5 * np.sum(moments[kmax + 2::2, None] * h[kmax + 2::2] ** 2, axis=0)
    assert extra.max() < 1e-9
    assert kmax >= 10                  # d = 40 needs the k ≥ 2 terms: 1.68 vs 1.71 below


def test_initial_risk_values_of_math_section_3_1():
    """R(ρ_0) at d = 40 is 1.68 with u_∞ and about 1.71 with u_40 (docs/math.md §3.1)."""
    risks = {}
    for reduction in ("d_infinity", "exact"):
        problem = MMNIsotropic(MMNIsotropicParams(reduction=reduction), InitConfig())
        grid = Grid(((0.0, 8.0),), (1600,), ("r",))
        op = PotentialOperator(problem.grid_model(grid.centres), grid)
        risks[reduction] = op.risk(problem.initial_cell_averages(grid.edges))
    assert risks["d_infinity"] == pytest.approx(1.68, abs=0.005)
    assert risks["exact"] == pytest.approx(1.71, abs=0.01)
    assert risks["exact"] > risks["d_infinity"] + 0.02


def test_exact_risk_matches_monte_carlo(iso, rng):
    """R_N(θ) in closed form against sampling (y − ŷ)², with some near-parallel neurons (|c| > 0.5)."""
    theta = iso.sample_initial(60, rng)
    theta[1] = 1.7 * theta[0] + 0.05 * rng.standard_normal(40)   # c ≈ 1
    theta[2] = -0.9 * theta[3] + 0.2 * rng.standard_normal(40)   # c ≈ −0.9
    theta[4] = 0.0                                                 # r = 0
    estimate, err = mc_risk(iso, theta, 2_000_000, rng)
    assert abs(iso.exact_risk(theta) - estimate) < 4 * err


def test_expected_particle_risk_is_pde_risk_plus_finite_n_term(iso):
    """For iid θ_i ~ ρ_0: E R_N = R(ρ_0) + (∫U(θ,θ)dρ − ∬U dρdρ)/N (docs/math.md §1)."""
    n, draws = 20, 300
    rng = np.random.default_rng(1)
    risks = np.array([iso.exact_risk(iso.sample_initial(n, rng)) for _ in range(draws)])
    grid = Grid(((0.0, 8.0),), (1600,), ("r",))
    op = PotentialOperator(iso.grid_model(grid.centres), grid)
    rho0 = iso.initial_cell_averages(grid.edges)
    predicted = op.risk(rho0) + op.finite_n_term(rho0) / n
    assert op.finite_n_term(rho0) / n > 0.1                      # the term is large at N = 20 ...
    assert abs(risks.mean() - predicted) < 4 * risks.std() / math.sqrt(draws)   # ... and it is right


def test_initial_cell_averages_are_the_chi_law(iso):
    grid = Grid(((0.0, 8.0),), (800,), ("r",))
    rho0 = iso.initial_cell_averages(grid.edges)
    assert grid.integrate(rho0) == pytest.approx(1.0, abs=1e-13)
    mean_r = grid.integrate(rho0 * grid.centres[0])
    exact = 0.8 * math.sqrt(2 / 40) * math.exp(math.lgamma(20.5) - math.lgamma(20))   # κ E χ_d / √d
    assert mean_r == pytest.approx(exact, abs=1e-5)


def test_config_check_rejects_reversed_ramp():
    errors = MMNIsotropic.check(MMNIsotropicParams(t1=2.0, t2=1.0), InitConfig())
    assert errors and errors[0].startswith("problem.t2")
