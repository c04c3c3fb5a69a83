"""The solve loop: integrate ∂_t ρ = 2ξ ∇·(ρ∇Ψ_λ[ρ]) to each save time (MATH.md §2, §5)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from pde.fluxes import flux_divergence
from pde.grid import Grid
from pde.potential import PotentialOperator
from pde.steppers import SSPRK3


@dataclass
class PDEState:
    """ρ (cell averages, grid-shaped) at time t after `steps` accepted steps."""

    t: float
    rho: np.ndarray
    steps: int
    rejected: int


def solve(op: PotentialOperator, rho0: np.ndarray, save_times: list[float], xi: float,
          cfl: float = 0.8) -> Iterator[PDEState]:
    """Yield the state at each of save_times (ascending, the first may be 0), landing on them exactly.

    Noiseless (β = ∞) gradient-flow form with the speed folded in: ζ = 2ξ Ψ_λ (MATH §5).
    """
    grid: Grid = op.grid
    ndim = grid.ndim
    out = np.empty(grid.shape)

    def rhs(rho: np.ndarray) -> tuple[np.ndarray, float]:
        zeta = 2.0 * xi * op.psi(rho)
        amax = flux_divergence(rho, zeta, grid.widths, out)
        with np.errstate(divide="ignore"):
            bound = float(np.min(grid.widths / (2.0 * ndim * amax)))
        return out.copy(), bound

    stepper = SSPRK3(rhs, cfl)
    rho = np.array(rho0, dtype=float, copy=True)
    t, steps = 0.0, 0
    for t_save in save_times:
        while t < t_save:
            remaining = t_save - t
            rho, dt = stepper.step(rho, remaining)
            t = t_save if dt >= remaining else t + dt
            steps += 1
        yield PDEState(t, rho.copy(), steps, stepper.rejected)
