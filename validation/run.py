"""`mfdyn run` / `mfdyn gibbs`: the engines on one config, one HDF5 file (DESIGN.md, "The data path").

Each engine first lays out its datasets, then the file enters SWMR mode and the engines only append
snapshots (mfdyn.io.RunWriter). A run resumes from its file (resume()): the completed snapshots are
copied into a fresh file, and each engine continues from its last snapshot, ending with the same
numbers as a run that was never stopped.
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from mfdyn.config import Config, load_config
from mfdyn.errors import BlowUp
from mfdyn.io import RunWriter, completed, open_run
from mfdyn.problems import Problem, make_problem
from particles import ParticleState, run_sgd
from pde import Grid, PotentialOperator, solve
from pde.gibbs import gibbs_fixed_point
from pde.potential import check_memory
from pde.solve import PDEState
from validation.compare import comparison_table, write_comparison

ENGINES = ("both", "pde", "particles")
# Mass fraction in the outermost cell layer above which we say the density has reached the domain edge
BOUNDARY_MASS_TOL = 1e-6
MASS_DRIFT_TOL = 1e-9       # relative: more than round-off means the run has gone wrong


class Progress:
    """One status line on stderr when it is a terminal; silent otherwise (CI, pipes)."""

    def __init__(self, label: str, t_end: float):
        self.label, self.t_end = label, t_end
        self.start = time.perf_counter()
        self.live = sys.stderr.isatty()

    def update(self, t: float, steps: int) -> None:
        if not self.live:
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed * (self.t_end - t) / t if t > 0 else float("nan")
        print(f"\r{self.label}: t = {t:.4g} / {self.t_end:.4g}  {steps / max(elapsed, 1e-9):.0f} steps/s  "
              f"elapsed {elapsed:.1f} s  ETA {eta:.1f} s ", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.live:
            print(file=sys.stderr)


def warn(message: str) -> None:
    print(f"mfdyn: warning: {message}", file=sys.stderr)


def build_grid(problem: Problem, config: Config) -> Grid:
    """The grid a config asks for: pde.bounds (default: the problem's) and pde.cells per axis."""
    bounds = config.pde.bounds or problem.default_bounds()
    cells = config.pde.cells * len(bounds) if len(config.pde.cells) == 1 else config.pde.cells
    return Grid(tuple(bounds), tuple(cells), problem.coords)


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


class PDEEngine:
    """The grid solver on a config, writing /pde."""

    group = "pde"

    def __init__(self, problem: Problem, config: Config):
        self.problem, self.config = problem, config
        self.grid = build_grid(problem, config)
        check_memory(problem.feature_count(self.grid.centres), int(np.prod(self.grid.shape)), config.pde.memory_gb)

    def prepare(self) -> None:
        """Build Φ and ρ_0 (the expensive part), after the inputs are known to be valid."""
        self.op = PotentialOperator(self.problem.grid_model(self.grid.centres), self.grid, self.config.dynamics.lam,
                                    self.config.dynamics.beta)
        self.rho0 = self.problem.initial_cell_averages(self.grid.edges)

    def layout(self, writer: RunWriter) -> None:
        writer.scale("pde", "time", units="t (SGD clock t = kε)")
        for name, centres in zip(self.grid.names, self.grid.centres):
            writer.scale("pde", name, centres, long_name=f"cell centres of {name}")
        writer.series("pde", "density", self.grid.shape, ("time",) + self.grid.names, compress=True,
                      long_name="cell averages of the density in " + ", ".join(self.grid.names))
        for name, desc in (("risk", "R(ρ), MATH §1"), ("free_energy", "F = ½R_λ + β⁻¹∫ρ log(ρ/J), MATH §2"),
                           ("mass", "∫ρ"), ("finite_n_term", "∫U(θ,θ)dρ − ∬U dρdρ: E R_N = R + this/N"),
                           ("steps", "accepted time steps so far"),
                           ("dt_next", "the explicit stepper's next dt (error control), to resume exactly")):
            writer.series("pde", name, (), ("time",), long_name=desc)
        writer.group("pde").attrs.update({"kernel_features": self.op.phi.shape[0],
                                          "kernel_features_built": self.op.features_built,
                                          "kernel_dropped_eigenvalue": self.op.dropped_eigenvalue})

    def row(self, state: PDEState) -> dict:
        rho, op = state.rho, self.op
        return {"time": state.t, "density": rho, "risk": op.risk(rho), "free_energy": op.free_energy(rho),
                "mass": self.grid.integrate(rho), "finite_n_term": op.finite_n_term(rho),
                "steps": state.steps, "dt_next": state.dt_next}

    def run(self, writer: RunWriter, start: PDEState | None = None) -> None:
        """Solve to t_end (from `start`, a saved state, if given), appending a row per save time."""
        cfg, pde = self.config, self.config.pde
        times = cfg.save_times()
        mass0 = self.grid.integrate(self.rho0)
        if start is None:
            start = PDEState(0.0, self.rho0, 0, 0)
            times_left = times
        else:
            times_left = [t for t in times if t > start.t + 1e-12 * max(1.0, start.t)]
        worst = 0.0
        progress = Progress("pde", cfg.dynamics.t_end)
        for state in solve(self.op, start.rho, times_left, cfg.dynamics.xi, pde.cfl, pde.stepper, pde.rtol or None,
                           pde.dt, t0=start.t, dt_next=start.dt_next, steps0=start.steps):
            drift = abs(self.grid.integrate(state.rho) - mass0) / mass0
            if drift > MASS_DRIFT_TOL:
                raise BlowUp(f"PDE mass drifted by {drift:.1e} (relative) by t = {state.t:.6g}; likely fix: "
                             "a smaller pde.cfl or a finer grid")
            writer.append("pde", self.row(state))
            edge = boundary_mass(state.rho, self.grid, self.problem.natural_lower)
            if edge > BOUNDARY_MASS_TOL and worst <= BOUNDARY_MASS_TOL:
                warn(f"PDE mass reached the edge of the domain at t = {state.t:.4g} (fraction {edge:.2e} in the "
                     f"outermost cells); enlarge pde.bounds")
            worst = max(worst, edge)
            writer.set_attrs("pde", steps=state.steps, rejected_steps=state.rejected, boundary_mass_max=worst,
                             mass_reached_boundary=worst > BOUNDARY_MASS_TOL)
            progress.update(state.t, state.steps)
        progress.done()


class ParticleEngine:
    """The N-particle SGD on a config, writing /particles."""

    group = "particles"

    def __init__(self, problem: Problem, config: Config):
        self.problem, self.config = problem, config

    def prepare(self) -> None:
        pass

    def layout(self, writer: RunWriter) -> None:
        n, problem = self.config.particles.n, self.problem
        writer.scale("particles", "time", units="t = kε")
        writer.scale("particles", "particle", np.arange(n), long_name="particle index i")
        writer.scale("particles", "component", np.arange(problem.dim), long_name="index of θ's components")
        writer.scale("particles", "coordinate", np.arange(len(problem.coords)),
                     long_name="reduced coordinate: " + ", ".join(problem.coords))
        writer.series("particles", "theta", (n, problem.dim), ("time", "particle", "component"), compress=True,
                      long_name="particle parameters θ_i in full space")
        writer.series("particles", "z", (n, len(problem.coords)), ("time", "particle", "coordinate"),
                      compress=True, long_name="reduced coordinates " + ", ".join(problem.coords))
        writer.series("particles", "risk", (), ("time",), long_name="exact population risk R_N (MATH §4)")
        writer.series("particles", "steps", (), ("time",), long_name="SGD steps so far")
        writer.group("particles").attrs["coords"] = ",".join(problem.coords)

    def run(self, writer: RunWriter, start: ParticleState | None = None) -> None:
        p, dyn = self.config.particles, self.config.dynamics
        times = self.config.save_times()
        if start is not None:
            times = [t for t in times if t > start.t + 1e-12 * max(1.0, start.t)]
        progress = Progress("particles", dyn.t_end)
        for state in run_sgd(self.problem, p.n, p.eps, dyn.xi, dyn.lam, p.batch, p.seed, times, dyn.beta, start):
            risk = np.nan                             # output.particle_risk = false: not computed
            if self.config.output.particle_risk:
                with np.errstate(all="ignore"):      # huge-but-finite particles: the check below says so
                    risk = self.problem.exact_risk(state.theta)
            if self.config.output.particle_risk and not np.isfinite(risk):
                raise BlowUp(f"the particles' risk became non-finite at t = {state.t:.6g} (weights of size "
                             f"{np.abs(state.theta).max():.1e}); likely fix: a smaller particles.eps (now {p.eps:g})")
            writer.append("particles", {"time": state.t, "theta": state.theta,
                                        "z": self.problem.reduce(state.theta), "risk": risk, "steps": state.steps})
            progress.update(state.t, state.steps)
        progress.done()


def _engines(problem: Problem, config: Config, engine: str) -> list:
    """The engines an --engine choice asks for; building them checks the grid's memory (no file yet)."""
    out = []
    if engine in ("both", "pde"):
        out.append(PDEEngine(problem, config))
    if engine in ("both", "particles"):
        out.append(ParticleEngine(problem, config))
    return out


class CompileClock:
    """Seconds Numba has spent compiling (not loading from its cache) since the clock was installed."""

    def __init__(self, listener):
        self.listener = listener

    @property
    def seconds(self) -> float:
        return self.listener.duration if self.listener.done else 0.0


@contextmanager
def compile_timer():
    """Install a CompileClock for the block; read .seconds at any time inside it."""
    from numba.core import event

    listener = event.TimingListener()
    with event.install_listener("numba:compile", listener):
        yield CompileClock(listener)


def _finish(writer: RunWriter, engine: str, started: float, compiled: CompileClock) -> None:
    writer.set_attrs("/", wall_seconds=time.perf_counter() - started, compile_seconds=compiled.seconds)
    writer.finish("completed", (lambda f: write_comparison(f, comparison_table(f))) if engine == "both" else None)


def execute(config: Config, out: Path, engine: str = "both") -> Path:
    """Run the engines a config asks for into the new file `out`; return its path."""
    started = time.perf_counter()
    problem = make_problem(config)
    engines = _engines(problem, config, engine)
    with RunWriter(out, config.to_toml(), config.particles.seed, config.overrides) as writer, compile_timer() as ct:
        writer.file.attrs["engine"] = engine
        writer.file.attrs["seed_entropy"] = str(np.random.SeedSequence(config.particles.seed).entropy)
        for e in engines:
            e.prepare()
            e.layout(writer)
        writer.start()
        for e in engines:
            e.run(writer)
        _finish(writer, engine, started, ct)
    return out


def _copy_completed(source: h5py.File, target: h5py.File, group: str) -> int:
    """Copy the complete snapshots of source/group (len(time) rows) into target's laid-out group."""
    n = completed(source, group)
    for name, ds in source[group].items():
        if name in target[group] and ds.maxshape[0] is None:
            target[group][name].resize(n, axis=0)
            target[group][name][:] = ds[:n]
    return n


def resume(path: Path) -> Path:
    """Continue the run in `path` from its last complete snapshots; the result equals an uninterrupted run.

    The completed snapshots are copied into a fresh file beside it, which then replaces it, so that a
    crash while resuming again leaves a valid file. Raises ValueError if there is nothing to resume.
    """
    started = time.perf_counter()
    with open_run(path) as old:
        status = str(old.attrs["status"])
        if status == "completed":
            raise ValueError(f"{path}: the run is complete; nothing to resume")
        if str(old.attrs.get("engine", "")) not in ENGINES:
            raise ValueError(f"{path}: only `mfdyn run` files can be resumed (this one is {old.attrs.get('engine')})")
        config = load_config(str(old.attrs["config_toml"]), from_text=True)
        engine = str(old.attrs["engine"])
        keep = {k: old.attrs[k] for k in ("created_utc",)}
        problem = make_problem(config)
        engines = _engines(problem, config, engine)
        temp = path.with_name(f".{path.name}.resume")
        writer = RunWriter(temp, config.to_toml(), config.particles.seed, config.overrides)
        with writer, compile_timer() as ct:
            writer.file.attrs.update(keep)
            writer.file.attrs["engine"] = engine
            writer.file.attrs["resumed_from_status"] = status
            writer.file.attrs["seed_entropy"] = str(np.random.SeedSequence(config.particles.seed).entropy)
            starts = []
            for e in engines:
                e.prepare()
                e.layout(writer)
                n = _copy_completed(old, writer.file, e.group) if e.group in old else 0
                starts.append(_start_state(old, e, n))
            old.close()
            writer.start()
            os.replace(temp, path)          # the open handle follows the file
            writer.path = path
            for e, start in zip(engines, starts):
                e.run(writer, start)
            _finish(writer, engine, started, ct)
    return path


def _start_state(old: h5py.File, engine, n: int):
    """The state an engine continues from: its last complete snapshot, or None to start afresh."""
    if n == 0:
        return None
    g = old[engine.group]
    if engine.group == "pde":
        return PDEState(float(g["time"][n - 1]), g["density"][n - 1], int(g["steps"][n - 1]), 0,
                        float(g["dt_next"][n - 1]))
    return ParticleState(float(g["time"][n - 1]), g["theta"][n - 1], int(g["steps"][n - 1]))


def execute_gibbs(config: Config, out: Path) -> tuple[Path, bool]:
    """The self-consistent Gibbs state of a config's problem on its grid, into the new file `out`:
    /pde as for a run, with one row at time = inf, and /gibbs/residual per iteration. Returns
    (path, converged); a run that does not converge keeps its last iterate, status "failed: …"."""
    problem = make_problem(config)
    engine = PDEEngine(problem, config)
    with RunWriter(out, config.to_toml(), config.particles.seed, config.overrides) as writer:
        writer.file.attrs["engine"] = "gibbs"
        engine.prepare()
        engine.layout(writer)
        result = gibbs_fixed_point(engine.op, engine.rho0, config.pde.gibbs_damping, config.pde.gibbs_tol,
                                   config.pde.gibbs_max_iter)
        g = writer.group("gibbs")
        g.create_dataset("residual", data=np.array(result.residuals))
        g.attrs.update({"converged": result.converged, "iterations": len(result.residuals),
                        "final_damping": result.damping, "tolerance": config.pde.gibbs_tol})
        writer.start()
        writer.append("pde", engine.row(PDEState(float("inf"), result.rho, 0, 0)))
        writer.finish("completed" if result.converged else
                      f"failed: not converged, residual {result.residuals[-1]:.2e} after {len(result.residuals)} iterations")
    return out, result.converged
