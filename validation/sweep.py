"""`mfdyn sweep` and mfdyn.sweep: cross a base config with lists of values, run every member, fit the rates
(docs/guide.md, "Sweeps").

A sweep is a TOML file or a dict with the same keys:

    base = "teacher_student_2d.toml"      # a run config (relative to the sweep file; to the working folder
                                          # for a dict), or, in a dict, the config itself as a dict
    name = "n_scaling"                    # output folder runs/<name>/ (default: the file's name)
    folder = "runs/n_scaling"             # optional: the output folder itself
    x = "particles.n"                     # the key the rates are fitted against (log-log)
    engines = ["pde", "particles"]        # what runs per member (also "kernel"); default pde + particles
    fit_from = 16                         # optional: fit the laziness slopes on x ≥ this only
    [set]                                 # fixed overrides of the base
    "dynamics.t_end" = 2.0
    [vary]                                # lists to cross
    "particles.seed" = [0, 1, 2, 3]
    [zip]                                 # lists of one length, taken together (crossed with [vary])
    "dynamics.alpha" = [1.0, 4.0, 16.0]
    "particles.n" = [1000, 1000, 4096]
    "engines" = [["pde", "kernel", "particles"], ["pde", "kernel", "particles"], ["pde", "kernel"]]

The grid engines (pde, kernel) do not depend on particles.*, so each distinct grid config is solved
once (pde-<hash>.h5) and every member runs only its particles (run-<hash>.h5); index.json maps
overrides to files. Finished files (status "completed") are skipped when the sweep runs again, so
an interrupted sweep resumes. Members run in a spawn-based process pool with one Numba thread per
worker, or on a Dask cluster (--scheduler ADDRESS: the same tasks through client.get_executor());
results do not depend on which.

Analysis (validation/rates.py): per member and gap (risk gap, each test function's gap, W1) the sup
over the save times; averaged over seeds for each x; the slope of log(mean sup-gap) against log x
with a 95% bootstrap interval over seeds. Per x also the laziness of docs/math.md §7: the final risk
of each engine, and sup over t of the W2 displacement, the particles' displacement and the kernel
changes, with their slopes against x. The summary is an xarray Dataset (summary.h5 as netCDF,
summary.csv), printed, and drawn (rates.png; transition.png when the sweep has laziness data).
The members are analysed PDE file by PDE file: each is opened once, and the PDE side of the comparison
(validation.compare.PdeSide: densities, quantiles, ∫f dρ_t, W1's cumulative masses per save time) made once for
all its members; the numbers are those of each member compared alone (member_gaps), bit for bit.
"""
from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import tomllib
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from mfdyn.config import Config, ConfigError, load_config, parse_override
from mfdyn.schema import toml_value
from mfdyn.storage import RunFile
from validation.compare import PARTS, PdeSide, comparison_table, observables_of, particle_count
from validation.fluctuations import law
from validation.rates import BREAK_P_VALUE, fit_slope, summarize
from validation.workers import one_numba_thread

KEYS = ("base", "name", "folder", "x", "engines", "fit_from", "set", "vary", "zip")
ENGINES = ("pde", "kernel", "particles")
GRID_ENGINES = ("pde", "kernel")       # solved once per distinct grid config, into pde-<hash>.h5


@dataclass
class Member:
    """One run of a sweep: its overrides of the base, and the engines it runs."""

    overrides: list[str]
    engines: tuple[str, ...]


@dataclass
class Sweep:
    """A parsed, validated sweep."""

    source: str              # the sweep file, or "(dict)"
    base_toml: str           # the base config, resolved
    name: str
    x: str
    folder: Path
    fit_from: float
    members: list[Member] = field(default_factory=list)

    def config(self, member: Member) -> Config:
        return load_config(self.base_toml, member.overrides, from_text=True)


def _override(key: str, value: Any) -> str:
    return f"{key}={toml_value(value)}"


def _engines(value: Any, where: str, errors: list[str]) -> tuple[str, ...]:
    if (not isinstance(value, list) or not value or any(e not in ENGINES for e in value) or "pde" not in value):
        errors.append(f"{where}: must be a list of engines among {', '.join(ENGINES)} including pde, "
                      f"got {value!r}")
        return ()
    return tuple(e for e in ENGINES if e in value)


