"""`mfdyn run` and `mfdyn compare` end to end, on a tiny config (docs/guide.md, "The command line" and "The run file")."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from mfdyn.config import load_config
from validation.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = """
[problem]
name = "mmn_isotropic"
d = 10
delta = 0.8
[dynamics]
t_end = 0.2
[pde]
cells = 80
bounds = [[0.0, 4.0]]
[particles]
n = 30
eps = 1e-3
seed = 3
[output]
every = 0.1
"""


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_run_writes_the_documented_layout(tiny, tmp_path, capsys):
    out = tmp_path / "run.h5"
    assert main(["run", str(tiny), "--out", str(out), "--set", "particles.seed=4"]) == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "completed"
        for key in ("schema_version", "mfdyn_version", "created_utc", "config_toml", "seed", "numpy_version",
                    "numba_version", "h5py_version", "threads"):
            assert key in f.attrs, key
        cfg = load_config(f.attrs["config_toml"], from_text=True)
        assert cfg.particles.seed == 4 == f.attrs["seed"]
        assert "particles.seed=4" in f.attrs["overrides"]
        np.testing.assert_allclose(f["pde/time"][:], [0.0, 0.1, 0.2])
        assert f["pde/r"].shape == (80,)
        assert f["pde/density"].shape == (3, 80)
        for name in ("risk", "free_energy", "mass", "finite_n_term"):
            assert f["pde"][name].shape == (3,)
        assert f["pde/density"].dims[1][0].name == "/pde/r"           # a named dimension scale
        np.testing.assert_allclose(f["particles/time"][:], [0.0, 0.1, 0.2])
        assert f["particles/theta"].shape == (3, 30, 10)
        assert f["particles/z"].shape == (3, 30, 1)
        np.testing.assert_allclose(f["particles/z"][2, :, 0], np.linalg.norm(f["particles/theta"][2], axis=1))
        assert f["particles/risk"].shape == (3,)
        assert f["comparison/risk_gap"].shape == (3,)
        assert np.all(np.diff(f["pde/risk"][:]) < 0)


def test_compare_prints_the_table_and_draws_the_figure(tiny, tmp_path, capsys):
    out = tmp_path / "run.h5"
    main(["run", str(tiny), "--out", str(out)])
    capsys.readouterr()
    fig = tmp_path / "fig.png"
    assert main(["compare", str(out), "--plot", str(fig)]) == 0
    text = capsys.readouterr().out
    risk_block, functions_block = text.split("test functions:")
    lines = risk_block.splitlines()
    assert "W1" in functions_block and "f0 = tanh(r)" in functions_block
    header = next(line for line in lines if "R_pde+1/N" in line)
    for column in ("R_pde", "R_sgd", "r5_pde", "r50_pde", "r95_pde", "r5_sgd", "r50_sgd", "r95_sgd"):
        assert column in header
    rows = [line.split() for line in lines if line.split() and line.split()[0] in ("0", "0.1", "0.2")]
    assert len(rows) == 3
    with h5py.File(out, "r") as f:   # the printed numbers are the file's numbers
        assert float(rows[2][3]) == pytest.approx(f["particles/risk"][2], abs=1e-5)
        assert float(rows[2][1]) == pytest.approx(f["pde/risk"][2], abs=1e-5)
    assert fig.stat().st_size > 10_000 and fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("override", ["problem.colour=1", "particles.n=0", "particles.n=3.5", "particles.eps=0",
                                      "problem.delta=1.0", "dynamics.t_end=0", "problem.name=mmn"])
def test_bad_input_is_one_line_exit_2_and_no_file(tiny, tmp_path, capsys, override):
    out = tmp_path / "bad.h5"
    assert main(["run", str(tiny), "--out", str(out), "--set", override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mfdyn: error:")
    assert override.split("=")[0] in err
    assert not out.exists()


def test_existing_output_is_never_overwritten_silently(tiny, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run.h5"
    out.write_bytes(b"precious")
    assert main(["run", str(tiny), "--out", str(out)]) == 2
    assert out.read_bytes() == b"precious"
    assert "--overwrite" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)       # the default name gets a free suffix instead
    assert main(["run", str(tiny), "--engine", "pde"]) == 0
    assert main(["run", str(tiny), "--engine", "pde"]) == 0
    assert (tmp_path / "runs" / "tiny.h5").exists() and (tmp_path / "runs" / "tiny-1.h5").exists()


def test_single_engine_runs_and_compare_explains_what_is_missing(tiny, tmp_path, capsys):
    out = tmp_path / "pde.h5"
    assert main(["run", str(tiny), "--out", str(out), "--engine", "pde"]) == 0
    with h5py.File(out, "r") as f:
        assert "particles" not in f and f.attrs["status"] == "completed"
    assert main(["compare", str(out)]) == 2
    assert "compare needs /pde and /particles; this file has /pde" in capsys.readouterr().err


def test_mass_at_the_domain_edge_is_reported(tiny, tmp_path, capsys):
    out = tmp_path / "edge.h5"
    assert main(["run", str(tiny), "--out", str(out), "--engine", "pde", "--set", "pde.bounds=[[0.0, 1.4]]"]) == 0
    assert "reached the edge" in capsys.readouterr().err
    with h5py.File(out, "r") as f:
        assert bool(f["pde"].attrs["mass_reached_boundary"]) and f["pde"].attrs["boundary_mass_max"] > 1e-6


def _run_subprocess(config: Path, out: Path, threads: int) -> None:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    subprocess.run([sys.executable, "-m", "validation.cli", "run", str(config), "--out", str(out)],
                   check=True, env=env, cwd=ROOT, capture_output=True)


def test_same_numbers_whatever_the_thread_count(tiny, tmp_path):
    one, two = tmp_path / "t1.h5", tmp_path / "t2.h5"
    _run_subprocess(tiny, one, 1)
    _run_subprocess(tiny, two, 2)
    with h5py.File(one, "r") as a, h5py.File(two, "r") as b:
        assert a.attrs["threads"] == 1 and b.attrs["threads"] == 2
        for name in ("pde/density", "pde/risk", "particles/theta", "particles/risk"):
            np.testing.assert_array_equal(a[name][:], b[name][:])


@pytest.mark.slow
def test_shipped_config_meets_the_sgd_pde_agreement_bar(tmp_path, capsys):
    """configs/mmn_isotropic.toml as shipped: |R_sgd − (R_pde + 1/N term)| ≤ 0.03 at t = 1, 2, 5, 10."""
    out = tmp_path / "iso.h5"
    assert main(["run", str(ROOT / "configs" / "mmn_isotropic.toml"), "--out", str(out)]) == 0
    with h5py.File(out, "r") as f:
        t = f["comparison/time"][:]
        gap = f["comparison/risk_gap"][:]
        for t_check in (1.0, 2.0, 5.0, 10.0):
            k = int(np.argmin(np.abs(t - t_check)))
            assert abs(gap[k]) <= 0.03, (t_check, gap[k])
        mass = f["pde/mass"][:]
        assert np.all(np.abs(mass - mass[0]) <= 1e-12 * mass[0])
        assert f["pde/density"][:].min() >= 0.0
        assert np.all(np.diff(f["pde/risk"][:]) <= 0.0)
        assert not f["pde"].attrs["mass_reached_boundary"]


def test_a_run_that_fails_keeps_what_it_computed(tiny, tmp_path, capsys, monkeypatch):
    """An error mid-run: exit 1, one line, status 'failed: …', and every finished snapshot still readable."""
    from mfdyn.problems.mmn_isotropic import MMNIsotropic

    calls = []

    def failing_risk(self, theta):
        calls.append(1)
        if len(calls) == 2:
            raise FloatingPointError("risk went non-finite")
        return 0.5

    monkeypatch.setattr(MMNIsotropic, "exact_risk", failing_risk)
    out = tmp_path / "fail.h5"
    assert main(["run", str(tiny), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "risk went non-finite" in err
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "failed: risk went non-finite"
        assert f["pde/density"].shape[0] == 3            # the finished PDE is all there
        assert f["particles/risk"].shape == (1,) and f["particles/theta"].shape[0] == 1


def test_a_grid_over_the_memory_budget_is_refused_before_any_file(tiny, tmp_path, capsys):
    out = tmp_path / "big.h5"
    assert main(["run", str(tiny), "--out", str(out), "--set", "pde.cells=2000000",
                 "--set", "pde.memory_gb=0.1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pde.memory_gb" in err and "GiB" in err
    assert not out.exists()


@pytest.mark.parametrize("dim", [2, 3])
def test_multidimensional_runs_compare_and_plot(tmp_path, capsys, dim):
    """A 2-D and a 3-D problem end to end: grid-shaped density, quantiles per coordinate, a figure."""
    config = tmp_path / f"ou{dim}.toml"
    config.write_text(f"""
[problem]
name = "ornstein_uhlenbeck"
stiffness = {[1.0, 0.5, 0.7][:dim]}
[init]
kappa = 0.4
mean = {[0.5, -0.3, 0.2][:dim]}
[dynamics]
t_end = 0.4
[pde]
cells = 20
[particles]
n = 300
eps = 1e-3
[output]
every = 0.2
""")
    out, fig = tmp_path / "run.h5", tmp_path / "fig.png"
    assert main(["run", str(config), "--out", str(out)]) == 0
    assert main(["compare", str(out), "--plot", str(fig)]) == 0
    text = capsys.readouterr().out
    for axis in range(1, dim + 1):
        assert f"theta{axis}50_pde" in text and f"theta{axis}50_sgd" in text
    with h5py.File(out, "r") as f:
        assert f["pde/density"].shape == (3,) + (20,) * dim
        assert f["particles/z"].shape == (3, 300, dim)
        medians = f["comparison/quantiles_pde_theta1"][:, 1]
        assert abs(medians[-1] - f["comparison/quantiles_sgd_theta1"][-1, 1]) < 0.05
    assert fig.stat().st_size > 10_000
