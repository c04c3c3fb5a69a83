"""`mfdyn compare` on every kind of run file (docs/guide.md, "mfdyn compare"): a run against the Gibbs state of its
config (either order, PDE and/or particles), a run's particles against another file's PDE, a sweep member finding its
PDE through index.json; the table's column names, its wrapping to the terminal, the domain-edge warning, the default
test functions fitted to the grid, and the one-line errors."""
from __future__ import annotations

import inspect
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MMN

import mfdyn
from mfdyn.config import Config, load_config
from mfdyn.expressions import evaluate
from mfdyn.storage import RunFile
from validation import compare as cmp
from validation import sweep as sw
from validation.cli import main
from validation.observables import QUANTILES, pde_expectation

ROOT = Path(__file__).resolve().parents[1]
NOISY = ROOT / "configs" / "mmn_isotropic_noisy.toml"
# The shipped noisy MMN config made small: ρ_t is within L1 0.03 of ρ* by t = 8 on 400 cells
NOISY_SMALL = {"pde.cells": 400, "particles.n": 200, "dynamics.t_end": 8.0, "output.every": 2.0}
OU2 = ROOT / "configs" / "ornstein_uhlenbeck_2d.toml"
OU2_SMALL = {"dynamics.t_end": 0.5, "output.every": 0.25, "particles.n": 200, "pde.cells": 32}
OU1 = """
[problem]
name = "ornstein_uhlenbeck"
stiffness = [1.0]
[init]
kappa = 0.4
mean = [0.5]
[dynamics]
t_end = 0.4
[pde]
cells = 64
[particles]
n = 100
eps = 1e-3
[output]
every = 0.2
"""


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> dict[str, Path]:
    """The Gibbs state of the small noisy config, a run of it (PDE and SGD) and a PDE-only run to t = 8."""
    folder = tmp_path_factory.mktemp("noisy")
    files = {"gibbs": folder / "gibbs.h5", "run": folder / "run.h5", "pde": folder / "pde.h5"}
    mfdyn.gibbs(NOISY, set={"pde.cells": 400}, out=files["gibbs"]).close()
    mfdyn.run(NOISY, set=NOISY_SMALL, out=files["run"]).close()
    mfdyn.run(NOISY, set={**NOISY_SMALL, "particles.n": 50}, engine="pde", out=files["pde"]).close()
    return files


def error_line(capsys) -> str:
    """The one stderr line of a command that failed with exit code 2 (nothing on stdout)."""
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1 and out.err.startswith("mfdyn: error: "), out
    return out.err


def is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def is_column_line(line: str) -> bool:
    """A header or row of a printed table's columns (not its prose): it starts with t, a time, or a Gibbs table's
    row label followed by a time."""
    words = line.split()
    return bool(words) and (words[0] == "t" or is_number(words[0])
                            or (words[0] in ("ρ*", "PDE", "SGD") and len(words) > 1 and is_number(words[1])))


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if is_column_line(line)]


def tables(text: str) -> list[list[list[list[str]]]]:
    """The tables of a printed comparison: per table its blocks of columns, per block its rows (header first) as
    words. A block is a chunk between blank lines from its "t" header on; prose before it starts a new table."""
    out, open_table = [], False
    for chunk in text.split("\n\n"):
        lines = chunk.splitlines()
        start = next((i for i, line in enumerate(lines) if line.split()[:1] == ["t"]), None)
        if start is None:
            open_table = False
            continue
        rows = []
        for line in lines[start:]:
            if not is_column_line(line):
                break
            rows.append(line.split())
        if start > 0 or not open_table:
            out.append([])
        out[-1].append(rows)
        open_table = len(rows) == len(lines) - start          # no prose after it: the next chunk may continue it
    return out


# ------------------------------------------------------------------------------------------ against ρ*


