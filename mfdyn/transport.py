"""Wasserstein-2 distances of cell-average densities on one grid: exact in 1-D, sliced in 2-D and 3-D
(docs/math.md §7: the PDE's displacement W2(ρ_t, ρ_0))."""
from __future__ import annotations

import numpy as np
from numba import njit


def w2_1d(rho: np.ndarray, rho0: np.ndarray, edges: np.ndarray) -> float:
    """W2 between two piecewise-constant densities on the same cells, exactly.

    Each quantile function is linear in u inside each cell of positive mass and jumps over cells of zero
    mass; on the pieces between the merged CDF breakpoints both are linear, so ∫₀¹ (Q − Q₀)² du is a sum
    of exact quadratics, each Q read from its own cell (one-sided at the jumps).
    """
    def law(density):
        mass = np.maximum(density, 0.0) * np.diff(edges)
        mass = mass / mass.sum()
        return mass, np.concatenate([[0.0], np.cumsum(mass)])

    (m, c), (m0, c0) = law(rho), law(rho0)
    u = np.union1d(c, c0)
    u = u[(u >= 0.0) & (u <= 1.0)]
    lo, hi = u[:-1], u[1:]
    mid = 0.5 * (lo + hi)

    def quantile_ends(mass, cdf):
        j = np.clip(np.searchsorted(cdf, mid, side="right") - 1, 0, len(mass) - 1)    # the cell holding mid
        width = np.diff(edges)[j] / np.where(mass[j] > 0, mass[j], 1.0)
        return edges[j] + (lo - cdf[j]) * width, edges[j] + (hi - cdf[j]) * width

    (a0, a1), (b0, b1) = quantile_ends(m, c), quantile_ends(m0, c0)
    d0, d1 = a0 - b0, a1 - b1
    return float(np.sqrt(max(np.sum((hi - lo) * (d0 * d0 + d0 * d1 + d1 * d1)) / 3.0, 0.0)))


@njit(cache=True)
def w2_discrete_1d(x: np.ndarray, w: np.ndarray, w0: np.ndarray) -> float:
    """W2² between Σ w_i δ_{x_i} and Σ w0_i δ_{x_i} (x sorted, weights ≥ 0 normalised): one merge of the two
    cumulative weights; on each piece of [0, 1] between consecutive breakpoints both quantile functions
    are constant, x[i] and x[j]."""
    n = len(x)
    i = j = 0
    ci, cj = w[0], w0[0]
    u = total = 0.0
    while i < n and j < n:
        top = min(ci, cj, 1.0)
        if top > u:
            total += (top - u) * (x[i] - x[j]) ** 2
            u = top
        if ci <= cj:
            i += 1
            if i < n:
                ci += w[i]
        else:
            j += 1
            if j < n:
                cj += w0[j]
    return total


def w2_discrete_1d_numpy(x: np.ndarray, w: np.ndarray, w0: np.ndarray) -> float:
    """NumPy twin of w2_discrete_1d: the quantile functions at the midpoints of the merged breakpoints."""
    c, c0 = np.cumsum(w), np.cumsum(w0)
    u = np.union1d(c, c0)
    u = u[u <= 1.0]
    lo = np.concatenate([[0.0], u[:-1]])
    mid = 0.5 * (lo + u)
    top = len(x) - 1
    q = x[np.minimum(np.searchsorted(c, mid), top)]
    q0 = x[np.minimum(np.searchsorted(c0, mid), top)]
    return float(np.sum((u - lo) * (q - q0) ** 2))


class W2Displacement:
    """W2(ρ, ρ_0) on a fixed grid: exact in 1-D (w2_1d), sliced in 2-D/3-D: sqrt of the mean over fixed random
    directions of the 1-D W2² between the projected cell masses (each cell's mass at its centre). The
    projections and their order are computed once."""

    def __init__(self, rho0: np.ndarray, centres: list[np.ndarray], edges: list[np.ndarray],
                 directions: int = 64, seed: int = 0):
        self.rho0, self.edges = np.asarray(rho0, dtype=float), edges
        if len(centres) > 1:
            rng = np.random.default_rng(seed)
            u = rng.standard_normal((directions, len(centres)))
            u /= np.linalg.norm(u, axis=1)[:, None]
            points = np.stack([m.ravel() for m in np.meshgrid(*centres, indexing="ij")], axis=1)
            projections = (points @ u.T).T                                    # (directions, M)
            self.order = np.argsort(projections, axis=1, kind="stable")
            self.sorted = np.take_along_axis(projections, self.order, axis=1)
            self.w0_sorted = self._normalised(self.rho0)[self.order]

    @staticmethod
    def _normalised(rho: np.ndarray) -> np.ndarray:
        flat = np.maximum(rho.ravel(), 0.0)
        return flat / flat.sum()

    def __call__(self, rho: np.ndarray) -> float:
        if len(self.edges) == 1:
            return w2_1d(np.asarray(rho, dtype=float), self.rho0, self.edges[0])
        w = self._normalised(rho)
        moved = w[self.order]
        total = sum(w2_discrete_1d(x, m, m0) for x, m, m0 in zip(self.sorted, moved, self.w0_sorted))
        return float(np.sqrt(total / len(self.order)))
