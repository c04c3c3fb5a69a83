"""Benchmark: the SGD engine against the obvious vectorised NumPy implementation and PyTorch (issue 7).

MMN isotropic, d = 40, online SGD (batch 1, noiseless), the same pre-drawn data for mfdyn and NumPy.
mfdyn: particles.sgd.sgd_steps_ramp (Numba). NumPy: its twin sgd_steps_ramp_numpy, one vectorised
step at a time, as a researcher would write it. PyTorch: benchmarks/peers/torch_sgd.py (autograd,
mean-field learning rate), run with --torch-python in its own venv. Prints seconds per step and ratios.
Usage: python benchmarks/bench_sgd.py [--torch-python PATH]
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from mfdyn.config import InitConfig
from mfdyn.problems.mmn_isotropic import MMNIsotropic, MMNIsotropicParams
from particles.sgd import sgd_steps_ramp, sgd_steps_ramp_numpy

NO_NOISE = np.empty((0, 1, 1))
# (N, steps for mfdyn, steps for the peers): fewer peer steps where they are slow; times are per step
CASES = ((800, 100_000, 10_000), (10_000, 5_000, 1_000), (100_000, 500, 100))


def per_step(kernel, n: int, steps: int, problem: MMNIsotropic) -> float:
    rng = np.random.default_rng(1)
    w = problem.sample_initial(n, rng)
    x, y = problem.sample_data(steps, rng)
    r = problem.ramp
    kernel(w.copy(), x[:2], y[:2], 1, 2e-4, 0.0, r.t1, r.t2, r.s1, r.s2, NO_NOISE)       # compile / warm up
    start = time.perf_counter()
    kernel(w, x, y, 1, 2e-4, 0.0, r.t1, r.t2, r.s1, r.s2, NO_NOISE)
    return (time.perf_counter() - start) / steps


def torch_per_step(python: str, n: int, steps: int) -> float:
    script = Path(__file__).with_name("peers") / "torch_sgd.py"
    out = subprocess.run([python, str(script), str(n), str(steps)], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"] / result["steps"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--torch-python", help="python of a venv with torch (CPU build)")
    args = parser.parse_args()
    problem = MMNIsotropic(MMNIsotropicParams(), InitConfig())
    print(f"machine: {platform.machine()}, numpy {np.__version__}; MMN isotropic d = 40, online SGD")
    for n, steps, peer_steps in CASES:
        ours = per_step(sgd_steps_ramp, n, steps, problem)
        numpy_time = per_step(sgd_steps_ramp_numpy, n, peer_steps, problem)
        line = (f"N = {n:>6}: mfdyn {ours * 1e6:9.2f} µs/step | NumPy {numpy_time * 1e6:9.2f} µs/step "
                f"(mfdyn {numpy_time / ours:5.1f}× faster)")
        if args.torch_python:
            torch_time = torch_per_step(args.torch_python, n, peer_steps)
            line += f" | PyTorch {torch_time * 1e6:9.2f} µs/step (mfdyn {torch_time / ours:5.1f}× faster)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
