"""TEMPORARY shim while tests move to validation.runner (removed before commit)."""
from mfdyn.grid import build_grid  # noqa: F401
from validation import gibbs as _gibbs
from validation import runner as _runner
from validation.runner import resume  # noqa: F401


def execute(config, out, engine="both"):
    _runner.execute(config, out, engine).close()
    return out


def execute_gibbs(config, out):
    f, ok = _gibbs.execute_gibbs(config, out)
    f.close()
    return out, ok
