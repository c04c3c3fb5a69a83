"""∇_θ Ψ for the neurons σ*(x; θ) = a σ(w x + b) of scalar x, on an x-quadrature (docs/math.md §1, §8).

With a rule {x_k, q_k}, Ψ^α(θ; ν) = Σ_k q_k σ*(x_k; θ) (f_k − m_k/α), f_k = ∫σ*(x_k; ·)dν, so

    ∇_θ Ψ^α = Σ_k c_k ∇_θσ*(x_k; θ),   c_k = q_k (f_k − m_k/α),   ∇_θσ* = (σ(z), a σ'(z) x, a σ'(z)), z = w x + b.

The drifts of G (ν = ρ_N: f_k the particle network at the nodes) and of T (ν = ρ_t: f_k from the grid) are
both this sum, K·N activations per evaluation (G's f_k takes the same activations: they are computed once,
activations_at_nodes): the Numba kernels below, parallel over nodes or particles with each sum in one order
(the same numbers on any thread count), and their NumPy twins.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from mfdyn.activations import sigma, sigma_prime, sigma_prime_scalar, sigma_scalar


@njit(cache=True, inline="always")
def _activation_row(theta: np.ndarray, xk: float, code: int, t1: float, t2: float, s1: float, s2: float,
                    row: np.ndarray) -> None:
    dim = theta.shape[1]
    for i in range(theta.shape[0]):
        row[i] = sigma_scalar(code, theta[i, 1] * xk + (theta[i, 2] if dim == 3 else 0.0), t1, t2, s1, s2)


@njit(cache=True, parallel=True)
def activations_at_nodes(theta: np.ndarray, x: np.ndarray, code: int, t1: float, t2: float, s1: float, s2: float,
                         act: np.ndarray) -> None:
    """act_ki = σ(w_i x_k + b_i) (K, N) for θ (N, 2 or 3), x (K,): the activations both sums below take, computed
    once per drift evaluation (G needs them for the network's output and then for its gradient).

    Without a bias and for an odd σ (tanh, erf), a node mirrored by the node at the other end (x_{K−1−k} = −x_k,
    a symmetric rule) takes its row from it: w(−x) = −(wx) in floating point and libm's tanh and erf are odd to
    the bit, so act_{K−1−k} = −act_k exactly (its zeros +0), at half the cost on a symmetric x-law."""
    nodes = x.shape[0]
    odd = theta.shape[1] == 2 and (code == 1 or code == 2)
    for k in prange((nodes + 1) // 2):                  # one task: node k and its mirror m
        _activation_row(theta, x[k], code, t1, t2, s1, s2, act[k])
        m = nodes - 1 - k
        if m > k:
            if odd and x[m] == -x[k]:
                for i in range(theta.shape[0]):
                    act[m, i] = 0.0 - act[k, i]        # not −act: σ(w x + 0.0) is never σ(−0.0)
            else:
                _activation_row(theta, x[m], code, t1, t2, s1, s2, act[m])


@njit(cache=True, parallel=True)
def network_at_nodes(theta: np.ndarray, act: np.ndarray, out: np.ndarray) -> None:
    """out_k = (1/N) Σ_i a_i σ(w_i x_k + b_i) (K,) from the activations act (K, N): one node per task, sums in i
    order."""
    n = theta.shape[0]
    for k in prange(act.shape[0]):
        acc = 0.0
        for i in range(n):
            acc += theta[i, 0] * act[k, i]
        out[k] = acc / n


@njit(cache=True, parallel=True)
def neuron_field_gradient(theta: np.ndarray, x: np.ndarray, c: np.ndarray, act: np.ndarray, code: int, t1: float,
                          t2: float, s1: float, s2: float, out: np.ndarray) -> None:
    """out_i = Σ_k c_k ∇_θσ*(x_k; θ_i) (N, D) for θ (N, 2 or 3), nodes x (K,), coefficients c (K,) and the
    activations act (K, N) of activations_at_nodes (σ' is taken from them where the activation allows)."""
    n, dim = theta.shape
    for i in prange(n):
        a, w = theta[i, 0], theta[i, 1]
        b = theta[i, 2] if dim == 3 else 0.0
        ga, gw, gb = 0.0, 0.0, 0.0
        for k in range(x.shape[0]):
            z = w * x[k] + b
            s = act[k, i]
            slope = c[k] * a * sigma_prime_scalar(code, z, s, t1, t2, s1, s2)
            ga += c[k] * s
            gw += slope * x[k]
            gb += slope
        out[i, 0], out[i, 1] = ga, gw
        if dim == 3:
            out[i, 2] = gb


def activations_at_nodes_numpy(theta: np.ndarray, x: np.ndarray, name: str,
                               ramp: tuple[float, float, float, float]) -> np.ndarray:
    """NumPy twin of activations_at_nodes (activation by name), (K, N)."""
    return sigma(name, np.outer(x, theta[:, 1]) + (theta[:, 2] if theta.shape[1] == 3 else 0.0), ramp)


def network_at_nodes_numpy(theta: np.ndarray, x: np.ndarray, name: str, ramp: tuple[float, float, float, float]) -> np.ndarray:
    """NumPy twin of network_at_nodes (activation by name), (K,)."""
    b = theta[:, 2] if theta.shape[1] == 3 else 0.0
    return (theta[:, 0] * sigma(name, np.outer(x, theta[:, 1]) + b, ramp)).mean(axis=1)


def neuron_field_gradient_numpy(theta: np.ndarray, x: np.ndarray, c: np.ndarray, name: str,
                                ramp: tuple[float, float, float, float]) -> np.ndarray:
    """NumPy twin of neuron_field_gradient, (N, D)."""
    a, dim = theta[:, 0], theta.shape[1]
    z = np.outer(x, theta[:, 1]) + (theta[:, 2] if dim == 3 else 0.0)          # (K, N)
    act, slope = sigma(name, z, ramp), a * sigma_prime(name, z, ramp)
    rows = [c @ act, (c * x) @ slope, c @ slope][:dim]
    return np.stack(rows, axis=1)
