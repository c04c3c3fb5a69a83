"""T, Sznitman's tracers of the PDE's ρ_t, as an engine writing /tracers (docs/math.md §8).

dθ_i = −2ξ [∇Ψ^α(θ_i; ρ_t) + λθ_i] dt + dW_i, from SGD's own θ(0) and Brownian increments, with ρ_t the grid
solution: the tracers are iid with law ρ_t (up to the PDE's own error), so T − ρ is pure sampling. Ψ is
evaluated at each tracer's own position from the grid's feature moments of ρ_t (Problem.field_gradient),
not interpolated from cell centres.

The engine solves the PDE again beside its tracers (the same code, steps and numbers as /pde, so a sweep
member needs no PDE in its own file), and takes the moments of ρ_t at every accepted PDE step, linearly
interpolated in time between steps (second order, like the steps). A resumed run solves the PDE again
from t = 0 up to the tracers' last snapshot (the same steps, so the same ρ_t, bit for bit) and goes on.

The moments a completed run asked for, at each of its drift times, are kept per process for the next run
with the same problem class, grid config (all but [particles]), ε and step (SOLVES_KEPT of them): the members of a sweep
that a worker runs one after the other then need no PDE solve, and get the same arrays, so the same bits.
"""
from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from coupled.path import CoupledPath, noise_stream, require_coupling, stride_of
from mfdyn.engines import Snapshot, register_engine
from particles.engine import cloud_snapshot, cloud_state, layout_cloud
from particles.run import ParticleState, initial_particles
from pde.engine import PDEEngine
from pde.potential import moments_kernel

SOLVES_KEPT = 2               # grid configs whose moments a process keeps (a few hundred kB to a few MB each)
_SOLVED: OrderedDict[tuple, tuple[list[float], dict[float, np.ndarray]]] = OrderedDict()
_SOLVED_LOCK = threading.Lock()   # members may run in threads of one process (a Dask worker)


class MomentHistory:
    """The PDE's states at its accepted steps, and their moments (computed when first asked for), linearly
    interpolated in t: a tracer step needs only the two states around each of its times."""

    def __init__(self, moments):
        self.moments = moments
        self.times: list[float] = []
        self.states: list[np.ndarray] = []
        self.values: list[np.ndarray | None] = []      # the moments of each state, once computed

    def add(self, t: float, rho: np.ndarray) -> None:
        self.times.append(t)
        self.states.append(np.array(rho, copy=True))
        self.values.append(None)

    def _moments(self, j: int) -> np.ndarray:
        if self.values[j] is None:
            self.values[j] = self.moments(self.states[j])
        return self.values[j]

    def at(self, t: float) -> np.ndarray:
        times = self.times
        j = bisect.bisect_left(times, t)
        if j == 0 or t >= times[-1]:      # the ends: t is on the SGD lattice, the PDE lands on it to round-off
            return self._moments(0 if j == 0 else len(times) - 1)
        w = (t - times[j - 1]) / (times[j] - times[j - 1])
        return (1.0 - w) * self._moments(j - 1) + w * self._moments(j)

    def forget_before(self, t: float) -> None:
        """Drop the states no step from t on needs (keep the last one at or before t)."""
        j = max(0, bisect.bisect_right(self.times, t) - 1)
        del self.times[:j], self.states[:j], self.values[:j]


