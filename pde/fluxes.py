"""Second-order upwind finite-volume fluxes for ∂_t ρ = ∇·(ρ∇ζ), and Scharfetter–Gummel fluxes for its
noisy form (MATH.md §5; CCH 2015).

Along one axis, with face velocity u_{j+½} = −(ζ_{j+1} − ζ_j)/h:

    F_{j+½} = u⁺ ρ^E_j + u⁻ ρ^W_{j+1},     dρ_j/dt −= (F_{j+½} − F_{j−½}) / h,

ρ^{E/W}_j = ρ_j ± (h/2) s_j with the centred slope, replaced by the generalised minmod (θ = 2)
only in cells where a point value would go negative. Faces on the boundary carry no flux
(zero-flux boundaries: mass is conserved exactly), and the slope there uses a mirrored ghost
cell (ρ_{−1} = ρ_0). A d-dimensional array is handled one axis at a time by viewing it as
(P, n, Q) with the axis in the middle; the update is unsplit (contributions are summed).

`axis_flux_divergence` is the Numba kernel (a serial and a parallel build of one source);
`axis_flux_divergence_numpy` is its readable twin.

With noise (β < ∞) the flux is Scharfetter–Gummel's instead (MATH §5), with B(z) = z/(e^z − 1),
Dif = 2ξ/β and ψ = Ψ_λ − β⁻¹ log J:

    J_{j+½} = (Dif/h) [ B(δ) ρ_j − B(−δ) ρ_{j+1} ],     δ = β(ψ_{j+1} − ψ_j).

With u = ρ e^{βψ} this is (Dif/h) B(δ) e^{−βψ_j} (u_j − u_{j+1}): zero on a discrete Gibbs state
(u constant), and it dissipates the discrete free energy. It is linear in ρ with face weights
(Dif/h²) B(±δ) that depend on ψ only, so it is computed in two parts: `sg_weights` (ψ → weights, one
expm1 per face) and `sg_apply` (weights, ρ → −∇·J, branch-free). When ψ does not depend on ρ the
solver computes the weights once. A forward-Euler step stays positive if
dt · Σ_axes (Dif/h²) (B(δ_{j+½}) + B(−δ_{j−½})) ≤ 1 in every cell; the weights carry that rate.
The SG kernels view an axis as (P, n·Q): cell i's neighbour along the axis is i + Q, and face i lies
between them. Kernels `axis_sg_weights`, `axis_sg_apply`; twins `axis_sg_weights_numpy`,
`axis_sg_apply_numpy`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from mfdyn.builds import serial_and_parallel

MINMOD_THETA = 2.0

Q_BLOCK = 256                # q-columns per task: tasks (p, q-block) write disjoint parts of out
P_BLOCK = 16                 # rows per task when the axis is the last one (Q = 1)
CELL_CHUNK = 8192            # cells per task of axis_sg_apply
PARALLEL_MIN_CELLS = 1 << 20  # below this a thread wake-up (up to 0.15 ms here) costs more than it saves


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
    padded = np.concatenate([rho[:, :1], rho, rho[:, -1:]], axis=1)      # mirrored ghost cells
    rm, r0, rp = padded[:, :-2], padded[:, 1:-1], padded[:, 2:]
    half = 0.25 * (rp - rm)
    a, b, c = MINMOD_THETA * (rp - r0), 0.5 * (rp - rm), MINMOD_THETA * (r0 - rm)
    minmod = np.where((a > 0) & (b > 0) & (c > 0), np.minimum(np.minimum(a, b), c),
                      np.where((a < 0) & (b < 0) & (c < 0), np.maximum(np.maximum(a, b), c), 0.0))
    half = np.where(r0 - np.abs(half) >= 0, half, 0.5 * minmod)
    east, west = rho + half, rho - half
    u = -(zeta[:, 1:] - zeta[:, :-1]) / h
    flux = (np.maximum(u, 0) * east[:, :-1] + np.minimum(u, 0) * west[:, 1:]) / h
    out[:, :-1] -= flux
    out[:, 1:] += flux
    return float(np.max(np.abs(u))) if u.size else 0.0


def axis_shape(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    """(P, n, Q): the C-order shape as (axes before, the axis, axes after)."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


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
        """The forward-Euler positivity bound 1 / Σ_axes rate (MATH §5)."""
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
