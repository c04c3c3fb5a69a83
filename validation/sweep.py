"""`mfdyn sweep`: cross a base config with lists of values, run every member, fit the rates (DESIGN.md, "Sweeps").

A sweep file (TOML):

    base = "teacher_student_2d.toml"      # a run config, relative to this file
    name = "n_scaling"                    # output folder runs/<name>/ (default: the file's name)
    x = "particles.n"                     # the key the rate is fitted against (log-log)
    [set]                                 # fixed overrides of the base
    "dynamics.t_end" = 2.0
    [vary]                                # lists to cross
    "particles.n" = [100, 200, 400]
    "particles.seed" = [0, 1, 2, 3]

The PDE does not depend on particles.*, so each distinct PDE is solved once (pde-<hash>.h5) and every
member runs only its particles (run-<hash>.h5); index.json maps overrides to files. Finished files
(status "completed") are skipped when the sweep is run again, so an interrupted sweep resumes.
Members run in a spawn-based process pool with one Numba thread per worker, or on a Dask cluster
(--scheduler ADDRESS: the same tasks through client.get_executor()). Results do not depend on which.

Analysis: for every member and quantity (risk gap, each test function's gap, W1), the sup over the
save times; averaged over seeds for each x; the slope of log(mean sup-gap) against log x by least
squares, with a 95% bootstrap interval over seeds. Written to summary.csv and summary.h5, printed,
and plotted with the x^(−1/2) reference (rates.png).
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

import h5py
import numpy as np

from mfdyn.config import ConfigError, load_config, parse_override
from mfdyn.io import open_run

BOOTSTRAP = 2000


@dataclass
class Sweep:
    """A parsed sweep file."""

    path: Path
    base: Path
    name: str
    x: str
    fixed: list[str]
    vary: dict[str, list]
    members: list[list[str]] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return Path("runs") / self.name


def _override(key: str, value) -> str:
    from mfdyn.config import toml_value

    return f"{key}={toml_value(value)}"


def load_sweep(path: Path) -> Sweep:
    """Read and validate a sweep file and every member's config (all errors at once, nothing run)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError([f"sweep {str(path)!r}: cannot read ({exc.strerror or exc})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"sweep {str(path)!r} is not valid TOML: {exc}"]) from None
    errors = []
    unknown = set(data) - {"base", "name", "x", "set", "vary"}
    if unknown:
        errors.append(f"sweep: unknown keys {sorted(unknown)}; allowed: base, name, x, set, vary")
    if not isinstance(data.get("base"), str):
        errors.append("sweep.base: missing; must be the path of a run config, relative to the sweep file")
    vary = data.get("vary", {})
    if not isinstance(vary, dict) or not vary or any(not isinstance(v, list) or not v for v in vary.values()):
        errors.append("sweep.vary: must be a table of non-empty lists, e.g. \"particles.seed\" = [0, 1, 2]")
    x = data.get("x", "particles.n")
    if isinstance(vary, dict) and x not in vary:
        errors.append(f"sweep.x: {x!r} must be one of the varied keys ({', '.join(vary) if isinstance(vary, dict) else ''})")
    if errors:
        raise ConfigError(errors)
    sweep = Sweep(Path(path), (Path(path).parent / data["base"]).resolve(), str(data.get("name", Path(path).stem)),
                  x, [_override(k, v) for k, v in data.get("set", {}).items()], vary)
    for values in itertools.product(*vary.values()):
        sweep.members.append(sweep.fixed + [_override(k, v) for k, v in zip(vary, values)])
    for overrides in sweep.members:            # every member must be a valid config
        try:
            load_config(sweep.base, overrides)
        except ConfigError as exc:
            raise ConfigError([f"sweep member {' '.join(overrides)}: {p}" for p in exc.problems]) from None
    return sweep


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _pde_key(config) -> str:
    """Canonical text of everything the PDE depends on (the config without [particles])."""
    text = config.to_toml()
    return text[: text.index("[particles]")] + text[text.index("[output]"):]


def _is_complete(path: Path) -> bool:
    try:
        with open_run(path) as f:
            return str(f.attrs["status"]) == "completed"
    except (ValueError, OSError, FileNotFoundError):
        return False


def run_member(base: str, overrides: list[str], out: str, engine: str) -> str:
    """One sweep task (top level, so that spawn and Dask workers can run it): one numba thread."""
    import numba

    numba.set_num_threads(1)
    from validation.run import execute

    execute(load_config(base, overrides), Path(out), engine)
    return out