def test_a_noisy_run_relaxes_to_its_gibbs_state(noisy, capsys):
    """PDE and SGD of the noisy config against ρ*: the distances shrink at every save and end small; the PDE's free
    energy falls to F* from above; the numbers are those of the files (ρ*'s row recomputed here)."""
    with mfdyn.open(noisy["run"]) as run:
        c = run.compare(against=noisy["gibbs"])
    assert isinstance(c, cmp.GibbsComparison)
    np.testing.assert_array_equal(c["time"], [0.0, 2.0, 4.0, 6.0, 8.0])
    assert np.all(np.diff(c["l1_pde"]) < 0) and c["l1_pde"][0] > 1.0 and c["l1_pde"][-1] < 0.05
    assert np.all(np.diff(c["free_energy_gap_pde"]) < 0) and 0 < c["free_energy_gap_pde"][-1] < 1e-4
    assert np.all(np.diff(c["w1_sgd"]) < 0) and c["w1_sgd"][-1] < min(0.15, c["w1_sgd"][0] / 20)
    assert abs(c["risk_gap_pde"][-1]) < 1e-2 < abs(c["risk_gap_pde"][0])
    for k in (0, 1):
        assert c[f"gap_sgd_{k}"][-1] < 0.1 * c[f"gap_sgd_{k}"][0]
    with RunFile.open(noisy["gibbs"]) as g, RunFile.open(noisy["run"]) as r:
        star, rho = g.row("pde", "density", 0), r.row("pde", "density", -1)
        h = g.fixed("pde", "r")[1] - g.fixed("pde", "r")[0]
        assert c["l1_pde"][-1] == pytest.approx(np.abs(rho - star).sum() * h, rel=1e-12)
        assert float(c["risk_star"]) == g.row("pde", "risk", 0)
        z = r.row("particles", "z", -1)[:, 0]
        f0 = cmp.observables_of(r)[0]
        assert c["obs_sgd_0"][-1] == pytest.approx(evaluate(f0, ("r",), [z]).mean(), rel=1e-12)
        assert c["obs_star_0"] == pytest.approx(pde_expectation(f0, ("r",), star, [g.fixed("pde", "r")]), rel=1e-12)
        np.testing.assert_allclose(c["quantiles_sgd_r"][-1], np.quantile(z, QUANTILES), rtol=1e-12)
    data = c.to_xarray()
    assert data.l1_pde.dims == ("time",) and data.quantiles_star_r.dims == ("quantile",)
    assert data.attrs["gibbs"] == str(noisy["gibbs"]) and data.attrs["n"] == 200

    narrow = cmp.format_gibbs(c.table, c.coords, c.n, c.observables, c.run_name, c.gibbs_name, width=40)
    assert all(len(line) <= 40 for line in table_lines(narrow)) and len(tables(narrow)[0]) > 1
    assert main(["compare", str(noisy["run"]), "--against", str(noisy["gibbs"])]) == 0
    text = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.split()[:1] in (["ρ*"], ["PDE"], ["SGD"])}
    assert rows["ρ*"][1] == "inf" and rows["PDE"][1] == rows["SGD"][1] == "8"     # the last state of each
    assert float(rows["PDE"][2]) == pytest.approx(c["risk_pde"][-1], abs=1e-5)
    assert "distance to ρ* at every save time" in text and "L1_pde" in text and "W1_sgd" in text


def test_a_pde_only_run_against_its_gibbs_state_either_order(noisy, capsys):
    with mfdyn.open(noisy["pde"]) as run, mfdyn.open(noisy["gibbs"]) as gibbs:
        one, other = run.compare(against=gibbs), gibbs.compare(against=run)
    assert one.keys() == other.keys() and "w1_sgd" not in one.keys() and "l1_pde" in one.keys()
    for key in one.keys():
        np.testing.assert_array_equal(one[key], other[key])
    with mfdyn.open(noisy["run"]) as both:      # the same PDE as the run with particles
        np.testing.assert_array_equal(one["l1_pde"], both.compare(against=noisy["gibbs"])["l1_pde"])
    assert main(["compare", str(noisy["gibbs"]), "--against", str(noisy["pde"])]) == 0
    text = capsys.readouterr().out
    assert "(PDE)" in text and "\nSGD" not in text and "W1_sgd" not in text


