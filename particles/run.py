"""The SGD run loop: snapshots at the PDE's save times t = kε (MATH.md §2)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from mfdyn.errors import BlowUp
from mfdyn.problems import Problem
from particles.sgd import sgd_steps_neuron, sgd_steps_ramp

# Data are drawn in fixed blocks of steps, block c from its own stream SeedSequence(seed, (DATA, c)),
# and the noise of block c from SeedSequence(seed, (NOISE, c)), in order, in chunks of at most
# NOISE_CHUNK steps (a Generator fills sequentially, so the chunking does not change the numbers):
# the trajectory depends on the seed only, not on how the run is cut into snapshots.
BLOCK_STEPS = 4096
NOISE_CHUNK = 64
_INIT, _DATA, _NOISE = 0, 1, 2
_NO_NOISE = np.empty((0, 1, 1))


@dataclass
class ParticleState:
    """Particles θ (N, D) after `steps` SGD steps, at the save time t = steps·ε (the config makes it whole)."""

    t: float
    theta: np.ndarray
    steps: int


def initial_particles(problem: Problem, n: int, seed: int) -> np.ndarray:
    """θ_i ~ ρ_0, i = 1..n, from the seed's init stream."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_INIT,)))
    return np.ascontiguousarray(problem.sample_initial(n, rng))


def _data_block(problem: Problem, seed: int, block: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_DATA, block)))
    x, y = problem.sample_data(BLOCK_STEPS * batch, rng)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def _stepper(problem: Problem, theta: np.ndarray, batch: int, step: float,
             lam: float) -> Callable[[np.ndarray | None, np.ndarray | None, int, np.ndarray], None]:
    """kernel(x, y, steps, noise) advancing theta in place by `steps` steps, for the problem's network."""
    if problem.network == "single_index_ramp":
        r = problem.ramp
        return lambda x, y, steps, noise: sgd_steps_ramp(theta, x, y, batch, step, lam, r.t1, r.t2, r.s1, r.s2, noise)
    if problem.network == "neuron":
        return lambda x, y, steps, noise: sgd_steps_neuron(theta, x, y, batch, step, lam, problem.code,
                                                           *problem.ramp, noise)

    def drift(x, y, steps, noise):     # no data: the exact gradient of Ψ_λ(·; ρ_N)
        for s in range(steps):
            theta[...] -= step * (problem.drift(theta) + lam * theta)
            if len(noise):
                theta[...] += noise[s]
    return drift


def run_sgd(problem: Problem, n: int, eps: float, xi: float, lam: float, batch: int, seed: int,
            save_times: list[float], beta: float = np.inf,
            start: ParticleState | None = None) -> Iterator[ParticleState]:
    """Yield the particles at each save time (each a whole number of steps ε; constant ξ).

    Problems with data run SGD (MATH §2); problems without (network "potential") run the same
    step with the exact gradient, θ_i ← θ_i − 2εξ [∇Ψ(θ_i; ρ_N) + λθ_i]. Both add sqrt(4εξ/β) g_i.
    From a saved `start` state the run continues exactly as if it had not stopped (the data and noise
    streams are functions of the seed and the step). Raises BlowUp on non-finite particles.
    """
    step = 2.0 * eps * xi
    noise_std = float(np.sqrt(2.0 * step / beta))       # sqrt(4 s / β) with s = εξ
    theta = initial_particles(problem, n, seed) if start is None else np.array(start.theta, dtype=float)
    kernel = _stepper(problem, theta, batch, step, lam)
    has_data = problem.network != "potential"
    k, block, data, noise_rng = (0 if start is None else start.steps), -1, None, None
    for t_save in save_times:
        target = int(round(t_save / eps))
        while k < target:
            if k // BLOCK_STEPS != block:
                block = k // BLOCK_STEPS
                data = _data_block(problem, seed, block, batch) if has_data else None
                noise_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_NOISE, block)))
                if noise_std > 0 and k % BLOCK_STEPS:      # resuming inside a block: skip its used noise
                    for _ in range(k % BLOCK_STEPS):
                        noise_rng.standard_normal(theta.shape)
            lo = k - block * BLOCK_STEPS
            hi = min(BLOCK_STEPS, lo + target - k, lo + NOISE_CHUNK if noise_std > 0 else BLOCK_STEPS)
            noise = noise_std * noise_rng.standard_normal((hi - lo, *theta.shape)) if noise_std > 0 else _NO_NOISE
            x, y = (data[0][lo * batch:hi * batch], data[1][lo * batch:hi * batch]) if has_data else (None, None)
            kernel(x, y, hi - lo, noise)
            k += hi - lo
        if not np.all(np.isfinite(theta)):
            raise BlowUp(f"particles became non-finite before t = {t_save:.6g}; likely fix: a smaller "
                         f"particles.eps (now {eps:g}; with weight decay 2εξλ must stay below 2)")
        yield ParticleState(t_save, theta.copy(), k)
