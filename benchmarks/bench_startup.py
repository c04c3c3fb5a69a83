"""Benchmark: start-up time of whole commands (issue 16, item 1).

Each command runs as its own process, median of REPEATS wall times:
  mfdyn --help, mfdyn run --help   the parser only (bar: < 0.3 s);
  tiny run                         mfdyn run configs/mmn_isotropic.toml --engine particles to t = 0.01, one
                                   snapshot after t = 0: start-up, numba's cache loads and the exact R_N
                                   dominate it (numba's cache warmed first);
  first step (particles, pde)      from launching `mfdyn run configs/mmn_isotropic.toml --engine E` to the
                                   engine's first step (the SGD kernel's, the PDE stepper's first call), read in
                                   the process (bar: 0.6 s);
and, as peers on the same machine at the same time, the interpreter floor `python -c pass`, `import numpy`,
and the libraries a particle run cannot do without (numba, scipy.special for Φ in the exact risk, h5py).
Prints each median and its ratio to the floor and to `import numpy`.
Usage: python benchmarks/bench_startup.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 5
TINY = ["--engine", "particles", "--set", "dynamics.t_end=0.01", "--set", "output.every=0.01"]


def mfdyn() -> list[str]:
    """The console script beside this interpreter, else the module it runs."""
    script = Path(sys.executable).with_name("mfdyn")
    return [str(script)] if script.exists() else [sys.executable, "-m", "validation.cli"]


def median_seconds(argv: list[str], repeats: int = REPEATS) -> float:
    """Median wall seconds of running argv as a process (from ROOT, output discarded; a failure raises)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# Runs `mfdyn run` in this interpreter after wrapping the engine's step so that its first call prints the clock
FIRST_STEP = """
import sys, time
import validation.cli
import particles.sgd, pde.steppers
def first(owner, name):
    inner = getattr(owner, name)
    def wrapped(*args, **kwargs):
        print(f"FIRST {time.time()!r}", file=sys.stderr, flush=True)
        setattr(owner, name, inner)
        return inner(*args, **kwargs)
    setattr(owner, name, wrapped)
first(particles.sgd, "sgd_steps_ramp")
first(pde.steppers.SSPRK3, "step")
validation.cli.main(sys.argv[1:])
"""


def first_step_seconds(argv: list[str], repeats: int = REPEATS) -> float:
    """Median seconds from launching `python -c FIRST_STEP argv` to the first engine step it reports."""
    times = []
    for _ in range(repeats):
        start = time.time()
        out = subprocess.run([sys.executable, "-c", FIRST_STEP, *argv], cwd=ROOT, check=True, capture_output=True,
                             text=True)
        stamp = next(line for line in out.stderr.splitlines() if line.startswith("FIRST "))
        times.append(float(stamp.split()[1]) - start)
    return float(np.median(times))


def main() -> None:
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; median of {REPEATS} processes each")
    peers = {"python -c pass": [sys.executable, "-c", "pass"],
             "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
             "import numba, scipy.special, h5py": [sys.executable, "-c", "import numba, scipy.special, h5py"]}
    floor = {name: median_seconds(argv) for name, argv in peers.items()}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tiny.h5"
        tiny = [*mfdyn(), "run", "configs/mmn_isotropic.toml", *TINY, "--out", str(out), "--overwrite"]
        subprocess.run(tiny, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)     # warms numba's cache
        ours = {"mfdyn --help": median_seconds([*mfdyn(), "--help"]),
                "mfdyn run --help": median_seconds([*mfdyn(), "run", "--help"]),
                "tiny run (particles, t_end 0.01)": median_seconds(tiny)}
        for engine in ("particles", "pde"):
            run = ["run", "configs/mmn_isotropic.toml", "--engine", engine, "--set", "dynamics.t_end=0.01",
                   "--set", "output.every=0.01", "--out", str(out), "--overwrite"]
            ours[f"first step ({engine})"] = first_step_seconds(run)
    for name, seconds in floor.items():
        print(f"{name:<36} {seconds:6.3f} s")
    base, numpy_ = floor["python -c pass"], floor["python -c 'import numpy'"]
    for name, seconds in ours.items():
        print(f"{name:<36} {seconds:6.3f} s   {seconds / base:5.1f}× python -c pass   "
              f"{seconds / numpy_:4.1f}× import numpy")


if __name__ == "__main__":
    main()
