"""Wasserstein distances on one grid: W2 of cell-average densities, exact in 1-D, sliced in 2-D and 3-D
(docs/math.md §7: the PDE's displacement W2(ρ_t, ρ_0)); and the pieces of the 1-D W1 between weighted points
and particles that validation/observables.py's sliced W1 sums."""
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
        h = np.diff(edges)[j]
        width = h / np.where(mass[j] > 0, mass[j], 1.0)
        # the quantile lies in cell j: u − cdf_j is rounded at the scale of the cdf (1e−16), so for a cell of tiny
        # mass (1e−99 far out in a noisy solution) the offset must be clipped into the cell, [0, h]
        return (edges[j] + np.clip((lo - cdf[j]) * width, 0.0, h),
                edges[j] + np.clip((hi - cdf[j]) * width, 0.0, h))

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


def distinct_ends(xs: np.ndarray) -> np.ndarray:
    """For sorted xs (M,), the index of the last of each run of equal values, (U,): xs[distinct_ends(xs)] is
    np.unique(xs), and a cumulative sum read there is its value after the whole run."""
    return np.flatnonzero(np.append(np.diff(xs) != 0, True))


@njit(cache=True)
def w1_terms_1d(xs: np.ndarray, cdf: np.ndarray, part: np.ndarray) -> np.ndarray:
    """The pieces of ∫|F − F_N| dx between the law Σ m_i δ_{x_i} and the particles `part`: xs (U,) strictly
    increasing and finite, cdf (U,) its cumulative masses (cdf[i] = m_0 + … + m_i), part (N,) sorted (NaN last).
    One merge: on each gap between consecutive distinct points v_j < v_{j+1} of xs ∪ part both CDFs are
    constant, so piece j is |F(v_j) − F_N(v_j)|·(v_{j+1} − v_j), (L − 1,) for L distinct points (NaN counting
    as one, last); between two particles, a tight loop over the grid points. The same array as
    w1_terms_1d_numpy on the repeated points (distinct_ends), bit for bit, so np.sum of either is the same W1."""
    m, n = len(xs), len(part)
    finite = n
    while finite > 0 and part[finite - 1] != part[finite - 1]:         # NaN: sorted last, one point of the union
        finite -= 1
    terms = np.empty(m + n)
    i = k = count = 0
    previous = previous_gap = f_part = 0.0
    while i < m or k < finite:
        stop = i
        while stop < m and (k >= finite or xs[stop] < part[k]):     # the grid points before the next particle
            stop += 1
        if stop > i:
            if count:
                terms[count - 1] = previous_gap * (xs[i] - previous)
            for t in range(stop - i - 1):
                j = i + t
                terms[count + t] = abs(cdf[j] - f_part) * (xs[j + 1] - xs[j])
            count += stop - i
            previous, previous_gap = xs[stop - 1], abs(cdf[stop - 1] - f_part)
            i = stop
        if k < finite:                                                  # the particle (a grid point there merged)
            v = part[k]
            while k < finite and part[k] <= v:
                k += 1
            f_part = k / n
            if i < m and xs[i] == v:
                i += 1
            if count:
                terms[count - 1] = previous_gap * (v - previous)
            previous, previous_gap = v, abs((cdf[i - 1] if i > 0 else 0.0) - f_part)
            count += 1
    if finite < n:
        terms[count - 1] = previous_gap * (np.nan - previous)
        count += 1
    return terms[:max(count - 1, 0)]


def w1_terms_1d_numpy(xs: np.ndarray, cdf: np.ndarray, part: np.ndarray) -> np.ndarray:
    """NumPy twin of w1_terms_1d: both CDFs read at every point of the union but the last (searchsorted)."""
    allx = np.union1d(xs, part)
    f_grid = np.concatenate([[0.0], cdf])[np.searchsorted(xs, allx[:-1], side="right")]
    f_part = np.searchsorted(part, allx[:-1], side="right") / len(part)
    return np.abs(f_grid - f_part) * np.diff(allx)


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
