"""How the finite-volume kernels (pde.upwind, pde.scharfetter_gummel) view and split a grid-shaped array
(docs/math.md §5). The grid itself is mfdyn.grid.Grid, shared with the other engines."""
from __future__ import annotations

import math

Q_BLOCK = 256                # q-columns per task: tasks (p, q-block) write disjoint parts of out
PARALLEL_MIN_CELLS = 1 << 20  # below this a thread wake-up (up to 0.15 ms here) costs more than it saves


def axis_shape(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    """(P, n, Q): the C-order shape as (axes before, the axis, axes after)."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
