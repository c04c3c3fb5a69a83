"""β < ∞: Scharfetter–Gummel fluxes, both steppers, free energy, Gibbs states (docs/math.md §2, §5, §6)."""
from __future__ import annotations

import numpy as np
import pytest

from mfdyn.config import InitConfig
from mfdyn.problems.linear_flows import OrnsteinUhlenbeck, QuadraticInteraction
from mfdyn.problems.mmn_isotropic import MMNIsotropic, MMNIsotropicParams
from pde import Grid, PotentialOperator, solve
from pde.steppers import STEPPERS, TRBDF2, LinearlyImplicit
from tests.explicit_textbook import EXPLICIT, TEXTBOOK
from validation import verify

BY_NAME = {c.name: c for c in verify.CASES}


@pytest.mark.parametrize("name", ["heat_1d", "heat_2d", "ou_noisy_1d", "ou_noisy_2d", "quadratic_noisy_2d"])
def test_noisy_cases_are_second_order_in_space(name):
    levels = verify.run_case(BY_NAME[name])
    assert verify.passes(levels), [(lv.order, lv.max_risk_increase) for lv in levels]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["heat_3d", "ou_noisy_3d"])
def test_noisy_3d_cases_are_second_order(name):
    assert verify.passes(verify.run_case(BY_NAME[name]))


@pytest.mark.parametrize("stepper", sorted(verify.TIME_ORDERS))
def test_implicit_steppers_have_their_order_in_time(stepper):
    """implicit: first order (and not more); trbdf2: second order, on OU with ψ fixed."""
    errors, orders = verify.implicit_time_orders(stepper)
    assert verify.time_order_passes(stepper, orders) and max(orders) < verify.TIME_ORDERS[stepper] + 0.3, orders


def test_gibbs_state_of_a_frozen_potential_is_preserved_to_round_off():
    changes = verify.gibbs_preservation()
    assert max(changes.values()) <= verify.GIBBS_TOL, changes


def _free_energy_every_step(op, rho, advance, t_end):
    values, t = [op.free_energy(rho)], 0.0
    while t < t_end:
        rho, dt = advance.step(rho, t_end - t)
        t += dt
        values.append(op.free_energy(rho))
        assert rho.min() >= 0.0
    return np.array(values), rho


def _weights_of(op, xi):
    from pde.solve import noisy_weights

    return lambda rho: noisy_weights(op, rho, xi)


def _rhs_sg(op, xi):
    from pde.scharfetter_gummel import sg_apply

    weights_of = _weights_of(op, xi)

    def rhs(rho, out):
        weights = weights_of(rho)
        sg_apply(rho, weights, out)
        return weights.dt_max
    return rhs


@pytest.mark.parametrize("which", ["quadratic_2d", "mmn_isotropic_reduced"])
@pytest.mark.parametrize("stepper", ["explicit", "ssprk43", "implicit", "trbdf2"])
def test_free_energy_decreases_at_every_step(which, stepper):
    """With interaction, and in reduced coordinates with the volume factor J = r^{d−1}."""
    xi, beta = 1.0, 5.0
    if which == "quadratic_2d":
        problem = QuadraticInteraction(QuadraticInteraction.Params(stiffness=(0.5, 0.0)), InitConfig(mean=(0.4, -0.3)))
        grid = Grid(((-2.5, 3.0), (-3.0, 2.5)), (40, 40), problem.coords)
        t_end = 1.0
    else:
        problem = MMNIsotropic(MMNIsotropicParams(delta=0.5), InitConfig())
        grid = Grid(((0.0, 4.0),), (200,), ("r",))
        beta, t_end = 20.0, 2.0
    op = PotentialOperator(problem.grid_model(grid.centres), grid, lam=0.1, beta=beta)
    rho0 = problem.initial_cell_averages(grid.edges)
    advance = (STEPPERS[stepper](_rhs_sg(op, xi), 0.8) if stepper in EXPLICIT else
               {"implicit": lambda: LinearlyImplicit(_weights_of(op, xi), 0.05),
                "trbdf2": lambda: TRBDF2(_weights_of(op, xi), 0.05, rtol=1e-6)}[stepper]())
    values, rho = _free_energy_every_step(op, rho0, advance, t_end)
    assert len(values) > 10
    assert np.all(np.diff(values) <= 1e-13 * np.abs(values).max()), np.diff(values).max()
    assert abs(grid.integrate(rho) - grid.integrate(rho0)) <= 1e-12 * grid.integrate(rho0)


def test_implicit_step_is_positive_and_conservative_for_huge_dt():
    problem = OrnsteinUhlenbeck(OrnsteinUhlenbeck.Params(stiffness=(3.0, 1.0)), InitConfig(mean=(1.0, -1.0)))
    grid = Grid(((-3.0, 3.0), (-3.0, 3.0)), (50, 50), problem.coords)
    op = PotentialOperator(problem.grid_model(grid.centres), grid, beta=4.0)
    rho0 = problem.initial_cell_averages(grid.edges)
    state = list(solve(op, rho0, [100.0], 1.0, stepper="implicit", dt=50.0))[-1]
    assert state.steps == 2 and state.rho.min() >= 0.0
    assert abs(grid.integrate(state.rho) - grid.integrate(rho0)) <= 1e-12
    # each step divides the slowest mode (rate 2ξ min K = 2) by 1 + 2·50: after two, ≈ 1e−4 of it is left
    start = np.abs(rho0 - op.gibbs(rho0)).sum() * grid.cell_volume
    left = np.abs(state.rho - op.gibbs(rho0)).sum() * grid.cell_volume
    assert left < 3 * start / 101**2


