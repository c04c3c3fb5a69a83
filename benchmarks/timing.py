"""Timing helper shared by the benchmark scripts."""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def wall_time(fn: Callable[[], object]) -> float:
    """Wall seconds of one call fn(), warm-up included (for whole commands and one-off runs)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], repeats: int = 30) -> float:
    """Median wall seconds of fn() over `repeats` calls, after one warm-up call (compilation, caches)."""
    fn()
    return float(np.median([wall_time(fn) for _ in range(repeats)]))
