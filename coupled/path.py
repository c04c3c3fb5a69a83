"""How G and T are integrated (docs/math.md §8): Heun's method on the SGD clock, with SGD's own noise.

A step covers `stride` SGD steps, h = stride·ε, so that its Brownian increment ΔW is exactly the sum of
the SGD increments sqrt(4εξ/β) g^k over those steps (the synchronous coupling of §8). For the additive
noise of the dynamics, dθ = b(t, θ) dt + dW, Heun's step

    θ* = θ + h b(t, θ) + ΔW,     θ ← θ + (h/2) [b(t, θ) + b(t + h, θ*)] + ΔW

is second order in h without noise (and strong order 1 with it), at two drift evaluations per step.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mfdyn.errors import BlowUp
from particles.run import NoiseStream, noise_scale

# The auto time step of G and T (particles.coupled_dt = 0): the largest whole number of SGD steps that
# divides output.every and is at most this (tests/test_coupled.py shows halving it moves nothing reported).
AUTO_DT = 0.01


def stride_of(config) -> int:
    """SGD steps per step of G and T: particles.coupled_dt / ε, or the auto choice (AUTO_DT)."""
    p = config.particles
    every = int(round(config.output.every / p.eps))
    if p.coupled_dt > 0:
        return int(round(p.coupled_dt / p.eps))
    cap = max(1, int(AUTO_DT / p.eps + 1e-9))
    return max(m for m in range(1, min(cap, every) + 1) if every % m == 0)


class HeunPath:
    """θ (N, D) at SGD step k, advanced by Heun steps of `stride` SGD steps under the velocity b(t, θ) (N, D).

    noise: SGD's increments (a NoiseStream positioned at step k), or None for β = ∞.
    """

    def __init__(self, theta: np.ndarray, k: int, stride: int, eps: float,
                 velocity: Callable[[float, np.ndarray], np.ndarray], noise: NoiseStream | None):
        self.theta, self.k, self.stride, self.eps = np.array(theta, dtype=float), k, stride, eps
        self.velocity, self.noise = velocity, noise

    @property
    def t(self) -> float:
        return self.k * self.eps

    def advance(self, k_target: int) -> None:
        """Step while a whole step fits before SGD step k_target."""
        h = self.stride * self.eps
        while self.k + self.stride <= k_target:
            t = self.t
            b0 = self.velocity(t, self.theta)
            dw = 0.0 if self.noise is None else self.noise.total(self.stride)
            guess = self.theta + h * b0 + dw
            self.theta = self.theta + 0.5 * h * (b0 + self.velocity((self.k + self.stride) * self.eps, guess)) + dw
            self.k += self.stride
        if not np.all(np.isfinite(self.theta)):
            raise BlowUp(f"a coupled system (G or T) became non-finite before t = {self.t:.6g}; likely fix: a "
                         "smaller particles.coupled_dt")


def noise_stream(config, shape: tuple[int, int], k: int) -> NoiseStream | None:
    """SGD's own increments from step k on, or None when β = ∞."""
    dyn, p = config.dynamics, config.particles
    if np.isinf(dyn.beta):
        return None
    return NoiseStream(p.seed, shape, noise_scale(p.eps, dyn.xi, dyn.beta), k)


def require_coupling(problem, engine: str) -> None:
    """ValueError naming the key when the problem cannot give the gradients G and T need."""
    if not problem.can_couple():
        raise ValueError(f"particles.coupled: {problem.name} cannot provide engine {engine!r} (no exact population "
                         "gradient or no point evaluation of the grid's Ψ)")
