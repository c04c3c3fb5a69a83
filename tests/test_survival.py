"""Runs that survive (issue 6): SIGKILL at random moments, resume = uninterrupted, blow-ups, info, xarray."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from mfdyn.storage import RunFile, repair
from validation.cli import main

ROOT = Path(__file__).resolve().parents[1]
LONG = """
[problem]
name = "mmn_isotropic"
d = 10
[dynamics]
t_end = 3.0
{extra_dynamics}
[pde]
cells = 300
bounds = [[0.0, 5.0]]
{extra_pde}
[particles]
n = 200
eps = 1e-4
[output]
every = 0.05
"""



def open_run(path: Path) -> h5py.File:
    """The h5py file under mfdyn's reader (SWMR for a killed run), to check the layout itself."""
    return RunFile.open(path).h5


def completed(f: h5py.File, group: str) -> int:
    """Complete snapshots of a group: the rows of its time, written last."""
    return f[group]["time"].shape[0] if group in f else 0


def write_config(tmp_path: Path, name: str = "long.toml", extra_dynamics: str = "", extra_pde: str = "") -> Path:
    path = tmp_path / name
    path.write_text(LONG.format(extra_dynamics=extra_dynamics, extra_pde=extra_pde))
    return path


def start_run(config: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "validation.cli", "run", str(config), "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def rows(out: Path, group: str) -> int:
    """Complete snapshots of a group, read while the run writes. Without a file lock: a reader holding one at the
    moment the writer enters SWMR mode makes the run fail ("unable to lock file")."""
    try:
        with h5py.File(out, "r", swmr=True, locking=False) as f:
            return completed(f, group)
    except (ValueError, OSError, KeyError, FileNotFoundError):
        return 0


def kill_when(proc: subprocess.Popen, out: Path, group: str, at_least: int, timeout: float = 120,
              then: float = 0.0) -> None:
    """SIGKILL once `group` holds at_least complete snapshots (polling the file), `then` seconds later."""
    deadline = time.time() + timeout
    while rows(out, group) < at_least:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.02)
    time.sleep(then)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def check_valid(out: Path) -> tuple[int, int]:
    with open_run(out) as f:
        assert f.attrs["status"] in ("running", "completed")
        counts = []
        for group in ("pde", "particles"):
            n = completed(f, group)
            counts.append(n)
            for name, ds in f[group].items():
                if ds.maxshape[0] is None:          # every series holds every complete snapshot
                    assert ds.shape[0] >= n, (group, name)
            if n:
                t = f[group]["time"][:n]
                assert np.all(np.diff(t) > 0)
        n = counts[0]
        if n:
            density = f["pde/density"][:n]
            assert np.all(np.isfinite(density)) and density.min() >= 0
            np.testing.assert_allclose(f["pde/mass"][:n], f["pde/mass"][0], rtol=1e-12)
        return counts[0], counts[1]


def check_prefix(cut: Path, whole: Path) -> None:
    """Every complete snapshot of the killed file reads back equal to the same snapshot of the uninterrupted
    run (and its fixed coordinates are the same)."""
    with open_run(cut) as b, h5py.File(whole, "r") as a:
        for group in ("pde", "particles"):
            if group not in b:
                continue
            n = completed(b, group)
            assert set(b[group]) == set(a[group]), group
            for name, ds in b[group].items():
                rows_ = slice(0, n) if ds.maxshape[0] is None else slice(None)
                np.testing.assert_array_equal(ds[rows_], a[group][name][rows_], err_msg=f"{group}/{name}")


def test_sigkill_at_random_moments_leaves_valid_files(tmp_path):
    """Kills at random moments (sleeps: maybe before the first snapshot) and after a random number of complete
    snapshots of each engine (polling the file, then a random delay into the next step): every file left
    opens, and its complete snapshots are those of the uninterrupted run."""
    config = write_config(tmp_path)
    whole = tmp_path / "whole.h5"
    assert main(["run", str(config), "--out", str(whole)]) == 0
    rng = random.Random(2026)
    kills = [(None, 0), (None, 0), ("pde", 1), ("pde", rng.randint(2, 60)), ("particles", 1),
             ("particles", rng.randint(2, 20))]
    for trial, (group, at_least) in enumerate(kills):
        out = tmp_path / f"killed{trial}.h5"
        proc = start_run(config, out)
        if group is None:
            time.sleep(rng.uniform(1.0, 5.0))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            if not out.exists():
                continue
        else:
            kill_when(proc, out, group, at_least, then=rng.uniform(0.0, 0.1))
            assert proc.returncode == -signal.SIGKILL, trial           # it was killed, it did not finish
        n_pde, n_particles = check_valid(out)
        check_prefix(out, whole)
        if group is not None:                                           # these files must hold snapshots
            assert {"pde": n_pde, "particles": n_particles}[group] >= at_least, (trial, n_pde, n_particles)
            assert n_particles < 61, trial


