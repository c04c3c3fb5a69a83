"""The validation layer (issue 5): W1, observables, sweeps on a pool and on Dask, rates."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.stats import norm

from validation import sweep as sw
from validation.cli import main
from validation.observables import SlicedW1, pde_expectation, w1_1d

ROOT = Path(__file__).resolve().parents[1]


def test_w1_1d_is_exact_for_a_shift():
    edges = np.linspace(-6, 6, 4001)
    density = np.diff(norm.cdf(edges)) / np.diff(edges)
    z = norm.ppf((np.arange(20000) + 0.5) / 20000)             # quantiles: the law itself, no noise
    assert w1_1d(z, density, edges) < 2e-4
    for shift in (0.1, 0.7):
        assert w1_1d(z + shift, density, edges) == pytest.approx(shift, abs=2e-4)


def test_sliced_w1_sees_a_shift_in_2d():
    centres = [np.linspace(-5, 5, 201)] * 2
    mesh = np.meshgrid(*centres, indexing="ij")
    density = np.exp(-0.5 * (mesh[0] ** 2 + mesh[1] ** 2)) / (2 * np.pi)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((20000, 2))
    sliced = SlicedW1(centres)
    same, moved = sliced(z, density), sliced(z + [0.5, 0.0], density)
    assert same < 0.03 and moved == pytest.approx(0.5 * np.mean(np.abs(np.cos(np.linspace(0, np.pi, 1000)))), abs=0.05)


def test_pde_expectation_of_a_gaussian():
    centres = [np.linspace(-8, 8, 1601)]
    density = norm.pdf(centres[0])
    assert pde_expectation("exp(-r**2/2)", ("r",), density, centres) == pytest.approx(1 / np.sqrt(2), abs=1e-8)


def test_fit_slope_recovers_an_exponent():
    x = np.array([100.0, 400, 1600, 6400])
    assert sw.fit_slope(x, 3.0 * x**-0.5) == pytest.approx(-0.5, abs=1e-12)


SWEEP = """
base = "{base}"
name = "{name}"
x = "particles.n"
[set]
"dynamics.t_end" = 0.2
"output.every" = 0.1
"particles.eps" = 1e-3
"pde.cells" = [36, 40]
[vary]
"particles.n" = [50, 200]
"particles.seed" = [0, 1]
"""


def write_sweep(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(SWEEP.format(base=ROOT / "configs" / "teacher_student_2d.toml", name=name))
    return path


def member_arrays(folder: Path) -> dict[str, np.ndarray]:
    index = json.loads((folder / "index.json").read_text())
    out = {}
    for m in index["members"]:
        with h5py.File(folder / m["file"], "r") as f:
            out[" ".join(m["overrides"])] = np.concatenate([f["particles/theta"][:].ravel(), f["particles/risk"][:]])
    return out


def test_sweep_runs_skips_finished_members_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(write_sweep(tmp_path, "pool"))]) == 0
    out = capsys.readouterr().out
    assert "rates against particles.n" in out and "slope" in out
    folder = tmp_path / "runs" / "pool"
    for name in ("summary.csv", "summary.h5", "rates.png", "index.json"):
        assert (folder / name).exists()
    with h5py.File(folder / "summary.h5", "r") as f:
        assert set(f) >= {"x", "w1", "gap_0"} and np.all(f["x"][:] == [50, 200])
    first = member_arrays(folder)
    assert len(first) == 4 and len(list(folder.glob("pde-*.h5"))) == 1      # one PDE for all members
    assert main(["sweep", str(write_sweep(tmp_path, "pool"))]) == 0
    assert "0 task(s) to run" in capsys.readouterr().out
    victim = folder / json.loads((folder / "index.json").read_text())["members"][2]["file"]
    victim.unlink()                                                         # an interrupted sweep
    assert main(["sweep", str(write_sweep(tmp_path, "pool"))]) == 0
    assert "1 task(s) to run" in capsys.readouterr().out
    assert member_arrays(folder).keys() == first.keys()
    for key, values in member_arrays(folder).items():
        np.testing.assert_array_equal(values, first[key])


def test_dask_cluster_gives_the_same_runs_as_the_pool(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.chdir(tmp_path)
    sw.run_sweep(sw.load_sweep(write_sweep(tmp_path, "pool")), workers=2, log=lambda *_: None)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        sw.run_sweep(sw.load_sweep(write_sweep(tmp_path, "dask")), scheduler=cluster.scheduler_address,
                     log=lambda *_: None)
    pool, dask = member_arrays(tmp_path / "runs" / "pool"), member_arrays(tmp_path / "runs" / "dask")
    assert pool.keys() == dask.keys()
    for key in pool:
        np.testing.assert_array_equal(pool[key], dask[key])


@pytest.mark.parametrize("text,needle", [
    ('base = "teacher_student_2d.toml"\n[vary]\n"particles.n" = []\n', "sweep.vary"),
    ('base = "teacher_student_2d.toml"\nx = "particles.eps"\n[vary]\n"particles.n" = [10]\n', "sweep.x"),
    ('base = "teacher_student_2d.toml"\n[vary]\n"particles.n" = [0, 10]\n', "particles.n"),
    ('[vary]\n"particles.n" = [10]\n', "sweep.base"),
])
def test_bad_sweeps_are_one_line_errors(tmp_path, capsys, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text.replace("teacher_student_2d.toml", str(ROOT / "configs" / "teacher_student_2d.toml")))
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_shipped_sweeps_validate_every_member():
    import tomllib

    sweeps = [p for p in sorted((ROOT / "configs").glob("*.toml")) if "base" in tomllib.loads(p.read_text())]
    assert {p.stem for p in sweeps} >= {"n_scaling", "n_scaling_mmn", "eps_scaling"}
    for path in sweeps:
        spec = sw.load_sweep(path)
        assert len(spec.members) >= 20
    n_spec = sw.load_sweep(ROOT / "configs" / "n_scaling.toml")
    assert {"particles.n", "particles.seed"} <= set(n_spec.vary)
    assert min(n_spec.vary["particles.n"]) <= 100 and max(n_spec.vary["particles.n"]) >= 12800
    assert len(n_spec.vary["particles.seed"]) >= 8
