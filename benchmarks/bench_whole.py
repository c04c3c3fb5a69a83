"""Benchmark: whole commands on the shipped MMN config (issue 16), each a separate process, warm Numba cache.

Runs, alternating, REPEATS rounds of
  mfdyn run configs/mmn_isotropic.toml --engine particles   SGD, N = 800, d = 40, 10⁵ steps, 21 exact R_N, the file;
  benchmarks/peers/numpy_sgd.py                             the obvious NumPy loop of the same 10⁵ SGD steps (forward,
                                                            backward, update; one BLAS thread, its fastest setting
                                                            here: with two, a loaded 2-core machine doubles its time);
  mfdyn run configs/mmn_isotropic.toml                      both engines (bar: ≤ 1.5 s);
  mfdyn run configs/mmn_isotropic.toml --engine pde         the PDE alone;
  benchmarks/peers/numba_floor.py                           the floor: numpy, numba, scipy.special and h5py
                                                            imported and one cached Numba kernel called, no mfdyn;
and prints each median wall time, the load average before and after, the ratio NumPy loop / particle run
(bar: ≥ 10×) and what each mfdyn command costs above the floor. One warm-up run of each mfdyn command and of the
floor first fills Numba's cache.
Usage: python benchmarks/bench_whole.py [--repeats N]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "configs/mmn_isotropic.toml"


def mfdyn() -> list[str]:
    """`mfdyn` as the module the console script runs, from ROOT: the tree this script is in (an unpacked older
    commit's copy of this script measures that commit, the installed package notwithstanding)."""
    return [sys.executable, "-m", "validation.cli"]


def wall(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of one process (from ROOT, output discarded; a failure raises)."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=None if env is None else {**os.environ, **env})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        def run(*extra: str) -> list[str]:
            return [*mfdyn(), "run", CONFIG, *extra, "--out", str(Path(tmp) / "run.h5"), "--overwrite"]

        commands = {"mfdyn run --engine particles": (run("--engine", "particles"), None),
                    "NumPy loop (numpy_sgd.py)": ([sys.executable, str(ROOT / "benchmarks/peers/numpy_sgd.py")],
                                                  {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}),
                    "mfdyn run (both engines)": (run(), None),
                    "mfdyn run --engine pde": (run("--engine", "pde"), None),
                    "floor (numba_floor.py)": ([sys.executable, str(ROOT / "benchmarks/peers/numba_floor.py")], None)}
        for name, (argv, env) in commands.items():
            if not name.startswith("NumPy"):
                wall(argv, env)                                   # warms Numba's cache
        load_before = os.getloadavg()[0]
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, (argv, env) in commands.items():
                times[name].append(wall(argv, env))
        load_after = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, load average {load_before:.2f} before, {load_after:.2f} after; "
          f"median of {args.repeats} processes each, alternating")
    medians = {name: float(np.median(t)) for name, t in times.items()}
    for name, seconds in medians.items():
        spread = f"{min(times[name]):.2f}–{max(times[name]):.2f}"
        print(f"{name:<32} {seconds:6.2f} s   (range {spread} s)")
    floor = medians["floor (numba_floor.py)"]
    for name, seconds in medians.items():
        if name.startswith("mfdyn"):
            print(f"{name:<32} {seconds - floor:6.2f} s above the floor")
    ratio = medians["NumPy loop (numpy_sgd.py)"] / medians["mfdyn run --engine particles"]
    print(f"NumPy loop / particle run: {ratio:.1f}×  (bar ≥ 10×);  both engines: {medians['mfdyn run (both engines)']:.2f} s "
          f"(bar ≤ 1.5 s);  the floor alone: {floor:.2f} s")
    print(f"10× would need the particle run within {medians['NumPy loop (numpy_sgd.py)'] / 10:.2f} s of wall time, "
          f"{medians['NumPy loop (numpy_sgd.py)'] / 10 - floor:+.2f} s from the floor")


if __name__ == "__main__":
    main()