def load_sweep(spec: str | Path | dict) -> Sweep:
    """Read and validate a sweep (a file or a dict) and every member's config: all errors at once, nothing run."""
    if isinstance(spec, dict):
        data, source, here = spec, "(dict)", Path.cwd()
    else:
        source, here = str(spec), Path(spec).parent
        try:
            data = tomllib.loads(Path(spec).read_text())
        except OSError as exc:
            raise ConfigError([f"sweep {source!r}: cannot read ({exc.strerror or exc})"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"sweep {source!r} is not valid TOML: {exc}"]) from None
    errors = []
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        errors.append(f"sweep: unknown keys {unknown}; allowed: {', '.join(KEYS)}")
    base = data.get("base")
    base_toml = None
    if isinstance(base, dict):
        try:
            base_toml = Config.from_dict(base).to_toml()
        except ConfigError as exc:
            errors += [f"sweep.base: {p}" for p in exc.problems]
    elif isinstance(base, str):
        try:
            base_toml = load_config(here / base).to_toml()
        except ConfigError as exc:
            errors += [f"sweep.base: {p}" for p in exc.problems]
    else:
        errors.append("sweep.base: missing; must be the path of a run config (relative to the sweep file) or a "
                      "config dict")
    vary, zipped, fixed_table = data.get("vary", {}), data.get("zip", {}), data.get("set", {})
    if not isinstance(fixed_table, dict):
        errors.append(f"sweep.set: must be a table of overrides, e.g. \"dynamics.t_end\" = 2.0, got {fixed_table!r}")
        fixed_table = {}
    if "engines" in fixed_table:
        errors.append("sweep.set: 'engines' is not a config key; give it at the top level or in [zip]/[vary]")
        fixed_table = {k: v for k, v in fixed_table.items() if k != "engines"}
    lists_ok = True
    for key, table in (("vary", vary), ("zip", zipped)):
        if not isinstance(table, dict) or any(not isinstance(v, list) or not v for v in table.values()):
            errors.append(f"sweep.{key}: must be a table of non-empty lists, e.g. \"particles.seed\" = [0, 1, 2]")
            lists_ok = False
    if lists_ok and not vary and not zipped:
        errors.append("sweep.vary: must be a table of non-empty lists, e.g. \"particles.seed\" = [0, 1, 2]")
        lists_ok = False
    if lists_ok and set(vary) & set(zipped):
        errors.append(f"sweep.zip: {sorted(set(vary) & set(zipped))} also in [vary]; give each key in one table")
        lists_ok = False
    if lists_ok and zipped and len({len(v) for v in zipped.values()}) > 1:
        errors.append("sweep.zip: every list must have the same length, got "
                      + ", ".join(f"{k}: {len(v)}" for k, v in zipped.items()))
        lists_ok = False
    x = data.get("x", "particles.n")
    if lists_ok and x not in set(vary) | set(zipped):
        errors.append(f"sweep.x: {x!r} must be one of the varied keys ({', '.join([*vary, *zipped])})")
    default_engines = _engines(data.get("engines", ["pde", "particles"]), "sweep.engines", errors)
    fit_from = data.get("fit_from", 0.0)
    if isinstance(fit_from, bool) or not isinstance(fit_from, (int, float)):
        errors.append(f"sweep.fit_from: must be a number, got {fit_from!r}")
    if errors:
        raise ConfigError(errors)
    name = str(data.get("name", Path(source).stem if source != "(dict)" else "sweep"))
    sweep = Sweep(source, base_toml, name, x, Path(data.get("folder", Path("runs") / name)), float(fit_from))
    fixed = [_override(k, v) for k, v in fixed_table.items()]
    zip_rows = list(zip(*zipped.values())) if zipped else [()]
    for crossed in itertools.product(*vary.values()):
        for row in zip_rows:
            values = dict(zip(vary, crossed)) | dict(zip(zipped, row))
            engines = (_engines(values.pop("engines"), "sweep.zip.engines", errors) if "engines" in values
                       else default_engines)
            sweep.members.append(Member(fixed + [_override(k, v) for k, v in values.items()], engines))
    seen: set[str] = set()
    checked: set[tuple[str, tuple[str, ...]]] = set()
    for member in sweep.members:            # every member a valid config, its engines applicable, none twice
        label = " ".join(member.overrides)
        if label in seen:
            errors.append(f"sweep member {label}: listed twice (a repeated value in [vary] or [zip])")
        seen.add(label)
        try:
            config = sweep.config(member)
        except ConfigError as exc:
            errors += [f"sweep member {label}: {p}" for p in exc.problems]
            continue
        key = (config.grid_key(), member.engines)      # the engines' checks depend on the grid config only
        if key not in checked:
            checked.add(key)
            errors += [f"sweep member {label}: {p}" for p in _engine_problems(config, member.engines)]
    if errors:
        raise ConfigError(errors)
    return sweep


