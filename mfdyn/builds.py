"""Numba builds shared by the engines: one kernel source compiled serially and with threads."""
from __future__ import annotations

import types
from typing import Callable

from numba import njit


def serial_and_parallel(kernel: Callable, **options) -> tuple[Callable, Callable]:
    """A serial and a parallel (prange) Numba build of one kernel source, each cached on disk.

    The parallel build compiles a copy of the function named <name>_parallel: numba's cache keys a
    function by module, name and bytecode, not by parallel=, so two builds under one name load each
    other's cached machine code (the parallel build then runs serially, or the serial one in threads).
    options (fastmath, ...) go to both builds.
    """
    twin = types.FunctionType(kernel.__code__, kernel.__globals__, kernel.__name__ + "_parallel")
    twin.__qualname__ = kernel.__qualname__ + "_parallel"
    return njit(cache=True, **options)(kernel), njit(cache=True, parallel=True, **options)(twin)
