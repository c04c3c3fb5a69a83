"""The validation layer (issue 5): W1, observables, sweeps on a pool and on Dask, rates."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy.stats import norm

import mfdyn
from mfdyn.config import parse_override
from validation import rates as rt
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
    assert rt.fit_slope(x, 3.0 * x**-0.5) == pytest.approx(-0.5, abs=1e-12)
    assert rt.fit_slope(x, 0.2 * x**-1.0) == pytest.approx(-1.0, abs=1e-12)
    y = np.array([1.0, 0.6, 0.3, 0.2])                      # not a power law: the least-squares slope, by hand
    lx, ly = np.log(x), np.log(y)
    by_hand = ((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum()
    assert rt.fit_slope(x, y) == pytest.approx(by_hand, abs=1e-12)


# ------------------------------------------------------------------- the rate statistics on known records

XS = (100.0, 400.0, 1600.0, 6400.0)


def records(sup: dict[str, np.ndarray], t0: dict[str, np.ndarray] | None = None,
            mc: dict[str, np.ndarray] | None = None) -> list[dict]:
    """Sweep records (validation/rates.py) from arrays of shape (len(XS), seeds) per quantity; the members are
    listed in a scrambled order (x descending, seeds interleaved), as an index need not sort them."""
    first = next(iter(sup.values()))
    out = []
    for seed in reversed(range(first.shape[1])):
        for i in reversed(range(len(XS))):
            out.append({"x": XS[i], "seed": seed, "sup": {q: float(v[i, seed]) for q, v in sup.items()},
                        "t0": {q: float(v[i, seed]) for q, v in (t0 or sup).items()},
                        "mc": {q: float(v[i, seed]) for q, v in (mc or {}).items()}})
    return out


def test_an_exact_power_law_has_its_exponent_and_a_degenerate_interval():
    """Gaps C·x^(−1/2) for every seed: seed means C·x^(−1/2), zero spread, slope −1/2 and an interval of width 0."""
    x = np.array(XS)
    gaps = np.repeat((0.3 * x**-0.5)[:, None], 5, axis=1)
    summary = rt.summarize(records({"w1": gaps, "gap_0": 2 * gaps}), "particles.n")
    assert summary["x_key"] == "particles.n" and np.array_equal(summary["x"], x)
    assert list(summary["quantities"]) == ["gap_0", "w1"]
    for q, scale in (("w1", 0.3), ("gap_0", 0.6)):
        d = summary["quantities"][q]
        np.testing.assert_allclose(d["mean"], scale * x**-0.5, rtol=1e-15)
        np.testing.assert_allclose(d["stderr"], 0.0, atol=1e-15 * scale)
        assert d["slope"] == pytest.approx(-0.5, abs=1e-12) and d["seeds"] == 5
        assert d["ci"][0] == pytest.approx(-0.5, abs=1e-12) and d["ci"][1] == pytest.approx(-0.5, abs=1e-12)


def test_seed_means_stderr_and_bootstrap_interval_of_a_noisy_power_law():
    """Gaps C·x^(−1/2)·(1 + e) with noise e of spread 0.1 made to average 0 over the 16 seeds of each x: the seed
    means are C·x^(−1/2) (summed by hand), the standard errors sqrt(Σ(g − mean)²/(n − 1))/sqrt(n), the slope −1/2;
    the bootstrap interval contains it and is as wide as the resampled means' spread predicts (delta method)."""
    x, n = np.array(XS), 16
    e = 0.1 * np.random.default_rng(7).standard_normal((len(XS), n))
    e -= e.mean(axis=1, keepdims=True)
    gaps = 0.3 * x[:, None] ** -0.5 * (1 + e)
    d = rt.summarize(records({"w1": gaps}), "particles.n")["quantities"]["w1"]
    means = [math.fsum(row) / n for row in gaps]
    stderr = [math.sqrt(math.fsum((g - m) ** 2 for g in row) / (n - 1)) / math.sqrt(n) for row, m in zip(gaps, means)]
    np.testing.assert_allclose(d["mean"], means, rtol=1e-14)
    np.testing.assert_allclose(d["mean"], 0.3 * x**-0.5, rtol=1e-14)
    np.testing.assert_allclose(d["stderr"], stderr, rtol=1e-12)
    assert d["seeds"] == n and d["slope"] == pytest.approx(-0.5, abs=1e-12)
    # the bootstrap mean of x_i has variance σ̂_i²/n (σ̂² with 1/n); its log, relative variance σ̂_i²/(n m_i²);
    # the slope is Σ w_i log m_i with w_i = (L_i − L̄)/Σ(L − L̄)², L = log x
    lx = np.log(x)
    w = (lx - lx.mean()) / ((lx - lx.mean()) ** 2).sum()
    spread = np.sqrt(np.sum(w**2 * gaps.var(axis=1) / (n * np.array(means) ** 2)))
    low, high = d["ci"]
    assert low < -0.5 < high
    assert high - low == pytest.approx(2 * 1.959964 * spread, rel=0.1), (low, high, spread)
    assert abs(0.5 * (low + high) + 0.5) < 0.1 * (high - low)


