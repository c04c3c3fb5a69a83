"""`mfdyn run`: both engines on one config, one HDF5 file (DESIGN.md, "The data path")."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from mfdyn.config import Config
from mfdyn.io import RunWriter
from mfdyn.problems import Problem, make_problem
from particles import run_sgd
from pde import Grid, PotentialOperator, solve
from pde.gibbs import gibbs_fixed_point
from pde.potential import check_memory
from validation.compare import comparison_table, write_comparison

ENGINES = ("both", "pde", "particles")
# Mass fraction in the outermost cell layer above which we say the density has reached the domain edge
BOUNDARY_MASS_TOL = 1e-6


class Progress:
    """One status line on stderr when it is a terminal; silent otherwise (CI, pipes)."""

    def __init__(self, label: str, t_end: float):
        self.label, self.t_end = label, t_end
        self.start = time.perf_counter()
        self.live = sys.stderr.isatty()

    def update(self, t: float) -> None:
        if not self.live:
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed * (self.t_end - t) / t if t > 0 else float("nan")
        print(f"\r{self.label}: t = {t:.4g} / {self.t_end:.4g}  elapsed {elapsed:.1f} s  ETA {eta:.1f} s ",
              end="", file=sys.stderr, flush=True)

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


def _pde_layout(writer: RunWriter, grid: Grid) -> None:
    """/pde: time and coordinate scales, density and the per-save scalars (DESIGN.md)."""
    writer.scale("pde", "time", units="t (SGD clock t = kε)")
    for name, centres in zip(grid.names, grid.centres):
        writer.scale("pde", name, centres, long_name=f"cell centres of {name}")
    dims = ("time",) + grid.names
    writer.series("pde", "density", grid.shape, dims, compress=True,
                  long_name="cell averages of the density in " + ", ".join(grid.names))
    for name, desc in (("risk", "R(ρ), MATH §1"), ("free_energy", "F = ½R_λ + β⁻¹∫ρ log ρ, MATH §2"),
                       ("mass", "∫ρ"), ("finite_n_term", "∫U(θ,θ)dρ − ∬U dρdρ: E R_N = R + this/N")):
        writer.series("pde", name, (), ("time",), long_name=desc)


def _pde_row(op: PotentialOperator, t: float, rho: np.ndarray) -> dict:
    return {"time": t, "density": rho, "risk": op.risk(rho), "free_energy": op.free_energy(rho),
            "mass": op.grid.integrate(rho), "finite_n_term": op.finite_n_term(rho)}


def _operator(problem: Problem, config: Config, grid: Grid) -> PotentialOperator:
    return PotentialOperator(problem.grid_model(grid.centres), grid, config.dynamics.lam, config.dynamics.beta)


def run_pde(problem: Problem, config: Config, grid: Grid, writer: RunWriter) -> None:
    """Solve on the grid; write density, risk, free energy, mass and the finite-N term at each save."""
    op = _operator(problem, config, grid)
    rho0 = problem.initial_cell_averages(grid.edges)
    _pde_layout(writer, grid)
    group = writer.group("pde")
    group.attrs["kernel_features"] = op.phi.shape[0]
    group.attrs["kernel_features_built"] = op.features_built
    group.attrs["kernel_dropped_eigenvalue"] = op.dropped_eigenvalue
    group.attrs["mass_reached_boundary"] = False
    worst = 0.0
    progress = Progress("pde", config.dynamics.t_end)
    pde = config.pde
    for state in solve(op, rho0, config.save_times(), config.dynamics.xi, pde.cfl, pde.stepper,
                       pde.rtol or None, pde.dt):
        rho = state.rho
        writer.append("pde", _pde_row(op, state.t, rho))
        edge = boundary_mass(rho, grid, problem.natural_lower)
        if edge > BOUNDARY_MASS_TOL and not group.attrs["mass_reached_boundary"]:
            group.attrs["mass_reached_boundary"] = True
            warn(f"PDE mass reached the edge of the domain at t = {state.t:.4g} (fraction {edge:.2e} in the "
                 f"outermost cells); enlarge pde.bounds")
        worst = max(worst, edge)
        group.attrs.update({"steps": state.steps, "rejected_steps": state.rejected,
                            "boundary_mass_max": worst})
        progress.update(state.t)
    progress.done()


def run_particles(problem: Problem, config: Config, writer: RunWriter) -> None:
    """Run SGD; write θ, the reduced coordinates and the exact risk R_N at each save."""
    p, dyn = config.particles, config.dynamics
    writer.scale("particles", "time", units="t = kε")
    writer.series("particles", "theta", (p.n, problem.dim), ("time",), compress=True,
                  long_name="particle parameters θ_i in full space")
    writer.series("particles", "z", (p.n, len(problem.coords)), ("time",), compress=True,
                  long_name="reduced coordinates " + ", ".join(problem.coords))
    writer.series("particles", "risk", (), ("time",), long_name="exact population risk R_N (MATH §4)")
    writer.group("particles").attrs["coords"] = ",".join(problem.coords)
    progress = Progress("particles", dyn.t_end)
    for state in run_sgd(problem, p.n, p.eps, dyn.xi, dyn.lam, p.batch, p.seed, config.save_times(), dyn.beta):
        writer.append("particles", {"time": state.t, "theta": state.theta,
                                    "z": problem.reduce(state.theta),
                                    "risk": problem.exact_risk(state.theta)})
        progress.update(state.t)
    progress.done()


def execute(config: Config, out: Path, engine: str = "both") -> Path:
    """Run the engines a config asks for into the new file `out`; return its path."""
    problem = make_problem(config)
    if engine in ("both", "pde"):          # refuse an oversized grid before any file exists
        grid = build_grid(problem, config)
        check_memory(problem.feature_count(grid.centres), int(np.prod(grid.shape)), config.pde.memory_gb)
    with RunWriter(out, config.to_toml(), config.particles.seed, config.overrides) as writer:
        writer.file.attrs["engine"] = engine
        if engine in ("both", "pde"):
            run_pde(problem, config, grid, writer)
        if engine in ("both", "particles"):
            run_particles(problem, config, writer)
        if engine == "both":
            write_comparison(writer.file, comparison_table(writer.file))
        writer.mark_completed()
    return out


def execute_gibbs(config: Config, out: Path) -> tuple[Path, bool]:
    """The self-consistent Gibbs state of a config's problem on its grid, into the new file `out`:
    /pde as for a run, with one row at time = inf, and /gibbs/residual per iteration. Returns
    (path, converged); a run that does not converge keeps its last iterate, status "failed: …"."""
    problem = make_problem(config)
    grid = build_grid(problem, config)
    check_memory(problem.feature_count(grid.centres), int(np.prod(grid.shape)), config.pde.memory_gb)
    with RunWriter(out, config.to_toml(), config.particles.seed, config.overrides) as writer:
        writer.file.attrs["engine"] = "gibbs"
        op = _operator(problem, config, grid)
        result = gibbs_fixed_point(op, problem.initial_cell_averages(grid.edges), config.pde.gibbs_damping,
                                   config.pde.gibbs_tol, config.pde.gibbs_max_iter)
        _pde_layout(writer, grid)
        writer.append("pde", _pde_row(op, float("inf"), result.rho))
        g = writer.group("gibbs")
        g.create_dataset("residual", data=np.array(result.residuals))
        g.attrs.update({"converged": result.converged, "iterations": len(result.residuals),
                        "final_damping": result.damping, "tolerance": config.pde.gibbs_tol})
        if result.converged:
            writer.mark_completed()
        else:
            writer.file.attrs["status"] = (f"failed: not converged, residual {result.residuals[-1]:.2e} after "
                                           f"{len(result.residuals)} iterations")
    return out, result.converged
