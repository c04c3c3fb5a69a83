"""The SGD run loop: snapshots at the PDE's save times t = kε (MATH.md §2)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from mfdyn.problems import Problem
from particles.sgd import sgd_steps_neuron, sgd_steps_ramp

# Data are drawn in fixed blocks of steps, block c from its own stream SeedSequence(seed, (DATA, c)):
# the trajectory then depends on the seed only, not on how the run is cut into snapshots or resumed.
BLOCK_STEPS = 4096
_INIT, _DATA = 0, 1


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


def run_sgd(problem: Problem, n: int, eps: float, xi: float, lam: float, batch: int, seed: int,
            save_times: list[float]) -> Iterator[ParticleState]:
    """Yield the particles at each save time (each a whole number of steps ε; constant ξ).

    Problems with data run SGD (MATH §2); problems without (network "potential") run the
    same step with the exact gradient: θ_i ← θ_i − 2εξ [∇Ψ(θ_i; ρ_N) + λθ_i].
    """
    if problem.network == "potential":
        yield from _run_drift(problem, n, eps, xi, lam, seed, save_times)
        return
    theta = initial_particles(problem, n, seed)
    step = 2.0 * eps * xi
    if problem.network == "single_index_ramp":
        r = problem.ramp

        def kernel(x, y):
            sgd_steps_ramp(theta, x, y, batch, step, lam, r.t1, r.t2, r.s1, r.s2)
    else:
        def kernel(x, y):
            sgd_steps_neuron(theta, x, y, batch, step, lam, problem.code, *problem.ramp)
    k = 0
    block, data = -1, None
    for t_save in save_times:
        target = int(round(t_save / eps))
        while k < target:
            if k // BLOCK_STEPS != block:
                block = k // BLOCK_STEPS
                data = _data_block(problem, seed, block, batch)
            lo = k - block * BLOCK_STEPS
            hi = min(BLOCK_STEPS, lo + target - k)
            x, y = data
            kernel(x[lo * batch:hi * batch], y[lo * batch:hi * batch])
            k += hi - lo
        yield ParticleState(t_save, theta.copy(), k)


def _run_drift(problem: Problem, n: int, eps: float, xi: float, lam: float, seed: int,
               save_times: list[float]) -> Iterator[ParticleState]:
    theta = initial_particles(problem, n, seed)
    step = 2.0 * eps * xi
    k = 0
    for t_save in save_times:
        for _ in range(int(round(t_save / eps)) - k):
            theta -= step * (problem.drift(theta) + lam * theta)
        k = int(round(t_save / eps))
        yield ParticleState(t_save, theta.copy(), k)
