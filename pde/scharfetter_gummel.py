"""Scharfetter–Gummel finite-volume fluxes for the noisy equation (β < ∞; docs/math.md §5).

With B(z) = z/(e^z − 1), Dif = 2ξ/β and ψ = Ψ_λ − β⁻¹ log J:

    J_{j+½} = (Dif/h) [ B(δ) ρ_j − B(−δ) ρ_{j+1} ],     δ = β(ψ_{j+1} − ψ_j).

With u = ρ e^{βψ} this is (Dif/h) B(δ) e^{−βψ_j} (u_j − u_{j+1}): zero on a discrete Gibbs state
(u constant), and it dissipates the discrete free energy. It is linear in ρ with face weights
(Dif/h²) B(±δ) that depend on ψ only, so it is computed in two parts: `sg_weights` (ψ → weights, one
expm1 per face) and `sg_apply` (weights, ρ → −∇·J, branch-free). When ψ does not depend on ρ the
solver computes the weights once. A forward-Euler step stays positive if
dt · Σ_axes (Dif/h²) (B(δ_{j+½}) + B(−δ_{j−½})) ≤ 1 in every cell; the weights carry that rate.
Faces on the boundary carry no flux (zero-flux boundaries: mass is conserved exactly).

The kernels view an axis as (P, n·Q) (pde.grid.axis_shape): cell i's neighbour along the axis is
i + Q, and face i lies between them. Kernels `axis_sg_weights`, `axis_sg_apply` (each a serial and a
parallel build of one source); twins `axis_sg_weights_numpy`, `axis_sg_apply_numpy`. Without noise
the flux is the upwind one: pde.upwind.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from mfdyn.builds import serial_and_parallel
from pde.grid import PARALLEL_MIN_CELLS, Q_BLOCK, axis_shape

CELL_CHUNK = 8192            # cells per task of axis_sg_apply


@njit(cache=True, inline="always")
def bernoulli_pair(z: float) -> tuple[float, float]:
    """(B(z), B(−z)), B(z) = z/(e^z − 1), with one expm1 and no cancellation.

    With a = |z| and b = B(a) = a/expm1(a) (B(0) = 1; b → 0 as a → ∞): B(−a) = a + b, a sum of two
    non-negatives. So (B(z), B(−z)) is (b, a + b) for z ≥ 0 and (a + b, b) for z < 0.
    """
    a = abs(z)
    b = a / math.expm1(a) if a > 0.0 else 1.0
    return (b, a + b) if z >= 0.0 else (a + b, b)


def bernoulli_array(z: np.ndarray) -> np.ndarray:
    """B(z) = z / (e^z − 1) elementwise, B(0) = 1: the direct formula (the NumPy twin of bernoulli_pair)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return np.where(z == 0.0, 1.0, z / np.expm1(z))


def _axis_sg_weights(psi: np.ndarray, stride: int, h: float, beta: float, dif: float, forward: np.ndarray,
                     backward: np.ndarray) -> float:
    """Face weights of (P, n·Q) ψ (Q = stride) into (P, (n−1)·Q) arrays: forward_i = (Dif/h²) B(δ_i) (rate
    i → i + Q), backward_i = (Dif/h²) B(−δ_i) (rate i + Q → i), δ_i = β(ψ_{i+Q} − ψ_i). Return the
    largest forward-Euler rate forward_i + backward_{i−Q} of a cell. A task is (p, block of Q_BLOCK
    columns q), each column swept along j, carrying backward of the face below."""
    P = psi.shape[0]
    n = psi.shape[1] // stride if stride > 0 else 0
    blocks = (stride + Q_BLOCK - 1) // Q_BLOCK
    rates = np.zeros(P * blocks)
    scale = dif / (h * h)
    for task in prange(P * blocks):
        p, q0 = task // blocks, (task % blocks) * Q_BLOCK
        local = 0.0
        for q in range(q0, min(q0 + Q_BLOCK, stride)):
            incoming = 0.0                       # backward weight of the face below cell j
            for j in range(n - 1):
                i = j * stride + q
                b_plus, b_minus = bernoulli_pair(beta * (psi[p, i + stride] - psi[p, i]))
                forward[p, i], backward[p, i] = scale * b_plus, scale * b_minus
                local = max(local, forward[p, i] + incoming)
                incoming = backward[p, i]
            local = max(local, incoming)         # the top cell has no face above
        rates[task] = local
    return rates.max() if rates.size else 0.0


axis_sg_weights, axis_sg_weights_parallel = serial_and_parallel(_axis_sg_weights)


def axis_sg_weights_numpy(psi: np.ndarray, stride: int, h: float, beta: float, dif: float, forward: np.ndarray,
                          backward: np.ndarray) -> float:
    """NumPy twin of axis_sg_weights (two direct B evaluations per face)."""
    delta = beta * (psi[:, stride:] - psi[:, :psi.shape[1] - stride])
    forward[...] = dif / (h * h) * bernoulli_array(delta)
    backward[...] = dif / (h * h) * bernoulli_array(-delta)
    rate = np.zeros(psi.shape)
    rate[:, :forward.shape[1]] += forward
    rate[:, stride:] += backward
    return float(rate.max()) if psi.size else 0.0


@njit(cache=True, inline="always")
def _sg_flux(forward: float, backward: float, rho_lo: float, rho_hi: float) -> float:
    """J/h through a face from its weights and the densities below and above it."""
    return forward * rho_lo - backward * rho_hi


