"""Benchmark: how cost grows with N and with the grid, and the kernels' memory bandwidth (issue 7).

0. The cost of starting one parallel region (numba's OpenMP threads), by libgomp wait policy: it sets
   how much work a kernel needs before its parallel build pays.
1. SGD (MMN isotropic, d = 40, online): time per step for N = 10³ … 10⁶, per step per neuron, and the
   rate at which w is read, for the serial build and as a run uses it (threads from PARALLEL_MIN_ROWS).
2. Grid (2-D teacher–student with 128 nodes compressed as in a run; 3-D OU): time of one explicit
   right-hand side (Ψ + fluxes) for 64² … 512² and 64³, and per cell.
3. Bandwidth: bytes a kernel must move (read + write of its arrays) over its time, against a plain copy
   of an array of the same size (the peer, in this process).
Usage: python benchmarks/bench_scaling.py
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from timing import median_time

from mfdyn.config import InitConfig, load_config
from mfdyn.problems import make_problem
from mfdyn.problems.mmn_isotropic import MMNIsotropic, MMNIsotropicParams
from particles.sgd import PARALLEL_MIN_ROWS, sgd_steps_ramp, sgd_steps_ramp_serial
from pde import Grid, PotentialOperator
from pde.potential import expand_kernel, moments_kernel
from pde.scharfetter_gummel import axis_sg_apply, axis_sg_apply_parallel
from pde.upwind import axis_flux_divergence, axis_flux_divergence_parallel, flux_divergence


def sgd_table() -> None:
    problem = MMNIsotropic(MMNIsotropicParams(), InitConfig())
    rng = np.random.default_rng(0)
    r = problem.ramp
    print(f"SGD, MMN isotropic d = 40, online; w (N × 40) is read once per step; both cores from N = {PARALLEL_MIN_ROWS}")
    print("         N   serial µs/step  ns/neuron  GB/s of w  |  as run µs/step  ns/neuron  GB/s of w")
    for n in (1_000, 10_000, 100_000, 1_000_000):
        steps = max(20, 2_000_000 // n)
        w = problem.sample_initial(n, rng)
        x, y = problem.sample_data(steps, rng)
        args = (x, y, 1, 2e-4, 0.0, r.t1, r.t2, r.s1, r.s2, np.empty((0, 1, 1)))
        line = f"{n:>10}"
        for kernel in (sgd_steps_ramp_serial, sgd_steps_ramp):
            per_step = median_time(lambda: kernel(w, *args), 3) / steps
            line += f"   {per_step * 1e6:12.1f}  {per_step / n * 1e9:9.2f}  {w.nbytes / per_step / 1e9:9.1f}  |"
        print(line.rstrip("|"))


LAUNCH = """
import time, numpy as np
from numba import njit, prange
@njit(parallel=True)
def regions(a, reps):
    for r in range(reps):
        for c in prange(a.shape[0]):
            a[c] += 1.0
a = np.zeros(8)
regions(a, 10)
start = time.perf_counter()
regions(a, 200)
print((time.perf_counter() - start) / 200)
"""


def thread_launch() -> None:
    """The cost of one empty parallel region of numba's OpenMP layer, with libgomp's default wait policy
    (spin, then sleep) and with OMP_WAIT_POLICY=PASSIVE (each in a fresh process: libgomp reads it on
    load), on an idle machine and while another process keeps one core busy."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    for busy in (False, True):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            costs = {}
            for label, extra in (("libgomp default", {}), ("OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"})):
                out = subprocess.run([sys.executable, "-c", LAUNCH], env=env | extra, capture_output=True, text=True,
                                     check=True)
                costs[label] = float(out.stdout)
        finally:
            if spinner is not None:
                spinner.kill()
        print(f"one parallel region (empty prange), {'another process busy on one core' if busy else 'machine idle'}: "
              + ", ".join(f"{k} {v * 1e6:.1f} µs" for k, v in costs.items()))


