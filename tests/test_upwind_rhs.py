"""The fused noiseless right-hand side (pde/upwind_rhs.py): the unfused path's bits, its NumPy twin's values."""
from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from mfdyn.config import InitConfig
from mfdyn.grid import Grid
from mfdyn.problems.linear_flows import OrnsteinUhlenbeck, QuadraticInteraction
from mfdyn.problems.mmn_anisotropic import MMNAnisotropic
from mfdyn.problems.mmn_isotropic import MMNIsotropic, MMNIsotropicParams
from pde.potential import PotentialOperator
from pde.solve import solve
from pde.upwind import flux_divergence
from pde.upwind_rhs import interaction_rhs, interaction_rhs_numpy


def _operators():
    """(name, operator, ρ_0) on 1-D and 2-D grids, with and without the centred model's reference."""
    iso = MMNIsotropic(MMNIsotropicParams(d=10), InitConfig())
    grid = Grid(((0.0, 4.0),), (120,), ("r",))
    rho0 = iso.initial_cell_averages(grid.edges)
    yield "mmn_isotropic", PotentialOperator(iso.grid_model(grid.centres), grid, lam=0.1), rho0
    yield "centred", PotentialOperator(iso.grid_model(grid.centres), grid, alpha=4.0, reference=rho0), rho0
    aniso = MMNAnisotropic(MMNAnisotropic.Params(d=10, s0=3), InitConfig())
    grid2 = Grid(((0.0, 3.0), (0.0, 3.0)), (24, 30), ("r1", "r2"))
    yield "mmn_anisotropic", PotentialOperator(aniso.grid_model(grid2.centres), grid2), \
        aniso.initial_cell_averages(grid2.edges)
    quad = QuadraticInteraction(QuadraticInteraction.Params(stiffness=(0.5, 0.2)), InitConfig(mean=(0.4, -0.3)))
    grid3 = Grid(((-2.5, 3.0), (-3.0, 2.5)), (18, 22), quad.coords)
    yield "quadratic_interaction", PotentialOperator(quad.grid_model(grid3.centres), grid3), \
        quad.initial_cell_averages(grid3.edges)


CASES = list(_operators())


def unfused(op: PotentialOperator, xi: float, rho: np.ndarray, out: np.ndarray) -> float:
    """The unfused path pde.solve takes without interaction_rhs: ζ = 2ξΨ_λ[ρ], the flux divergence, the bound."""
    amax = flux_divergence(rho, 2.0 * xi * op.psi(rho), op.grid.widths, out)
    with np.errstate(divide="ignore"):
        return float(np.min(op.grid.widths / (2.0 * op.grid.ndim * amax)))


def _perturbed(rho0: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rho0 * (1.0 + 0.5 * rng.random(rho0.shape)) + 1e-3 * rng.random(rho0.shape)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fused_rhs_gives_the_unfused_bits(case):
    _, op, rho0 = case
    rhs = interaction_rhs(op, 0.7)
    assert rhs is not None
    for seed in range(3):
        rho = _perturbed(rho0, seed)
        got, want = np.full(rho.shape, np.nan), np.full(rho.shape, np.nan)
        bound = rhs(rho, got)
        assert bound == unfused(op, 0.7, rho, want)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fused_rhs_matches_its_numpy_twin(case):
    _, op, rho0 = case
    rho = _perturbed(rho0, 7)
    got, want = np.empty(rho.shape), np.empty(rho.shape)
    bound = interaction_rhs(op, 1.3)(rho, got)
    assert bound == pytest.approx(interaction_rhs_numpy(op, 1.3, rho, want), rel=1e-12)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())
    assert abs(got.sum()) <= 1e-12 * np.abs(got).sum()          # zero-flux boundaries: mass is conserved


def test_fused_rhs_on_a_still_or_broken_state_is_the_unfused_one():
    """No motion (ζ constant: zero-flux, bound inf) and a NaN cell (whatever the unfused path says, NaN or not)."""
    problem = QuadraticInteraction(QuadraticInteraction.Params(stiffness=(0.0,)), InitConfig(mean=(0.0,)))
    grid = Grid(((-2.0, 2.0),), (40,), problem.coords)
    op = PotentialOperator(problem.grid_model(grid.centres), grid)
    rho = np.zeros(grid.shape)                        # ∇Ψ = θ − μ ≠ 0, but no mass to move: the flux is 0
    got, want = np.empty(grid.shape), np.empty(grid.shape)
    assert interaction_rhs(op, 1.0)(rho, got) == unfused(op, 1.0, rho, want)
    np.testing.assert_array_equal(got, want)
    _, op, rho0 = CASES[0]
    bad = rho0.copy()
    bad[5] = np.nan
    got, want = np.empty(bad.shape), np.empty(bad.shape)
    fused_bound, bound = interaction_rhs(op, 1.0)(bad, got), unfused(op, 1.0, bad, want)
    assert fused_bound == bound or (math.isnan(fused_bound) and math.isnan(bound))
    np.testing.assert_array_equal(got, want)


def test_no_fused_rhs_where_psi_does_not_depend_on_rho():
    problem = OrnsteinUhlenbeck(OrnsteinUhlenbeck.Params(stiffness=(1.0,)), InitConfig())
    grid = Grid(((-3.0, 3.0),), (50,), problem.coords)
    assert interaction_rhs(PotentialOperator(problem.grid_model(grid.centres), grid), 1.0) is None


@pytest.mark.parametrize("case", CASES[:3], ids=[c[0] for c in CASES[:3]])
def test_a_solve_is_bit_identical_with_and_without_the_fused_rhs(case, monkeypatch):
    _, op, rho0 = case
    fused = list(solve(op, rho0, [0.05, 0.1], xi=1.0))
    solve_module = importlib.import_module("pde.solve")      # not pde.solve, the function pde/__init__ exports
    monkeypatch.setattr(solve_module, "interaction_rhs", lambda op, xi: None)
    plain = list(solve(op, rho0, [0.05, 0.1], xi=1.0))
    for a, b in zip(fused, plain):
        assert (a.t, a.steps, a.rejected, a.dt_next) == (b.t, b.steps, b.rejected, b.dt_next)
        np.testing.assert_array_equal(a.rho, b.rho)
    assert fused[-1].steps > 5


def test_expand_kernel_sums_each_column_in_its_documented_order():
    """expand (Ψ = V + Φᵀg) gives, bit for bit, base + Σ over groups of eight rows of ((four products) + (four)),
    then the remaining rows one by one, in this order, whatever the vectorisation across columns (both builds)."""
    from pde.potential import expand_parallel, expand_serial

    rng = np.random.default_rng(11)
    for k, m in [(19, 37), (8, 5000), (27, 4099)]:
        phi, g, base = rng.standard_normal((k, m)), rng.standard_normal(k), rng.standard_normal(m)
        want = np.empty(m)
        for c in range(m):
            acc, row = float(base[c]), 0
            while row + 8 <= k:
                p = [float(g[row + j]) * float(phi[row + j, c]) for j in range(8)]
                acc += ((p[0] + p[1] + p[2] + p[3]) + (p[4] + p[5] + p[6] + p[7]))
                row += 8
            for j in range(row, k):
                acc += float(g[j]) * float(phi[j, c])
            want[c] = acc
        for kernel in (expand_serial, expand_parallel):
            got = np.empty(m)
            kernel(phi, g, base, got)
            np.testing.assert_array_equal(got, want)
