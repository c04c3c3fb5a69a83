"""Online / mini-batch SGD steps (docs/math.md §2): for ŷ(x) = (1/N) Σ_i σ(<w_i, x>) with the ramp σ
(the MMN problems, §3.1–§3.2), and for ŷ(x) = (1/N) Σ_i a_i σ(w_i x + b_i) with scalar x (§3.3).

One step with samples (x_b, y_b), b = 1..B, s = εξ and the output scale α (docs/math.md §7; α = 1 is §2):

    w_i ← w_i + 2s [ (1/B) Σ_b (1/α)(y_b − αŷ(x_b)) σ'(<w_i, x_b>) x_b − λ w_i ] + sqrt(4s/β) g_i

with g_i ~ N(0, I). All neurons see the same ŷ computed from the weights before the step. The
noise comes in as an array `noise` of shape (steps, N, D) already scaled by sqrt(4s/β) (the run loop
draws it from a NumPy Generator; Numba's own normals cost 3× more); an empty array means β = ∞.
Every Numba kernel has a readable NumPy twin (`*_numpy`); all update the parameters in place, and
none depends on the thread count. The ramp kernel lets the compiler reassociate its sums (fastmath
reassoc), which vectorises the dot products <w_i, x>: still one fixed order per build. It works in
tasks of ROW_CHUNK rows with ŷ summed task by task, so its parallel build (used from
PARALLEL_MIN_ROWS neurons, where w no longer fits in one core's cache) gives the serial build's numbers.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from mfdyn.activations import ramp, ramp_prime, sigma, sigma_prime, sigma_prime_scalar, sigma_scalar
from mfdyn.builds import serial_and_parallel
from particles.networks import register_network

_RAMP_FASTMATH = {"reassoc", "contract"}


@njit(cache=True, fastmath=_RAMP_FASTMATH, inline="always")
def _dot_rows(w: np.ndarray, xk: np.ndarray, out: np.ndarray) -> None:
    """out_i = <w_i, xk> for every row, four rows per pass over xk (four independent sums, as a gemv)."""
    n, d = w.shape
    i = 0
    while i + 4 <= n:
        z0 = z1 = z2 = z3 = 0.0
        for a in range(d):
            xa = xk[a]
            z0 += w[i, a] * xa
            z1 += w[i + 1, a] * xa
            z2 += w[i + 2, a] * xa
            z3 += w[i + 3, a] * xa
        out[i], out[i + 1], out[i + 2], out[i + 3] = z0, z1, z2, z3
        i += 4
    while i < n:
        z = 0.0
        for a in range(d):
            z += w[i, a] * xk[a]
        out[i] = z
        i += 1


ROW_CHUNK = 2048             # rows per task; ŷ's partial sums are added task by task, in this fixed order
PARALLEL_MIN_ROWS = 1 << 14  # from here the second core pays: 1.6x at 2^14, 2.3x at 1e5 (bench_scaling.py)


def _sgd_steps_ramp(w: np.ndarray, x: np.ndarray, y: np.ndarray, batch: int, step: float, lam: float,
                    t1: float, t2: float, s1: float, s2: float, noise: np.ndarray, alpha: float = 1.0) -> None:
    """Run len(y) // batch steps on w (N, d) in place; x (S·B, d), y (S·B,); step = 2εξ; output scale α
    (the residual is y − αŷ and the gradient carries 1/α, docs/math.md §7).

    Rows are cut into tasks of ROW_CHUNK, and each step is one pass over the tasks. A task first
    finishes the previous step on its rows (decay, the gradient on the rows it listed as being on
    the ramp's slope, where σ' ≠ 0, and noise), then, while those rows are in its cache, computes
    <w_i, x_b> for this step, its partial sum of the ramp and its new list (built without a branch).
    Between passes, ŷ is the sum of the partial sums in task order. Each row sees the same operations
    in the same order whatever the thread count, so the serial and parallel builds agree bit for bit.
    """
    n, d = w.shape
    steps = len(y) // batch
    chunks = (n + ROW_CHUNK - 1) // ROW_CHUNK
    slope, width = (s2 - s1) / (t2 - t1), t2 - t1
    decay = 1.0 - step * lam
    pre = np.empty((batch, n))
    active = np.empty((batch, n), dtype=np.int64)     # per task, its sloped rows from lo to end[b, task]
    end = np.empty((batch, chunks), dtype=np.int64)
    partial = np.empty((batch, chunks))                # per task, Σ_i clip(<w_i, x_b> − t1, 0, t2 − t1)
    res = np.empty(batch)
    for s in range(steps + 1):                         # pass s: the end of step s − 1, the start of step s
        for task in prange(chunks):
            lo, hi = task * ROW_CHUNK, min(n, (task + 1) * ROW_CHUNK)
            if s > 0:
                if decay != 1.0:
                    for i in range(lo, hi):
                        for a in range(d):
                            w[i, a] *= decay
                for b in range(batch):
                    xk, g = x[(s - 1) * batch + b], res[b]
                    for j in range(lo, end[b, task]):
                        i = active[b, j]
                        for a in range(d):
                            w[i, a] += g * xk[a]
                if noise.shape[0] > 0:
                    for i in range(lo, hi):
                        for a in range(d):
                            w[i, a] += noise[s - 1, i, a]
            if s < steps:
                for b in range(batch):
                    _dot_rows(w[lo:hi], x[s * batch + b], pre[b, lo:hi])
                    acc, m = 0.0, lo
                    for i in range(lo, hi):
                        z = pre[b, i]
                        acc += min(max(z - t1, 0.0), width)
                        active[b, m] = i
                        m += (z > t1) & (z < t2)
                    partial[b, task], end[b, task] = acc, m
        if s < steps:
            for b in range(batch):
                acc = 0.0
                for task in range(chunks):
                    acc += partial[b, task]
                # ŷ = s1 + slope·acc/N; (y − αŷ)/α is y − ŷ bit for bit at α = 1
                res[b] = step * slope * ((y[s * batch + b] - alpha * (s1 + slope * acc / n)) / alpha) / batch


# nogil: the PDE engine runs in another thread meanwhile (validation.runner)
sgd_steps_ramp_serial, sgd_steps_ramp_parallel = serial_and_parallel(_sgd_steps_ramp, fastmath=_RAMP_FASTMATH, nogil=True)


def sgd_steps_ramp(w: np.ndarray, x: np.ndarray, y: np.ndarray, batch: int, step: float, lam: float,
                   t1: float, t2: float, s1: float, s2: float, noise: np.ndarray, alpha: float = 1.0) -> None:
    """The ramp SGD kernel: the parallel build from PARALLEL_MIN_ROWS neurons on, the serial one below."""
    kernel = sgd_steps_ramp_parallel if w.shape[0] >= PARALLEL_MIN_ROWS else sgd_steps_ramp_serial
    kernel(w, x, y, batch, step, lam, t1, t2, s1, s2, noise, alpha)


@register_network("single_index_ramp")
def ramp_stepper(problem, theta: np.ndarray, batch: int, step: float, lam: float, alpha: float):
    """σ(<w, x>) with the problem's ramp (the MMN problems): sgd_steps_ramp with its kinks and levels."""
    r = problem.ramp
    return lambda x, y, steps, noise: sgd_steps_ramp(theta, x, y, batch, step, lam, r.t1, r.t2, r.s1, r.s2, noise,
                                                     alpha)


