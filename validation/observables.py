"""Quantities compared between the two engines (MATH.md §1, §2)."""
from __future__ import annotations

import numpy as np

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
    """E R_N for θ_i iid ~ ρ: R(ρ) + (∫U(θ,θ)dρ − ∬U dρdρ)/N (MATH §1)."""
    return np.asarray(risk_pde) + np.asarray(finite_n_term) / n
