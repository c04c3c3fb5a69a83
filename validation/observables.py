"""Quantities compared between the two engines (docs/math.md §1, §2)."""
from __future__ import annotations

import numpy as np

from mfdyn.expressions import evaluate
from mfdyn.transport import distinct_ends, w1_terms_1d

QUANTILES = (0.05, 0.5, 0.95)


def marginal_quantiles(density: np.ndarray, edges: list[np.ndarray], axis: int,
                       probs: tuple[float, ...] = QUANTILES) -> np.ndarray:
    """Quantiles of the axis-marginal of cell averages `density` (grid-shaped), shape (len(probs),).

    edges: the cell faces of every axis. The marginal CDF is piecewise linear inside each cell.
    """
    volumes = np.ones(density.shape)
    for k, e in enumerate(edges):
        shape = [1] * density.ndim
        shape[k] = -1
        volumes = volumes * np.diff(e).reshape(shape)
    others = tuple(k for k in range(density.ndim) if k != axis)
    cell_mass = (density * volumes).sum(axis=others) if others else density * volumes
    cdf = np.concatenate([[0.0], np.cumsum(cell_mass)])
    targets = np.asarray(probs) * cdf[-1]
    j = np.clip(np.searchsorted(cdf, targets, side="left"), 1, len(cell_mass))
    mass = cell_mass[j - 1]
    inside = np.divide(targets - cdf[j - 1], mass, out=np.zeros_like(targets), where=mass > 0)
    e = edges[axis]
    return e[j - 1] + np.clip(inside, 0.0, 1.0) * (e[j] - e[j - 1])


def edges_from_centres(centres: np.ndarray) -> np.ndarray:
    """Faces of a uniform grid from its cell centres."""
    h = centres[1] - centres[0]
    return np.concatenate([centres - 0.5 * h, [centres[-1] + 0.5 * h]])


def particle_quantiles(z: np.ndarray, probs: tuple[float, ...] = QUANTILES) -> np.ndarray:
    """Quantiles of each reduced coordinate over the particles: z (N, k) → (len(probs), k)."""
    return np.quantile(z, probs, axis=0)


def risk_with_finite_n(risk_pde: np.ndarray, finite_n_term: np.ndarray, n: int) -> np.ndarray:
    """E R_N for θ_i iid ~ ρ: R(ρ) + (∫U(θ,θ)dρ − ∬U dρdρ)/N (docs/math.md §1)."""
    return np.asarray(risk_pde) + np.asarray(finite_n_term) / n


def pde_expectations(expression: str, coords: tuple[str, ...], densities: list[np.ndarray],
                     centres: list[np.ndarray]) -> np.ndarray:
    """∫ f dρ for each of `densities` (cell averages, grid-shaped; midpoint rule, the solver's own quadrature),
    (len(densities),); f is evaluated on the cell centres once for all of them."""
    mesh = np.meshgrid(*centres, indexing="ij")
    volume = float(np.prod([c[1] - c[0] for c in centres]))
    values = evaluate(expression, coords, mesh)
    return np.array([float(np.sum(values * density) * volume) for density in densities])


def pde_expectation(expression: str, coords: tuple[str, ...], density: np.ndarray,
                    centres: list[np.ndarray]) -> float:
    """∫ f dρ for cell averages (midpoint rule, the solver's own quadrature)."""
    return float(pde_expectations(expression, coords, [density], centres)[0])


def w1_1d(z: np.ndarray, density: np.ndarray, edges: np.ndarray) -> float:
    """W1 between the particles z (n,) and cell averages on `edges`: ∫|F_N − F| exactly.

    F is piecewise linear (constant density per cell), F_N a step function; between consecutive
    breakpoints (edges ∪ particles) the integrand is |c − linear|, integrated in closed form.
    """
    mass_cells = density * np.diff(edges)
    cdf_edges = np.concatenate([[0.0], np.cumsum(mass_cells)]) / mass_cells.sum()
    zs = np.sort(np.clip(z, edges[0], edges[-1]))
    points = np.union1d(edges, zs)
    f = np.interp(points, edges, cdf_edges)
    fn = np.searchsorted(zs, points[:-1], side="right") / len(zs)      # constant on [p_i, p_{i+1})
    a, b, width = f[:-1] - fn, f[1:] - fn, np.diff(points)
    same = a * b >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = width * (a * a + b * b) / (2 * (np.abs(a) + np.abs(b)))
    return float(np.sum(np.where(same, width * np.abs(a + b) / 2, np.nan_to_num(crossing))))


class SlicedW1:
    """Sliced W1 in 2-D/3-D between particles and a grid density: the mean over fixed random directions u
    of W1 between u·z_i and u·θ under ρ, with each cell's mass at its centre (O(h) from the grid law).
    The grid's projections and their order are computed once per grid, a density's cumulative masses along
    them once per density (cdfs), and reused for every call."""

    def __init__(self, centres: list[np.ndarray], directions: int = 64, seed: int = 0):
        rng = np.random.default_rng(seed)
        u = rng.standard_normal((directions, len(centres)))
        self.u = u / np.linalg.norm(u, axis=1)[:, None]
        points = np.stack([m.ravel() for m in np.meshgrid(*centres, indexing="ij")], axis=1)
        projections = points @ self.u.T                                  # (M, directions)
        order = np.argsort(projections, axis=0)
        self.order = np.ascontiguousarray(order.T)                       # (directions, M)
        self.sorted = np.ascontiguousarray(np.take_along_axis(projections, order, axis=0).T)
        self.ends = [distinct_ends(x) for x in self.sorted]             # per direction, the distinct projections
        self.points = [x[ends] for x, ends in zip(self.sorted, self.ends)]

    def cdfs(self, density: np.ndarray) -> list[np.ndarray]:
        """The grid side of the distance to one density (grid-shaped): per direction the cumulative masses of
        the cells in the order of their projections (normalised to end at 1), read at each distinct projection
        (self.points), a list of `directions` arrays of up to M values."""
        weights = density.ravel() / density.sum()
        return [row[ends] for row, ends in zip(np.cumsum(weights[self.order], axis=1), self.ends)]

    def distance(self, z: np.ndarray, cdfs: list[np.ndarray]) -> float:
        """Sliced W1 between the particles z (N, k) and the density whose cdfs these are."""
        total = 0.0
        for direction, xs, cdf in zip(self.u, self.points, cdfs):
            total += float(np.sum(w1_terms_1d(xs, cdf, np.sort(z @ direction))))
        return total / len(self.u)

    def __call__(self, z: np.ndarray, density: np.ndarray) -> float:
        """Sliced W1 between the particles z (N, k) and cell averages `density` (grid-shaped)."""
        return self.distance(z, self.cdfs(density))
