"""Ψ, R and F on a grid from a GridModel: two matrix–vector products (MATH.md §1, §2, §5)."""
from __future__ import annotations

import numpy as np

from mfdyn.problems import GridModel
from pde.grid import Grid

# Arrays of grid size alive during a solve besides Φ: ρ, three RK stages, their right-hand sides,
# ζ, Ψ, V, |θ|², U(θ,θ), log J and temporaries.
_STATE_ARRAYS = 16


def memory_estimate(n_features: int, n_cells: int) -> int:
    """Bytes a solve needs: Φ (K × M doubles) plus the grid-sized state arrays."""
    return 8 * (n_features * n_cells + _STATE_ARRAYS * n_cells)


def check_memory(n_features: int, n_cells: int, budget_gb: float) -> None:
    """Refuse, before anything is allocated, a grid whose solve would not fit budget_gb."""
    need = memory_estimate(n_features, n_cells) / 2**30
    if need > budget_gb:
        raise ValueError(f"pde: {n_cells} cells × {n_features} features need ≈ {need:.1f} GiB, over "
                         f"pde.memory_gb = {budget_gb:g}; use fewer pde.cells or raise pde.memory_gb")


class PotentialOperator:
    """Ψ_λ[ρ] = V + (λ/2)|θ|² + Φᵀ(w ∘ Φρ|cell|) for cell averages ρ, in O(K·M).

    Risk R = R# + 2∫Vρ + Σ_k w_k f_k², f = Φρ|cell|; R_λ = R + λ∫|θ|²ρ; free energy
    F = ½R_λ (+ β⁻¹∫ρ log(ρ/J) when β < ∞, not yet supported). The discrete interaction matrix
    ΦᵀWΦ is symmetric, which is all the semi-discrete decay of F needs (CCH Thm 2.5).
    """

    def __init__(self, model: GridModel, grid: Grid, lam: float = 0.0):
        self.model, self.grid, self.lam = model, grid, lam
        self.vol = grid.cell_volume
        self.v_lam = np.ascontiguousarray(model.potential + 0.5 * lam * model.sq_norm)
        self.phi = np.ascontiguousarray(model.features)
        self.weights = np.asarray(model.weights, dtype=float)

    def moments(self, rho: np.ndarray) -> np.ndarray:
        """f = Φρ|cell|, shape (K,): the network output at the feature nodes."""
        return self.phi @ (rho.ravel() * self.vol)

    def psi(self, rho: np.ndarray) -> np.ndarray:
        """Ψ_λ on cells, grid-shaped."""
        return (self.v_lam + (self.weights * self.moments(rho)) @ self.phi).reshape(self.grid.shape)

    def interaction_energy(self, rho: np.ndarray) -> float:
        """∬U dρ dρ = Σ_k w_k f_k²."""
        f = self.moments(rho)
        return float(self.weights @ (f * f))

    def risk(self, rho: np.ndarray) -> float:
        """R(ρ) = R# + 2∫Vρ + ∬Uρρ (without the λ term)."""
        linear = float(self.model.potential @ rho.ravel()) * self.vol
        return self.model.r_sharp + 2.0 * linear + self.interaction_energy(rho)

    def free_energy(self, rho: np.ndarray) -> float:
        """F = ½ R_λ (noiseless)."""
        return 0.5 * (self.risk(rho) + self.lam * float(self.model.sq_norm @ rho.ravel()) * self.vol)

    def finite_n_term(self, rho: np.ndarray) -> float:
        """∫U(θ,θ)dρ − ∬U dρ dρ: E R_N = R(ρ) + this / N for θ_i iid ~ ρ (MATH §1)."""
        return float(self.model.self_interaction @ rho.ravel()) * self.vol - self.interaction_energy(rho)
