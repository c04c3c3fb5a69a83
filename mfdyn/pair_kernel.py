"""The exact pair sums of the single-index ramp network: ∇_1 U summed over a cloud, and Σ U (docs/math.md §4, §8).

The MMN problems (docs/math.md §3.1, §3.2, §4) have, per class y with scale s_y (x | y = s_y ∘ g),
τ_y(w) = |s_y ∘ w|, c_y(w, w') = <s_y∘w, s_y∘w'>/(τ_y τ'_y) and

    U(w, w') = Σ_y κ_y P(τ_y(w), τ_y(w'), c_y(w, w')),    P(a, b, c) = E σ(aX)σ(bY),  corr(X, Y) = c

(κ_y = ½ for the two equally likely classes). Stein's lemma on x = s_y ∘ g gives the gradient in the
first argument without dividing by τ:

    ∇_w P = s_y² ∘ ( w E[σ''(aX)σ(bY)] + w' E[σ'(aX)σ'(bY)] ) = s_y² ∘ ( A w + B w' ),

so for a cloud p_j with weights ω_j (1/N for ρ_N; −1/N for the particles of ρ_N(0), the centred model),
the drift of G (docs/math.md §8) needs, per row i, the scalars Σ_j ω_j A_ij and the vectors Σ_j ω_j B_ij p_j.

How a pair (a, b, c) is evaluated:

- |c| ≤ MEHLER_MAX_COSINE: Mehler's series (docs/math.md §4) to order MEHLER_TERMS, with the normalised
  Hermite coefficients of σ'(a·) and σ''(a·): d1_k(a) = √(k+1) ĥ_{k+1}(a)/a and
  d2_k(a) = √((k+1)(k+2)) ĥ_{k+2}(a)/a² (E[f'(X) He_k] = E[f(X) He_{k+1}]), so
  P = Σ c^k ĥ_k ĥ_k,  A = Σ c^k d2_k(a) ĥ_k(b),  B = Σ c^k d1_k(a) d1_k(b).
- |c| > MEHLER_MAX_COSINE (the Numba kernel): closed forms valid up to |c| = 1. With α_k = t_k/a, β_l = t_l/b,
  s = √(1 − c²), m the slope and M(μ, ν) = E σ(μ + νG) (docs/math.md §4):
      A = (m/a) [φ(α1) M(bcα1, bs) − φ(α2) M(bcα2, bs)]              (σ'' = m(δ_t1 − δ_t2), condition on X)
      B = m² P(α1 < X < α2, β1 < Y < β2) = m² Σ_kl (−1)^{k+l} Φ₂(α_k, β_l; c)    (Price's theorem)
      P = s1 (q(a) + q(b)) − s1² + m² ab Σ_kl (−1)^{k+l} L(α_k, β_l; c),
      L(h, k; c) = E (X − h)₊(Y − k)₊ = (c + hk) Φ₂ − k φ(h) Φ((ch − k)/s) − h φ(k) Φ((ck − h)/s) + s φ(h) φ((k − ch)/s),
  with Φ₂(h, k; c) = P(X > h, Y > k) by Genz's algorithm (Drezner–Wesolowsky Gauss–Legendre on 6, 12
  or 20 nodes; A. Genz, Statistics and Computing 14 (2004) 251–260), accurate to ~1e−15.
- The NumPy twin does |c| > MEHLER_MAX_COSINE by quadrature instead: with X = pU + rV, Y = ±(pU − rV),
  p = √((1+|c|)/2), r = √((1−|c|)/2), U, V independent, the inner integral over U is exact (a rectangle
  probability, or a piecewise quadratic against φ) and the outer one over V ∈ [−10, 10] is Gauss–Legendre
  on panels split at the V where the kinks of σ(aX) and σ(bY) meet; the integrand is smooth there for
  every |c| ≤ 1, so no boundary layer forms as |c| → 1 (unlike conditioning on X).
- The self pair (j = i, c = 1, a = b): A = (m/a)[φ(α1)s1 − φ(α2)s2], B = m²[Φ(α2) − Φ(α1)], P = E σ(aG)².

The energy alone (pair_energy, R_N's pair term) cuts Mehler's series where it may: with the tail
T_K(a) = E σ(aG)² − Σ_{k≤K} ĥ_k(a)² (Parseval), Cauchy–Schwarz bounds the rest of P's series by
|c|^{K+1} √(T_K(a) T_K(b)), so each pair needs only the terms that bring this below ENERGY_TAIL · max σ².
Pairs |c| ≤ ENERGY_FAR_COSINE run vectorised across a chunk of columns, to the order the row's largest |c|
there and the chunk's largest tail ask for (at most FAR_TERMS terms); the rest one by one, to their own
order (up to MID_TERMS terms, the coefficients past FAR_TERMS computed only for the chunks that need them);
only pairs needing more (|c| ≳ 0.9) go to near_energy's closed form.

Near |c| = 1, B has a √(1 − |c|) singularity, so 1 − |c| is taken from the unit vectors' chord,
1 − |c| = ½|u_i ∓ u_j|², not from the rounded cosine (exactly 0 for parallel copies). A zero point (τ = 0)
has u = 0, hence c = 0 with everything (σ(0) is a constant, so any c is exact).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

from mfdyn.gaussian import (
    MEHLER_MAX_COSINE,
    MEHLER_TERMS,
    Ramp,
    hermite_coefficients,
    ndtr,
    npdf,
    ramp_mean,
    ramp_second_moment,
)
from mfdyn.workspace import Workspace

ROW_BLOCK = 32                # rows per task: they share each chunk of column data while it is in cache
COL_CHUNK = 64                # columns per chunk
ENERGY_PARALLEL_PAIRS = 1 << 16   # pair_energy uses threads from this many pairs i ≤ j on (~0.5 ms of work)
ENERGY_TAIL = 1e-13           # pair_energy truncates Mehler's series where its tail is below this × max σ² ...
ENERGY_FAR_COSINE = 0.75      # ... vectorised across a chunk for |c| ≤ this, ...
MID_TERMS = 256               # ... else pair by pair up to this many terms (else near_energy)
LISTED_PAIRS = 4 * ROW_BLOCK * COL_CHUNK   # energy_tasks lists up to this many deferred pairs a row block
TAIL_SLACK = 1e-12            # a tail bound's allowance for rounding, × E σ(τG)² (energy_coefficient_tasks)
# Every tail is ≤ (1 + TAIL_SLACK) max σ² and tol = ENERGY_TAIL max σ², so FAR_TERMS terms do for |c| ≤ ENERGY_FAR_COSINE
FAR_TERMS = 4 * math.ceil(0.25 * math.log(ENERGY_TAIL / (1.0 + TAIL_SLACK)) / math.log(ENERGY_FAR_COSINE))
assert FAR_TERMS <= MID_TERMS and MID_TERMS % 16 == 0
_COEF_BLOCK = 64              # points per block of _hermite_block in coefficients_into
_V_NODES = 40                 # the twin's Gauss–Legendre nodes per panel in V
_V_TAIL = 10.0                # φ(10) ≈ 8e−23: the V integral is cut at ±10 ...
_V_FIXED = (-5.0, 0.0, 5.0)   # ... and always split here too: 40 nodes on all of [−10, 10] leave 1e−12 on ∫φ
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_SQRT_HALF = math.sqrt(0.5)
_WORK = Workspace()            # pair_energy's and pair_gradient's scratch arrays, per thread

# Gauss–Legendre half rules (nodes in (−1, 0), weights) on 6, 12 and 20 points, for Genz's Φ₂
_GL = [np.polynomial.legendre.leggauss(n) for n in (6, 12, 20)]
_GL_X = np.zeros((3, 10))
_GL_W = np.zeros((3, 10))
for _g, (_x, _w) in enumerate(_GL):
    _GL_X[_g, : len(_x) // 2] = _x[: len(_x) // 2]
    _GL_W[_g, : len(_x) // 2] = _w[: len(_x) // 2]
_GL_LEN = np.array([3, 6, 10])


# ---------------------------------------------------------------------------------------------- shared set-up
def class_geometry(points: np.ndarray, scales: np.ndarray, work: Workspace | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """τ_y(p_j) = |s_y ∘ p_j| (Y, M) and the unit vectors u_yj = s_y ∘ p_j / τ_yj (Y, M, d), 0 where τ = 0; in
    work's arrays "tau" and "unit" if given (the same bits either way)."""
    work = Workspace() if work is None else work
    (ny, d), npts = scales.shape, len(points)
    unit = np.multiply(points[None, :, :], scales[:, None, :], out=work.take("unit", (ny, npts, d)))
    tau = np.sqrt(np.einsum("yjd,yjd->yj", unit, unit, out=work.take("tau", (ny, npts))))
    np.divide(unit, np.where(tau > 0, tau, 1.0)[:, :, None], out=unit)
    return tau, unit


