"""The N-particle SGD as an engine, writing the group /particles (docs/math.md §2; the protocol in
mfdyn/engines.py)."""
from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from mfdyn.engines import Snapshot, register_engine, remaining_times
from mfdyn.errors import BlowUp
from mfdyn.tangent import kernel_change, supports_tangent_kernel
from particles.run import ParticleState, initial_particles, run_sgd


def layout_cloud(writer, group: str, n: int, problem, risk: str) -> None:
    """The datasets every particle cloud has (/particles, /gd, /tracers): time, θ, z, the risk, the steps."""
    writer.scale(group, "time", units="t = kε")
    writer.scale(group, "particle", np.arange(n), long_name="particle index i")
    writer.scale(group, "component", np.arange(problem.dim), long_name="index of θ's components")
    writer.scale(group, "coordinate", np.arange(len(problem.coords)),
                 long_name="reduced coordinate: " + ", ".join(problem.coords))
    # uncompressed: a cloud's coordinates are noise to gzip (11% smaller at N = 800, d = 40, for 20× the write time)
    writer.series(group, "theta", (n, problem.dim), ("time", "particle", "component"),
                  long_name="particle parameters θ_i in full space")
    writer.series(group, "z", (n, len(problem.coords)), ("time", "particle", "coordinate"),
                  long_name="reduced coordinates " + ", ".join(problem.coords))
    writer.series(group, "risk", (), ("time",), long_name=risk)
    writer.series(group, "steps", (), ("time",), long_name="SGD steps so far (the clock t = kε)")
    writer.group_attrs(group, coords=",".join(problem.coords))


def cloud_snapshot(problem, config, t: float, theta: np.ndarray, steps: int, theta0: np.ndarray,
                   extra: dict | None = None) -> Snapshot:
    """The snapshot of a cloud: its row time, θ, z, R_N (of the centred model and output scale α where the config
    asks), steps (and `extra` datasets), with the seconds R_N took; raises BlowUp when R_N is not finite. R_N is NaN
    with output.particle_risk = false."""
    dyn = config.dynamics
    risk = np.nan                             # output.particle_risk = false: not computed
    started = time.perf_counter()
    if config.output.particle_risk:
        with np.errstate(all="ignore"):      # huge-but-finite particles: the check below says so
            risk = (problem.exact_risk(theta) if dyn.alpha == 1.0 and not dyn.centered else
                    problem.exact_risk(theta, dyn.alpha, theta0 if dyn.centered else None))
        if not np.isfinite(risk):
            raise BlowUp(f"the particles' risk became non-finite at t = {t:.6g} (weights of size "
                         f"{np.abs(theta).max():.1e}); likely fix: a smaller particles.eps (now {config.particles.eps:g})")
    row = {"time": t, "theta": theta, "z": problem.reduce(theta), "risk": risk, "steps": steps, **(extra or {})}
    return Snapshot(t, steps, row, risk_seconds=time.perf_counter() - started)


def cloud_state(run_file, group: str, n: int) -> ParticleState | None:
    """θ, t and steps of the n-th complete snapshot of a cloud's group (None for n = 0): where it resumes."""
    if n == 0:
        return None
    return ParticleState(float(run_file.row(group, "time", n - 1)), run_file.row(group, "theta", n - 1),
                         int(run_file.row(group, "steps", n - 1)))


@register_engine
class ParticleEngine:
    """SGD (or, for data-free problems, the exact particle drift) on a config: θ, z and R_N per save time."""

    name = "particles"
    resumed_attrs: dict = {}         # the group attributes a resumed run restores (none for particles)

    def __init__(self, problem, config):
        self.problem, self.config = problem, config

    def prepare(self) -> None:
        """θ(0), the reference of the laziness diagnostics (and of the centred model), and H at θ(0)."""
        p = self.config.particles
        self.theta0 = initial_particles(self.problem, p.n, p.seed)
        self.lazy = supports_tangent_kernel(self.problem)
        if self.lazy:
            self.kernel0 = self.problem.point_tangent_kernel(self.theta0, np.full(p.n, 1.0 / p.n))

    def layout(self, writer) -> None:
        g = self.name
        layout_cloud(writer, g, self.config.particles.n, self.problem, "exact population risk R_N (docs/math.md §4, §7)")
        writer.series(g, "displacement", (), ("time",),
                      long_name="sqrt((1/N) Σ|θ_i(t) − θ_i(0)|²) ≥ W2(ρ_N(t), ρ_N(0)), docs/math.md §7")
        writer.series(g, "kernel_change", (), ("time",),
                      long_name="‖Q^½(H_t − H_0)Q^½‖_F / ‖Q^½H_0Q^½‖_F of the particles' tangent kernel, §7 "
                                "(NaN: the problem has no x-quadrature)")

    def run(self, start: ParticleState | None = None) -> Iterator[Snapshot]:
        """SGD to t_end from ρ_0 (or from a saved state); raises BlowUp on non-finite particles or risk."""
        p, dyn = self.config.particles, self.config.dynamics
        times = remaining_times(self.config.save_times(), None if start is None else start.t)
        for state in run_sgd(self.problem, p.n, p.eps, dyn.xi, dyn.lam, p.batch, p.seed, times, dyn.beta, start,
                             dyn.alpha, dyn.centered, self.theta0):
            yield cloud_snapshot(self.problem, self.config, state.t, state.theta, state.steps, self.theta0,
                                 self.laziness(state.theta))

    def laziness(self, theta: np.ndarray) -> dict[str, float]:
        """The coupling displacement from θ(0) and the relative change of the tangent kernel (docs/math.md §7)."""
        n = len(theta)
        change = np.nan
        if self.lazy:
            change = kernel_change(self.problem.point_tangent_kernel(theta, np.full(n, 1.0 / n)), self.kernel0,
                                   self.problem.x_quadrature()[1])
        return {"displacement": float(np.sqrt(np.sum((theta - self.theta0) ** 2) / n)), "kernel_change": change}

    def start_state(self, run_file, n: int) -> ParticleState | None:
        """The state of the n-th complete snapshot of /particles (None for n = 0)."""
        return cloud_state(run_file, self.name, n)


__all__ = ["ParticleEngine", "cloud_snapshot", "cloud_state", "layout_cloud"]
