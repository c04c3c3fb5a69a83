"""The noisy shipped MMN config (configs/mmn_isotropic_noisy.toml: β = 20, λ = 0.1, 1600 cells, t = 20): the
PDE solve by pde.stepper = "auto" (it takes trbdf2) against the first-order implicit stepper and the explicit one.

Accuracy is R(t) at the 21 saves against a converged reference: trbdf2 at rtol 1e−10 on 6400 cells (and on 3200,
to show it is converged). Implicit is run at the shipped dt = 0.01 and at 0.001; its error is first order,
err(dt) ≈ err_space + C dt, so the dt at which it would match trbdf2's error, and that run's time (its measured
cost per step × the steps), follow from the two. Explicit is timed over its first 2000 steps.

Then the cost of one trbdf2 step in explicit steps on grids of 1 to 3 dimensions (noisy quadratic interaction,
so ψ depends on ρ and each step factors two matrices), against pde.solve.implicit_step_cost, the model "auto"
uses.

    python benchmarks/bench_noisy.py
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mfdyn.config import InitConfig, load_config  # noqa: E402
from mfdyn.problems import make_problem  # noqa: E402
from mfdyn.problems.linear_flows import QuadraticInteraction  # noqa: E402
from pde import Grid, PotentialOperator, solve  # noqa: E402
from pde.engine import PDEEngine  # noqa: E402
from pde.solve import implicit_step_cost  # noqa: E402

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "mmn_isotropic_noisy.toml"


def solve_risks(overrides: list[str], stop_after: int | None = None) -> tuple[np.ndarray, float, int, float, str]:
    """(R at the saves, seconds of the solve, accepted steps, the time t reached, stepper) of the config with
    overrides; stop_after: stop after that many steps."""
    config = load_config(CONFIG, overrides)
    engine = PDEEngine(make_problem(config), config)
    engine.prepare(diagnostics=False)
    steps, reached = [0], [0.0]

    def count(t: float, _rho: np.ndarray) -> None:
        steps[0] += 1
        reached[0] = t
        if stop_after is not None and steps[0] >= stop_after:
            raise StopIteration

    start = time.perf_counter()
    risks = []
    try:
        for state in engine.states(on_step=count):
            risks.append(engine.op.risk(state.rho))
    except (StopIteration, RuntimeError):     # a generator turns StopIteration into RuntimeError
        pass
    return np.array(risks), time.perf_counter() - start, steps[0], reached[0], engine.stepper


def seconds_per_step(op: PotentialOperator, rho0: np.ndarray, stepper: str, steps: int) -> float:
    """Wall seconds per step of `steps` steps of a stepper from ρ_0 (trbdf2: fixed dt = 1e−3), after a warm-up."""
    options = {"dt": 1e-3, "rtol": math.inf} if stepper == "trbdf2" else {}
    taken = [0]

    def stop(_t: float, _rho: np.ndarray) -> None:
        taken[0] += 1
        if taken[0] >= steps:
            raise StopIteration

    start = time.perf_counter()
    try:
        next(solve(op, rho0, [10.0], 1.0, stepper=stepper, on_step=stop, **options))
    except (StopIteration, RuntimeError):
        pass
    return (time.perf_counter() - start) / steps


def step_costs() -> None:
    """One trbdf2 step in explicit steps, measured and modelled, per grid shape."""
    print("grid          explicit step   trbdf2 step   ratio   model (implicit_step_cost)")
    for shape in [(400,), (1600,), (6400,), (40, 40), (80, 80), (160, 160), (16, 16, 16), (24, 24, 24)]:
        dim = len(shape)
        problem = QuadraticInteraction(QuadraticInteraction.Params(stiffness=(0.5,) * dim), InitConfig(mean=(0.3,) * dim))
        grid = Grid(((-3.0, 3.0),) * dim, shape, problem.coords)
        op = PotentialOperator(problem.grid_model(grid.centres), grid, beta=10.0)
        rho0 = problem.initial_cell_averages(grid.edges)
        seconds_per_step(op, rho0, "trbdf2", 1)                          # compile
        explicit = seconds_per_step(op, rho0, "explicit", 20)
        implicit = seconds_per_step(op, rho0, "trbdf2", 5 if dim < 3 else 2)
        print(f"{'x'.join(map(str, shape)):<12}{explicit * 1e3:>11.2f} ms{implicit * 1e3:>11.1f} ms"
              f"{implicit / explicit:>8.1f}   {implicit_step_cost(shape):.1f}")


def main() -> None:
    solve_risks(["dynamics.t_end=0.1", "output.every=0.1"])       # compile and warm the caches
    reference, ref_s, _, _, _ = solve_risks(["pde.stepper=trbdf2", "pde.rtol=1e-10", "pde.cells=6400"])
    half, *_ = solve_risks(["pde.stepper=trbdf2", "pde.rtol=1e-10", "pde.cells=3200"])
    print(f"reference (trbdf2, rtol 1e-10, 6400 cells): {ref_s:.1f} s; against 3200 cells max |ΔR| = "
          f"{np.abs(half - reference).max():.1e}")
    auto, auto_s, auto_steps, _, chosen = solve_risks([])
    auto_err = np.abs(auto - reference).max()
    print(f"shipped config, auto -> {chosen}: {auto_s:.2f} s, {auto_steps} steps, max |ΔR| = {auto_err:.2e} "
          f"(bar 1e-5)")
    rows = {}
    for dt in (0.01, 0.001):
        risks, seconds, steps, _, _ = solve_risks(["pde.stepper=implicit", f"pde.dt={dt}"])
        rows[dt] = (np.abs(risks - reference).max(), seconds, steps)
        print(f"implicit dt = {dt:g}: {seconds:.2f} s, {steps} steps, max |ΔR| = {rows[dt][0]:.2e}; "
              f"auto is {seconds / auto_s:.0f}x faster")
    e1, (e2, s2, n2) = rows[0.01][0], rows[0.001]
    slope = (e1 - e2) / (0.01 - 0.001)                                   # err ≈ err_space + slope·dt
    floor = e2 - slope * 0.001
    if auto_err > floor:
        dt_same = (auto_err - floor) / slope
        steps_same = 20.0 / dt_same
        seconds_same = steps_same * s2 / n2
        print(f"implicit at auto's accuracy: dt ≈ {dt_same:.1e}, {steps_same:.2g} steps, ≈ {seconds_same:.0f} s "
              f"(measured cost per step × steps): auto is ≈ {seconds_same / auto_s:.0f}x faster (bar 5x)")
    else:
        print(f"implicit cannot reach auto's accuracy: its spatial floor {floor:.1e} ≥ {auto_err:.1e}")
    _, ex_s, ex_steps, ex_t, _ = solve_risks(["pde.stepper=explicit"], stop_after=2000)
    print(f"explicit: {ex_steps} steps reach t = {ex_t:.2e} in {ex_s:.2f} s, so t = 20 would take ≈ "
          f"{20 * ex_steps / ex_t:.1e} steps ≈ {20 * ex_s / ex_t / 60:.0f} min (the trap auto avoids)")
    step_costs()


if __name__ == "__main__":
    main()
