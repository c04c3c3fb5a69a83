"""Benchmark: one Ψ evaluation against one NumPy matrix–vector product over the same Φ (issue 3).

Ψ[ρ] = V + Φᵀ(w ∘ Φρ|cell|) is two products with Φ (K × M), so the floor is 2× one product.
Grid 256 × 256 (M = 65536), K = 128 quadrature nodes, teacher–student with θ = (a, w).
Prints the median times over repeats and the ratios; the bar is Ψ ≤ 3× one product, uncompressed.
With compression (the default) Φ is first replaced by its best low-rank form, so Ψ can cost less
than one product with the full Φ; that ratio is printed too, per activation.
Usage: python benchmarks/bench_potential.py
"""
from __future__ import annotations

import platform

import numpy as np
from timing import median_time

from mfdyn.config import load_config
from mfdyn.problems import make_problem
from pde import Grid, PotentialOperator


def main() -> None:
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; numpy {np.__version__}")
    for activation in ("relu", "tanh"):
        config = load_config(f'[problem]\nname = "teacher_student"\nactivation = "{activation}"\nnodes = 128\n'
                             '[dynamics]\nt_end = 1.0\n', from_text=True)
        problem = make_problem(config)
        grid = Grid(((-3.0, 3.0), (-4.0, 4.0)), (256, 256), problem.coords)
        model = problem.grid_model(grid.centres)
        rho = problem.initial_cell_averages(grid.edges)
        phi = np.ascontiguousarray(model.features)
        vec = rho.ravel().copy()
        matvec = median_time(lambda: phi @ vec)
        plain = PotentialOperator(model, grid, compress=False)
        packed = PotentialOperator(model, grid)
        t_plain = median_time(lambda: plain.psi(rho))
        t_packed = median_time(lambda: packed.psi(rho))
        print(f"{activation:5s} K = {phi.shape[0]}, M = {phi.shape[1]}: one Φ·v {matvec * 1e3:.3f} ms | "
              f"Ψ uncompressed {t_plain * 1e3:.3f} ms, ratio {t_plain / matvec:.2f} (bar ≤ 3) | "
              f"Ψ compressed to {packed.phi.shape[0]} rows {t_packed * 1e3:.3f} ms, ratio {t_packed / matvec:.2f}")


if __name__ == "__main__":
    main()