@pytest.mark.parametrize("seeds", [[16] * 4, [16, 15, 16, 3]])
def test_the_batched_bootstrap_is_its_loop_bit_for_bit(seeds):
    """One rng.integers call and one polyfit for every draw (equal seeds at every x) give the slopes of one
    rng.choice and one fit at a time, from the same generator state; unequal seeds take the loop."""
    g = np.random.default_rng(11)
    per_x = [np.abs(g.normal(x**-0.5, 0.3 * x**-0.5, n)) for x, n in zip(XS, seeds)]
    batched = rt.bootstrap_slopes(np.array(XS), per_x, np.random.default_rng(3))
    loop = rt.bootstrap_slopes_loop(np.array(XS), per_x, np.random.default_rng(3))
    assert batched.shape == (rt.BOOTSTRAP,) and np.array_equal(batched, loop)


def test_t0_gaps_and_their_monte_carlo_prediction_are_averaged_per_x():
    """t0: the mean over seeds of each member's gap at t = 0; t0_predicted: of its Monte Carlo prediction, nan for
    a quantity without one (W1); a single seed per x: no standard error, no interval, but still a slope."""
    x = np.array(XS)
    rng = np.random.default_rng(3)
    sup, t0, mc = (rng.uniform(0.5, 1.5, (len(XS), 3)) * x[:, None] ** -0.5 for _ in range(3))
    summary = rt.summarize(records({"gap_0": sup, "w1": sup}, t0={"gap_0": t0, "w1": 2 * t0}, mc={"gap_0": mc}),
                           "particles.n")
    g, w1 = summary["quantities"]["gap_0"], summary["quantities"]["w1"]
    np.testing.assert_allclose(g["t0"], [math.fsum(r) / 3 for r in t0], rtol=1e-14)
    np.testing.assert_allclose(w1["t0"], [math.fsum(r) * 2 / 3 for r in t0], rtol=1e-14)
    np.testing.assert_allclose(g["t0_predicted"], [math.fsum(r) / 3 for r in mc], rtol=1e-14)
    assert np.all(np.isnan(w1["t0_predicted"]))
    with pytest.warns(RuntimeWarning, match="All-NaN"):
        single = rt.summarize(records({"w1": sup[:, :1]}), "particles.n")["quantities"]["w1"]
    assert np.all(np.isnan(single["stderr"])) and np.all(np.isnan(single["ci"])) and single["seeds"] == 1
    assert single["slope"] == pytest.approx(rt.fit_slope(x, sup[:, 0]), abs=1e-12)


MC_RUN = """
[problem]
name = "ornstein_uhlenbeck"
stiffness = [1.0]
profile = "gaussian"
[init]
kappa = 0.4
mean = [0.3]
[dynamics]
t_end = 0.1
[pde]
cells = 480
[particles]
n = 50
eps = 1e-3
[output]
every = 0.1
observables = ["theta1", "theta1**2", "tanh(theta1)"]
"""


