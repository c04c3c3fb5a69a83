"""Finite-volume solver for the distributional dynamics (docs/math.md §5).

Note: py-pde also installs a top-level package named `pde`; the two cannot share an environment.
"""
from mfdyn.grid import Grid
from pde.potential import PotentialOperator
from pde.solve import PDEState, solve

__all__ = ["Grid", "PDEState", "PotentialOperator", "solve"]
