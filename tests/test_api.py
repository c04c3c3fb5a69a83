"""The Python API (mfdyn.run, mfdyn.open, Run, Config) and the storage layer under it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mfdyn
from mfdyn.config import DynamicsConfig, InitConfig, ParticlesConfig, load_config
from mfdyn.storage import RunFile, repair

ROOT = Path(__file__).resolve().parents[1]
OU = ROOT / "configs" / "ornstein_uhlenbeck_2d.toml"
SMALL = {"dynamics.t_end": 0.5, "output.every": 0.25, "particles.n": 200, "pde.cells": 32}


def test_import_mfdyn_is_cheap_and_names_the_api():
    out = subprocess.run([sys.executable, "-c", "import sys, mfdyn; print(sorted(m for m in ('numba', 'h5py', "
                          "'validation', 'pde', 'particles', 'matplotlib') if m in sys.modules)); print(dir(mfdyn))"],
                         capture_output=True, text=True, check=True)
    loaded, names = out.stdout.splitlines()
    assert loaded == "[]"
    for name in ("run", "open", "sweep", "gibbs", "Config", "ConfigError", "Run"):
        assert name in names


def test_run_in_memory_gives_named_datasets_and_the_same_numbers_as_a_file(tmp_path):
    memory = mfdyn.run(OU, set=SMALL)
    assert memory.path is None and memory.status == "completed"
    assert set(memory.groups) >= {"pde", "particles", "comparison"}
    pde, particles = memory.pde, memory.particles
    assert pde.density.dims == ("time", "theta1", "theta2")
    assert list(pde.time.values) == [0.0, 0.25, 0.5]
    assert particles.theta.dims == ("time", "particle", "component")
    assert particles.particle.dtype.kind == "i"
    on_disk = mfdyn.run(OU, set=SMALL, out=tmp_path / "ou.h5")
    np.testing.assert_array_equal(memory.pde.density.values, on_disk.pde.density.values)
    np.testing.assert_array_equal(memory.particles.theta.values, on_disk.particles.theta.values)
    np.testing.assert_array_equal(memory.comparison.w1.values, on_disk.comparison.w1.values)
    assert on_disk.config == load_config(OU, [f"{k}={v}" for k, v in SMALL.items()])
    memory.close()
    on_disk.close()


def test_config_forms_are_equivalent():
    text = OU.read_text()
    from_path = mfdyn.run(OU, set=SMALL, engine="pde")
    from_text = mfdyn.run(text, set=SMALL, engine="pde")
    from_dict = mfdyn.run(load_config(OU).to_dict(), set=SMALL, engine="pde")
    for other in (from_text, from_dict):
        np.testing.assert_array_equal(from_path.pde.risk.values, other.pde.risk.values)
    assert "particles" not in from_path.groups
    with pytest.raises(AttributeError, match="no group 'particles'"):
        _ = from_path.particles


def test_run_refuses_to_overwrite_unless_asked(tmp_path):
    out = tmp_path / "run.h5"
    out.write_bytes(b"precious")
    with pytest.raises(ValueError, match="file exists; pass overwrite=True"):
        mfdyn.run(OU, set=SMALL, out=out)
    assert out.read_bytes() == b"precious"
    mfdyn.run(OU, set=SMALL, out=out, overwrite=True, engine="pde").close()
    with mfdyn.open(out) as run:
        assert run.status == "completed"


def test_bad_input_raises_before_anything_runs(tmp_path):
    out = tmp_path / "never.h5"
    with pytest.raises(mfdyn.ConfigError, match="particles.n: must be an integer ≥ 1, got 0"):
        mfdyn.run(OU, set={"particles.n": 0}, out=out)
    with pytest.raises(ValueError, match="engine 'nonsense': unknown; allowed: both, all"):
        mfdyn.run(OU, engine="nonsense", out=out)
    assert not out.exists()


def test_sections_validate_themselves():
    with pytest.raises(mfdyn.ConfigError, match=r"init.kappa: must be a number > 0, got -1"):
        InitConfig(kappa=-1)
    with pytest.raises(mfdyn.ConfigError) as info:
        ParticlesConfig(n=0, eps=-1.0)
    assert len(info.value.problems) == 2
    with pytest.raises(mfdyn.ConfigError, match="dynamics.t_end: missing"):
        DynamicsConfig()
    assert ParticlesConfig(n=7).n == 7


def test_config_from_dict_and_replace():
    config = load_config(OU)
    assert mfdyn.Config.from_dict(config.to_dict()) == config
    bigger = config.replace("particles.n", 1600)
    assert bigger.particles.n == 1600 and config.particles.n == 2000
    assert bigger.overrides == ("particles.n=1600",)
    with pytest.raises(mfdyn.ConfigError, match="particles.n: must be an integer ≥ 1"):
        config.replace("particles.n", -3)
    with pytest.raises(mfdyn.ConfigError, match="output.every: must be ≤ dynamics.t_end"):
        config.replace("output.every", 10.0)


def test_run_compare_and_plot(tmp_path):
    run = mfdyn.run(OU, set=SMALL)
    table = run.compare()
    assert "PDE vs SGD" in str(table)
    np.testing.assert_array_equal(table["w1"], run.comparison.w1.values)
    assert table.to_xarray().w1.dims == ("time",)
    figure = run.plot(tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 1000
    assert figure.axes[0].get_xlabel() == "t"


def test_every_group_exports_to_netcdf(tmp_path):
    run = mfdyn.run(OU, set=SMALL, out=tmp_path / "ou.h5")
    for group in run.groups:
        run.group(group).to_netcdf(tmp_path / f"{group}.nc", engine="h5netcdf")
    import xarray as xr

    with xr.open_dataset(tmp_path / "ou.h5", engine="h5netcdf", group="particles") as ds:
        assert ds.theta.dims == ("time", "particle", "component")
        ds.to_netcdf(tmp_path / "roundtrip.nc", engine="h5netcdf")
    run.close()


def test_a_killed_run_opens_and_repair_makes_a_plain_file(tmp_path):
    out = tmp_path / "killed.h5"
    code = (f"import mfdyn; mfdyn.run({str(ROOT / 'configs' / 'mmn_isotropic.toml')!r}, "
            f"set={{'dynamics.t_end': 10.0, 'output.every': 0.1}}, engine='particles', out={str(out)!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            time.sleep(0.2)
            try:
                with RunFile.open(out) as f:
                    if f.count("particles") >= 2:
                        break
            except (OSError, ValueError, KeyError):
                pass
        else:
            pytest.fail("the run never wrote two snapshots")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    import h5py

    with mfdyn.open(out) as run:
        assert run.status == "running"
        snapshots = len(run.particles.time)
        assert snapshots >= 2
        first = run.particles.theta.values[0]
    with pytest.raises(OSError):
        h5py.File(out, "r").close()          # HDF5 still marks it as open for writing
    repair(out)
    with h5py.File(out, "r") as plain:      # a plain reader now opens it
        assert plain["particles/time"].shape[0] == snapshots
    with mfdyn.open(out) as run:
        assert run.status == "interrupted"
        np.testing.assert_array_equal(run.particles.theta.values[0], first)
        assert run.particles.theta.dims == ("time", "particle", "component")