def _engine_problems(config: Config, engines: tuple[str, ...]) -> list[str]:
    """The engines' own cheap checks on a member (memory, applicability), as error lines; nothing is run."""
    from validation.runner import build_engines

    try:
        build_engines(config, "+".join(engines), quiet=True)
    except ValueError as exc:
        return [str(exc)]
    return []


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def member_values(member: dict) -> dict[str, Any]:
    """A member's overrides (of index.json) as {dotted key: value}."""
    return {".".join(parse_override(o)[:2]): parse_override(o)[2] for o in member["overrides"]}


def _is_complete(path: Path) -> bool:
    try:
        with RunFile.open(path) as f:
            return f.status == "completed"
    except (ValueError, OSError):
        return False


def run_member(base_toml: str, overrides: list[str], out: str, engine: str) -> str:
    """One sweep task (top level, so that spawn and Dask workers can run it): one numba thread."""
    import numba

    numba.set_num_threads(1)
    from validation.runner import execute

    # Written beside its place and moved there once complete: a grid file rerun with more engines is not
    # truncated until the new one is whole, and a killed task leaves no partial file in its place
    target = Path(out)
    partial = target.with_name(f".{target.name}.partial")
    execute(load_config(base_toml, overrides, from_text=True), partial, engine, progress=False).close()
    os.replace(partial, target)
    return out


def make_executor(workers: int, scheduler: str | None) -> tuple[Executor, object]:
    """A spawn-based process pool, or a Dask cluster's executor; returns (executor, client or None)."""
    if scheduler is None:
        return ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=one_numba_thread), None
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("--scheduler needs dask.distributed: pip install 'mfdyn[dask]'") from None
    client = Client(scheduler)
    return client.get_executor(), client


def run_sweep(sweep: Sweep, workers: int = 2, scheduler: str | None = None, log=print) -> Path:
    """Run every member not already complete; write index.json; return the folder."""
    folder = sweep.folder
    folder.mkdir(parents=True, exist_ok=True)
    index, tasks = [], []
    grids: dict[str, tuple[Path, list[str], set[str]]] = {}
    for member in sweep.members:
        config = sweep.config(member)
        key = config.grid_key()
        grid_file, _, wanted = grids.setdefault(key, (folder / f"pde-{_digest(key)}.h5", member.overrides, set()))
        wanted.update(e for e in member.engines if e in GRID_ENGINES)
        entry = {"overrides": member.overrides, "grid": grid_file.name, "engines": list(member.engines)}
        if "particles" in member.engines:
            run_file = folder / f"run-{_digest(config.to_toml())}.h5"
            entry["file"] = run_file.name
            if not _is_complete(run_file):
                tasks.append((sweep.base_toml, member.overrides, str(run_file), "particles"))
        index.append(entry)
    for grid_file, overrides, wanted in grids.values():
        if not _is_complete(grid_file) or not all(_has_group(grid_file, g) for g in wanted):
            # [particles] is not the grid's: the coupled systems run in the members' files (coupled/tracers.py)
            tasks.insert(0, (sweep.base_toml, [*overrides, "particles.coupled=false"], str(grid_file),
                             "+".join(e for e in ENGINES if e in wanted)))
    (folder / "index.json").write_text(json.dumps({"sweep": sweep.source, "x": sweep.x, "fit_from": sweep.fit_from,
                                                    "members": index}, indent=1))
    runs = sum("particles" in m.engines for m in sweep.members)
    log(f"sweep {sweep.name}: {len(sweep.members)} members, {len(grids)} grid solve(s); "
        f"{len(tasks)} task(s) to run, {runs + len(grids) - len(tasks)} already complete")
    if tasks:
        executor, client = make_executor(workers, scheduler)
        try:
            futures = [executor.submit(run_member, *task) for task in tasks]
            for done, future in enumerate(futures, 1):
                future.result()
                log(f"  {done}/{len(tasks)} done")
        finally:
            executor.shutdown(wait=True)
            if client is not None:
                client.close()
    return folder


