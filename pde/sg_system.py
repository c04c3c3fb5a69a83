"""The linear systems of the trbdf2 stepper: (I − s·A) x = b for the Scharfetter–Gummel operator A of one ψ
(docs/math.md §5).

For each face between cells i and i' (next along an axis), mass moves i → i' at rate forward_i and i' → i at
backward_i (pde.scharfetter_gummel.SGWeights). So A has zero column sums and nonnegative off-diagonals, and
I − s·A (s > 0) is an M-matrix whose columns are diagonally dominant: Gaussian elimination needs no pivoting.

In 1-D A is tridiagonal,

    (I − sA)_{i,i} = 1 + s(forward_i + backward_{i−1}),  (I − sA)_{i,i−1} = −s forward_{i−1},  (I − sA)_{i,i+1} = −s backward_i,

and SGSystem eliminates it by the Thomas algorithm (Numba kernels tridiagonal_factor, tridiagonal_solve; NumPy
twin: scipy.linalg.solve_banded). In 2-D and 3-D it is a sparse LU of the assembled matrix (sg_matrix), without
pivoting.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from pde.scharfetter_gummel import SGWeights

if TYPE_CHECKING:
    import scipy.sparse as sp


@njit(cache=True)
def tridiagonal_factor(forward: np.ndarray, backward: np.ndarray, s: float, pivot: np.ndarray,
                       multiplier: np.ndarray) -> None:
    """LU of I − s·A for 1-D face weights forward, backward (n − 1,): writes the pivots u_i (n,) and the
    multipliers l_i = (I − sA)_{i,i−1}/u_{i−1} (n,; l_0 = 0) of the elimination from the top."""
    n = pivot.shape[0]
    multiplier[0] = 0.0
    pivot[0] = 1.0 + s * (forward[0] if n > 1 else 0.0)
    for i in range(1, n):
        up = forward[i] if i < n - 1 else 0.0
        low = -s * forward[i - 1]
        multiplier[i] = low / pivot[i - 1]
        pivot[i] = (1.0 + s * (up + backward[i - 1])) - multiplier[i] * (-s * backward[i - 1])


@njit(cache=True)
def tridiagonal_solve(backward: np.ndarray, s: float, pivot: np.ndarray, multiplier: np.ndarray, rhs: np.ndarray,
                      out: np.ndarray) -> None:
    """x with (I − s·A) x = rhs, from tridiagonal_factor's pivots and multipliers (all (n,); backward (n − 1,)):
    forward substitution of L, then back substitution of U (whose upper diagonal is −s·backward)."""
    n = pivot.shape[0]
    out[0] = rhs[0]
    for i in range(1, n):
        out[i] = rhs[i] - multiplier[i] * out[i - 1]
    out[n - 1] = out[n - 1] / pivot[n - 1]
    for i in range(n - 2, -1, -1):
        out[i] = (out[i] + s * backward[i] * out[i + 1]) / pivot[i]


def tridiagonal_solve_numpy(forward: np.ndarray, backward: np.ndarray, s: float, rhs: np.ndarray) -> np.ndarray:
    """NumPy twin of tridiagonal_factor + tridiagonal_solve: the banded matrix of the module docstring, solved by
    scipy.linalg.solve_banded (LAPACK gbsv)."""
    from scipy.linalg import solve_banded

    n = len(rhs)
    bands = np.zeros((3, n))
    bands[0, 1:] = -s * backward                  # upper diagonal: (i, i+1)
    bands[1] = 1.0
    bands[1, :-1] += s * forward
    bands[1, 1:] += s * backward
    bands[2, :-1] = -s * forward                  # lower diagonal: (i+1, i)
    return solve_banded((1, 1), bands, rhs)


def sg_matrix(weights: SGWeights) -> sp.csc_matrix:
    """The Scharfetter–Gummel operator A (dρ/dt = Aρ) of the face weights of a frozen ψ, flattened in C order.

    For each face between cells i and i' (next along an axis), mass moves i → i' at rate
    forward = (Dif/h²) B(β(ψ_i' − ψ_i)) and i' → i at backward = (Dif/h²) B(β(ψ_i − ψ_i')): A has zero
    column sums (mass) and nonnegative off-diagonals, so I − dt A is an M-matrix for any dt (docs/math.md §5).
    """
    import scipy.sparse as sp  # heavy: only the implicit stepper needs it

    shape = (weights.forward[0].shape[0] + 1,) + weights.forward[0].shape[1:]      # the grid's
    index = np.arange(int(np.prod(shape))).reshape(shape)
    rows, cols, vals = [], [], []
    for axis, (forward, backward) in enumerate(zip(weights.forward, weights.backward)):
        lo = [slice(None)] * len(shape)
        hi = [slice(None)] * len(shape)
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        i, j = index[tuple(lo)].ravel(), index[tuple(hi)].ravel()
        rows += [i, j, i, j]
        cols += [i, i, j, j]
        vals += [-forward.ravel(), forward.ravel(), backward.ravel(), -backward.ravel()]
    return sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(index.size, index.size))


class SGSystem:
    """I − s·A(ψ) for the SG face weights of one ψ, factored once: solve(b) (flat, C order) for many b."""

    def __init__(self, weights: SGWeights, s: float):
        self.weights, self.s = weights, s
        if len(weights.forward) == 1:
            n = weights.forward[0].shape[0] + 1
            self._pivot, self._multiplier = np.empty(n), np.empty(n)
            tridiagonal_factor(weights.forward[0], weights.backward[0], s, self._pivot, self._multiplier)
            self._lu = None
        else:
            import scipy.sparse as sp
            from scipy.sparse.linalg import splu

            a = sg_matrix(weights)
            # the pattern is symmetric and the diagonal pivots are safe (an M-matrix with dominant columns):
            # minimum degree on A + Aᵀ and no pivoting halve the fill-in of the default (COLAMD, partial pivoting)
            self._lu = splu((sp.identity(a.shape[0], format="csc") - s * a).tocsc(), permc_spec="MMD_AT_PLUS_A",
                            diag_pivot_thresh=0.0, options={"SymmetricMode": True})

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """x (flat) with (I − s·A) x = rhs (flat)."""
        if self._lu is not None:
            return self._lu.solve(rhs)
        out = np.empty(len(rhs))
        tridiagonal_solve(self.weights.backward[0], self.s, self._pivot, self._multiplier, rhs, out)
        return out
