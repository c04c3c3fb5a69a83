"""The SGD run loop: snapshots at the PDE's save times t = kε (docs/math.md §2)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import particles.sgd  # noqa: F401  (registers the SGD networks)
from mfdyn.errors import BlowUp
from mfdyn.problems import Problem
from particles.networks import Advance, network_stepper, register_network

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


@register_network("potential")
def drift_stepper(problem: Problem, theta: np.ndarray, batch: int, step: float, lam: float, alpha: float) -> Advance:
    """Data-free problems: the exact gradient of Ψ_λ(·; ρ_N), θ_i ← θ_i − 2εξ [∇Ψ(θ_i; ρ_N) + λθ_i]."""
    def advance(x, y, steps, noise):
        for s in range(steps):
            theta[...] -= step * (problem.drift(theta) + lam * theta)
            if len(noise):
                theta[...] += noise[s]
    return advance


OUTPUT_CHUNK = 256          # samples per evaluation of ŷ_0: bounds the (samples × N) temporaries


def initial_output(problem: Problem, theta0: np.ndarray, x: np.ndarray) -> np.ndarray:
    """ŷ_0(x) = (1/N) Σ_i σ*(x; θ_i(0)) for a block of samples, OUTPUT_CHUNK at a time (the centred model)."""
    return np.concatenate([problem.network_output(theta0, x[lo:lo + OUTPUT_CHUNK])
                           for lo in range(0, len(x), OUTPUT_CHUNK)])


def noise_scale(eps: float, xi: float, beta: float) -> float:
    """sqrt(4s/β) with s = εξ: the standard deviation of SGD's injected noise per step (0 for β = ∞)."""
    return float(np.sqrt(2.0 * (2.0 * eps * xi) / beta))


class NoiseStream:
    """SGD's Gaussian increments sqrt(4s/β) g^k, k = start, start + 1, … (each (N, D)), in the order run_sgd
    uses them: block c of BLOCK_STEPS steps from SeedSequence(seed, (NOISE, c)), drawn in sequence. The
    coupled systems G and T (docs/math.md §8) read the same increments from their own stream."""

    def __init__(self, seed: int, shape: tuple[int, int], std: float, start: int = 0):
        self.seed, self.shape, self.std = seed, shape, std
        self.k, self.block, self.rng = start, -1, None

    def take(self, count: int) -> np.ndarray:
        """The next `count` increments, (count, N, D), within one block (the caller cuts at BLOCK_STEPS)."""
        if self.k // BLOCK_STEPS != self.block:
            self.block = self.k // BLOCK_STEPS
            self.rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(_NOISE, self.block)))
            for _ in range(self.k % BLOCK_STEPS):      # resuming inside a block: skip its used noise
                self.rng.standard_normal(self.shape)
        if (self.k + count - 1) // BLOCK_STEPS != self.block:
            raise ValueError(f"noise draw of {count} steps from step {self.k} crosses a block of {BLOCK_STEPS}")
        self.k += count
        return self.std * self.rng.standard_normal((count, *self.shape))

    def total(self, count: int) -> np.ndarray:
        """Σ of the next `count` increments, (N, D): the Brownian increment over count SGD steps."""
        out = np.zeros(self.shape)
        while count > 0:
            part = min(count, NOISE_CHUNK, BLOCK_STEPS - self.k % BLOCK_STEPS)
            out += self.take(part).sum(axis=0)
            count -= part
        return out


def run_sgd(problem: Problem, n: int, eps: float, xi: float, lam: float, batch: int, seed: int,
            save_times: list[float], beta: float = np.inf, start: ParticleState | None = None,
            alpha: float = 1.0, centered: bool = False, theta0: np.ndarray | None = None) -> Iterator[ParticleState]:
    """Yield the particles at each save time (each a whole number of steps ε; constant ξ).

    alpha: the output scale α of docs/math.md §7 (residual y − αŷ, gradient with 1/α). centered: train
    α(ŷ − ŷ_0), ŷ_0 the network at its own initial particles: the same kernel on the labels
    y + αŷ_0(x), since y − α(ŷ − ŷ_0) = (y + αŷ_0) − αŷ. theta0: the initial particles, if the caller has
    drawn them already (initial_particles of the same seed); drawn here otherwise.

    Problems with data run SGD (docs/math.md §2); problems without (network "potential") run the same
    step with the exact gradient, θ_i ← θ_i − 2εξ [∇Ψ(θ_i; ρ_N) + λθ_i]. Both add sqrt(4εξ/β) g_i.
    From a saved `start` state the run continues exactly as if it had not stopped (the data and noise
    streams are functions of the seed and the step). Raises BlowUp on non-finite particles.
    """
    step = 2.0 * eps * xi
    noise_std = noise_scale(eps, xi, beta)
    if theta0 is None and (start is None or centered):
        theta0 = initial_particles(problem, n, seed)
    theta = np.array(theta0 if start is None else start.theta, dtype=float)
    kernel = network_stepper(problem, theta, batch, step, lam, alpha)
    has_data = problem.network != "potential"
    k, block, data = (0 if start is None else start.steps), -1, None
    stream = NoiseStream(seed, theta.shape, noise_std, k)
    for t_save in save_times:
        target = int(round(t_save / eps))
        while k < target:
            if k // BLOCK_STEPS != block:
                block = k // BLOCK_STEPS
                data = _data_block(problem, seed, block, batch) if has_data else None
                if centered:
                    data = (data[0], data[1] + alpha * initial_output(problem, theta0, data[0]))
            lo = k - block * BLOCK_STEPS
            hi = min(BLOCK_STEPS, lo + target - k, lo + NOISE_CHUNK if noise_std > 0 else BLOCK_STEPS)
            noise = stream.take(hi - lo) if noise_std > 0 else _NO_NOISE
            x, y = (data[0][lo * batch:hi * batch], data[1][lo * batch:hi * batch]) if has_data else (None, None)
            kernel(x, y, hi - lo, noise)
            k += hi - lo
        if not np.all(np.isfinite(theta)):
            raise BlowUp(f"particles became non-finite before t = {t_save:.6g}; likely fix: a smaller "
                         f"particles.eps (now {eps:g}; with weight decay 2εξλ must stay below 2)")
        yield ParticleState(t_save, theta.copy(), k)