def _has_group(path: Path, group: str) -> bool:
    with RunFile.open(path) as f:
        return f.has(group)


# ------------------------------------------------------------------------------------------ rates


def member_gaps(run_file: Path, pde_file: Path) -> dict[str, np.ndarray]:
    """The comparison table of one member against its PDE (two files), on its own: rates() shares the PDE side of
    it (validation.compare.PdeSide) between the members of one PDE file."""
    with RunFile.open(run_file) as run, RunFile.open(pde_file) as pde:
        return comparison_table(run, pde)


def monte_carlo_t0(pde_file: Path, run_file: Path) -> dict[str, float]:
    """Per test function k: E|mean f(θ_i) − ∫f dρ_0| = sqrt(2/π) std_f / sqrt(N) for θ_i iid ~ ρ_0."""
    with RunFile.open(run_file) as run, RunFile.open(pde_file) as pde:
        return _monte_carlo_t0(run, PdeSide(pde))


def _monte_carlo_t0(run: RunFile, side: PdeSide) -> dict[str, float]:
    if load_config(run.config_toml, from_text=True).init.symmetric:
        return {}                           # paired particles are not iid: no such prediction
    n = particle_count(run)
    out = {}
    for k, expression in enumerate(observables_of(run)):
        mean, second = side.expectations(expression)[0], side.expectations(f"({expression})**2")[0]
        out[f"gap_{k}"] = float(np.sqrt(2 / np.pi) * np.sqrt(max(second - mean**2, 0.0)) / np.sqrt(n))
    return out


# Keys against which the laziness is summarised (docs/math.md §7)
LAZY_KEYS = ("dynamics.alpha",)
# Laziness per member: name → (group, dataset, "final" value or "sup" over t)
LAZINESS = {"final_risk_pde": ("pde", "risk", "final"), "final_risk_kernel": ("kernel", "risk", "final"),
            "final_risk_sgd": ("particles", "risk", "final"), "sup_w2_pde": ("pde", "w2_displacement", "sup"),
            "sup_kernel_change_pde": ("pde", "kernel_change", "sup"),
            "sup_displacement_sgd": ("particles", "displacement", "sup"),
            "sup_kernel_change_sgd": ("particles", "kernel_change", "sup")}


def _laziness(f: RunFile, particles: bool) -> dict[str, float]:
    """The LAZINESS values a file has: those of /particles (a member's run file) or of the other groups (its
    grid file)."""
    out = {}
    for name, (group, dataset, how) in LAZINESS.items():
        if (group == "particles") == particles and f.has(group, dataset) and f.count(group):
            values = f.series(group, dataset)
            out[name] = float(values[-1] if how == "final" else np.max(values))
    return out


def fluctuation_record(x: float, n: int, table: dict[str, np.ndarray]) -> dict:
    """What validation.fluctuations needs of one coupled member's comparison table (N particles)."""
    k = sorted(int(name[len("sd_tracers_"):]) for name in table if name.startswith("sd_tracers_"))
    column = lambda fmt: np.stack([table[fmt.format(i)] for i in k], axis=1)      # noqa: E731  (T, F)
    return {"x": x, "n": n, "sampling": column("sampling_part_{}"),
            "flow": column("obs_gd_{}") - column("obs_pde_{}"), "spread": column("sd_tracers_{}")}


