"""Figures that explain themselves: compare's figure (validation/plots.py), the sweep figures (validation/sweep_plots.py)
with the broken-line fit behind rates.png (validation/rates.py), and the problem interface they draw from
(Problem.quantity, Problem.teacher_points).

Everything is read back from the matplotlib objects (no display): labels, legend entries, colour bars, shared axes,
the lines' data against the comparison table, the red frames of a run whose mass reached the domain edge.
"""
from __future__ import annotations

import csv
import dataclasses
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import QuadMesh
from matplotlib.colors import to_hex
from matplotlib.text import Text

import mfdyn
from mfdyn.config import InitConfig
from mfdyn.problems import PROBLEMS, make_problem
from mfdyn.problems.teacher_student import TeacherStudent, TeacherStudentParams
from validation import rates as rt
from validation import sweep as sw
from validation.compare import comparison_table, observables_of
from validation.plots import comparison_figure
from validation.sweep_plots import THEORY_SLOPES, parts_figure, rates_figure

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SMALL_2D = {"dynamics.t_end": 0.5, "output.every": 0.25, "pde.cells": [40, 44], "particles.n": 200,
            "particles.eps": 1e-3}


# ------------------------------------------------------------------------------------------ the problem interface
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_every_problem_names_its_quantity_and_gives_teacher_points_of_its_coordinates(name):
    cls = PROBLEMS[name]
    problem = cls(cls.Params(), InitConfig())
    assert problem.quantity == ("risk" if problem.has_network else "energy")
    points = problem.teacher_points()
    if points is not None:
        assert points.ndim == 2 and points.shape[1] == len(problem.coords) and len(points) >= 1
        assert np.all(np.isfinite(points))
        # in the problem's coordinates: inside its default domain, where the figure can draw them
        for axis, (lo, hi) in enumerate(problem.default_bounds()):
            assert np.all((points[:, axis] >= lo) & (points[:, axis] <= hi))


@pytest.mark.parametrize("parameters, teacher", [("aw", ((1.0, 2.0), (-0.5, 0.7))),
                                                 ("awb", ((1.0, 2.0, 0.3), (-0.5, 0.7, -1.0), (0.8, -1.5, 0.0)))])
@pytest.mark.parametrize("alpha", [1.0, 4.0])
def test_teacher_points_are_the_student_that_computes_the_teacher(parameters, teacher, alpha):
    """Mass 1/m at each teacher point, with output scale α, is f* itself: the exact risk is 0."""
    problem = TeacherStudent(TeacherStudentParams(parameters=parameters, teacher=teacher), InitConfig())
    points = problem.teacher_points(alpha)
    assert points.shape == (len(teacher), len(parameters))
    assert problem.exact_risk(points, alpha) < 1e-28
    np.testing.assert_array_equal(points[:, 1:], np.array(teacher)[:, 1:])        # w (and b) are the teacher's
    assert problem.exact_risk(np.array(teacher, dtype=float), alpha) > 1e-3        # unscaled a is not f*


def test_teacher_points_leave_out_what_theta_cannot_hold_and_named_targets_have_none():
    shifted = TeacherStudentParams(parameters="aw", teacher=((1.0, 2.0, 0.5), (1.0, 1.0, 0.0)))
    np.testing.assert_array_equal(TeacherStudent(shifted, InitConfig()).teacher_points(), [[2.0, 1.0]])
    only = TeacherStudentParams(parameters="aw", teacher=((1.0, 2.0, 0.5),))
    assert TeacherStudent(only, InitConfig()).teacher_points() is None
    assert TeacherStudent(TeacherStudentParams(target="abs"), InitConfig()).teacher_points() is None


# ------------------------------------------------------------------------------------------ compare's figure
def _texts(fig) -> list[str]:
    """Every piece of text on a figure: titles, axis labels, legend entries, annotations, the suptitle."""
    out = [t.get_text() for t in fig.findobj(Text)]
    return [t for t in out if t]


