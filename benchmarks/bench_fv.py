"""Benchmark: the finite-volume solver against py-pde on the 2-D Ornstein–Uhlenbeck Fokker–Planck problem
(docs/math.md §6), time to L1 error ≤ 1e−3 at t = 1 (issue 7).

∂_t ρ = 2ξ[∇·(ρ Kθ) + β⁻¹Δρ] with ξ = ½, K = diag(1, 0.5), β = 10, ρ_0 = N((0.3, −0.2), 0.16 I), on
[−2.6, 2.6]²; the exact solution is Gaussian. mfdyn: Scharfetter–Gummel fluxes, SSP-RK3, on the
coarsest grid (of CELLS) whose cell averages are within 1e−3 in L1 of the exact ones. py-pde
(benchmarks/peers/pypde_ou.py, in its own venv: `pip install py-pde`) with its best setting found
by the same rule. Warm solve times (median of 3), and whole commands in a subprocess (mfdyn's numba
cache warm; py-pde compiles its expression PDE every process).
Usage: python benchmarks/bench_fv.py --pypde-python PATH [--pypde-cells 240 --pypde-dt 1e-3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from timing import median_time, wall_time

from mfdyn.config import load_config
from mfdyn.grid import build_grid
from mfdyn.problems import make_problem
from pde import PotentialOperator, solve

CONFIG = """
[problem]
name = "ornstein_uhlenbeck"
stiffness = [1.0, 0.5]
[init]
kappa = 0.4
mean = [0.3, -0.2]
[dynamics]
xi = 0.5
beta = 10.0
t_end = 1.0
[pde]
cells = {cells}
bounds = [[-2.6, 2.6], [-2.6, 2.6]]
[particles]
eps = 0.001
[output]
every = 1.0
"""
CELLS = (64, 80, 96, 112, 120, 128)
TARGET = 1e-3


def mfdyn_solve(cells: int) -> tuple[float, float]:
    """(L1 error at t = 1, warm solve seconds, median of 3)."""
    config = load_config(CONFIG.format(cells=cells), from_text=True)
    problem = make_problem(config)
    grid = build_grid(problem, config)
    op = PotentialOperator(problem.grid_model(grid.centres), grid, beta=config.dynamics.beta)
    rho0 = problem.initial_cell_averages(grid.edges)
    exact = problem.exact_cell_averages(grid.edges, 1.0, 0.5, 0.0, config.dynamics.beta)
    final = {}

    def run() -> None:
        final["rho"] = list(solve(op, rho0, [1.0], 0.5))[-1].rho

    seconds = median_time(run, 3)
    return float(np.abs(final["rho"] - exact).sum() * grid.cell_volume), seconds


def whole(command: list[str], **options) -> float:
    """Wall seconds of one run of command in a subprocess (start-up and compilation included)."""
    return wall_time(lambda: subprocess.run(command, check=True, capture_output=True, **options))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pypde-python", required=True)
    parser.add_argument("--pypde-cells", default="240")
    parser.add_argument("--pypde-dt", default="1e-3")            # py-pde's best setting under 1e−3 (RESULTS.md)
    args = parser.parse_args()
    for cells in CELLS:
        error, seconds = mfdyn_solve(cells)
        print(f"mfdyn {cells}²: L1 {error:.2e}, warm solve {seconds:.3f} s")
        if error <= TARGET:
            break
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "ou.toml"
        config.write_text(CONFIG.format(cells=cells))
        command = [sys.executable, "-m", "validation.cli", "run", str(config), "--engine", "pde", "--out"]
        cold_env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "cold-cache"))
        ours_cold = whole(command + [str(Path(tmp) / "cold.h5")], env=cold_env)
        with h5py.File(Path(tmp) / "cold.h5", "r") as f:
            cold_compile = float(f.attrs["compile_seconds"])
        whole(command + [str(Path(tmp) / "w.h5")])
        ours_whole = whole(command + [str(Path(tmp) / "r.h5")])
    peer = Path(__file__).with_name("peers") / "pypde_ou.py"
    start = time.perf_counter()
    out = subprocess.run([args.pypde_python, str(peer), args.pypde_cells, "euler", args.pypde_dt],
                         capture_output=True, text=True, check=True)
    peer_total = time.perf_counter() - start
    result = json.loads(out.stdout.strip().splitlines()[-1])
    peer_whole = result["script_seconds_to_first_result"] + (peer_total - result["script_seconds_to_first_result"]
                                                              - result["warm_seconds"])
    print(f"py-pde {args.pypde_cells}², Euler dt {args.pypde_dt}: L1 {result['l1']:.2e}, warm solve "
          f"{result['warm_seconds']:.3f} s, whole script {peer_whole:.1f} s")
    print(f"solve: mfdyn {result['warm_seconds'] / seconds:.1f}× faster (bar 10×); whole command: mfdyn "
          f"{ours_whole:.2f} s, {peer_whole / ours_whole:.1f}× faster (bar 5×)")
    print(f"mfdyn whole command with a cold numba cache: {ours_cold:.1f} s, of which {cold_compile:.1f} s compiling "
          f"({peer_whole / ours_cold:.1f}× faster than py-pde's whole script)")


if __name__ == "__main__":
    main()
