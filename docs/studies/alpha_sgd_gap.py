"""SGD with the symmetric start follows the PDE at α = 1, 4, 16 to its usual N^−½ gap when N ≥ 16α².

    python docs/studies/alpha_sgd_gap.py

teacher_student_2d with init.symmetric, t ≤ 2, ε = 1e−4, grid 72 × 80, 4 seeds; prints per (α, N) the mean
over seeds of sup_t |R_sgd − R_pde| and that times √N (the README's table of issue 12).
"""
import numpy as np

import mfdyn

for alpha in (1.0, 4.0, 16.0):
    for n in sorted({max(256, int(16 * alpha**2)), int(64 * alpha**2)}):
        gaps = []
        for seed in range(4):
            with mfdyn.run("configs/teacher_student_2d.toml",
                           set={"init.symmetric": True, "dynamics.alpha": alpha, "particles.n": n, "dynamics.t_end": 2.0,
                                "output.every": 0.5, "particles.seed": seed, "pde.cells": [72, 80]}) as run:
                table = run.compare()
                gaps.append(np.abs(table["risk_sgd"] - table["risk_pde"]).max())
        print(f"α = {alpha:4g}  N = {n:6d}  sup gap {np.mean(gaps):.2e} ± {np.std(gaps, ddof=1) / 2:.1e}  "
              f"× √N = {np.mean(gaps) * np.sqrt(n):.3f}")