def test_monte_carlo_t0_prediction_for_a_gaussian_initial_law(tmp_path):
    """ρ_0 = N(m, κ²), N = 50: the prediction sqrt(2/π)·std_f/sqrt(N) with std_f in closed form (θ: κ;
    θ²: sqrt(4m²κ² + 2κ⁴); tanh θ: by 80-node Gauss–Hermite), to the grid's O(h²) midpoint-rule error of
    std_f (h²/(24κ²) for θ); and for f = θ, whose sample mean is exactly Gaussian, E|mean θ_i − m| by sampling."""
    config = tmp_path / "ou.toml"
    config.write_text(MC_RUN)
    out = tmp_path / "ou.h5"
    assert main(["run", str(config), "--out", str(out)]) == 0
    predicted = sw.monte_carlo_t0(out, out)
    m, kappa, n = 0.3, 0.4, 50
    with mfdyn.open(out) as run:
        assert run.particles.sizes["particle"] == n
        h = float(np.diff(run.pde.theta1.values[:2])[0])
    z, q = np.polynomial.hermite_e.hermegauss(80)
    q = q / q.sum()
    tanh_std = math.sqrt(q @ np.tanh(m + kappa * z) ** 2 - (q @ np.tanh(m + kappa * z)) ** 2)
    stds = (kappa, math.sqrt(4 * m**2 * kappa**2 + 2 * kappa**4), tanh_std)
    assert set(predicted) == {"gap_0", "gap_1", "gap_2"}
    for k, std in enumerate(stds):
        assert predicted[f"gap_{k}"] == pytest.approx(math.sqrt(2 / math.pi) * std / math.sqrt(n),
                                                      rel=h**2 / (8 * kappa**2)), k
    draws = np.abs((m + kappa * np.random.default_rng(11).standard_normal((20000, n))).mean(axis=1) - m)
    assert abs(draws.mean() - predicted["gap_0"]) < 4 * draws.std() / math.sqrt(draws.size)


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
        with mfdyn.open(folder / m["file"]) as run:
            out[" ".join(m["overrides"])] = np.concatenate([run.particles.theta.values.ravel(),
                                                            run.particles.risk.values])
    return out


def test_sweep_runs_skips_finished_members_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(write_sweep(tmp_path, "pool"))]) == 0
    out = capsys.readouterr().out
    assert "rates against particles.n" in out and "slope" in out
    folder = tmp_path / "runs" / "pool"
    for name in ("summary.csv", "summary.h5", "rates.png", "index.json"):
        assert (folder / name).exists()
    index = json.loads((folder / "index.json").read_text())
    with xr.open_dataset(folder / "summary.h5", engine="h5netcdf") as f:
        assert {"w1", "gap_0"} <= set(f.quantity.values) and np.all(f.x.values == [50, 200])
        for i, n in enumerate((50, 200)):                   # what rates() read from the members' files
            members = [m for m in index["members"] if f"particles.n={n}" in m["overrides"]]
            tables = [sw.member_gaps(folder / m["file"], folder / m["grid"]) for m in members]
            assert len(members) == 2 and f.seeds.sel(quantity="w1") == 2
            assert float(f["mean"].sel(quantity="w1")[i]) == pytest.approx(np.mean([t["w1"].max() for t in tables]),
                                                                          rel=1e-12)
            assert float(f.t0.sel(quantity="gap_0")[i]) == pytest.approx(np.mean([t["gap_0"][0] for t in tables]),
                                                                        rel=1e-12)
            assert float(f.t0_predicted.sel(quantity="gap_0")[i]) == pytest.approx(
                sw.monte_carlo_t0(folder / members[0]["grid"], folder / members[0]["file"])["gap_0"], rel=1e-12)
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
    ('base = "teacher_student_2d.toml"\nset = ["a"]\n[vary]\n"particles.n" = [10]\n', "sweep.set: must be a table"),
    ('base = "teacher_student_2d.toml"\nx = "particles.seed"\n[vary]\n"particles.seed" = [1, 1]\n', "listed twice"),
    ('base = "teacher_student_2d.toml"\nx = "particles.n"\n[vary]\n"particles.n" = [10]\n[zip]\n"particles.n" = [20]\n',
     "also in [vary]"),
    ('base = "teacher_student_2d.toml"\nengines = ["kernel", "particles"]\n[vary]\n"particles.n" = [10]\n',
     "including pde"),
    ('base = "teacher_student_2d.toml"\nengines = ["pde", "kernel"]\nx = "dynamics.beta"\n[vary]\n'
     '"dynamics.beta" = [10.0]\n', "kernel engine is the noiseless lazy limit"),
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
        assert len(spec.members) >= (20 if path.stem in {"n_scaling", "n_scaling_mmn", "eps_scaling"} else 5)
    n_spec = sw.load_sweep(ROOT / "configs" / "n_scaling.toml")
    values = [{k: v for _, k, v in (parse_override(o) for o in m.overrides)} for m in n_spec.members]
    ns = {v["n"] for v in values if "n" in v}
    assert min(ns) <= 200 and max(ns) >= 12800                              # issue 13: N = 200 … 12800, 16 seeds
    assert len({v["seed"] for v in values}) >= 16
    for name in ("n_scaling", "eps_scaling", "n_scaling_mmn", "clt"):      # the studies of docs/math.md §8
        spec = sw.load_sweep(ROOT / "configs" / f"{name}.toml")
        assert spec.config(spec.members[0]).particles.coupled, name


