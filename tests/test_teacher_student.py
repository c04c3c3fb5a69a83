"""Teacher–student (docs/math.md §3.3): activations, the neuron SGD kernel and its twin, grid/particle consistency."""
from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from mfdyn.activations import CODES, sigma, sigma_prime, sigma_prime_scalar, sigma_scalar
from mfdyn.config import load_config
from mfdyn.problems import make_problem
from particles.sgd import sgd_steps_neuron, sgd_steps_neuron_numpy
from pde import Grid, PotentialOperator

ROOT = Path(__file__).resolve().parents[1]
RAMP = (0.5, 1.5, -2.5, 7.5)


def problem_from(**keys):
    lines = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in keys.items())
    return make_problem(load_config(f'[problem]\nname = "teacher_student"\n{lines}\n[dynamics]\nt_end = 1.0\n',
                                    from_text=True))


@pytest.mark.parametrize("name", list(CODES))
def test_scalar_activations_match_numpy(name):
    z = np.linspace(-40, 40, 2001)
    np.testing.assert_allclose([sigma_scalar(CODES[name], v, *RAMP) for v in z], sigma(name, z, RAMP), atol=1e-15)
    np.testing.assert_allclose([sigma_prime_scalar(CODES[name], v, sigma_scalar(CODES[name], v, *RAMP), *RAMP)
                                for v in z], sigma_prime(name, z, RAMP),
                               atol=1e-15)
    inner = z[(np.abs(z - 0.0) > 1e-3) & (np.abs(z - 0.5) > 1e-3) & (np.abs(z - 1.5) > 1e-3)]
    numeric = (sigma(name, inner + 1e-6, RAMP) - sigma(name, inner - 1e-6, RAMP)) / 2e-6
    np.testing.assert_allclose(sigma_prime(name, inner, RAMP), numeric, atol=1e-6)


@pytest.mark.parametrize("name", list(CODES))
@pytest.mark.parametrize("dim,batch,lam", [(2, 1, 0.0), (3, 3, 0.1)])
def test_neuron_kernel_matches_numpy_twin(name, dim, batch, lam):
    rng = np.random.default_rng(dim + batch)
    theta = rng.standard_normal((25, dim))
    x = rng.standard_normal(40 * batch)
    y = np.sin(x)
    a, b = theta.copy(), theta.copy()
    noise = 0.01 * rng.standard_normal((40, 25, dim)) if lam > 0 else np.empty((0, 1, 1))
    sgd_steps_neuron(a, x, y, batch, 0.05, lam, CODES[name], *RAMP, noise)
    sgd_steps_neuron_numpy(b, x, y, batch, 0.05, lam, name, RAMP, noise)
    assert not np.allclose(a, theta)
    np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


def test_quadrature_risk_matches_sampling(rng):
    problem = problem_from(parameters="awb", activation="tanh", teacher=[[1.0, 2.0, 0.3], [-0.5, 0.7, 0.0]],
                           noise=0.1)
    theta = rng.standard_normal((30, 3))
    x, y = problem.sample_data(1_000_000, rng)
    a, w, b = theta.T
    losses = (y - (a * np.tanh(np.outer(x, w) + b)).mean(axis=1)) ** 2
    assert abs(problem.exact_risk(theta) - losses.mean()) < 4 * losses.std() / math.sqrt(x.size)


@pytest.mark.parametrize("keys", [dict(parameters="aw", activation="tanh"),
                                  dict(parameters="awb", activation="relu", x_law="uniform", target="abs")])
def test_grid_risk_of_point_masses_is_the_particle_risk(keys, rng):
    """One particle at each of a few cell centres: the grid's R (and its 1/N term) equals R_N exactly."""
    problem = problem_from(**keys)
    grid = Grid(problem.default_bounds(), (6,) * problem.dim, problem.coords)
    op = PotentialOperator(problem.grid_model(grid.centres), grid)
    cells = rng.choice(int(np.prod(grid.shape)), size=9, replace=False)
    rho = np.zeros(int(np.prod(grid.shape)))
    rho[cells] = 1.0 / (9 * grid.cell_volume)
    theta = np.stack(grid.mesh(), axis=1)[cells]
    assert op.risk(rho.reshape(grid.shape)) == pytest.approx(problem.exact_risk(theta), abs=1e-12)


def test_teacher_config_errors():
    with pytest.raises(ValueError, match="problem.teacher: must be a list of neurons"):
        problem_from(teacher=[[1.0]])
    with pytest.raises(ValueError, match="init.mean: must have 3 entries"):
        make_problem(load_config('[problem]\nname = "teacher_student"\nparameters = "awb"\n[init]\nmean = [0, 0]\n'
                                 '[dynamics]\nt_end = 1.0\n', from_text=True))


def test_shipped_2d_config_agrees_with_sgd(tmp_path):
    from validation.cli import main

    out = tmp_path / "ts.h5"
    assert main(["run", str(ROOT / "configs" / "teacher_student_2d.toml"), "--out", str(out)]) == 0
    with h5py.File(out, "r") as f:
        gap = f["comparison/risk_gap"][:]
        assert np.all(np.abs(gap[1:]) < 0.01)                  # after t = 0: a few 1e-3 at N = 1000
        risk = f["pde/risk"][:]
        assert risk[-1] < 0.1 * risk[0] and np.all(np.diff(risk) <= 0)
        assert not f["pde"].attrs["mass_reached_boundary"]
