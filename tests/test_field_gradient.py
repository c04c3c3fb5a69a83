"""field_gradient of the MMN problems (docs/math.md §8): ∇_w of the grid's feature-form Ψ^α at a point's own
position in full d-space. Against central differences in w of the same Ψ (same rows), and against
centred differences of the grid's own Ψ between neighbouring cells (O(h²))."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mfdyn.config import load_config
from mfdyn.gaussian import hermite_coefficients
from mfdyn.grid import build_grid
from mfdyn.problems import make_problem
from mfdyn.problems.mmn_isotropic import hermite_coefficient_derivatives

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"iso": ROOT / "configs/mmn_isotropic.toml", "aniso": ROOT / "configs/mmn_anisotropic.toml"}


def setup(which: str, overrides=()):
    """problem, grid, its GridModel and the moments of ρ_0 in grid_model's rows."""
    config = load_config(CONFIGS[which], list(overrides))
    problem = make_problem(config)
    grid = build_grid(problem, config)
    model = problem.grid_model(grid.centres)
    rho = problem.initial_cell_averages(grid.edges)
    return problem, grid, model, model.features @ (rho.ravel() * grid.cell_volume)


def kmax_of(problem, grid) -> int:
    return problem.kernel_order(grid.centres[0] if problem.name == "mmn_isotropic" else grid.centres)


def point_psi(problem, kmax, moments, theta, alpha):
    """Ψ^α(w) = V(z(w))/α + Σ_k Φ_k(z(w)) moments_k with the grid's rows (explicit kmax), (n,)."""
    z = problem.reduce(theta).T
    rows = problem.kernel_features_and_derivatives(*z, kmax)[0]
    return problem.potential(*z) / alpha + moments @ rows


def random_points(problem, n, rng):
    """n points in w-space whose reduced coordinates lie inside the grid, away from its edges."""
    d = problem.params.d
    u = rng.standard_normal((n, d))
    if problem.name == "mmn_isotropic":
        return rng.uniform(0.1, 6.0, n)[:, None] * u / np.linalg.norm(u, axis=1)[:, None]
    s0 = problem.params.s0
    u1, u2 = u[:, :s0], u[:, s0:]
    r1, r2 = rng.uniform(0.05, 2.4, n), rng.uniform(0.05, 1.9, n)
    return np.hstack([r1[:, None] * u1 / np.linalg.norm(u1, axis=1)[:, None],
                      r2[:, None] * u2 / np.linalg.norm(u2, axis=1)[:, None]])


@pytest.fixture(scope="module", params=["iso", "aniso"])
def shipped(request):
    return setup(request.param)


def test_hermite_coefficient_derivatives_match_finite_differences():
    from mfdyn.gaussian import Ramp

    ramp, kmax, step = Ramp(), 40, 1e-6
    a = np.linspace(0.05, 6.0, 97)
    exact = hermite_coefficient_derivatives(hermite_coefficients(ramp, a, kmax + 2), a)
    fd = (hermite_coefficients(ramp, a + step, kmax) - hermite_coefficients(ramp, a - step, kmax)) / (2 * step)
    assert exact.shape == fd.shape
    assert np.max(np.abs(exact - fd)) < 1e-6 * np.max(np.abs(exact))


def test_explicit_kmax_rows_are_the_grid_model_rows(shipped):
    problem, grid, model, _ = shipped
    rows = problem.kernel_features_and_derivatives(*grid.mesh(), kmax_of(problem, grid))[0]
    assert np.array_equal(rows, model.features)
    assert np.array_equal(problem.potential(*grid.mesh()), model.potential)


@pytest.mark.parametrize("alpha", [1.0, 3.0])
def test_field_gradient_matches_finite_differences_in_w(shipped, alpha, rng):
    problem, grid, _, moments = shipped
    kmax = kmax_of(problem, grid)
    theta = random_points(problem, 12, rng)
    grad = problem.field_gradient(theta, moments, grid.centres, alpha=alpha)
    n, d = theta.shape
    step = 1e-5
    shifts = step * np.eye(d)
    plus = (theta[:, None, :] + shifts).reshape(-1, d)
    minus = (theta[:, None, :] - shifts).reshape(-1, d)
    fd = (point_psi(problem, kmax, moments, plus, alpha) - point_psi(problem, kmax, moments, minus, alpha)) / (2 * step)
    fd = fd.reshape(n, d)
    assert grad.shape == (n, d) and np.all(np.isfinite(grad))
    rel = np.linalg.norm(grad - fd, axis=1) / np.linalg.norm(grad, axis=1)
    assert rel.max() < 1e-7


