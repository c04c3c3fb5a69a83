"""The grid solver as an engine: a config's grid, Ψ operator and ρ_0, solved into the group /pde
(docs/math.md §5; the protocol in mfdyn/engines.py)."""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from mfdyn.config import Config
from mfdyn.engines import Snapshot, register_engine, remaining_times
from mfdyn.errors import BlowUp
from mfdyn.grid import Grid, build_grid
from mfdyn.problems import make_problem
from mfdyn.tangent import kernel_change, supports_tangent_kernel
from mfdyn.transport import W2Displacement
from pde.potential import PotentialOperator, check_memory
from pde.solve import PDEState, auto_stepper, solve, stiffness
from pde.steppers import STEPPERS, ExplicitSSP

# Mass fraction in the outermost cell layer above which we say the density has reached the domain edge
BOUNDARY_MASS_TOL = 1e-6
MASS_DRIFT_TOL = 1e-9       # relative: more than round-off means the run has gone wrong
MASS_CUT_TOL = 1e-3         # a grid holding less of ρ_0 than 1 − this is refused before the run
SLOW_STEP_RATIO = 1000      # a noisy run whose explicit first step is this many times below output.every is warned


class _FirstStep(Exception):
    """Stops a solve after its first accepted step (first_explicit_step)."""


def first_explicit_step(op: PotentialOperator, rho: np.ndarray, xi: float, cfl: float, rtol: float | None,
                        horizon: float, stepper: str) -> float:
    """The dt an explicit stepper's first step from ρ takes (at most horizon): the solver's own step, taken
    once by pde.solve.solve and stopped there, so its stable-step bound and error control decide it."""
    taken = []

    def stop(t: float, _rho: np.ndarray) -> None:
        taken.append(t)
        raise _FirstStep

    try:
        next(solve(op, rho, [horizon], xi, cfl, stepper, rtol, on_step=stop))
    except _FirstStep:
        pass
    return taken[0]


def boundary_mass(rho: np.ndarray, grid: Grid, natural_lower: tuple[bool, ...]) -> float:
    """Mass in the outermost cell layer, except at lower faces that are natural edges (r = 0)."""
    layer = np.zeros(grid.shape, dtype=bool)
    for axis in range(grid.ndim):
        idx = [slice(None)] * grid.ndim
        idx[axis] = -1
        layer[tuple(idx)] = True
        if not natural_lower[axis]:
            idx[axis] = 0
            layer[tuple(idx)] = True
    return float(rho[layer].sum() * grid.cell_volume)


