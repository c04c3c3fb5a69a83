"""The trbdf2 stepper and pde.stepper = "auto" (docs/math.md §5): the tridiagonal kernel against its twin, second
order in time with ψ depending on ρ, the error estimate against the true local error, positivity by reject and
retry, mass to round-off, and the auto choice recorded in the file."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from mfdyn.config import InitConfig
from mfdyn.problems.linear_flows import OrnsteinUhlenbeck
from mfdyn.problems.mmn_isotropic import MMNIsotropic, MMNIsotropicParams
from pde import Grid, PotentialOperator, solve
from pde.scharfetter_gummel import SGWeights, sg_weights
from pde.sg_system import SGSystem, sg_matrix, tridiagonal_factor, tridiagonal_solve, tridiagonal_solve_numpy
from pde.solve import AUTO_EXPLICIT, AUTO_STEPS_PER_STIFFNESS, auto_stepper, implicit_step_cost, stiffness
from pde.steppers import TRBDF2, TRBDF2_ERROR


@pytest.mark.parametrize("n", [1, 2, 5, 300])
@pytest.mark.parametrize("s", [1e-6, 0.3, 1e4])
def test_tridiagonal_kernel_matches_its_numpy_twin(n, s):
    rng = np.random.default_rng(n)
    forward, backward = rng.exponential(size=n - 1), rng.exponential(size=n - 1)
    rhs = rng.standard_normal(n)
    pivot, multiplier, out = np.empty(n), np.empty(n), np.empty(n)
    tridiagonal_factor(forward, backward, s, pivot, multiplier)
    tridiagonal_solve(backward, s, pivot, multiplier, rhs, out)
    twin = tridiagonal_solve_numpy(forward, backward, s, rhs) if n > 1 else rhs
    weights = SGWeights((forward,), (backward,), np.zeros(1))
    matrix = np.eye(n) - s * sg_matrix(weights).toarray()
    # both are backward stable: they agree to the condition number times round-off
    assert np.abs(out - twin).max() <= 1e-14 * np.linalg.cond(matrix) * np.abs(twin).max()
    assert np.abs(matrix @ out - rhs).max() <= 1e-14 * np.abs(matrix).sum(axis=1).max() * np.abs(out).max()
    # the column sums of I − sA are 1: the solve keeps the sum (the mass)
    assert abs(out.sum() - rhs.sum()) <= 1e-12 * np.abs(rhs).sum() * max(1.0, s)


@pytest.mark.parametrize("shape", [(50,), (9, 7), (4, 5, 3)])
def test_the_system_solves_the_assembled_matrix(shape):
    """Thomas in 1-D, sparse LU without pivoting above: both solve I − sA as a dense solve does."""
    rng = np.random.default_rng(3)
    forward, backward = [], []
    for axis in range(len(shape)):
        faces = shape[:axis] + (shape[axis] - 1,) + shape[axis + 1:]
        forward.append(rng.exponential(size=faces))
        backward.append(rng.exponential(size=faces))
    weights = SGWeights(tuple(forward), tuple(backward), np.zeros(len(shape)))
    rhs = rng.standard_normal(int(np.prod(shape)))
    dense = np.eye(len(rhs)) - 0.7 * sg_matrix(weights).toarray()
    assert np.allclose(SGSystem(weights, 0.7).solve(rhs), np.linalg.solve(dense, rhs), rtol=1e-12, atol=1e-13)


def _ou_1d(cells: int = 80):
    problem = OrnsteinUhlenbeck(OrnsteinUhlenbeck.Params(stiffness=(1.0,)), InitConfig(mean=(0.8,), kappa=0.3))
    grid = Grid(((-3.0, 3.0),), (cells,), problem.coords)
    op = PotentialOperator(problem.grid_model(grid.centres), grid, beta=4.0)
    return op, problem.initial_cell_averages(grid.edges)


def _mmn_reduced(cells: int = 200):
    problem = MMNIsotropic(MMNIsotropicParams(delta=0.5), InitConfig())
    grid = Grid(((0.0, 4.0),), (cells,), ("r",))
    return PotentialOperator(problem.grid_model(grid.centres), grid, lam=0.1, beta=20.0), \
        problem.initial_cell_averages(grid.edges)


def test_second_order_in_time_when_psi_depends_on_rho():
    """MMN in reduced coordinates (the interaction, and −β⁻¹ log J near r = 0), fixed steps (rtol = inf)."""
    op, rho0 = _mmn_reduced()
    assert op.depends_on_rho
    reference = list(solve(op, rho0, [0.4], 1.0, stepper="trbdf2", dt=0.4 / 3200, rtol=math.inf))[-1].rho
    errors = [np.abs(list(solve(op, rho0, [0.4], 1.0, stepper="trbdf2", dt=dt, rtol=math.inf))[-1].rho
                     - reference).sum() for dt in (0.004, 0.002, 0.001)]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders > 1.8), (errors, orders)


def test_the_error_estimate_is_the_local_error_of_a_small_step():
    """On dρ/dt = Aρ with ψ fixed the exact step is expm(dt A) ρ: for small dt the estimate (√2 − 4/3) dt × the
    f-bracket approaches the true local error (√2/2 − 2/3) dt³ ρ''' of the step."""
    op, rho0 = _ou_1d(40)
    weights = sg_weights(op.psi_noisy(rho0), op.grid.widths, op.beta, 2.0 / op.beta)
    a = sg_matrix(weights).toarray()
    stepper = TRBDF2(lambda rho: weights, dt=1.0, rtol=math.inf, psi_fixed=True)
    ratios = []
    for dt in (2e-3, 1e-3, 5e-4):
        new = stepper.step(rho0, dt)[0]
        exact = scipy.linalg.expm(dt * a) @ rho0
        true_error = np.abs(new - exact).sum()
        third = a @ (a @ (a @ rho0))
        predicted = abs(math.sqrt(0.5) - 2.0 / 3.0) * dt**3 * np.abs(third).sum()
        ratios.append(true_error / predicted)
        assert TRBDF2_ERROR == pytest.approx(2 * (math.sqrt(0.5) - 2.0 / 3.0))
    assert abs(ratios[-1] - 1.0) < 0.05 and abs(ratios[-1] - 1.0) < abs(ratios[0] - 1.0), ratios


def test_error_control_meets_its_tolerance_and_rejects_negative_stages():
    """A narrow start and a first step of dt = 10: the trapezoid's explicit half goes negative, so steps are
    rejected until it does not; the density is never negative and keeps its mass to round-off, and the
    controlled run is within a few rtol of a fine fixed-step one."""
    op, _ = _ou_1d(120)
    rho0 = np.zeros(120)
    rho0[40] = 1.0 / op.grid.cell_volume
    rhos = []
    states = list(solve(op, rho0, [0.05, 0.5, 2.0], 1.0, stepper="trbdf2", dt=10.0, rtol=1e-6,
                        on_step=lambda t, rho: rhos.append(rho.min())))
    assert states[-1].rejected > 0 and min(rhos) >= 0.0
    mass0 = op.grid.integrate(rho0)
    assert all(abs(op.grid.integrate(s.rho) - mass0) <= 1e-13 * mass0 for s in states)
    fine = list(solve(op, rho0, [0.05, 0.5, 2.0], 1.0, stepper="trbdf2", dt=2e-4, rtol=math.inf))
    for a, b in zip(states, fine):
        assert np.abs(a.rho - b.rho).sum() * op.grid.cell_volume < 1e-4


def test_free_energy_decreases_at_every_accepted_step():
    op, rho0 = _mmn_reduced()
    energies = [op.free_energy(rho0)]
    list(solve(op, rho0, [2.0], 1.0, stepper="trbdf2", dt=0.01, on_step=lambda t, rho: energies.append(
        op.free_energy(rho))))
    assert len(energies) > 10
    assert np.all(np.diff(energies) <= 1e-13 * np.abs(energies).max()), np.diff(energies).max()


def test_auto_takes_trbdf2_exactly_when_the_explicit_step_is_set_by_positivity():
    """trbdf2 where the SSP-RK3 steps one of its steps replaces, scaled by ssprk43's ⅔ of SSP-RK3's work per unit
    time, exceed its cost; else ssprk43, and always ssprk43 without noise."""
    op, rho0 = _mmn_reduced()
    threshold = AUTO_STEPS_PER_STIFFNESS * implicit_step_cost(op.grid.shape) * 1.5     # 3 / 2 right-hand sides
    name, stiff = auto_stepper(op, rho0, 1.0)
    assert name == "trbdf2" and stiff > threshold
    op_cold = PotentialOperator(op.model, op.grid, lam=0.1, beta=1e4)
    name, stiff = auto_stepper(op_cold, rho0, 1.0)
    assert name == AUTO_EXPLICIT == "ssprk43" and stiff == pytest.approx(stiffness(op_cold, rho0, 1.0))
    assert stiff < threshold
    noiseless = PotentialOperator(op.model, op.grid, lam=0.1, beta=math.inf)
    name, stiff = auto_stepper(noiseless, rho0, 1.0)
    assert name == "ssprk43" and math.isnan(stiff)


def test_a_solve_resumed_from_a_saved_state_takes_the_same_steps():
    """The controller's proposal is saved with each state (PDEState.dt_next): resuming from it is bit-for-bit."""
    op, rho0 = _mmn_reduced(120)
    times = [0.1, 0.2, 0.3]
    whole = list(solve(op, rho0, times, 1.0, stepper="trbdf2", dt=0.01))
    first = whole[0]
    resumed = list(solve(op, first.rho, times[1:], 1.0, stepper="trbdf2", dt=0.01, t0=first.t,
                         dt_next=first.dt_next, steps0=first.steps))
    for a, b in zip(whole[1:], resumed):
        assert a.steps == b.steps
        np.testing.assert_array_equal(a.rho, b.rho)


def test_the_run_file_records_the_stepper_auto_chose(tmp_path):
    import mfdyn
    from tests.conftest import TINY_MMN

    noisy = {"dynamics.beta": 20.0, "dynamics.lambda": 0.1}
    fine = mfdyn.run(TINY_MMN, set={**noisy, "pde.cells": 400}, engine="pde")       # stiffness 626
    coarse = mfdyn.run(TINY_MMN, set=noisy, engine="pde")                            # 26: the explicit steps are few
    noiseless = mfdyn.run(TINY_MMN, engine="pde")
    assert fine.file.group_attrs("pde")["stepper"] == "trbdf2" and fine.file.group_attrs("pde")["stiffness"] > 500
    assert coarse.file.group_attrs("pde")["stepper"] == "ssprk43" and coarse.file.group_attrs("pde")["stiffness"] < 50
    assert noiseless.file.group_attrs("pde")["stepper"] == "ssprk43"
    assert math.isnan(noiseless.file.group_attrs("pde")["stiffness"])