def test_gibbs_errors_are_one_line(noisy, tmp_path, capsys):
    g = str(noisy["gibbs"])
    assert main(["compare", g, "--against", g]) == 2
    assert "both Gibbs states" in error_line(capsys)
    assert main(["compare", g]) == 2
    assert f"is a Gibbs state (mfdyn gibbs); compare a run of its config with it: mfdyn compare RUN.h5 --against {g}" \
        in error_line(capsys)
    hot = tmp_path / "hot.h5"
    mfdyn.run(NOISY, set={**NOISY_SMALL, "dynamics.beta": 10.0, "dynamics.t_end": 2.0}, engine="pde", out=hot).close()
    assert main(["compare", str(hot), "--against", g]) == 2
    assert (f"{hot} and {g} have different configs: dynamics.beta is 10.0 in the first and 20.0 in the second"
            in error_line(capsys))
    assert main(["compare", str(noisy["run"]), "--against", g, "--plot", str(tmp_path / "fig.png")]) == 2
    assert "--plot: a comparison with a Gibbs state has no figure" in error_line(capsys)
    assert not (tmp_path / "fig.png").exists()


def test_an_unconverged_or_cut_gibbs_state_is_said_in_the_header(tmp_path):
    """ρ* at r ≈ 4.3 on a domain cut at 4.5, after 5 iterations: the table says ρ* is not converged, and that both
    the run's PDE and ρ* reached the domain edge."""
    sets = {"pde.cells": 200, "pde.bounds": [[0.0, 4.5]], "dynamics.t_end": 2.0, "output.every": 1.0}
    gibbs, run = tmp_path / "g.h5", tmp_path / "r.h5"
    with mfdyn.gibbs(NOISY, set={**sets, "pde.gibbs_max_iter": 5}, out=gibbs) as g:
        status = g.status
    assert status.startswith("failed: not converged")
    mfdyn.run(NOISY, set=sets, engine="pde", out=run).close()
    with mfdyn.open(run) as r:
        c = r.compare(against=gibbs)
        recorded = r.pde.attrs["boundary_mass_max"]
    with RunFile.open(gibbs) as g:
        star = g.row("pde", "density", 0)
        h = 4.5 / 200
    assert c.gibbs_status == status and c.boundary_mass_max == recorded
    assert c.star_boundary_mass == pytest.approx(star[-1] * h, rel=1e-12)      # r = 0 is a natural edge
    assert str(c).splitlines()[1:4] == [
        f"{gibbs}: status {status!r}: ρ* is the iteration's last iterate",
        f"PDE mass reached the domain edge (fraction {recorded:.1e} at most): the PDE is cut there; widen pde.bounds",
        f"ρ*'s mass reached the domain edge (fraction {c.star_boundary_mass:.1e} at most): ρ* is cut there; widen "
        "pde.bounds"]
    assert c.to_xarray().attrs["star_reached_boundary"] == 1


def test_what_may_differ_between_compared_files(noisy, tmp_path):
    """[output], [particles], t_end and the PDE's stepping and Gibbs keys may differ; the grid may not, even when one
    file spells out the problem's default bounds and the other leaves them to the problem."""
    with RunFile.open(noisy["run"]) as run, RunFile.open(noisy["gibbs"]) as gibbs:
        cmp.check_same_config(run, gibbs)                        # particles.n, t_end and every differ: fine
    base = load_config(NOISY)
    tables_ = base.to_dict()
    del tables_["pde"]["bounds"]                                     # the problem's default, [0, 8], as shipped
    assert cmp._defining(base) == cmp._defining(Config.from_dict(tables_))
    assert cmp._defining(base) == cmp._defining(base.replace("pde.stepper", "explicit").replace("pde.gibbs_tol", 1e-6))
    assert cmp._defining(base) != cmp._defining(base.replace("dynamics.xi", 2.0))
    assert cmp._defining(base) != cmp._defining(base.replace("pde.cells", 800))


# ------------------------------------------------------------------------------------------ a run against another


