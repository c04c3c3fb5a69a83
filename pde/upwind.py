"""Second-order upwind finite-volume fluxes for the noiseless equation ∂_t ρ = ∇·(ρ∇ζ)
(docs/math.md §5; Carrillo, Chertock & Huang 2015).

Along one axis, with face velocity u_{j+½} = −(ζ_{j+1} − ζ_j)/h:

    F_{j+½} = u⁺ ρ^E_j + u⁻ ρ^W_{j+1},     dρ_j/dt −= (F_{j+½} − F_{j−½}) / h,

ρ^{E/W}_j = ρ_j ± (h/2) s_j with the centred slope, replaced by the generalised minmod (θ = 2)
only in cells where a point value would go negative. Faces on the boundary carry no flux
(zero-flux boundaries: mass is conserved exactly), and the slope there uses a mirrored ghost
cell (ρ_{−1} = ρ_0). A d-dimensional array is handled one axis at a time by viewing it as
(P, n, Q) with the axis in the middle (pde.grid.axis_shape); the update is unsplit (contributions
are summed).

`axis_flux_divergence` is the Numba kernel (a serial and a parallel build of one source);
`axis_flux_divergence_numpy` is its readable twin. With noise (β < ∞) the flux is
Scharfetter–Gummel's instead: pde.scharfetter_gummel.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from mfdyn.builds import serial_and_parallel
from mfdyn.reconstruction import MINMOD_THETA, face_values
from pde.grid import PARALLEL_MIN_CELLS, Q_BLOCK, axis_shape

P_BLOCK = 16                 # rows per task when the axis is the last one (Q = 1)


@njit(cache=True, inline="always")
def _half_jump(rm: float, r0: float, rp: float) -> float:
    """(h/2)·slope of the cell with neighbours rm, rp: centred, or minmod(θ) if a point value would be < 0.

    Selects only, no branches, so that loops over cells vectorise: minmod(a, b, c) =
    max(min(a, b, c), 0) + min(max(a, b, c), 0) is the min if all are > 0, the max if all are < 0, else 0.
    """
    centred = 0.25 * (rp - rm)
    a, b, c = MINMOD_THETA * (rp - r0), 0.5 * (rp - rm), MINMOD_THETA * (r0 - rm)
    limited = 0.5 * (max(min(a, min(b, c)), 0.0) + min(max(a, max(b, c)), 0.0))
    return centred if r0 - abs(centred) >= 0.0 else limited


@njit(cache=True, inline="always")
def _upwind_flux(u: float, east: float, west: float, h: float) -> float:
    """F/h = (u⁺ ρ^E + u⁻ ρ^W)/h without a branch on the sign of u (the other term is ±0)."""
    return (max(u, 0.0) * east + min(u, 0.0) * west) / h


@njit(cache=True, inline="always")
def _face(r_lo: float, r_hi: float, r_up: float, half_lo: float, z_lo: float, z_hi: float,
          h: float) -> tuple[float, float, float]:
    """Face j+½ from cells j (r_lo, its half-jump half_lo), j+1 (r_hi) and j+2 (r_up, or the mirrored ghost):
    (F_{j+½}/h, the half-jump of cell j+1, |u_{j+½}|)."""
    half_hi = _half_jump(r_lo, r_hi, r_up)
    u = -(z_hi - z_lo) / h
    return _upwind_flux(u, r_lo + half_lo, r_hi - half_hi, h), half_hi, abs(u)


def _axis_flux_divergence(rho: np.ndarray, zeta: np.ndarray, h: float, out: np.ndarray) -> float:
    """Add −(F_{j+½} − F_{j−½})/h along the middle axis of (P, n, Q) arrays to out; return max |u|.

    Each cell's half-jump and each face's flux are computed once and carried along j to the next
    face: out_j ← (out_j + F_{j−½}) − F_{j+½}. With Q > 1 a task is (p, block of Q_BLOCK columns),
    sweeping j with q innermost (contiguous, vectorised); what is carried, and max |u| per column,
    live in the task's scratch rows. With Q = 1 (the last axis) a task is a block of P_BLOCK rows,
    each swept along j (contiguous, vectorised), with max |u| kept per face across the rows.
    Tasks write disjoint parts of out and each element is computed the same way whatever the thread
    count, so the serial and parallel builds give bit-identical results.
    """
    P, n, Q = rho.shape
    if n < 2 or rho.size == 0:
        return 0.0
    if Q == 1:
        tasks = (P + P_BLOCK - 1) // P_BLOCK
        umax = np.zeros((tasks, n - 1))
        for task in prange(tasks):
            for p in range(task * P_BLOCK, min(task * P_BLOCK + P_BLOCK, P)):
                half, below = _half_jump(rho[p, 0, 0], rho[p, 0, 0], rho[p, 1, 0]), 0.0
                for j in range(n - 2):
                    flux, half, speed = _face(rho[p, j, 0], rho[p, j + 1, 0], rho[p, j + 2, 0], half,
                                              zeta[p, j, 0], zeta[p, j + 1, 0], h)
                    out[p, j, 0] = (out[p, j, 0] + below) - flux
                    below, umax[task, j] = flux, max(umax[task, j], speed)
                j = n - 2                                    # the top face: cell j + 2 is the ghost
                flux, half, speed = _face(rho[p, j, 0], rho[p, j + 1, 0], rho[p, j + 1, 0], half,
                                          zeta[p, j, 0], zeta[p, j + 1, 0], h)
                out[p, j, 0] = (out[p, j, 0] + below) - flux
                out[p, j + 1, 0] += flux
                umax[task, j] = max(umax[task, j], speed)
        return umax.max()
    blocks = (Q + Q_BLOCK - 1) // Q_BLOCK
    scratch = np.zeros((P * blocks, 3, min(Q_BLOCK, Q)))      # half-jump of cell j, F_{j−½}, max |u|
    for task in prange(P * blocks):
        p, q0 = task // blocks, (task % blocks) * Q_BLOCK
        m = min(q0 + Q_BLOCK, Q) - q0
        half, below, umax = scratch[task, 0], scratch[task, 1], scratch[task, 2]
        r0, r1 = rho[p, 0, q0:q0 + m], rho[p, 1, q0:q0 + m]
        for k in range(m):
            half[k] = _half_jump(r0[k], r0[k], r1[k])
        for j in range(n - 1):
            lo, hi, up = rho[p, j, q0:q0 + m], rho[p, j + 1, q0:q0 + m], rho[p, min(j + 2, n - 1), q0:q0 + m]
            z_lo, z_hi, cell = zeta[p, j, q0:q0 + m], zeta[p, j + 1, q0:q0 + m], out[p, j, q0:q0 + m]
            for k in range(m):
                flux, half[k], speed = _face(lo[k], hi[k], up[k], half[k], z_lo[k], z_hi[k], h)
                cell[k] = (cell[k] + below[k]) - flux
                below[k], umax[k] = flux, max(umax[k], speed)
        top = out[p, n - 1, q0:q0 + m]
        for k in range(m):
            top[k] += below[k]
    return scratch[:, 2].max()


axis_flux_divergence, axis_flux_divergence_parallel = serial_and_parallel(_axis_flux_divergence)


def axis_flux_divergence_numpy(rho: np.ndarray, zeta: np.ndarray, h: float, out: np.ndarray) -> float:
    """NumPy twin of axis_flux_divergence (same arguments, same effect, same return)."""
    east, west = face_values(rho)
    u = -(zeta[:, 1:] - zeta[:, :-1]) / h
    flux = (np.maximum(u, 0) * east[:, :-1] + np.minimum(u, 0) * west[:, 1:]) / h
    out[:, :-1] -= flux
    out[:, 1:] += flux
    return float(np.max(np.abs(u))) if u.size else 0.0


def flux_divergence(rho: np.ndarray, zeta: np.ndarray, widths: np.ndarray, out: np.ndarray,
                    kernel=None) -> np.ndarray:
    """out = −∇·F for grid-shaped ρ, ζ (any dimension); return max |u| per axis, shape (ndim,).

    kernel: the per-axis kernel; default the Numba one, parallel above PARALLEL_MIN_CELLS cells.
    """
    if kernel is None:
        kernel = axis_flux_divergence_parallel if rho.size >= PARALLEL_MIN_CELLS else axis_flux_divergence
    out[...] = 0.0
    amax = np.empty(rho.ndim)
    for axis in range(rho.ndim):
        shape3 = axis_shape(rho.shape, axis)
        amax[axis] = kernel(rho.reshape(shape3), zeta.reshape(shape3), float(widths[axis]), out.reshape(shape3))
    return amax
