"""The explicit SSP steppers, parametrised over the registry: textbook formulas bit for bit, order in time and of
the embedded solution, stage rejection, and what ssprk43 saves on a positivity-bound solve (docs/math.md §5)."""
from __future__ import annotations

import numpy as np
import pytest

from mfdyn.errors import BlowUp
from pde import solve
from pde.steppers import STEPPERS, step_factor
from tests.explicit_textbook import EXPLICIT, TEXTBOOK
from tests.test_pde_solver import setup

A = np.array([[-1.0, 0.5, 0.0], [0.3, -2.0, 0.4], [0.0, 0.7, -0.5]])
U0 = np.array([1.0, 0.5, 0.2])


def _ode(u, out):
    """A smooth nonlinear system, u' = Au + 0.3 sin u, with no positivity bound."""
    out[...] = A @ u + 0.3 * np.sin(u)
    return np.inf


def _integrate(stepper, n, t=1.0, u0=U0):
    advance, u = STEPPERS[stepper](_ode, 1.0), u0.copy()
    for _ in range(n):
        u, dt = advance.step(u, t / n)
        assert dt == t / n
    return u


def test_every_explicit_stepper_has_its_textbook_formulas():
    assert EXPLICIT == sorted(TEXTBOOK) == ["explicit", "ssprk43"]


@pytest.mark.parametrize("stepper", EXPLICIT)
def test_stages_are_the_textbook_formulas_bit_for_bit(stepper):
    """The in-place stage arithmetic gives exactly the textbook ρⁿ⁺¹ (and, with rtol, its û)."""
    rng = np.random.default_rng(5)
    rho, a = rng.random(50), rng.standard_normal(50)

    def rhs(r, out):
        out[...] = a * r * r - np.roll(r, 1)
        return 10.0

    new, dt = STEPPERS[stepper](rhs, cfl=0.5).step(rho, 0.37)
    assert dt == 0.37
    textbook = TEXTBOOK[stepper](lambda r: a * r * r - np.roll(r, 1), rho, 0.37)
    np.testing.assert_array_equal(new, textbook[0])
    advance = STEPPERS[stepper](rhs, cfl=0.5, rtol=1.0)                   # with rtol: the embedded û as well
    buffers = tuple(np.empty(rho.shape) for _ in range(advance.buffers))
    rhs(rho, buffers[0])
    both = advance.stages(rho, buffers[0], 0.37, buffers)
    np.testing.assert_array_equal(both[0], textbook[0])
    np.testing.assert_array_equal(both[1], textbook[1])


@pytest.mark.parametrize("stepper", EXPLICIT)
def test_third_order_in_time_and_a_second_order_embedded_solution(stepper):
    """Global error at t = 1 falls as dt³ (observed orders within 0.15 of 3), and the embedded û's one-step error
    as dt³ (a second-order method's local error), while ρⁿ⁺¹'s falls as dt⁴."""
    reference = _integrate("ssprk43", 4000)
    errors = [np.abs(_integrate(stepper, n) - reference).sum() for n in (10, 20, 40, 80)]
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    assert np.all(np.abs(orders - 3.0) < 0.15), orders
    local = []
    for dt in (0.1, 0.05, 0.025):
        exact = _integrate("ssprk43", 2000, dt)
        new, embedded = TEXTBOOK[stepper](lambda u: A @ u + 0.3 * np.sin(u), U0, dt)
        local.append((np.abs(new - exact).sum(), np.abs(embedded - exact).sum()))
    local_orders = np.log2(np.array(local[:-1]) / np.array(local[1:]))
    assert np.all(np.abs(local_orders[:, 0] - 4.0) < 0.15) and np.all(np.abs(local_orders[:, 1] - 3.0) < 0.15), \
        local_orders


@pytest.mark.parametrize("stepper,collapse", [(s, k) for s in EXPLICIT for k in range(2, STEPPERS[s].rhs_per_step + 1)])
def test_a_stage_that_breaks_its_bound_rejects_the_step(stepper, collapse):
    """A right-hand side whose bound collapses at its `collapse`-th call (a later stage of the first attempt)
    forces one retry, at cfl × that bound over the stage's fraction of dt (SSP-RK3: the whole dt; ssprk43: half)."""
    calls = []

    def rhs(rho, out):
        calls.append(rho.copy())
        out[...] = -rho
        return 1.0 if len(calls) < collapse else 0.01

    advance = STEPPERS[stepper](rhs, cfl=0.5)
    new, dt = advance.step(np.ones(3), 10.0)
    assert advance.rejected == 1 and len(calls) == collapse + advance.rhs_per_step - 1
    assert dt == pytest.approx(0.005 / advance.stage_dt)
    np.testing.assert_allclose(new, np.exp(-dt), rtol=1e-8)   # third order on ρ' = −ρ


def test_ssprk43_reaches_the_same_solution_with_two_thirds_of_the_right_hand_sides():
    """MMN isotropic on the shipped grid (1600 cells), noiseless, steps set by positivity: ssprk43 takes twice the
    step for four right-hand sides instead of three, so 2/3 of SSP-RK3's work. The two R(t) agree to their time
    error (measured: 9e−9 and 2e−9 against cfl = 0.05), about a thousandth of the grid's (800 against 1600 cells)."""
    grid, op, rho0 = setup(0.8, 1600)
    counts, risks = {}, {}
    for stepper in EXPLICIT:
        states = list(solve(op, rho0, [1.0, 2.0], 1.0, stepper=stepper))
        counts[stepper] = states[-1].steps * STEPPERS[stepper].rhs_per_step
        risks[stepper] = np.array([op.risk(s.rho) for s in states])
        assert abs(grid.integrate(states[-1].rho) - grid.integrate(rho0)) <= 1e-13 * grid.integrate(rho0)
        assert states[-1].rho.min() >= 0.0
    assert 0.6 < counts["ssprk43"] / counts["explicit"] < 0.72, counts
    _, coarse_op, coarse_rho0 = setup(0.8, 800)
    coarse = np.array([coarse_op.risk(s.rho) for s in solve(coarse_op, coarse_rho0, [1.0, 2.0], 1.0)])
    gap = np.abs(risks["ssprk43"] - risks["explicit"])
    assert np.all(gap < 1e-2 * np.abs(coarse - risks["explicit"])) and gap.max() < 3e-8, (gap, coarse)


@pytest.mark.parametrize("stepper", EXPLICIT)
def test_a_nan_stage_bound_stops_the_step_with_a_blow_up(stepper):
    """A stage whose right-hand side is not finite (its bound NaN) raises BlowUp instead of retrying forever."""
    def rhs(rho, out):
        out[...] = -rho
        return 1.0 if np.all(rho == 1.0) else np.nan

    with pytest.raises(BlowUp, match="non-finite within a step"):
        STEPPERS[stepper](rhs, cfl=0.5).step(np.ones(3), 0.1)


def test_a_non_finite_error_estimate_stops_the_controller():
    """step_factor refuses NaN and ∞ (they would reject every dt forever) and scales finite errors as documented."""
    for err in (np.nan, np.inf):
        with pytest.raises(BlowUp, match="error estimate"):
            step_factor(1e-6, err)
    assert step_factor(1e-6, 0.0) == 2.0 and step_factor(1e-6, 1e-6) == pytest.approx(0.9)
