"""Numba builds shared by the engines: one kernel source compiled serially and with threads, and a
clock of the time Numba spends compiling."""
from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from numba import njit


def serial_and_parallel(kernel: Callable, **options) -> tuple[Callable, Callable]:
    """A serial and a parallel (prange) Numba build of one kernel source, each cached on disk.

    The parallel build compiles a copy of the function named <name>_parallel: numba's cache keys a
    function by module, name and bytecode, not by parallel=, so two builds under one name load each
    other's cached machine code (the parallel build then runs serially, or the serial one in threads).
    options (fastmath, ...) go to both builds.
    """
    twin = types.FunctionType(kernel.__code__, kernel.__globals__, kernel.__name__ + "_parallel", kernel.__defaults__)
    twin.__qualname__ = kernel.__qualname__ + "_parallel"
    return njit(cache=True, **options)(kernel), njit(cache=True, parallel=True, **options)(twin)


class CompileClock:
    """Seconds Numba has spent compiling (not loading from its cache) since the clock was installed."""

    def __init__(self, listener):
        self.listener = listener

    @property
    def seconds(self) -> float:
        return self.listener.duration if self.listener.done else 0.0


@contextmanager
def compile_timer() -> Iterator[CompileClock]:
    """Install a CompileClock for the block; read .seconds at any time inside it."""
    from numba.core import event

    listener = event.TimingListener()
    with event.install_listener("numba:compile", listener):
        yield CompileClock(listener)
