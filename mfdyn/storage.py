"""The run file: one HDF5 file per run, written and read only through this module (docs/guide.md, "The run file").

Layout (every group is optional; engines add theirs):

    /                 attrs: schema_version, mfdyn_version, created_utc, config_toml, overrides, seed,
                      seed_entropy, versions, threads, host, git_commit, engine, wall_seconds,
                      compile_seconds, status ("running" | "completed" | "interrupted" | "failed: reason")
    /<group>/time     (T,) the group's save times, a dimension scale, grown one row per snapshot
    /<group>/<coord>  fixed dimension scales (cell centres r; a, w, b; particle, component, ...)
    /<group>/<name>   (T, ...) series, one row per snapshot, dimensions attached to the scales by name
    /<group>/<name>   fixed tables (comparison, gibbs residual), written once

Engines name their group and datasets and hand rows to RunWriter.append; nothing outside this
module composes an HDF5 path. Writing is crash-safe: after the layout the file enters SWMR mode,
each append writes the row of `time` last and flushes, so a run killed at any moment leaves every
complete snapshot (len(time) rows). Such a file opens here (read as SWMR) and `repair` rewrites it
as a plain file that any HDF5 reader opens. A writer with path=None keeps the whole file in memory
(HDF5's core driver): the same layout, no file on disk.

Attributes are stored as netCDF-compatible types (booleans as 0/1 integers), and integer index
scales (particle, component, ...) as integers, so `xarray.open_dataset(path, group=...)` and
`Dataset.to_netcdf` work on every group.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

SCHEMA_VERSION = 2
GROUPS = ("pde", "particles", "kernel", "gd", "tracers", "comparison", "gibbs")   # known groups, in display order
_memory_ids = itertools.count()


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


def _attr_value(value: Any) -> Any:
    """An attribute value netCDF can hold: booleans become 0/1, None becomes ''."""
    if isinstance(value, (bool, np.bool_)):
        return np.int8(bool(value))
    if value is None:
        return ""
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


class RunWriter:
    """Writes one run file in three phases.

    1. layout: scale(), series(), table() and attributes;
    2. start(): enter SWMR mode, after which only append() is allowed. A process killed at any
       moment then leaves a file that RunFile.open reads with every complete snapshot;
    3. finish(status, final): leave SWMR, write the attributes set meanwhile (set_attrs), call
       final(RunFile) for tables computed from the finished data, and record the status, all in a
       copy that then replaces the file (a kill meanwhile leaves the run as it was). Leaving the
       `with` block by an exception finishes with "failed: <reason>"; a killed run keeps "running".

    path=None keeps the file in memory; `file` is then the open in-memory file after finish.
    """

    def __init__(self, path: str | Path | None, config_toml: str, seed: int, overrides: tuple[str, ...] = ()):
        self.path = None if path is None else Path(path)
        if self.path is None:
            self.file = h5py.File(f"mfdyn-memory-{os.getpid()}-{next(_memory_ids)}.h5", "w", driver="core",
                                  backing_store=False, libver="latest")
        else:
            reason = cannot_create(self.path)
            if reason is not None:
                raise ValueError(f"out {self.path}: {reason}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = h5py.File(self.path, "w", libver="latest")
        self.pending: dict[str, dict[str, Any]] = {}
        self.finished = False
        self.set_root(schema_version=SCHEMA_VERSION,
                      created_utc=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                      config_toml=config_toml, overrides="\n".join(overrides), seed=seed, **provenance(),
                      status="running")

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.finished:
            reason = (str(exc).splitlines()[0] if str(exc) else exc_type.__name__) if exc is not None else "incomplete"
            self.finish(f"failed: {reason}")

    def set_root(self, **attrs: Any) -> None:
        """Root attributes, during the layout phase."""
        self.file.attrs.update({k: _attr_value(v) for k, v in attrs.items()})

    def start(self) -> None:
        """Enter SWMR mode (on disk): from here on only appends."""
        self.file.flush()
        if self.path is not None:
            self.file.swmr_mode = True

    def set_attrs(self, group: str, **attrs: Any) -> None:
        """Attributes for group ('/' for the root), written at finish()."""
        self.pending.setdefault(group, {}).update(attrs)

    def finish(self, status: str, final: Callable[[RunFile], None] | None = None) -> None:
        """Leave SWMR, write pending attributes, final(file) unless the run failed, and the status. A final()
        that raises records "failed: <reason>" before the exception goes on."""
        self.finished = True
        if self.path is None:
            target = RunFile(self.file, None)
        else:
            if self.file.id.valid:
                self.file.close()
            # A file killed while open for writing outside SWMR mode cannot be opened again, so the last writes go
            # to a copy that replaces the file once closed: a kill in between leaves the closed SWMR file (status
            # "running", resumable) and a stray copy, which the next finish at this path overwrites.
            temp = self.path.with_name(f".{self.path.name}.finish")
            shutil.copyfile(self.path, temp)
            target = RunFile(h5py.File(temp, "r+"), self.path)
        try:
            for group, attrs in self.pending.items():
                target.h5.require_group(group).attrs.update({k: _attr_value(v) for k, v in attrs.items()})
            if final is not None and not status.startswith("failed"):
                try:
                    final(target)
                except Exception as exc:
                    target.h5.attrs["status"] = f"failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                    raise
            target.h5.attrs["status"] = status
            target.h5.flush()
        finally:
            if self.path is not None:
                target.close()
                os.replace(temp, self.path)

    # ----------------------------------------------------------------- layout
    def scale(self, group: str, name: str, values: np.ndarray | None = None, **attrs: Any) -> None:
        """A 1-D dimension scale: fixed (values given; integer values stay integers) or growing along
        time (values None, float64)."""
        g = self.file.require_group(group)
        if values is None:
            ds = g.create_dataset(name, shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,))
        else:
            values = np.asarray(values)
            ds = g.create_dataset(name, data=values if values.dtype.kind in "iu" else values.astype("f8"))
        ds.make_scale(name)
        ds.attrs.update({k: _attr_value(v) for k, v in attrs.items()})

    def series(self, group: str, name: str, row_shape: tuple[int, ...], dims: tuple[str, ...],
               compress: bool = False, **attrs: Any) -> None:
        """A dataset growing along its first axis (time), dimensions attached to the group's scales by name."""
        g = self.file.require_group(group)
        chunks = (1,) + tuple(row_shape) if row_shape else (1024,)
        ds = g.create_dataset(name, shape=(0,) + tuple(row_shape), maxshape=(None,) + tuple(row_shape), dtype="f8",
                              chunks=chunks, **({"compression": "gzip", "compression_opts": 4,
                                                 "shuffle": True} if compress else {}))
        _attach(g, ds, dims)
        ds.attrs.update({k: _attr_value(v) for k, v in attrs.items()})

    def table(self, group: str, name: str, values: np.ndarray, dims: tuple[str, ...] = (), **attrs: Any) -> None:
        """A fixed dataset written once (e.g. a convergence history); dims name existing scales."""
        _write_table(self.file.require_group(group), name, values, dims, attrs)

    def group_attrs(self, group: str, **attrs: Any) -> None:
        """Attributes of a group, during the layout phase."""
        self.file.require_group(group).attrs.update({k: _attr_value(v) for k, v in attrs.items()})

    def append(self, group: str, row: dict[str, Any]) -> None:
        """Append one snapshot: one row to each named dataset of group and flush, then the row of `time`
        and flush again. HDF5 may write a flush's datasets in any order, so a single flush could leave
        `time` one row ahead of the others in a run killed mid-flush; two keep len(time) a count of
        complete snapshots."""
        g = self.file[group]
        for name in row:
            if name != "time":
                self._append(g[name], row[name])
        self.file.flush()
        self._append(g["time"], row["time"])
        self.file.flush()

    @staticmethod
    def _append(ds: h5py.Dataset, value: Any) -> None:
        n = ds.shape[0]
        ds.resize(n + 1, axis=0)
        ds[n] = value

    def reader(self) -> RunFile:
        """The file as a RunFile, to read while writing (in-memory runs)."""
        return RunFile(self.file, self.path)


