"""Gaussian expectations of the ramp activation in closed form (docs/math.md §3.1 and §4).

The ramp is σ(t) = s1 for t ≤ t1, s2 for t ≥ t2, linear in between (slope m = (s2 − s1)/(t2 − t1)).
Everything here is vectorised over NumPy arrays; G, X, Y are standard normals, (X, Y) with
correlation c. The Hermite coefficients are returned *normalised*, ĥ_k = h_k / sqrt(k!), so that
Mehler's formula reads E σ(aX)σ(bY) = Σ_k c^k ĥ_k(a) ĥ_k(b) and nothing overflows at large k.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from mfdyn.activations import ramp as ramp_formula
from mfdyn.activations import ramp_prime

_SQRT_2PI = np.sqrt(2.0 * np.pi)


def npdf(x: np.ndarray) -> np.ndarray:
    """Standard normal density φ(x)."""
    return np.exp(-0.5 * np.square(x)) / _SQRT_2PI


def ndtr(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF Φ(x), elementwise: scipy.special.ndtr, imported on first use (scipy.special adds
    ~0.2 s to the start-up of every command that only loads a config)."""
    from scipy.special import ndtr as scipy_ndtr

    return scipy_ndtr(x)


@dataclass(frozen=True)
class Ramp:
    """The ramp activation of docs/math.md §3.1; defaults are the MMN 2018 values (slope m = 10)."""

    t1: float = 0.5
    t2: float = 1.5
    s1: float = -2.5
    s2: float = 7.5

    def __post_init__(self) -> None:
        if not self.t2 > self.t1:
            raise ValueError(f"ramp needs t1 < t2, got t1={self.t1}, t2={self.t2}")

    @property
    def slope(self) -> float:
        """m = (s2 − s1) / (t2 − t1)."""
        return (self.s2 - self.s1) / (self.t2 - self.t1)

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """σ(t), elementwise."""
        return ramp_formula(t, self.t1, self.t2, self.s1, self.s2)

    def derivative(self, t: np.ndarray) -> np.ndarray:
        """σ'(t) = m on (t1, t2), 0 outside (the kinks get 0: a set of measure zero)."""
        return ramp_prime(t, self.t1, self.t2, self.s1, self.s2)


def _relu_mean(mu: np.ndarray, nu: np.ndarray, t: float) -> np.ndarray:
    """E (μ + νG − t)_+ = ν φ((μ−t)/ν) + (μ−t) Φ((μ−t)/ν); (μ − t)_+ when ν = 0."""
    mu, nu = np.broadcast_arrays(np.asarray(mu, float), np.asarray(nu, float))
    shift = mu - t
    with np.errstate(divide="ignore", invalid="ignore"):
        z = shift / nu
        out = nu * npdf(z) + shift * ndtr(z)
    return np.where(nu > 0, out, np.maximum(shift, 0.0))


