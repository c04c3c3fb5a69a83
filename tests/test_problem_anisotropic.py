"""MMN anisotropic (docs/math.md §3.2): the exact finite-d kernel, its d = ∞ limit, R_N, and the shipped config."""
from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from mfdyn.config import InitConfig
from mfdyn.problems.mmn_anisotropic import MMNAnisotropic, MMNAnisotropicParams
from pde import Grid, PotentialOperator
from pde.potential import compress_features

ROOT = Path(__file__).resolve().parents[1]


def make(**kw):
    return MMNAnisotropic(MMNAnisotropicParams(**kw), InitConfig())


def test_exact_kernel_is_the_direction_average(rng):
    """u(z, z') = E over uniform directions in S and S⊥ of U(w, w'), sampled in full space (d = 6, s0 = 2)."""
    problem = make(d=6, s0=2, delta=0.5)
    z, zp = np.array([[0.9], [0.5]]), np.array([[0.4], [1.1]])
    feats, _ = problem.kernel_features(*np.hstack([z, zp]), problem.kernel_order([np.array([0.4, 0.9]),
                                                                                  np.array([0.5, 1.1])]))
    u_reduced = feats[:, 0] @ feats[:, 1]
    n = 400_000
    x, y = problem.sample_data(n, rng)

    def random_w(r1, r2):
        a, b = rng.standard_normal((n, 2)), rng.standard_normal((n, 4))
        return np.hstack([r1 * a / np.linalg.norm(a, axis=1)[:, None], r2 * b / np.linalg.norm(b, axis=1)[:, None]])

    w, wp = random_w(0.9, 0.5), random_w(0.4, 1.1)
    sample = problem.ramp(np.einsum("ij,ij->i", w, x)) * problem.ramp(np.einsum("ij,ij->i", wp, x))
    assert abs(u_reduced - sample.mean()) < 4 * sample.std() / math.sqrt(n)


def test_exact_kernel_tends_to_the_d_infinity_kernel():
    """The k ≥ 2 terms vanish as s0, d − s0 → ∞: the gap in R(ρ_0) shrinks roughly like 1/d."""
    gaps = []
    for d, s0 in ((40, 10), (160, 40), (640, 160)):
        risks = []
        for reduction in ("exact", "d_infinity"):
            problem = make(d=d, s0=s0, reduction=reduction)
            grid = Grid(((0.0, 2.5), (0.0, 2.0)), (100, 80), ("r1", "r2"))
            op = PotentialOperator(problem.grid_model(grid.centres), grid)
            risks.append(op.risk(problem.initial_cell_averages(grid.edges)))
        gaps.append(risks[0] - risks[1])
    assert gaps[0] > 0.03                                  # at d = 40 the d = ∞ kernel is off by 0.055
    assert gaps[1] < gaps[0] / 3 and gaps[2] < gaps[1] / 3


def test_exact_risk_matches_monte_carlo(rng):
    problem = make(d=12, s0=4, delta=0.4)
    theta = problem.sample_initial(40, rng) * 1.5
    theta[1] = 0.8 * theta[0] + 0.02 * rng.standard_normal(12)         # a near-parallel pair
    losses = []
    for _ in range(50):
        x, y = problem.sample_data(40_000, rng)
        losses.append((y - problem.ramp(x @ theta.T).mean(axis=1)) ** 2)
    losses = np.concatenate(losses)
    assert abs(problem.exact_risk(theta) - losses.mean()) < 4 * losses.std() / math.sqrt(losses.size)


def test_compression_keeps_the_kernel():
    """650 kernel features compress to far fewer with Ψ unchanged to 1e−12."""
    problem = make()
    grid = Grid(((0.0, 2.5), (0.0, 2.0)), (60, 48), ("r1", "r2"))
    model = problem.grid_model(grid.centres)
    op = PotentialOperator(model, grid)
    assert op.features_built == len(model.features) > 4 * len(op.phi)
    rho = problem.initial_cell_averages(grid.edges)
    f = model.features @ rho.ravel() * grid.cell_volume
    np.testing.assert_allclose(op.psi(rho).ravel(), model.potential + f @ model.features, atol=1e-12)
    rows, dropped = compress_features(model.features, model.weights, rtol=1e-6)
    assert len(rows) < len(op.phi) and dropped > 0


@pytest.mark.slow
def test_shipped_config_lowers_the_risk_and_moves_mass_toward_s(tmp_path):
    from validation.cli import main

    out = tmp_path / "aniso.h5"
    assert main(["run", str(ROOT / "configs" / "mmn_anisotropic.toml"), "--out", str(out)]) == 0
    with h5py.File(out, "r") as f:
        assert np.max(np.abs(f["comparison/risk_gap"][:])) <= 0.05
        for risk in (f["pde/risk"][:], f["particles/risk"][:]):
            assert risk[-1] < 0.2 * risk[0]
        density = f["pde/density"]
        r2 = f["pde/r2"][:]
        mean_r2 = [density[k].sum(axis=0) @ r2 / density[k].sum() for k in (0, -1)]
        sgd_r2 = f["particles/z"][0][:, 1].mean(), f["particles/z"][-1][:, 1].mean()
        assert mean_r2[1] < 0.6 * mean_r2[0] and sgd_r2[1] < 0.65 * sgd_r2[0]
        assert not f["pde"].attrs["mass_reached_boundary"]


def test_small_feature_sets_are_compressed_only_where_that_saves_rows():
    """The isotropic kernel at d = 40 (24 rows, rank 14 at 1e−13) is compressed, with Ψ within 1e−13 relative;
    a full-rank set (two quadratic-interaction moments) keeps its rows and its bits."""
    from mfdyn.config import InitConfig
    from mfdyn.problems.linear_flows import QuadraticInteraction
    from mfdyn.problems.mmn_isotropic import MMNIsotropic, MMNIsotropicParams

    problem = MMNIsotropic(MMNIsotropicParams(d=40, delta=0.8), InitConfig(kappa=0.8))
    grid = Grid(((0.0, 8.0),), (1600,), ("r",))
    model = problem.grid_model(grid.centres)
    op = PotentialOperator(model, grid)
    assert op.features_built == len(model.features) == 24 and len(op.phi) == 14 and 0 < op.dropped_eigenvalue
    rho = problem.initial_cell_averages(grid.edges)
    plain = PotentialOperator(model, grid, compress=False)
    np.testing.assert_allclose(op.psi(rho), plain.psi(rho), rtol=0, atol=1e-13 * np.abs(plain.psi(rho)).max())
    quadratic = QuadraticInteraction(QuadraticInteraction.Params(stiffness=(0.5, 0.0)), InitConfig(mean=(0.4, -0.3)))
    grid2 = Grid(((-2.5, 3.0), (-3.0, 2.5)), (40, 40), quadratic.coords)
    model2 = quadratic.grid_model(grid2.centres)
    op2 = PotentialOperator(model2, grid2)
    assert op2.dropped_eigenvalue == 0.0 and np.array_equal(op2.phi, model2.features)