def test_field_gradient_is_finite_at_the_axes(shipped):
    problem, grid, _, moments = shipped
    d = problem.params.d
    theta = np.zeros((3, d))
    theta[1, 0] = 0.7          # r2 = 0 (anisotropic), on an axis (isotropic)
    theta[2, -1] = 0.7         # r1 = 0 (anisotropic)
    grad = problem.field_gradient(theta, moments, grid.centres)
    assert np.all(np.isfinite(grad))
    assert np.all(grad[0] == 0.0)


def radial_errors(which, overrides, rng):
    """max |∂_zΨ(point at a centre) − centred difference of the grid's Ψ| per axis, and the widths h."""
    problem, grid, model, moments = setup(which, overrides)
    psi = (model.potential + model.features.T @ moments).reshape(grid.shape)
    centres, h = grid.centres, grid.widths
    d = problem.params.d
    if which == "iso":
        (r,) = centres
        idx = np.flatnonzero((r > 0.3) & (r < 5.0))
        u = rng.standard_normal((idx.size, d))
        u /= np.linalg.norm(u, axis=1)[:, None]
        theta = r[idx, None] * u
        dr = np.einsum("ij,ij->i", problem.field_gradient(theta, moments, centres), u)
        grid_dr = (psi[idx + 1] - psi[idx - 1]) / (2 * h[0])
        assert np.allclose(point_psi(problem, kmax_of(problem, grid), moments, theta, 1.0), psi[idx], rtol=0, atol=1e-12)
        return [np.max(np.abs(dr - grid_dr))], h
    s0 = problem.params.s0
    (c1, c2) = centres
    i = np.flatnonzero((c1 > 0.2) & (c1 < 2.2))[::2]
    j = np.flatnonzero((c2 > 0.2) & (c2 < 1.8))[::2]
    ii, jj = (m.ravel() for m in np.meshgrid(i, j, indexing="ij"))
    u1, u2 = rng.standard_normal((ii.size, s0)), rng.standard_normal((ii.size, d - s0))
    u1 /= np.linalg.norm(u1, axis=1)[:, None]
    u2 /= np.linalg.norm(u2, axis=1)[:, None]
    theta = np.hstack([c1[ii, None] * u1, c2[jj, None] * u2])
    grad = problem.field_gradient(theta, moments, centres)
    d1, d2 = np.einsum("ij,ij->i", grad[:, :s0], u1), np.einsum("ij,ij->i", grad[:, s0:], u2)
    grid_d1 = (psi[ii + 1, jj] - psi[ii - 1, jj]) / (2 * h[0])
    grid_d2 = (psi[ii, jj + 1] - psi[ii, jj - 1]) / (2 * h[1])
    return [np.max(np.abs(d1 - grid_d1)), np.max(np.abs(d2 - grid_d2))], h


@pytest.mark.parametrize("which, cells", [("iso", ("pde.cells=400", "pde.cells=800")),
                                          ("aniso", ("pde.cells=[50, 40]", "pde.cells=[100, 80]"))])
def test_field_gradient_agrees_with_the_grid_to_second_order(which, cells, rng):
    coarse, hc = radial_errors(which, [cells[0]], rng)
    fine, hf = radial_errors(which, [cells[1]], rng)
    assert np.allclose(hc, 2 * hf)
    for e_coarse, e_fine, h in zip(coarse, fine, hf):
        order = np.log2(e_coarse / e_fine)
        assert 1.8 < order < 2.2, (which, e_coarse, e_fine, order)
        assert e_fine < 20.0 * h * h                 # the error is |Ψ'''| h²/6, and |Ψ'''| ≲ 80 here (ramp slope 10)