def ramp_mean(ramp: Ramp, mu: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """E σ(μ + νG) for ν ≥ 0, closed form (σ = s1 + m[(t − t1)_+ − (t − t2)_+])."""
    return ramp.s1 + ramp.slope * (_relu_mean(mu, nu, ramp.t1) - _relu_mean(mu, nu, ramp.t2))


def q(ramp: Ramp, s: np.ndarray) -> np.ndarray:
    """q(s) = E σ(sG), s ≥ 0 (docs/math.md §3.1)."""
    s = np.asarray(s, dtype=float)
    return ramp_mean(ramp, np.zeros_like(s), s)


def ramp_second_moment(ramp: Ramp, a: np.ndarray) -> np.ndarray:
    """E σ(aG)², a ≥ 0, closed form: σ is s1, then A + B G (A = s1 − m t1, B = m a), then s2."""
    a = np.asarray(a, dtype=float)
    m = ramp.slope
    safe = np.where(a > 0, a, 1.0)
    al, be = ramp.t1 / safe, ramp.t2 / safe
    A, B = ramp.s1 - m * ramp.t1, m * a
    Pa, Pb, pa, pb = ndtr(al), ndtr(be), npdf(al), npdf(be)
    # ∫_α^β (A + Bz)² φ dz with ∫ zφ = −φ and ∫ z²φ = Φ − zφ
    middle = A * A * (Pb - Pa) + 2 * A * B * (pa - pb) + B * B * ((Pb - be * pb) - (Pa - al * pa))
    out = ramp.s1**2 * Pa + ramp.s2**2 * (1.0 - Pb) + middle
    return np.where(a > 0, out, ramp(0.0) ** 2)


def hermite_functions(x: np.ndarray, kmax: int) -> np.ndarray:
    """Normalised probabilists' Hermite polynomials He_k(x)/sqrt(k!), k = 0..kmax; shape (kmax+1, *x.shape)."""
    x = np.asarray(x, dtype=float)
    out = np.empty((kmax + 1,) + x.shape)
    out[0] = 1.0
    if kmax >= 1:
        out[1] = x
    for k in range(1, kmax):
        out[k + 1] = (x * out[k] - np.sqrt(k) * out[k - 1]) / np.sqrt(k + 1)
    return out


def hermite_coefficients(ramp: Ramp, a: np.ndarray, kmax: int) -> np.ndarray:
    """ĥ_k(a) = E[σ(aG) He_k(G)] / sqrt(k!) for k = 0..kmax, a ≥ 0; shape (kmax+1, *a.shape).

    docs/math.md §3.1: h_0 = q, h_1 = a m [Φ(t2/a) − Φ(t1/a)],
    h_k = a m [He_{k−2}(t1/a) φ(t1/a) − He_{k−2}(t2/a) φ(t2/a)] for k ≥ 2 (Stein's lemma twice).
    At a = 0, σ(aG) is the constant σ(0): ĥ_0 = σ(0) and every other coefficient is 0.
    """
    a = np.asarray(a, dtype=float)
    pos = a > 0
    safe = np.where(pos, a, 1.0)
    al, be = ramp.t1 / safe, ramp.t2 / safe
    am = np.where(pos, a * ramp.slope, 0.0)
    out = np.empty((kmax + 1,) + a.shape)
    out[0] = np.where(pos, q(ramp, a), ramp(0.0))
    if kmax >= 1:
        out[1] = am * (ndtr(be) - ndtr(al))
    if kmax >= 2:
        with np.errstate(over="ignore", invalid="ignore"):
            ha, hb = hermite_functions(al, kmax - 2), hermite_functions(be, kmax - 2)
            pa, pb = npdf(al), npdf(be)
            for k in range(2, kmax + 1):
                # He_{k-2}/sqrt(k!) = ψ_{k-2} / sqrt(k(k-1)); φ underflows to 0 before ψ overflows matters
                term = ha[k - 2] * pa - hb[k - 2] * pb
                out[k] = np.where(pos, am * np.nan_to_num(term) / np.sqrt(k * (k - 1.0)), 0.0)
    return out


def sphere_cosine_moments(d: int, kmax: int) -> np.ndarray:
    """E c^k, k = 0..kmax, for c = <e, u>, e fixed and u uniform on S^{d−1} (docs/math.md §3.1).

    Odd moments vanish; E c^{2j} = (2j−1)!! / (d (d+2) ... (d+2j−2)).
    """
    out = np.zeros(kmax + 1)
    out[0] = 1.0
    for k in range(2, kmax + 1, 2):
        out[k] = out[k - 2] * (k - 1.0) / (d + k - 2.0)
    return out


# Mehler's series is used for |c| <= this; above it the slow |c|^k decay makes quadrature cheaper.
MEHLER_MAX_COSINE = 0.5
MEHLER_TERMS = 48          # 0.5^48 ≈ 4e−15 times O(1) coefficients
_LEGENDRE_NODES = 40
_TAIL = 10.0               # φ(10) ≈ 8e−23: the Gaussian integral is cut at ±10


def mehler_sum(ha: np.ndarray, hb: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Σ_k c^k ĥ_k(a) ĥ_k(b) for coefficient arrays ha, hb of shape (K+1, ...) broadcasting with c.

    Mehler's formula for E σ(aX)σ(bY) at correlation c (docs/math.md §4); accurate for |c| ≤ 0.5 with
    MEHLER_TERMS terms. Loops over k so memory stays that of one broadcast term.
    """
    c = np.asarray(c, dtype=float)
    power = np.ones_like(c)
    acc = np.zeros(np.broadcast_shapes(ha.shape[1:], hb.shape[1:], c.shape))
    for k in range(min(len(ha), len(hb))):
        acc += power * ha[k] * hb[k]
        power = power * c
    return acc


@njit(cache=True)
def mehler_offdiagonal_sum(h: np.ndarray, cos: np.ndarray, cmax: float) -> float:
    """Σ_{i<j, |c_ij| ≤ cmax} Σ_k c_ij^k h[k, i] h[k, j] for h (K+1, N), cos (N, N); Horner in c.

    The Mehler part of Σ_{i≠j} E σ(a_i X)σ(a_j Y) (halved); serial, so the sum's order is fixed.
    """
    kmax, n = h.shape[0] - 1, h.shape[1]
    total = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            c = cos[i, j]
            if abs(c) > cmax:
                continue
            acc = h[kmax, i] * h[kmax, j]
            for k in range(kmax - 1, -1, -1):
                acc = acc * c + h[k, i] * h[k, j]
            total += acc
    return total


def mehler_offdiagonal_sum_numpy(h: np.ndarray, cos: np.ndarray, cmax: float) -> float:
    """NumPy twin of mehler_offdiagonal_sum."""
    i, j = np.nonzero(np.triu(np.abs(cos) <= cmax, k=1))
    return float(mehler_sum(h[:, i], h[:, j], cos[i, j]).sum())


def pair_expectation_quadrature(ramp: Ramp, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """E σ(aX)σ(bY), corr(X, Y) = c ∈ (−1, 1), by conditioning on X (docs/math.md §4, near |c| = 1).

    Given X = x, bY ~ N(bcx, b²(1 − c²)), so E[σ(bY)|x] is ramp_mean in closed form. The outer
    integral over x is split at the kinks of σ(ax) and of the limit σ(bcx), and done by
    Gauss–Legendre on each panel, where the integrand is smooth.
    """
    a, b, c = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=float)) for v in (a, b, c)))
    shape = a.shape
    a, b, c = a.ravel(), b.ravel(), c.ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        breaks = np.stack([ramp.t1 / a, ramp.t2 / a, ramp.t1 / (b * c), ramp.t2 / (b * c)], axis=1)
    breaks = np.clip(np.nan_to_num(breaks, nan=_TAIL, posinf=_TAIL, neginf=-_TAIL), -_TAIL, _TAIL)
    ends = np.sort(np.concatenate([np.full((a.size, 1), -_TAIL), breaks,
                                   np.full((a.size, 1), _TAIL)], axis=1), axis=1)
    lo, hi = ends[:, :-1], ends[:, 1:]                             # (P, 5) panels
    nodes, weights = np.polynomial.legendre.leggauss(_LEGENDRE_NODES)
    x = 0.5 * (lo + hi)[..., None] + 0.5 * (hi - lo)[..., None] * nodes      # (P, 5, n)
    w = 0.5 * (hi - lo)[..., None] * weights
    bc = (b * c)[:, None, None]
    bs = (b * np.sqrt(np.clip(1.0 - c * c, 0.0, None)))[:, None, None]
    integrand = ramp(a[:, None, None] * x) * ramp_mean(ramp, bc * x, bs) * npdf(x)
    return np.sum(integrand * w, axis=(1, 2)).reshape(shape)


def pair_expectation(ramp: Ramp, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """E σ(aX)σ(bY) with corr(X, Y) = c, a, b ≥ 0: Mehler for |c| ≤ 0.5, quadrature above (docs/math.md §4)."""
    a, b, c = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a, b, c)))
    out = np.empty(a.shape)
    near = np.abs(c) > MEHLER_MAX_COSINE
    far = ~near
    out[far] = mehler_sum(hermite_coefficients(ramp, a[far], MEHLER_TERMS),
                          hermite_coefficients(ramp, b[far], MEHLER_TERMS), c[far])
    if np.any(near):
        out[near] = pair_expectation_quadrature(ramp, a[near], b[near], c[near])
    return out
