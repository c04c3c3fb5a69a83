"""A problem defined outside the package runs end to end through the public API (mfdyn/problems/base.py).

The problem, written here as user code would be: a shifted Ornstein–Uhlenbeck flow in 1-D, no data
(network "potential"), V(x) = ½k(x − c)², no interaction, R# = 0, ρ_0 = N(0, κ²). Noiseless and without
weight decay every particle follows x' = −2ξk(x − c), so ρ_t = N(m_t, s_t²) with m_t = c(1 − e^{−2ξkt}),
s_t = κ e^{−2ξkt}, and R(ρ_t) = 2∫V dρ_t = k[(m_t − c)² + s_t²] (docs/math.md §1, §6).
The particles take Euler steps of the same drift, so x_i − c contracts by exactly (1 − 2εξk) per step.

Its class statement runs inside a fixture, which removes it from the registry afterwards: other tests
see only the built-in problems.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import xarray as xr
from scipy.special import ndtr

import mfdyn
from mfdyn.config import Config
from mfdyn.problems import PROBLEMS, GridModel, Problem
from mfdyn.schema import Section, finite, positive, rule

NAME = "user_shifted_ou"
K, CENTRE, KAPPA, XI = 1.0, 0.5, 0.3, 1.0
T_END, EVERY, EPS, N = 0.5, 0.25, 1e-3, 400
TIMES = (0.0, 0.25, 0.5)
CELLS = (100, 200)            # the coarse run (both engines) and its refinement (pde only)
Z = 4.0                       # standard errors allowed for the particles' Monte Carlo error


def define_user_problem() -> type[Problem]:
    """The class statement of the user's problem (registers it, as any Problem subclass with a name does)."""

    @dataclass(frozen=True)
    class ShiftedOUParams(Section):
        """[problem] keys of the user's problem."""

        section: ClassVar[str] = "problem"

        stiffness: float = rule(1.0, "float", positive, "> 0", "k in V = ½k(x − c)²")
        centre: float = rule(0.0, "float", finite, "finite", "c, the minimum of V")

    class ShiftedOU(Problem):
        """V(x) = ½k(x − c)², no interaction; ρ_0 = N(0, κ²); grid and particles in x itself."""

        name = NAME
        Params = ShiftedOUParams
        network = "potential"

        @classmethod
        def coordinates(cls, params) -> tuple[str, ...]:
            return ("x",)

        @property
        def dim(self) -> int:
            return 1

        def default_bounds(self):
            c = self.params.centre
            return ((min(0.0, c) - 6.0 * self.kappa, max(0.0, c) + 6.0 * self.kappa),)

        def potential(self, x: np.ndarray) -> np.ndarray:
            return 0.5 * self.params.stiffness * (x - self.params.centre) ** 2

        def feature_count(self, centres) -> int:
            return 0

        def grid_model(self, centres) -> GridModel:
            (x,) = centres
            return GridModel(potential=self.potential(x), features=np.zeros((0, x.size)), weights=np.zeros(0),
                             r_sharp=0.0, sq_norm=x**2, self_interaction=np.zeros(x.size),
                             log_volume=np.zeros(x.size))

        def initial_cell_averages(self, edges):
            (e,) = edges
            return np.diff(ndtr(e / self.kappa)) / np.diff(e)

        def sample_initial(self, n, rng):
            return self.kappa * rng.standard_normal((n, 1))

        def sample_data(self, n, rng):
            raise NotImplementedError("no data: the particles follow drift()")

        def reduce(self, theta):
            return np.array(theta, copy=True)

        def exact_risk(self, theta) -> float:
            return float(2.0 * self.potential(theta[:, 0]).mean())

        def drift(self, theta):
            return self.params.stiffness * (theta - self.params.centre)

    return ShiftedOU


@contextmanager
def registered_user_problem():
    """The user's problem registered for the duration of the block, and removed afterwards."""
    assert NAME not in PROBLEMS, "a previous test left the user problem registered"
    cls = define_user_problem()
    try:
        yield cls
    finally:
        PROBLEMS.pop(NAME, None)


@pytest.fixture
def user_problem():
    with registered_user_problem() as cls:
        yield cls


