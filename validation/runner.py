"""`mfdyn run`: the engines a run asks for, on one config, into one run file (docs/guide.md, "Running").

The runner knows the engine protocol (mfdyn/engines.py), not the engines: each lays out its
group, then the file enters SWMR mode and the engines only append snapshots. A run resumes from
its file: the complete snapshots are copied into a fresh file, each engine continues from its last
one, and the result equals a run that was never stopped.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

import coupled.gradient_flow  # noqa: F401  (registers G, the engine "gd")
import coupled.tracers  # noqa: F401  (registers T, the engine "tracers")
import lazy.engine  # noqa: F401  (registers the kernel engine)
import particles.engine  # noqa: F401  (registers the particle engine)
import pde.engine  # noqa: F401  (registers the grid engine)
from mfdyn.builds import compile_timer
from mfdyn.config import Config, load_config
from mfdyn.engines import ENGINES
from mfdyn.problems import make_problem
from mfdyn.storage import RunFile, RunWriter, copy_complete
from validation.compare import comparison_table, write_comparison
from validation.progress import Progress, StatusBoard, warn

# --engine choices: "both" is the classic pair, "all" every registered engine, or one engine by name
ENGINE_SETS = {"both": ("pde", "particles"), "all": ("pde", "particles", "kernel")}
ENGINE_CHOICES = (*ENGINE_SETS, *ENGINES)


def engine_names(engine: str) -> tuple[str, ...]:
    """The engines an --engine choice names ("both", "all", one engine, or engines joined by "+", e.g.
    "pde+kernel"); ValueError naming the allowed choices otherwise."""
    if engine in ENGINE_SETS:
        return ENGINE_SETS[engine]
    names = tuple(engine.split("+"))
    if names and all(name in ENGINES for name in names) and len(set(names)) == len(names):
        return names
    raise ValueError(f"engine {engine!r}: unknown; allowed: {', '.join(ENGINE_CHOICES)}, or engines joined by '+'")


# The coupled systems of docs/math.md §8, which particles.coupled adds after the engines they are coupled to
COUPLED = ("gd", "tracers")


def run_engine_names(config: Config, engine: str) -> tuple[str, ...]:
    """engine_names, plus G and T after them when particles.coupled (they split SGD's gap, so SGD must be
    among them); ValueError naming the key otherwise."""
    names = engine_names(engine)
    if config.particles.coupled:
        if "particles" not in names:
            raise ValueError(f"particles.coupled: splits the gap of SGD, so it needs the particles engine; got --engine "
                             f"{engine} (allowed: both, all, particles, or a '+' set with particles)")
        names += tuple(name for name in COUPLED if name not in names)
    return names


def build_engines(config: Config, engine: str, quiet: bool = False) -> list:
    """The engines of an --engine choice on a config; building them makes the cheap checks (no file yet).
    quiet: no warnings (a sweep checking its members)."""
    problem = make_problem(config)
    names = run_engine_names(config, engine)
    engines = [ENGINES[name](problem, config) for name in names]
    dyn = config.dynamics
    if (not quiet and "particles" in names and dyn.alpha > 1 and problem.has_network
            and not (config.init.symmetric or dyn.centered)):
        warn(f"dynamics.alpha = {dyn.alpha:g} with a start whose output is not 0: α·f(ρ_0) is a random O(α/√N) "
             "function for SGD; set init.symmetric = true (output weight a) or dynamics.centered = true")
    return engines


def _run_engines(writer: RunWriter, engines: list, config: Config, starts: list | None = None,
                 progress: bool | None = None) -> None:
    try:
        _advance(writer, engines, config, starts, progress)
    except ValueError as exc:       # the input was valid: a ValueError now is the run failing, not bad input
        raise RuntimeError(str(exc)) from exc


RISK_HINT_SHARE = 0.5       # the progress line says so when the exact R_N takes more than this part of the time


def risk_note(risk_seconds: float, seconds: float) -> str:
    """The progress line's hint when the particles' exact R_N takes most of an engine's time ('' otherwise)."""
    share = risk_seconds / seconds if seconds > 0 else 0.0
    if share <= RISK_HINT_SHARE:
        return ""
    return f"R_N exact {100 * share:.0f}% of time — output.particle_risk = false skips it"


def two_lanes() -> bool:
    """Whether a run's engines may advance in two threads: two cores or more, and a Numba threading layer that two
    threads may enter at once (tbb or omp; the workqueue layer aborts on concurrent parallel kernels)."""
    import importlib

    import numba

    layer = numba.config.THREADING_LAYER          # "default" and "threadsafe" take tbb, else omp, if installed
    if (os.cpu_count() or 1) < 2 or layer not in ("default", "threadsafe", "safe", "tbb", "omp"):
        return False
    pools = {"tbb": ("tbbpool",), "safe": ("tbbpool",), "omp": ("omppool",)}.get(layer, ("tbbpool", "omppool"))
    for pool in pools:
        try:
            importlib.import_module(f"numba.np.ufunc.{pool}")
            return True
        except ImportError:       # the library behind the layer is not installed
            continue
    return False