@pytest.fixture(scope="module")
def ou1(tmp_path_factory) -> dict[str, Path]:
    """One config run three ways: both engines, particles only, PDE only (with another particles.n)."""
    folder = tmp_path_factory.mktemp("ou1")
    config = folder / "ou1.toml"
    config.write_text(OU1)
    files = {"both": folder / "both.h5", "particles": folder / "particles.h5", "pde": folder / "pde.h5"}
    for engine, sets in (("both", {}), ("particles", {}), ("pde", {"particles.n": 7})):
        mfdyn.run(config, set=sets, engine=engine, out=files[engine]).close()
    return files


def test_particles_against_another_files_pde_either_order(ou1, capsys):
    with mfdyn.open(ou1["both"]) as both, mfdyn.open(ou1["particles"]) as part, mfdyn.open(ou1["pde"]) as pde:
        own, split, swapped = both.compare(), part.compare(against=pde), pde.compare(against=ou1["particles"])
    assert own.keys() == split.keys() == swapped.keys()
    for key in own.keys():                      # the same numbers as the run that has both
        np.testing.assert_array_equal(own[key], split[key])
        np.testing.assert_array_equal(own[key], swapped[key])
    assert own.source is None and split.source == f"PDE from {ou1['pde']}"
    assert main(["compare", str(ou1["particles"]), "--against", str(ou1["pde"])]) == 0
    assert f"\nPDE from {ou1['pde']}\n" in capsys.readouterr().out


def test_run_against_run_errors(ou1, tmp_path, capsys):
    assert main(["compare", str(ou1["pde"]), "--against", str(ou1["pde"])]) == 2
    assert "needs /particles in one file and /pde in the other; they have /pde and /pde" in error_line(capsys)
    other = tmp_path / "other.h5"
    mfdyn.run(write_config(tmp_path, OU1.replace("kappa = 0.4", "kappa = 0.3")), engine="pde", out=other).close()
    assert main(["compare", str(ou1["particles"]), "--against", str(other)]) == 2
    assert "have different configs: init.kappa is 0.4 in the first and 0.3 in the second" in error_line(capsys)
    assert main(["compare", str(ou1["particles"])]) == 2          # a particles-only file outside a sweep
    assert "there is no" in error_line(capsys)
    kernel = tmp_path / "kernel.h5"
    mfdyn.run(ROOT / "configs" / "teacher_student_lazy.toml", set={"dynamics.t_end": 0.5, "pde.cells": [16, 16]},
              engine="kernel", out=kernel).close()
    assert main(["compare", str(kernel)]) == 2
    assert f"{kernel}: has neither /pde nor /particles (/kernel); nothing to compare" in error_line(capsys)
    assert main(["compare", str(ou1["both"]), "--against", str(kernel)]) == 2
    assert "has neither /pde nor /particles" in error_line(capsys)


def write_config(folder: Path, text: str) -> Path:
    path = folder / "config.toml"
    path.write_text(text)
    return path


def test_plot_against_another_files_pde(ou1, tmp_path, capsys):
    from validation.plots import comparison_figure

    if "pde" not in inspect.signature(comparison_figure).parameters:
        pytest.skip("validation.plots.comparison_figure has no pde= keyword yet (another change adds it)")
    fig = tmp_path / "fig.png"
    assert main(["compare", str(ou1["particles"]), "--against", str(ou1["pde"]), "--plot", str(fig)]) == 0
    assert f"wrote {fig}" in capsys.readouterr().out and fig.stat().st_size > 10_000


# ------------------------------------------------------------------------------------------ a sweep member


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory) -> Path:
    """A real two-member sweep (run_sweep's own index.json), its tasks run in this process."""
    from concurrent.futures import ThreadPoolExecutor

    folder = tmp_path_factory.mktemp("sweep")
    config = folder / "ou1.toml"
    config.write_text(OU1)
    spec = sw.load_sweep({"base": str(config), "name": "s", "folder": str(folder / "s"), "x": "particles.n",
                          "vary": {"particles.n": [40, 80]}})
    patch = pytest.MonkeyPatch()
    patch.setattr(sw, "make_executor", lambda workers, scheduler: (ThreadPoolExecutor(1), None))
    try:
        return sw.run_sweep(spec, workers=1, log=lambda *_: None)
    finally:
        patch.undo()


