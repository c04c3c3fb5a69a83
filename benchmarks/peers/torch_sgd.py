"""PyTorch peer for benchmarks/bench_sgd.py, run in its own venv (torch is not an mfdyn dependency).

Online SGD on MMN isotropic exactly as docs/math.md §2, written as a PyTorch user would: autograd on the
per-sample square loss ½(y − ŷ)² of ŷ(x) = (1/N) Σ σ(<w_i, x>) with the ramp, and the mean-field
learning rate N·s per neuron (∂ŷ/∂w_i carries 1/N), s = εξ; weights on the CPU, float64.
Prints one JSON line: {"n": N, "steps": S, "seconds": T}.
Usage: python torch_sgd.py N STEPS [THREADS]
"""
import json
import sys
import time

import torch


def ramp(t: torch.Tensor) -> torch.Tensor:
    return -2.5 + 10.0 * torch.clamp(t - 0.5, 0.0, 1.0)


def main() -> None:
    n, steps = int(sys.argv[1]), int(sys.argv[2])
    if len(sys.argv) > 3:
        torch.set_num_threads(int(sys.argv[3]))
    d, delta, eps, xi = 40, 0.8, 1e-4, 1.0
    g = torch.Generator().manual_seed(0)
    w = (0.8 / d**0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)).requires_grad_(True)
    y = torch.where(torch.rand(steps, generator=g) < 0.5, 1.0, -1.0).double()
    x = (1.0 + delta * y)[:, None] * torch.randn(steps, d, generator=g, dtype=torch.float64)
    lr = 2.0 * eps * xi * n          # θ += 2s(y − ŷ)∇σ*: the loss ½(y − ŷ)² has gradient −(y − ŷ)∇σ*/N
    start = time.perf_counter()
    for k in range(steps):
        yhat = ramp(w @ x[k]).mean()
        loss = 0.5 * (y[k] - yhat) ** 2
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
            w.grad.zero_()
    print(json.dumps({"n": n, "steps": steps, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
