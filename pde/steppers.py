"""Time steppers for the finite-volume semi-discretisation (MATH.md §5)."""
from __future__ import annotations

from typing import Callable

import numpy as np

# rhs(rho) -> (drho/dt, dt_max): dt_max is the positivity bound min_k h_k / (2 D a_k) at that state
RHS = Callable[[np.ndarray], tuple[np.ndarray, float]]


class SSPRK3:
    """Shu–Osher SSP-RK3 with the positivity CFL checked at every stage.

    Each stage is a forward-Euler step, so the scheme stays positive if every stage's dt obeys
    that stage's bound; a stage that violates it rejects the step, which is retried with
    cfl × (the smallest bound seen). `cfl` ∈ (0, 1] is the safety factor used to choose dt.
    """

    def __init__(self, rhs: RHS, cfl: float):
        self.rhs, self.cfl = rhs, cfl
        self.rejected = 0

    def step(self, rho: np.ndarray, dt_wanted: float) -> tuple[np.ndarray, float]:
        """Advance by at most dt_wanted; return (new ρ, dt actually taken)."""
        l0, bound = self.rhs(rho)
        dt = min(dt_wanted, self.cfl * bound)
        while True:
            rho1 = rho + dt * l0
            l1, b1 = self.rhs(rho1)
            if dt <= b1:
                rho2 = 0.75 * rho + 0.25 * (rho1 + dt * l1)
                l2, b2 = self.rhs(rho2)
                if dt <= b2:
                    return rho / 3.0 + (2.0 / 3.0) * (rho2 + dt * l2), dt
                b1 = b2
            self.rejected += 1
            dt = self.cfl * b1