def test_a_sweep_member_finds_its_pde_through_index_json(sweep_folder, capsys):
    index = json.loads((sweep_folder / "index.json").read_text())["members"]
    member = sweep_folder / index[1]["file"]
    grid = sweep_folder / index[1]["grid"]
    assert sw.member_pde_file(member) == grid
    with mfdyn.open(member) as run, mfdyn.open(grid) as pde:
        found, given = run.compare(), run.compare(against=pde)
    for key in given.keys():
        np.testing.assert_array_equal(found[key], given[key])
    assert main(["compare", str(member)]) == 0
    out = capsys.readouterr().out
    assert out.count(f"PDE from {grid} (this sweep member's PDE file, listed in index.json)") == 1
    assert "N = 80" in out


def test_a_sweep_member_without_its_index_is_a_one_line_error(sweep_folder, tmp_path, capsys):
    member = sweep_folder / json.loads((sweep_folder / "index.json").read_text())["members"][0]["file"]
    alone = tmp_path / member.name
    shutil.copy(member, alone)
    assert main(["compare", str(alone)]) == 2
    assert f"{alone}: holds no /pde, and there is no {tmp_path / 'index.json'} beside it" in error_line(capsys)
    (tmp_path / "index.json").write_text(json.dumps({"members": [{"overrides": [], "grid": "pde-x.h5",
                                                                  "file": "run-other.h5"}]}))
    assert main(["compare", str(alone)]) == 2
    assert f"{alone}: not listed in {tmp_path / 'index.json'}; name its PDE file with --against" in error_line(capsys)
    (tmp_path / "index.json").write_text("not json")
    assert main(["compare", str(alone)]) == 2
    assert "not a sweep index" in error_line(capsys)


# ------------------------------------------------------------------------------------------ the table


@pytest.fixture(scope="module")
def ou2() -> cmp.Comparison:
    with mfdyn.run(OU2, set=OU2_SMALL) as run:
        return run.compare()


def test_quantile_columns_are_named_by_coordinate_and_level(ou2):
    text = cmp.format_table(ou2.table, ou2.coords, ou2.n, ou2.observables, width=10_000)
    header = text.splitlines()[1].split()
    expected = [f"theta{a}_q{q}_{e}" for a in (1, 2) for e in ("pde", "sgd") for q in ("05", "50", "95")]
    assert sorted(h for h in header if "_q" in h) == sorted(expected)
    assert header.index("theta1_q05_pde") < header.index("theta1_q95_pde") < header.index("theta1_q05_sgd")
    assert "theta150_pde" not in text and "theta15_pde" not in text


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_the_table_wraps_in_blocks_that_repeat_the_time(ou2, width):
    wide = cmp.format_table(ou2.table, ou2.coords, ou2.n, ou2.observables, width=10_000)
    narrow = cmp.format_table(ou2.table, ou2.coords, ou2.n, ou2.observables, width=width)
    assert max(len(line) for line in table_lines(wide)) > 120 >= width          # it has to wrap
    assert all(len(line) <= width for line in table_lines(narrow))
    wide_tables, narrow_tables = tables(wide), tables(narrow)
    assert len(wide_tables) == len(narrow_tables) == 3          # the risks, the test functions, the laziness
    assert all(len(table) == 1 for table in wide_tables) and len(narrow_tables[0]) > 1
    for (whole,), blocks in zip(wide_tables, narrow_tables):
        # every block starts with t; glued back together (t once), the blocks are the wide table, digit for digit
        assert all(block[0][0] == "t" and len(block) == len(whole) for block in blocks)
        glued = [sum((block[i] if b == 0 else block[i][1:] for b, block in enumerate(blocks)), [])
                 for i in range(len(whole))]
        assert glued == whole


def test_the_width_is_the_terminals_or_80(monkeypatch):
    monkeypatch.setenv("COLUMNS", "57")
    assert cmp.terminal_width() == 57
    monkeypatch.delenv("COLUMNS")

    def no_terminal(*_):
        raise OSError("not a terminal")

    monkeypatch.setattr(os, "get_terminal_size", no_terminal)
    assert cmp.terminal_width() == 80


