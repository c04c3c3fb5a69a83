"""The Python API: what `import mfdyn` offers a notebook (docs/guide.md, "From Python").

    import mfdyn
    run = mfdyn.run("configs/mmn_isotropic.toml", set={"particles.n": 400})   # in memory
    run.pde.risk                      # xarray DataArray on the PDE's save times
    print(run.compare())              # the comparison table, as `mfdyn compare` prints it
    run.plot("fig.png")               # the comparison figure (a matplotlib Figure)
    run = mfdyn.open("runs/mmn_isotropic.h5")                                 # any run file

The CLI is a thin layer over these functions.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from mfdyn.config import Config, as_config, load_config
from mfdyn.storage import GROUPS, RunFile, run_path_problem


class Run:
    """One run: its config, status and groups (xarray Datasets with named coordinates), comparison and figure.

    Groups present in the file are attributes: run.pde, run.particles, run.comparison (and run.gibbs,
    run.kernel, ... where those engines ran). A Run holds its file open; close() or use `with`.
    """

    def __init__(self, file: RunFile):
        self.file = file

    # ------------------------------------------------------------------ what it is
    @property
    def path(self) -> Path | None:
        """The run file (None for a run kept in memory)."""
        return self.file.path

    @cached_property
    def config(self) -> Config:
        """The config as run (after overrides, which it records), validated."""
        overrides = tuple(o for o in str(self.file.attrs.get("overrides", "")).split("\n") if o)
        return dataclasses.replace(load_config(self.file.config_toml, from_text=True), overrides=overrides)

    @property
    def status(self) -> str:
        """"completed", "running" (still running, or killed), "interrupted" (repaired) or "failed: reason"."""
        return self.file.status

    @property
    def attrs(self) -> dict[str, Any]:
        """Provenance: versions, seed, threads, host, wall and compile seconds, engine, overrides."""
        return self.file.attrs

    @property
    def groups(self) -> list[str]:
        """The groups in the file (pde, particles, comparison, ...)."""
        return self.file.groups()

    def group(self, name: str):
        """One group as an xarray.Dataset (series cut to the complete snapshots)."""
        if not self.file.has(name):
            raise KeyError(f"{self.file.name}: no group {name!r}; this run has {', '.join(self.groups) or 'none'}")
        return self.file.to_xarray(name)

    def __getattr__(self, name: str):
        if name.startswith("_") or name == "file":
            raise AttributeError(name)
        if name in GROUPS or self.file.has(name):
            try:
                return self.group(name)
            except KeyError as exc:
                raise AttributeError(exc.args[0]) from None
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.groups))

    def __repr__(self) -> str:
        counts = ", ".join(f"{g}: {self.file.count(g)}" for g in self.groups if self.file.has(g, "time"))
        return f"<mfdyn.Run {self.file.name} {self.config.problem.name} status={self.status!r} snapshots {{{counts}}}>"

    # ------------------------------------------------------------------ what it says
    def compare(self, against: Run | str | Path | None = None):
        """The comparison of PDE and particles at their common times: a Comparison, whose str() is the
        table `mfdyn compare` prints, c["risk_gap"] an array, c.to_xarray() an xarray.Dataset on (time,
        quantile). against: another file (a Run or a path) to compare with, in either role: one holding the /pde
        for this run's particles, a run whose particles meet this file's /pde, or the Gibbs state of this run's
        config (mfdyn.gibbs), which gives a GibbsComparison of this run's last state with ρ*. Without it, a sweep
        member (a file with /particles only) is compared with its PDE file, found through the sweep's index.json.
        The two configs must agree but for [output], [particles], [kernel], dynamics.t_end and the PDE's stepping
        keys (ValueError naming the first key that differs)."""
        from validation.compare import compare_files

        with self._partner(against) as (other, source):
            return compare_files(self.file, other, source)

    def plot(self, path: str | Path | None = None, against: Run | str | Path | None = None, comparison=None):
        """The comparison figure as a matplotlib Figure; written to path (.png, .pdf, .svg or another format matplotlib
        writes; its folders are made) if given, a bad path refused before anything is computed. against: as for
        compare (the PDE drawn is that file's); a Gibbs comparison has no figure (ValueError). comparison: the
        result of compare(against) with the same against, if already computed (it is not computed again)."""
        from validation.compare import Comparison, roles
        from validation.plots import comparison_figure, writable_figure

        if path is not None:
            path = writable_figure(path)
        with self._partner(against) as (other, source):
            run, pde, gibbs = roles(self.file, other)
            if gibbs:
                raise ValueError("--plot: a comparison with a Gibbs state has no figure (ρ* has no time axis); draw "
                                 f"the run's own with mfdyn compare {run.name} --plot FIG.png")
            table = (comparison if comparison is not None else Comparison.of(run, pde, source)).table
            return comparison_figure(run, table, path,
                                     **({} if pde is None else {"pde": pde}))

    def movie(self, path: str | Path, fps: float = 10, every: int = 1, overwrite: bool = False,
              progress: bool | None = None) -> Path:
        """Write the movie of this run to path (.gif through Pillow, .mp4 through ffmpeg) and return the path: the
        PDE density with the particles over it, one frame per PDE save time (every: each every-th), beside the risk
        of both with a time cursor; fps frames per second. An existing path is refused unless overwrite=True.
        progress: the line "movie: frame k/F" on stderr (default: when stderr is a terminal). Bad input (format,
        fps, every, a file without /pde or /particles, MP4 without ffmpeg): ValueError, before anything is drawn."""
        from validation.movie import write_movie

        return write_movie(self.file, path, fps, every, overwrite, progress)

    @contextmanager
    def _partner(self, against: Run | str | Path | None) -> Iterator[tuple[RunFile | None, str | None]]:
        """(the file to compare with, the line saying where it came from): `against` (opened if it is a path), or
        for a sweep member holding /particles only its PDE file from index.json, or (None, None)."""
        if isinstance(against, Run):
            yield against.file, None
            return
        path, source = (None if against is None else Path(against)), None
        if path is None and self.path is not None and self.file.has("particles") and not self.file.has("pde"):
            from validation.sweep import member_pde_file

            path = member_pde_file(self.path)
            source = f"PDE from {path} (this sweep member's PDE file, listed in index.json)"
        if path is None:
            yield None, None
            return
        with RunFile.open(path) as other:
            yield other, source

    # ------------------------------------------------------------------ its file
    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def run(config: Config | dict | str | Path, set: dict[str, Any] | None = None, engine: str = "both",
        out: str | Path | None = None, overwrite: bool = False, progress: bool | None = None) -> Run:
    """Run a config and return the Run.

    config: a Config, a dict of tables, a path to a TOML file, or TOML text. set: dotted overrides,
    {"particles.n": 1600, "dynamics.t_end": 2}. engine: "both" (pde + particles), "all" (pde + particles +
    kernel), one engine ("pde", "particles", "kernel"), or engines joined by "+" ("pde+kernel"). out: None
    keeps the whole file in memory; a path writes the usual run file and refuses to replace an existing one
    unless overwrite=True. progress: the terminal status line
    (default: when stderr is a terminal). Raises ConfigError (every bad key) before anything runs.
    """
    from validation.runner import engine_names, execute

    cfg = as_config(config, set)
    engine_names(engine)
    return Run(execute(cfg, _new_run_file(out, overwrite), engine, progress))


def _new_run_file(out: str | Path | None, overwrite: bool) -> Path | None:
    """out as the path of a run file to write (None: in memory), or ValueError in one line: not a run file's name
    (storage.run_path_problem), or an existing file without overwrite."""
    if out is None:
        return None
    target = Path(out)
    if (problem := run_path_problem(target)) is not None:
        raise ValueError(f"out {target}: {problem}")
    if target.exists() and not overwrite:
        raise ValueError(f"out {target}: file exists; pass overwrite=True (--overwrite) to replace it or choose "
                         "another path")
    return target


def open(path: str | Path) -> Run:  # noqa: A001  (mfdyn.open, as the issue names it)
    """Open any run file (also one whose run was killed: it holds every complete snapshot)."""
    return Run(RunFile.open(path))


def gibbs(config: Config | dict | str | Path, set: dict[str, Any] | None = None,
          out: str | Path | None = None, overwrite: bool = False) -> Run:
    """The self-consistent Gibbs state of a config (finite dynamics.beta) on its grid, as a Run whose /pde
    holds one row at time = inf and /gibbs the residual per iteration. Status "failed: not converged …"
    if the iteration did not reach pde.gibbs_tol."""
    import math

    from validation.gibbs import execute_gibbs

    cfg = as_config(config, set)
    if math.isinf(cfg.dynamics.beta):
        raise ValueError("dynamics.beta: the Gibbs state needs a finite β (β = inf has no entropy term)")
    return Run(execute_gibbs(cfg, _new_run_file(out, overwrite))[0])


def sweep(spec: str | Path | dict, workers: int = 2, scheduler: str | None = None, log=print,
          plot: str | Path | None = None):
    """Run a sweep (a sweep file, or a dict with its keys) and return its summary as an xarray.Dataset.

    Members already complete in the sweep's folder are skipped. Writes the folder's index.json,
    summary.csv, summary.h5, rates.png (when particles ran), parts.png and fluctuations.png (when they ran
    coupled, docs/math.md §8) and, for a sweep with laziness data, transition.png (or `plot`).
    workers: local processes (one Numba thread each); scheduler: the address of a Dask distributed
    scheduler to run on instead. log: where progress lines go. The pool starts its workers by "spawn",
    so a script calling this must do so under `if __name__ == "__main__":`.
    """
    from validation import sweep as sw
    from validation.compare import observables_for
    from validation.sweep_plots import plot_fluctuations, plot_parts, plot_rates, plot_transition

    if workers < 1:
        raise ValueError(f"workers: must be ≥ 1, got {workers}")
    if plot is not None:
        from validation.plots import writable_figure

        plot = writable_figure(plot)                  # before the members run, not after
    spec = sw.load_sweep(spec)
    folder = sw.run_sweep(spec, workers, scheduler, log)
    summary = sw.rates(folder)
    sw.write_summary(folder, summary)
    observables = observables_for(spec.config(spec.members[0]))
    log(sw.format_summary(summary, observables))
    written = [folder / "summary.csv", folder / "summary.h5"]
    if summary["quantities"]:
        written.append(plot_rates(folder, summary, observables))
        written += [path for path in (plot_parts(folder, summary, observables),
                                      plot_fluctuations(folder, summary, observables)) if path is not None]
    if "sup_w2_pde" in summary["laziness"]["values"] and len(summary["laziness"]["x"]) > 1:
        written.append(plot_transition(folder, summary, plot))
    log("wrote " + ", ".join(str(p) for p in written))
    dataset = sw.summary_dataset(summary)
    dataset.attrs["folder"] = str(folder)
    return dataset


__all__ = ["Run", "gibbs", "open", "run", "sweep"]