@register_engine
class PDEEngine:
    """The finite-volume solver on a config, writing /pde: the density and R, F, mass per save time."""

    name = "pde"

    def __init__(self, problem, config):
        self.problem, self.config = problem, config
        self.grid = build_grid(problem, config)
        cells = int(np.prod(self.grid.shape))
        check_memory(None, cells, config.pde.memory_gb)          # at once, before a pass over the cells
        check_memory(problem.feature_count(self.grid.centres), cells, config.pde.memory_gb)
        self.rho0 = problem.initial_cell_averages(self.grid.edges)        # closed form: cheap, and checked here
        held = self.grid.integrate(self.rho0)
        if held < 1.0 - MASS_CUT_TOL:
            raise ValueError(f"pde.bounds: the grid holds only {100 * held:.2f}% of ρ_0 "
                             f"({', '.join(f'[{lo:g}, {hi:g}]' for lo, hi in self.grid.bounds)}); widen pde.bounds")

    def prepare(self, diagnostics: bool = True) -> None:
        """Build Φ and ρ_0 (the expensive part), after the inputs are known to be valid; diagnostics = False
        skips what only the snapshots' rows need (a solve for another engine, e.g. the tracers)."""
        dyn = self.config.dynamics
        self.op = PotentialOperator(self.problem.grid_model(self.grid.centres), self.grid, dyn.lam, dyn.beta,
                                    alpha=dyn.alpha, reference=self.rho0 if dyn.centered else None)
        pde = self.config.pde
        # "auto" decides from ρ_0 (also on a resume: the same choice), and the file records it
        self.stepper, self.stiffness = (auto_stepper(self.op, self.rho0, dyn.xi, pde.cfl) if pde.stepper == "auto"
                                        else (pde.stepper, stiffness(self.op, self.rho0, dyn.xi, pde.cfl)))
        if not diagnostics:
            return
        # Laziness (docs/math.md §7): W2(ρ_t, ρ_0), and the tangent kernel's change where the grid is θ-space
        self.displacement = W2Displacement(self.rho0, self.grid.centres, self.grid.edges)
        self.lazy = supports_tangent_kernel(self.problem) and self.problem.dim == self.grid.ndim   # grid in θ-space
        if self.lazy:
            self.kernel0 = self.kernel(self.rho0)

    def slow_step_warning(self, rho: np.ndarray) -> str | None:
        """The warning of a noisy run (β < ∞, where pde.stepper = "trbdf2" is open) on the explicit stepper whose
        first step from ρ is more than SLOW_STEP_RATIO times below output.every: the steps per unit time it
        implies, and the way out; None otherwise. After prepare()."""
        cfg = self.config
        if not issubclass(STEPPERS[self.stepper], ExplicitSSP) or math.isinf(cfg.dynamics.beta):
            return None
        dt = first_explicit_step(self.op, rho, cfg.dynamics.xi, cfg.pde.cfl, cfg.pde.rtol or None, cfg.dynamics.t_end,
                                 self.stepper)
        if dt * SLOW_STEP_RATIO >= cfg.output.every:
            return None
        return (f"the PDE's explicit stepper {self.stepper!r}: its first step is dt = {dt:.2g}, about {1 / dt:.2g} steps "
                f"per unit time ({cfg.output.every / dt:.2g} per output.every = {cfg.output.every:g}); for this noisy run "
                'pde.stepper = "trbdf2" (or "auto": implicit, second order, error-controlled) takes far fewer')

    def kernel(self, rho: np.ndarray) -> np.ndarray:
        """H_ρ on the problem's x-quadrature, from the cell masses at the cell centres."""
        return self.problem.grid_tangent_kernel(self.grid.centres, rho * self.grid.cell_volume)

    def layout(self, writer) -> None:
        writer.scale(self.name, "time", units="t (SGD clock t = kε)")
        for name, centres in zip(self.grid.names, self.grid.centres):
            writer.scale(self.name, name, centres, long_name=f"cell centres of {name}")
        writer.series(self.name, "density", self.grid.shape, ("time",) + self.grid.names, compress=True,
                      long_name="cell averages of the density in " + ", ".join(self.grid.names))
        for name, desc in (("risk", "R_α(ρ), docs/math.md §1, §7"),
                           ("w2_displacement", "W2(ρ_t, ρ_0): exact in 1-D, sliced (64 directions) above, §7"),
                           ("kernel_change", "‖Q^½(H_t − H_0)Q^½‖_F / ‖Q^½H_0Q^½‖_F on the x-quadrature, §7 "
                                             "(NaN: the problem has no x-quadrature in θ-space)"),
                           ("free_energy", "F = ½R_α/α² + ½λ∫|θ|²ρ + β⁻¹∫ρ log(ρ/J), docs/math.md §2, §7"),
                           ("mass", "∫ρ"), ("finite_n_term", "α²(∫U(θ,θ)dρ − ∬U dρdρ): E R_N = R_α + this/N for iid θ_i"),
                           ("steps", "accepted time steps so far"), ("rejected_steps", "rejected time steps so far"),
                           ("dt_next", "the stepper's next dt (error control), to resume exactly")):
            writer.series(self.name, name, (), ("time",), long_name=desc)
        writer.group_attrs(self.name, coords=",".join(self.grid.names), kernel_features=self.op.phi.shape[0],
                           kernel_features_built=self.op.features_built,
                           kernel_dropped_eigenvalue=self.op.dropped_eigenvalue, stepper=self.stepper,
                           stiffness=self.stiffness)

    def row(self, state: PDEState) -> dict:
        """The datasets of one saved state."""
        rho, op = state.rho, self.op
        change = np.nan if not self.lazy else kernel_change(self.kernel(rho), self.kernel0,
                                                                  self.problem.x_quadrature()[1])
        return {"time": state.t, "density": rho, "risk": op.risk(rho), "free_energy": op.free_energy(rho),
                "w2_displacement": self.displacement(rho), "kernel_change": change,
                "mass": self.grid.integrate(rho), "finite_n_term": op.finite_n_term(rho),
                "steps": state.steps, "rejected_steps": state.rejected, "dt_next": state.dt_next}

    def run(self, start: PDEState | None = None, on_step=None) -> Iterator[Snapshot]:
        """Solve to t_end (from `start`, a saved state, if given), a snapshot per save time; on_step(t, ρ) sees
        every accepted step (pde.solve.solve).

        Raises BlowUp if the mass drifts beyond round-off; warns once if mass reaches the domain edge.
        """
        worst = 0.0 if start is None else self.resumed_edge
        slow = self.slow_step_warning(self.rho0 if start is None else start.rho)     # with the first snapshot
        for state in self.states(start, on_step):
            edge = boundary_mass(state.rho, self.grid, self.problem.natural_lower)
            warning, slow = slow, None
            if edge > BOUNDARY_MASS_TOL and worst <= BOUNDARY_MASS_TOL:
                warning = "; ".join(filter(None, (warning, f"PDE mass reached the edge of the domain at t = "
                                                  f"{state.t:.4g} (fraction {edge:.2e} in the outermost cells); "
                                                  "enlarge pde.bounds")))
            worst = max(worst, edge)
            yield Snapshot(state.t, state.steps, self.row(state),
                           {"steps": state.steps, "rejected_steps": state.rejected, "boundary_mass_max": worst,
                            "mass_reached_boundary": worst > BOUNDARY_MASS_TOL}, warning)

    def states(self, start: PDEState | None = None, on_step=None) -> Iterator[PDEState]:
        """The solver's states at the save times after `start` (all of them from ρ_0 if None), mass checked: what
        run() makes its snapshots of, and what another engine can follow without them."""
        cfg, pde = self.config, self.config.pde
        mass0 = self.grid.integrate(self.rho0)
        times = remaining_times(cfg.save_times(), None if start is None else start.t)
        if start is None:
            start = PDEState(0.0, self.rho0, 0, 0)
        for state in solve(self.op, start.rho, times, cfg.dynamics.xi, pde.cfl, self.stepper, pde.rtol or None,
                           pde.dt, t0=start.t, dt_next=start.dt_next, steps0=start.steps, on_step=on_step):
            state.rejected += start.rejected
            drift = abs(self.grid.integrate(state.rho) - mass0) / mass0
            if drift > MASS_DRIFT_TOL:
                raise BlowUp(f"PDE mass drifted by {drift:.1e} (relative) by t = {state.t:.6g}; likely fix: "
                             "a smaller pde.cfl or a finer grid")
            yield state

    def recorded_stepper(self, run_file, group: str) -> str:
        """The stepper a run file's `group` (else its /pde) records, which a resumed run must keep whatever "auto"
        picks today (dt_next and the steps are that stepper's). A file without the record was made before
        "auto" took ssprk43, when it took SSP-RK3 where it now takes ssprk43. After prepare()."""
        for name in dict.fromkeys((group, "pde")):             # /pde's own resume looks once
            if run_file.has(name) and "stepper" in run_file.group_attrs(name):
                recorded = str(run_file.group_attrs(name)["stepper"])
                if recorded not in STEPPERS:
                    raise ValueError(f"{run_file.name}: /{name} records pde.stepper {recorded!r}, which this version "
                                     f"does not have (it has {', '.join(sorted(STEPPERS))}); resume it with the "
                                     "version that made it")
                return recorded
        return "explicit" if self.config.pde.stepper == "auto" and self.stepper == "ssprk43" else self.stepper

    def start_state(self, run_file, n: int) -> PDEState | None:
        """The state of the n-th complete snapshot of /pde (None for n = 0: start afresh). It also sets
        resumed_attrs, the group's attributes as they stood then, so that a resumed run ends with those of an
        uninterrupted one even when the PDE had finished before the kill."""
        if n == 0:
            self.resumed_attrs = {}
            return None

        def value(name):
            return run_file.row(self.name, name, n - 1)

        self.resumed_edge = max(boundary_mass(run_file.row(self.name, "density", k), self.grid, self.problem.natural_lower)
                                for k in range(n))
        self.stepper = self.recorded_stepper(run_file, self.name)
        self.resumed_attrs = {"steps": int(value("steps")), "rejected_steps": int(value("rejected_steps")),
                              "stepper": self.stepper,
                              "boundary_mass_max": self.resumed_edge,
                              "mass_reached_boundary": self.resumed_edge > BOUNDARY_MASS_TOL}
        return PDEState(float(value("time")), value("density"), int(value("steps")), int(value("rejected_steps")),
                        float(value("dt_next")))


def slow_step_warning(config: Config) -> str | None:
    """PDEEngine.slow_step_warning of a config's PDE from ρ_0, without running it (it builds the grid and Ψ):
    what a run of the config warns before it starts."""
    engine = PDEEngine(make_problem(config), config)
    engine.prepare(diagnostics=False)
    return engine.slow_step_warning(engine.rho0)


__all__ = ["BOUNDARY_MASS_TOL", "MASS_DRIFT_TOL", "PDEEngine", "boundary_mass", "first_explicit_step",
           "slow_step_warning"]
