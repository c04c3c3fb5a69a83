"""The tangent kernel H_ρ(x, x') = ∫ ⟨∇_θσ*(x; θ), ∇_θσ*(x'; θ)⟩ ρ(dθ) on a problem's x-quadrature, and how
far it moves (docs/math.md §7). Shared by every engine that measures laziness."""
from __future__ import annotations

import numpy as np

from mfdyn.reconstruction import face_values

_BLOCK = 4096          # points per block: bounds the (D, K, block) tangent features held at once
_NEGLIGIBLE = 1e-14    # points whose weight is below this × the largest add nothing to H at double precision


def tangent_kernel(problem, points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """H = Σ_m weights_m Σ_d ∇_dσ*(x_k; θ_m) ∇_dσ*(x_l; θ_m), shape (K, K), for points θ (M, D) with weights
    ≥ 0 (M,) (cell masses ρ_c|cell|, or 1/N per particle). Points of negligible weight are skipped."""
    weights = np.maximum(np.asarray(weights, dtype=float), 0.0)
    keep = np.flatnonzero(weights > _NEGLIGIBLE * max(weights.max(), 1e-300))
    k = len(problem.x_quadrature()[0])
    out = np.zeros((k, k))
    for lo in range(0, len(keep), _BLOCK):
        index = keep[lo:lo + _BLOCK]
        scaled = problem.tangent_features(points[index]) * np.sqrt(weights[index])   # (D, K, b)
        for g in scaled:
            out += g @ g.T
    return out


def kernel_change(h: np.ndarray, h0: np.ndarray, q: np.ndarray) -> float:
    """‖Q^½(H − H_0)Q^½‖_F / ‖Q^½ H_0 Q^½‖_F, Q = diag(q): the relative change of the kernel (docs/math.md §7)."""
    root = np.sqrt(q)
    scale = np.outer(root, root)
    return float(np.linalg.norm((h - h0) * scale) / np.linalg.norm(h0 * scale))


def supports_tangent_kernel(problem) -> bool:
    """Whether the problem gives the x-quadrature and tangent features the kernel needs."""
    try:
        problem.x_quadrature()
    except NotImplementedError:
        return False
    return True


def finite_volume_tangent_kernel(features: np.ndarray, rho: np.ndarray, widths: np.ndarray,
                                 cell_volume: float) -> np.ndarray:
    """The grid scheme's own tangent kernel at ρ: Σ_axes Σ_faces ρ̄_f |cell| DΦ_k DΦ_l, shape (K, K).

    features: Φ_kc = σ*(x_k; θ_c) on the cells, (K, *grid shape); DΦ the difference of Φ across a face
    over h; ρ̄_f = (ρ^E_j + ρ^W_{j+1})/2 the mean of the scheme's two face values (mfdyn.reconstruction).
    Summing the upwind flux by parts, the network output f_k = Σ_c Φ_kc ρ_c|cell| of the semi-discrete
    PDE moves by 2ξ/α Σ_l H_kl q_l u_l up to |u|(ρ^E − ρ^W)/2 = O(h³)|u|: this is the kernel whose
    lazy limit the PDE on this grid approaches (docs/math.md §7), where the centred H_ρ at the cell
    centres is O(h²) away from it.
    """
    k = features.shape[0]
    out = np.zeros((k, k))
    for axis in range(rho.ndim):
        p, n = int(np.prod(rho.shape[:axis])), rho.shape[axis]
        east, west = face_values(rho.reshape(p, n, -1))
        bar = np.maximum(0.5 * (east[:, :-1] + west[:, 1:]), 0.0)                 # (P, n − 1, Q)
        phi = features.reshape(k, p, n, -1)
        diff = (phi[:, :, 1:] - phi[:, :, :-1]) / widths[axis]                     # (K, P, n − 1, Q)
        scaled = diff.reshape(k, -1) * np.sqrt(bar.ravel() * cell_volume)
        out += scaled @ scaled.T
    return out