def _attach(g: h5py.Group, ds: h5py.Dataset, dims: tuple[str, ...]) -> None:
    for axis, dim in enumerate(dims):
        if dim in g:
            ds.dims[axis].attach_scale(g[dim])


def _write_table(g: h5py.Group, name: str, values: Any, dims: tuple[str, ...], attrs: dict) -> None:
    if name in g:
        del g[name]
    ds = g.create_dataset(name, data=np.asarray(values))
    _attach(g, ds, dims)
    ds.attrs.update({k: _attr_value(v) for k, v in attrs.items()})


class RunFile:
    """Reading a run file: complete snapshots only, attributes decoded, groups as xarray Datasets.

    Open with RunFile.open(path) (also a file whose run was killed); `h5` is the h5py file for
    tools that need it. Series are cut to the group's complete snapshots (len of its time).
    """

    def __init__(self, h5: h5py.File, path: Path | None):
        self.h5, self.path = h5, path

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> RunFile:
        """Open a run file read-only (or "r+"), with a one-line error if it is not one."""
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file")
        if p.is_dir():
            raise ValueError(f"{p}: is a directory, not a run file")
        try:
            f = h5py.File(p, mode)
        except OSError as exc:
            # A file being written (or killed while it was) is read as SWMR, and without a file lock: a lock
            # held while a run switches its file to SWMR mode would make that run fail ("unable to lock file").
            try:
                f = h5py.File(p, "r", swmr=True, locking=False)
            except OSError:
                raise ValueError(f"{p}: not an HDF5 file ({str(exc).splitlines()[0]})") from None
            if mode != "r":
                f.close()
                raise ValueError(f"{p}: the run was killed while writing; `mfdyn repair {p}` makes it writable") from None
        if "schema_version" not in f.attrs:
            f.close()
            raise ValueError(f"{p}: not an mfdyn run file (no schema_version attribute)")
        return cls(f, p)

    def __enter__(self) -> RunFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.h5.id.valid:
            self.h5.close()

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "(in memory)"

    # ----------------------------------------------------------------- root
    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes, decoded to Python values."""
        return {k: _decode(v) for k, v in self.h5.attrs.items()}

    @property
    def status(self) -> str:
        return str(_decode(self.h5.attrs.get("status", "")))

    @property
    def config_toml(self) -> str:
        return str(_decode(self.h5.attrs["config_toml"]))

    @property
    def engine(self) -> str:
        return str(_decode(self.h5.attrs.get("engine", "")))

    # ----------------------------------------------------------------- groups
    def groups(self) -> list[str]:
        """The groups present, known ones first in display order."""
        present = list(self.h5.keys())
        return [g for g in GROUPS if g in present] + sorted(g for g in present if g not in GROUPS)

    def has(self, group: str, name: str | None = None) -> bool:
        return group in self.h5 and (name is None or name in self.h5[group])

    def count(self, group: str) -> int:
        """Complete snapshots of a group (rows of its `time`, written last); 0 if absent."""
        return self.h5[group]["time"].shape[0] if self.has(group, "time") else 0

    def series(self, group: str, name: str) -> np.ndarray:
        """A series' complete rows, (T, ...)."""
        return self.h5[group][name][: self.count(group)]

    def row(self, group: str, name: str, index: int) -> np.ndarray:
        """One row of a series (negative indices count from the last complete snapshot)."""
        n = self.count(group)
        if not -n <= index < n:
            raise IndexError(f"{self.name}: /{group} has {n} complete snapshots, no row {index}")
        return self.h5[group][name][index % n]

    def fixed(self, group: str, name: str) -> np.ndarray:
        """A fixed dataset (a scale or a table), whole."""
        return self.h5[group][name][()]

    def group_attrs(self, group: str) -> dict[str, Any]:
        return {k: _decode(v) for k, v in self.h5[group].attrs.items()}

    def coords(self, group: str) -> list[str]:
        """The reduced (grid) coordinate names of a group (its `coords` attribute)."""
        return str(_decode(self.h5[group].attrs["coords"])).split(",")

    def datasets(self, group: str) -> Iterator[tuple[str, tuple[int, ...], str]]:
        """(name, shape, long_name) of every dataset of a group."""
        for name, ds in self.h5[group].items():
            yield name, ds.shape, str(_decode(ds.attrs.get("long_name", "")))

    def write_table(self, group: str, tables: dict[str, np.ndarray], dims: dict[str, tuple[str, ...]],
                    scales: dict[str, np.ndarray], **attrs: Any) -> None:
        """Replace a group of fixed tables (e.g. /comparison): scales first, then each table on its dims."""
        g = self.h5.require_group(group)
        for name, values in scales.items():
            if name in g:
                del g[name]
            g.create_dataset(name, data=np.asarray(values)).make_scale(name)
        for name, values in tables.items():
            if name not in scales:
                _write_table(g, name, values, dims.get(name, ()), {})
        g.attrs.update({k: _attr_value(v) for k, v in attrs.items()})
        self.h5.flush()

    def to_xarray(self, group: str):
        """The group as an xarray.Dataset: series cut to complete snapshots, named coordinates, attributes."""
        import xarray as xr

        g = self.h5[group]
        n = self.count(group)
        scales = {name for name, ds in g.items() if ds.is_scale}
        coords, data = {}, {}
        for name, ds in g.items():
            values = ds[:n] if (ds.maxshape[0] is None and ds.ndim and "time" in g) else ds[()]
            attrs = {k: _decode(v) for k, v in ds.attrs.items() if k not in ("CLASS", "NAME", "REFERENCE_LIST",
                                                                              "DIMENSION_LIST", "_Netcdf4Dimid")}
            if name in scales:
                coords[name] = xr.Variable((name,), values, attrs)
                continue
            dims = []
            for axis in range(ds.ndim):
                attached = [s.name.rsplit("/", 1)[-1] for s in ds.dims[axis].values()]
                dims.append(attached[0] if attached else f"{name}_dim{axis}")
            data[name] = xr.Variable(tuple(dims), values, attrs)
        return xr.Dataset(data, coords=coords, attrs=self.group_attrs(group))


