"""Second-order upwind finite-volume fluxes for ∂_t ρ = ∇·(ρ∇ζ) (MATH.md §5; CCH 2015).

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

    J_{j+½} = (Dif/h) [ B(β(ψ_{j+1} − ψ_j)) ρ_j − B(β(ψ_j − ψ_{j+1})) ρ_{j+1} ].

With u = ρ e^{βψ} this is (Dif/h) B(δ) e^{−βψ_j} (u_j − u_{j+1}): zero on a discrete Gibbs state
(u constant), and it dissipates the discrete free energy. A forward-Euler step stays positive if
dt · Σ_axes (Dif/h²) (B(δ_{j+½}) + B(−δ_{j−½})) ≤ 1 in every cell; the kernel returns that rate.
`axis_sg_divergence` is the kernel, `axis_sg_divergence_numpy` its twin.
"""
from __future__ import annotations

import math
import types
from typing import Callable

import numpy as np
from numba import njit, prange

MINMOD_THETA = 2.0


def serial_and_parallel(kernel: Callable) -> tuple[Callable, Callable]:
    """A serial and a parallel (prange) Numba build of one kernel source, each cached on disk.

    The parallel build compiles a copy of the function named <name>_parallel: numba's cache keys a
    function by module, name and bytecode, not by parallel=, so two builds under one name load each
    other's cached machine code (the parallel build then runs serially, or the serial one in threads).
    """
    twin = types.FunctionType(kernel.__code__, kernel.__globals__, kernel.__name__ + "_parallel")
    twin.__qualname__ = kernel.__qualname__ + "_parallel"
    return njit(cache=True)(kernel), njit(cache=True, parallel=True)(twin)


@njit(cache=True, inline="always")
def _half_jump(rm: float, r0: float, rp: float) -> float:
    """(h/2)·slope of the cell with neighbours rm, rp: centred, or minmod(θ) if a point value would be < 0."""
    centred = 0.25 * (rp - rm)
    if r0 - abs(centred) >= 0.0:
        return centred
    a, b, c = MINMOD_THETA * (rp - r0), 0.5 * (rp - rm), MINMOD_THETA * (r0 - rm)
    if a > 0.0 and b > 0.0 and c > 0.0:
        return 0.5 * min(a, min(b, c))
    if a < 0.0 and b < 0.0 and c < 0.0:
        return 0.5 * max(a, max(b, c))
    return 0.0


Q_BLOCK = 64                 # q-columns per task: tasks (p, q-block) write disjoint parts of out
PARALLEL_MIN_CELLS = 1 << 15  # below this the threads cost more than they save


def _axis_flux_divergence(rho: np.ndarray, zeta: np.ndarray, h: float, out: np.ndarray) -> float:
    """Add −(F_{j+½} − F_{j−½})/h along the middle axis of (P, n, Q) arrays to out; return max |u|.

    Work is cut into tasks (p, block of Q_BLOCK q's), each sweeping j with q innermost (contiguous).
    Tasks write disjoint slices and each element is updated in the same order whatever the
    thread count, so the serial and parallel builds give bit-identical results.
    """
    P, n, Q = rho.shape
    blocks = (Q + Q_BLOCK - 1) // Q_BLOCK
    amax = np.zeros(P * blocks)
    for task in prange(P * blocks):
        p, q0 = task // blocks, (task % blocks) * Q_BLOCK
        q1 = min(q0 + Q_BLOCK, Q)
        local = 0.0
        for j in range(n - 1):
            for q in range(q0, q1):
                u = -(zeta[p, j + 1, q] - zeta[p, j, q]) / h
                if u > 0.0:
                    rm = rho[p, j - 1, q] if j > 0 else rho[p, j, q]
                    face = rho[p, j, q] + _half_jump(rm, rho[p, j, q], rho[p, j + 1, q])
                else:
                    rp = rho[p, j + 2, q] if j + 2 < n else rho[p, j + 1, q]
                    face = rho[p, j + 1, q] - _half_jump(rho[p, j, q], rho[p, j + 1, q], rp)
                flux = u * face / h
                out[p, j, q] -= flux
                out[p, j + 1, q] += flux
                if abs(u) > local:
                    local = abs(u)
        amax[task] = local
    return amax.max() if amax.size else 0.0


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


@njit(cache=True, inline="always")
def bernoulli(z: float) -> float:
    """B(z) = z / (e^z − 1), with B(0) = 1; stable for small and large |z|."""
    if abs(z) < 1e-6:
        return 1.0 - 0.5 * z
    if z > 700.0:
        return 0.0
    return z / math.expm1(z)


