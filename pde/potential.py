"""Ψ, R and F on a grid from a GridModel: two matrix–vector products (MATH.md §1, §2, §5)."""
from __future__ import annotations

import numpy as np

from mfdyn.problems import GridModel
from pde.grid import Grid


class PotentialOperator:
    """Ψ_λ[ρ] = V + (λ/2)|θ|² + Φᵀ(w ∘ Φρ|cell|) for cell averages ρ, in O(K·M).

    Risk R = R# + 2∫Vρ + Σ_k w_k f_k², f = Φρ|cell|; R_λ = R + λ∫|θ|²ρ; free energy
    F = ½R_λ (+ β⁻¹∫ρ log(ρ/J) when β < ∞, not yet supported). The discrete interaction matrix
    ΦᵀWΦ is symmetric, which is what makes the semi-discrete F decay (CCH Thm 2.5).
    """

    def __init__(self, model: GridModel, grid: Grid, lam: float = 0.0):
        self.model, self.grid, self.lam = model, grid, lam
        self.vol = grid.cell_volume
        self.v_lam = np.ascontiguousarray(model.potential + 0.5 * lam * model.sq_norm)
        self.phi = np.ascontiguousarray(model.features)
        self.phi_weighted = np.ascontiguousarray(model.features * model.weights[:, None])

    def moments(self, rho: np.ndarray) -> np.ndarray:
        """f = Φρ|cell|, shape (K,): the network output at the feature nodes."""
        return self.phi @ (rho.ravel() * self.vol)

    def psi(self, rho: np.ndarray) -> np.ndarray:
        """Ψ_λ on cells, grid-shaped."""
        return (self.v_lam + self.phi_weighted.T @ self.moments(rho)).reshape(self.grid.shape)

    def risk(self, rho: np.ndarray) -> float:
        """R(ρ) (without the λ term)."""
        f = self.moments(rho)
        flat = rho.ravel() * self.vol
        return float(self.model.r_sharp + 2.0 * self.model.potential @ flat + self.model.weights @ (f * f))

    def free_energy(self, rho: np.ndarray) -> float:
        """F = ½ R_λ (noiseless)."""
        return 0.5 * (self.risk(rho) + self.lam * float(self.model.sq_norm @ rho.ravel()) * self.vol)

    def finite_n_term(self, rho: np.ndarray) -> float:
        """∫U(θ,θ)dρ − ∬U dρ dρ: E R_N = R(ρ) + this / N for θ_i iid ~ ρ (MATH §1)."""
        f = self.moments(rho)
        return float(self.model.self_interaction @ rho.ravel() * self.vol - self.model.weights @ (f * f))
