"""The solve loop: integrate ∂_t ρ = 2ξ [∇·(ρ∇Ψ_λ[ρ]) + β⁻¹Δρ] to each save time (MATH.md §2, §5)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from pde.fluxes import flux_divergence, sg_divergence
from pde.grid import Grid
from pde.potential import PotentialOperator
from pde.steppers import SSPRK3, LinearlyImplicit

STEPPERS = ("explicit", "implicit")


@dataclass
class PDEState:
    """ρ (cell averages, grid-shaped) at time t after `steps` accepted steps."""

    t: float
    rho: np.ndarray
    steps: int
    rejected: int


def solve(op: PotentialOperator, rho0: np.ndarray, save_times: list[float], xi: float, cfl: float = 0.8,
          stepper: str = "explicit", rtol: float | None = None, dt: float | None = None) -> Iterator[PDEState]:
    """Yield the state at each of save_times (ascending, the first may be 0), landing on them exactly.

    β = op.beta. Noiseless: upwind fluxes of ζ = 2ξΨ_λ. Noisy: Scharfetter–Gummel fluxes with
    ψ = Ψ_λ − β⁻¹ log J and Dif = 2ξ/β (MATH §5). stepper "explicit" is SSP-RK3 (rtol: local error
    control), "implicit" the linearly implicit step of size dt (β < ∞ only).
    """
    grid: Grid = op.grid
    out = np.empty(grid.shape)
    beta = op.beta

    def rhs(rho: np.ndarray) -> tuple[np.ndarray, float]:
        if math.isinf(beta):
            amax = flux_divergence(rho, 2.0 * xi * op.psi(rho), grid.widths, out)
            with np.errstate(divide="ignore"):
                bound = float(np.min(grid.widths / (2.0 * grid.ndim * amax)))
        else:
            rates = sg_divergence(rho, op.psi_noisy(rho), grid.widths, out, beta, 2.0 * xi / beta)
            bound = 1.0 / rates.sum() if rates.sum() > 0 else np.inf
        return out.copy(), bound

    if stepper == "implicit":
        if math.isinf(beta) or dt is None:
            raise ValueError("the implicit stepper needs a finite dynamics.beta and a step pde.dt")
        advance = LinearlyImplicit(op.psi_noisy, grid.widths, beta, 2.0 * xi / beta, dt)
    else:
        advance = SSPRK3(rhs, cfl, rtol)
    rho = np.array(rho0, dtype=float, copy=True)
    t, steps = 0.0, 0
    for t_save in save_times:
        while t < t_save:
            remaining = t_save - t
            rho, taken = advance.step(rho, remaining)
            t = t_save if taken >= remaining else t + taken
            steps += 1
        yield PDEState(t, rho.copy(), steps, advance.rejected)
