"""mfdyn: mean-field dynamics of two-layer networks, PDE and SGD side by side.

The package is the shared core (problems, schema and config, storage, engine protocol), and
`import mfdyn` is also the Python API (docs/guide.md, "From Python"):

    mfdyn.run(config, set=None, engine="both", out=None) -> Run
    mfdyn.open(path) -> Run
    mfdyn.sweep(path_or_dict, workers=2, scheduler=None) -> xarray.Dataset
    mfdyn.gibbs(config, set=None, out=None) -> Run
    mfdyn.Config, mfdyn.ConfigError, mfdyn.Run

The API names resolve on first use (PEP 562), so `import mfdyn` stays cheap and the core never
imports the engines or the validation layer at import time: the layering mfdyn ← pde, particles, lazy ←
validation holds for every module, and only these names reach up to the validation layer.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_API = {"run": "validation.api", "open": "validation.api", "gibbs": "validation.api", "Run": "validation.api",
        "sweep": "validation.api", "Config": "mfdyn.config", "ConfigError": "mfdyn.schema"}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mfdyn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
