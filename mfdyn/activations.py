"""Activations σ and σ' for the teacher–student networks (docs/math.md §3.3), twice: vectorised NumPy
for grids and readable twins, and scalar Numba functions for the SGD kernels, selected by an
integer code. The ramp takes its kinks and levels (t1, t2, s1, s2) as arguments (docs/math.md §3.1).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

CODES = {"relu": 0, "tanh": 1, "erf": 2, "sigmoid": 3, "ramp": 4}
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def ramp(z: np.ndarray, t1: float, t2: float, s1: float, s2: float) -> np.ndarray:
    """The ramp σ(z) = s1 for z ≤ t1, s2 for z ≥ t2, linear in between (docs/math.md §3.1), elementwise.

    The readable formula, written once: the grid, the closed forms and every NumPy twin call it.
    """
    return s1 + (s2 - s1) / (t2 - t1) * np.clip(np.asarray(z, dtype=float) - t1, 0.0, t2 - t1)


def ramp_prime(z: np.ndarray, t1: float, t2: float, s1: float, s2: float) -> np.ndarray:
    """σ'(z) of the ramp: the slope (s2 − s1)/(t2 − t1) on (t1, t2), 0 outside (the kinks get 0)."""
    z = np.asarray(z, dtype=float)
    return np.where((z > t1) & (z < t2), (s2 - s1) / (t2 - t1), 0.0)


def sigma(name: str, z: np.ndarray, ramp_levels: tuple[float, float, float, float]) -> np.ndarray:
    """σ(z) elementwise; ramp_levels = (t1, t2, s1, s2), used by 'ramp' only."""
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "erf":
        from scipy.special import erf  # scipy.special is heavy: imported on first use

        return erf(z)
    if name == "sigmoid":
        from scipy.special import expit

        return expit(z)
    return ramp(z, *ramp_levels)


def sigma_prime(name: str, z: np.ndarray, ramp: tuple[float, float, float, float]) -> np.ndarray:
    """σ'(z) elementwise (0 at kinks)."""
    if name == "relu":
        return (z > 0).astype(float)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "erf":
        return _TWO_OVER_SQRT_PI * np.exp(-np.square(z))
    if name == "sigmoid":
        from scipy.special import expit

        s = expit(z)
        return s * (1.0 - s)
    return ramp_prime(z, *ramp)


@njit(cache=True)
def sigma_scalar(code: int, z: float, t1: float, t2: float, s1: float, s2: float) -> float:
    """σ(z) for one z; code from CODES."""
    if code == 0:
        return z if z > 0.0 else 0.0
    if code == 1:
        return math.tanh(z)
    if code == 2:
        return math.erf(z)
    if code == 3:
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0.0 else math.exp(z) / (1.0 + math.exp(z))
    return s1 if z <= t1 else (s2 if z >= t2 else s1 + (s2 - s1) / (t2 - t1) * (z - t1))


@njit(cache=True)
def sigma_prime_scalar(code: int, z: float, s: float, t1: float, t2: float, s1: float, s2: float) -> float:
    """σ'(z) for one z, given s = σ(z) (tanh and the sigmoid take σ' from s: no second exp or tanh)."""
    if code == 0:
        return 1.0 if z > 0.0 else 0.0
    if code == 1:
        return 1.0 - s * s
    if code == 2:
        return _TWO_OVER_SQRT_PI * math.exp(-z * z)
    if code == 3:
        return s * (1.0 - s)
    return (s2 - s1) / (t2 - t1) if t1 < z < t2 else 0.0
