"""`mfdyn verify`: the exact-solution cases of MATH.md §6 that need no diffusion, under refinement.

Each case is a linear flow (Ornstein–Uhlenbeck drift, or quadratic interaction about the mean)
started from the smooth compactly supported cos⁶ bump, whose exact solution is the same bump,
moved and contracted. For each grid the report gives the L1 error of the cell averages at t_end,
the observed order against the next coarser grid, the relative mass drift, the minimum density
and the largest increase of the discrete risk between saves (which must be ≤ 0 at β = ∞).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mfdyn.config import InitConfig
from mfdyn.problems.linear_flows import OrnsteinUhlenbeck, QuadraticInteraction
from pde import Grid, PotentialOperator, solve

MIN_ORDER = 1.8      # the bar for the finest pair of grids
MASS_TOL = 1e-12     # relative


@dataclass(frozen=True)
class Case:
    """One verification flow: problem class, diagonal stiffness, centre of ρ_0, cells per axis per level."""

    name: str
    problem: type
    stiffness: tuple[float, ...]
    mean: tuple[float, ...]
    cells: tuple[int, ...]
    kappa: float = 0.4
    xi: float = 0.5
    t_end: float = 0.5
    saves: int = 10

    def build(self):
        params = self.problem.Params(stiffness=self.stiffness, profile="bump")
        return self.problem(params, InitConfig(kappa=self.kappa, mean=self.mean))


CASES = (
    Case("ou_1d", OrnsteinUhlenbeck, (1.0,), (0.2,), (40, 80, 160, 320)),
    Case("ou_2d", OrnsteinUhlenbeck, (1.0, 0.5), (0.2, -0.1), (32, 64, 128, 256)),
    Case("ou_3d", OrnsteinUhlenbeck, (0.5, 0.25, 0.4), (0.2, -0.1, 0.1), (32, 64, 128)),
    Case("quadratic_1d", QuadraticInteraction, (0.0,), (0.2,), (40, 80, 160, 320)),
    Case("quadratic_2d", QuadraticInteraction, (0.0, 0.5), (0.2, -0.1), (32, 64, 128, 256)),
)


@dataclass(frozen=True)
class Level:
    """The result of one case on one grid."""

    cells: int
    l1_error: float
    order: float            # nan on the coarsest grid
    mass_drift: float       # |mass(t_end) − mass(0)| / mass(0)
    min_density: float
    max_risk_increase: float
    seconds: float


def run_level(case: Case, cells: int) -> tuple[float, float, float, float, float]:
    """Solve one case on cells^D cells; return (L1 error, mass drift, min ρ, max risk increase, seconds)."""
    start = time.perf_counter()
    problem = case.build()
    grid = Grid(problem.default_bounds(), (cells,) * problem.dim, problem.coords)
    op = PotentialOperator(problem.grid_model(grid.centres), grid)
    rho0 = problem.initial_cell_averages(grid.edges)
    times = list(np.linspace(0.0, case.t_end, case.saves + 1))
    states = list(solve(op, rho0, times, case.xi))
    final = states[-1].rho
    exact = problem.exact_cell_averages(grid.edges, case.t_end, case.xi, 0.0)
    risks = np.array([op.risk(s.rho) for s in states])
    mass0 = grid.integrate(rho0)
    return (float(np.abs(final - exact).sum() * grid.cell_volume),
            abs(grid.integrate(final) - mass0) / mass0,
            float(min(s.rho.min() for s in states)),
            float(np.max(np.diff(risks))),
            time.perf_counter() - start)


def run_case(case: Case, quick: bool = False) -> list[Level]:
    """All refinement levels of a case (quick: all but the finest)."""
    levels: list[Level] = []
    for cells in case.cells[:-1] if quick else case.cells:
        err, mass, low, rise, secs = run_level(case, cells)
        order = (np.log(levels[-1].l1_error / err) / np.log(cells / levels[-1].cells)) if levels else np.nan
        levels.append(Level(cells, err, float(order), mass, low, rise, secs))
    return levels


def passes(levels: list[Level]) -> bool:
    """Order of the finest pair ≥ MIN_ORDER, mass to round-off, ρ ≥ 0, risk never increasing."""
    return (levels[-1].order >= MIN_ORDER and all(lv.mass_drift <= MASS_TOL for lv in levels)
            and all(lv.min_density >= 0.0 for lv in levels) and all(lv.max_risk_increase <= 0.0 for lv in levels))


def format_report(results: dict[str, list[Level]]) -> str:
    """One block of rows per case, and a verdict line each."""
    head = f"{'case':<14}{'cells':>8}{'L1 error':>12}{'order':>8}{'mass drift':>12}{'min rho':>11}{'max dR':>11}{'s':>7}"
    lines = [head]
    for name, levels in results.items():
        for lv in levels:
            order = "" if np.isnan(lv.order) else f"{lv.order:.2f}"
            lines.append(f"{name:<14}{lv.cells:>8}{lv.l1_error:>12.3e}{order:>8}{lv.mass_drift:>12.1e}"
                         f"{lv.min_density:>11.1e}{lv.max_risk_increase:>11.1e}{lv.seconds:>7.2f}")
        verdict = "ok" if passes(levels) else "FAIL"
        lines.append(f"{name:<14}{verdict}: order {levels[-1].order:.2f} (bar {MIN_ORDER}), mass, positivity, monotone risk")
    return "\n".join(lines)
