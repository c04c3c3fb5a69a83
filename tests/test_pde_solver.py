"""The 1-D solver on MMN isotropic: positivity, mass, monotone risk, exact save times, convergence (docs/math.md §5)."""
from __future__ import annotations

import numpy as np
import pytest

from mfdyn.config import InitConfig
from mfdyn.problems.mmn_isotropic import MMNIsotropic, MMNIsotropicParams
from pde import Grid, PotentialOperator, solve


def setup(delta, cells, bounds=(0.0, 8.0), reduction="exact", lam=0.0):
    problem = MMNIsotropic(MMNIsotropicParams(delta=delta, reduction=reduction), InitConfig())
    grid = Grid((bounds,), (cells,), ("r",))
    op = PotentialOperator(problem.grid_model(grid.centres), grid, lam)
    return grid, op, problem.initial_cell_averages(grid.edges)


@pytest.mark.parametrize("delta,t_end", [(0.2, 20.0), (0.8, 10.0)])
def test_positive_conservative_and_risk_decreasing(delta, t_end):
    """Through the collapse onto one radius (Δ = 0.2) and the mass left near r = 0 (Δ = 0.8)."""
    grid, op, rho0 = setup(delta, 400)
    times = list(np.linspace(0.0, t_end, 41))
    states = list(solve(op, rho0, times, xi=1.0))
    mass0 = grid.integrate(rho0)
    risks = np.array([op.risk(s.rho) for s in states])
    for s in states:
        assert s.rho.min() >= 0.0
        assert abs(grid.integrate(s.rho) - mass0) <= 1e-12 * mass0
    assert np.all(np.diff(risks) <= 1e-14), np.diff(risks).max()
    free = np.array([op.free_energy(s.rho) for s in states])
    np.testing.assert_allclose(free, 0.5 * risks)          # λ = 0, β = ∞
    final = states[-1].rho
    mass_cdf = np.cumsum(final) * grid.widths[0]
    if delta == 0.2:   # collapse: 90% of the mass within 0.1 of one radius
        assert final.max() > 5 * rho0.max()
        lo, hi = np.searchsorted(mass_cdf, [0.05, 0.95])
        assert grid.centres[0][hi] - grid.centres[0][lo] < 0.1
    else:              # spread: 5% of the mass stays below r = 0.2, the median moves out past 3.5
        assert mass_cdf[np.searchsorted(grid.centres[0], 0.2)] > 0.05
        assert grid.centres[0][np.searchsorted(mass_cdf, 0.5)] > 3.5


def test_states_land_exactly_on_save_times():
    grid, op, rho0 = setup(0.8, 100)
    times = [0.0, 0.013, 0.5, 0.5 + 1e-3, 1.0]
    got = [s.t for s in solve(op, rho0, times, xi=1.0)]
    assert got == times


def test_weight_decay_lowers_the_radii_and_dissipates_free_energy():
    grid, op, rho0 = setup(0.8, 200, lam=0.5)
    _, op0, _ = setup(0.8, 200)
    states = list(solve(op, rho0, [0.0, 0.5, 1.0, 2.0], xi=1.0))
    free = [op.free_energy(s.rho) for s in states]
    assert np.all(np.diff(free) < 0)
    plain = list(solve(op0, rho0, [2.0], xi=1.0))[0]
    r = grid.centres[0]
    assert grid.integrate(states[-1].rho * r) < grid.integrate(plain.rho * r)


def test_xi_rescales_time():
    """ξ only sets the speed: ξ = 2 at t equals ξ = 1 at 2t (up to the dt sequence)."""
    grid, op, rho0 = setup(0.8, 200)
    fast = list(solve(op, rho0, [0.5], xi=2.0))[0].rho
    slow = list(solve(op, rho0, [1.0], xi=1.0))[0].rho
    assert np.abs(fast - slow).sum() * grid.widths[0] < 1e-3


@pytest.mark.slow
def test_grid_convergence_of_the_risk():
    """Observed order of R(t) under refinement ≥ 1.8, and the shipped grid meets the 1e−3 bar at t = 10."""
    risks = {}
    for cells in (400, 800, 1600, 3200):
        grid, op, rho0 = setup(0.8, cells)
        risks[cells] = np.array([op.risk(s.rho) for s in solve(op, rho0, [2.0, 5.0, 10.0], xi=1.0)])
    d1 = np.abs(risks[800] - risks[1600])
    d2 = np.abs(risks[1600] - risks[3200])
    orders = np.log2(d1 / d2)
    assert np.all(orders > 1.8), orders
    assert d2[-1] < 1e-3          # shipped config: 1600 cells; doubling moves R(10) by < 1e−3


def _ou(beta, shape=(40, 36)):
    from mfdyn.problems.linear_flows import OrnsteinUhlenbeck

    problem = OrnsteinUhlenbeck(OrnsteinUhlenbeck.Params(stiffness=(1.0, 0.5)), InitConfig(mean=(0.3, -0.2)))
    grid = Grid(((-2.6, 2.6), (-2.6, 2.6)), shape, problem.coords)
    return PotentialOperator(problem.grid_model(grid.centres), grid, beta=beta), problem.initial_cell_averages(grid.edges)


def test_potential_knows_when_it_does_not_depend_on_rho():
    from mfdyn.problems.linear_flows import QuadraticInteraction

    assert not _ou(10.0)[0].depends_on_rho and not _ou(np.inf)[0].depends_on_rho
    _, op, _ = setup(0.8, 50)
    assert op.depends_on_rho                                   # MMN: interaction through the features
    problem = QuadraticInteraction(QuadraticInteraction.Params(stiffness=(0.5, 0.0)), InitConfig(mean=(0.4, -0.3)))
    grid = Grid(((-2.5, 3.0), (-3.0, 2.5)), (10, 10), problem.coords)
    assert PotentialOperator(problem.grid_model(grid.centres), grid, beta=5.0).depends_on_rho


@pytest.mark.parametrize("beta,stepper", [(10.0, "explicit"), (np.inf, "explicit"), (10.0, "implicit")])
def test_frozen_potential_gives_the_same_solve_as_recomputing_it(beta, stepper, monkeypatch):
    """Without interaction the solver computes ζ or the SG weights (and the implicit LU) once; recomputing
    them every stage, as with interaction, must give the same states bit for bit."""
    op, rho0 = _ou(beta)
    times = [0.05, 0.1, 0.3]
    frozen = list(solve(op, rho0, times, xi=0.5, stepper=stepper, dt=0.02))
    monkeypatch.setattr(PotentialOperator, "depends_on_rho", property(lambda self: True))
    fresh = list(solve(op, rho0, times, xi=0.5, stepper=stepper, dt=0.02))
    assert [s.steps for s in frozen] == [s.steps for s in fresh] and frozen[-1].steps > 5
    for a, b in zip(frozen, fresh):
        np.testing.assert_array_equal(a.rho, b.rho)
