"""py-pde peer for benchmarks/bench_fv.py, run in its own venv (py-pde also installs a package named `pde`).

The 2-D Ornstein–Uhlenbeck Fokker–Planck problem of bench_fv.py with ξ = ½:
∂_t c = ∇·(c Kθ) + β⁻¹Δc = K1 x ∂_x c + K2 y ∂_y c + (K1 + K2) c + β⁻¹ Δc, zero-derivative boundaries
on [−L, L]², Gaussian start. Solves to t = 1 twice (the first compiles) and reports the L1 error
Σ|c − exact| h² at the cell centres against the exact Gaussian, and the second (warm) solve's time.
Prints one JSON line. Usage: python pypde_ou.py CELLS SOLVER DT   (SOLVER: euler | rk; DT: step or 'adaptive')
"""
import json
import sys
import time

import numpy as np

import pde

K1, K2, BETA, M0, KAPPA, L = 1.0, 0.5, 10.0, (0.3, -0.2), 0.4, 2.6


def exact(x, y, t):
    """Mean e^{−Kt} m0, variance v∞ + (v0 − v∞) e^{−2Kt} per axis, v∞ = 1/(βK) (docs/math.md §6, ξ = ½)."""
    out = 1.0
    for coord, k, m in ((x, K1, M0[0]), (y, K2, M0[1])):
        v_inf = 1.0 / (BETA * k)
        v = v_inf + (KAPPA**2 - v_inf) * np.exp(-2 * k * t)
        out = out * np.exp(-((coord - m * np.exp(-k * t)) ** 2) / (2 * v)) / np.sqrt(2 * np.pi * v)
    return out


def main() -> None:
    start_script = time.perf_counter()
    cells, solver, dt = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    grid = pde.CartesianGrid([[-L, L], [-L, L]], [cells, cells])
    x, y = grid.cell_coords[..., 0], grid.cell_coords[..., 1]
    state = pde.ScalarField(grid, exact(x, y, 0.0))
    eq = pde.PDE({"c": f"{K1}*x*d_dx(c) + {K2}*y*d_dy(c) + {K1 + K2}*c + {1 / BETA}*laplace(c)"},
                 bc={"derivative": 0})
    kwargs = {"adaptive": True, "dt": 1e-4} if dt == "adaptive" else {"dt": float(dt)}
    kwargs["solver"] = "euler" if solver == "euler" else "runge-kutta"
    eq.solve(state, t_range=1.0, tracker=None, **kwargs)
    first = time.perf_counter() - start_script
    start = time.perf_counter()
    result = eq.solve(state, t_range=1.0, tracker=None, **kwargs)
    warm = time.perf_counter() - start
    h = 2 * L / cells
    l1 = float(np.abs(result.data - exact(x, y, 1.0)).sum() * h * h)
    print(json.dumps({"cells": cells, "solver": solver, "dt": dt, "l1": l1, "warm_seconds": warm,
                      "script_seconds_to_first_result": first}))


if __name__ == "__main__":
    main()
