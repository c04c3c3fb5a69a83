"""Benchmark: would running several seeds in one SGD kernel raise a sweep's throughput? (issue 7, item 5)

The members of configs/n_scaling.toml (teacher–student 2-D, ε = 2.5e−4, t ≤ 2: 8000 steps,
N = 100 … 12800), one seed each, on one thread as a sweep worker runs them. Per N:
  sgd       the SGD engine alone (particles.run_sgd: data, kernel, snapshots);
  member    the member as the sweep runs it (validation.runner.execute, engine "particles": plus the
            exact R_N at every snapshot and the HDF5 file);
  analysis  its comparison against the PDE (validation.sweep.member_gaps: observables, sliced W1);
  stacked   the most that putting S = 8 seeds into one kernel could give: the time of 8 kernel calls
            on N neurons over the member's data, over that of one call on 8N neurons. A stacked
            kernel does at least the work of the latter (plus one ŷ per seed), so this ratio bounds
            its gain in the kernel; the sgd/member share bounds what that gain is worth to the sweep.
Usage: python benchmarks/bench_sweep.py
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numba
import numpy as np
from timing import median_time, wall_time

from mfdyn.config import load_config
from mfdyn.problems import make_problem
from particles import run_sgd
from particles.sgd import sgd_steps_neuron
from validation.runner import execute
from validation.sweep import load_sweep, member_gaps

SWEEP = Path(__file__).resolve().parent.parent / "configs" / "n_scaling.toml"
SEEDS = 8


def stacking_bound(problem, n: int, steps: int) -> float:
    """Time of SEEDS kernel calls on n neurons over that of one call on SEEDS·n neurons (same steps)."""
    rng = np.random.default_rng(0)
    x, y = problem.sample_data(steps, rng)
    no_noise = np.empty((0, 1, 1))

    def kernel(theta):
        sgd_steps_neuron(theta, x, y, 1, 5e-4, 0.0, problem.code, *problem.ramp, no_noise)

    small = [np.ascontiguousarray(problem.sample_initial(n, rng)) for _ in range(SEEDS)]
    big = np.ascontiguousarray(np.concatenate(small))
    separate = median_time(lambda: [kernel(theta.copy()) for theta in small], 3)
    together = median_time(lambda: kernel(big.copy()), 3)
    return separate / together


def main() -> None:
    numba.set_num_threads(1)                          # a sweep worker's setting
    sweep = load_sweep(SWEEP)
    members = [m.overrides for m in sweep.members if "particles.seed=0" in m.overrides]
    print(f"{sweep.name}: {len(sweep.members)} members; one seed per N below, one thread")
    print("     N   sgd (s)   member (s)   analysis (s)   sgd share of member+analysis   8 seeds stacked: kernel gain ≤")
    with tempfile.TemporaryDirectory() as tmp:
        pde_file = Path(tmp) / "pde.h5"
        execute(load_config(sweep.base_toml, members[0], from_text=True), pde_file, "pde").close()
        total = {"sgd": 0.0, "member": 0.0, "analysis": 0.0}
        for k, overrides in enumerate(members):
            config = load_config(sweep.base_toml, overrides, from_text=True)
            problem = make_problem(config)
            p, dyn = config.particles, config.dynamics
            times = config.save_times()
            if k == 0:                                # compile and warm every kernel once
                list(run_sgd(problem, p.n, p.eps, dyn.xi, dyn.lam, p.batch, p.seed, times))
                execute(config, Path(tmp) / "warm.h5", "particles").close()
                member_gaps(Path(tmp) / "warm.h5", pde_file)
            sgd = wall_time(lambda: list(run_sgd(problem, p.n, p.eps, dyn.xi, dyn.lam, p.batch, p.seed, times)))
            run_file = Path(tmp) / f"run-{k}.h5"
            member = wall_time(lambda: execute(config, run_file, "particles").close())
            analysis = wall_time(lambda: member_gaps(run_file, pde_file))
            bound = stacking_bound(problem, p.n, int(round(dyn.t_end / p.eps)))
            for key, value in (("sgd", sgd), ("member", member), ("analysis", analysis)):
                total[key] += value
            print(f"{p.n:>6}   {sgd:7.2f}   {member:10.2f}   {analysis:12.2f}   {sgd / (member + analysis):29.0%}"
                  f"   {bound:5.2f}×", flush=True)
    share = total["sgd"] / (total["member"] + total["analysis"])
    print(f"all N: sgd {total['sgd']:.1f} s of {total['member'] + total['analysis']:.1f} s per seed ({share:.0%})")


if __name__ == "__main__":
    main()
