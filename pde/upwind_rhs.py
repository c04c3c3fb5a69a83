"""The noiseless right-hand side with interaction in one Numba call (docs/math.md §5).

For β = ∞ each stage of the explicit stepper evaluates

    f = Φρ|cell|,  g = w ∘ (f − f_0),  ζ = 2ξ (V_λ + Φᵀg),  dρ/dt = −∇·F(ρ, ζ),  bound = min_k h_k / (2 D max|u_k|)

(f_0: the reference moments of the centred model, else nothing). pde.solve used to do it as a dozen NumPy and
Numba calls; at 1600 cells their Python overhead was most of a step. `interaction_rhs` does it in one call,
with the same serial kernels (moments_serial, expand_serial, axis_flux_divergence) and the same elementwise
operations in the same order, so it gives the same bits. It is used where those serial builds are the ones
the unfused path picks (below PARALLEL_MIN_ENTRIES features × cells and PARALLEL_MIN_CELLS cells).
`interaction_rhs_numpy` is its readable twin (NumPy products and the NumPy flux twin).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from pde.grid import PARALLEL_MIN_CELLS, axis_shape
from pde.potential import PARALLEL_MIN_ENTRIES, PotentialOperator, expand_serial, moments_serial
from pde.upwind import axis_flux_divergence, axis_flux_divergence_numpy


@njit(cache=True, nogil=True, error_model="numpy")     # nogil: another engine runs meanwhile
def _interaction_rhs(phi: np.ndarray, weights: np.ndarray, reference: np.ndarray, v_lam: np.ndarray,
                     two_xi: float, vol: float, rho: np.ndarray, shapes: np.ndarray, widths: np.ndarray,
                     out: np.ndarray, f: np.ndarray, zeta: np.ndarray) -> float:
    """Write dρ/dt into out (M,) for ρ (M,) flat in C order; return the forward-Euler bound.

    phi (K, M), weights (K,), reference (K,) or (0,), v_lam (M,); shapes (D, 3) the (P, n, Q) view of each
    axis, widths (D,); f (K,) and zeta (M,) are scratch (left holding f − f_0 weighted, and ζ).
    """
    moments_serial(phi, rho, vol, f)
    for k in range(f.shape[0]):
        if reference.shape[0] > 0:
            f[k] = f[k] - reference[k]
        f[k] = weights[k] * f[k]
    expand_serial(phi, f, v_lam, zeta)
    for c in range(zeta.shape[0]):
        zeta[c] = two_xi * zeta[c]
    out[:] = 0.0
    ndim = widths.shape[0]
    bound = np.inf
    for axis in range(ndim):
        view = (shapes[axis, 0], shapes[axis, 1], shapes[axis, 2])
        amax = axis_flux_divergence(rho.reshape(view), zeta.reshape(view), widths[axis], out.reshape(view))
        b = widths[axis] / (2.0 * ndim * amax)         # amax = 0: inf, as NumPy's division gives
        if math.isnan(b) or b < bound:                  # NaN propagates, as np.min does
            bound = b
            if math.isnan(b):
                break
    return bound


def interaction_rhs_numpy(op: PotentialOperator, xi: float, rho: np.ndarray, out: np.ndarray) -> float:
    """NumPy twin of interaction_rhs(op, xi)(rho, out): the same formulas with matrix products and the NumPy flux."""
    f = op.phi @ rho.ravel() * op.vol
    if op.reference_moments is not None:
        f = f - op.reference_moments
    zeta = (2.0 * xi * (op.v_lam + (op.weights * f) @ op.phi)).reshape(rho.shape)
    out[...] = 0.0
    amax = np.empty(rho.ndim)
    for axis in range(rho.ndim):
        view = axis_shape(rho.shape, axis)
        amax[axis] = axis_flux_divergence_numpy(rho.reshape(view), zeta.reshape(view), float(op.grid.widths[axis]),
                                                out.reshape(view))
    with np.errstate(divide="ignore"):
        return float(np.min(op.grid.widths / (2.0 * rho.ndim * amax)))


def interaction_rhs(op: PotentialOperator, xi: float):
    """rhs(ρ, out) → bound for β = ∞ (pde.steppers.RHS) in one Numba call, or None where the unfused path would
    use the threaded builds (large grids: the Python overhead is small there) or ρ does not enter Ψ."""
    cells = int(np.prod(op.grid.shape))
    if not op.depends_on_rho or op.phi.size >= PARALLEL_MIN_ENTRIES or cells >= PARALLEL_MIN_CELLS:
        return None
    phi, weights, v_lam = op.phi, np.ascontiguousarray(op.weights, dtype=float), op.v_lam
    reference = np.empty(0) if op.reference_moments is None else np.ascontiguousarray(op.reference_moments)
    shapes = np.array([axis_shape(op.grid.shape, axis) for axis in range(op.grid.ndim)], dtype=np.int64)
    widths = np.ascontiguousarray(op.grid.widths, dtype=float)
    two_xi, vol = 2.0 * xi, float(op.vol)
    f, zeta = np.empty(len(phi)), np.empty(cells)

    def rhs(rho: np.ndarray, out: np.ndarray) -> float:
        return _interaction_rhs(phi, weights, reference, v_lam, two_xi, vol, rho.reshape(-1), shapes, widths,
                                out.reshape(-1), f, zeta)

    return rhs


__all__ = ["interaction_rhs", "interaction_rhs_numpy"]
