"""Start-up: nothing heavy is imported before a command needs it (issue 16, item 1).

Each check runs in a fresh interpreter and reads sys.modules afterwards: the parser alone (`mfdyn --help`)
imports no numerical library at all; loading a config imports the problems (they validate [problem]) but
neither scipy.stats, scipy.special (Φ, erf, the sigmoid and the χ² law of the grid's ρ_0, on first use) nor
matplotlib; a particle run imports no plotting, no sparse solver, no Dask and no xarray; nor does a PDE run,
which also leaves scipy.stats alone (its ρ_0 takes the χ² CDF from scipy.special: scipy.stats costs ~1 s).
No timings here: benchmarks/bench_startup.py measures them.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_MMN

ROOT = Path(__file__).resolve().parents[1]
WATCHED = ("numpy", "numba", "scipy", "scipy.special", "scipy.stats", "scipy.sparse", "h5py", "matplotlib", "dask",
           "distributed", "xarray", "h5netcdf", "PIL")


def imported_after(code: str) -> set[str]:
    """The WATCHED modules in sys.modules after running code in a fresh interpreter (from the repository root)."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {WATCHED!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["sweep", "--help"], ["movie", "--help"]])
def test_help_imports_no_numerical_library(argv):
    code = ("import contextlib, io, validation.cli\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            f"    validation.cli.main({argv!r})")
    assert imported_after(code) == set()


def test_a_bad_command_line_imports_no_numerical_library():
    code = ("import contextlib, io, validation.cli\n"
            "with contextlib.redirect_stderr(io.StringIO()):\n"
            "    assert validation.cli.main(['run', '--engine']) == 2")
    assert imported_after(code) == set()


@pytest.mark.parametrize("config", ["mmn_isotropic", "mmn_anisotropic", "teacher_student_2d", "ornstein_uhlenbeck_2d"])
def test_loading_a_config_imports_neither_scipy_stats_nor_special_nor_matplotlib(config):
    loaded = imported_after(f"from mfdyn.config import load_config\nload_config('configs/{config}.toml')")
    assert "numpy" in loaded                       # the problems were imported: the probe saw the real load
    assert loaded.isdisjoint({"scipy.stats", "scipy.special", "scipy.sparse", "matplotlib", "dask", "xarray"})


def test_a_particle_run_imports_no_plotting_sparse_solver_dask_or_xarray(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_MMN)
    code = ("import contextlib, io, validation.cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert validation.cli.main(['run', {str(config)!r}, '--engine', 'particles', "
            f"'--out', {str(tmp_path / 'run.h5')!r}]) == 0")
    loaded = imported_after(code)
    assert {"numba", "h5py", "scipy.special"} <= loaded      # it ran: kernels, the file and Φ of the exact R_N
    assert loaded.isdisjoint({"scipy.stats", "scipy.sparse", "matplotlib", "dask", "distributed", "xarray",
                              "h5netcdf", "PIL"})


@pytest.mark.parametrize("config", ["mmn_isotropic", "mmn_anisotropic"])
def test_a_pde_run_imports_no_scipy_stats_plotting_sparse_solver_dask_or_xarray(config, tmp_path):
    code = ("import contextlib, io, validation.cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert validation.cli.main(['run', 'configs/{config}.toml', '--engine', 'pde', '--set', 'pde.cells=40', "
            f"'--set', 'dynamics.t_end=0.01', '--set', 'output.every=0.01', '--out', {str(tmp_path / 'run.h5')!r}]) == 0")
    loaded = imported_after(code)
    assert {"numba", "h5py", "scipy.special"} <= loaded      # it ran: kernels, the file, the χ² CDF of ρ_0
    assert loaded.isdisjoint({"scipy.stats", "scipy.sparse", "matplotlib", "dask", "distributed", "xarray",
                              "h5netcdf", "PIL"})