def rates(folder: Path) -> dict:
    """Sup-gaps per member, seed means per x, slopes with bootstrap intervals and broken-line fits, the t = 0 Monte
    Carlo check, the laziness per x with its slopes (fitted on x ≥ fit_from), and "quantity": what the problem
    calls R (Problem.quantity: "risk", or "energy" for the linear flows), for the figures' labels."""
    from mfdyn.problems import PROBLEMS

    index = json.loads((folder / "index.json").read_text())
    key = index["x"]
    with RunFile.open(folder / index["members"][0]["grid"]) as f:
        quantity = PROBLEMS[load_config(f.config_toml, from_text=True).problem.name].quantity
    members = index["members"]
    by_grid: dict[str, list[int]] = {}
    for i, member in enumerate(members):
        by_grid.setdefault(member["grid"], []).append(i)
    analysed: list[tuple] = [()] * len(members)
    for grid, positions in by_grid.items():          # each PDE file opened once, its PDE side made once
        with RunFile.open(folder / grid) as pde:
            side = PdeSide(pde) if any("file" in members[i] for i in positions) else None
            grid_laziness = _laziness(pde, particles=False)
            for i in positions:
                analysed[i] = _analyse_member(members[i], folder, key, pde, side, grid_laziness)
    records = [a[0] for a in analysed if a[0] is not None]
    lazy = [a[1] for a in analysed]
    fluctuations = [a[2] for a in analysed if a[2] is not None]
    summary = summarize(records, key) if records else {"x_key": key, "x": np.array([]), "quantities": {}}
    summary["quantity"] = quantity
    summary["fluctuations"] = law(fluctuations)
    summary["laziness"] = _laziness_summary(lazy if key in LAZY_KEYS else [], index.get("fit_from", 0.0))
    return summary


def _analyse_member(member: dict, folder: Path, key: str, pde: RunFile, side: PdeSide | None,
                    grid_laziness: dict[str, float]) -> tuple[dict | None, dict, dict | None]:
    """One member of index.json against its open PDE file and that file's PdeSide: (its rate record or None
    without particles, its laziness, its fluctuation record or None when not coupled)."""
    values = member_values(member)
    x, seed = float(values[key]), values.get("particles.seed", 0)
    lazy = {"x": x, **grid_laziness}
    if "file" not in member:
        return None, lazy, None
    with RunFile.open(folder / member["file"]) as run:
        table = comparison_table(run, pde, side)
        quantities = {k: table[k] for k in table if k.startswith("gap_") or k == "w1"}
        if np.all(np.isfinite(table["risk_gap"])):
            quantities["risk"] = np.abs(table["risk_gap"])
        # the parts of the gap (docs/math.md §8), each fitted on its own: sup_t |part|
        quantities.update({k: np.abs(v) for k, v in table.items() if k.split("_part_")[0] in PARTS
                           and "_part_" in k and np.all(np.isfinite(v))})
        fluctuation = fluctuation_record(x, particle_count(run), table) if "risk_gd" in table else None
        record = {"x": x, "seed": seed, "sup": {q: float(np.max(v)) for q, v in quantities.items()},
                  "t0": {q: float(v[0]) for q, v in quantities.items()}, "mc": _monte_carlo_t0(run, side)}
        lazy.update(_laziness(run, particles=True))
    return record, lazy, fluctuation


def _laziness_summary(lazy: list[dict], fit_from: float) -> dict:
    """Per x the mean of each laziness value over the members at that x; slopes of the sup values on x ≥ fit_from."""
    xs = np.array(sorted({r["x"] for r in lazy}))
    out = {"x": xs, "fit_from": fit_from, "values": {}, "slopes": {}}
    for name in LAZINESS:
        per_x = np.array([np.mean([r[name] for r in lazy if r["x"] == x and name in r] or [np.nan]) for x in xs])
        if np.all(np.isnan(per_x)):
            continue
        out["values"][name] = per_x
        use = (xs >= fit_from) & np.isfinite(per_x) & (per_x > 0)
        if name.startswith("sup_") and use.sum() >= 2:
            out["slopes"][name] = fit_slope(xs[use], per_x[use])
    return out


