"""One HDF5 file per run (DESIGN.md, "HDF5 output").

Time-major datasets grow by one row per snapshot and the file is flushed after each, so a run that
stops at any moment leaves every completed snapshot readable. The root attribute `status` says
"running", "completed" or "failed: reason". Coordinates are HDF5 dimension scales named like the
dimension (time, r, ...), so xarray (engine="h5netcdf") sees named coordinates.
"""
from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np

SCHEMA_VERSION = 1


def _git_commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def provenance() -> dict[str, Any]:
    """Versions, thread count, host and commit of this process."""
    import numba
    import scipy

    import mfdyn

    return {"mfdyn_version": mfdyn.__version__, "numpy_version": np.__version__,
            "scipy_version": scipy.__version__, "numba_version": numba.__version__,
            "h5py_version": h5py.__version__, "python_version": platform.python_version(),
            "threads": int(numba.get_num_threads()), "host": platform.node(),
            "git_commit": _git_commit()}


class RunWriter:
    """Writes one run file in three phases.

    1. layout: create groups, datasets and attributes (scale, series, group, attrs);
    2. start(): enter HDF5 SWMR mode, after which only append() is allowed. A process killed at any
       moment then leaves a file that opens (open_run) with every completed snapshot. Each
       append writes the row of `time` last, so len(time) counts the complete snapshots;
    3. finish(status): leave SWMR, apply the attributes set meanwhile (set_attrs) and any final
       writes, and record the status. Leaving the `with` block by an exception finishes with
       "failed: <reason>"; a killed run keeps "running".
    """

    def __init__(self, path: str | Path, config_toml: str, seed: int, overrides: tuple[str, ...] = ()):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = h5py.File(self.path, "w", libver="latest")
        self.pending: dict[str, dict[str, Any]] = {}
        self.finished = False
        attrs = self.file.attrs
        attrs["schema_version"] = SCHEMA_VERSION
        attrs["created_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        attrs["config_toml"] = config_toml
        attrs["overrides"] = "\n".join(overrides)
        attrs["seed"] = seed
        for key, value in provenance().items():
            attrs[key] = value
        attrs["status"] = "running"

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.finished:
            reason = (str(exc).splitlines()[0] if str(exc) else exc_type.__name__) if exc is not None else "incomplete"
            self.finish(f"failed: {reason}")

    def start(self) -> None:
        """Enter SWMR mode: from here on only appends."""
        self.file.flush()
        self.file.swmr_mode = True

    def set_attrs(self, group: str, **attrs: Any) -> None:
        """Attributes for group ('/' for the root), written at finish()."""
        self.pending.setdefault(group, {}).update(attrs)

    def finish(self, status: str, final: Callable[[h5py.File], None] | None = None) -> None:
        """Close the SWMR file, reopen it, write pending attributes, final(file), and the status."""
        self.finished = True
        if self.file.id.valid:
            self.file.close()
        with h5py.File(self.path, "r+") as f:
            for group, attrs in self.pending.items():
                f.require_group(group).attrs.update(attrs)
            if final is not None and not status.startswith("failed"):
                final(f)
            f.attrs["status"] = status

    # ----------------------------------------------------------------- layout helpers
    def group(self, name: str) -> h5py.Group:
        return self.file.require_group(name)

    def scale(self, group: str, name: str, values: np.ndarray | None = None, **attrs: Any) -> h5py.Dataset:
        """A 1-D dimension scale: fixed (values given) or growing along time (values None)."""
        g = self.group(group)
        if values is None:
            ds = g.create_dataset(name, shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,))
        else:
            ds = g.create_dataset(name, data=np.asarray(values, dtype="f8"))
        ds.make_scale(name)
        ds.attrs.update(attrs)
        return ds

    def series(self, group: str, name: str, row_shape: tuple[int, ...], dims: tuple[str, ...],
               compress: bool = False, **attrs: Any) -> h5py.Dataset:
        """A dataset growing along its first axis (time), dimensions attached to scales by name."""
        g = self.group(group)
        chunks = (1,) + row_shape if row_shape else (1024,)
        ds = g.create_dataset(name, shape=(0,) + row_shape, maxshape=(None,) + row_shape, dtype="f8",
                              chunks=chunks, **({"compression": "gzip", "compression_opts": 4,
                                                 "shuffle": True} if compress else {}))
        for axis, dim in enumerate(dims):
            if dim in g:
                ds.dims[axis].attach_scale(g[dim])
        ds.attrs.update(attrs)
        return ds

    def append(self, group: str, row: dict[str, Any]) -> None:
        """Append one snapshot: one row to each named dataset of group, `time` last, then flush."""
        g = self.file[group]
        for name in sorted(row, key=lambda k: k == "time"):
            ds = g[name]
            n = ds.shape[0]
            ds.resize(n + 1, axis=0)
            ds[n] = row[name]
        self.file.flush()


def open_run(path: str | Path) -> h5py.File:
    """Open a run file read-only (also one whose run was killed), with a clear error if it is not one.

    Snapshots are complete up to len(<group>/time): use completed() to slice the other datasets."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        try:            # a run killed in SWMR mode leaves the 'open for write' flag: read it as SWMR
            f = h5py.File(p, "r", swmr=True)
        except OSError:
            raise ValueError(f"{p}: not an HDF5 file ({exc})") from None
    if "schema_version" not in f.attrs:
        f.close()
        raise ValueError(f"{p}: not an mfdyn run file (no schema_version attribute)")
    return f


def completed(f: h5py.File, group: str) -> int:
    """The number of complete snapshots of a group (rows of its `time`, written last)."""
    return f[group]["time"].shape[0] if group in f else 0


def free_path(path: Path) -> Path:
    """path if it does not exist, else path with the first free suffix -1, -2, …"""
    if not path.exists():
        return path
    k = 1
    while (candidate := path.with_name(f"{path.stem}-{k}{path.suffix}")).exists():
        k += 1
    return candidate


__all__ = ["RunWriter", "SCHEMA_VERSION", "free_path", "open_run", "provenance"]