def test_config_allows_exactly_the_registered_steppers():
    """pde.stepper's config rule and the stepper registry cannot drift apart."""
    import dataclasses
    import re

    from mfdyn.config import PdeConfig

    rule = {f.name: f for f in dataclasses.fields(PdeConfig)}["stepper"].metadata["rule"]
    assert STEPPERS
    for name in STEPPERS:
        assert rule.check(name) is True, name
    assert rule.check("nonsense") is False
    assert rule.check("auto") is True                       # not a stepper: the engine picks one (pde.solve.auto_stepper)
    assert set(re.findall(r"'([^']*)'", rule.allowed)) == set(STEPPERS) | {"auto"}, rule.allowed


def test_solve_refuses_unknown_steppers_and_the_implicit_one_without_noise():
    problem = OrnsteinUhlenbeck(OrnsteinUhlenbeck.Params(stiffness=(3.0, 1.0)), InitConfig(mean=(1.0, -1.0)))
    grid = Grid(((-3.0, 3.0), (-3.0, 3.0)), (10, 10), problem.coords)
    rho0 = problem.initial_cell_averages(grid.edges)
    noisy = PotentialOperator(problem.grid_model(grid.centres), grid, beta=4.0)
    noiseless = PotentialOperator(problem.grid_model(grid.centres), grid)
    with pytest.raises(ValueError, match="unknown stepper 'nonsense'"):
        next(solve(noisy, rho0, [1.0], 1.0, stepper="nonsense"))
    with pytest.raises(ValueError, match="finite dynamics.beta"):
        next(solve(noiseless, rho0, [1.0], 1.0, stepper="implicit", dt=0.1))
    with pytest.raises(ValueError, match="pde.dt"):
        next(solve(noisy, rho0, [1.0], 1.0, stepper="implicit"))


def _solve_recording_errors(monkeypatch, stepper, *args, **kwargs):
    """solve(*args, **kwargs) with an explicit stepper instrumented; return (last state, local error and dt of each
    accepted step).

    After each accepted step the instrument recomputes that step from ρⁿ and the dt taken with the textbook
    Shu–Osher formulas (tests.explicit_textbook: the stepper's in-place buffers do the same operations in the
    same order, so the result must equal the accepted ρⁿ⁺¹ bit for bit: it is that step), and records its
    embedded error exactly as the controller defines it: ‖ρⁿ⁺¹ − û‖₁ / ‖ρⁿ‖₁.
    """
    errors, dts = [], []

    class Instrumented(STEPPERS[stepper]):
        def step(self, rho, dt_wanted):
            new, dt = super().step(rho, dt_wanted)

            def rate(r):
                out = np.empty(r.shape)
                self.rhs(r, out)
                return out
            again, embedded = TEXTBOOK[stepper](rate, rho, dt)
            np.testing.assert_array_equal(again, new)
            errors.append(np.abs(new - embedded).sum() / max(np.abs(rho).sum(), 1e-300))
            dts.append(dt)
            return new, dt

    monkeypatch.setitem(STEPPERS, stepper, Instrumented)
    state = list(solve(*args, stepper=stepper, **kwargs))[-1]
    assert len(errors) == state.steps
    return state, np.array(errors), np.array(dts)


@pytest.mark.parametrize("stepper", EXPLICIT)
def test_error_control_meets_its_tolerance(monkeypatch, stepper):
    """With rtol every accepted step of an explicit stepper has local error ≤ rtol (relative to the mass),
    and a looser rtol takes fewer steps."""
    case = BY_NAME["ou_noisy_1d"]
    problem = case.build()
    grid = case.grid(problem, 160)
    op = PotentialOperator(problem.grid_model(grid.centres), grid, beta=case.beta)
    rho0 = problem.initial_cell_averages(grid.edges)
    exact = problem.exact_cell_averages(grid.edges, 0.5, 0.5, 0.0, case.beta)
    runs = {rtol: _solve_recording_errors(monkeypatch, stepper, op, rho0, [0.5], 0.5, rtol=rtol) for rtol in (1e-9, 1e-7)}
    assert runs[1e-7][0].steps < runs[1e-9][0].steps
    for rtol, (state, errors, _) in runs.items():
        assert np.all(errors <= rtol), (rtol, errors.max(), int(np.sum(errors > rtol)))
        assert np.abs(state.rho - exact).sum() * grid.cell_volume < 1e-3
    # at 1e-9 the controller, not the positivity bound, sets dt (it aims at 0.9³ rtol)
    rtol, (_, errors, dts) = 1e-9, runs[1e-9]
    assert errors.max() > 0.5 * rtol
    # Its safety factor keeps later proposals below rtol, so the accept/reject test itself is met only at
    # start-up. Exercise it: start from proposals around the dt of error rtol (err ∝ dt³), so that first
    # attempts land densely on both sides of rtol; a controller accepting any of those above rtol fails.
    at_rtol = dts[0] * (rtol / errors[0]) ** (1.0 / 3.0)
    rejected = 0
    for proposal in at_rtol * np.geomspace(0.8, 1.6, 16):
        state, errors, _ = _solve_recording_errors(monkeypatch, stepper, op, rho0, [3.0 * at_rtol], 0.5, rtol=rtol,
                                                   dt_next=proposal)
        assert np.all(errors <= rtol), (proposal / at_rtol, errors.max() / rtol)
        rejected += state.rejected
    assert rejected >= 4, rejected