def _advance(writer: RunWriter, engines: list, config: Config, starts: list | None, progress: bool | None) -> None:
    """Run the engines into the writer: where two_lanes(), the first engine in this thread and the others, in order,
    in a second one. Each engine's numbers depend on its config alone (its kernels release the GIL; none reads
    another engine), so only the wall time changes. Snapshots are written one at a time. As when they ran one after
    the other, a failing engine lets the engines before it finish and stops those after it at their next snapshot
    (Ctrl-C: all of them); the first failure in engine order is raised."""
    pairs = list(zip(engines, starts or [None] * len(engines)))
    lanes = [pairs[:1], pairs[1:]] if len(pairs) > 1 and two_lanes() else [pairs]
    board = StatusBoard(progress) if len(lanes) > 1 else None
    lock = threading.Lock()
    errors: dict[int, BaseException] = {}          # engine index (-1: interrupted) → its error

    def run_lane(slot: int) -> None:
        for e, start in lanes[slot]:
            index = engines.index(e)
            if min(errors, default=index) < index:
                return
            try:
                _advance_engine(writer, e, start, Progress(e.name, config.dynamics.t_end, progress, board, slot),
                                lock, lambda index=index: min(errors, default=index) < index)
            except BaseException as exc:        # KeyboardInterrupt too: re-raised below, in engine order
                errors[index] = exc
                return

    worker = threading.Thread(target=run_lane, args=(1,), daemon=True) if len(lanes) > 1 else None
    if worker is not None:
        worker.start()
    run_lane(0)
    while worker is not None and worker.is_alive():
        try:
            worker.join()
        except KeyboardInterrupt as exc:
            errors.setdefault(-1, exc)
    if board is not None:
        board.close()
    if errors:
        raise errors[min(errors)]


def _advance_engine(writer: RunWriter, e, start, shown: Progress, lock: threading.Lock, stopped) -> None:
    """Append one engine's snapshots (each under lock) until it ends or stopped() says an engine before it failed."""
    risk_seconds = 0.0
    for snap in e.run(start):
        with lock:
            writer.append(e.name, snap.row)
            if snap.attrs:
                writer.set_attrs(e.name, **snap.attrs)
            if snap.warning:
                warn(snap.warning)
        risk_seconds += snap.risk_seconds
        shown.update(snap.t, snap.steps, risk_note(risk_seconds, time.perf_counter() - shown.start))
        if stopped():
            return
    shown.done()


def _finish(writer: RunWriter, engines: list, started: float, compiled) -> None:
    names = {e.name for e in engines}
    writer.set_attrs("/", wall_seconds=time.perf_counter() - started, compile_seconds=compiled.seconds)
    compare = None
    if {"pde", "particles"} <= names:
        # computed while the file is still in SWMR mode, so that finish() only writes
        table = comparison_table(writer.reader())
        compare = lambda f: write_comparison(f, table)      # noqa: E731
    writer.finish("completed", compare)


def _root_attrs(writer: RunWriter, config: Config, engine: str) -> None:
    writer.set_root(engine=engine, seed_entropy=str(np.random.SeedSequence(config.particles.seed).entropy))


def execute(config: Config, out: Path | None, engine: str = "both", progress: bool | None = None) -> RunFile:
    """Run the engines a config asks for into the new file `out` (None: in memory).

    Returns the finished file, open for reading (the caller closes it). progress: show the status
    line (default: when stderr is a terminal).
    """
    started = time.perf_counter()
    engines = build_engines(config, engine)
    # Until SWMR mode a killed HDF5 file cannot be opened at all: it is written beside `out` and takes its name
    # only then (as resume does), so that a run killed while preparing leaves no file, and an old `out` stays.
    temp = None if out is None else out.with_name(f".{out.name}.partial")
    try:
        with RunWriter(temp, config.to_toml(), config.particles.seed, config.overrides) as writer, compile_timer() as ct:
            _root_attrs(writer, config, engine)
            for e in engines:
                e.prepare()
                e.layout(writer)
            writer.start()
            if out is not None:
                os.replace(temp, out)           # the open handle follows the file
                writer.path = out
            _run_engines(writer, engines, config, progress=progress)
            _finish(writer, engines, started, ct)
    finally:
        if temp is not None and temp.exists():  # it failed before it became the run file
            temp.unlink()
    return writer.reader() if out is None else RunFile.open(out)


def resume(path: Path, progress: bool | None = None) -> Path:
    """Continue the run in `path` from its last complete snapshots; the result equals an uninterrupted run.

    The complete snapshots are copied into a fresh file beside it, which then replaces it, so that a
    crash while resuming again leaves a valid file. Raises ValueError if there is nothing to resume.
    """
    started = time.perf_counter()
    with RunFile.open(path) as old:
        status, engine = old.status, old.engine
        if status == "completed":
            raise ValueError(f"{path}: the run is complete; nothing to resume")
        try:
            engine_names(engine)
        except ValueError:
            raise ValueError(f"{path}: only `mfdyn run` files can be resumed (this one is {engine!r})") from None
        config = load_config(old.config_toml, from_text=True)
        engines = build_engines(config, engine)
        temp = path.with_name(f".{path.name}.resume")
        writer = RunWriter(temp, config.to_toml(), config.particles.seed, config.overrides)
        with writer, compile_timer() as ct:
            _root_attrs(writer, config, engine)
            writer.set_root(created_utc=old.attrs["created_utc"], resumed_from_status=status)
            starts = []
            for e in engines:
                e.prepare()
                e.layout(writer)
                n = copy_complete(old, writer, e.name) if old.has(e.name) else 0
                starts.append(e.start_state(old, n))
                writer.set_attrs(e.name, **e.resumed_attrs)     # an engine that had finished yields no more
            old.close()
            writer.start()
            os.replace(temp, path)          # the open handle follows the file
            writer.path = path
            _run_engines(writer, engines, config, starts, progress)
            _finish(writer, engines, started, ct)
    return path


__all__ = ["ENGINE_CHOICES", "build_engines", "engine_names", "execute", "resume", "risk_note"]
