"""The noiseless PDE solve of shipped configs by the four-stage SSP-RK3 (pde.stepper = "ssprk43", what "auto"
takes) against Shu–Osher SSP-RK3 ("explicit"), in one process: the solve alone (Φ and ρ_0 built once), the two
alternating (each goes first in half the rounds), median of 6 each. Also their time error: max over the saves of
|R(t) − R_ref(t)|, R_ref by ssprk43 at cfl = 0.1 on the same grid, beside the grid's own error (the same solve on
twice the cells) where --grid is given.

    python benchmarks/bench_explicit.py            # mmn_isotropic (d = 40 and d = 5), mmn_anisotropic, teacher_student_2d
    python benchmarks/bench_explicit.py --grid     # also the grid error of mmn_isotropic (a 3200-cell solve)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mfdyn.config import load_config  # noqa: E402
from mfdyn.problems import make_problem  # noqa: E402
from pde import solve  # noqa: E402
from pde.engine import PDEEngine  # noqa: E402

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
CASES = (("mmn_isotropic", ()), ("mmn_isotropic", ("problem.d=5",)), ("mmn_anisotropic", ()),
         ("teacher_student_2d", ()))
STEPPERS = ("explicit", "ssprk43")
ROUNDS = 6


def engine_of(name: str, overrides: tuple[str, ...]) -> PDEEngine:
    config = load_config(CONFIGS / f"{name}.toml", list(overrides))
    engine = PDEEngine(make_problem(config), config)
    engine.prepare(diagnostics=False)
    return engine


def risks(engine: PDEEngine, stepper: str, cfl: float | None = None) -> tuple[np.ndarray, int, float]:
    """(R at the saves after t = 0, accepted steps, seconds of the solve)."""
    cfg = engine.config
    start = time.perf_counter()
    states = list(solve(engine.op, engine.rho0, cfg.save_times()[1:], cfg.dynamics.xi, cfl or cfg.pde.cfl, stepper))
    seconds = time.perf_counter() - start
    return np.array([engine.op.risk(s.rho) for s in states]), states[-1].steps, seconds


def main(grid: bool) -> None:
    print(f"{'case':34s} {'stepper':9s} {'steps':>6s} {'median s':>9s} {'max |R − R_ref|':>16s}")
    for name, overrides in CASES:
        engine = engine_of(name, overrides)
        risks(engine, "ssprk43")                                  # warm-up: compilation, caches
        reference = risks(engine, "ssprk43", 0.1)[0]
        times, last = {s: [] for s in STEPPERS}, {}
        for round_ in range(ROUNDS):
            for stepper in STEPPERS[::1 if round_ % 2 else -1]:     # alternate which goes first
                *last[stepper], seconds = risks(engine, stepper)
                times[stepper].append(seconds)
        label = name + (f" ({', '.join(overrides)})" if overrides else "")
        for stepper in STEPPERS:
            r, steps = last[stepper]
            print(f"{label:34s} {stepper:9s} {steps:6d} {np.median(times[stepper]):9.3f} "
                  f"{np.abs(r - reference).max():16.2e}")
        print(f"{label:34s} ratio explicit / ssprk43 = {np.median(times['explicit']) / np.median(times['ssprk43']):.2f}")
        if grid and name == "mmn_isotropic" and not overrides:
            cells = engine.config.pde.cells[0]
            fine = engine_of(name, (f"pde.cells={2 * cells}",))
            print(f"{label:34s} grid error, {cells} against {2 * cells} cells: max |ΔR| = "
                  f"{np.abs(risks(fine, 'ssprk43', 0.4)[0] - reference).max():.2e}")


if __name__ == "__main__":
    main("--grid" in sys.argv[1:])
