"""`mfdyn gibbs`: the self-consistent Gibbs state ρ* = Z⁻¹ J e^{−βΨ_λ(ρ*)} of a config's problem on its
grid, by the damped fixed-point iteration of docs/math.md §6, into a run file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mfdyn.config import Config
from mfdyn.problems import make_problem
from mfdyn.storage import RunFile, RunWriter
from pde.engine import PDEEngine
from pde.gibbs import gibbs_fixed_point
from pde.solve import PDEState


def execute_gibbs(config: Config, out: Path | None) -> tuple[RunFile, bool]:
    """/pde as for a run, with one row at time = inf, and /gibbs/residual per iteration, into the new file
    `out` (None: in memory). Returns (the file open for reading, converged); a run that does not
    converge keeps its last iterate, with status "failed: …"."""
    engine = PDEEngine(make_problem(config), config)
    with RunWriter(out, config.to_toml(), config.particles.seed, config.overrides) as writer:
        writer.set_root(engine="gibbs")
        engine.prepare()
        engine.layout(writer)
        result = gibbs_fixed_point(engine.op, engine.rho0, config.pde.gibbs_damping, config.pde.gibbs_tol,
                                   config.pde.gibbs_max_iter)
        writer.scale("gibbs", "iteration", np.arange(1, len(result.residuals) + 1), long_name="fixed-point iteration")
        writer.table("gibbs", "residual", result.residuals, ("iteration",),
                     long_name="‖T(ρ) − ρ‖₁ / mass per iteration")
        writer.group_attrs("gibbs", converged=result.converged, iterations=len(result.residuals),
                           final_damping=result.damping, tolerance=config.pde.gibbs_tol)
        writer.start()
        writer.append(engine.name, engine.row(PDEState(float("inf"), result.rho, 0, 0)))
        writer.finish("completed" if result.converged else
                      f"failed: not converged, residual {result.residuals[-1]:.2e} after {len(result.residuals)} "
                      "iterations")
    return (writer.reader() if out is None else RunFile.open(out)), result.converged


def summary(run_file: RunFile) -> str:
    """One line on how a Gibbs file's fixed-point iteration ended: its iterations (residuals evaluated) and
    its final residual ‖T(ρ) − ρ‖₁ / mass against the tolerance pde.gibbs_tol."""
    attrs = run_file.group_attrs("gibbs")
    iterations, tol = int(attrs["iterations"]), float(attrs["tolerance"])
    residual = float(run_file.fixed("gibbs", "residual")[-1])
    if attrs["converged"]:
        return f"gibbs: converged in {iterations} iterations, residual {residual:.1e} < tol {tol:g}"
    return (f"gibbs: not converged after {iterations} iterations (pde.gibbs_max_iter), residual {residual:.1e} "
            f"≥ tol {tol:g}")
