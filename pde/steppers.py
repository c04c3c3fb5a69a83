"""Time steppers for the finite-volume semi-discretisation (MATH.md §5)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from pde.fluxes import bernoulli_array

# rhs(rho) -> (drho/dt, dt_max): dt_max is the positivity bound of a forward-Euler step at that state
RHS = Callable[[np.ndarray], tuple[np.ndarray, float]]


class SSPRK3:
    """Shu–Osher SSP-RK3, positivity checked at every stage, with optional local error control.

    Each stage is a forward-Euler step, so the scheme stays positive if every stage's dt obeys that
    stage's bound; a stage that violates it rejects the step, which is retried with cfl × (the
    smallest bound seen). With rtol, the step is also checked against the embedded second-order
    (Heun) solution û = 2ρ⁽²⁾ − ρ: it is accepted if ‖ρⁿ⁺¹ − û‖₁ ≤ rtol ‖ρⁿ‖₁, and the next dt is
    scaled by 0.9 (rtol/err)^{1/3}, clipped to [0.2, 2].
    """

    def __init__(self, rhs: RHS, cfl: float, rtol: float | None = None):
        self.rhs, self.cfl, self.rtol = rhs, cfl, rtol
        self.rejected = 0
        self.dt_error = np.inf          # the error controller's proposal for the next step

    def step(self, rho: np.ndarray, dt_wanted: float) -> tuple[np.ndarray, float]:
        """Advance by at most dt_wanted; return (new ρ, dt actually taken)."""
        l0, bound = self.rhs(rho)
        dt = min(dt_wanted, self.cfl * bound, self.dt_error)
        while True:
            rho1 = rho + dt * l0
            l1, b1 = self.rhs(rho1)
            if dt <= b1:
                rho2 = 0.75 * rho + 0.25 * (rho1 + dt * l1)
                l2, b2 = self.rhs(rho2)
                if dt <= b2:
                    new = rho / 3.0 + (2.0 / 3.0) * (rho2 + dt * l2)
                    if self.rtol is None:
                        return new, dt
                    err = np.abs(new - (2.0 * rho2 - rho)).sum() / max(np.abs(rho).sum(), 1e-300)
                    factor = min(2.0, max(0.2, 0.9 * (self.rtol / err) ** (1.0 / 3.0))) if err > 0 else 2.0
                    if err <= self.rtol:
                        self.dt_error = dt * factor
                        return new, dt
                    self.rejected += 1
                    dt *= factor
                    continue
                b1 = b2
            self.rejected += 1
            dt = self.cfl * b1


def sg_matrix(psi: np.ndarray, widths: np.ndarray, beta: float, dif: float) -> sp.csc_matrix:
    """The Scharfetter–Gummel operator A (dρ/dt = Aρ) for a frozen ψ on the grid, flattened in C order.

    For each face between cells i and i' (next along an axis), mass moves i → i' at rate
    (Dif/h²) B(β(ψ_i' − ψ_i)) and i' → i at (Dif/h²) B(β(ψ_i − ψ_i')): A has zero column sums (mass)
    and nonnegative off-diagonals, so I − dt A is an M-matrix for any dt (MATH §5).
    """
    index = np.arange(psi.size).reshape(psi.shape)
    rows, cols, vals = [], [], []
    for axis, h in enumerate(widths):
        lo = [slice(None)] * psi.ndim
        hi = [slice(None)] * psi.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        i, j = index[tuple(lo)].ravel(), index[tuple(hi)].ravel()
        delta = beta * (psi[tuple(hi)] - psi[tuple(lo)]).ravel()
        forward, backward = dif / h**2 * bernoulli_array(delta), dif / h**2 * bernoulli_array(-delta)
        rows += [i, j, i, j]
        cols += [i, i, j, j]
        vals += [-forward, forward, backward, -backward]
    return sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(psi.size, psi.size))


class LinearlyImplicit:
    """(I − dt A(ψ_n)) ρⁿ⁺¹ = ρⁿ with ψ frozen at tⁿ (MATH §5): positive and mass-conserving for any dt,
    first order in time. psi_of(ρ) gives the grid-shaped ψ = Ψ_λ − β⁻¹ log J; sparse LU solves."""

    def __init__(self, psi_of: Callable[[np.ndarray], np.ndarray], widths: np.ndarray, beta: float,
                 dif: float, dt: float):
        self.psi_of, self.widths, self.beta, self.dif, self.dt = psi_of, widths, beta, dif, dt
        self.rejected = 0

    def step(self, rho: np.ndarray, dt_wanted: float) -> tuple[np.ndarray, float]:
        dt = min(self.dt, dt_wanted)
        a = sg_matrix(self.psi_of(rho), self.widths, self.beta, self.dif)
        system = (sp.identity(rho.size, format="csc") - dt * a).tocsc()
        new = splu(system).solve(rho.ravel()).reshape(rho.shape)
        return np.maximum(new, 0.0), dt      # the M-matrix keeps ρ ≥ 0; clip round-off below 0