@register_engine
class TracerEngine:
    """T from SGD's initial draw beside a solve of the PDE: θ, z and R_N per save time, in the layout of /particles."""

    name = "tracers"
    resumed_attrs: dict = {}

    def __init__(self, problem, config):
        require_coupling(problem, self.name)
        self.problem, self.config = problem, config
        self.pde = PDEEngine(problem, config)

    def prepare(self) -> None:
        p = self.config.particles
        self.pde.prepare(diagnostics=False)
        self.theta0 = initial_particles(self.problem, p.n, p.seed)
        # The grid's own feature rows (before the operator's compression): those field_gradient evaluates
        self.features = np.ascontiguousarray(self.pde.op.model.features)
        self.reference = self.grid_moments(self.pde.rho0) if self.config.dynamics.centered else None

    def grid_moments(self, rho: np.ndarray) -> np.ndarray:
        """Σ_c Φ_kc ρ_c|cell| (K,)."""
        out = np.empty(len(self.features))
        moments_kernel(self.features, np.ascontiguousarray(rho).ravel(), self.pde.grid.cell_volume, out)
        return out

    def moments(self, rho: np.ndarray) -> np.ndarray:
        """The moments of ν = ρ, or ρ − ρ_0 for the centred model: what field_gradient takes."""
        out = self.grid_moments(rho)
        return out if self.reference is None else out - self.reference

    def layout(self, writer) -> None:
        layout_cloud(writer, self.name, self.config.particles.n, self.problem,
                     "exact population risk R_N of the tracers (docs/math.md §8)")
        writer.group_attrs(self.name, stride=stride_of(self.config), stepper=self.pde.stepper)   # the PDE it follows

    def run(self, start: ParticleState | None = None) -> Iterator[Snapshot]:
        """T to t_end beside the PDE, a snapshot per save time after start."""
        dyn, eps = self.config.dynamics, self.config.particles.eps
        centres = self.pde.grid.centres
        theta, k, t_start = (self.theta0, 0, 0.0) if start is None else (start.theta, start.steps, start.t)
        key = (type(self.problem), self.config.grid_key(), eps, stride_of(self.config),    # a redefined class: afresh
               self.pde.stepper)
        with _SOLVED_LOCK:
            solved = _SOLVED.get(key)
            if solved is not None:
                _SOLVED.move_to_end(key)
        asked: dict[float, np.ndarray] = {} if solved is None else solved[1]      # the moments at each drift time
        history = MomentHistory(self.moments)

        def velocity(t: float, x: np.ndarray) -> np.ndarray:
            if solved is None:
                asked[t] = history.at(t)
            grad = self.problem.field_gradient(x, asked[t], centres, dyn.alpha)
            return -2.0 * dyn.xi * (grad + dyn.lam * x)

        path = CoupledPath(theta, k, stride_of(self.config), eps, velocity, noise_stream(self.config, theta.shape, k))
        if solved is not None:                                 # a run like this one asked for them all already
            times = solved[0]
        else:
            history.add(0.0, self.pde.rho0)

            def on_step(t: float, rho: np.ndarray) -> None:
                history.add(t, rho)
                path.advance(int(np.floor(t / eps + 1e-6)))      # every whole step of T that ρ_t now covers
                history.forget_before(path.t)

            times = (state.t for state in self.pde.states(None, on_step=on_step))
        saved = []
        for t in times:
            saved.append(t)
            if start is not None and t <= t_start + 1e-12 * max(1.0, t_start):
                continue                                       # a resumed run replays the PDE up to its state
            path.advance(int(round(t / eps)))
            yield cloud_snapshot(self.problem, self.config, t, path.theta.copy(), path.k, self.theta0)
        if solved is None and start is None:                   # complete: the next run like it needs no solve
            with _SOLVED_LOCK:
                _SOLVED[key] = (saved, asked)
                while len(_SOLVED) > SOLVES_KEPT:
                    _SOLVED.popitem(last=False)

    def start_state(self, run_file, n: int) -> ParticleState | None:
        """The tracers of the n-th complete snapshot of /tracers (None for n = 0); the PDE they follow is replayed
        with the stepper the file records (PDEEngine.recorded_stepper)."""
        if n:
            self.pde.stepper = self.pde.recorded_stepper(run_file, self.name)
            self.resumed_attrs = {"stepper": self.pde.stepper}
        return cloud_state(run_file, self.name, n)


__all__ = ["TracerEngine"]