def test_a_zipped_alpha_sweep_with_engines_per_member(tmp_path, monkeypatch):
    """[zip] takes lists together; "engines" per member: the grid file holds pde and kernel for every α,
    particles run only where asked; the summary carries the laziness per α and its slope."""
    monkeypatch.chdir(tmp_path)
    spec = {"base": str(ROOT / "configs" / "teacher_student_lazy.toml"), "name": "alpha", "x": "dynamics.alpha",
            "set": {"dynamics.t_end": 0.5, "output.every": 0.25, "pde.cells": [52, 36], "particles.eps": 1e-3,
                    "particles.n": 200},
            "zip": {"dynamics.alpha": [4.0, 16.0, 64.0],
                    "engines": [["pde", "kernel", "particles"], ["pde", "kernel"], ["pde", "kernel"]]}}
    summary = mfdyn.sweep(spec, workers=2, log=lambda *_: None)
    folder = tmp_path / "runs" / "alpha"
    index = json.loads((folder / "index.json").read_text())
    assert [("file" in m) for m in index["members"]] == [True, False, False]
    assert len(list(folder.glob("pde-*.h5"))) == 3 and len(list(folder.glob("run-*.h5"))) == 1
    assert list(summary.x_lazy.values) == [4.0, 16.0, 64.0]
    kernel = summary.final_risk_kernel.values
    assert kernel[0] == pytest.approx(kernel[2], rel=1e-12)                # the kernel limit does not see α
    assert np.isfinite(summary.final_risk_sgd.values[0]) and np.all(np.isnan(summary.final_risk_sgd.values[1:]))
    w2 = summary.sup_w2_pde.values
    assert np.all(np.diff(w2) < 0)                                         # lazier as α grows
    assert summary.attrs["slope_sup_w2_pde"] == pytest.approx(rt.fit_slope(summary.x_lazy.values, w2), abs=1e-12)
    assert (folder / "transition.png").stat().st_size > 1000
    for bad, words in (({"zip": {"dynamics.alpha": [1.0, 2.0], "particles.n": [10]}}, "sweep.zip: every list"),
                       ({"engines": ["particles"]}, "sweep.engines: must be a list of engines")):
        with pytest.raises(mfdyn.ConfigError, match=words):
            mfdyn.sweep({**spec, **bad}, log=lambda *_: None)


