"""Ψ, R and F on a grid from a GridModel: two matrix–vector products (MATH.md §1, §2, §5)."""
from __future__ import annotations

import numpy as np

from mfdyn.problems import GridModel
from pde.grid import Grid

# Arrays of grid size alive during a solve besides Φ: ρ, three RK stages, their right-hand sides,
# ζ, Ψ, V, |θ|², U(θ,θ), log J and temporaries.
_STATE_ARRAYS = 16


# Feature sets larger than this (with nonnegative weights) are replaced by their best low-rank form
COMPRESS_MIN_FEATURES = 64
COMPRESS_RTOL = 1e-15


def compress_features(features: np.ndarray, weights: np.ndarray,
                      rtol: float = COMPRESS_RTOL) -> tuple[np.ndarray, float]:
    """The best rank-r feature matrix for the kernel ΦᵀWΦ (W ≥ 0): rows v_iᵀW^½Φ for the eigenvectors of the
    K × K Gram (W^½Φ)(W^½Φ)ᵀ whose eigenvalues are ≥ rtol × the largest; returns (rows (r, M), the first
    dropped eigenvalue, 0 if none). The kernel changes by at most that eigenvalue in operator norm."""
    scaled = features * np.sqrt(weights)[:, None]
    values, vectors = np.linalg.eigh(scaled @ scaled.T)
    values, vectors = values[::-1], vectors[:, ::-1]
    keep = int(np.sum(values >= rtol * values[0]))
    return np.ascontiguousarray(vectors[:, :keep].T @ scaled), float(values[keep]) if keep < len(values) else 0.0


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
        self.features_built = len(self.phi)
        self.dropped_eigenvalue = 0.0
        if len(self.phi) > COMPRESS_MIN_FEATURES and np.all(self.weights >= 0):
            self.phi, self.dropped_eigenvalue = compress_features(self.phi, self.weights)
            self.weights = np.ones(len(self.phi))

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
