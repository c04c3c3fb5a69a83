"""Study behind the README's teacher–student numbers: the SGD–PDE gap at N = 1000 and N = 16000.

Runs configs/teacher_student_2d.toml once on the grid and with SGD for several seeds per N; prints,
per N, the sup over the save times of |R_sgd − R_pde − 1/N term| and of |mean f(θ_i) − ∫ f dρ_t|
for two bounded Lipschitz test functions, as mean ± standard error over seeds.
Usage: python docs/studies/teacher_student_n_gap.py [SEEDS]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from mfdyn.config import load_config
from mfdyn.grid import build_grid
from mfdyn.problems import make_problem
from particles import run_sgd
from pde import PotentialOperator, solve

TESTS = {"tanh(a)·tanh(w)": lambda a, w: np.tanh(a) * np.tanh(w),
         "exp(−(a² + w²)/2)": lambda a, w: np.exp(-0.5 * (a**2 + w**2))}


def main(seeds: int = 4) -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "teacher_student_2d.toml")
    problem = make_problem(config)
    times = config.save_times()
    grid = build_grid(problem, config)
    op = PotentialOperator(problem.grid_model(grid.centres), grid)
    a, w = grid.mesh()
    pde = [(op.risk(s.rho), op.finite_n_term(s.rho), [grid.integrate(f(a, w) * s.rho.ravel()) for f in TESTS.values()])
           for s in solve(op, problem.initial_cell_averages(grid.edges), times, config.dynamics.xi)]
    for n in (1000, 16000):
        sup = []
        for seed in range(seeds):
            gaps = []
            for state, (risk, term, means) in zip(run_sgd(problem, n, config.particles.eps, config.dynamics.xi, 0.0,
                                                          1, seed, times), pde):
                th = state.theta
                gaps.append([abs(problem.exact_risk(th) - risk - term / n)]
                            + [abs(f(th[:, 0], th[:, 1]).mean() - m) for f, m in zip(TESTS.values(), means)])
            sup.append(np.max(gaps, axis=0))
        sup = np.array(sup)
        mean, err = sup.mean(axis=0), sup.std(axis=0, ddof=1) / np.sqrt(seeds)
        cells = "  ".join(f"{name}: {m:.2e} ± {e:.1e}" for name, m, e in zip(["risk", *TESTS], mean, err))
        print(f"N = {n:6d}  sup_t gap  {cells}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