def grid_table() -> None:
    ts = make_problem(load_config('[problem]\nname = "teacher_student"\n[dynamics]\nt_end = 1.0\n', from_text=True))
    ou = make_problem(load_config('[problem]\nname = "ornstein_uhlenbeck"\nstiffness = [1.0, 0.5, 0.7]\n'
                                  '[dynamics]\nt_end = 1.0\n', from_text=True))
    print("grid, one right-hand side (Ψ + upwind fluxes):   cells   ms   ns/cell")
    for problem, shape in ((ts, (64, 64)), (ts, (128, 128)), (ts, (256, 256)), (ts, (512, 512)), (ou, (64, 64, 64))):
        grid = Grid(((-3.0, 3.0),) * len(shape), shape, problem.coords)
        op = PotentialOperator(problem.grid_model(grid.centres), grid)
        rho = problem.initial_cell_averages(grid.edges)
        out = np.empty(grid.shape)
        seconds = median_time(lambda: flux_divergence(rho, op.psi(rho), grid.widths, out), 15)
        cells = rho.size
        print(f"{'×'.join(map(str, shape)):>46}  {seconds * 1e3:7.2f}  {seconds / cells * 1e9:7.1f}"
              f"   ({f'K = {op.phi.shape[0]} features after compression' if op.phi.shape[0] else 'no interaction'})")


def bandwidth() -> None:
    print("bandwidth (GB/s, bytes that must move / time) against np.copyto of the same bytes:")
    rng = np.random.default_rng(1)
    rho, zeta = rng.random((1, 2048, 2048)), rng.standard_normal((1, 2048, 2048))
    out = np.zeros_like(rho)
    src, dst = rng.random(rho.size * 3), np.empty(rho.size * 3)           # read 2 arrays + read/write 1
    copy = median_time(lambda: np.copyto(dst, src), 5)
    print(f"  copy (one thread, read + write): {2 * src.nbytes / copy / 1e9:6.1f} GB/s")
    moved = 4 * rho.nbytes                                                # rho, zeta, out read, out write
    # A 2-D solve sweeps both axes: the middle one (Q = 2048) and the last (Q = 1). The serial build
    # is the like-for-like peer of the one-thread copy; the parallel one is what large grids use.
    for label, shape3 in (("middle axis", (1, 2048, 2048)), ("last axis", (2048, 2048, 1))):
        r, z, o = rho.reshape(shape3), zeta.reshape(shape3), out.reshape(shape3)
        serial = median_time(lambda: axis_flux_divergence(r, z, 0.1, o), 5)
        parallel = median_time(lambda: axis_flux_divergence_parallel(r, z, 0.1, o), 5)
        print(f"  upwind flux kernel, 2048² cells, {label:<11}: serial {moved / serial / 1e9:6.1f} GB/s,"
              f" parallel {moved / parallel / 1e9:6.1f} GB/s   (ρ, ζ read, out read + write)")
    faces, flat = rng.random((2, 2048, 2047)), rho.reshape(2048, 2048)
    moved = 3 * rho.nbytes + faces.nbytes
    serial = median_time(lambda: axis_sg_apply(flat, faces[0], faces[1], 1, out.reshape(2048, 2048)), 5)
    parallel = median_time(lambda: axis_sg_apply_parallel(flat, faces[0], faces[1], 1, out.reshape(2048, 2048)), 5)
    print(f"  SG apply kernel, 2048² cells, last axis  : serial {moved / serial / 1e9:6.1f} GB/s,"
          f" parallel {moved / parallel / 1e9:6.1f} GB/s   (ρ, two face weights read, out read + write)")
    phi, vec, g = rng.standard_normal((128, 65536)), rng.random(65536), rng.standard_normal(128)
    f, psi = np.empty(128), np.empty(65536)
    src2, dst2 = rng.random(phi.size), np.empty(phi.size)
    copy2 = median_time(lambda: np.copyto(dst2, src2), 5)
    mom = median_time(lambda: moments_kernel(phi, vec, 1.0, f), 5)
    exp = median_time(lambda: expand_kernel(phi, g, vec, psi), 5)
    print(f"  Ψ moments (128 × 65536): {phi.nbytes / mom / 1e9:6.1f} GB/s, expansion: {phi.nbytes / exp / 1e9:6.1f} GB/s"
          f"   copy (read + write): {2 * src2.nbytes / copy2 / 1e9:6.1f} GB/s, read-only share: {src2.nbytes / copy2 / 1e9:6.1f}")


if __name__ == "__main__":
    thread_launch()
    sgd_table()
    grid_table()
    bandwidth()