BREAK_COLUMNS = ("break_x", "slope_below_break", "slope_above_break", "break_p_value")


def break_values(broken) -> tuple[float, float, float, float]:
    """A quantity's broken-line fit (validation.rates.BrokenLine or None) as BREAK_COLUMNS: x_b and the two slopes
    where the break is kept (NaN otherwise), and the F-test's p (NaN where no fit was possible)."""
    if broken is None:
        return (np.nan,) * 4
    kept = (broken.x_break, broken.slope_low, broken.slope_high) if broken.kept else (np.nan,) * 3
    return (*kept, broken.p_value)


def summary_dataset(summary: dict):
    """The summary as an xarray.Dataset: gaps on (quantity, x), laziness on x_lazy, slopes and the broken-line fits
    (BREAK_COLUMNS, per quantity) in variables, laziness slopes in attrs."""
    import xarray as xr

    names = list(summary["quantities"])
    ds = xr.Dataset(attrs={"x_key": summary["x_key"]})
    if names:
        q = summary["quantities"]
        stack = lambda k: np.array([q[n][k] for n in names])          # noqa: E731
        ds = xr.Dataset({"mean": (("quantity", "x"), stack("mean")), "stderr": (("quantity", "x"), stack("stderr")),
                         "t0": (("quantity", "x"), stack("t0")), "t0_predicted": (("quantity", "x"), stack("t0_predicted")),
                         "slope": ("quantity", stack("slope")), "ci_low": ("quantity", [q[n]["ci"][0] for n in names]),
                         "ci_high": ("quantity", [q[n]["ci"][1] for n in names]), "seeds": ("quantity", stack("seeds"))},
                        coords={"quantity": names, "x": summary["x"]}, attrs=ds.attrs)
        ds["mean"].attrs["long_name"] = "mean over seeds of sup_t gap"
        breaks = np.array([break_values(q[n]["broken"]) for n in names])
        for column, values in zip(BREAK_COLUMNS, breaks.T):
            ds[column] = ("quantity", values)
        ds["break_x"].attrs["long_name"] = "break point x_b of the broken-line fit in log-log (NaN: one line suffices)"
        ds["break_p_value"].attrs["long_name"] = "F-test of the broken line against one line"
    lazy = summary["laziness"]
    for name, values in lazy["values"].items():
        ds[name] = xr.DataArray(values, dims=("x_lazy",), coords={"x_lazy": lazy["x"]})
    for name, value in lazy["slopes"].items():
        ds.attrs[f"slope_{name}"] = value
    ds.attrs["fit_from"] = lazy["fit_from"]
    law_ = summary.get("fluctuations", {})
    if len(law_.get("x", [])):
        dims = ("x_fluctuations", "save", "observable")
        for name, values in law_.items():
            if name not in ("x", "seeds"):
                ds[f"sampling_{name}"] = xr.DataArray(values, dims=dims)
        ds = ds.assign_coords(x_fluctuations=law_["x"])
        ds["sampling_seeds"] = xr.DataArray(law_["seeds"], dims=("x_fluctuations",))
    return ds


def write_summary(folder: Path, summary: dict) -> None:
    """summary.csv (one row per quantity and x, with the slope, its interval and the broken-line fit; then the
    laziness per x) and summary.h5 (the Dataset, netCDF)."""
    with open(folder / "summary.csv", "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["quantity", summary["x_key"], "mean_sup_gap", "stderr", "mean_gap_t0", "mc_prediction_t0",
                      "slope", "ci_low", "ci_high", *BREAK_COLUMNS])
        for q, d in summary["quantities"].items():
            for x, m, e, t0, p in zip(summary["x"], d["mean"], d["stderr"], d["t0"], d["t0_predicted"]):
                out.writerow([q, x, m, e, t0, p, d["slope"], *d["ci"], *break_values(d["broken"])])
        lazy = summary["laziness"]
        if lazy["values"]:
            out.writerow([])
            out.writerow([summary["x_key"], *lazy["values"]])
            for i, x in enumerate(lazy["x"]):
                out.writerow([x, *(v[i] for v in lazy["values"].values())])
    summary_dataset(summary).to_netcdf(folder / "summary.h5", engine="h5netcdf")


