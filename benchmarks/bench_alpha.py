"""The output scale α (docs/math.md §7): what large α and the laziness diagnostics cost.

1. The PDE of configs/teacher_student_lazy.toml at α = 256 against α = 1, same stepper settings: its
   velocity is O(1/α), so the explicit stepper's positivity bound allows longer steps (ratio ≤ 1 wanted).
2. The laziness diagnostics (W2 displacement and kernel change on the grid; displacement and kernel
   change of the particles) as a share of a whole `mfdyn.run` of configs/teacher_student_2d.toml
   (both engines; bar: ≤ 20%), measured by timing the diagnostic calls inside the run.

    python benchmarks/bench_alpha.py
"""
from __future__ import annotations

import time
from pathlib import Path

from timing import median_time

import mfdyn
import particles.engine as particle_engine
import pde.engine as pde_engine

ROOT = Path(__file__).resolve().parents[1]
LAZY = ROOT / "configs" / "teacher_student_lazy.toml"
SHIPPED = ROOT / "configs" / "teacher_student_2d.toml"


class Stopwatch:
    """Adds up the wall time of calls to the wrapped functions."""

    def __init__(self):
        self.seconds = 0.0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return timed


def main() -> None:
    times = {}
    for alpha in (1.0, 256.0):
        times[alpha] = median_time(lambda a=alpha: mfdyn.run(LAZY, set={"dynamics.alpha": a}, engine="pde").close(), 3)
        with mfdyn.run(LAZY, set={"dynamics.alpha": alpha}, engine="pde") as run:
            steps = int(run.pde.steps.values[-1])
        print(f"PDE, teacher_student_lazy, α = {alpha:>5g}: {times[alpha]:6.2f} s, {steps} steps")
    print(f"ratio α = 256 / α = 1: {times[256.0] / times[1.0]:.2f} (bar: ≤ 1)")

    watch = Stopwatch()
    patches = [(pde_engine, "kernel_change"), (pde_engine, "W2Displacement"), (particle_engine.ParticleEngine,
                                                                                 "laziness")]
    saved = [getattr(obj, name) for obj, name in patches]
    pde_engine.kernel_change = watch.wrap(saved[0])
    original_w2 = saved[1]

    class TimedW2(original_w2):
        def __call__(self, rho):
            return watch.wrap(super().__call__)(rho)

    pde_engine.W2Displacement = TimedW2
    particle_engine.ParticleEngine.laziness = watch.wrap(saved[2])
    original_kernel = pde_engine.PDEEngine.kernel
    pde_engine.PDEEngine.kernel = watch.wrap(original_kernel)
    try:
        mfdyn.run(SHIPPED, set={"dynamics.t_end": 0.25}).close()       # warm caches
        watch.seconds = 0.0
        start = time.perf_counter()
        mfdyn.run(SHIPPED).close()
        total = time.perf_counter() - start
    finally:
        for (obj, name), value in zip(patches, saved):
            setattr(obj, name, value)
        pde_engine.PDEEngine.kernel = original_kernel
    print(f"teacher_student_2d, both engines: run {total:.2f} s, of which laziness diagnostics {watch.seconds:.2f} s "
          f"({100 * watch.seconds / total:.1f}%; bar: ≤ 20%)")
    print(f"(the kernel engine alone: {median_time(lambda: mfdyn.run(SHIPPED, engine='kernel').close(), 3):.2f} s)")


if __name__ == "__main__":
    main()
