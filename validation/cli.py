"""The `mfdyn` command (docs/guide.md, "The command line"), a thin layer over the Python API
(validation/api.py). Bad input: one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_BROKEN_PIPE = 141      # stdout closed by its reader: 128 + SIGPIPE, as a Unix tool reports it


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        raise UsageError(message if " " not in self.prog else f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mfdyn", description="Mean-field dynamics of two-layer networks: PDE and SGD side by side.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run a config: PDE and/or SGD into one HDF5 file")
    run.add_argument("config", type=Path, nargs="?", help="TOML config (see configs/)")
    run.add_argument("--resume", type=Path, metavar="RUN.h5",
                     help="continue a stopped run from its last snapshots (instead of CONFIG)")
    run.add_argument("--out", type=Path, help="output file (default: runs/<config name>.h5, never overwritten)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a config key (value read as TOML); repeatable")
    run.add_argument("--engine", default="both", metavar="ENGINE",
                     help="both (pde + particles, the default), all (pde + particles + kernel), or one engine: "
                          "pde, particles, kernel")
    run.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    cmp_ = sub.add_parser("compare", help="table of PDE vs SGD (or of a run against its Gibbs state), and a figure")
    cmp_.add_argument("run", type=Path, help="a run file written by `mfdyn run` (a sweep member finds its PDE file "
                                             "through index.json), or a Gibbs file with --against")
    cmp_.add_argument("--against", type=Path, metavar="OTHER.h5",
                      help="compare with this file: a run of the same config holding the /pde (or the particles) "
                           "RUN lacks, or the Gibbs state of RUN's config (mfdyn gibbs); either order")
    cmp_.add_argument("--plot", type=Path, metavar="FIG.png",
                      help="write the comparison figure here (not for a comparison with a Gibbs state)")
    mov = sub.add_parser("movie", help="the PDE density evolving with the particles over it, as a GIF or MP4")
    mov.add_argument("run", type=Path, metavar="RUN.h5",
                     help="a run file written by `mfdyn run` (with /pde, /particles or both)")
    mov.add_argument("out", type=Path, metavar="OUT", help="the movie: OUT.gif (Pillow) or OUT.mp4 (ffmpeg)")
    mov.add_argument("--fps", type=float, default=10.0, metavar="N", help="frames per second (default 10)")
    mov.add_argument("--every", type=int, default=1, metavar="K",
                     help="one frame per K-th PDE save time (default 1: every save)")
    mov.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    gib = sub.add_parser("gibbs", help="the self-consistent Gibbs state ρ* ∝ J e^{−βΨ_λ(ρ*)} on the grid")
    gib.add_argument("config", type=Path, help="TOML config with a finite dynamics.beta")
    gib.add_argument("--out", type=Path, help="output file (default: runs/<config name>-gibbs.h5)")
    gib.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    gib.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    swp = sub.add_parser("sweep", help="run a sweep (base config × lists of values) and fit the rates")
    swp.add_argument("sweep", type=Path, help="sweep TOML (see configs/n_scaling.toml)")
    swp.add_argument("--workers", type=int, default=2, help="local processes (one numba thread each)")
    swp.add_argument("--scheduler", metavar="ADDRESS", help="a Dask distributed scheduler to run on instead")
    swp.add_argument("--plot", type=Path, metavar="FIG.png",
                     help="where to write the transition figure of a sweep over dynamics.alpha")
    info = sub.add_parser("info", help="what is in a run file: status, provenance, config, datasets")
    info.add_argument("run", type=Path)
    rep = sub.add_parser("repair", help="rewrite a killed run's file as a plain HDF5 file of its complete snapshots")
    rep.add_argument("run", type=Path)
    ver = sub.add_parser("verify", help="exact-solution cases under grid refinement (docs/math.md §6)")
    ver.add_argument("--case", action="append", default=None, metavar="NAME",
                     help="run only these cases (repeatable); default: all")
    ver.add_argument("--quick", action="store_true",
                     help="coarser grids (the finest of each case skipped, or the case's own quick grids)")
    return p


def _cmd_verify(args: argparse.Namespace) -> int:
    from validation import verify

    names = [c.name for c in verify.CASES]
    for name in args.case or []:
        if name not in names:
            raise UsageError(f"--case {name}: unknown case; allowed: {', '.join(names)}")
    results = {c.name: verify.run_case(c, args.quick) for c in verify.CASES if args.case is None or c.name in args.case}
    print(verify.format_report(results))
    ok = all(verify.passes(levels) for levels in results.values())
    if args.case is None:
        orders = {stepper: verify.implicit_time_orders(stepper) for stepper in verify.TIME_ORDERS}
        gibbs = verify.gibbs_preservation()
        print(verify.format_extra_checks(orders, gibbs))
        ok = (ok and all(verify.time_order_passes(s, o) for s, (_, o) in orders.items())
              and max(gibbs.values()) <= verify.GIBBS_TOL)
    return 0 if ok else EXIT_FAILED


def _output_path(args: argparse.Namespace, suffix: str = "") -> tuple[Path, bool]:
    """(--out, --overwrite) if --out is given, else (the next free runs/<config name><suffix>.h5, False);
    UsageError, before any engine is built, if no file can be created there."""
    from mfdyn.storage import cannot_create, free_path, run_path_problem

    out, overwrite = ((free_path(Path("runs") / f"{args.config.stem}{suffix}.h5"), False) if args.out is None
                      else (args.out, args.overwrite))
    reason = run_path_problem(out) or cannot_create(out)
    if reason is not None:
        raise UsageError(f"{'--out ' if args.out is not None else 'output '}{out}: {reason}")
    return out, overwrite


def _cmd_run(args: argparse.Namespace) -> int:
    from mfdyn.config import load_config

    if args.resume is not None:
        if args.config is not None or args.overrides or args.out is not None:
            raise UsageError("--resume RUN.h5 continues that file with its own config; give no CONFIG, --set or --out")
        from validation.runner import resume

        print(f"wrote {resume(args.resume)}")
        return 0
    if args.config is None:
        raise UsageError("run needs a CONFIG (or --resume RUN.h5)")
    from validation.api import run

    config = load_config(args.config, args.overrides)   # validated before any file is touched
    out, overwrite = _output_path(args)
    with run(config, engine=args.engine, out=out, overwrite=overwrite):
        print(f"wrote {out}")
    return 0


def _cmd_gibbs(args: argparse.Namespace) -> int:
    from mfdyn.config import load_config
    from validation.api import gibbs
    from validation.gibbs import summary as gibbs_summary

    config = load_config(args.config, args.overrides)
    out, overwrite = _output_path(args, "-gibbs")
    with gibbs(config, out=out, overwrite=overwrite) as result:
        converged = not result.status.startswith("failed")
        print(gibbs_summary(result.file))
    print(f"wrote {out}" + ("" if converged else " (not converged: see /gibbs/residual)"))
    return 0 if converged else EXIT_FAILED


def _cmd_compare(args: argparse.Namespace) -> int:
    from validation.api import open as open_run

    if args.plot is not None:
        from validation.plots import writable_figure

        writable_figure(args.plot)                                          # before the comparison is computed
    with open_run(args.run) as run:
        comparison = run.compare(against=args.against)
        if args.plot is not None:
            run.plot(args.plot, against=args.against, comparison=comparison)   # refuses a Gibbs one before printing
        print(comparison)
        if args.plot is not None:
            print(f"wrote {args.plot}")
    return 0


def _cmd_movie(args: argparse.Namespace) -> int:
    from validation.api import open as open_run

    with open_run(args.run) as run:
        print(f"wrote {run.movie(args.out, fps=args.fps, every=args.every, overwrite=args.overwrite)}")
    return 0


def _cmd_repair(args: argparse.Namespace) -> int:
    from mfdyn.storage import repair

    groups = repair(args.run)
    print(f"repaired {args.run}: {groups} group(s) rewritten with their complete snapshots")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from validation.api import sweep

    if args.workers < 1:
        raise UsageError(f"--workers: must be ≥ 1, got {args.workers}")
    sweep(args.sweep, args.workers, args.scheduler, plot=args.plot)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from mfdyn.storage import RunFile

    with RunFile.open(args.run) as f:
        attrs = f.attrs
        print(f"{args.run}: status {attrs.get('status')}, engine {attrs.get('engine', '?')}, "
              f"schema {attrs.get('schema_version')}")
        for key in ("created_utc", "wall_seconds", "compile_seconds", "seed", "seed_entropy", "threads", "host",
                    "git_commit", "mfdyn_version", "python_version", "numpy_version", "scipy_version",
                    "numba_version", "h5py_version", "overrides", "resumed_from_status"):
            if key in attrs and str(attrs[key]) != "":
                print(_hanging(f"  {key}: ", attrs[key]))
        for group in f.groups():
            count = f.count(group) if f.has(group, "time") else None
            print(f"/{group}" + (f"  ({count} complete snapshots)" if count is not None else ""))
            for name, shape, long_name in f.datasets(group):
                print(f"  {name:<16} {str(shape):<18} {long_name}")
            for key, value in f.group_attrs(group).items():
                print(_hanging(f"  @{key} = ", value))
        print("config (as run):")
        print("  " + f.config_toml.strip().replace("\n", "\n  "))
    return 0


def _hanging(head: str, value: object) -> str:
    """head + value, a multi-line value's continuation lines indented under its first (info's attributes)."""
    return head + str(value).replace("\n", "\n" + " " * len(head))


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (its lines joined), whatever raised it."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _quiet_stdout() -> None:
    """Point stdout at /dev/null after its reader went away, so that Python's flush at exit cannot fail again."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):      # a stdout without a descriptor (captured): nothing is left to flush
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code.

    A reader that closes stdout early (`mfdyn info RUN | head -1`) ends the command quietly with
    EXIT_BROKEN_PIPE, 141 (128 + SIGPIPE, what a Unix tool killed by the closed pipe reports), for every command.
    """
    from mfdyn.errors import BlowUp
    from mfdyn.schema import ConfigError  # not mfdyn.config: that imports every problem

    args = None
    try:
        args = _parser().parse_args(argv)
        handler = {"run": _cmd_run, "compare": _cmd_compare, "verify": _cmd_verify, "gibbs": _cmd_gibbs,
                   "info": _cmd_info, "sweep": _cmd_sweep, "repair": _cmd_repair, "movie": _cmd_movie}[args.command]
        code = handler(args)
        sys.stdout.flush()              # a closed pipe shows here at the latest, not in Python's exit
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except BlowUp as exc:
        print(f"mfdyn: run stopped: {_one_line(exc)} (the file keeps every snapshot before it)", file=sys.stderr)
        return EXIT_FAILED
    except (UsageError, ConfigError, FileNotFoundError, ValueError) as exc:
        kind = "invalid config: " if isinstance(exc, ConfigError) else ""
        print(f"mfdyn: error: {kind}{_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        movie = getattr(args, "command", "") == "movie"
        print("mfdyn: interrupted; " + ("no movie was written (an existing OUT is untouched)" if movie
                                        else "the output file keeps every completed snapshot"), file=sys.stderr)
        return 130
    except Exception as exc:  # a failed run: one line, the file says "failed: …"
        print(f"mfdyn: failed: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