def _worker_init() -> None:
    os.environ["NUMBA_NUM_THREADS"] = "1"


def make_executor(workers: int, scheduler: str | None) -> tuple[Executor, object]:
    """A spawn-based process pool, or a Dask cluster's executor; returns (executor, client or None)."""
    if scheduler is None:
        return ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_worker_init), None
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
    pdes: dict[str, Path] = {}
    for overrides in sweep.members:
        config = load_config(sweep.base, overrides)
        key = _pde_key(config)
        pde_file = pdes.setdefault(key, folder / f"pde-{_digest(key)}.h5")
        run_file = folder / f"run-{_digest(config.to_toml())}.h5"
        index.append({"overrides": overrides, "file": run_file.name, "pde": pde_file.name})
        if not _is_complete(run_file):
            tasks.append((str(sweep.base), overrides, str(run_file), "particles"))
    for key, pde_file in pdes.items():
        if not _is_complete(pde_file):
            overrides = next(m["overrides"] for m in index if m["pde"] == pde_file.name)
            tasks.insert(0, (str(sweep.base), overrides, str(pde_file), "pde"))
    (folder / "index.json").write_text(json.dumps({"sweep": str(sweep.path), "base": str(sweep.base),
                                                    "x": sweep.x, "members": index}, indent=1))
    log(f"sweep {sweep.name}: {len(sweep.members)} members, {len(pdes)} PDE solve(s); "
        f"{len(tasks)} task(s) to run, {len(sweep.members) + len(pdes) - len(tasks)} already complete")
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


# ------------------------------------------------------------------------------------------ rates


def member_gaps(run_file: Path, pde_file: Path) -> dict[str, np.ndarray]:
    """The comparison table of one member against its PDE (two files)."""
    from validation.compare import comparison_table

    with open_run(run_file) as run, open_run(pde_file) as pde:
        return comparison_table(run, pde["pde"])


def monte_carlo_t0(pde_file: Path, run_file: Path) -> dict[str, float]:
    """Per test function k: E|mean f(θ_i) − ∫f dρ_0| = sqrt(2/π) std_f / sqrt(N) for θ_i iid ~ ρ_0."""
    from validation.compare import observables_of
    from validation.observables import pde_expectation

    with open_run(run_file) as run, open_run(pde_file) as pde:
        coords = tuple(run["particles"].attrs["coords"].split(","))
        n = run["particles/theta"].shape[1]
        centres = [pde["pde"][c][:] for c in coords]
        rho0 = pde["pde/density"][0]
        out = {}
        for k, expression in enumerate(observables_of(run)):
            mean = pde_expectation(expression, coords, rho0, centres)
            second = pde_expectation(f"({expression})**2", coords, rho0, centres)
            out[f"gap_{k}"] = float(np.sqrt(2 / np.pi) * np.sqrt(max(second - mean**2, 0.0)) / np.sqrt(n))
    return out


def fit_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def rates(folder: Path) -> dict:
    """Sup-gaps per member, seed means per x, slopes with bootstrap intervals, the t = 0 Monte Carlo check."""
    index = json.loads((folder / "index.json").read_text())
    key = index["x"]
    records = []
    for member in index["members"]:
        values = {".".join(parse_override(o)[:2]): parse_override(o)[2] for o in member["overrides"]}
        table = member_gaps(folder / member["file"], folder / member["pde"])
        quantities = {k: table[k] for k in table if k.startswith("gap_") or k == "w1"}
        if np.all(np.isfinite(table["risk_gap"])):
            quantities["risk"] = np.abs(table["risk_gap"])
        records.append({"x": float(values[key]), "seed": values.get("particles.seed", 0),
                        "sup": {q: float(np.max(v)) for q, v in quantities.items()},
                        "t0": {q: float(v[0]) for q, v in quantities.items()},
                        "mc": monte_carlo_t0(folder / member["pde"], folder / member["file"])})
    xs = np.array(sorted({r["x"] for r in records}))
    names = sorted(records[0]["sup"])
    rng = np.random.default_rng(0)
    summary = {"x_key": key, "x": xs, "quantities": {}}
    for q in names:
        per_x = [np.array([r["sup"][q] for r in records if r["x"] == x]) for x in xs]
        means = np.array([v.mean() for v in per_x])
        errors = np.array([v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan for v in per_x])
        slope = fit_slope(xs, means) if len(xs) > 1 else np.nan
        boot = [fit_slope(xs, np.array([rng.choice(v, len(v)).mean() for v in per_x])) for _ in range(BOOTSTRAP)] \
            if len(xs) > 1 and all(len(v) > 1 for v in per_x) else [np.nan]
        t0 = np.array([np.mean([r["t0"][q] for r in records if r["x"] == x]) for x in xs])
        predicted = np.array([np.mean([r["mc"].get(q, np.nan) for r in records if r["x"] == x]) for x in xs])
        summary["quantities"][q] = {"mean": means, "stderr": errors, "slope": slope,
                                    "ci": (float(np.nanpercentile(boot, 2.5)), float(np.nanpercentile(boot, 97.5))),
                                    "t0": t0, "t0_predicted": predicted, "seeds": len(per_x[0])}
    return summary