def _legend_texts(fig) -> list[str]:
    legends = list(fig.legends) + [sub_legend for sub in fig.subfigs for sub_legend in sub.legends]
    legends += [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def _density_axes(fig) -> list:
    return [ax for ax in fig.subfigs[1].axes if ax.get_label() != "<colorbar>"]


def _figure(config: Path, **overrides):
    run = mfdyn.run(config, set={**SMALL_2D, **overrides} if "teacher_student_2d" in config.name else overrides)
    table = comparison_table(run.file)
    return run, table, comparison_figure(run.file, table)


@pytest.fixture(scope="module")
def ts2d():
    run, table, fig = _figure(CONFIGS / "teacher_student_2d.toml")
    yield run, table, fig
    run.close()


def test_2d_panels_share_axes_one_colour_scale_and_say_what_is_what(ts2d):
    run, table, fig = ts2d
    panels = _density_axes(fig)
    assert len(panels) == len(np.unique(np.linspace(0, len(table["time"]) - 1, 4).round())) == 3
    first = panels[0]
    for ax in panels[1:]:
        assert first.get_shared_x_axes().joined(first, ax) and first.get_shared_y_axes().joined(first, ax)
        assert ax.get_xlim() == first.get_xlim() and ax.get_ylim() == first.get_ylim()
    assert [ax.get_xlabel() for ax in panels] == ["a"] * 3 and first.get_ylabel() == "w"
    # one colour bar, and every heat map on its scale
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and "PDE density" in bars[0].get_ylabel()
    meshes = [c for ax in panels for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 3 and len({id(m.norm) for m in meshes}) == 1
    assert meshes[0].norm.vmax == pytest.approx(max(float(m.get_array().max()) for m in meshes))
    # the zoom box holds 99.8% of the mass at every shown time: the union over the panels
    for mesh in meshes:
        density = np.asarray(mesh.get_array()).reshape(44, 40).T          # (a, w) cells
        a, w = run.pde.a.values, run.pde.w.values
        inside = np.outer((a >= first.get_xlim()[0]) & (a <= first.get_xlim()[1]),
                          (w >= first.get_ylim()[0]) & (w <= first.get_ylim()[1]))
        assert density[inside].sum() >= 0.996 * density.sum()
    legend = _legend_texts(fig)
    assert any(t.startswith("PDE density") for t in legend) and any(t.startswith("PDE contours") for t in legend)
    assert "SGD particles, N = 200" in legend and any(t.startswith("teacher neurons") for t in legend)
    stars = [line for ax in panels for line in ax.get_lines() if line.get_marker() == "*"]
    assert len(stars) == 3
    points = make_problem(run.config).teacher_points()
    assert points.shape == (2, 2)                                   # configs/teacher_student_2d.toml's two neurons
    for star in stars:
        np.testing.assert_array_equal(np.c_[star.get_xdata(), star.get_ydata()], points)
    # no edge hit on the shipped domain: black frames, a plain title
    assert all(ax.spines["left"].get_edgecolor()[:3] == (0.0, 0.0, 0.0) for ax in panels)
    assert "domain edge" not in fig.get_suptitle()


def test_the_top_row_draws_the_risk_and_every_gap_of_the_table(ts2d):
    run, table, fig = ts2d
    risk, gaps = fig.subfigs[0].axes[:2]
    assert risk.get_xlabel() == "t" and risk.get_ylabel() == "risk"
    assert gaps.get_yscale() == "log"
    lines = {line.get_label(): line for line in gaps.get_lines()}
    observables = observables_of(run.file)
    assert len(observables) == 5
    for k, expression in enumerate(observables):
        line = lines[f"f = {expression}"]
        np.testing.assert_array_equal(line.get_xdata(), table["time"])
        np.testing.assert_allclose(line.get_ydata(), np.where(table[f"gap_{k}"] > 0, table[f"gap_{k}"], np.nan))
    np.testing.assert_array_equal(lines["risk: |R_N − R(ρ_t) − 1/N term|"].get_ydata(), np.abs(table["risk_gap"]))
    np.testing.assert_array_equal(lines["W1(particles, ρ_t)"].get_ydata(), table["w1"])


def test_3d_marginals_share_axes_per_pair_and_one_colour_bar():
    run, table, fig = _figure(CONFIGS / "teacher_student_3d.toml", **{
        "dynamics.t_end": 0.5, "output.every": 0.25, "pde.cells": [18, 14, 16], "particles.n": 300,
        "particles.eps": 1e-3})
    panels = _density_axes(fig)
    assert len(panels) == 9                                        # 3 times × (a, w), (a, b), (w, b)
    grid = np.array(panels).reshape(3, 3)
    for col, (x, y) in enumerate((("a", "w"), ("a", "b"), ("w", "b"))):
        assert {ax.get_xlabel() for ax in grid[:, col]} == {x} and {ax.get_ylabel() for ax in grid[:, col]} == {y}
        for ax in grid[1:, col]:
            assert grid[0, col].get_shared_x_axes().joined(grid[0, col], ax) and ax.get_ylim() == grid[0, col].get_ylim()
    assert not grid[0, 0].get_shared_y_axes().joined(grid[0, 0], grid[0, 2])    # w and b are different axes
    assert len([ax for ax in fig.axes if ax.get_label() == "<colorbar>"]) == 1
    meshes = [c for ax in panels for c in ax.collections if isinstance(c, QuadMesh)]
    assert len({id(m.norm) for m in meshes}) == 1
    legend = _legend_texts(fig)
    assert "SGD particles, N = 300" in legend and not any("teacher" in t for t in legend)    # |x| has no teacher
    run.close()


def test_a_linear_flow_tracks_its_energy_and_never_says_risk():
    run, table, fig = _figure(CONFIGS / "ornstein_uhlenbeck_2d.toml", **{
        "dynamics.t_end": 0.5, "output.every": 0.25, "particles.n": 200, "pde.cells": 32})
    assert fig.subfigs[0].axes[0].get_ylabel() == "energy"
    texts = _texts(fig)
    assert not [t for t in texts if "risk" in t.lower()]
    assert any(t.startswith("energy: |R_N") for t in _legend_texts(fig))
    assert "particles, N = 200" in _legend_texts(fig) and "against particles" in fig.get_suptitle()
    run.close()


def test_mass_at_the_domain_edge_is_framed_red_and_named_in_the_title():
    run, table, fig = _figure(CONFIGS / "teacher_student_2d.toml", **{"pde.bounds": [[-2.0, 2.0], [-2.5, 2.5]]})
    assert run.pde.attrs["mass_reached_boundary"] == 1
    assert "the PDE mass reached the domain edge" in fig.get_suptitle()
    assert f"{run.pde.attrs['boundary_mass_max']:.1e}" in fig.get_suptitle()
    for ax in _density_axes(fig):
        assert to_hex(ax.spines["top"].get_edgecolor()) == "#ff0000"
        assert "mass at the domain edge" in ax.get_title()
    run.close()


# ------------------------------------------------------------------------------------------ the broken-line fit
X = 200.0 * 2.0 ** np.arange(7)             # 200 … 12800, as configs/n_scaling.toml


@pytest.mark.parametrize("seed", range(20))
def test_a_pure_power_law_gets_no_break(seed):
    y = 0.3 * X**-0.5 * np.exp(0.03 * np.random.default_rng(seed).standard_normal(len(X)))
    fit = rt.broken_line(X, y)
    assert not fit.kept and fit.p_value > rt.BREAK_P_VALUE


def test_an_exact_power_law_is_not_broken_by_round_off():
    fit = rt.broken_line(X, 0.3 * X**-0.5)
    assert not fit.kept and fit.p_value == 1.0


@pytest.mark.parametrize("seed", range(10))
def test_a_floor_after_1600_gets_a_break_within_a_factor_1_5(seed):
    y = 0.3 * np.minimum(X, 1600.0) ** -0.5 * np.exp(0.03 * np.random.default_rng(seed).standard_normal(len(X)))
    fit = rt.broken_line(X, y)
    assert fit.kept and 1600 / 1.5 < fit.x_break < 1600 * 1.5
    assert fit.slope_low == pytest.approx(-0.5, abs=0.15) and fit.slope_high == pytest.approx(0.0, abs=0.15)


def test_the_broken_line_recovers_an_exact_one():
    y = 0.3 * np.minimum(X, 1600.0) ** -0.5
    fit = rt.broken_line(X, y)
    assert fit.x_break == pytest.approx(1600, rel=1e-6)
    assert fit.slope_low == pytest.approx(-0.5, abs=1e-6) and fit.slope_high == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(fit(X), y, rtol=1e-6)
    assert rt.broken_line(X[:5], y[:5]) is None                   # too few x for two segments of 3 points


# ------------------------------------------------------------------------------------------ the sweep's summary and figures
@cache
def _summary(x_key: str) -> dict:
    """A summary from synthetic records (built once per key: the bootstrap takes seconds): 4 seeds per x; 'risk'
    falls like x^−½ down to a floor after x = 1600, gap_0 like x^−½ throughout, each part of the risk gap like x^−½."""
    rng = np.random.default_rng(3)
    records = []
    for x in X:
        for seed in range(4):
            noise = lambda: float(np.exp(0.02 * rng.standard_normal()))          # noqa: E731
            sup = {"risk": 0.3 * min(x, 1600.0) ** -0.5 * noise(), "gap_0": 0.2 * x**-0.5 * noise()}
            sup |= {f"{part}_part_risk": 0.1 * x**-0.5 * noise() for part in ("sgd", "interaction", "sampling")}
            records.append({"x": x, "seed": seed, "sup": sup, "t0": dict(sup), "mc": {}})
    summary = rt.summarize(records, x_key)
    summary |= {"quantity": "risk", "fluctuations": {},
                "laziness": {"x": np.array([]), "fit_from": 0.0, "values": {}, "slopes": {}}}
    return summary


def test_the_summary_reports_the_break_printed_in_csv_and_in_netcdf(tmp_path):
    summary = _summary("particles.n")
    risk = summary["quantities"]["risk"]["broken"]
    assert risk.kept and 1600 / 1.5 < risk.x_break < 1600 * 1.5
    assert not summary["quantities"]["gap_0"]["broken"].kept
    text = sw.format_summary(summary, ("tanh(a)",))
    assert f"broken line: slope {risk.slope_low:+.3f} up to x_b = {risk.x_break:.4g}, {risk.slope_high:+.3f}" in text
    assert text.count("broken line:") == 1
    # a candidate that is not kept is named with its p, only when p < CANDIDATE_P_VALUE
    gap = summary["quantities"]["gap_0"]["broken"]
    assert ("one line kept: the best break" in text) == (gap.p_value < sw.CANDIDATE_P_VALUE)
    assert sw.break_text({"broken": dataclasses.replace(gap, p_value=0.025)}).startswith(
        f"one line kept: the best break, slope {gap.slope_low:+.3f} up to x_b = {gap.x_break:.4g}")
    assert sw.break_text({"broken": dataclasses.replace(gap, p_value=0.3)}) is None
    sw.write_summary(tmp_path, summary)
    with open(tmp_path / "summary.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("quantity") in ("risk", "gap_0")]
    assert {float(r["break_x"]) for r in rows if r["quantity"] == "risk"} == {risk.x_break}
    assert all(np.isnan(float(r["break_x"])) for r in rows if r["quantity"] == "gap_0")
    with xr.open_dataset(tmp_path / "summary.h5", engine="h5netcdf") as ds:
        assert float(ds.break_x.sel(quantity="risk")) == risk.x_break
        assert float(ds.slope_above_break.sel(quantity="risk")) == risk.slope_high
        assert np.isnan(float(ds.break_x.sel(quantity="gap_0")))
        assert float(ds.break_p_value.sel(quantity="gap_0")) > rt.BREAK_P_VALUE


def _log_slope(line) -> float:
    x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    return float(np.log(y[-1] / y[0]) / np.log(x[-1] / x[0]))


@pytest.mark.parametrize("x_key", ["particles.n", "particles.eps", "dynamics.alpha"])
def test_rates_png_draws_the_theory_slope_of_its_key_and_the_broken_line(x_key):
    summary = _summary("particles.n") | {"x_key": x_key}          # the same numbers against another key
    fig = rates_figure(summary, ("tanh(a)",))
    ax = fig.axes[0]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    references = [line for line in ax.get_lines() if line.get_label() in {v[1] for v in THEORY_SLOPES.values()}]
    if x_key in THEORY_SLOPES:
        assert len(references) == 1 and _log_slope(references[0]) == pytest.approx(THEORY_SLOPES[x_key][0])
        assert THEORY_SLOPES[x_key][1] in labels
    else:
        assert not references and not any("theory" in t or "bound" in t for t in labels)
    risk = next(t for t in labels if t.startswith("risk"))
    assert "broken line" in risk and "x_b = " in risk
    assert "broken line" not in next(t for t in labels if t.startswith("f = tanh(a)"))
    assert any(t.startswith("bars: ±1 standard error of the mean over 4 seeds") for t in labels)
    assert ax.get_xlabel() == x_key and ax.get_xscale() == ax.get_yscale() == "log"
    # the legend is outside the axes: below them
    fig.draw_without_rendering()
    assert fig.legends[0].get_window_extent().y1 < ax.get_window_extent().y0


def test_sweep_figures_name_the_problems_quantity():
    summary = _summary("particles.n") | {"quantity": "energy"}
    labels = [t.get_text() for t in rates_figure(summary).legends[0].get_texts()]
    assert any(t.startswith("energy |R_N") for t in labels) and not any(t.startswith("risk") for t in labels)
    assert parts_figure(summary).axes[0].get_title() == "energy R"


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")      # one seed per x: no bootstrap interval
def test_a_linear_flow_sweep_says_energy_and_a_members_figure_reads_its_pde_file(tmp_path, monkeypatch):
    """rates() takes the quantity from the problem; comparison_figure(pde=...) draws a sweep member against the
    PDE of its grid file."""
    monkeypatch.chdir(tmp_path)
    summary = mfdyn.sweep({"base": str(CONFIGS / "ornstein_uhlenbeck_2d.toml"), "name": "ou", "x": "particles.n",
                           "set": {"dynamics.t_end": 0.5, "output.every": 0.25, "pde.cells": 32},
                           "vary": {"particles.n": [100, 400]}}, workers=2,
                          log=lambda *_: None)
    folder = Path(summary.attrs["folder"])
    assert sw.rates(folder)["quantity"] == "energy"
    index = json.loads((folder / "index.json").read_text())
    member = index["members"][0]
    with mfdyn.open(folder / member["file"]) as run, mfdyn.open(folder / member["grid"]) as grid:
        assert not run.file.has("pde")
        table = comparison_table(run.file, grid.file)
        fig = comparison_figure(run.file, table, tmp_path / "member.png", pde=grid.file)
        last = grid.pde.density.isel(time=-1).values
    mesh = [c for c in _density_axes(fig)[-1].collections if isinstance(c, QuadMesh)][0]
    np.testing.assert_array_equal(np.asarray(mesh.get_array()).reshape(last.T.shape), last.T)
    assert (tmp_path / "member.png").stat().st_size > 1000
    assert fig.subfigs[0].axes[0].get_ylabel() == "energy"
