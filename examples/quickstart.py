"""Quick start: run the shipped teacher–student config from Python, look at it, plot it.

    python examples/quickstart.py [OUT_FOLDER]

Runs PDE and SGD in memory (no file), prints the comparison table, writes the figure, then runs
again into a file and reopens it, as a notebook would.
"""
import sys
from pathlib import Path

import mfdyn

ROOT = Path(__file__).resolve().parents[1]
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs")
out.mkdir(parents=True, exist_ok=True)

# A shorter horizon and fewer neurons than shipped, so that this takes seconds.
run = mfdyn.run(ROOT / "configs" / "teacher_student_2d.toml",
                set={"dynamics.t_end": 1.0, "particles.n": 400, "output.every": 0.5})
print(run)
print(run.pde.risk.values)                 # R(ρ_t) at the save times (an xarray DataArray)
print(run.particles.theta.shape)           # (time, particle, component)
print(run.compare())                       # the table `mfdyn compare` prints
run.plot(out / "quickstart.png")

# The same run into a file, reopened later (also works on a run that was killed).
path = out / "quickstart.h5"
mfdyn.run(ROOT / "configs" / "teacher_student_2d.toml", set={"dynamics.t_end": 0.5, "particles.n": 200},
          out=path, overwrite=True).close()
with mfdyn.open(path) as again:
    print(again.status, again.config.particles.n, float(again.pde.risk[-1]))
