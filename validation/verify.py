"""`mfdyn verify`: the exact-solution cases of docs/math.md §6, under refinement.

Noiseless cases are linear flows (Ornstein–Uhlenbeck drift, or quadratic interaction about the mean)
started from the smooth compactly supported cos⁶ bump, whose exact solution is the same bump,
moved and contracted. Noisy cases (β < ∞) start from a Gaussian, which stays Gaussian: the heat
equation (K = 0), OU, and quadratic interaction. For each grid the report gives the L1 error of the
cell averages at t_end, the observed order against the next coarser grid, the relative mass drift,
the minimum density, and the largest increase between saves of the discrete risk (β = ∞) or free
energy (β < ∞), which must be ≤ 0. Two further checks: the implicit stepper's order in dt, and
the preservation of a discrete Gibbs state of a frozen potential by both steppers.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from mfdyn.config import InitConfig
from mfdyn.problems.linear_flows import OrnsteinUhlenbeck, QuadraticInteraction
from pde import Grid, PotentialOperator, solve

INF = float("inf")

MIN_ORDER = 1.8      # the bar for the finest pair of grids
MASS_TOL = 1e-12     # relative


@dataclass(frozen=True)
class Case:
    """One verification flow: problem class, diagonal stiffness, centre of ρ_0, cells per axis per level, and
    the levels of --quick (default: all but the finest; a case whose coarse pair is still short of MIN_ORDER
    names coarser-than-full grids that do meet it)."""

    name: str
    problem: type
    stiffness: tuple[float, ...]
    mean: tuple[float, ...]
    cells: tuple[int, ...]
    beta: float = INF
    reach: float = 0.0       # half-width of the domain about the centre (0: the problem's default)
    kappa: float = 0.4
    xi: float = 0.5
    t_end: float = 0.5
    saves: int = 10
    quick: tuple[int, ...] = ()

    def levels(self, quick: bool = False) -> tuple[int, ...]:
        """Cells per axis of each refinement level, the full run's or --quick's."""
        if not quick:
            return self.cells
        return self.quick or self.cells[:-1]

    def build(self):
        profile = "bump" if self.beta == INF else "gaussian"
        params = self.problem.Params(stiffness=self.stiffness, profile=profile)
        return self.problem(params, InitConfig(kappa=self.kappa, mean=self.mean))

    def grid(self, problem, cells: int) -> Grid:
        bounds = (tuple((m - self.reach, m + self.reach) for m in self.mean) if self.reach
                  else problem.default_bounds())
        return Grid(bounds, (cells,) * problem.dim, problem.coords)


CASES = (
    Case("ou_1d", OrnsteinUhlenbeck, (1.0,), (0.2,), (40, 80, 160, 320)),
    Case("ou_2d", OrnsteinUhlenbeck, (1.0, 0.5), (0.2, -0.1), (32, 64, 128, 256)),
    # --quick: 32 → 64 cells reach only order 1.79 here (pre-asymptotic); 48 → 96 reach 1.85 in a few seconds
    Case("ou_3d", OrnsteinUhlenbeck, (0.5, 0.25, 0.4), (0.2, -0.1, 0.1), (32, 64, 128), quick=(24, 48, 96)),
    Case("quadratic_1d", QuadraticInteraction, (0.0,), (0.2,), (40, 80, 160, 320)),
    Case("quadratic_2d", QuadraticInteraction, (0.0, 0.5), (0.2, -0.1), (32, 64, 128, 256)),
    Case("heat_1d", OrnsteinUhlenbeck, (0.0,), (0.2,), (40, 80, 160), beta=10.0, reach=3.2),
    Case("heat_2d", OrnsteinUhlenbeck, (0.0, 0.0), (0.2, -0.1), (32, 64, 128), beta=10.0, reach=3.2),
    Case("heat_3d", OrnsteinUhlenbeck, (0.0, 0.0, 0.0), (0.2, -0.1, 0.1), (16, 32, 64), beta=10.0, reach=3.2),
    Case("ou_noisy_1d", OrnsteinUhlenbeck, (1.0,), (0.3,), (40, 80, 160), beta=10.0, reach=2.4),
    Case("ou_noisy_2d", OrnsteinUhlenbeck, (1.0, 0.5), (0.3, -0.2), (32, 64, 128), beta=10.0, reach=2.6),
    Case("ou_noisy_3d", OrnsteinUhlenbeck, (1.0, 0.5, 0.7), (0.3, -0.2, 0.1), (16, 32, 64), beta=10.0, reach=2.6),
    Case("quadratic_noisy_2d", QuadraticInteraction, (0.0, 0.5), (0.3, -0.2), (32, 64, 128), beta=10.0, reach=2.6),
)
# The implicit steppers' orders in dt (OU, β = 10, 640 cells: the spatial error is ~100× below the time error)
IMPLICIT_CASE = Case("ou_implicit_dt", OrnsteinUhlenbeck, (1.0,), (0.3,), (640,), beta=10.0, reach=2.4, t_end=1.0)
IMPLICIT_DTS = (0.1, 0.05, 0.025, 0.0125)
TIME_ORDERS = {"implicit": 1, "trbdf2": 2}      # each implicit stepper's order in time
MIN_TIME_ORDER = 0.9                            # the observed order must be at least this × the stepper's
GIBBS_TOL = 1e-12    # relative change of a discrete Gibbs state over t_end


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
    grid = case.grid(problem, cells)
    op = PotentialOperator(problem.grid_model(grid.centres), grid, beta=case.beta)
    rho0 = problem.initial_cell_averages(grid.edges)
    times = list(np.linspace(0.0, case.t_end, case.saves + 1))
    states = list(solve(op, rho0, times, case.xi))
    final = states[-1].rho
    exact = problem.exact_cell_averages(grid.edges, case.t_end, case.xi, 0.0, case.beta)
    risks = np.array([op.free_energy(s.rho) for s in states])
    mass0 = grid.integrate(rho0)
    return (float(np.abs(final - exact).sum() * grid.cell_volume),
            abs(grid.integrate(final) - mass0) / mass0,
            float(min(s.rho.min() for s in states)),
            float(np.max(np.diff(risks))),
            time.perf_counter() - start)


def run_case(case: Case, quick: bool = False) -> list[Level]:
    """All refinement levels of a case (quick: the --quick levels, Case.levels)."""
    levels: list[Level] = []
    for cells in case.levels(quick):
        err, mass, low, rise, secs = run_level(case, cells)
        order = (np.log(levels[-1].l1_error / err) / np.log(cells / levels[-1].cells)) if levels else np.nan
        levels.append(Level(cells, err, float(order), mass, low, rise, secs))
    return levels


def implicit_time_orders(stepper: str = "implicit") -> tuple[list[float], list[float]]:
    """L1 errors at t_end of an implicit stepper (a key of TIME_ORDERS) in fixed steps of IMPLICIT_DTS (trbdf2:
    rtol = inf, no error control) against the explicit solution on the same grid, and the observed orders in dt."""
    case = IMPLICIT_CASE
    problem = case.build()
    grid = case.grid(problem, case.cells[0])
    op = PotentialOperator(problem.grid_model(grid.centres), grid, beta=case.beta)
    rho0 = problem.initial_cell_averages(grid.edges)
    reference = list(solve(op, rho0, [case.t_end], case.xi))[-1].rho
    errors = [float(np.abs(list(solve(op, rho0, [case.t_end], case.xi, stepper=stepper, dt=dt, rtol=math.inf))[-1].rho
                            - reference).sum() * grid.cell_volume) for dt in IMPLICIT_DTS]
    return errors, [float(np.log2(a / b)) for a, b in zip(errors[:-1], errors[1:])]


def gibbs_preservation() -> dict[str, float]:
    """Largest relative change of the discrete Gibbs state Z⁻¹e^{−βV} (2-D OU, frozen) after t = 1."""
    case = Case("gibbs", OrnsteinUhlenbeck, (1.0, 0.5), (0.0, 0.0), (48,), beta=10.0, reach=2.0)
    problem = case.build()
    grid = case.grid(problem, 48)
    op = PotentialOperator(problem.grid_model(grid.centres), grid, beta=case.beta)
    gibbs = op.gibbs(problem.initial_cell_averages(grid.edges))
    return {stepper: float(np.abs(list(solve(op, gibbs, [1.0], case.xi, stepper=stepper, dt=0.1))[-1].rho
                                  - gibbs).max() / gibbs.max()) for stepper in ("explicit", *TIME_ORDERS)}


def failed_checks(levels: list[Level]) -> list[str]:
    """The checks a case misses, each with its worst value and its bar (empty: it passes): the order of the
    finest pair ≥ MIN_ORDER, the mass to round-off, ρ ≥ 0, and a risk (free energy) that never increases."""
    failed = []
    if not levels[-1].order >= MIN_ORDER:          # also a NaN order (a single level)
        failed.append(f"order {levels[-1].order:.2f} < bar {MIN_ORDER}")
    worst = max(levels, key=lambda lv: lv.mass_drift)
    if not worst.mass_drift <= MASS_TOL:
        failed.append(f"mass drift {worst.mass_drift:.1e} > {MASS_TOL:g} at {worst.cells} cells")
    worst = min(levels, key=lambda lv: lv.min_density)
    if not worst.min_density >= 0.0:
        failed.append(f"positivity: min rho {worst.min_density:.1e} < 0 at {worst.cells} cells")
    worst = max(levels, key=lambda lv: lv.max_risk_increase)
    if not worst.max_risk_increase <= 0.0:
        failed.append(f"monotone R or F: it rose by {worst.max_risk_increase:.1e} at {worst.cells} cells")
    return failed


def passes(levels: list[Level]) -> bool:
    """Order of the finest pair ≥ MIN_ORDER, mass to round-off, ρ ≥ 0, risk never increasing."""
    return not failed_checks(levels)


def format_report(results: dict[str, list[Level]]) -> str:
    """One block of rows per case, and a verdict line each (max dR: risk at β = ∞, free energy else)."""
    head = f"{'case':<20}{'cells':>8}{'L1 error':>12}{'order':>8}{'mass drift':>12}{'min rho':>11}{'max dR':>11}{'s':>7}"
    lines = [head]
    for name, levels in results.items():
        for lv in levels:
            order = "" if np.isnan(lv.order) else f"{lv.order:.2f}"
            lines.append(f"{name:<20}{lv.cells:>8}{lv.l1_error:>12.3e}{order:>8}{lv.mass_drift:>12.1e}"
                         f"{lv.min_density:>11.1e}{lv.max_risk_increase:>11.1e}{lv.seconds:>7.2f}")
        failed = failed_checks(levels)
        lines.append(f"{name:<20}FAIL: " + "; ".join(failed) if failed else
                     f"{name:<20}ok: order {levels[-1].order:.2f} (bar {MIN_ORDER}), mass, positivity, monotone R or F")
    return "\n".join(lines)


def time_order_passes(stepper: str, orders: list[float]) -> bool:
    """Whether the observed orders in dt of an implicit stepper are those of its scheme (TIME_ORDERS)."""
    return min(orders) >= MIN_TIME_ORDER * TIME_ORDERS[stepper]


def format_extra_checks(time_orders: dict[str, tuple[list[float], list[float]]], gibbs: dict[str, float]) -> str:
    """The implicit steppers' orders in dt ({stepper: (errors, orders)}) and the Gibbs-state preservation, with
    verdicts."""
    rows = [f"{stepper} stepper, dt = {', '.join(f'{dt:g}' for dt in IMPLICIT_DTS)}: L1 errors "
            + ", ".join(f"{e:.2e}" for e in errors) + "; orders " + ", ".join(f"{o:.2f}" for o in orders)
            + f"  {'ok' if time_order_passes(stepper, orders) else 'FAIL'} (order {TIME_ORDERS[stepper]}: "
            f"≥ {MIN_TIME_ORDER * TIME_ORDERS[stepper]:g})" for stepper, (errors, orders) in time_orders.items()]
    rows += [f"Gibbs state of a frozen potential, {name} stepper, t = 1: max relative change {change:.1e}  "
             f"{'ok' if change <= GIBBS_TOL else 'FAIL'} (≤ {GIBBS_TOL:g})" for name, change in gibbs.items()]
    return "\n".join(rows)
