"""NumPy peer for benchmarks/bench_whole.py: the obvious NumPy loop of configs/mmn_isotropic.toml's SGD, a whole process.

Online SGD (batch 1, noiseless) on MMN isotropic as docs/math.md §2, written as a researcher would with NumPy alone:
per step the forward pass z = W x and ŷ = mean σ(z), the backward pass (y − ŷ) σ'(z), and the update
W += 2εξ (y − ŷ) σ'(z) xᵀ, for N = 800 neurons in d = 40 and t_end/ε = 10⁵ steps. The data are drawn up front
(y = ±1, x | y ~ N(0, (1 + yΔ)² I_d)), W(0) ~ N(0, κ²/d). Imports numpy only.
Prints one JSON line: {"n": N, "d": d, "steps": S, "seconds": T} (T: the loop, the process's other costs excluded).
Usage: python numpy_sgd.py [N] [STEPS]
"""
import json
import sys
import time

import numpy as np

D, DELTA, KAPPA, EPS, XI = 40, 0.8, 0.8, 1e-4, 1.0
T1, T2, S1, S2 = 0.5, 1.5, -2.5, 7.5


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 800
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    rng = np.random.default_rng(0)
    w = KAPPA / np.sqrt(D) * rng.standard_normal((n, D))
    y = rng.choice([-1.0, 1.0], size=steps)
    x = (1.0 + DELTA * y)[:, None] * rng.standard_normal((steps, D))
    slope, lr = (S2 - S1) / (T2 - T1), 2.0 * EPS * XI
    start = time.perf_counter()
    for k in range(steps):
        z = w @ x[k]                                                   # forward
        yhat = np.mean(S1 + slope * np.clip(z - T1, 0.0, T2 - T1))
        grad = (y[k] - yhat) * np.where((z > T1) & (z < T2), slope, 0.0)  # backward
        w += lr * np.outer(grad, x[k])                                 # update
    seconds = time.perf_counter() - start
    print(json.dumps({"n": n, "d": D, "steps": steps, "seconds": seconds}))


if __name__ == "__main__":
    main()
