"""How G and T are integrated (docs/math.md §8): Runge–Kutta on the SGD clock, with SGD's own noise.

A step covers `stride` SGD steps, h = stride·ε, so that its Brownian increment ΔW is exactly the sum of
the SGD increments sqrt(4εξ/β) g^k over those steps (the synchronous coupling of §8).

- β = ∞: the classical fourth-order Runge–Kutta step of dθ/dt = b(t, θ) (four drift evaluations).
- β < ∞: for the additive noise of the dynamics, dθ = b(t, θ) dt + dW, Heun's step
  θ* = θ + h b(t, θ) + ΔW, θ ← θ + (h/2) [b(t, θ) + b(t + h, θ*)] + ΔW (two evaluations; strong order 1,
  the order any scheme has that sees only ΔW of each step).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mfdyn.errors import BlowUp
from particles.run import NoiseStream, noise_scale

# The auto time step of G and T (particles.coupled_dt = 0): the largest whole number of SGD steps that
# divides output.every and is at most this (tests/test_coupled.py shows halving it moves nothing reported).
AUTO_DT = 0.02


def stride_of(config) -> int:
    """SGD steps per step of G and T: particles.coupled_dt / ε, or the auto choice (AUTO_DT)."""
    p = config.particles
    every = int(round(config.output.every / p.eps))
    if p.coupled_dt > 0:
        return int(round(p.coupled_dt / p.eps))
    cap = max(1, int(AUTO_DT / p.eps + 1e-9))
    return max(m for m in range(1, min(cap, every) + 1) if every % m == 0)


class CoupledPath:
    """θ (N, D) at SGD step k, advanced by steps of `stride` SGD steps under the velocity b(t, θ) (N, D): RK4
    without noise, Heun with it (module docstring).

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
        b = self.velocity
        while self.k + self.stride <= k_target:
            t, t1, x = self.t, (self.k + self.stride) * self.eps, self.theta
            b0 = b(t, x)
            if self.noise is None:
                half = 0.5 * (t + t1)
                b1 = b(half, x + 0.5 * h * b0)
                b2 = b(half, x + 0.5 * h * b1)
                b3 = b(t1, x + h * b2)
                self.theta = x + (h / 6.0) * (b0 + 2.0 * b1 + 2.0 * b2 + b3)
            else:
                dw = self.noise.total(self.stride)
                self.theta = x + 0.5 * h * (b0 + b(t1, x + h * b0 + dw)) + dw
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
