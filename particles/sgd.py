"""Online / mini-batch SGD steps for ŷ(x) = (1/N) Σ_i σ(<w_i, x>) with the ramp σ (MATH.md §2, §3.1).

One step with samples (x_b, y_b), b = 1..B, and s = εξ:

    w_i ← w_i + 2s [ (1/B) Σ_b (y_b − ŷ(x_b)) σ'(<w_i, x_b>) x_b − λ w_i ]

(noiseless, β = ∞). All neurons see the same ŷ computed from the weights before the step.
`sgd_steps_ramp` is the Numba kernel (serial, so results do not depend on the thread count);
`sgd_steps_ramp_numpy` is its readable twin. Both update w in place.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def sgd_steps_ramp(w: np.ndarray, x: np.ndarray, y: np.ndarray, batch: int, step: float, lam: float,
                   t1: float, t2: float, s1: float, s2: float) -> None:
    """Run len(y) // batch steps on w (N, d) in place; x (S·B, d), y (S·B,); step = 2εξ."""
    n, d = w.shape
    slope = (s2 - s1) / (t2 - t1)
    pre = np.empty((batch, n))
    res = np.empty(batch)
    decay = 1.0 - step * lam
    for s in range(len(y) // batch):
        for b in range(batch):
            k = s * batch + b
            yhat = 0.0
            for i in range(n):
                z = 0.0
                for a in range(d):
                    z += w[i, a] * x[k, a]
                pre[b, i] = z
                yhat += s1 if z <= t1 else (s2 if z >= t2 else s1 + slope * (z - t1))
            res[b] = (y[k] - yhat / n) / batch
        for i in range(n):
            for a in range(d):
                w[i, a] *= decay
            for b in range(batch):
                z = pre[b, i]
                if t1 < z < t2:
                    g = step * slope * res[b]
                    k = s * batch + b
                    for a in range(d):
                        w[i, a] += g * x[k, a]


def sgd_steps_ramp_numpy(w: np.ndarray, x: np.ndarray, y: np.ndarray, batch: int, step: float, lam: float,
                         t1: float, t2: float, s1: float, s2: float) -> None:
    """NumPy twin of sgd_steps_ramp: the update of MATH §2 written as array expressions."""
    slope = (s2 - s1) / (t2 - t1)
    for s in range(len(y) // batch):
        xb, yb = x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch]
        z = xb @ w.T                                                     # (B, N)
        yhat = (s1 + slope * np.clip(z - t1, 0.0, t2 - t1)).mean(axis=1)
        grad_out = (yb - yhat)[:, None] * np.where((z > t1) & (z < t2), slope, 0.0)   # (B, N)
        w[...] = w + step * (grad_out.T @ xb / batch - lam * w)
