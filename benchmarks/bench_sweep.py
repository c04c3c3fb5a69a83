"""Benchmark: what a sweep member costs, run and analysed (issue 7, item 5; issue 16, part 4).

The members of configs/n_scaling.toml (teacher–student 2-D, coupled, ε = 2.5e−4, t ≤ 2: 8000 steps,
N = 200 … 12800), one seed each, on one thread as a sweep worker runs them. Per N:
  sgd       the SGD engine alone (particles.run_sgd: data, kernel, snapshots);
  member    the member as the sweep runs it (validation.runner.execute, engine "particles": plus G and T,
            the exact R_N at every snapshot and the HDF5 file);
  alone     its analysis on its own (validation.sweep.member_gaps: the PDE side made for it);
  shared    its analysis as validation.sweep.rates runs it: comparison_table with the PdeSide that every
            member of the PDE file shares (made once, its time printed apart);
  twin W1   the sliced W1 of its save times the way the analysis computed it before (NumPy: union1d and
            searchsorted per direction, mfdyn.transport.w1_terms_1d_numpy), the peer of the W1 in `shared`;
  stacked   the most that putting S = 8 seeds into one kernel could give: the time of 8 kernel calls
            on N neurons over that of one call on 8N neurons. A stacked kernel does at least the work of
            the latter (plus one ŷ per seed), so this ratio bounds its gain in the kernel.
The issue's bar: at N = 800 the analysis (shared) is at most 20% of the member's run.
Usage: python benchmarks/bench_sweep.py [N ...]   (default: every N of the sweep)
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numba
import numpy as np
from timing import median_time, wall_time

from mfdyn.config import load_config
from mfdyn.problems import make_problem
from mfdyn.storage import RunFile
from mfdyn.transport import w1_terms_1d_numpy
from particles import run_sgd
from particles.sgd import sgd_steps_neuron
from validation.compare import PdeSide, comparison_table
from validation.observables import SlicedW1
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


def twin_w1(run_file: Path, side: PdeSide) -> list[float]:
    """The member's sliced W1 at every save time as SlicedW1 computed it before issue 16: per time and direction
    the cumulative masses, then the NumPy pieces (the same numbers as the analysis's, bit for bit)."""
    sliced = SlicedW1(side.centres)
    out = []
    with RunFile.open(run_file) as run:
        for j in range(run.count("particles")):
            z, density = run.row("particles", "z", j), side.densities[j]
            weights = density.ravel() / density.sum()
            total = sum(float(np.sum(w1_terms_1d_numpy(xs, np.cumsum(weights[order]), np.sort(z @ u))))
                        for u, xs, order in zip(sliced.u, sliced.sorted, sliced.order))
            out.append(total / len(sliced.u))
    return out


def main() -> None:
    numba.set_num_threads(1)                          # a sweep worker's setting
    sweep = load_sweep(SWEEP)
    members = [m.overrides for m in sweep.members if "particles.seed=0" in m.overrides]
    chosen = {int(a) for a in sys.argv[1:]}
    print(f"{sweep.name}: {len(sweep.members)} members; one seed per N below, one thread")
    with tempfile.TemporaryDirectory() as tmp:
        pde_file = Path(tmp) / "pde.h5"
        grid = load_config(sweep.base_toml, [*members[0], "particles.coupled=false"], from_text=True)   # as run_sweep
        solve = wall_time(lambda: execute(grid, pde_file, "pde").close())
        with RunFile.open(pde_file) as pde:
            made = wall_time(lambda: PdeSide(pde))
            side = PdeSide(pde)
        print(f"the PDE solve (once per sweep; a coupled member's tracers solve it again): {solve:.2f} s; its PDE "
              f"side (PdeSide, made once per PDE file for all its members): {made:.2f} s")
        print("     N   sgd (s)   member (s)   analysis alone (s)   shared (s)   shared/member   alone/shared"
              "   twin W1 (s)   twin W1/shared   8 seeds stacked: kernel gain ≤")
        total = {"member": 0.0, "alone": 0.0, "shared": 0.0}
        for k, overrides in enumerate(members):
            config = load_config(sweep.base_toml, overrides, from_text=True)
            problem = make_problem(config)
            p, dyn = config.particles, config.dynamics
            times = config.save_times()
            run_file = Path(tmp) / f"run-{k}.h5"
            if k == 0:                                # compile and warm every kernel once
                list(run_sgd(problem, p.n, p.eps, dyn.xi, dyn.lam, p.batch, p.seed, times))
                execute(config, Path(tmp) / "warm.h5", "particles").close()
                member_gaps(Path(tmp) / "warm.h5", pde_file)
            if chosen and p.n not in chosen:
                continue
            sgd = wall_time(lambda: list(run_sgd(problem, p.n, p.eps, dyn.xi, dyn.lam, p.batch, p.seed, times)))
            member = wall_time(lambda: execute(config, run_file, "particles").close())
            alone = wall_time(lambda: member_gaps(run_file, pde_file))
            with RunFile.open(pde_file) as pde, RunFile.open(run_file) as run:
                comparison_table(run, pde, side)      # the side's per-time values made (once per PDE file)
                shared = wall_time(lambda: comparison_table(run, pde, side))
                w1 = comparison_table(run, pde, side)["w1"]
            twin = wall_time(lambda: twin_w1(run_file, side))
            assert list(w1) == twin_w1(run_file, side), "the shared W1 is not the twin's, bit for bit"
            bound = stacking_bound(problem, p.n, int(round(dyn.t_end / p.eps)))
            for key, value in (("member", member), ("alone", alone), ("shared", shared)):
                total[key] += value
            print(f"{p.n:>6}   {sgd:7.2f}   {member:10.2f}   {alone:18.3f}   {shared:10.3f}   {shared / member:13.1%}"
                  f"   {alone / shared:11.2f}×   {twin:11.2f}   {twin / shared:13.1f}×   {bound:5.2f}×", flush=True)
    print(f"all N: members {total['member']:.1f} s, analysis {total['shared']:.2f} s shared "
          f"({total['shared'] / total['member']:.1%} of the members), {total['alone']:.2f} s alone")


if __name__ == "__main__":
    main()