def _axis_sg_divergence(rho: np.ndarray, psi: np.ndarray, h: float, out: np.ndarray,
                        beta: float, dif: float) -> float:
    """Add −(J_{j+½} − J_{j−½})/h along the middle axis of (P, n, Q) arrays to out; return the largest
    forward-Euler rate (Dif/h²)(B(δ_{j+½}) + B(−δ_{j−½})) of a cell. Tasks as in _axis_flux_divergence."""
    P, n, Q = rho.shape
    blocks = (Q + Q_BLOCK - 1) // Q_BLOCK
    rates = np.zeros(P * blocks)
    scale = dif / (h * h)
    for task in prange(P * blocks):
        p, q0 = task // blocks, (task % blocks) * Q_BLOCK
        q1 = min(q0 + Q_BLOCK, Q)
        local = 0.0
        for q in range(q0, q1):
            incoming = 0.0                       # B(−δ_{j−½}) of the face below cell j
            for j in range(n):
                outgoing = 0.0
                if j < n - 1:
                    delta = beta * (psi[p, j + 1, q] - psi[p, j, q])
                    b_plus, b_minus = bernoulli(delta), bernoulli(-delta)
                    flux = scale * (b_plus * rho[p, j, q] - b_minus * rho[p, j + 1, q])
                    out[p, j, q] -= flux
                    out[p, j + 1, q] += flux
                    outgoing = b_plus
                rate = scale * (outgoing + incoming)
                if rate > local:
                    local = rate
                if j < n - 1:
                    incoming = b_minus
        rates[task] = local
    return rates.max() if rates.size else 0.0


axis_sg_divergence, axis_sg_divergence_parallel = serial_and_parallel(_axis_sg_divergence)


def bernoulli_array(z: np.ndarray) -> np.ndarray:
    """B(z) = z / (e^z − 1) elementwise (NumPy twin of bernoulli)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        out = z / np.expm1(z)
    return np.where(np.abs(z) < 1e-6, 1.0 - 0.5 * z, np.where(z > 700.0, 0.0, out))


def axis_sg_divergence_numpy(rho: np.ndarray, psi: np.ndarray, h: float, out: np.ndarray,
                             beta: float, dif: float) -> float:
    """NumPy twin of axis_sg_divergence."""
    delta = beta * (psi[:, 1:] - psi[:, :-1])
    b_plus, b_minus = bernoulli_array(delta), bernoulli_array(-delta)
    flux = dif / (h * h) * (b_plus * rho[:, :-1] - b_minus * rho[:, 1:])
    out[:, :-1] -= flux
    out[:, 1:] += flux
    rate = np.zeros(rho.shape)
    rate[:, :-1] += b_plus
    rate[:, 1:] += b_minus
    return float((dif / (h * h) * rate).max()) if rho.size else 0.0


def apply_axes(kernel, rho: np.ndarray, field: np.ndarray, widths: np.ndarray, out: np.ndarray,
               *params: float) -> np.ndarray:
    """out = Σ over axes of kernel's divergence along that axis (unsplit); return kernel's value per axis."""
    out[...] = 0.0
    values = np.empty(rho.ndim)
    for axis in range(rho.ndim):
        shape3 = (int(np.prod(rho.shape[:axis])), rho.shape[axis], int(np.prod(rho.shape[axis + 1:])))
        values[axis] = kernel(rho.reshape(shape3), field.reshape(shape3), float(widths[axis]),
                              out.reshape(shape3), *params)
    return values


def sg_divergence(rho: np.ndarray, psi: np.ndarray, widths: np.ndarray, out: np.ndarray, beta: float,
                  dif: float, kernel=None) -> np.ndarray:
    """out = −∇·J (Scharfetter–Gummel) for grid-shaped ρ, ψ; return the forward-Euler rate per axis."""
    if kernel is None:
        kernel = axis_sg_divergence_parallel if rho.size >= PARALLEL_MIN_CELLS else axis_sg_divergence
    return apply_axes(kernel, rho, psi, widths, out, beta, dif)


def flux_divergence(rho: np.ndarray, zeta: np.ndarray, widths: np.ndarray, out: np.ndarray,
                    kernel=None) -> np.ndarray:
    """out = −∇·F for grid-shaped ρ, ζ (any dimension); return max |u| per axis, shape (ndim,).

    kernel: the per-axis kernel; default the Numba one, parallel above PARALLEL_MIN_CELLS cells.
    """
    if kernel is None:
        kernel = axis_flux_divergence_parallel if rho.size >= PARALLEL_MIN_CELLS else axis_flux_divergence
    return apply_axes(kernel, rho, zeta, widths, out)
