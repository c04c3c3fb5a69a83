"""`mfdyn run` and `mfdyn compare` end to end, on a tiny config (docs/guide.md, "The command line" and "The run file")."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import TINY_MMN as TINY

from mfdyn.config import load_config
from validation.cli import main

ROOT = Path(__file__).resolve().parents[1]


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


def test_compare_prints_the_table_and_draws_the_figure(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")      # one block of columns (the table wraps to the terminal's width)
    out = tmp_path / "run.h5"
    main(["run", str(tiny), "--out", str(out)])
    capsys.readouterr()
    fig = tmp_path / "fig.png"
    assert main(["compare", str(out), "--plot", str(fig)]) == 0
    text = capsys.readouterr().out
    risk_block, functions_block = text.split("test functions:")
    lines = risk_block.splitlines()
    assert "W1" in functions_block and "f0 = tanh((r - 2)/0.5)" in functions_block     # fitted to r ∈ [0, 4]
    header = next(line for line in lines if "R_pde+1/N" in line)
    for column in ("R_pde", "R_sgd", "r_q05_pde", "r_q50_pde", "r_q95_pde", "r_q05_sgd", "r_q50_sgd", "r_q95_sgd"):
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
        assert f"theta{axis}_q50_pde" in text and f"theta{axis}_q50_sgd" in text
    with h5py.File(out, "r") as f:
        assert f["pde/density"].shape == (3,) + (20,) * dim
        assert f["particles/z"].shape == (3, 300, dim)
        medians = f["comparison/quantiles_pde_theta1"][:, 1]
        assert abs(medians[-1] - f["comparison/quantiles_sgd_theta1"][-1, 1]) < 0.05
    assert fig.stat().st_size > 10_000


# ----------------------------------------------------------------------------- rough edges a new user met

def test_a_binary_config_is_one_line_naming_the_file(tmp_path, capsys):
    config, head = tmp_path / "x.toml", b"\x7fELF\x02\x01\x01\x00"
    config.write_bytes(head + bytes(range(256)))              # the first byte that is no UTF-8 is 0x80
    assert main(["run", str(config), "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert err == f"mfdyn: error: invalid config: {config}: not a TOML text file (invalid UTF-8 at byte {len(head) + 0x80})\n"
    assert not (tmp_path / "x.h5").exists()


@pytest.fixture
def no_engines(monkeypatch):
    """Fail the test if any engine is built (the checks must come first)."""
    import validation.runner

    def refuse(*args, **kwargs):
        raise AssertionError("an engine was built")

    monkeypatch.setattr(validation.runner, "build_engines", refuse)


def _uncreatable(tmp_path: Path) -> list[tuple[Path, str]]:
    """Output paths no file can be created at, each with the reason the error must give."""
    afile = tmp_path / "afile"
    afile.write_text("")
    cases = [(afile / "sub" / "run.h5", f"cannot create it: {afile} is not a directory")]
    if Path("/proc/self").is_dir():                          # Linux: /proc takes no new files, not even root's
        cases.append((Path("/proc/x.h5"), "cannot create a file in /proc: no such file or directory"))
    if os.geteuid() != 0:                                    # root writes into read-only folders
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cases.append((locked / "run.h5", f"cannot create a file in {locked}: permission denied"))
    return cases


def test_an_output_that_cannot_be_created_is_refused_before_any_engine(tiny, tmp_path, capsys, no_engines):
    for out, reason in _uncreatable(tmp_path):
        for command in (["run", str(tiny)], ["gibbs", str(tiny), "--set", "dynamics.beta=10"]):
            assert main(command + ["--out", str(out)]) == 2, (command, out)
            assert capsys.readouterr().err == f"mfdyn: error: --out {out}: {reason}\n"
    from mfdyn.storage import RunWriter  # the Python API, through the run file's writer

    out, reason = _uncreatable(tmp_path)[0]
    with pytest.raises(ValueError, match=f"^out {out}: {reason}$"):
        RunWriter(out, "", 0)


def test_a_run_file_not_named_h5_is_refused_before_any_engine(tiny, tmp_path, capsys, no_engines):
    """--out results.csv (or no suffix) would be an HDF5 file under a misleading name: refused, one line, no file;
    the same from the Python API."""
    import mfdyn

    folder = tmp_path / "out"
    folder.mkdir()
    for name, shown in (("results.csv", "'.csv'"), ("run", "'(no suffix)'")):
        out = folder / name
        for command in (["run", str(tiny)], ["gibbs", str(tiny), "--set", "dynamics.beta=10"]):
            assert main(command + ["--out", str(out)]) == 2, (command, out)
            assert capsys.readouterr().err == (f"mfdyn: error: --out {out}: a run file is HDF5: give it a name ending "
                                               f"in .h5 or .hdf5, not {shown}\n")
        with pytest.raises(ValueError, match=f"^out {out}: a run file is HDF5"):
            mfdyn.run(tiny, out=out)
    assert list(folder.iterdir()) == []
    from mfdyn.storage import run_path_problem

    assert run_path_problem(folder / "run.HDF5") is None and run_path_problem(folder / "a.h5") is None


def test_a_huge_grid_is_refused_at_once_by_the_engines_that_build_it(tiny, tmp_path, capsys, monkeypatch):
    """pde.cells = 10⁸: refused before any pass over the cells (counting Φ's features alone takes seconds), one
    line, exit 2, no file; a particles-only run of the same config does not build the grid and runs."""
    from mfdyn.problems.mmn_isotropic import MMNIsotropic
    from pde.potential import GRID_STATE_ARRAYS

    with monkeypatch.context() as m:
        m.setattr(MMNIsotropic, "feature_count", lambda *a: pytest.fail("a pass over the cells came first"))
        assert main(["run", str(tiny), "--out", str(tmp_path / "big.h5"), "--set", "pde.cells=100000000"]) == 2
    err = capsys.readouterr().err
    gib = 8 * GRID_STATE_ARRAYS * 1e8 / 2**30
    assert err == (f"mfdyn: error: pde.cells: 100000000 cells need ≈ {gib:.3g} GiB for the grid's arrays alone "
                   f"({GRID_STATE_ARRAYS} numbers of 8 bytes per cell), over pde.memory_gb = 4; use fewer pde.cells "
                   "or raise pde.memory_gb\n")
    assert not (tmp_path / "big.h5").exists()
    assert main(["run", str(tiny), "--out", str(tmp_path / "sgd.h5"), "--set", "pde.cells=100000000",
                 "--engine", "particles"]) == 0


def _closed_stdout(args: list[str]) -> tuple[int, str]:
    """Run `mfdyn ARGS` with a stdout whose reader is gone before anything is written: (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "validation.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=300), err


class _ClosedPipe:
    """A stdout whose reader has gone: every write and flush raises BrokenPipeError, and it has no descriptor."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")


def test_a_closed_stdout_ends_every_command_quietly(tiny, tmp_path, capsys, monkeypatch):
    """`mfdyn info RUN | head -1` and the like: exit 141 (128 + SIGPIPE) and nothing on stderr, for each command
    (in a real pipe for info; a run still completes its file)."""
    from validation.cli import EXIT_BROKEN_PIPE

    out = tmp_path / "run.h5"
    assert main(["run", str(tiny), "--out", str(out)]) == 0
    assert _closed_stdout(["info", str(out)]) == (EXIT_BROKEN_PIPE, "")
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    for args in (["run", str(tiny), "--out", str(tmp_path / "again.h5"), "--engine", "pde"], ["info", str(out)],
                 ["compare", str(out)], ["verify", "--case", "heat_1d", "--quick"],
                 ["gibbs", str(tiny), "--set", "dynamics.beta=10", "--set", "pde.cells=40", "--out",
                  str(tmp_path / "g.h5")]):
        assert main(args) == EXIT_BROKEN_PIPE, args
        assert capsys.readouterr().err == "", args
    with h5py.File(tmp_path / "again.h5", "r") as f:
        assert f.attrs["status"] == "completed"


def test_info_indents_the_continuation_lines_of_multi_line_attributes(tiny, tmp_path, capsys):
    out = tmp_path / "run.h5"
    assert main(["run", str(tiny), "--out", str(out), "--engine", "pde", "--set", "particles.seed=4",
                 "--set", "pde.cfl=0.5", "--set", "output.every=0.05"]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("  overrides: "))
    hang = " " * len("  overrides: ")
    assert lines[k:k + 3] == ["  overrides: particles.seed=4", hang + "pde.cfl=0.5", hang + "output.every=0.05"]


def test_gibbs_prints_its_iterations_and_final_residual(tmp_path, capsys):
    noisy = ROOT / "configs" / "mmn_isotropic_noisy.toml"
    for max_iter, code in ((20000, 0), (5, 1)):
        out = tmp_path / f"g{max_iter}.h5"
        assert main(["gibbs", str(noisy), "--out", str(out), "--set", "pde.cells=200",
                     "--set", f"pde.gibbs_max_iter={max_iter}"]) == code
        summary = capsys.readouterr().out.splitlines()[0]
        with h5py.File(out, "r") as f:
            residuals, tol = f["gibbs/residual"][:], f["gibbs"].attrs["tolerance"]
        if code == 0:
            assert summary == f"gibbs: converged in {len(residuals)} iterations, residual {residuals[-1]:.1e} < tol {tol:g}"
            assert residuals[-1] < tol <= residuals[-2] and len(residuals) < max_iter
        else:
            assert summary == (f"gibbs: not converged after 5 iterations (pde.gibbs_max_iter), residual "
                               f"{residuals[-1]:.1e} ≥ tol {tol:g}")
            assert len(residuals) == 5 and residuals[-1] >= tol


def test_the_progress_line_says_eta_only_once_a_rate_is_known(monkeypatch):
    """From the first update on (a resumed run's first is mid-way): no rate, 'ETA …', never 'nan'; then the
    rate and the ETA of the steps since that first update."""
    from validation import progress

    clock = iter([100.0, 101.0, 103.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    shown = progress.Progress("particles", 10.0, live=False)
    first = shown.line(5.0, 500)
    assert first == "particles: t = 5 / 10  elapsed 1.0 s  ETA …"
    assert shown.line(6.0, 600, "a note") == "particles: t = 6 / 10  50 steps/s  elapsed 3.0 s  ETA 8.0 s  a note"


def test_the_exact_risk_hint_appears_when_it_takes_most_of_the_time(tiny, capsys, monkeypatch):
    """The status line names R_N's share and output.particle_risk when the exact risk takes over half the
    particles' time (here made slow), and not with output.particle_risk = false; the problem is left as it was."""
    import time

    from mfdyn.config import load_config
    from mfdyn.problems.mmn_isotropic import MMNIsotropic
    from validation.runner import execute, risk_note

    assert risk_note(0.4, 1.0) == "" and risk_note(0.5, 1.0) == ""
    assert risk_note(0.6, 1.0) == "R_N exact 60% of time — output.particle_risk = false skips it"

    def slow_risk(self, theta, *args):
        time.sleep(1.0)                 # well above the steps between saves, even on a loaded machine
        return 0.5

    monkeypatch.setattr(MMNIsotropic, "exact_risk", slow_risk)
    for particle_risk in (True, False):
        config = load_config(tiny, [f"output.particle_risk={str(particle_risk).lower()}"])
        execute(config, None, engine="particles", progress=True).close()
        lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
        hints = [line for line in lines if "R_N exact" in line]
        assert len(hints) == (3 if particle_risk else 0), lines
        for line in hints:
            assert line.startswith("particles: t = ") and line.rstrip().endswith(
                "% of time — output.particle_risk = false skips it")
            assert int(line.split("R_N exact ")[1].split("%")[0]) > 50


def test_a_noisy_explicit_run_that_would_crawl_is_warned_before_it_starts():
    """configs/mmn_isotropic.toml at β = 20 with pde.stepper = "explicit": its first step is over 1000× below
    output.every. The check runs on the config alone, and the PDE engine hands the warning out with its t = 0
    snapshot. The default, "auto", takes trbdf2 there and does not warn."""
    import math

    from mfdyn.config import load_config
    from mfdyn.problems import make_problem
    from pde.engine import SLOW_STEP_RATIO, PDEEngine, slow_step_warning

    config = load_config(ROOT / "configs" / "mmn_isotropic.toml", ["dynamics.beta=20", "pde.stepper=explicit"])
    warning = slow_step_warning(config)
    assert warning is not None and 'pde.stepper = "trbdf2"' in warning and "\n" not in warning
    dt = float(warning.split("first step is dt = ")[1].split(",")[0])
    per_unit = float(warning.split("about ")[1].split(" steps per unit time")[0])
    assert dt * SLOW_STEP_RATIO < config.output.every and per_unit == pytest.approx(1 / dt, rel=0.05)
    engine = PDEEngine(make_problem(config), config)
    engine.prepare()
    first = next(engine.run())
    assert first.t == 0.0 and first.steps == 0 and first.warning == warning
    # no warning: the same run with saves about 500 first steps apart, the implicit steppers, auto, or no noise
    for quiet in (config.replace("output.every", 1e-4 * math.floor(0.5 * dt * SLOW_STEP_RATIO / 1e-4)),
                  config.replace("pde.stepper", "implicit"), config.replace("pde.stepper", "trbdf2"),
                  config.replace("pde.stepper", "auto"), load_config(ROOT / "configs" / "mmn_isotropic.toml")):
        assert slow_step_warning(quiet) is None


def test_compare_with_plot_computes_the_comparison_once(tiny, tmp_path, capsys, monkeypatch):
    from validation.compare import Comparison

    out = tmp_path / "run.h5"
    assert main(["run", str(tiny), "--out", str(out)]) == 0
    calls = []
    of = Comparison.of.__func__
    monkeypatch.setattr(Comparison, "of", classmethod(lambda cls, *a, **k: calls.append(a) or of(cls, *a, **k)))
    assert main(["compare", str(out), "--plot", str(tmp_path / "fig.png")]) == 0
    assert len(calls) == 1 and (tmp_path / "fig.png").exists()


def test_compare_plot_makes_its_folder_and_refuses_what_it_cannot_write_before_computing(tiny, tmp_path, capsys,
                                                                                         monkeypatch):
    from validation.compare import Comparison

    out = tmp_path / "run.h5"
    assert main(["run", str(tiny), "--out", str(out)]) == 0
    assert main(["compare", str(out), "--plot", str(tmp_path / "new" / "folder" / "fig.svg")]) == 0
    assert (tmp_path / "new" / "folder" / "fig.svg").stat().st_size > 0
    capsys.readouterr()
    monkeypatch.setattr(Comparison, "of", classmethod(lambda cls, *a, **k: pytest.fail("computed for nothing")))
    (tmp_path / "a_file").write_text("")
    for bad, needle in ((tmp_path / "fig.xyz", "unknown figure format '.xyz'; use one of"),
                        (tmp_path / "fig", "unknown figure format '(no suffix)'"),
                        (tmp_path / "a_file" / "fig.png", "is not a directory")):
        assert main(["compare", str(out), "--plot", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"--plot {bad}" in err and needle in err, err
        assert not bad.exists()
