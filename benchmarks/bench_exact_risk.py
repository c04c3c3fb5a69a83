"""Time SingleIndexRamp.exact_risk (pair_kernel.pair_energy) against the previous implementations in this process.

The quadrature R_N (Mehler over i < j serially, gaussian.pair_expectation_quadrature for |c| > 0.5) is rebuilt
here from mfdyn.gaussian's pieces, for the ratio only (to N = 800). The accuracy column compares pair_energy,
whose Mehler series are cut by a bound on their tails, with the energy of pair_gradient (48 terms for
|c| ≤ 0.5, closed forms above, nothing cut), which is what pair_energy computed before the cut.
Then the clouds a run meets: configs/mmn_isotropic.toml's SGD (N = 800) at d = 5 and 40, R_N at t = 0 and t = 10
(min of 5): the radii spread as the run goes, and at d = 5 that sends more pairs to the slow branches.
Usage: python benchmarks/bench_exact_risk.py
"""
from __future__ import annotations

import time
from pathlib import Path

import numba
import numpy as np

from mfdyn.config import InitConfig, load_config
from mfdyn.gaussian import (
    MEHLER_MAX_COSINE,
    MEHLER_TERMS,
    hermite_coefficients,
    mehler_offdiagonal_sum,
    pair_expectation_quadrature,
    q,
    ramp_second_moment,
)
from mfdyn.pair_kernel import pair_energy, pair_gradient
from mfdyn.problems import make_problem
from mfdyn.problems.mmn_isotropic import MMNIsotropic, MMNIsotropicParams
from mfdyn.problems.single_index import CLASSES

CASES = ((5, 800), (40, 800), (40, 12800))
SHIPPED = Path(__file__).resolve().parent.parent / "configs" / "mmn_isotropic.toml"
OLD_UP_TO = 800               # the quadrature R_N takes minutes beyond this at d = 5


def previous_risk(problem: MMNIsotropic, theta: np.ndarray) -> float:
    """R_N as exact_risk computed it before pair_energy (α = 1, not centred)."""
    n, total = len(theta), 1.0
    for y in CLASSES:
        scaled = theta * problem.class_scale(y)
        tau = np.linalg.norm(scaled, axis=1)
        unit = scaled / np.where(tau > 0, tau, 1.0)[:, None]
        cos = np.ascontiguousarray(np.clip(unit @ unit.T, -1.0, 1.0))
        h = np.ascontiguousarray(hermite_coefficients(problem.ramp, tau, MEHLER_TERMS))
        i, j = np.nonzero(np.triu(np.abs(cos) > MEHLER_MAX_COSINE, k=1))
        near = pair_expectation_quadrature(problem.ramp, tau[i], tau[j], cos[i, j]).sum() if i.size else 0.0
        pairs = mehler_offdiagonal_sum(h, cos, MEHLER_MAX_COSINE) + near
        gram = (2.0 * pairs + ramp_second_moment(problem.ramp, tau).sum()) / n**2
        total += 0.5 * (-2.0 * y * q(problem.ramp, tau).mean() + gram)
    return float(total)


def best_of(f, repeats: int) -> tuple[float, float]:
    """(min seconds over repeats, value)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = f()
        times.append(time.perf_counter() - start)
    return min(times), value


def untruncated_energy(problem: MMNIsotropic, theta: np.ndarray) -> float:
    """Σ_ij ω_i ω_j U_ij with ω = 1/N from pair_gradient's energy (no series cut by a bound)."""
    r, n = problem.ramp, len(theta)
    scales = np.stack([problem.class_scale(y) for y in CLASSES])
    return pair_gradient(theta, np.full(n, 1.0 / n), scales, np.full(2, 0.5), r.t1, r.t2, r.s1, r.s2, energy=True)[1]


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"threads {numba.get_num_threads()}")
    print(f"{'d':>4} {'N':>6} {'new ms':>9} {'old ms':>9} {'ratio':>7} {'|ΔR| old':>9} {'|ΔE| uncut':>10}")
    for d, n in CASES:
        problem = MMNIsotropic(MMNIsotropicParams(d=d), InitConfig())
        theta = problem.sample_initial(n, rng)
        problem.exact_risk(theta[:50])                                       # compile
        new, r_new = best_of(lambda: problem.exact_risk(theta), 15 if n <= 800 else 3)
        r, w = problem.ramp, np.full(n, 1.0 / n)
        scales = np.stack([problem.class_scale(y) for y in CLASSES])
        cut = abs(pair_energy(theta, w, scales, np.full(2, 0.5), r.t1, r.t2, r.s1, r.s2) - untruncated_energy(problem, theta))
        if n <= OLD_UP_TO:
            previous_risk(problem, theta[:50])
            old, r_old = best_of(lambda: previous_risk(problem, theta), 1)
            print(f"{d:4d} {n:6d} {1e3 * new:9.2f} {1e3 * old:9.1f} {old / new:7.1f} {abs(r_new - r_old):9.1e} {cut:10.1e}")
        else:
            print(f"{d:4d} {n:6d} {1e3 * new:9.2f} {'-':>9} {'-':>7} {'-':>9} {cut:10.1e}")


def shipped_clouds() -> None:
    """R_N of the shipped run's own clouds, at its first and last save."""
    import mfdyn

    print(f"\n{'d':>4} {'N':>6} {'t':>5} {'ms':>9}   (configs/mmn_isotropic.toml's SGD)")
    for d in (5, 40):
        config = load_config(SHIPPED, [f"problem.d={d}", "output.particle_risk=false", "output.every=10.0"])
        with mfdyn.run(config, engine="particles", progress=False) as run:
            group = run.group("particles")
            times, clouds = group["time"].values, group["theta"].values
        problem = make_problem(config)
        for t, theta in zip(times, clouds):
            problem.exact_risk(theta)
            print(f"{d:4d} {len(theta):6d} {t:5.1f} {1e3 * best_of(lambda: problem.exact_risk(theta), 5)[0]:9.2f}")


if __name__ == "__main__":
    main()
    shipped_clouds()
