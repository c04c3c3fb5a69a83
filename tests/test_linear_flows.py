"""Ornstein–Uhlenbeck and quadratic-interaction problems (docs/math.md §6): feature form, particles, exact law."""
from __future__ import annotations

import numpy as np
import pytest

from mfdyn.config import InitConfig, load_config
from mfdyn.problems.linear_flows import OrnsteinUhlenbeck, QuadraticInteraction, profile_cdf, sample_profile
from particles import run_sgd
from pde import Grid, PotentialOperator, solve


def make(cls, stiffness, mean, profile="gaussian", kappa=0.4):
    return cls(cls.Params(stiffness=stiffness, profile=profile), InitConfig(kappa=kappa, mean=mean))


def test_quadratic_features_are_half_the_squared_distance(rng):
    problem = make(QuadraticInteraction, (0.0, 0.3, 1.0), (0.1, 0.2, 0.3))
    pts = [rng.uniform(-1, 1, 5) for _ in range(3)]
    model = problem.grid_model(pts)
    theta = np.stack(np.meshgrid(*pts, indexing="ij"), axis=-1).reshape(-1, 3)
    u = (model.features.T * model.weights) @ model.features
    exact = 0.5 * ((theta[:, None, :] - theta[None, :, :]) ** 2).sum(axis=-1)
    np.testing.assert_allclose(u, exact, atol=1e-12)


def test_exact_risk_is_the_double_sum(rng):
    problem = make(QuadraticInteraction, (0.5, 0.2), (0.0, 0.0))
    theta = rng.standard_normal((30, 2))
    pair = 0.5 * ((theta[:, None] - theta[None]) ** 2).sum(axis=-1).mean()
    assert problem.exact_risk(theta) == pytest.approx(2 * problem.potential(theta).mean() + pair, rel=1e-12)


@pytest.mark.parametrize("profile", ["gaussian", "bump"])
def test_profile_cdf_and_sampler_agree(profile, rng):
    draws = sample_profile(profile, (50_000,), rng)
    for u in (-1.5, -0.3, 0.0, 0.8, 2.0):
        p = profile_cdf(profile, np.array(u))
        assert abs(np.mean(draws <= u) - p) < 4 * np.sqrt(p * (1 - p) / draws.size) + 1e-12
    assert profile_cdf(profile, np.array(-50.0)) == 0.0 and profile_cdf(profile, np.array(50.0)) == 1.0


@pytest.mark.parametrize("cls,rate_extra", [(OrnsteinUhlenbeck, 0.0), (QuadraticInteraction, 1.0)])
def test_particles_follow_the_exact_affine_law(cls, rate_extra):
    """Euler steps of a linear drift contract exactly by (1 − 2εξ·rate) per step: the mean at
    rate K + λ, the spread at K + λ (+1 with the interaction); and that tends to docs/math.md §6's e^{−2ξ·rate·t}."""
    problem = make(cls, (1.0, 0.5), (0.3, -0.2))
    xi, lam, t, eps = 0.5, 0.2, 1.0, 1e-4
    theta0, theta1 = [s.theta for s in run_sgd(problem, 2000, eps, xi, lam, 1, 0, [0.0, t])]
    steps = round(t / eps)
    rate_mean = problem.stiffness + lam
    rate_spread = rate_mean + rate_extra
    np.testing.assert_allclose(theta1.mean(axis=0), theta0.mean(axis=0) * (1 - 2 * eps * xi * rate_mean) ** steps,
                               rtol=1e-10)
    np.testing.assert_allclose(theta1.std(axis=0), theta0.std(axis=0) * (1 - 2 * eps * xi * rate_spread) ** steps,
                               rtol=1e-10)
    centre, scale = problem.affine_law(t, xi, lam)
    np.testing.assert_allclose(centre, problem.mean0 * np.exp(-2 * xi * rate_mean * t), rtol=1e-14)
    np.testing.assert_allclose(scale, 0.4 * np.exp(-2 * xi * rate_spread * t), rtol=1e-14)
    # the particles' contraction of mean and spread against the closed form (affine_law's centre, scale):
    # Euler's (1 − εa)^(t/ε) = e^{−at}(1 − a²εt/2 + O(a³ε²t)), a = 2ξ·rate: the first-order bias, to 0.1%
    # (the next term is ~aε = 2e-4 of it); one step more or less would be off by aε ~ the bias itself
    for observed, exact, rate in ((theta1.mean(axis=0) / theta0.mean(axis=0), centre / problem.mean0, rate_mean),
                                  (theta1.std(axis=0) / theta0.std(axis=0), scale / 0.4, rate_spread)):
        bias = 0.5 * (2 * xi * rate) ** 2 * eps * t
        np.testing.assert_allclose(observed / exact, 1 - bias, rtol=1e-3 * bias.max())


def test_quadratic_interaction_conserves_the_mean_to_second_order():
    """The PDE conserves the mean; the upwind scheme does up to O(h²): the drift falls 4× per refinement."""
    problem = make(QuadraticInteraction, (0.0, 0.0), (0.3, -0.2), profile="bump")
    drifts = []
    for cells in (32, 64, 128):
        grid = Grid(problem.default_bounds(), (cells, cells), problem.coords)
        op = PotentialOperator(problem.grid_model(grid.centres), grid)
        states = list(solve(op, problem.initial_cell_averages(grid.edges), [0.0, 1.0], 1.0))
        mesh = grid.mesh()
        means = np.array([[grid.integrate(s.rho.ravel() * m) for m in mesh] for s in states])
        drifts.append(np.abs(means[1] - means[0]).max())
    orders = np.log2(np.array(drifts[:-1]) / np.array(drifts[1:]))
    assert np.all(orders > 1.8), (drifts, orders)
    assert drifts[-1] < 2e-5


def test_init_mean_must_match_the_dimension():
    text = '[problem]\nname = "ornstein_uhlenbeck"\nstiffness = [1.0, 2.0]\n[init]\nmean = [0.1]\n[dynamics]\nt_end = 1.0\n'
    with pytest.raises(ValueError, match="init.mean: must have 2 entries"):
        load_config(text, from_text=True)
    with pytest.raises(ValueError, match="init.mean: not used by mmn_isotropic"):
        load_config('[problem]\nname = "mmn_isotropic"\n[init]\nmean = [0.1]\n[dynamics]\nt_end = 1.0\n',
                    from_text=True)