def derivative_coefficients(ramp: Ramp, tau: np.ndarray, kmax: int = MEHLER_TERMS
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised Hermite coefficients of σ(a·), σ'(a·) and σ''(a·) at a = τ, k = 0..kmax, each (kmax+1, *τ.shape).

    ĥ_k (gaussian.hermite_coefficients), d1_k = √(k+1) ĥ_{k+1}/a, d2_k = √((k+1)(k+2)) ĥ_{k+2}/a² (docs/math.md §4);
    at a = 0, σ(0·X) is constant: d1 = (σ'(0), 0, …), d2 = 0.
    """
    tau = np.asarray(tau, dtype=float)
    h = hermite_coefficients(ramp, tau, kmax + 2)
    k = np.arange(kmax + 1).reshape((-1,) + (1,) * tau.ndim)
    pos = tau > 0
    safe = np.where(pos, tau, 1.0)
    d1 = np.where(pos, np.sqrt(k + 1.0) * h[1:kmax + 2] / safe, 0.0)
    d1[0] = np.where(pos, d1[0], ramp.derivative(0.0))
    d2 = np.where(pos, np.sqrt((k + 1.0) * (k + 2.0)) * h[2:kmax + 3] / safe**2, 0.0)
    return h[: kmax + 1], d1, d2


# ---------------------------------------------------------------------------------------------- Numba scalars
@njit(cache=True, inline="always")
def _pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / _SQRT_2PI


@njit(cache=True, inline="always")
def _cdf(x: float) -> float:
    return 0.5 * math.erfc(-x * _SQRT_HALF)


@njit(cache=True)
def _ramp_mean(mu: float, nu: float, t1: float, t2: float, s1: float, slope: float) -> float:
    """E σ(μ + νG), ν ≥ 0 (docs/math.md §4), for σ = s1 + m[(t − t1)₊ − (t − t2)₊]."""
    if nu > 0.0:
        z1, z2 = (mu - t1) / nu, (mu - t2) / nu
        r1 = nu * _pdf(z1) + (mu - t1) * _cdf(z1)
        r2 = nu * _pdf(z2) + (mu - t2) * _cdf(z2)
    else:
        r1, r2 = max(mu - t1, 0.0), max(mu - t2, 0.0)
    return s1 + slope * (r1 - r2)


@njit(cache=True)
def _hermite_block(a: np.ndarray, t1: float, t2: float, s1: float, s2: float, full: np.ndarray) -> None:
    """ĥ_k(a_j) for k = 0..K into full (K+1, n), for a block of n points a_j > 0 (gaussian.hermite_coefficients).

    ĥ_0 = q(a), ĥ_1 = am[Φ(β) − Φ(α)], ĥ_k = am[ψ_{k−2}(α)φ(α) − ψ_{k−2}(β)φ(β)]/√(k(k−1)) with α = t1/a,
    β = t2/a and ψ_k = He_k/√k! (docs/math.md §3.1); ψ_k φ is run through the three-term recurrence as one
    product, so nothing overflows where φ underflows. The recurrence runs across the block (k outer), its
    square roots from tables: the same operations as point by point, so the same bits."""
    k1, n = full.shape
    slope = (s2 - s1) / (t2 - t1)
    root = np.sqrt(np.arange(k1 + 1.0))                  # √m
    pair_root = np.empty(k1)                             # √(k(k − 1))
    for k in range(k1):
        pair_root[k] = math.sqrt(k * (k - 1.0))
    al, be, am = np.empty(n), np.empty(n), np.empty(n)
    ga0, ga1, gb0, gb1 = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    for j in range(n):
        al[j], be[j], am[j] = t1 / a[j], t2 / a[j], a[j] * slope
        full[0, j] = _ramp_mean(0.0, a[j], t1, t2, s1, slope)
        if k1 > 1:
            full[1, j] = am[j] * (_cdf(be[j]) - _cdf(al[j]))
        ga0[j], ga1[j] = _pdf(al[j]), al[j] * _pdf(al[j])     # ψ_0 φ, ψ_1 φ at α
        gb0[j], gb1[j] = _pdf(be[j]), be[j] * _pdf(be[j])
    for k in range(2, k1):
        m = k - 2                                        # ψ_{m+1} = (x ψ_m − √m ψ_{m−1}) / √(m+1)
        rk, r1, r2 = pair_root[k], root[m + 1], root[m + 2]
        for j in range(n):
            full[k, j] = am[j] * (ga0[j] - gb0[j]) / rk
            a1 = (al[j] * ga1[j] - r1 * ga0[j]) / r2
            b1 = (be[j] * gb1[j] - r1 * gb0[j]) / r2
            ga0[j], ga1[j], gb0[j], gb1[j] = ga1[j], a1, gb1[j], b1


@njit(cache=True, inline="always")
def _sigma_at_zero(t1: float, t2: float, s1: float, s2: float) -> float:
    """σ(0) of the ramp."""
    slope = (s2 - s1) / (t2 - t1)
    return s1 if t1 >= 0.0 else (s2 if t2 <= 0.0 else s1 - slope * t1)


@njit(cache=True)
def coefficients_into(tau: np.ndarray, t1: float, t2: float, s1: float, s2: float, h: np.ndarray, d1: np.ndarray,
                      d2: np.ndarray) -> None:
    """derivative_coefficients in Numba: for τ (Y, M) write ĥ_k, d1_k, d2_k (k = 0..K) into h, d1, d2 (Y, M, K+1).

    ĥ_k from _hermite_block (to k = K + 2), d1_k = √(k+1) ĥ_{k+1}/τ, d2_k = √((k+1)(k+2)) ĥ_{k+2}/τ²; at τ = 0
    ĥ = (σ(0), 0, …), d1 = (σ'(0), 0, …), d2 = 0.
    """
    ny, npts, k1 = h.shape
    kmax = k1 - 1
    slope = (s2 - s1) / (t2 - t1)
    full = np.empty((kmax + 3, _COEF_BLOCK))
    a = np.empty(_COEF_BLOCK)
    root1, root2 = np.empty(k1), np.empty(k1)
    for k in range(k1):
        root1[k], root2[k] = math.sqrt(k + 1.0), math.sqrt((k + 1.0) * (k + 2.0))
    for y in range(ny):
        for j0 in range(0, npts, _COEF_BLOCK):
            n = min(_COEF_BLOCK, npts - j0)
            for jj in range(_COEF_BLOCK):
                a[jj] = tau[y, j0 + jj] if jj < n and tau[y, j0 + jj] > 0.0 else 1.0
            _hermite_block(a, t1, t2, s1, s2, full)
            for jj in range(n):
                j = j0 + jj
                if tau[y, j] <= 0.0:
                    for k in range(kmax + 1):
                        h[y, j, k] = 0.0
                        d1[y, j, k] = 0.0
                        d2[y, j, k] = 0.0
                    h[y, j, 0] = _sigma_at_zero(t1, t2, s1, s2)
                    d1[y, j, 0] = slope if t1 < 0.0 < t2 else 0.0
                    continue
                aj = tau[y, j]
                for k in range(kmax + 1):
                    h[y, j, k] = full[k, jj]
                    d1[y, j, k] = root1[k] * full[k + 1, jj] / aj
                    d2[y, j, k] = root2[k] * full[k + 2, jj] / (aj * aj)


@njit(cache=True, inline="always")
def _transpose_into(block: np.ndarray, out: np.ndarray) -> None:
    """out[j, k] = block[k, j] for out (n, K), block (K, ≥ n): eight k at a time, so that the reads of a pass
    (eight rows of block) and its writes (a cache line of out) stay in L1 whatever the strides."""
    n, nk = out.shape
    for k0 in range(0, nk, 8):
        k1 = min(k0 + 8, nk)
        for j in range(n):
            for k in range(k0, k1):
                out[j, k] = block[k, j]


@njit(cache=True, inline="always")
def _logs_above(x: np.ndarray, out: np.ndarray) -> None:
    """out = upper bounds on ln x (x > 0, finite) within 0.07, elementwise and branch-free: x = m 2^e with
    m ∈ [1, 2) read off the bits, and ln m below its tangent at m = 3/2."""
    bits = x.view(np.int64)
    for j in range(len(x)):
        e = (bits[j] >> 52) - 1023
        m = 1.0 + (bits[j] & 0xFFFFFFFFFFFFF) * 2.220446049250313e-16       # 2^−52
        out[j] = e * 0.6931471805599453 + 0.4054651081081644 + (m - 1.5) / 1.5 + 1e-15


@njit(cache=True, inline="always")
def _chunk_coefficients(tau: np.ndarray, j0: int, n: int, t1: float, t2: float, s1: float, s2: float,
                        full: np.ndarray, tl: np.ndarray, a: np.ndarray, second: np.ndarray, head: np.ndarray) -> None:
    """For the n ≤ C points τ[j0:j0+n] (one class): ĥ_k (k < K) into full (K, C) and the tail bounds T_{2g+1}
    (energy_coefficient_tasks) into tl (K/2, C), across the points (k outer); columns n..C−1 get 0."""
    nh, chunk = full.shape
    for jj in range(chunk):
        a[jj] = tau[j0 + jj] if jj < n and tau[j0 + jj] > 0.0 else 1.0
    _hermite_block(a, t1, t2, s1, s2, full)
    for jj in range(chunk):
        second[jj] = self_pair(a[jj], t1, t2, s1, s2, True)[2]
        if jj >= n or tau[j0 + jj] <= 0.0:
            for k in range(nh):
                full[k, jj] = 0.0
            if jj < n:
                full[0, jj] = _sigma_at_zero(t1, t2, s1, s2)
                second[jj] = full[0, jj] * full[0, jj]
        head[jj] = 0.0
    for k in range(nh):
        for jj in range(chunk):
            head[jj] += full[k, jj] * full[k, jj]
        if k % 2:
            for jj in range(chunk):
                tl[k // 2, jj] = max(second[jj] - head[jj], 0.0) + TAIL_SLACK * second[jj]


@njit(cache=True, nogil=True)
def energy_coefficient_tasks(first: int, last: int, tau: np.ndarray, t1: float, t2: float, s1: float, s2: float,
                             h_tiles: np.ndarray, tail_tiles: np.ndarray, log_tiles: np.ndarray,
                             chunk_logs: np.ndarray) -> None:
    """Column chunks first..last−1 (C = h_tiles.shape[3] points each) of energy_tasks' data, for τ (Y, M), in
    tiles (column j at [.., j // C, :, j % C], zero beyond M): ĥ_k(τ_yj) (k < F) into h_tiles (Y, ⌈M/C⌉, F, C);
    into tail_tiles (Y, ⌈M/C⌉, F/2, C) bounds on Mehler's tails T_K(τ) = E σ(τG)² − Σ_{k≤K} ĥ_k² = Σ_{k>K} ĥ_k²
    (Parseval) at K = 2g + 1: the computed difference, at least 0, plus TAIL_SLACK · E σ(τG)² for the rounding
    of both terms; into log_tiles upper bounds on their logarithms (within 0.07) and into chunk_logs
    (Y, ⌈M/C⌉, F/2) the chunk's largest. τ = 0: ĥ = (σ(0), 0, …), T = slack."""
    ny, npts = tau.shape
    chunk, nlog = h_tiles.shape[3], log_tiles.shape[2]
    a, second, head = np.empty(chunk), np.empty(chunk), np.empty(chunk)
    for y in range(ny):
        for ch in range(first, last):
            n = min(chunk, npts - ch * chunk)
            _chunk_coefficients(tau[y], ch * chunk, n, t1, t2, s1, s2, h_tiles[y, ch], tail_tiles[y, ch], a, second,
                                head)
            for g in range(nlog):
                _logs_above(tail_tiles[y, ch, g], log_tiles[y, ch, g])
                top = -np.inf
                for jj in range(n):
                    top = max(top, log_tiles[y, ch, g, jj])
                chunk_logs[y, ch, g] = top


@njit(cache=True, nogil=True)
def high_coefficient_tasks(first: int, last: int, chunks: np.ndarray, tau: np.ndarray, t1: float, t2: float,
                           s1: float, s2: float, h: np.ndarray, tails: np.ndarray) -> None:
    """For the column chunks chunks[first:last] (C = COL_CHUNK points each) of τ (Y, M): ĥ_k (k < H) into h (Y, M, H)
    and the tail bounds T_{2g+1} of energy_coefficient_tasks into tails (Y, M, H/2), point by point (the
    layout of mehler_terms)."""
    ny, npts, nh = h.shape
    full, tl = np.empty((nh, COL_CHUNK)), np.empty((nh // 2, COL_CHUNK))
    a, second, head = np.empty(COL_CHUNK), np.empty(COL_CHUNK), np.empty(COL_CHUNK)
    for y in range(ny):
        for c in range(first, last):
            j0 = chunks[c] * COL_CHUNK
            n = min(COL_CHUNK, npts - j0)
            _chunk_coefficients(tau[y], j0, n, t1, t2, s1, s2, full, tl, a, second, head)
            _transpose_into(full, h[y, j0:j0 + n])
            _transpose_into(tl, tails[y, j0:j0 + n])


@njit(cache=True, inline="always")
def _dw_start(h: float, k: float, r: float, sin2: float) -> tuple[float, float, float, float, float]:
    """Drezner–Wesolowsky's leading terms of Φ₂(h, k; r) for |r| ≥ 0.925 (bvn_upper), before the node sum, with k
    negated for r < 0: (bvn so far, hk, bs = (h − k)², c, d)."""
    if r < 0.0:
        k = -k
    hk = h * k
    bs = (h - k) ** 2
    c = (4.0 - hk) / 8.0
    d = (12.0 - hk) / 16.0
    bvn = 0.0
    if sin2 > 0.0:
        a = math.sqrt(sin2)
        asr = -0.5 * (bs / sin2 + hk)
        if asr > -100.0:
            bvn = a * math.exp(asr) * (1.0 - c * (bs - sin2) * (1.0 - d * bs / 5.0) / 3.0 + c * d * sin2 * sin2 / 5.0)
        if hk > -100.0:
            b = math.sqrt(bs)
            bvn -= math.exp(-0.5 * hk) * _SQRT_2PI * _cdf(-b / a) * b * (1.0 - c * bs * (1.0 - d * bs / 5.0) / 3.0)
    return bvn, hk, bs, c, d


@njit(cache=True, inline="always")
def _dw_node(bvn: float, hk: float, bs: float, c: float, d: float, aw: float, xs: float, rs: float) -> float:
    """The node term of Φ₂ for |r| ≥ 0.925 added to bvn, at xs, rs = √(1 − xs) and aw = a·weight."""
    asr = -0.5 * (bs / xs + hk)
    if asr > -100.0:
        bvn += aw * math.exp(asr) * (math.exp(-hk * xs / (2.0 * (1.0 + rs) ** 2)) / rs - (1.0 + c * xs * (1.0 + d * xs)))
    return bvn


@njit(cache=True, inline="always")
def _dw_finish(bvn: float, h: float, k: float, r: float, sin2: float) -> float:
    """Φ₂(h, k; r) for |r| ≥ 0.925 from the node sum bvn (h, k as given to bvn_upper)."""
    if sin2 > 0.0:
        bvn = -bvn / (2.0 * math.pi)
    if r > 0.0:
        return bvn + _cdf(-max(h, k))
    return -bvn + max(0.0, _cdf(-h) - _cdf(k))                    # k negated, as in _dw_start


@njit(cache=True)
def bvn_upper(h: float, k: float, r: float, sin2: float) -> float:
    """Φ₂(h, k; r) = P(X > h, Y > k) for standard normals with correlation r, 1 − r² = sin2 given accurately.

    Genz's algorithm (Statistics and Computing 14 (2004) 251): for |r| < 0.925 Gauss–Legendre in the
    angle of Plackett's formula; above, Drezner–Wesolowsky's expansion in √(1 − r²) with a Gauss–Legendre
    remainder, which stays exact down to r = ±1 (sin2 = 0).
    """
    ar = abs(r)
    g = 0 if ar < 0.3 else (1 if ar < 0.75 else 2)
    lg = _GL_LEN[g]
    if ar < 0.925:
        hk, hs, bvn = h * k, 0.5 * (h * h + k * k), 0.0
        asr = math.asin(r)
        for i in range(lg):
            for sgn in (-1.0, 1.0):
                sn = math.sin(0.5 * asr * (sgn * _GL_X[g, i] + 1.0))
                bvn += _GL_W[g, i] * math.exp((sn * hk - hs) / (1.0 - sn * sn))
        return bvn * asr / (4.0 * math.pi) + _cdf(-h) * _cdf(-k)
    bvn, hk, bs, c, d = _dw_start(h, k, r, sin2)
    if sin2 > 0.0:
        a = 0.5 * math.sqrt(sin2)
        for i in range(lg):
            for sgn in (-1.0, 1.0):
                xs = (a * (sgn * _GL_X[g, i] + 1.0)) ** 2
                bvn = _dw_node(bvn, hk, bs, c, d, a * _GL_W[g, i], xs, math.sqrt(1.0 - xs))
    return _dw_finish(bvn, h, k, r, sin2)


@njit(cache=True)
def _bvn_high_corners(h1: float, h2: float, k1: float, k2: float, r: float, sin2: float
                      ) -> tuple[float, float, float, float]:
    """bvn_corners for |r| ≥ 0.925: bvn_upper's helpers corner by corner, the nodes xs, √(1 − xs) computed once
    for the four corners (the same bits as four bvn_upper calls)."""
    b11, hk11, bs11, c11, d11 = _dw_start(h1, k1, r, sin2)
    b12, hk12, bs12, c12, d12 = _dw_start(h1, k2, r, sin2)
    b21, hk21, bs21, c21, d21 = _dw_start(h2, k1, r, sin2)
    b22, hk22, bs22, c22, d22 = _dw_start(h2, k2, r, sin2)
    if sin2 > 0.0:
        a = 0.5 * math.sqrt(sin2)
        for i in range(_GL_LEN[2]):
            for sgn in (-1.0, 1.0):
                xs = (a * (sgn * _GL_X[2, i] + 1.0)) ** 2
                rs = math.sqrt(1.0 - xs)
                aw = a * _GL_W[2, i]
                b11 = _dw_node(b11, hk11, bs11, c11, d11, aw, xs, rs)
                b12 = _dw_node(b12, hk12, bs12, c12, d12, aw, xs, rs)
                b21 = _dw_node(b21, hk21, bs21, c21, d21, aw, xs, rs)
                b22 = _dw_node(b22, hk22, bs22, c22, d22, aw, xs, rs)
    return (_dw_finish(b11, h1, k1, r, sin2), _dw_finish(b12, h1, k2, r, sin2), _dw_finish(b21, h2, k1, r, sin2),
            _dw_finish(b22, h2, k2, r, sin2))


@njit(cache=True)
def bvn_corners(h1: float, h2: float, k1: float, k2: float, r: float, sin2: float
                ) -> tuple[float, float, float, float]:
    """(Φ₂(h1, k1), Φ₂(h1, k2), Φ₂(h2, k1), Φ₂(h2, k2)) at correlation r (bvn_upper), the four corners of a
    rectangle: for |r| < 0.925 the nodes' sines and the factors Φ(−h), Φ(−k) are shared by the corners."""
    ar = abs(r)
    if ar >= 0.925:
        return _bvn_high_corners(h1, h2, k1, k2, r, sin2)
    g = 0 if ar < 0.3 else (1 if ar < 0.75 else 2)
    asr = math.asin(r)
    p11, p12, p21, p22 = h1 * k1, h1 * k2, h2 * k1, h2 * k2
    q11, q12 = 0.5 * (h1 * h1 + k1 * k1), 0.5 * (h1 * h1 + k2 * k2)
    q21, q22 = 0.5 * (h2 * h2 + k1 * k1), 0.5 * (h2 * h2 + k2 * k2)
    b11 = b12 = b21 = b22 = 0.0
    for i in range(_GL_LEN[g]):
        for sgn in (-1.0, 1.0):
            sn = math.sin(0.5 * asr * (sgn * _GL_X[g, i] + 1.0))
            den = 1.0 - sn * sn
            w = _GL_W[g, i]
            b11 += w * math.exp((sn * p11 - q11) / den)
            b12 += w * math.exp((sn * p12 - q12) / den)
            b21 += w * math.exp((sn * p21 - q21) / den)
            b22 += w * math.exp((sn * p22 - q22) / den)
    f = asr / (4.0 * math.pi)
    ch1, ch2, ck1, ck2 = _cdf(-h1), _cdf(-h2), _cdf(-k1), _cdf(-k2)
    return b11 * f + ch1 * ck1, b12 * f + ch1 * ck2, b21 * f + ch2 * ck1, b22 * f + ch2 * ck2


@njit(cache=True)
def _call_product(h: float, k: float, sgn: float, omc: float, s: float, upper: float) -> float:
    """L(h, k; c) = E (X − h)₊(Y − k)₊ (module docstring) at c = sgn (1 − omc), s = √(1 − c²), upper = Φ₂(h, k; c).

    ch − k and ck − h are formed from omc, not from c: at 1 − |c| below the rounding of c, the lost −(1−|c|)h
    would shift both Φ arguments the same way by ~1e−16/s (the shifts from rounding h and k cancel)."""
    ph, pk = _pdf(h), _pdf(k)
    zh = (sgn * h - k) - sgn * omc * h               # ch − k
    zk = (sgn * k - h) - sgn * omc * k               # ck − h
    out = (sgn * (1.0 - omc) + h * k) * upper
    if s > 0.0:
        return out - k * ph * _cdf(zh / s) - h * pk * _cdf(zk / s) + s * ph * _pdf(zh / s)
    step_h = 1.0 if zh > 0.0 else (0.5 if zh == 0.0 else 0.0)
    step_k = 1.0 if zk > 0.0 else (0.5 if zk == 0.0 else 0.0)
    return out - k * ph * step_h - h * pk * step_k


@njit(cache=True)
def near_pair(a: float, b: float, c: float, omc: float, qa: float, qb: float, t1: float, t2: float, s1: float,
              s2: float, energy: bool) -> tuple[float, float, float]:
    """(A, B, P) = (E σ''(aX)σ(bY), E σ'(aX)σ'(bY), E σ(aX)σ(bY)) for a, b > 0 and any c, with 1 − |c| = omc
    given accurately and qa, qb = q(a), q(b): the closed forms of the module docstring (P only if energy)."""
    slope = (s2 - s1) / (t2 - t1)
    sin2 = omc * (2.0 - omc)
    s = math.sqrt(sin2)
    al1, al2, be1, be2 = t1 / a, t2 / a, t1 / b, t2 / b
    A = (slope / a) * (_pdf(al1) * _ramp_mean(b * c * al1, b * s, t1, t2, s1, slope)
                       - _pdf(al2) * _ramp_mean(b * c * al2, b * s, t1, t2, s1, slope))
    u11, u12, u21, u22 = bvn_corners(al1, al2, be1, be2, c, sin2)
    B = slope * slope * ((u11 - u12) - (u21 - u22))
    P = _corner_energy(a, b, c, omc, qa, qb, t1, t2, s1, slope, u11, u12, u21, u22) if energy else 0.0
    return A, B, P


@njit(cache=True, inline="always")
def _corner_energy(a: float, b: float, c: float, omc: float, qa: float, qb: float, t1: float, t2: float, s1: float,
                   slope: float, u11: float, u12: float, u21: float, u22: float) -> float:
    """P = s1 (q(a) + q(b)) − s1² + m² ab Σ_kl (−1)^{k+l} L(α_k, β_l; c) (module docstring) from the four
    corners u_kl = Φ₂(α_k, β_l; c) of bvn_corners."""
    s = math.sqrt(omc * (2.0 - omc))
    sgn = 1.0 if c > 0.0 else -1.0
    al1, al2, be1, be2 = t1 / a, t2 / a, t1 / b, t2 / b
    calls = ((_call_product(al1, be1, sgn, omc, s, u11) - _call_product(al1, be2, sgn, omc, s, u12))
             - (_call_product(al2, be1, sgn, omc, s, u21) - _call_product(al2, be2, sgn, omc, s, u22)))
    return s1 * (qa + qb) - s1 * s1 + slope * slope * a * b * calls


@njit(cache=True)
def near_energy(a: float, b: float, c: float, omc: float, qa: float, qb: float, t1: float, t2: float, s1: float,
                s2: float) -> float:
    """P = E σ(aX)σ(bY) of near_pair alone (a, b > 0, any c, 1 − |c| = omc, qa, qb = q(a), q(b)): no A, and B's
    corners only as the energy needs them."""
    slope = (s2 - s1) / (t2 - t1)
    u11, u12, u21, u22 = bvn_corners(t1 / a, t2 / a, t1 / b, t2 / b, c, omc * (2.0 - omc))
    return _corner_energy(a, b, c, omc, qa, qb, t1, t2, s1, slope, u11, u12, u21, u22)


@njit(cache=True)
def self_pair(a: float, t1: float, t2: float, s1: float, s2: float, energy: bool) -> tuple[float, float, float]:
    """(A, B, P) of the self pair (c = 1, b = a): (m/a)[φ(α1)s1 − φ(α2)s2], m²[Φ(α2) − Φ(α1)], E σ(aG)²."""
    slope = (s2 - s1) / (t2 - t1)
    if a <= 0.0:
        sigma0 = s1 if t1 >= 0.0 else (s2 if t2 <= 0.0 else s1 - slope * t1)
        return 0.0, (slope * slope if t1 < 0.0 < t2 else 0.0), sigma0 * sigma0
    al, be = t1 / a, t2 / a
    pa, pb, ca, cb = _pdf(al), _pdf(be), _cdf(al), _cdf(be)
    A = (slope / a) * (pa * s1 - pb * s2)
    B = slope * slope * (cb - ca)
    P = 0.0
    if energy:
        lin0, lin1 = s1 - slope * t1, slope * a           # σ(aG) = lin0 + lin1 G on (α, β)
        middle = (lin0 * lin0 * (cb - ca) + 2.0 * lin0 * lin1 * (pa - pb)
                  + lin1 * lin1 * ((cb - be * pb) - (ca - al * pa)))
        P = s1 * s1 * ca + s2 * s2 * (1.0 - cb) + middle
    return A, B, P


# ---------------------------------------------------------------------------------------------- the kernel
@njit(cache=True, inline="always")
def _horner(acc: np.ndarray, cos: np.ndarray, row: np.ndarray, col: np.ndarray, nr: int, nc: int) -> None:
    """acc[r, j] = Σ_k cos[r, j]^k row[r, k] col[k, j] for r < nr, j < nc: Horner from k = K down to 0, two
    orders a pass, each column row col[k] applied to all nr rows while it is in L1 (written in the plain
    loop's order: the same numbers); acc, cos (≥ nr, ≥ nc), row (≥ nr, K+1), col (K+1, ≥ nc)."""
    k = row.shape[1] - 1
    for r in range(nr):
        x = row[r, k]
        for jj in range(nc):
            acc[r, jj] = x * col[k, jj]
    k -= 1
    while k >= 1:
        for r in range(nr):
            x1, x0 = row[r, k], row[r, k - 1]
            for jj in range(nc):
                c = cos[r, jj]
                acc[r, jj] = (acc[r, jj] * c + x1 * col[k, jj]) * c + x0 * col[k - 1, jj]
        k -= 2
    if k == 0:
        for r in range(nr):
            x = row[r, 0]
            for jj in range(nc):
                acc[r, jj] = acc[r, jj] * cos[r, jj] + x * col[0, jj]


@njit(cache=True, inline="always")
def _cosines(cos: np.ndarray, ui: np.ndarray, ucol: np.ndarray, nr: int, nc: int) -> None:
    """cos[r, j] = Σ_e ui[r, e] ucol[e, j] clipped to [−1, 1], e in order (two a pass), for r < nr, j < nc."""
    d = ui.shape[1]
    for r in range(nr):
        for jj in range(nc):
            cos[r, jj] = 0.0
        for e in range(0, d - 1, 2):
            u0, u1 = ui[r, e], ui[r, e + 1]
            for jj in range(nc):
                cos[r, jj] = cos[r, jj] + u0 * ucol[e, jj] + u1 * ucol[e + 1, jj]
        if d % 2:
            u0 = ui[r, d - 1]
            for jj in range(nc):
                cos[r, jj] += u0 * ucol[d - 1, jj]
        for jj in range(nc):
            cos[r, jj] = min(max(cos[r, jj], -1.0), 1.0)


@njit(cache=True, inline="always")
def _near_omc(u: np.ndarray, v: np.ndarray, sgn: float) -> float:
    """1 − |c| = ½|u − sgn v|² from the chord (module docstring), for unit vectors u, v (d,)."""
    chord = 0.0
    for e in range(len(u)):
        diff = u[e] - sgn * v[e]
        chord += diff * diff
    return 0.5 * chord


@njit(cache=True, nogil=True)
def pair_tasks(first: int, last: int, unit: np.ndarray, tau: np.ndarray, h_rows: np.ndarray, d1_rows: np.ndarray,
               d2_rows: np.ndarray, unit_tiles: np.ndarray, h_tiles: np.ndarray, d1_tiles: np.ndarray,
               points: np.ndarray, weights: np.ndarray, scale2: np.ndarray, class_weights: np.ndarray, rows: int,
               t1: float, t2: float, s1: float, s2: float, cmax: float, energy: bool, grad: np.ndarray,
               row_energy: np.ndarray) -> None:
    """Tasks first..last−1 (task t: rows t·ROW_BLOCK .. min(rows, (t+1)·ROW_BLOCK) − 1): per row i,
    grad_i = Σ_y scale2_y ∘ Σ_j ω_j (A_ij p_i + B_ij p_j) and row_energy_i = Σ_y κ_y Σ_j ω_j P_ij.

    Per class y and point j (M points, Y classes, K = MEHLER_TERMS, chunks of C = COL_CHUNK columns):
    unit (Y, M, d) the unit vectors u_yj, tau (Y, M) the τ_yj, h_rows, d1_rows, d2_rows (Y, M, K+1) the
    coefficients of derivative_coefficients; the same for the columns packed by chunk, unit_tiles
    (Y, ⌈M/C⌉, d, C) and h_tiles, d1_tiles (Y, ⌈M/C⌉, K+1, C) (column j at [.., j // C, :, j % C]);
    points (M, d), weights ω (M,), scale2 (Y, d) = κ_y s_y², class_weights κ (Y,). The rows are
    points[:rows]; the pair j = i is the self pair. Writes grad (rows, d) and row_energy (rows,).
    docs/math.md §4 (the pair rules) and §8 (the drift of G).

    Threads run disjoint ranges of tasks (run_pair_rows), with the GIL released. Per task and chunk of
    columns: the cosines, Mehler's sums for all the task's pairs (Horner in c, vectorised across the
    chunk, each coefficient row applied to all the task's rows while it is in cache), the closed forms
    for the pairs with |c| > cmax and for the self pair, then each row adds its pairs in increasing j.
    No reassociation and no sums across rows: a row's numbers are the same whatever the thread count.
    """
    ny, npts, d = unit.shape
    chunk = unit_tiles.shape[3]
    for blk in range(first, last):
        i0 = blk * ROW_BLOCK
        nr = min(ROW_BLOCK, rows - i0)
        cos = np.empty((ROW_BLOCK, chunk))
        acc_a = np.empty((ROW_BLOCK, chunk))
        acc_b = np.empty((ROW_BLOCK, chunk))
        acc_p = np.zeros((ROW_BLOCK, chunk))
        sum_b = np.empty((ROW_BLOCK, d))
        sum_a = np.empty(ROW_BLOCK)
        sum_p = np.empty(ROW_BLOCK)
        for r in range(nr):
            row_energy[i0 + r] = 0.0
            for e in range(d):
                grad[i0 + r, e] = 0.0
        for y in range(ny):
            ui = unit[y, i0:i0 + nr]
            ra, rb, rp = d2_rows[y, i0:i0 + nr], d1_rows[y, i0:i0 + nr], h_rows[y, i0:i0 + nr]
            sum_a[:] = 0.0
            sum_p[:] = 0.0
            sum_b[:, :] = 0.0
            for ch in range(unit_tiles.shape[1]):
                j0 = ch * chunk
                nc = min(chunk, npts - j0)
                ucol, hcol, gcol = unit_tiles[y, ch], h_tiles[y, ch], d1_tiles[y, ch]
                pts, wts = points[j0:j0 + nc], weights[j0:j0 + nc]
                _cosines(cos, ui, ucol, nr, nc)
                _horner(acc_a, cos, ra, hcol, nr, nc)
                _horner(acc_b, cos, rb, gcol, nr, nc)
                if energy:
                    _horner(acc_p, cos, rp, hcol, nr, nc)
                for r in range(nr):
                    i = i0 + r
                    # the pairs Mehler does not cover
                    for jj in range(nc):
                        c = cos[r, jj]
                        if j0 + jj == i:
                            acc_a[r, jj], acc_b[r, jj], acc_p[r, jj] = self_pair(tau[y, i], t1, t2, s1, s2, energy)
                        elif abs(c) > cmax:
                            sgn = 1.0 if c > 0.0 else -1.0
                            omc = _near_omc(ui[r], ucol[:, jj], sgn)
                            acc_a[r, jj], acc_b[r, jj], acc_p[r, jj] = near_pair(
                                tau[y, i], tau[y, j0 + jj], sgn * (1.0 - omc), omc, rp[r, 0], hcol[0, jj],
                                t1, t2, s1, s2, energy)
                    # this chunk's pairs, in increasing j
                    sa, sp = sum_a[r], sum_p[r]
                    for jj in range(nc):
                        sa += wts[jj] * acc_a[r, jj]
                        sp += wts[jj] * acc_p[r, jj]
                    sum_a[r], sum_p[r] = sa, sp
                    for jj in range(0, nc - 1, 2):    # Σ_j ω_j B_ij p_j, j in order (two a pass)
                        b0, b1 = wts[jj] * acc_b[r, jj], wts[jj + 1] * acc_b[r, jj + 1]
                        for e in range(d):
                            sum_b[r, e] = sum_b[r, e] + b0 * pts[jj, e] + b1 * pts[jj + 1, e]
                    if nc % 2:
                        b0 = wts[nc - 1] * acc_b[r, nc - 1]
                        for e in range(d):
                            sum_b[r, e] += b0 * pts[nc - 1, e]
            for r in range(nr):
                i = i0 + r
                row_energy[i] += class_weights[y] * sum_p[r]
                for e in range(d):
                    grad[i, e] += scale2[y, e] * (points[i, e] * sum_a[r] + sum_b[r, e])


@njit(cache=True, inline="always")
def _far_band(bits: np.ndarray, r: int, lo: int, nc: int, cmax_bits: int) -> tuple[int, int]:
    """Over the pairs jj ∈ [lo, nc) of row r of the cosines (bits: their int64 view): the bits of the largest
    |c| ≤ cmax and the count of |c| > cmax. Non-negative doubles order as their bit patterns, so both are
    integer reductions (vectorised, unlike a float maximum)."""
    top = 0
    above = 0
    for jj in range(lo, nc):
        b = bits[r, jj] & 0x7FFFFFFFFFFFFFFF
        inside = b <= cmax_bits
        top = max(top, b if inside else 0)
        above += 0 if inside else 1
    return top, above


@njit(cache=True, inline="always")
def _far_terms(cm: float, row_log: np.ndarray, col_log: np.ndarray, kfar: int, log_tol: float) -> int:
    """A K ≤ kfar (K + 1 a multiple of 4, as is kfar + 1), nearly the smallest, with cm^{K+1} √(T_K(row) T_K(col)) ≤ tol,
    from the logarithms of the tails at K = 2g + 1: the K the bound at kfar asks for (T_K ≥ T_kfar: too few),
    then the K the bound at that K asks for (valid: T falls with K)."""
    if cm <= 0.0:
        return 3
    scale = -0.5 / math.log(cm)
    k = kfar
    for _ in range(2):
        g = (k - 1) // 2
        need = (row_log[g] + col_log[g] - 2.0 * log_tol) * scale        # K + 1 ≥ need
        k = 4 * max(1, min((kfar + 1) // 4, -(-int(math.ceil(need)) // 4))) - 1
    return k


@njit(cache=True, inline="always")
def _mid_terms(c: float, row_tail: np.ndarray, col_tail: np.ndarray, tol2: float) -> int:
    """The fewest terms n ∈ {8, 16, …, 2·len(tails)} with (|c|^n)² T_{n−1}(row) T_{n−1}(col) ≤ tol², else 0 (tails at
    K = 2g + 1)."""
    c2 = c * c
    c4 = c2 * c2
    c8 = c4 * c4
    p = c8
    for n in range(8, 2 * len(row_tail) + 1, 8):
        g = n // 2 - 1
        if p * p * row_tail[g] * col_tail[g] <= tol2:
            return n
        p *= c8
    return 0


@njit(cache=True)
def mehler_terms(x: np.ndarray, y: np.ndarray, c: float, n: int) -> float:
    """Σ_{k<n} c^k x_k y_k (Mehler's series to n terms, n a multiple of 8): Horner in c⁸ on eight interleaved
    chains (k mod 8), then Horner in c across them."""
    c2 = c * c
    c4 = c2 * c2
    c8 = c4 * c4
    k = n - 8
    a0, a1, a2, a3 = x[k] * y[k], x[k + 1] * y[k + 1], x[k + 2] * y[k + 2], x[k + 3] * y[k + 3]
    a4, a5, a6, a7 = x[k + 4] * y[k + 4], x[k + 5] * y[k + 5], x[k + 6] * y[k + 6], x[k + 7] * y[k + 7]
    k -= 8
    while k >= 0:
        a0 = a0 * c8 + x[k] * y[k]
        a1 = a1 * c8 + x[k + 1] * y[k + 1]
        a2 = a2 * c8 + x[k + 2] * y[k + 2]
        a3 = a3 * c8 + x[k + 3] * y[k + 3]
        a4 = a4 * c8 + x[k + 4] * y[k + 4]
        a5 = a5 * c8 + x[k + 5] * y[k + 5]
        a6 = a6 * c8 + x[k + 6] * y[k + 6]
        a7 = a7 * c8 + x[k + 7] * y[k + 7]
        k -= 8
    return a0 + c * (a1 + c * (a2 + c * (a3 + c * (a4 + c * (a5 + c * (a6 + c * a7))))))


@njit(cache=True)
def _chunk_cosines(cos: np.ndarray, ui: np.ndarray, ucol: np.ndarray, nr: int, nc: int) -> None:
    """_cosines for energy_tasks and deferred_tasks, compiled once without fast-math flags: both find the same
    cosines to the bit, so deferred_tasks finds the very pairs energy_tasks deferred."""
    _cosines(cos, ui, ucol, nr, nc)


@njit(cache=True, nogil=True, fastmath={"contract"})
def energy_tasks(first: int, last: int, unit: np.ndarray, tau: np.ndarray, unit_tiles: np.ndarray, groups: np.ndarray,
                 h_tiles: np.ndarray, tail_tiles: np.ndarray, log_tiles: np.ndarray, chunk_logs: np.ndarray,
                 weights: np.ndarray, class_weights: np.ndarray, t1: float, t2: float, s1: float, s2: float,
                 cmax: float, tol: float, row_energy: np.ndarray, deferred: np.ndarray, listed: np.ndarray,
                 listed_cos: np.ndarray, listed_count: np.ndarray) -> None:
    """Tasks first..last−1 of the energy alone (task t: rows t·ROW_BLOCK .. min(M, (t+1)·ROW_BLOCK) − 1): per row
    i, row_energy_i = Σ_y κ_y (ω_i P_ii + 2 Σ_{j>i} ω_j P_ij) over all pairs but the deferred ones (below),
    so that with deferred_tasks' Σ_i ω_i row_energy_i = Σ_ij ω_i ω_j U_ij.

    Per class y and point j (M points, Y classes, chunks of C = COL_CHUNK columns, F = FAR_TERMS): unit
    (Y, M, d) the unit vectors, tau (Y, M) the τ_yj; in tiles (column j at [.., j // C, :, j % C]) unit_tiles
    (Y, ⌈M/C⌉, d, C) and energy_coefficient_tasks' h_tiles (Y, ⌈M/C⌉, F, C) (ĥ_k, k < F), tail_tiles and
    log_tiles (Y, ⌈M/C⌉, F/2, C) (the tail bounds T_{2g+1} and their logarithms), chunk_logs (Y, ⌈M/C⌉, F/2);
    groups (Y,) the class whose cosines class y shares (groups[y] ≤ y; equal scales up to a factor give
    equal cosines); weights ω (M,), class_weights κ (Y,), the ramp, cmax (Mehler's band vectorised across
    a chunk: F terms do there) and tol (the truncation bound per pair). Writes row_energy (M,), deferred
    (Y, ⌈M/R⌉, ⌈M/C⌉): 1 where a row block and chunk has deferred pairs (R = ROW_BLOCK), else 0, and the
    deferred pairs of row block b, in the order met, as (y R + r) M + j into listed[b] and their cosines into
    listed_cos[b] (both (⌈M/R⌉, L)), their count (which may exceed L: then only the marks hold) into
    listed_count[b].

    U is symmetric, so a row visits the chunks from its own on and its pairs j > i. Per chunk: the cosines;
    per row, Mehler's series for its pairs |c| ≤ cmax to the fewest terms K + 1 whose bound
    |c|^{K+1} √(T_K(a) T_K(b)) (Cauchy–Schwarz on the tail; |c| the largest of those pairs, T_K(b) the
    chunk's largest) is ≤ tol (_far_terms), Horner (fused multiply-adds) across the chunk and the rows; the pairs |c| > cmax one
    by one, by Mehler to the fewest multiple of 8 terms ≤ F whose own bound is ≤ tol (_mid_terms), or else
    deferred to deferred_tasks; self_pair on the diagonal. A row adds its pairs lane by lane (column
    j mod C) and the lanes in order at the end: the same bits for any split into tasks or threads.
    """
    ny, npts, d = unit.shape
    chunk = unit_tiles.shape[3]
    kfar = h_tiles.shape[2] - 1
    tol2, log_tol = tol * tol, math.log(tol)
    cos = np.empty((ny, ROW_BLOCK, chunk))
    cmax_bits = np.array([cmax]).view(np.int64)[0]
    top_bits = np.zeros(1, dtype=np.int64)
    top = top_bits.view(np.float64)
    acc = np.empty((ROW_BLOCK, chunk))
    lanes = np.empty((ny, ROW_BLOCK, chunk))
    diag = np.empty((ny, ROW_BLOCK))
    band = np.empty((ny, ROW_BLOCK))
    mids = np.empty((ny, ROW_BLOCK), dtype=np.int64)
    terms = np.empty(ROW_BLOCK, dtype=np.int64)
    starts = np.empty(ROW_BLOCK, dtype=np.int64)
    room = listed.shape[1]
    for blk in range(first, last):
        i0 = blk * ROW_BLOCK
        nr = min(ROW_BLOCK, npts - i0)
        ci, r0 = i0 // chunk, i0 % chunk                              # the rows' own chunk and place in it
        count = 0
        for r in range(nr):
            row_energy[i0 + r] = 0.0
        for y in range(ny):
            for r in range(nr):
                diag[y, r] = self_pair(tau[y, i0 + r], t1, t2, s1, s2, True)[2]
                for jj in range(chunk):
                    lanes[y, r, jj] = 0.0
            for ch in range(unit_tiles.shape[1]):
                deferred[y, blk, ch] = 0
        for ch in range(ci, unit_tiles.shape[1]):
            j0 = ch * chunk
            nc = min(chunk, npts - j0)
            wts = weights[j0:j0 + nc]
            for r in range(nr):
                starts[r] = max(0, i0 + r + 1 - j0)                    # the pairs j > i
            for y in range(ny):
                g = groups[y]
                cg = cos[g]
                if g == y:
                    _chunk_cosines(cg, unit[y, i0:i0 + nr], unit_tiles[y, ch], nr, nc)
                    bits = cg.view(np.int64)
                    for r in range(nr):
                        if starts[r] < nc:
                            top_bits[0], mids[y, r] = _far_band(bits, r, starts[r], nc, cmax_bits)
                            band[y, r] = top[0]
                rows, row_tails, row_logs = h_tiles[y, ci], tail_tiles[y, ci], log_tiles[y, ci]
                cols, col_tails = h_tiles[y, ch], tail_tiles[y, ch]
                most = -1
                for r in range(nr):
                    terms[r] = -1
                    if starts[r] < nc:
                        terms[r] = _far_terms(band[g, r], row_logs[:, r0 + r], chunk_logs[y, ch], kfar, log_tol)
                        most = max(most, terms[r])
                for k in range(most, 0, -4):                          # Horner, four orders a pass
                    for r in range(nr):
                        if terms[r] < k:
                            continue
                        x3, x2, x1, x0 = rows[k, r0 + r], rows[k - 1, r0 + r], rows[k - 2, r0 + r], rows[k - 3, r0 + r]
                        if terms[r] == k:
                            for jj in range(nc):
                                c = cg[r, jj]
                                acc[r, jj] = ((x3 * cols[k, jj] * c + x2 * cols[k - 1, jj]) * c + x1 * cols[k - 2, jj]) * c \
                                    + x0 * cols[k - 3, jj]
                        else:
                            for jj in range(nc):
                                c = cg[r, jj]
                                acc[r, jj] = ((((acc[r, jj] * c + x3 * cols[k, jj]) * c + x2 * cols[k - 1, jj]) * c
                                               + x1 * cols[k - 2, jj]) * c + x0 * cols[k - 3, jj])
                for r in range(nr):
                    if terms[r] < 0:
                        continue
                    for jj in range(starts[r]):
                        acc[r, jj] = 0.0
                    if mids[g, r]:
                        for jj in range(starts[r], nc):
                            c = cg[r, jj]
                            if abs(c) > cmax:
                                n = _mid_terms(c, row_tails[:, r0 + r], col_tails[:, jj], tol2)
                                if n > 0:
                                    acc[r, jj] = mehler_terms(rows[:, r0 + r], cols[:, jj], c, n)
                                else:
                                    acc[r, jj] = 0.0
                                    deferred[y, blk, ch] = 1
                                    if count < room:
                                        listed[blk, count] = (y * ROW_BLOCK + r) * npts + j0 + jj
                                        listed_cos[blk, count] = c
                                    count += 1
                    for jj in range(nc):
                        lanes[y, r, jj] += wts[jj] * acc[r, jj]
        for y in range(ny):
            for r in range(nr):
                total = 0.0
                for jj in range(chunk):
                    total += lanes[y, r, jj]
                row_energy[i0 + r] += class_weights[y] * (weights[i0 + r] * diag[y, r] + 2.0 * total)
        listed_count[blk] = count


@njit(cache=True, inline="always")
def _deferred_pair(c: float, y: int, i: int, j: int, u: np.ndarray, v: np.ndarray, tau: np.ndarray, h: np.ndarray,
                   tails: np.ndarray, tol2: float, t1: float, t2: float, s1: float, s2: float) -> float:
    """P_ij of class y for a pair energy_tasks deferred (cosine c, unit vectors u, v): Mehler to the fewest multiple
    of 8 terms ≤ H whose bound is ≤ tol (high_coefficient_tasks' h (Y, M, H), tails (Y, M, H/2)), else
    near_energy with 1 − |c| from the chord."""
    n = _mid_terms(c, tails[y, i], tails[y, j], tol2)
    if n > 0:
        return mehler_terms(h[y, i], h[y, j], c, n)
    sgn = 1.0 if c > 0.0 else -1.0
    omc = _near_omc(u, v, sgn)
    return near_energy(tau[y, i], tau[y, j], sgn * (1.0 - omc), omc, h[y, i, 0], h[y, j, 0], t1, t2, s1, s2)


@njit(cache=True, nogil=True)
def deferred_tasks(first: int, last: int, unit: np.ndarray, tau: np.ndarray, unit_tiles: np.ndarray, groups: np.ndarray,
                   tail_tiles: np.ndarray, h: np.ndarray, tails: np.ndarray, weights: np.ndarray,
                   class_weights: np.ndarray, t1: float, t2: float, s1: float, s2: float, cmax: float, tol: float,
                   deferred: np.ndarray, row_energy: np.ndarray) -> None:
    """Row blocks first..last−1: the pairs energy_tasks deferred (|c| > cmax, more than FAR_TERMS terms), in the row
    blocks and chunks that deferred (Y, ⌈M/R⌉, ⌈M/C⌉) marks: row_energy_i += Σ_y κ_y 2 Σ_j ω_j P_ij (M,).

    unit, tau, unit_tiles, groups, tail_tiles, weights, class_weights, the ramp, cmax and tol as in
    energy_tasks, and high_coefficient_tasks' h (Y, M, H), tails (Y, M, H/2) for the chunks concerned. The
    cosines are recomputed as energy_tasks computed them, so the same pairs are found; each goes by Mehler
    to the fewest multiple of 8 terms ≤ H whose bound is ≤ tol, else by near_energy. Per row, classes,
    chunks and columns in order: the same bits for any split.
    """
    ny, npts, d = unit.shape
    chunk = unit_tiles.shape[3]
    tol2 = tol * tol
    cos = np.empty((ROW_BLOCK, chunk))
    sums = np.empty(ROW_BLOCK)
    for blk in range(first, last):
        i0 = blk * ROW_BLOCK
        nr = min(ROW_BLOCK, npts - i0)
        ci, r0 = i0 // chunk, i0 % chunk
        for y in range(ny):
            g = groups[y]
            ui, row_tails = unit[g, i0:i0 + nr], tail_tiles[y, ci]
            for r in range(nr):
                sums[r] = 0.0
            for ch in range(ci, unit_tiles.shape[1]):
                if not deferred[y, blk, ch]:
                    continue
                j0 = ch * chunk
                nc = min(chunk, npts - j0)
                ucol, col_tails = unit_tiles[g, ch], tail_tiles[y, ch]
                _chunk_cosines(cos, ui, ucol, nr, nc)
                for r in range(nr):
                    i = i0 + r
                    for jj in range(max(0, i + 1 - j0), nc):
                        c = cos[r, jj]
                        if abs(c) > cmax and _mid_terms(c, row_tails[:, r0 + r], col_tails[:, jj], tol2) == 0:
                            j = j0 + jj
                            p = _deferred_pair(c, y, i, j, ui[r], ucol[:, jj], tau, h, tails, tol2, t1, t2, s1, s2)
                            sums[r] += weights[j] * p
            for r in range(nr):
                row_energy[i0 + r] += class_weights[y] * 2.0 * sums[r]


@njit(cache=True, nogil=True)
def listed_tasks(first: int, last: int, unit: np.ndarray, tau: np.ndarray, groups: np.ndarray, h: np.ndarray,
                 tails: np.ndarray, weights: np.ndarray, class_weights: np.ndarray, t1: float, t2: float, s1: float,
                 s2: float, tol: float, listed: np.ndarray, listed_cos: np.ndarray, listed_count: np.ndarray,
                 row_energy: np.ndarray) -> None:
    """deferred_tasks for the row blocks first..last−1 whose deferred pairs energy_tasks listed in full
    (listed_count ≤ the lists' length; others are skipped): the same pairs, cosines and rules as
    deferred_tasks, read from the lists instead of found again, and summed in its order (per row and
    class, chunks and columns in order, as energy_tasks listed them), so the same bits."""
    ny, npts, d = unit.shape
    tol2 = tol * tol
    sums = np.empty((ny, ROW_BLOCK))
    for blk in range(first, last):
        count = listed_count[blk]
        if count == 0 or count > listed.shape[1]:
            continue
        i0 = blk * ROW_BLOCK
        nr = min(ROW_BLOCK, npts - i0)
        sums[:, :] = 0.0
        for m in range(count):
            yr, j = divmod(listed[blk, m], npts)
            y, r = divmod(yr, ROW_BLOCK)
            i, g = i0 + r, groups[y]
            p = _deferred_pair(listed_cos[blk, m], y, i, j, unit[g, i], unit[g, j], tau, h, tails, tol2, t1, t2, s1,
                               s2)
            sums[y, r] += weights[j] * p
        for y in range(ny):
            for r in range(nr):
                row_energy[i0 + r] += class_weights[y] * 2.0 * sums[y, r]


def release_scratch() -> None:
    """Give back the calling thread's scratch arrays of pair_energy and pair_gradient (7 MB at M = 800, 110 MB at
    M = 12800); the next call allocates them afresh."""
    _WORK.release()


def _run_tasks(kernel, tasks: int, args: tuple, threads: int, work: np.ndarray | None = None, per_thread: int = 4
               ) -> None:
    """kernel(first, last, *args) over tasks 0..tasks−1 on up to `threads` threads, each taking the next piece as
    it frees up: about per_thread pieces a thread, of equal work (work (tasks,), default 1 a task). The tasks
    write disjoint rows, so the numbers do not depend on the split."""
    threads = min(threads, tasks)
    if threads <= 1:
        kernel(0, tasks, *args)
        return
    cum = np.cumsum(np.ones(tasks) if work is None else work)
    pieces = per_thread * threads
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, pieces) / pieces, side="right") + 1
    bounds = np.unique(np.r_[0, np.minimum(cuts, tasks), tasks])
    list(_pool(threads).map(lambda k: kernel(int(bounds[k]), int(bounds[k + 1]), *args), range(len(bounds) - 1)))


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    """A thread pool of `threads` workers kept for the process (starting threads costs more than a small R_N);
    a forked child starts its own (the parent's threads do not survive the fork)."""
    key = (os.getpid(), threads)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(threads)
    return _POOLS[key]


def run_pair_rows(*args) -> None:
    """pair_tasks over all tasks for its arguments after (first, last): on numba.get_num_threads() threads, each
    taking the next few tasks as it frees up (the tasks write disjoint rows; the numbers do not depend on
    the split). One serial Numba build: it compiles once, and numba.set_num_threads(1) makes this serial."""
    _run_tasks(pair_tasks, (args[12] + ROW_BLOCK - 1) // ROW_BLOCK, args, numba.get_num_threads())


def run_energy_rows(*args, work: Workspace | None = None) -> None:
    """energy_tasks, then what it deferred, for energy_tasks' arguments after (first, last) up to row_energy
    (args[0] = unit (Y, M, d), args[1] = tau; args[-1] = row_energy): serial below ENERGY_PARALLEL_PAIRS
    pairs, else on numba.get_num_threads() threads, in pieces of equal numbers of pairs (a row block's pairs
    j > i fall with its index). The coefficients of the deferred pairs' chunks by high_coefficient_tasks;
    the deferred pairs by listed_tasks where energy_tasks listed them all (up to LISTED_PAIRS a row block),
    else by deferred_tasks, which finds them again. Scratch arrays from work if given, else new."""
    work = Workspace() if work is None else work
    unit, tau, unit_tiles, groups, _, tail_tiles = args[:6]
    ny, npts = tau.shape
    tasks, chunks = (npts + ROW_BLOCK - 1) // ROW_BLOCK, unit_tiles.shape[1]
    threads = _energy_threads(npts)
    deferred = work.take("deferred", (ny, tasks, chunks), np.uint8)
    listed = work.take("listed", (tasks, LISTED_PAIRS), np.int64)
    listed_cos = work.take("listed_cos", (tasks, LISTED_PAIRS))
    listed_count = work.take("listed_count", (tasks,), np.int64)
    _run_tasks(energy_tasks, tasks, args + (deferred, listed, listed_cos, listed_count), threads,
               npts - ROW_BLOCK * (np.arange(tasks) + 0.5))
    if not deferred.any():
        return
    weights, class_weights, t1, t2, s1, s2, cmax, tol, row_energy = args[8:17]
    blocks = deferred.any(axis=(0, 2))
    needed = np.nonzero(deferred.any(axis=(0, 1)) | np.isin(np.arange(chunks), np.nonzero(blocks)[0] * ROW_BLOCK
                                                               // COL_CHUNK))[0]
    h, tails = work.take("h", (ny, npts, MID_TERMS)), work.take("high_tails", (ny, npts, MID_TERMS // 2))
    _run_tasks(high_coefficient_tasks, len(needed), (needed, tau, t1, t2, s1, s2, h, tails), threads)
    full = listed_count <= LISTED_PAIRS
    _run_tasks(listed_tasks, tasks, (unit, tau, groups, h, tails, weights, class_weights, t1, t2, s1, s2, tol, listed,
                                     listed_cos, listed_count, row_energy), threads, np.where(full, listed_count, 0) + 0.01,
               per_thread=16)                               # a pair's cost varies 10×: near_energy or Mehler
    deferred[:, full] = 0                                       # what is left: the blocks whose lists overflowed
    if deferred.any():
        _run_tasks(deferred_tasks, tasks, (unit, tau, unit_tiles, groups, tail_tiles, h, tails, weights, class_weights,
                                           t1, t2, s1, s2, cmax, tol, deferred, row_energy), threads,
                   deferred.sum(axis=(0, 2)) + 0.01)


def _energy_threads(npts: int) -> int:
    """pair_energy's threads for M points: numba.get_num_threads() from ENERGY_PARALLEL_PAIRS pairs i ≤ j on."""
    return numba.get_num_threads() if npts * (npts + 1) // 2 >= ENERGY_PARALLEL_PAIRS else 1


def _tiles(cols: np.ndarray, chunk: int, out: np.ndarray | None = None) -> np.ndarray:
    """(Y, M, n) → (Y, ⌈M/chunk⌉, n, chunk): column j at [.., j // chunk, :, j % chunk], zero-padded; into out
    if given."""
    ny, npts, n = cols.shape
    blocks, whole = -(-npts // chunk), npts // chunk
    out = np.empty((ny, blocks, n, chunk)) if out is None else out
    out[:, :whole] = cols[:, : whole * chunk].reshape(ny, whole, chunk, n).transpose(0, 1, 3, 2)
    if whole < blocks:
        out[:, whole] = 0.0
        out[:, whole, :, : npts - whole * chunk] = cols[:, whole * chunk:].transpose(0, 2, 1)
    return out


# ---------------------------------------------------------------------------------------------- entry points
def _check(points: np.ndarray, weights: np.ndarray, scales: np.ndarray, class_weights: np.ndarray, rows: int | None):
    points = np.ascontiguousarray(points, dtype=float)
    weights = np.ascontiguousarray(weights, dtype=float)
    scales = np.ascontiguousarray(np.atleast_2d(scales), dtype=float)
    class_weights = np.ascontiguousarray(class_weights, dtype=float)
    rows = len(points) if rows is None else int(rows)
    if points.ndim != 2 or weights.shape != (len(points),) or scales.shape[1:] != points.shape[1:]:
        raise ValueError(f"need points (M, d), weights (M,), scales (Y, d); got {points.shape}, {weights.shape}, "
                         f"{scales.shape}")
    if class_weights.shape != (len(scales),) or not 0 <= rows <= len(points):
        raise ValueError(f"need class_weights (Y,) and 0 ≤ rows ≤ M; got {class_weights.shape}, rows = {rows}")
    return points, weights, scales, class_weights, rows


def pair_gradient(points: np.ndarray, weights: np.ndarray, scales: np.ndarray, class_weights: np.ndarray,
                  t1: float, t2: float, s1: float, s2: float, rows: int | None = None,
                  energy: bool = False) -> tuple[np.ndarray, float]:
    """(Σ_j ω_j ∇_1 U(p_i, p_j) for i < rows, shape (rows, d);  Σ_{i<rows} Σ_j ω_i ω_j U(p_i, p_j) or NaN).

    U(w, w') = Σ_y κ_y E σ(<w, x_y>)σ(<w', x_y>), x_y = s_y ∘ g (module docstring; docs/math.md §4), with
    points p (M, d), weights ω (M,), scales s (Y, d), class weights κ (Y,) and the ramp σ (t1, t2, s1, s2).
    The rows are points[:rows] (all by default); the pair j = i is U's derivative in its first argument at
    c = 1. The energy (only with energy=True; about a third more work) is R_N's pair term for rows = M.
    The Numba kernel pair_tasks on numba.get_num_threads() threads (the same bits for any count); the
    drift of G is this plus ∇V/α (docs/math.md §8).
    """
    points, weights, scales, class_weights, rows = _check(points, weights, scales, class_weights, rows)
    Ramp(t1, t2, s1, s2)                                   # checks t1 < t2
    tau, unit = class_geometry(points, scales, _WORK)
    h, d1, d2 = (_WORK.take(name, tau.shape + (MEHLER_TERMS + 1,)) for name in ("h", "d1", "d2"))
    coefficients_into(tau, float(t1), float(t2), float(s1), float(s2), h, d1, d2)
    scale2 = class_weights[:, None] * scales**2
    grad = np.empty((rows, points.shape[1]))
    row_energy = _WORK.take("row_energy", (rows,))
    chunks = -(-len(points) // COL_CHUNK)
    tiles = [_tiles(x, COL_CHUNK, _WORK.take(name + "_tiles", (len(scales), chunks, x.shape[2], COL_CHUNK)))
             for name, x in (("unit", unit), ("h", h), ("d1", d1))]
    run_pair_rows(unit, tau, h, d1, d2, *tiles, points, weights, scale2, class_weights, rows, float(t1), float(t2),
                  float(s1), float(s2), MEHLER_MAX_COSINE, bool(energy), grad, row_energy)
    return grad, (float(np.sum(weights[:rows] * row_energy)) if energy else float("nan"))   # no BLAS: fixed order


def pair_energy(points: np.ndarray, weights: np.ndarray, scales: np.ndarray, class_weights: np.ndarray,
                t1: float, t2: float, s1: float, s2: float) -> float:
    """Σ_ij ω_i ω_j U(p_i, p_j) (dimensionless), the energy of pair_gradient without the gradient: R_N's pair term
    (docs/math.md §4, the exact finite-N risk).

    Points p (M, d), weights ω (M,), scales s (Y, d), class weights κ (Y,) and the ramp σ (t1, t2, s1, s2) as
    in pair_gradient. The Numba kernels energy_tasks and deferred_tasks over the pairs j ≥ i (U is
    symmetric), on numba.get_num_threads() threads from ENERGY_PARALLEL_PAIRS pairs on (the same bits for
    any count). Mehler's series is cut where a bound on its tail is below ENERGY_TAIL · max σ² (energy_tasks),
    so the result is within ENERGY_TAIL · max σ² · (Σ|ω|)² of the full series, plus rounding.
    """
    points, weights, scales, class_weights, _ = _check(points, weights, scales, class_weights, None)
    Ramp(t1, t2, s1, s2)                                   # checks t1 < t2
    row_energy = _WORK.take("row_energy", (len(points),))
    run_energy_rows(*energy_arguments(points, weights, scales, class_weights, float(t1), float(t2), float(s1),
                                      float(s2), _WORK), row_energy, work=_WORK)
    return float(np.sum(weights * row_energy))


def energy_arguments(points: np.ndarray, weights: np.ndarray, scales: np.ndarray, class_weights: np.ndarray,
                     t1: float, t2: float, s1: float, s2: float, work: Workspace | None = None) -> tuple:
    """energy_tasks' arguments after (first, last) and before row_energy, for pair_energy's checked arguments:
    the classes' geometry, the unit vectors' tiles, the classes that share cosines, energy_coefficient_tasks'
    tiles (FAR_TERMS coefficients a point), the band ENERGY_FAR_COSINE and tol = ENERGY_TAIL · max σ²
    (≥ ENERGY_TAIL · |P| for every pair). The arrays are work's (valid until its next use) if given, else new.
    """
    work = Workspace() if work is None else work
    tau, unit = class_geometry(points, scales, work)
    (ny, npts), d = tau.shape, points.shape[1]
    chunks = -(-npts // COL_CHUNK)
    h_tiles = work.take("h_tiles", (ny, chunks, FAR_TERMS, COL_CHUNK))
    tail_tiles, log_tiles = (work.take(name, (ny, chunks, FAR_TERMS // 2, COL_CHUNK)) for name in ("tails", "logs"))
    chunk_logs = work.take("chunk_logs", (ny, chunks, FAR_TERMS // 2))
    _run_tasks(energy_coefficient_tasks, chunks, (tau, t1, t2, s1, s2, h_tiles, tail_tiles, log_tiles, chunk_logs),
               _energy_threads(npts))                                                               # O(M)
    # classes whose scales agree up to a factor have the same unit vectors: the first of them computes the cosines
    ratio = scales / scales[:, :1]
    groups = np.array([next(g for g in range(ny) if np.array_equal(ratio[g], ratio[y])) for y in range(ny)])
    unit_tiles = _tiles(unit, COL_CHUNK, work.take("unit_tiles", (ny, chunks, d, COL_CHUNK)))
    return (unit, tau, unit_tiles, groups, h_tiles, tail_tiles, log_tiles, chunk_logs, weights,
            class_weights, t1, t2, s1, s2, ENERGY_FAR_COSINE, ENERGY_TAIL * max(s1 * s1, s2 * s2))


# ---------------------------------------------------------------------------------------------- the NumPy twin
def _horner_rows(row: np.ndarray, col: np.ndarray, cos: np.ndarray) -> np.ndarray:
    """Σ_k c_ij^k row_k[i] col_k[j] for row (K+1, n), col (K+1, M), cos (n, M): Horner, in place."""
    acc = np.multiply.outer(row[-1], col[-1])
    for k in range(len(row) - 2, -1, -1):
        acc *= cos
        acc += np.multiply.outer(row[k], col[k])
    return acc


def _normal_moments(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """∫_lo^hi U^n φ(U) dU for n = 0, 1, 2 (lo, hi may be ±inf)."""
    plo, phi = npdf(lo), npdf(hi)
    with np.errstate(invalid="ignore"):
        xlo = np.where(np.isfinite(lo), lo * plo, 0.0)
        xhi = np.where(np.isfinite(hi), hi * phi, 0.0)
    m0 = ndtr(hi) - ndtr(lo)
    return m0, plo - phi, m0 + xlo - xhi


def _ramp_piece(ramp: Ramp, slope_u: np.ndarray, shift: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """σ(slope_u·U + shift) = f0 + f1 U on the piece of σ that contains U = u: (f0, f1)."""
    z = slope_u * u + shift
    m = ramp.slope
    linear = (z > ramp.t1) & (z < ramp.t2)
    f0 = np.where(linear, ramp.s1 + m * (shift - ramp.t1), np.where(z <= ramp.t1, ramp.s1, ramp.s2))
    return f0, np.where(linear, m * slope_u, 0.0)


def near_pairs_numpy(ramp: Ramp, a: np.ndarray, b: np.ndarray, c: np.ndarray, omc: np.ndarray,
                     energy: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, P) for pairs a, b > 0 (P,) at any c, 1 − |c| = omc, by quadrature over V (module docstring)."""
    m = ramp.slope
    sg = np.where(c < 0, -1.0, 1.0)
    s = np.sqrt(omc * (2.0 - omc))
    p, r = np.sqrt(1.0 - 0.5 * omc), np.sqrt(0.5 * omc)
    al = (ramp.t1 / a, ramp.t2 / a)
    be = (ramp.t1 / b, ramp.t2 / b)
    A = (m / a) * (npdf(al[0]) * ramp_mean(ramp, b * c * al[0], b * s) - npdf(al[1]) * ramp_mean(ramp, b * c * al[1], b * s))
    with np.errstate(divide="ignore", invalid="ignore"):
        kinks = np.stack([(al[k] - sg * be[l]) / (2.0 * r) for k in (0, 1) for l in (0, 1)], axis=1)
    kinks = np.clip(np.nan_to_num(kinks, nan=_V_TAIL, posinf=_V_TAIL, neginf=-_V_TAIL), -_V_TAIL, _V_TAIL)
    fixed = np.broadcast_to(np.array((-_V_TAIL, *_V_FIXED, _V_TAIL)), (len(a), len(_V_FIXED) + 2))
    ends = np.sort(np.concatenate([fixed, kinks], axis=1), axis=1)
    lo, hi = ends[:, :-1, None], ends[:, 1:, None]
    nodes, wts = np.polynomial.legendre.leggauss(_V_NODES)
    v = (0.5 * (lo + hi) + 0.5 * (hi - lo) * nodes).reshape(len(a), -1)          # (P, 5·n)
    wv = (0.5 * (hi - lo) * wts).reshape(len(a), -1) * npdf(v)
    p_, r_, sg_ = p[:, None], r[:, None], sg[:, None]
    # B: X ∈ (α1, α2) and Y ∈ (β1, β2) as an interval of U, given V = v
    ylo = np.minimum(sg_ * be[0][:, None], sg_ * be[1][:, None])
    yhi = np.maximum(sg_ * be[0][:, None], sg_ * be[1][:, None])
    ulo = np.maximum((al[0][:, None] - r_ * v) / p_, (ylo + r_ * v) / p_)
    uhi = np.minimum((al[1][:, None] - r_ * v) / p_, (yhi + r_ * v) / p_)
    B = m * m * np.sum(wv * np.maximum(ndtr(uhi) - ndtr(ulo), 0.0), axis=1)
    if not energy:
        return A, B, np.full(len(a), np.nan)
    # P: σ(aX) σ(bY) is piecewise quadratic in U between the four kinks; integrate each piece exactly
    k1, m1 = (a * p)[:, None, None], (a * r)[:, None, None] * v[..., None]
    k2, m2 = (sg * b * p)[:, None, None], -(sg * b * r)[:, None, None] * v[..., None]
    knots = np.sort(np.concatenate([(np.array([ramp.t1, ramp.t2]) - m1) / k1,
                                    (np.array([ramp.t1, ramp.t2]) - m2) / k2], axis=-1), axis=-1)   # (P, n, 4)
    edges = np.concatenate([np.full(knots.shape[:-1] + (1,), -np.inf), knots,
                            np.full(knots.shape[:-1] + (1,), np.inf)], axis=-1)
    elo, ehi = edges[..., :-1], edges[..., 1:]
    probe = np.concatenate([knots[..., :1] - 1.0, 0.5 * (knots[..., 1:] + knots[..., :-1]), knots[..., -1:] + 1.0],
                           axis=-1)
    f0, f1 = _ramp_piece(ramp, k1, m1, probe)
    g0, g1 = _ramp_piece(ramp, k2, m2, probe)
    n0, n1, n2 = _normal_moments(elo, ehi)
    inner = np.sum(f0 * g0 * n0 + (f0 * g1 + f1 * g0) * n1 + f1 * g1 * n2, axis=-1)
    return A, B, np.sum(wv * inner, axis=1)


def pair_gradient_numpy(points: np.ndarray, weights: np.ndarray, scales: np.ndarray, class_weights: np.ndarray,
                        t1: float, t2: float, s1: float, s2: float, rows: int | None = None,
                        energy: bool = False, chunk: int = 4096) -> tuple[np.ndarray, float]:
    """NumPy twin of pair_gradient (same arguments and results): Mehler on whole (rows, M) matrices for
    |c| ≤ MEHLER_MAX_COSINE, the V-quadrature of near_pairs_numpy above (chunk pairs at a time), the closed
    form on the diagonal, and matrix products for the sums."""
    points, weights, scales, class_weights, rows = _check(points, weights, scales, class_weights, rows)
    ramp = Ramp(t1, t2, s1, s2)
    tau, unit = class_geometry(points, scales)
    grad = np.zeros((rows, points.shape[1]))
    total = 0.0
    diag = np.arange(rows)
    for y in range(len(scales)):
        h, d1, d2 = derivative_coefficients(ramp, tau[y])
        cos = np.clip(unit[y, :rows] @ unit[y].T, -1.0, 1.0)
        A = _horner_rows(d2[:, :rows], h, cos)
        B = _horner_rows(d1[:, :rows], d1, cos)
        P = _horner_rows(h[:, :rows], h, cos) if energy else None
        near = np.abs(cos) > MEHLER_MAX_COSINE
        near[diag, diag] = False
        i, j = np.nonzero(near)
        for lo in range(0, len(i), chunk):
            ii, jj = i[lo:lo + chunk], j[lo:lo + chunk]
            sgn = np.where(cos[ii, jj] > 0, 1.0, -1.0)
            omc = 0.5 * np.sum((unit[y, ii] - sgn[:, None] * unit[y, jj]) ** 2, axis=1)
            a_, b_, p_ = near_pairs_numpy(ramp, tau[y, ii], tau[y, jj], sgn * (1.0 - omc), omc, energy)
            A[ii, jj], B[ii, jj] = a_, b_
            if energy:
                P[ii, jj] = p_
        a = tau[y, :rows]
        pos = a > 0
        safe = np.where(pos, a, 1.0)
        al, be = ramp.t1 / safe, ramp.t2 / safe
        A[diag, diag] = np.where(pos, (ramp.slope / safe) * (npdf(al) * ramp.s1 - npdf(be) * ramp.s2), 0.0)
        B[diag, diag] = ramp.slope**2 * np.where(pos, ndtr(be) - ndtr(al), float(ramp.t1 < 0.0 < ramp.t2))
        grad += class_weights[y] * scales[y] ** 2 * (points[:rows] * (A @ weights)[:, None] + (B * weights) @ points)
        if energy:
            P[diag, diag] = ramp_second_moment(ramp, a)
            total += class_weights[y] * float(weights[:rows] @ (P @ weights))
    return grad, (total if energy else float("nan"))


def pair_energy_numpy(points: np.ndarray, weights: np.ndarray, scales: np.ndarray, class_weights: np.ndarray,
                      t1: float, t2: float, s1: float, s2: float) -> float:
    """NumPy twin of pair_energy (same arguments and result): the energy of pair_gradient_numpy, whose pairs with
    |c| > MEHLER_MAX_COSINE come from the V-quadrature of near_pairs_numpy."""
    return pair_gradient_numpy(points, weights, scales, class_weights, t1, t2, s1, s2, energy=True)[1]
