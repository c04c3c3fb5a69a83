"""The engine protocol and registry (docs/guide.md, "Engines").

An engine computes one group of the run file (pde, particles, ...) from a Problem and a Config.
It registers itself by name where it is defined (`@register_engine`), and the runner knows only
this protocol:

    engine = ENGINES[name](problem, config)   # cheap checks (memory, applicability): no file yet
    engine.prepare()                           # the expensive set-up, once the inputs are valid
    engine.layout(writer)                      # its datasets in the group `engine.name`
    for snap in engine.run(start):             # snapshots at config.save_times() after start
        writer.append(engine.name, snap.row)
    start = engine.start_state(run_file, n)    # the state of its n-th complete snapshot (resume), after which
    engine.resumed_attrs                       # holds the group attributes as they stood then

An engine never prints: warnings travel with the snapshot that raised them.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

ENGINES: dict[str, type[Engine]] = {}


@dataclass
class Snapshot:
    """One saved state of an engine: the row of its datasets (with "time"), group attributes to record
    at the end of the run, the steps taken so far, a warning for the user (or None), and the seconds the row's
    exact R_N took (what the progress line weighs against the engine's time)."""

    t: float
    steps: int
    row: dict[str, Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None
    risk_seconds: float = 0.0


class Engine(Protocol):
    name: ClassVar[str]
    resumed_attrs: dict[str, Any]

    def __init__(self, problem: Any, config: Any) -> None: ...

    def prepare(self) -> None: ...

    def layout(self, writer: Any) -> None: ...

    def run(self, start: Any = None) -> Iterator[Snapshot]: ...

    def start_state(self, run_file: Any, n: int) -> Any: ...


def register_engine(cls: type) -> type:
    """Class decorator: register an engine under its `name` (also the name of its group in the file)."""
    known = ENGINES.get(cls.name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise TypeError(f"engine name {cls.name!r} is already registered by {ENGINES[cls.name].__qualname__}")
    ENGINES[cls.name] = cls
    return cls


def remaining_times(times: list[float], t0: float | None) -> list[float]:
    """The save times strictly after t0 (all of them when t0 is None): where a resumed engine goes on."""
    if t0 is None:
        return list(times)
    return [t for t in times if t > t0 + 1e-12 * max(1.0, t0)]


__all__ = ["ENGINES", "Engine", "Snapshot", "register_engine", "remaining_times"]