KILLED_IN_FINISH = """
import os, signal, sys
import numpy as np
from mfdyn.storage import RunWriter
writer = RunWriter(sys.argv[1], "[problem]", 0)
writer.scale("g", "time")
writer.series("g", "x", (3,), ("time",))
writer.start()
for k in range(4):
    writer.append("g", {"time": float(k), "x": np.full(3, k)})
writer.set_attrs("g", steps=4)
def final(f):
    f.h5["g"].attrs["half"] = 1                         # a write in progress, then the kill
    f.h5.flush()
    os.kill(os.getpid(), signal.SIGKILL)
writer.finish("completed", final)
"""


def test_a_run_killed_while_finishing_keeps_its_snapshots_and_stays_resumable(tmp_path):
    """finish() writes into a copy: a kill in the middle of its writes (here from inside final()) leaves the
    closed SWMR file, readable and writable, status "running", every snapshot there."""
    out = tmp_path / "run.h5"
    proc = subprocess.run([sys.executable, "-c", KILLED_IN_FINISH, str(out)], cwd=ROOT, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    with RunFile.open(out, "r+") as f:
        assert f.status == "running"
        np.testing.assert_array_equal(f.series("g", "x"), np.repeat(np.arange(4.0), 3).reshape(4, 3))
        assert "half" not in f.group_attrs("g") and "steps" not in f.group_attrs("g")


@pytest.mark.parametrize("group,at_least,extra_dynamics,extra_pde", [
    ("pde", 5, "", ""),                                                     # killed while solving the PDE
    ("particles", 3, "beta = 50.0\nlambda = 0.1", "rtol = 1e-6"),           # killed in SGD; noise, error control
])
def test_resume_ends_with_the_numbers_of_an_uninterrupted_run(tmp_path, group, at_least, extra_dynamics, extra_pde):
    config = write_config(tmp_path, extra_dynamics=extra_dynamics, extra_pde=extra_pde)
    whole = tmp_path / "whole.h5"
    assert main(["run", str(config), "--out", str(whole)]) == 0
    cut = tmp_path / "cut.h5"
    proc = start_run(config, cut)
    kill_when(proc, cut, group, at_least)
    n_pde, n_particles = check_valid(cut)
    assert n_pde < 61 or n_particles < 61                                    # it was really cut short
    assert main(["run", "--resume", str(cut)]) == 0
    with h5py.File(whole, "r") as a, h5py.File(cut, "r") as b:
        assert b.attrs["status"] == "completed" and b.attrs["resumed_from_status"] == "running"
        for name in ("pde/time", "pde/density", "pde/risk", "pde/free_energy", "particles/time",
                     "particles/theta", "particles/risk", "comparison/risk_gap"):
            np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
        for key in ("steps", "boundary_mass_max", "mass_reached_boundary"):   # the engines' records, too
            assert a["pde"].attrs[key] == b["pde"].attrs[key], key


# The code of a version whose "auto" took SSP-RK3 for noiseless runs, as every version before ssprk43 did
# (pde.solve is also the name of the function pde exports: the module is reached through sys.modules)
OLD_AUTO = ("import sys, pde.solve; sys.modules['pde.solve'].AUTO_EXPLICIT = 'explicit'; "
            "from validation.cli import main; sys.exit(main(sys.argv[1:]))")


def test_a_resume_keeps_the_stepper_the_run_started_with(tmp_path):
    """A run file started by a version whose "auto" chose another stepper resumes on the one the file records (its
    dt_next and step count are that stepper's), and ends with the numbers of an uninterrupted run of that version."""
    config = write_config(tmp_path)
    whole, cut = tmp_path / "whole.h5", tmp_path / "cut.h5"
    args = ["run", str(config), "--engine", "pde", "--out"]
    assert subprocess.run([sys.executable, "-c", OLD_AUTO, *args, str(whole)], cwd=ROOT).returncode == 0
    proc = subprocess.Popen([sys.executable, "-c", OLD_AUTO, *args, str(cut)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    kill_when(proc, cut, "pde", 5)
    with open_run(cut) as f:
        assert f.attrs["status"] == "running" and completed(f, "pde") < 61               # really cut short
    assert main(["run", "--resume", str(cut)]) == 0                          # today's auto takes ssprk43
    with h5py.File(whole, "r") as a, h5py.File(cut, "r") as b:
        assert a["pde"].attrs["stepper"] == b["pde"].attrs["stepper"] == "explicit"
        for name in ("pde/density", "pde/risk", "pde/steps", "pde/dt_next"):
            np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)


def test_resume_refuses_a_completed_run(tmp_path, capsys):
    config = write_config(tmp_path)
    out = tmp_path / "done.h5"
    assert main(["run", str(config), "--out", str(out), "--set", "dynamics.t_end=0.1"]) == 0
    assert main(["run", "--resume", str(out)]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_particle_blow_up_stops_with_cause_and_fix_and_keeps_the_snapshots(tmp_path, capsys):
    config = write_config(tmp_path)
    out = tmp_path / "blow.h5"
    # 2εξλ = 10: each step multiplies w by −9, so the particles overflow within about 330 steps
    code = main(["run", str(config), "--out", str(out), "--engine", "particles", "--set", "particles.eps=0.01",
                 "--set", "dynamics.lambda=500.0", "--set", "output.every=0.5", "--set", "dynamics.t_end=5.0"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "non-finite" in err and "particles.eps" in err and "Warning" not in err
    with h5py.File(out, "r") as f:
        assert f.attrs["status"].startswith("failed: the particles' risk became non-finite")
        n = completed(f, "particles")
        assert n >= 1 and np.all(np.isfinite(f["particles/theta"][:n])) and np.all(np.isfinite(f["particles/risk"][:n]))


def test_pde_blow_up_is_caught_at_the_step(tmp_path, capsys, monkeypatch):
    import importlib

    solve_module = importlib.import_module("pde.solve")         # pde.solve is also the function
    original, calls = solve_module.interaction_rhs, []

    def poisoned(op, xi):                        # the fused right-hand side (β = ∞), NaN from its 201st call on
        rhs = original(op, xi)

        def nan_after(rho, out):
            calls.append(1)
            bound = rhs(rho, out)
            if len(calls) > 200:
                out *= np.nan
            return bound
        return nan_after

    monkeypatch.setattr(solve_module, "interaction_rhs", poisoned)
    out = tmp_path / "nan.h5"
    assert main(["run", str(write_config(tmp_path)), "--out", str(out), "--engine", "pde"]) == 1
    err = capsys.readouterr().err
    assert "non-finite or negative" in err and "pde.cfl" in err
    with h5py.File(out, "r") as f:
        assert f.attrs["status"].startswith("failed: PDE density")
        assert completed(f, "pde") >= 2


def test_info_shows_provenance_and_contents(tmp_path, capsys):
    out = tmp_path / "run.h5"
    assert main(["run", str(write_config(tmp_path)), "--out", str(out), "--set", "dynamics.t_end=0.1"]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    for needle in ("status completed", "wall_seconds", "compile_seconds", "seed_entropy", "numba_version",
                   "threads", "/pde  (3 complete snapshots)", "density", "[problem]"):
        assert needle in text, needle


def test_xarray_sees_named_coordinates(tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    out = tmp_path / "run.h5"
    assert main(["run", str(write_config(tmp_path)), "--out", str(out), "--set", "dynamics.t_end=0.1"]) == 0
    pde = xr.open_dataset(out, engine="h5netcdf", group="pde")
    assert pde["density"].dims == ("time", "r") and pde.sizes["r"] == 300
    np.testing.assert_allclose(pde["time"].values, [0.0, 0.05, 0.1])
    particles = xr.open_dataset(out, engine="h5netcdf", group="particles")
    assert particles["theta"].dims == ("time", "particle", "component")
    assert float(pde["risk"].sel(time=0.1)) == pytest.approx(float(h5py.File(out, "r")["pde/risk"][2]))


def test_runs_without_particle_risk_complete(tmp_path):
    out = tmp_path / "norisk.h5"
    assert main(["run", str(write_config(tmp_path)), "--out", str(out), "--set", "dynamics.t_end=0.1",
                 "--set", "output.particle_risk=false"]) == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "completed" and np.all(np.isnan(f["particles/risk"][:]))
        assert np.all(np.isfinite(f["comparison/gap_0"][:]))


def test_compile_time_is_recorded_when_numba_compiles(tmp_path):
    """A cold Numba cache: the run file's compile_seconds is the (large) compilation time, not 0."""
    out = tmp_path / "cold.h5"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    subprocess.run([sys.executable, "-m", "validation.cli", "run", str(write_config(tmp_path)), "--out", str(out),
                    "--set", "dynamics.t_end=0.1", "--engine", "pde"], cwd=ROOT, check=True, env=env,
                   capture_output=True)
    with h5py.File(out, "r") as f:
        assert f.attrs["compile_seconds"] > 0.5 and f.attrs["compile_seconds"] < f.attrs["wall_seconds"]


def test_a_resume_refuses_a_file_whose_recorded_stepper_this_version_lacks(tmp_path, capsys):
    """A run file naming a stepper the registry does not have is refused in one line naming it and those there are;
    the file itself is left as it was."""
    config = write_config(tmp_path)
    cut = tmp_path / "cut.h5"
    proc = start_run(config, cut)
    kill_when(proc, cut, "pde", 3)
    repair(cut)                                          # writable again, to edit the record
    with RunFile.open(cut, "r+") as f:
        f.h5["pde"].attrs["stepper"] = "rk-nonesuch"
    before = cut.read_bytes()
    assert main(["run", "--resume", str(cut)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'rk-nonesuch'" in err[0] and "ssprk43" in err[0]
    assert cut.read_bytes() == before
