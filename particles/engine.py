"""The N-particle SGD as an engine, writing the group /particles (docs/math.md §2; the protocol in
mfdyn/engines.py)."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from mfdyn.engines import Snapshot, register_engine, remaining_times
from mfdyn.errors import BlowUp
from particles.run import ParticleState, run_sgd


@register_engine
class ParticleEngine:
    """SGD (or, for data-free problems, the exact particle drift) on a config: θ, z and R_N per save time."""

    name = "particles"

    def __init__(self, problem, config):
        self.problem, self.config = problem, config

    def prepare(self) -> None:
        pass

    def layout(self, writer) -> None:
        n, problem, g = self.config.particles.n, self.problem, self.name
        writer.scale(g, "time", units="t = kε")
        writer.scale(g, "particle", np.arange(n), long_name="particle index i")
        writer.scale(g, "component", np.arange(problem.dim), long_name="index of θ's components")
        writer.scale(g, "coordinate", np.arange(len(problem.coords)),
                     long_name="reduced coordinate: " + ", ".join(problem.coords))
        writer.series(g, "theta", (n, problem.dim), ("time", "particle", "component"), compress=True,
                      long_name="particle parameters θ_i in full space")
        writer.series(g, "z", (n, len(problem.coords)), ("time", "particle", "coordinate"),
                      compress=True, long_name="reduced coordinates " + ", ".join(problem.coords))
        writer.series(g, "risk", (), ("time",), long_name="exact population risk R_N (docs/math.md §4)")
        writer.series(g, "steps", (), ("time",), long_name="SGD steps so far")
        writer.group_attrs(g, coords=",".join(problem.coords))

    def run(self, start: ParticleState | None = None) -> Iterator[Snapshot]:
        """SGD to t_end from ρ_0 (or from a saved state); raises BlowUp on non-finite particles or risk."""
        p, dyn = self.config.particles, self.config.dynamics
        times = remaining_times(self.config.save_times(), None if start is None else start.t)
        for state in run_sgd(self.problem, p.n, p.eps, dyn.xi, dyn.lam, p.batch, p.seed, times, dyn.beta, start):
            risk = np.nan                             # output.particle_risk = false: not computed
            if self.config.output.particle_risk:
                with np.errstate(all="ignore"):      # huge-but-finite particles: the check below says so
                    risk = self.problem.exact_risk(state.theta)
                if not np.isfinite(risk):
                    raise BlowUp(f"the particles' risk became non-finite at t = {state.t:.6g} (weights of size "
                                 f"{np.abs(state.theta).max():.1e}); likely fix: a smaller particles.eps "
                                 f"(now {p.eps:g})")
            yield Snapshot(state.t, state.steps, {"time": state.t, "theta": state.theta,
                                                  "z": self.problem.reduce(state.theta), "risk": risk,
                                                  "steps": state.steps})

    def start_state(self, run_file, n: int) -> ParticleState | None:
        """The state of the n-th complete snapshot of /particles (None for n = 0)."""
        if n == 0:
            return None
        return ParticleState(float(run_file.row(self.name, "time", n - 1)), run_file.row(self.name, "theta", n - 1),
                             int(run_file.row(self.name, "steps", n - 1)))


__all__ = ["ParticleEngine"]
