"""A sweep from Python: the SGD–PDE gap against N, its fitted slope, as an xarray Dataset.

    python examples/sweep_in_python.py [OUT_FOLDER]

The dict has the keys of a sweep file (see configs/n_scaling.toml); `base` is a path (relative to
the working folder) or a config dict. Members run on two worker processes, started by "spawn": a
script that runs a sweep must guard it with `if __name__ == "__main__":` (a notebook need not).
Finished members are skipped when the same sweep runs again.
"""
import sys
from pathlib import Path

import mfdyn

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs")
    summary = mfdyn.sweep({"base": str(ROOT / "configs" / "teacher_student_2d.toml"),
                           "name": "example_n_sweep", "folder": str(out / "example_n_sweep"), "x": "particles.n",
                           "set": {"dynamics.t_end": 0.5, "output.every": 0.25, "particles.eps": 5e-4},
                           "vary": {"particles.n": [100, 400, 1600], "particles.seed": [0, 1]}}, workers=2)
    print(summary)
    print("slope of the W1 gap against N:", float(summary["slope"].sel(quantity="w1")))