def test_a_coupled_sweep_fits_each_part_and_checks_the_sampling_law(tmp_path, monkeypatch):
    """particles.coupled members: the grid task runs without the coupling, each member's file holds G and T, the
    summary fits every part (SGD, interaction, sampling) of every quantity and gives the sampling part's law per
    N; parts.png and fluctuations.png are written."""
    monkeypatch.chdir(tmp_path)
    spec = {"base": str(ROOT / "configs" / "teacher_student_2d.toml"), "name": "parts", "x": "particles.n",
            "set": {"dynamics.t_end": 0.5, "output.every": 0.25, "pde.cells": [52, 56], "particles.eps": 1e-3,
                    "particles.coupled": True},
            "vary": {"particles.n": [100, 400], "particles.seed": [0, 1, 2]}}
    logged = []
    summary = mfdyn.sweep(spec, workers=2, log=logged.append)
    folder = tmp_path / "runs" / "parts"
    for name in ("risk", "0", "4"):
        for part in ("sgd", "interaction", "sampling"):
            assert f"{part}_part_{name}" in summary.quantity.values
    assert np.all(summary["mean"].sel(quantity="sampling_part_risk").values > 0)
    assert summary.sampling_sd_sqrt_n.shape == (2, 3, 5)                   # (N, save time, test function)
    assert list(summary.x_fluctuations.values) == [100.0, 400.0]
    assert np.all(summary.sampling_spread.values[:, 0] > 0)
    text = "\n".join(map(str, logged))
    assert "parts of the gap against particles.n" in text and "sd(G − ρ)/sd(T − ρ)" in text
    for figure in ("rates.png", "parts.png", "fluctuations.png"):
        assert (folder / figure).stat().st_size > 1000
    with mfdyn.open(next(folder.glob("pde-*.h5"))) as grid:
        assert "gd" not in grid.groups and "tracers" not in grid.groups


# ------------------------------------------------------------------- the analysis shared per PDE file (issue 16)


