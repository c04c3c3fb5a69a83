"""A problem of your own: subclass a Problem, give it a name, and every config can use it.

    python examples/custom_problem.py [OUT_FOLDER]

Here: the teacher–student network (a tanh student in (a, w)) learning the target f*(x) = c·x³
instead of a teacher network. The class registers itself under its name when it is defined; its
[problem] keys are those of teacher_student plus `cubic`.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import mfdyn
from mfdyn.problems.teacher_student import TeacherStudent, TeacherStudentParams
from mfdyn.schema import positive, rule


@dataclass(frozen=True)
class CubicParams(TeacherStudentParams):
    cubic: float = rule(0.3, "float", positive, "> 0", "the target is f*(x) = cubic · x³")


class CubicTarget(TeacherStudent):
    """Teacher–student with the target c·x³ (x ~ N(0, 1))."""

    name = "cubic_target"
    Params = CubicParams

    def target(self, x: np.ndarray) -> np.ndarray:
        return self.params.cubic * x**3

    def default_bounds(self):
        return ((-3.0, 3.0), (-3.0, 3.0))


out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs")
out.mkdir(parents=True, exist_ok=True)
config = {"problem": {"name": "cubic_target", "cubic": 0.3},
          "init": {"kappa": 0.5},
          "dynamics": {"t_end": 1.0},
          "pde": {"cells": [64, 64]},
          "particles": {"n": 400, "eps": 1e-3},
          "output": {"every": 0.25}}
run = mfdyn.run(config)
risk = run.pde.risk.values
print(f"R(ρ_t): {risk[0]:.4f} → {risk[-1]:.4f}; SGD: {float(run.particles.risk[-1]):.4f}")
assert risk[-1] < risk[0]
run.plot(out / "custom_problem.png")