def test_the_cli_table_fits_the_terminal(ou1, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "50")
    assert main(["compare", str(ou1["both"])]) == 0
    text = capsys.readouterr().out
    assert all(len(line) <= 50 for line in table_lines(text)) and len(tables(text)[0]) > 1
    assert "theta1_q95_sgd" in text


def test_a_domain_edge_hit_is_a_warning_in_the_header(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_MMN)
    with mfdyn.run(config, set={"pde.bounds": [[0.0, 1.4]]}) as cut, mfdyn.run(config) as fine:
        hit, clear = cut.compare(), fine.compare()
        recorded = cut.pde.attrs["boundary_mass_max"]
    assert hit.mass_reached_boundary and hit.boundary_mass_max == recorded > 1e-6
    assert str(hit).splitlines()[1] == (f"PDE mass reached the domain edge (fraction {recorded:.1e} at most): the PDE "
                                        "is cut there; widen pde.bounds")
    assert hit.to_xarray().attrs["mass_reached_boundary"] == 1
    assert hit.to_xarray().attrs["boundary_mass_max"] == recorded
    assert not clear.mass_reached_boundary and "domain edge" not in str(clear)
    assert clear.to_xarray().attrs["mass_reached_boundary"] == 0


# ------------------------------------------------------------------------------------------ default test functions


def test_default_test_functions_fit_the_grid_and_user_ones_are_kept():
    mmn = load_config(ROOT / "configs" / "mmn_isotropic.toml")           # r on [0, 8]
    assert cmp.observables_for(mmn) == ("tanh(r - 4)", "exp(-(r - 4)**2/2)")
    ts = load_config(ROOT / "configs" / "teacher_student_2d.toml")       # (a, w) on [−4.5, 4.5] × [−5, 5]
    # scales 1.125 and 1.25 round to 1: the functions of the shipped teacher–student studies
    assert cmp.observables_for(ts) == ("tanh(a)", "exp(-a**2/2)", "tanh(w)", "exp(-w**2/2)", "tanh(a)*tanh(w)")
    ou = load_config(OU2)                                                # the problem's default bounds, −2.4 … 3
    f = cmp.observables_for(ou)
    assert f[2] == "tanh((theta2 + 0.2)/0.7)" and len(f) == 5
    moved = mmn.replace("pde.bounds", [[0.0, 6.0]])
    assert cmp.observables_for(moved) == ("tanh((r - 3)/0.8)", "exp(-((r - 3)/0.8)**2/2)")
    mine = ("r", "tanh(r - 1)")
    assert cmp.observables_for(mmn.replace("output.observables", list(mine))) == mine


def test_default_test_functions_are_informative_at_mmn_radii(noisy):
    """Noisy MMN (d = 40): the mass moves from r ≈ 0.8 to ρ*'s r ≈ 4.3. The defaults' PDE expectations vary over the
    run by over 40% of each function's range on the grid, and at the end they still vary across the mass; tanh(r)
    and exp(−r²/2) are flat there (their spread under ρ_t is over 50 times smaller)."""
    with RunFile.open(noisy["pde"]) as f:
        r = f.fixed("pde", "r")
        rhos = f.series("pde", "density")
        defaults = cmp.observables_of(f)

    def profile(expression: str) -> tuple[float, float]:
        """(range of ∫f dρ_t over the run, sd of f under the last ρ_t), both over f's range on the grid."""
        values = evaluate(expression, ("r",), [r])
        means = np.array([pde_expectation(expression, ("r",), rho, [r]) for rho in rhos])
        last = rhos[-1] / rhos[-1].sum()
        sd = np.sqrt(np.sum(last * (values - means[-1]) ** 2))
        return np.ptp(means) / np.ptp(values), sd / np.ptp(values)

    spreads = []
    for expression in defaults:
        moved, spread = profile(expression)
        assert moved > 0.4 and spread > 0.1, (expression, moved, spread)
        spreads.append(spread)
    for old in ("tanh(r)", "exp(-r**2/2)"):
        assert profile(old)[1] < min(spreads) / 50, old
    assert profile("tanh(r)")[0] < 0.4
