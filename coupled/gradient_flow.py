"""G, the N-particle gradient flow, as an engine writing /gd (docs/math.md §8).

dθ_i = −2ξ [∇Ψ^α(θ_i; ρ_N(t)) + λθ_i] dt + dW_i, with the exact population gradient (no data sampling),
from SGD's own θ(0) and, for β < ∞, SGD's own Brownian increments. S − G is then the SGD part of the gap:
the data noise and SGD's time discretisation.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from coupled.path import CoupledPath, noise_stream, require_coupling, stride_of
from mfdyn.engines import Snapshot, register_engine, remaining_times
from particles.engine import cloud_snapshot, cloud_state, layout_cloud
from particles.run import ParticleState, initial_particles


@register_engine
class GradientFlowEngine:
    """G from SGD's initial draw: θ, z and R_N per save time, in the layout of /particles."""

    name = "gd"
    resumed_attrs: dict = {}

    def __init__(self, problem, config):
        require_coupling(problem, self.name)
        self.problem, self.config = problem, config

    def prepare(self) -> None:
        p = self.config.particles
        self.theta0 = initial_particles(self.problem, p.n, p.seed)

    def layout(self, writer) -> None:
        layout_cloud(writer, self.name, self.config.particles.n, self.problem,
                     "exact population risk R_N of G: the finite-N reference along the dynamics (docs/math.md §8)")
        writer.group_attrs(self.name, stride=stride_of(self.config))

    def velocity(self, t: float, theta: np.ndarray) -> np.ndarray:
        """−2ξ [∇Ψ^α(θ_i; ρ_N) + λθ_i] for every particle (ρ_N − ρ_N(0) in Ψ for the centred model)."""
        dyn = self.config.dynamics
        grad = self.problem.population_gradient(theta, dyn.alpha, self.theta0 if dyn.centered else None)
        return -2.0 * dyn.xi * (grad + dyn.lam * theta)

    def run(self, start: ParticleState | None = None) -> Iterator[Snapshot]:
        """G to t_end from θ(0) (or from a saved state), a snapshot per save time."""
        eps = self.config.particles.eps
        theta, k = (self.theta0, 0) if start is None else (start.theta, start.steps)
        path = CoupledPath(theta, k, stride_of(self.config), eps, self.velocity, noise_stream(self.config, theta.shape, k))
        for t in remaining_times(self.config.save_times(), None if start is None else start.t):
            path.advance(int(round(t / eps)))
            yield cloud_snapshot(self.problem, self.config, t, path.theta.copy(), path.k, self.theta0)

    def start_state(self, run_file, n: int) -> ParticleState | None:
        """The state of the n-th complete snapshot of /gd (None for n = 0)."""
        return cloud_state(run_file, self.name, n)


__all__ = ["GradientFlowEngine"]
