"""Uniform cell-centred grids in 1 to 3 dimensions (docs/math.md §5), and the grid a config asks for.

The grid is geometry shared by every engine that works with cell averages of ρ (the PDE, the
kernel limit): the problem interface speaks in its centres and edges.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Grid:
    """Cells of width h_k = (hi − lo)/n_k on each axis; values are cell averages.

    bounds: ((lo, hi), ...) per axis; cells: (n_0, ...) per axis; names: coordinate names.
    """

    bounds: tuple[tuple[float, float], ...]
    cells: tuple[int, ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not (len(self.bounds) == len(self.cells) == len(self.names)):
            raise ValueError("Grid: bounds, cells and names need one entry per axis")

    @property
    def ndim(self) -> int:
        return len(self.cells)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.cells)

    @cached_property
    def widths(self) -> np.ndarray:
        """h_k per axis, shape (ndim,)."""
        return np.array([(hi - lo) / n for (lo, hi), n in zip(self.bounds, self.cells)])

    @property
    def cell_volume(self) -> float:
        """|cell| = Π h_k."""
        return float(np.prod(self.widths))

    @cached_property
    def edges(self) -> list[np.ndarray]:
        """Cell faces per axis, n_k + 1 each."""
        return [np.linspace(lo, hi, n + 1) for (lo, hi), n in zip(self.bounds, self.cells)]

    @cached_property
    def centres(self) -> list[np.ndarray]:
        """Cell centres per axis, n_k each."""
        return [0.5 * (e[1:] + e[:-1]) for e in self.edges]

    def mesh(self) -> list[np.ndarray]:
        """Centres broadcast to the grid shape, flattened in C order, one (M,) array per axis."""
        return [m.ravel() for m in np.meshgrid(*self.centres, indexing="ij")]

    def integrate(self, values: np.ndarray) -> float:
        """∫ values dz for cell averages (midpoint sum times |cell|)."""
        return float(np.sum(values) * self.cell_volume)


def build_grid(problem, config) -> Grid:
    """The grid a config asks for: pde.bounds (default: the problem's) and pde.cells per axis."""
    bounds = config.pde.bounds or problem.default_bounds()
    cells = config.pde.cells * len(bounds) if len(config.pde.cells) == 1 else config.pde.cells
    return Grid(tuple(bounds), tuple(cells), problem.coords)
