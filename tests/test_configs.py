"""Every config in configs/ validates, and runs end to end when shortened with --set."""
from __future__ import annotations

import tomllib
from pathlib import Path

import h5py
import pytest

from mfdyn.config import load_config
from validation.cli import main

CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.toml")
                 if "base" not in tomllib.loads(p.read_text()))          # sweep files name a base config


def test_there_are_configs():
    assert len(CONFIGS) >= 6


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_runs_shortened(path, tmp_path, capsys):
    config = load_config(path)
    step = config.particles.eps * 20
    out = tmp_path / "run.h5"
    assert main(["run", str(path), "--out", str(out), "--set", f"dynamics.t_end={2 * step!r}",
                 "--set", f"output.every={step!r}", "--set", "particles.n=50"]) == 0
    assert main(["compare", str(out), "--plot", str(tmp_path / "fig.png")]) == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "completed" and f["pde/risk"].shape == (3,)
    assert (tmp_path / "fig.png").stat().st_size > 10_000