def copy_complete(source: RunFile, target: RunWriter, group: str) -> int:
    """Copy the complete snapshots of source/group into target's laid-out group; return their number."""
    n = source.count(group)
    g = target.file[group]
    for name, ds in source.h5[group].items():
        if name in g and ds.maxshape[0] is None:
            g[name].resize(n, axis=0)
            g[name][:] = ds[:n]
    return n


def repair(path: str | Path) -> int:
    """Rewrite a run file whose run was killed as a plain HDF5 file holding its complete snapshots.

    The copy keeps every group's layout, scales, attributes and fixed tables; series are cut to the
    complete snapshots. status "running" becomes "interrupted" (resume continues it). Returns the
    number of groups copied. The original is replaced only once the copy is complete.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.repair")
    with RunFile.open(path) as source, h5py.File(temp, "w", libver="latest") as out:
        out.attrs.update(source.h5.attrs)
        if source.status == "running":
            out.attrs["status"] = "interrupted"
        for group in source.h5:
            src, dst = source.h5[group], out.create_group(group)
            dst.attrs.update(src.attrs)
            n = source.count(group)
            for name, ds in src.items():          # scales first, so that series can attach to them
                if ds.is_scale:
                    _copy_dataset(ds, dst, name, n)
            for name, ds in src.items():
                if not ds.is_scale:
                    _copy_dataset(ds, dst, name, n)
                    for axis in range(ds.ndim):
                        for scale in ds.dims[axis].values():
                            dst[name].dims[axis].attach_scale(dst[scale.name.rsplit("/", 1)[-1]])
        groups = len(source.h5)
    os.replace(temp, path)
    return groups


def _copy_dataset(ds: h5py.Dataset, dst: h5py.Group, name: str, n: int) -> None:
    growing = ds.maxshape and ds.maxshape[0] is None
    data = ds[:n] if growing else ds[()]
    options = {"maxshape": ds.maxshape, "chunks": ds.chunks} if growing else {}
    if ds.compression:
        options.update(compression=ds.compression, compression_opts=ds.compression_opts, shuffle=ds.shuffle)
    copy = dst.create_dataset(name, data=data, **options)
    copy.attrs.update({k: v for k, v in ds.attrs.items() if k not in ("CLASS", "NAME", "REFERENCE_LIST",
                                                                      "DIMENSION_LIST")})
    if ds.is_scale:
        copy.make_scale(name)


def cannot_create(path: str | Path) -> str | None:
    """Why no run file can be created at path, folders RunWriter makes included, in words (None: it can).

    Tried, not guessed: a probe file is created and removed in the nearest folder that exists, which also
    catches what permission bits do not tell (a read-only file system, /proc, root's exemptions).
    """
    folder = Path(path).absolute().parent
    while not os.path.lexists(folder):
        folder = folder.parent
    if not folder.is_dir():
        return f"cannot create it: {folder} is not a directory"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".mfdyn-probe-"):
            pass
    except OSError as exc:
        return f"cannot create a file in {folder}: {(exc.strerror or type(exc).__name__).lower()}"
    return None


RUN_SUFFIXES = (".h5", ".hdf5")       # a run file is HDF5; other names are refused, not silently written


def run_path_problem(path: str | Path) -> str | None:
    """What is wrong with path as the name of a new run file, in words (None: nothing): a folder, or a name
    that does not end in one of RUN_SUFFIXES. Whether it exists is the caller's question (overwrite)."""
    path = Path(path)
    if path.is_dir():
        return f"is a directory; give a file path such as {path / 'run.h5'}"
    if path.suffix.lower() not in RUN_SUFFIXES:
        return (f"a run file is HDF5: give it a name ending in {' or '.join(RUN_SUFFIXES)}, not "
                f"{path.suffix or '(no suffix)'!r}")
    return None


def free_path(path: Path) -> Path:
    """path if it does not exist, else path with the first free suffix -1, -2, …"""
    if not path.exists():
        return path
    k = 1
    while (candidate := path.with_name(f"{path.stem}-{k}{path.suffix}")).exists():
        k += 1
    return candidate


__all__ = ["GROUPS", "RUN_SUFFIXES", "RunFile", "RunWriter", "SCHEMA_VERSION", "cannot_create", "copy_complete",
           "free_path", "provenance", "repair", "run_path_problem"]