def write_summary(folder: Path, summary: dict) -> None:
    """summary.csv (one row per quantity and x) and summary.h5."""
    with open(folder / "summary.csv", "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["quantity", summary["x_key"], "mean_sup_gap", "stderr", "mean_gap_t0", "mc_prediction_t0",
                      "slope", "ci_low", "ci_high"])
        for q, d in summary["quantities"].items():
            for x, m, e, t0, p in zip(summary["x"], d["mean"], d["stderr"], d["t0"], d["t0_predicted"]):
                out.writerow([q, x, m, e, t0, p, d["slope"], *d["ci"]])
    with h5py.File(folder / "summary.h5", "w") as f:
        f.attrs["x_key"] = summary["x_key"]
        f.create_dataset("x", data=summary["x"])
        for q, d in summary["quantities"].items():
            g = f.create_group(q)
            for k in ("mean", "stderr", "t0", "t0_predicted"):
                g.create_dataset(k, data=d[k])
            g.attrs.update({"slope": d["slope"], "ci_low": d["ci"][0], "ci_high": d["ci"][1], "seeds": d["seeds"]})


def format_summary(summary: dict, observables: tuple[str, ...] = ()) -> str:
    lines = [f"rates against {summary['x_key']} (slope of log mean sup_t gap; 95% bootstrap interval over seeds)"]
    for q, d in summary["quantities"].items():
        label = q if not q.startswith("gap_") or not observables else f"{q} = {observables[int(q[4:])]}"
        lines.append(f"  {label:<36} slope {d['slope']:+.3f}  [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]  ({d['seeds']} seeds)")
    lines.append("t = 0: mean gap / Monte Carlo prediction sqrt(2/π) std_f / sqrt(N), per x:")
    for q, d in summary["quantities"].items():
        if np.all(np.isfinite(d["t0_predicted"])):
            lines.append(f"  {q:<8} " + "  ".join(f"{a / b:.2f}" for a, b in zip(d["t0"], d["t0_predicted"])))
    lines.append(f"  {summary['x_key']:>14}  " + "  ".join(f"{q[:12]:>12}" for q in summary["quantities"]))
    for i, x in enumerate(summary["x"]):
        lines.append(f"  {x:>14g}  " + "  ".join(f"{d['mean'][i]:12.3e}" for d in summary["quantities"].values()))
    return "\n".join(lines)


def plot_rates(folder: Path, summary: dict, observables: tuple[str, ...] = ()) -> Path:
    """rates.png: mean sup-gaps against x on log-log axes, fitted lines, and the x^(−1/2) reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    xs = summary["x"]
    for k, (q, d) in enumerate(summary["quantities"].items()):
        label = observables[int(q[4:])] if q.startswith("gap_") and observables else q
        ax.errorbar(xs, d["mean"], yerr=d["stderr"], fmt="o", ms=4, color=f"C{k}", label=f"{label}: slope {d['slope']:+.2f}")
        if np.isfinite(d["slope"]):
            fit = np.exp(np.polyval(np.polyfit(np.log(xs), np.log(d["mean"]), 1), np.log(xs)))
            ax.plot(xs, fit, "-", color=f"C{k}", lw=0.8)
    first = next(iter(summary["quantities"].values()))["mean"][0]
    ax.plot(xs, first * (xs / xs[0]) ** -0.5, "k--", lw=1, label=r"$x^{-1/2}$ reference")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(summary["x_key"])
    ax.set_ylabel("mean over seeds of sup_t gap")
    ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    path = folder / "rates.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
