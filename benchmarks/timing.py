"""Timing helper shared by the benchmark scripts."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def median_time(fn: Callable[[], object], repeats: int = 30) -> float:
    """Median wall seconds of fn() over `repeats` calls, after one warm-up call (compilation, caches)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
