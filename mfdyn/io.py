"""TEMPORARY shim while tests move to mfdyn.storage (removed before commit)."""
from mfdyn.storage import RunFile, free_path  # noqa: F401


def open_run(path):
    return RunFile.open(path).h5


def completed(f, group):
    return f[group]["time"].shape[0] if group in f else 0
