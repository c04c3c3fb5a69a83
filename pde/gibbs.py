"""The self-consistent Gibbs state ρ* = Z⁻¹ J e^{−βΨ_λ(·; ρ*)} on a grid (docs/math.md §2, §6).

Damped fixed-point iteration ρ ← (1 − a) ρ + a T(ρ), T(ρ) = Z⁻¹ J e^{−βΨ_λ[ρ]} (normalised to the
mass of ρ). The residual is ‖T(ρ) − ρ‖₁ / mass. The damping adapts: it is halved whenever the residual
grows, and grows by 10% (up to a_max) while it falls. For λ > 0 the free energy has a unique
minimiser (docs/math.md §2), which is this fixed point.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pde.potential import PotentialOperator


@dataclass
class GibbsResult:
    """The fixed point, the residual after each iteration, and whether it met the tolerance."""

    rho: np.ndarray
    residuals: list[float] = field(default_factory=list)
    converged: bool = False
    damping: float = 0.0


def gibbs_fixed_point(op: PotentialOperator, rho0: np.ndarray, damping: float = 0.5, tol: float = 1e-11,
                      max_iter: int = 20000, damping_max: float = 1.0) -> GibbsResult:
    """Iterate from rho0 until the residual is below tol (or max_iter); op.beta must be finite."""
    if not np.isfinite(op.beta):
        raise ValueError("the Gibbs state needs a finite dynamics.beta")
    grid = op.grid
    mass = grid.integrate(rho0)
    rho = np.array(rho0, dtype=float, copy=True)
    result = GibbsResult(rho)
    a = damping
    for _ in range(max_iter):
        target = op.gibbs(rho)
        residual = float(np.abs(target - rho).sum() * grid.cell_volume / mass)
        if result.residuals and residual > result.residuals[-1]:
            a = max(0.5 * a, 1e-6)
        else:
            a = min(1.1 * a, damping_max)
        result.residuals.append(residual)
        if residual < tol:
            result.converged = True
            break
        rho = (1.0 - a) * rho + a * target
    result.rho, result.damping = rho, a
    return result