def config(cells: int) -> dict:
    return {"problem": {"name": NAME, "stiffness": K, "centre": CENTRE}, "init": {"kappa": KAPPA},
            "dynamics": {"t_end": T_END, "xi": XI}, "particles": {"n": N, "eps": EPS, "seed": 3},
            "pde": {"cells": [cells]}, "output": {"every": EVERY}}


def exact_law(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of ρ_t (module docstring)."""
    decay = np.exp(-2.0 * XI * K * np.asarray(t))
    return CENTRE * (1.0 - decay), KAPPA * decay


def exact_risk(t: np.ndarray) -> np.ndarray:
    m, s = exact_law(t)
    return K * ((m - CENTRE) ** 2 + s**2)


def pde_errors(pde: xr.Dataset) -> dict[str, np.ndarray]:
    """Per save time: L1 error of the cell averages against the exact ones, error of the grid mean against the
    grid mean of the exact cell averages, and error of R against the closed form."""
    x = pde["x"].values
    h = x[1] - x[0]
    edges = np.concatenate([x - h / 2, [x[-1] + h / 2]])
    m, s = exact_law(pde["time"].values)
    exact = np.array([np.diff(ndtr((edges - mt) / st)) / h for mt, st in zip(m, s)])
    rho = pde["density"].values
    return {"l1": np.abs(rho - exact).sum(axis=1) * h, "mean": np.abs((rho - exact) @ x) * h,
            "risk": np.abs(pde["risk"].values - exact_risk(pde["time"].values))}


def test_class_statement_registers_and_the_fixture_cleans_up():
    builtins = dict(PROBLEMS)
    with registered_user_problem() as cls:
        assert PROBLEMS[NAME] is cls
        assert set(PROBLEMS) == set(builtins) | {NAME}
        cfg = Config.from_dict(config(CELLS[0]))          # configs can name it, with its own keys
        assert cfg.problem.name == NAME and cfg.problem.params == cls.Params(stiffness=K, centre=CENTRE)
        assert cfg.coordinates == ("x",)
    assert PROBLEMS == builtins


def test_user_problem_runs_end_to_end(user_problem):
    with mfdyn.run(config(CELLS[0])) as run, mfdyn.run(config(CELLS[1]), engine="pde") as fine:
        assert run.status == "completed" and fine.status == "completed"
        assert run.config.problem.name == NAME
        pde, parts = run.pde, run.particles
        assert isinstance(pde, xr.Dataset) and isinstance(parts, xr.Dataset)

        # coordinates and snapshot counts
        problem = user_problem(run.config.problem.params, run.config.init)
        (lo, hi), = problem.default_bounds()
        assert dict(pde.sizes) == {"time": len(TIMES), "x": CELLS[0]}
        np.testing.assert_allclose(pde["time"].values, TIMES, rtol=0, atol=1e-12)
        np.testing.assert_allclose(pde["x"].values, lo + (np.arange(CELLS[0]) + 0.5) * (hi - lo) / CELLS[0],
                                   rtol=0, atol=1e-12)
        assert pde["density"].dims == ("time", "x")
        assert dict(parts.sizes) == {"time": len(TIMES), "particle": N, "component": 1, "coordinate": 1}
        np.testing.assert_allclose(parts["time"].values, TIMES, rtol=0, atol=1e-12)
        assert parts["theta"].dims == ("time", "particle", "component")

        # the PDE: mass ∫ρ_0 (the exact CDF difference) conserved to round-off
        mass0 = ndtr(hi / KAPPA) - ndtr(lo / KAPPA)
        for ds in (pde, fine.pde):
            np.testing.assert_allclose(ds["mass"].values, mass0, rtol=1e-12, atol=0)

        # ... the exact solution, with errors of second order in h: each falls ≥ 3× (order > 1.58) per halving
        coarse, refined = pde_errors(pde), pde_errors(fine.pde)
        assert coarse["l1"][0] < 1e-12 and coarse["mean"][0] < 1e-12     # ρ_0: exact cell averages
        for key in ("l1", "mean", "risk"):
            ratio = coarse[key][-1] / refined[key][-1]
            assert ratio > 3.0, (key, coarse[key], refined[key])
        assert refined["l1"][-1] < 0.01

        # the particles: exact Euler steps of the drift, the stored z = reduce(θ), the stored R_N = exact_risk
        theta = parts["theta"].values
        steps = parts["steps"].values
        np.testing.assert_array_equal(steps, np.round(np.array(TIMES) / EPS))
        factor = (1.0 - 2.0 * EPS * XI * K) ** steps
        np.testing.assert_allclose(theta, CENTRE + (theta[0] - CENTRE) * factor[:, None, None], rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(parts["z"].values, theta)
        np.testing.assert_allclose(parts["risk"].values, [problem.exact_risk(th) for th in theta], rtol=1e-14)

        # the comparison: the engines agree within the particles' Monte Carlo error, plus the known
        # deterministic gaps (the grid's error against the closed form; Euler's factor against e^{−2ξkt})
        comparison = run.compare()
        table = comparison.table
        np.testing.assert_allclose(table["time"], TIMES, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(table["risk_pde"], pde["risk"].values)
        np.testing.assert_array_equal(table["risk_sgd"], parts["risk"].values)
        assert "quantiles_pde_x" in table and "quantiles_sgd_x" in table and "w1" in table
        np.testing.assert_allclose(table["risk_pde_finite_n"], table["risk_pde"], rtol=0, atol=1e-15)  # U ≡ 0
        squared = K * (theta[0, :, 0] - CENTRE) ** 2                  # R_N at t = 0 is the mean of these
        sem = squared.std(ddof=1) / math.sqrt(N) * factor**2
        m, s = exact_law(np.array(TIMES))
        euler = np.abs(K * ((m - CENTRE) ** 2 + s**2) * (factor**2 / np.exp(-4.0 * XI * K * np.array(TIMES)) - 1.0))
        assert np.all(np.abs(table["risk_gap"]) <= Z * sem + coarse["risk"] + euler), table["risk_gap"]
        text = str(comparison)
        assert "PDE vs SGD" in text and f"N = {N}" in text


def test_unknown_problem_error_lists_the_user_problem(user_problem):
    with pytest.raises(mfdyn.ConfigError) as error:
        mfdyn.run({"problem": {"name": "no_such_problem"}, "dynamics": {"t_end": 1.0}})
    message = str(error.value)
    assert "problem.name" in message and "no_such_problem" in message
    for name in PROBLEMS:
        assert repr(name) in message, (name, message)
    assert repr(NAME) in message
    # the user's own keys are validated by their rules, like the built-in problems' keys
    bad = config(CELLS[0])
    bad["problem"]["stiffness"] = -1.0
    with pytest.raises(mfdyn.ConfigError, match=r"problem\.stiffness: must be a number > 0"):
        mfdyn.run(bad)


def test_coupling_a_problem_without_the_gradients_is_refused_before_any_file(user_problem, tmp_path, capsys):
    """particles.coupled on a problem that defines neither population_gradient nor field_gradient (docs/math.md
    §8): one line naming the key, the problem and the problems that can, exit 2, no file."""
    from validation.cli import main

    assert not user_problem.can_couple()
    path = tmp_path / "user.toml"
    path.write_text(mfdyn.Config.from_dict(config(CELLS[0])).to_toml())
    out = tmp_path / "run.h5"
    assert main(["run", str(path), "--set", "particles.coupled=true", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "particles.coupled" in err and NAME in err and "teacher_student" in err, err
    assert not out.exists()


def test_a_second_class_with_the_same_name_is_refused(user_problem):
    with pytest.raises(TypeError, match=NAME):
        class AnotherProblem(Problem):      # the class statement is the test
            name = NAME
            Params = user_problem.Params
            network = "potential"
    with pytest.raises(TypeError, match=NAME):
        class Renamed(user_problem):        # a subclass that claims its parent's name
            name = NAME
    assert PROBLEMS[NAME] is user_problem

    class Family(user_problem):             # no name of its own: an abstract family, not registered
        pass
    assert PROBLEMS[NAME] is user_problem and Family not in PROBLEMS.values()
