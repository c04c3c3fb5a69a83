"""validation.runner runs the first engine and the others in two threads (issue 16): the same numbers as one after
the other, the first failure in engine order raised, one shared status line."""
from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import TINY_MMN

from mfdyn.config import load_config
from mfdyn.errors import BlowUp
from mfdyn.storage import RunFile
from particles.engine import ParticleEngine
from validation import progress, runner


def _run(tmp_path, name: str, engine: str = "both") -> dict[str, np.ndarray]:
    """Every dataset of every group of a run of TINY_MMN (with the coupled systems, so a lane runs three engines)."""
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_MMN)
    out = tmp_path / f"{name}.h5"
    runner.execute(load_config(config, ["particles.coupled=true"]), out, engine).close()
    with RunFile.open(out) as f:
        return {f"{g}/{ds}": np.asarray(f.fixed(g, ds)) for g in f.groups() for ds, _, _ in f.datasets(g)}


def test_two_lanes_give_the_numbers_of_one(tmp_path, monkeypatch):
    lanes = _run(tmp_path, "lanes")
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 1)     # one core: one engine after the other
    serial = _run(tmp_path, "serial")
    assert sorted(lanes) == sorted(serial)
    assert {"pde/density", "particles/theta", "tracers/theta", "gd/theta", "comparison/risk_gap"} <= set(lanes)
    for key in serial:
        np.testing.assert_array_equal(lanes[key], serial[key], err_msg=key)


@pytest.mark.parametrize("failing", ["pde", "particles"])
def test_a_failing_engine_stops_the_run_and_its_error_is_raised(tmp_path, monkeypatch, failing):
    """Either lane failing after its first snapshot ends the run with that engine's error. As one after the other:
    the PDE (engine 0) failing stops SGD at its next snapshot; SGD failing lets the PDE finish (3 snapshots)."""
    from pde.engine import PDEEngine

    cls = PDEEngine if failing == "pde" else ParticleEngine
    original = cls.run

    def run_then_fail(self, start=None, *args, **kwargs):
        for k, snap in enumerate(original(self, start, *args, **kwargs)):
            if k == 1:
                raise BlowUp(f"{failing} failed on purpose")
            yield snap

    monkeypatch.setattr(cls, "run", run_then_fail)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_MMN)
    with pytest.raises(BlowUp, match=f"{failing} failed on purpose"):
        runner.execute(load_config(config), tmp_path / "run.h5", "both")
    with RunFile.open(tmp_path / "run.h5") as f:
        assert f.status.startswith("failed") and f.count(failing) == 1
        if failing == "particles":
            assert f.count("pde") == 3


def test_engines_at_once_share_one_status_line(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", err)
    board = progress.StatusBoard(live=True)
    pde = progress.Progress("pde", 10.0, live=True, board=board, slot=0)
    sgd = progress.Progress("particles", 10.0, live=True, board=board, slot=1)
    sgd.update(0.5, 50)
    pde.update(1.0, 7)
    pde.done()                                   # the board, not the engine, ends the line
    board.close()
    lines = err.getvalue().split("\r")
    assert lines[-1].startswith("pde: t = 1 / 10") and " | particles: t = 0.5 / 10" in lines[-1]
    assert lines[-1].endswith("\n") and err.getvalue().count("\n") == 1
    quiet = progress.StatusBoard(live=False)
    quiet.show(0, "x")
    quiet.close()
    assert err.getvalue().count("\n") == 1


def test_two_lanes_only_with_two_cores_and_a_layer_two_threads_may_enter(monkeypatch):
    import numba

    monkeypatch.setattr(runner.os, "cpu_count", lambda: 1)
    assert not runner.two_lanes()
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(numba.config, "THREADING_LAYER", "workqueue")     # aborts on concurrent parallel kernels
    assert not runner.two_lanes()
