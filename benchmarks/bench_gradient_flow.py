"""Benchmark: one drift evaluation of the N-particle gradient flow G (docs/math.md §8) for MMN isotropic.

G's drift is the exact population gradient ∇Ψ(w_i; ρ_N) (Problem.population_gradient), O(N²) pairs per
evaluation. mfdyn: mfdyn.pair_kernel.pair_gradient (Numba, Mehler for |c| ≤ 0.5, closed forms through the
bivariate normal above, on numba's threads). NumPy: the same formula vectorised over the (N, N) pair
matrices, pair_gradient_numpy (Mehler by Horner on whole matrices, quadrature for |c| > 0.5, BLAS for the
sums), plus the same potential term. Particles: ρ_0 of configs/mmn_isotropic.toml (its seed's draw),
at d = 40 and at d = 5 (where about a third of the pairs have |c| > 0.5). Prints the median seconds of
a few calls (mfdyn on all of numba's threads and on one), the ratios, and the two results' largest
difference; first the Numba compile time (0 with a warm cache).
Usage: python benchmarks/bench_gradient_flow.py [--repeats R]
"""
from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numba
import numpy as np
from timing import median_time

from mfdyn.builds import compile_timer
from mfdyn.config import load_config
from mfdyn.gaussian import npdf
from mfdyn.pair_kernel import MEHLER_MAX_COSINE, class_geometry, pair_gradient_numpy
from mfdyn.problems import make_problem
from mfdyn.problems.single_index import CLASSES
from particles.run import initial_particles

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mmn_isotropic.toml"
# (d, N, with the NumPy peer): at d = 5, N = 3200 the peer's quadrature takes minutes per call
CASES = ((40, 800, True), (40, 3200, True), (5, 800, True), (5, 3200, False))


def numpy_population_gradient(problem, theta: np.ndarray) -> np.ndarray:
    """population_gradient(theta) (α = 1, not centred) with the pair sums of the NumPy twin."""
    n = len(theta)
    scales = np.stack([problem.class_scale(y) for y in CLASSES])
    r = problem.ramp
    grad, _ = pair_gradient_numpy(theta, np.full(n, 1.0 / n), scales, np.full(2, 0.5), r.t1, r.t2, r.s1, r.s2)
    for y, scale in zip(CLASSES, scales):
        tau = np.linalg.norm(theta * scale, axis=1)
        grad -= 0.5 * y * ((r.slope / tau) * (npdf(r.t1 / tau) - npdf(r.t2 / tau)))[:, None] * scale**2 * theta
    return grad


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, numpy {np.__version__}, numba {numba.__version__} "
          f"({numba.get_num_threads()} threads); MMN isotropic, ρ_0 of {CONFIG.name}; one G drift evaluation")
    problem = make_problem(load_config(CONFIG))
    with compile_timer() as clock:
        problem.population_gradient(initial_particles(problem, 16, 0))
    print(f"Numba compile: {clock.seconds:.1f} s")
    threads = numba.get_num_threads()
    for d, n, with_peer in CASES:
        config = load_config(CONFIG, [f"problem.d={d}"])
        problem = make_problem(config)
        theta = initial_particles(problem, n, config.particles.seed)
        _, unit = class_geometry(theta, np.ones((1, d)))
        near = (np.count_nonzero(np.abs(unit[0] @ unit[0].T) > MEHLER_MAX_COSINE) - n) / (n * (n - 1))
        repeats = args.repeats if with_peer else max(1, args.repeats // 2)
        ours = median_time(lambda: problem.population_gradient(theta), repeats)
        line = f"d = {d:>2}, N = {n:>5} ({100 * near:4.1f}% of pairs |c| > 0.5): mfdyn {ours * 1e3:9.2f} ms"
        if with_peer:
            numba.set_num_threads(1)
            try:
                one = median_time(lambda: problem.population_gradient(theta), repeats)
            finally:
                numba.set_num_threads(threads)
            peer = median_time(lambda: numpy_population_gradient(problem, theta), max(1, repeats // 2))
            a, b = problem.population_gradient(theta), numpy_population_gradient(problem, theta)
            diff = np.abs(a - b).max() / np.abs(b).max()
            line += (f" ({one * 1e3:.2f} ms on 1 thread) | NumPy {peer * 1e3:9.2f} ms | mfdyn {peer / ours:5.1f}× "
                     f"faster ({peer / one:.1f}× on 1 thread) | max rel diff {diff:.1e}")
        print(line, flush=True)

if __name__ == "__main__":
    main()
