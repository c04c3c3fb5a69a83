"""The coupled systems of docs/math.md §8 (particles.coupled): G and T from SGD's own draw, the parts of the gap.

- For the data-free linear flows SGD is the Euler scheme of G itself: the SGD part is SGD's time error, O(ε),
  and with no interaction (OU) G and T are the same flow, so the interaction part is exactly 0.
- The parts sum to the total gap, and halving G's and T's time step moves no part by 1% of the smallest.
- The sampling part has the law of an iid sample: mean 0, standard deviation std_i f(z_i^T) / √N.
- Bad input is refused before a file exists; a killed coupled run resumes bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest

import mfdyn
from mfdyn.storage import RunFile
from validation.cli import main

TS = "configs/teacher_student_2d.toml"
SMALL_TS = {"particles.coupled": True, "particles.n": 200, "particles.eps": 2.5e-4, "dynamics.t_end": 1.0,
            "pde.cells": [72, 80]}


def parts_of(table, q):
    return [table[f"{p}_part_{q}"] for p in ("sgd", "interaction", "sampling")]


def quantities(table):
    return ["risk"] + [k[len("total_"):] for k in table if k.startswith("total_") and k != "total_risk"]


def test_linear_flows_sgd_is_the_euler_scheme_of_g_and_ou_has_no_interaction_part():
    gaps = []
    for eps in (2e-3, 1e-3):
        run = mfdyn.run("configs/quadratic_interaction_2d.toml", set={"particles.coupled": True, "particles.eps": eps,
                                                                        "particles.n": 400, "pde.cells": 64})
        s, g = (getattr(run, name).theta.values[-1] for name in ("particles", "gd"))
        gaps.append(np.abs(s - g).max())
        assert np.abs(s - g).max() < 10 * eps                              # S − G is a time error, not noise
    assert 1.7 < gaps[0] / gaps[1] < 2.3                                   # of first order: Euler's
    ou = mfdyn.run("configs/ornstein_uhlenbeck_2d.toml", set={"particles.coupled": True, "particles.n": 300,
                                                               "pde.cells": 64}).compare()
    for q in quantities(ou.table):
        assert np.all(ou[f"interaction_part_{q}"] == 0.0), q              # G and T: one flow, the same numbers
        assert np.max(np.abs(ou[f"sgd_part_{q}"])) > 0                     # while SGD's Euler steps differ


SMALL_MMN = {"particles.coupled": True, "particles.n": 300, "dynamics.t_end": 1.0, "output.every": 0.5,
             "pde.cells": 400, "output.observables": ["tanh(r - 1)", "exp(-(r - 1.4)**2)"]}


@pytest.mark.parametrize("config,sets,half", [(TS, SMALL_TS, 0.0125 / 2), ("configs/mmn_isotropic.toml", SMALL_MMN, 0.01)])
def test_parts_sum_to_the_gap_and_do_not_move_when_the_auto_step_is_halved(config, sets, half):
    tables = [mfdyn.run(config, set={**sets, "particles.coupled_dt": dt}).compare().table for dt in (0.0, half)]
    coarse, fine = tables
    for q in quantities(coarse):
        total = coarse[f"total_{q}"]
        np.testing.assert_allclose(sum(parts_of(coarse, q)), total, rtol=0, atol=1e-12 * max(1.0, np.abs(total).max()))
        smallest = min(np.abs(p[1:]).max() for p in parts_of(coarse, q))   # t = 0: G = T = S, two parts are 0
        moved = max(np.abs(a - b).max() for a, b in zip(parts_of(coarse, q), parts_of(fine, q)))
        assert moved <= 0.01 * smallest, (q, moved, smallest)
    assert np.max(coarse["parts_residual"]) <= 1e-12


def test_g_and_t_start_from_sgds_draw_and_use_its_noise():
    run = mfdyn.run(TS, set={**SMALL_TS, "dynamics.beta": 200.0, "dynamics.t_end": 0.25})
    theta = {g: getattr(run, g).theta.values for g in ("particles", "gd", "tracers")}
    assert np.array_equal(theta["particles"][0], theta["gd"][0]) and np.array_equal(theta["gd"][0], theta["tracers"][0])
    # the same Brownian path: after t = 0.25 the clouds differ by the drift's difference, far below the noise
    # sqrt(4ξt/β) = 0.07 each particle has moved by
    noise = np.sqrt(4 * 1.0 * 0.25 / 200.0)
    assert np.abs(theta["gd"][-1] - theta["particles"][-1]).max() < 0.2 * noise
    assert np.abs(theta["gd"][-1] - theta["tracers"][-1]).max() < 0.2 * noise


def test_sampling_part_has_the_law_of_an_iid_sample():
    """Over 48 seeds, the tracers' part is centred and its spread is std_i f(z_i^T)/√N (OU: no grid coupling
    in the drift, so T − ρ_t is sampling plus the PDE's grid error). The test functions are wide against the
    64-cell grid, so that the grid error stays well below the standard error of the mean over the seeds."""
    n, values, spreads = 400, [], []
    wide = ["tanh(theta1)", "exp(-theta1**2/2)", "tanh(theta2)", "exp(-theta2**2/2)", "tanh(theta1)*tanh(theta2)"]
    for seed in range(48):
        table = mfdyn.run("configs/ornstein_uhlenbeck_2d.toml",
                          set={"particles.coupled": True, "particles.n": n, "particles.seed": seed, "pde.cells": 64,
                               "dynamics.t_end": 0.5, "output.observables": wide}).compare().table
        values.append([table[f"sampling_part_{q}"][-1] for q in quantities(table)[1:]])
        spreads.append([table[f"sd_tracers_{q}"][-1] for q in quantities(table)[1:]])
    values, spreads = np.array(values), np.array(spreads)
    stderr = values.std(axis=0, ddof=1) / np.sqrt(len(values))
    assert np.all(np.abs(values.mean(axis=0)) < 3.5 * stderr)
    ratio = values.std(axis=0, ddof=1) * np.sqrt(n) / spreads.mean(axis=0)
    assert np.all(np.abs(ratio - 1) < 0.35), ratio          # 48 samples: the sd's own relative error is 10%


@pytest.mark.parametrize("args,needle", [
    (["--engine", "pde", "--set", "particles.coupled=true"], "particles.coupled"),
    (["--engine", "kernel", "--set", "particles.coupled=true"], "particles.coupled"),
    (["--set", "particles.coupled=true", "--set", "particles.coupled_dt=0.00033"], "particles.coupled_dt"),
])
def test_coupled_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, needle):
    out = tmp_path / "run.h5"
    assert main(["run", TS, "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_a_killed_coupled_run_resumes_bit_for_bit(tmp_path):
    from test_survival import kill_when, start_run

    config = tmp_path / "coupled.toml"
    sets = {**SMALL_TS, "dynamics.beta": 400.0, "dynamics.t_end": 1.5}
    config.write_text(mfdyn.config.as_config(TS, sets).to_toml())
    whole, cut = tmp_path / "whole.h5", tmp_path / "cut.h5"
    assert main(["run", str(config), "--out", str(whole)]) == 0
    proc = start_run(config, cut)
    kill_when(proc, cut, "tracers", 2)
    assert main(["run", "--resume", str(cut)]) == 0
    with RunFile.open(whole) as a, RunFile.open(cut) as b:
        assert b.attrs["resumed_from_status"] == "running"
        for group in ("gd", "tracers"):
            for name in ("time", "theta", "risk", "steps"):
                np.testing.assert_array_equal(a.series(group, name), b.series(group, name), err_msg=f"{group}/{name}")


def test_a_resumed_coupled_run_replays_its_pde_with_the_stepper_its_file_records(tmp_path):
    """A coupled run made by a version whose "auto" took SSP-RK3 resumes with SSP-RK3 for /tracers' PDE too, and ends
    with the bits of an uninterrupted run of that version; /tracers records the stepper it followed."""
    import subprocess
    import sys

    from test_survival import OLD_AUTO, ROOT, kill_when

    config = tmp_path / "coupled.toml"
    sets = {**SMALL_TS, "dynamics.t_end": 1.5}
    config.write_text(mfdyn.config.as_config(TS, sets).to_toml())
    whole, cut = tmp_path / "whole.h5", tmp_path / "cut.h5"
    args = ["run", str(config), "--out"]
    assert subprocess.run([sys.executable, "-c", OLD_AUTO, *args, str(whole)], cwd=ROOT).returncode == 0
    proc = subprocess.Popen([sys.executable, "-c", OLD_AUTO, *args, str(cut)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    kill_when(proc, cut, "tracers", 2)
    assert main(["run", "--resume", str(cut)]) == 0                          # today's auto takes ssprk43
    with RunFile.open(whole) as a, RunFile.open(cut) as b:
        assert a.group_attrs("tracers")["stepper"] == b.group_attrs("tracers")["stepper"] == "explicit"
        for name in ("time", "theta", "risk", "steps"):
            np.testing.assert_array_equal(a.series("tracers", name), b.series("tracers", name), err_msg=name)


def test_the_tracers_of_a_second_run_like_the_first_need_no_pde_and_get_its_bits(monkeypatch):
    """A completed run keeps the moments its tracers asked for (coupled/tracers.py): the next run with the same grid
    config, ε and step (here another seed and N, as in a sweep) takes them without solving the PDE, and its /tracers
    equal those of the same run made afresh, bit for bit; another grid config solves again."""
    from coupled import tracers
    from pde.engine import PDEEngine

    sets = {**SMALL_TS, "dynamics.t_end": 0.5, "output.every": 0.25}
    monkeypatch.setattr(tracers, "_SOLVED", type(tracers._SOLVED)())
    mfdyn.run(TS, set=sets, engine="particles")
    solves = []
    states = PDEEngine.states
    monkeypatch.setattr(PDEEngine, "states", lambda self, *a, **k: solves.append(1) or states(self, *a, **k))
    again = mfdyn.run(TS, set={**sets, "particles.seed": 5, "particles.n": 150}, engine="particles")
    assert solves == []
    tracers._SOLVED.clear()
    fresh = mfdyn.run(TS, set={**sets, "particles.seed": 5, "particles.n": 150}, engine="particles")
    assert solves == [1]
    for name in ("theta", "risk", "time"):
        assert np.array_equal(getattr(again.tracers, name).values, getattr(fresh.tracers, name).values), name
    mfdyn.run(TS, set={**sets, "pde.cfl": 0.4}, engine="particles")       # another grid config: solved again
    assert solves == [1, 1]