def sgd_steps_ramp_numpy(w: np.ndarray, x: np.ndarray, y: np.ndarray, batch: int, step: float, lam: float,
                         t1: float, t2: float, s1: float, s2: float, noise: np.ndarray, alpha: float = 1.0) -> None:
    """NumPy twin of sgd_steps_ramp: the update of docs/math.md §2 written as array expressions."""
    for s in range(len(y) // batch):
        xb, yb = x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch]
        z = xb @ w.T                                                     # (B, N)
        yhat = ramp(z, t1, t2, s1, s2).mean(axis=1)
        grad_out = ((yb - alpha * yhat) / alpha)[:, None] * ramp_prime(z, t1, t2, s1, s2)   # (B, N)
        w[...] = w + step * (grad_out.T @ xb / batch - lam * w)
        if len(noise):
            w += noise[s]


@njit(cache=True, nogil=True)
def sgd_steps_neuron(theta: np.ndarray, x: np.ndarray, y: np.ndarray, batch: int, step: float, lam: float,
                     code: int, t1: float, t2: float, s1: float, s2: float, noise: np.ndarray,
                     alpha: float = 1.0) -> None:
    """Steps for ŷ(x) = (1/N) Σ a_i σ(w_i x + b_i), scalar x; θ (N, 2) = (a, w) or (N, 3) = (a, w, b).

    ∇_θ σ* = (σ(z), a σ'(z) x, a σ'(z)) at z = w x + b (docs/math.md §2, §3.3); x (S·B,), y (S·B,).
    """
    n, dim = theta.shape
    pre = np.empty((batch, n))
    act = np.empty((batch, n))           # σ(z), kept for the update: one transcendental per neuron and sample
    res = np.empty(batch)
    decay = 1.0 - step * lam
    for s in range(len(y) // batch):
        for b in range(batch):
            k = s * batch + b
            yhat = 0.0
            for i in range(n):
                z = theta[i, 1] * x[k] + (theta[i, 2] if dim == 3 else 0.0)
                pre[b, i] = z
                act[b, i] = sigma_scalar(code, z, t1, t2, s1, s2)
                yhat += theta[i, 0] * act[b, i]
            res[b] = step * ((y[k] - alpha * (yhat / n)) / alpha) / batch      # y − ŷ bit for bit at α = 1
        for i in range(n):
            a = theta[i, 0]
            ga, gw, gb = 0.0, 0.0, 0.0
            for b in range(batch):
                z = pre[b, i]
                ds = a * sigma_prime_scalar(code, z, act[b, i], t1, t2, s1, s2) * res[b]
                ga += res[b] * act[b, i]
                gw += ds * x[s * batch + b]
                gb += ds
            theta[i, 0] = a * decay + ga
            theta[i, 1] = theta[i, 1] * decay + gw
            if dim == 3:
                theta[i, 2] = theta[i, 2] * decay + gb
            if noise.shape[0] > 0:
                for a_ in range(dim):
                    theta[i, a_] += noise[s, i, a_]


@register_network("neuron")
def neuron_stepper(problem, theta: np.ndarray, batch: int, step: float, lam: float, alpha: float):
    """a σ(w x + b) with the problem's activation code (teacher–student): sgd_steps_neuron."""
    return lambda x, y, steps, noise: sgd_steps_neuron(theta, x, y, batch, step, lam, problem.code, *problem.ramp,
                                                       noise, alpha)


def sgd_steps_neuron_numpy(theta: np.ndarray, x: np.ndarray, y: np.ndarray, batch: int, step: float, lam: float,
                           name: str, ramp: tuple[float, float, float, float], noise: np.ndarray,
                           alpha: float = 1.0) -> None:
    """NumPy twin of sgd_steps_neuron (activation by name)."""
    dim = theta.shape[1]
    for s in range(len(y) // batch):
        xb, yb = x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch]
        a = theta[:, 0]
        z = np.outer(xb, theta[:, 1]) + (theta[:, 2] if dim == 3 else 0.0)          # (B, N)
        act, dact = sigma(name, z, ramp), sigma_prime(name, z, ramp)
        res = ((yb - alpha * (a * act).mean(axis=1)) / alpha) / batch                # (B,)
        grad = [res @ act, res @ (a * dact * xb[:, None]), res @ (a * dact)][:dim]
        theta[...] = theta + step * (np.stack(grad, axis=1) - lam * theta)
        if len(noise):
            theta += noise[s]