def is_part(quantity: str) -> bool:
    """Whether a summary quantity is a part of the gap (sgd_part_risk, interaction_part_0, ...)."""
    return quantity.split("_part_")[0] in PARTS and "_part_" in quantity


# A break not kept is still named when its p is below this: the flattening is there, but not clearly
CANDIDATE_P_VALUE = 0.1


def break_text(d: dict) -> str | None:
    """One quantity's broken-line fit in words: the kept one, or a candidate not kept (BREAK_P_VALUE ≤ p <
    CANDIDATE_P_VALUE: "one line kept"); None when one line suffices clearly."""
    broken = d["broken"]
    if broken is None or not broken.p_value < (BREAK_P_VALUE if broken.kept else CANDIDATE_P_VALUE):
        return None
    if not broken.kept:
        return (f"one line kept: the best break, slope {broken.slope_low:+.3f} up to x_b = {broken.x_break:.4g} and "
                f"{broken.slope_high:+.3f} above, has p = {broken.p_value:.2g} ≥ {BREAK_P_VALUE:g}")
    return (f"broken line: slope {broken.slope_low:+.3f} up to x_b = {broken.x_break:.4g}, {broken.slope_high:+.3f} "
            f"above (F-test against one line: p = {broken.p_value:.1g})")


def format_summary(summary: dict, observables: tuple[str, ...] = ()) -> str:
    """The printed summary of a sweep: the rates of the gaps (slopes, intervals, broken lines), the t = 0 check,
    the mean sup-gaps per x, then the parts, the sampling law and the laziness where the sweep has them."""
    lines = []
    gaps = {q: d for q, d in summary["quantities"].items() if not is_part(q)}
    if gaps:
        lines.append(f"rates against {summary['x_key']} (slope of log mean sup_t gap; 95% bootstrap interval over seeds; "
                     f"a broken line where it fits clearly better than one, F-test p < {BREAK_P_VALUE:g})")
        for q, d in gaps.items():
            label = q if not q.startswith("gap_") or not observables else f"{q} = {observables[int(q[4:])]}"
            lines.append(f"  {label:<36} slope {d['slope']:+.3f}  [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]  "
                         f"({d['seeds']} seeds)")
            if break_text(d):
                lines.append(f"  {'':<36} {break_text(d)}")
        lines.append("t = 0: mean gap / Monte Carlo prediction sqrt(2/π) std_f / sqrt(N), per x:")
        for q, d in gaps.items():
            if np.all(np.isfinite(d["t0_predicted"])):
                lines.append(f"  {q:<8} " + "  ".join(f"{a / b:.2f}" for a, b in zip(d["t0"], d["t0_predicted"])))
        lines.append(f"  {summary['x_key']:>14}  " + "  ".join(f"{q[:12]:>12}" for q in gaps))
        for i, x in enumerate(summary["x"]):
            lines.append(f"  {x:>14g}  " + "  ".join(f"{d['mean'][i]:12.3e}" for d in gaps.values()))
    lines += format_parts_summary(summary, observables)
    lazy = summary["laziness"]
    if any(k.startswith("sup_w2") or k.endswith("kernel") for k in lazy["values"]):
        lines.append(f"laziness against {summary['x_key']} (docs/math.md §7): final risks and sup_t distances from the "
                     "start")
        names = list(lazy["values"])
        lines.append(f"  {summary['x_key']:>14}  " + "  ".join(f"{n[:22]:>22}" for n in names))
        for i, x in enumerate(lazy["x"]):
            lines.append(f"  {x:>14g}  " + "  ".join(f"{lazy['values'][n][i]:22.4e}" for n in names))
        for name, value in lazy["slopes"].items():
            lines.append(f"  slope of {name} against {summary['x_key']} (x ≥ {lazy['fit_from']:g}): {value:+.3f}")
    return "\n".join(lines)