def test_w1_pieces_kernel_is_its_numpy_twin_bit_for_bit():
    """mfdyn.transport.w1_terms_1d on the distinct points (distinct_ends) against w1_terms_1d_numpy (union1d +
    searchsorted) on the repeated ones, on small random cases with ties everywhere: repeated grid points, empty
    cells, particles on grid points and on each other, ±inf and NaN particles."""
    from mfdyn.transport import distinct_ends, w1_terms_1d, w1_terms_1d_numpy

    rng = np.random.default_rng(5)
    for trial in range(600):
        m, n = int(rng.integers(1, 40)), int(rng.integers(1, 30))
        xs = np.sort(np.round(rng.standard_normal(m), 1 if trial % 2 else 12))       # rounded: repeated points
        cdf = np.cumsum(rng.uniform(0.0, 1.0, m) * (rng.uniform(size=m) > 0.2))        # some cells empty
        cdf /= max(cdf[-1], 1.0)
        part = np.round(rng.standard_normal(n), 1 if trial % 3 else 12)
        part[: n // 3] = rng.choice(xs, n // 3)
        if trial % 7 == 0:
            part[0] = np.nan
        if trial % 11 == 0:
            part[-1] = np.inf
        if trial % 13 == 0:
            part[0] = -np.inf
        part = np.sort(part)
        ends = distinct_ends(xs)
        assert np.array_equal(xs[ends], np.unique(xs))
        fast, twin = w1_terms_1d(xs[ends], cdf[ends], part), w1_terms_1d_numpy(xs, cdf, part)
        assert fast.shape == twin.shape and np.array_equal(fast, twin, equal_nan=True), trial


def test_sliced_w1_is_the_mean_of_the_twin_pieces_and_reuses_a_density():
    """SlicedW1(z, ρ) is bit for bit the mean over directions of np.sum of the twin's pieces (what SlicedW1 summed
    before issue 16), each direction's grid law the cumulative masses of the cells in projection order;
    distance(z, cdfs(ρ)) is the same number."""
    from mfdyn.transport import w1_terms_1d_numpy

    centres = [np.linspace(-3, 3, 31), np.linspace(-2, 2, 27)]
    mesh = np.meshgrid(*centres, indexing="ij")
    density = np.exp(-mesh[0] ** 2 - 0.5 * (mesh[1] - 0.3) ** 2)
    sliced = SlicedW1(centres, directions=16)
    weights = density.ravel() / density.sum()
    cdfs = sliced.cdfs(density)
    for seed in range(3):
        z = np.random.default_rng(seed).standard_normal((200 + 100 * seed, 2))
        by_twin = 0.0
        for d, direction in enumerate(sliced.u):
            cdf = np.cumsum(weights[sliced.order[d]])
            by_twin += float(np.sum(w1_terms_1d_numpy(sliced.sorted[d], cdf, np.sort(z @ direction))))
        assert sliced(z, density) == by_twin / len(sliced.u)
        assert sliced.distance(z, cdfs) == sliced(z, density)
    assert np.all(np.diff(sliced.sorted, axis=1) >= 0)


def test_members_sharing_a_pde_side_get_the_tables_they_get_alone(tmp_path, monkeypatch):
    """Two runs of one grid config (seeds 1 and 2) against one PDE file through one PdeSide: every array of their
    tables equal, bit for bit, to comparison_table without it (also when the side keeps W1's grid side of one save
    time only), the PDE's ∫f dρ_t computed once per test function for both; and rates() over them as a sweep
    folder gives their sup-gaps and Monte Carlo predictions exactly."""
    import validation.compare as cmp
    from mfdyn.config import load_config
    from mfdyn.storage import RunFile
    from validation.observables import pde_expectations
    from validation.runner import execute

    base = ROOT / "configs" / "teacher_student_2d.toml"
    short = ["dynamics.t_end=0.2", "output.every=0.1", "particles.eps=1e-3", "pde.cells=[36, 40]", "particles.n=60"]
    execute(load_config(base, short), tmp_path / "pde.h5", "pde").close()
    for seed in (1, 2):
        execute(load_config(base, [*short, f"particles.seed={seed}"]), tmp_path / f"run{seed}.h5", "particles").close()
    calls = []
    monkeypatch.setattr(cmp, "pde_expectations", lambda *args: calls.append(args[0]) or pde_expectations(*args))
    with RunFile.open(tmp_path / "pde.h5") as pde:
        side = cmp.PdeSide(pde)
        for seed in (1, 2):
            with RunFile.open(tmp_path / f"run{seed}.h5") as run:
                before = len(calls)
                shared = cmp.comparison_table(run, pde, side)
                assert calls[before:] == (list(cmp.observables_of(run)) if seed == 1 else [])     # once, for both
                own = sw.member_gaps(tmp_path / f"run{seed}.h5", tmp_path / "pde.h5")
                assert shared.keys() == own.keys() and {"w1", "gap_0", "quantiles_pde_a"} <= set(own)
                for key in own:
                    assert shared[key].shape == own[key].shape and np.array_equal(shared[key], own[key]), key
                assert sw._monte_carlo_t0(run, side) == sw.monte_carlo_t0(tmp_path / "pde.h5",
                                                                          tmp_path / f"run{seed}.h5")
        assert len(side._cdfs) == len(side.time)                 # W1's grid side kept for every save time
        small = cmp.PdeSide(pde)
        small.CDFS_BYTES = 1                                     # ... or only the last one: the same numbers
        with RunFile.open(tmp_path / "run1.h5") as run:
            assert np.array_equal(cmp.comparison_table(run, pde, small)["w1"],
                                  sw.member_gaps(tmp_path / "run1.h5", tmp_path / "pde.h5")["w1"])
        assert len(small._cdfs) == 1 < len(side.time)
    # rates() over these files as a sweep folder (x = the seed: one member per x): the sup-gaps of the tables alone
    members = [{"overrides": [*short, f"particles.seed={seed}"], "grid": "pde.h5", "file": f"run{seed}.h5",
                "engines": ["pde", "particles"]} for seed in (2, 1)]
    (tmp_path / "index.json").write_text(json.dumps({"sweep": "(dict)", "x": "particles.seed", "members": members}))
    with pytest.warns(RuntimeWarning):                       # one seed per x: no spread, no interval
        summary = sw.rates(tmp_path)
    alone = [sw.member_gaps(tmp_path / f"run{seed}.h5", tmp_path / "pde.h5") for seed in (1, 2)]
    for q in ("w1", "gap_0", "risk"):
        expected = [float(np.max(np.abs(t["risk_gap"]) if q == "risk" else t[q])) for t in alone]
        assert list(summary["quantities"][q]["mean"]) == expected, q
    assert list(summary["quantities"]["gap_0"]["t0_predicted"]) == [
        sw.monte_carlo_t0(tmp_path / "pde.h5", tmp_path / f"run{seed}.h5")["gap_0"] for seed in (1, 2)]
