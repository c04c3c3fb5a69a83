"""Scratch arrays kept per thread between calls of a kernel that runs again and again on the same shapes.

Why: glibc serves an array above its mmap threshold (128 kB to 32 MB) with fresh pages, or trims the heap
top it came from once it is freed, so the next call of the same size faults every page in again. In
this project's 2-core VM a page fault costs about 4 µs: the exact R_N at N = 800 (docs/math.md §4) spent
a third of its time faulting in its 5 MB of tiles (benchmarks/RESULTS.md, "Issue 16, the exact R_N").
A Workspace hands out the same memory each call instead, so the pages stay mapped.

Each thread has its own arrays (the engines call the same kernels from threads at once), and an array
is only valid until the next take() of its name on that thread: a caller must not keep one.
"""
from __future__ import annotations

import threading

import numpy as np


class Workspace(threading.local):
    """Named scratch arrays, one set per thread, reused while they are big enough (grown, never shrunk)."""

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype: type = np.float64, fill: float | None = None
             ) -> np.ndarray:
        """A C-contiguous array of `shape` and `dtype` under `name`, uninitialised unless fill is given; it
        shares memory with the last array of that name taken on this thread, which it invalidates."""
        dtype = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        store = self.buffers.get(name)
        if store is None or store.nbytes < size:
            store = self.buffers[name] = np.empty(-(-max(size, 1) // 8))     # float64: 8-byte aligned for any view
        out = store.view(np.uint8)[:size].view(dtype).reshape(shape)
        if fill is not None:
            out.fill(fill)
        return out

    def release(self) -> None:
        """Give this thread's arrays back (the next take() allocates afresh)."""
        self.buffers.clear()