def format_parts_summary(summary: dict, observables: tuple[str, ...] = ()) -> list[str]:
    """The slopes of each part of the gap (docs/math.md §8) against x, per quantity, with their intervals, and
    the mean sup_t |part| per x."""
    names = [q[len("sgd_part_"):] for q in summary["quantities"] if q.startswith("sgd_part_")]
    if not names:
        return []
    q = summary["quantities"]
    lines = [f"parts of the gap against {summary['x_key']} (docs/math.md §8): slope of log mean sup_t |part| "
             "[95% bootstrap interval]"]
    for name in names:
        label = "risk" if name == "risk" else f"f{name}" + (f" = {observables[int(name)]}" if observables else "")
        cells = [f"{part} {q[f'{part}_part_{name}']['slope']:+.2f} [{q[f'{part}_part_{name}']['ci'][0]:+.2f}, "
                 f"{q[f'{part}_part_{name}']['ci'][1]:+.2f}]" for part in PARTS]
        lines.append(f"  {label:<30} " + "   ".join(cells))
        lines += [f"  {'':<30} {part} part: {break_text(q[f'{part}_part_{name}'])}" for part in PARTS
                  if break_text(q[f"{part}_part_{name}"])]
    lines.append(f"  {summary['x_key']:>14}  " + "  ".join(f"{p[:5]}_{n[:4]:<4}".rjust(11) for n in names for p in PARTS))
    for i, x in enumerate(summary["x"]):
        lines.append(f"  {x:>14g}  " + "  ".join(f"{q[f'{p}_part_{n}']['mean'][i]:11.3e}" for n in names for p in PARTS))
    return lines + format_fluctuations(summary)


def format_fluctuations(summary: dict) -> list[str]:
    """The sampling part's law per x (validation.fluctuations), at the last save time, per test function."""
    law_ = summary.get("fluctuations", {})
    if not len(law_.get("x", [])):
        return []
    lines = ["sampling part T − ρ_t at the last save time, over seeds (docs/math.md §8): mean / stderr (within ±2 "
             "expected), sd·√N against the tracers' std_ρ0(f∘X_t), and sd(G − ρ)/sd(T − ρ)",
             f"  {summary['x_key']:>14}  {'f':>3}  {'seeds':>5}  {'mean/se':>8}  {'sd·√N [95%]':>24}  "
             f"{'std(f∘X_t)':>10}  {'ratio':>6}  {'G: sd·√N [95%]':>24}  {'G/T':>6}"]
    for i, x in enumerate(law_["x"]):
        for k in range(law_["mean"].shape[2]):
            pick = lambda name: law_[name][i, -1, k]          # noqa: E731
            lines.append(f"  {x:>14g}  {'f' + str(k):>3}  {law_['seeds'][i]:>5d}  {pick('mean') / pick('stderr'):>+8.2f}  "
                         f"{pick('sd_sqrt_n'):9.4f} [{pick('sd_low'):.4f}, {pick('sd_high'):.4f}]  {pick('spread'):>10.4f}  "
                         f"{pick('ratio'):>6.3f}  {pick('flow_sd_sqrt_n'):9.4f} [{pick('flow_low'):.4f}, "
                         f"{pick('flow_high'):.4f}]  {pick('amplification'):>6.3f}")
    return lines


def member_pde_file(run_file: Path) -> Path:
    """The PDE file (pde-<hash>.h5) of a sweep member's run file (run-<hash>.h5, /particles only), from the
    index.json of its folder; ValueError (one line) if there is no index.json there or it does not list the file."""
    run_file = Path(run_file)
    index_path = run_file.parent / "index.json"
    try:
        members = json.loads(index_path.read_text())["members"]
    except FileNotFoundError:
        raise ValueError(f"{run_file}: holds no /pde, and there is no {index_path} beside it to find its PDE file; "
                         "name one with --against PDE.h5") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{index_path}: not a sweep index ({type(exc).__name__}: {exc})") from None
    for member in members:
        if member.get("file") == run_file.name:
            return run_file.parent / member["grid"]
    raise ValueError(f"{run_file}: not listed in {index_path}; name its PDE file with --against PDE.h5")