def _axis_sg_apply(rho: np.ndarray, forward: np.ndarray, backward: np.ndarray, stride: int,
                   out: np.ndarray) -> None:
    """Add −(J_i − J_{i−Q})/h to out, all (P, n·Q) arrays, weights (P, (n−1)·Q): out_i ← (out_i + J_{i−Q}/h) −
    J_i/h, the bottom row without the first term and the top row without the second.

    A task is (p, chunk of CELL_CHUNK cells). Each cell recomputes the two face fluxes it needs, so
    tasks are independent and every split gives the same bits; the loops are branch-free and
    contiguous (they vectorise) whatever Q is.
    """
    P, cells = rho.shape
    faces = forward.shape[1]
    if faces == 0:
        return
    chunks = (cells + CELL_CHUNK - 1) // CELL_CHUNK
    for task in prange(P * chunks):
        p, i0 = task // chunks, (task % chunks) * CELL_CHUNK
        i1 = min(i0 + CELL_CHUNK, cells)
        # Each loop runs over slices from index 0 (numba's negative-index handling of a shifted
        # index would stop LLVM from vectorising). Face f lies between cells f and f + Q.
        lo, hi = i0, min(i1, stride)                          # bottom row: a face above only
        cell, fw, bw, r, r_up = (out[p, lo:hi], forward[p, lo:hi], backward[p, lo:hi], rho[p, lo:hi],
                                 rho[p, lo + stride:hi + stride])
        for k in range(hi - lo):
            cell[k] -= _sg_flux(fw[k], bw[k], r[k], r_up[k])
        lo, hi = max(i0, stride), min(i1, faces)              # a face below and a face above
        cell, fw, bw, r, r_up = (out[p, lo:hi], forward[p, lo:hi], backward[p, lo:hi], rho[p, lo:hi],
                                 rho[p, lo + stride:hi + stride])
        fw_down, bw_down, r_down = forward[p, lo - stride:hi - stride], backward[p, lo - stride:hi - stride], \
            rho[p, lo - stride:hi - stride]
        for k in range(hi - lo):
            cell[k] = (cell[k] + _sg_flux(fw_down[k], bw_down[k], r_down[k], r[k])) - _sg_flux(fw[k], bw[k], r[k], r_up[k])
        lo, hi = max(i0, faces), i1                           # top row: a face below only
        cell, r = out[p, lo:hi], rho[p, lo:hi]
        fw_down, bw_down, r_down = forward[p, lo - stride:hi - stride], backward[p, lo - stride:hi - stride], \
            rho[p, lo - stride:hi - stride]
        for k in range(hi - lo):
            cell[k] += _sg_flux(fw_down[k], bw_down[k], r_down[k], r[k])


axis_sg_apply, axis_sg_apply_parallel = serial_and_parallel(_axis_sg_apply)


def axis_sg_apply_numpy(rho: np.ndarray, forward: np.ndarray, backward: np.ndarray, stride: int,
                        out: np.ndarray) -> None:
    """NumPy twin of axis_sg_apply."""
    faces = forward.shape[1]
    flux = forward * rho[:, :faces] - backward * rho[:, stride:]
    out[:, :faces] -= flux
    out[:, stride:] += flux


@dataclass(frozen=True)
class SGWeights:
    """Scharfetter–Gummel face weights for one ψ: per axis, forward (Dif/h²)B(δ) and backward (Dif/h²)B(−δ),
    each grid-shaped with one cell fewer along that axis; and per axis the largest forward-Euler rate."""

    forward: tuple[np.ndarray, ...]
    backward: tuple[np.ndarray, ...]
    rates: np.ndarray

    @property
    def dt_max(self) -> float:
        """The forward-Euler positivity bound 1 / Σ_axes rate (docs/math.md §5)."""
        total = float(self.rates.sum())
        return 1.0 / total if total > 0 else np.inf


def sg_weights(psi: np.ndarray, widths: np.ndarray, beta: float, dif: float, kernel=None) -> SGWeights:
    """The face weights of grid-shaped ψ; kernel: default the Numba one, parallel above PARALLEL_MIN_CELLS."""
    if kernel is None:
        kernel = axis_sg_weights_parallel if psi.size >= PARALLEL_MIN_CELLS else axis_sg_weights
    forward, backward, rates = [], [], np.empty(psi.ndim)
    for axis in range(psi.ndim):
        P, n, Q = axis_shape(psi.shape, axis)
        face_shape = psi.shape[:axis] + (max(n - 1, 0),) + psi.shape[axis + 1:]
        fw, bw = np.empty(face_shape), np.empty(face_shape)
        rates[axis] = kernel(psi.reshape(P, n * Q), Q, float(widths[axis]), beta, dif,
                             fw.reshape(P, -1), bw.reshape(P, -1))
        forward.append(fw)
        backward.append(bw)
    return SGWeights(tuple(forward), tuple(backward), rates)


def sg_apply(rho: np.ndarray, weights: SGWeights, out: np.ndarray, kernel=None) -> None:
    """out = −∇·J (Scharfetter–Gummel) for grid-shaped ρ with the weights of some ψ."""
    if kernel is None:
        kernel = axis_sg_apply_parallel if rho.size >= PARALLEL_MIN_CELLS else axis_sg_apply
    out[...] = 0.0
    for axis in range(rho.ndim):
        P, n, Q = axis_shape(rho.shape, axis)
        kernel(rho.reshape(P, n * Q), weights.forward[axis].reshape(P, -1), weights.backward[axis].reshape(P, -1),
               Q, out.reshape(P, n * Q))
