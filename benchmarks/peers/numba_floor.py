"""Floor for benchmarks/bench_whole.py: what any whole process built on mfdyn's required stack costs before its work.

Imports numpy, numba, scipy.special and h5py (what `mfdyn run` needs on every path) and calls one tiny Numba
kernel from numba's cache (the first call of any cached kernel initialises numba's CPU target: its registries,
LLVM, and numba's BLAS check, which imports scipy.linalg). No mfdyn code. Prints one JSON line with the
seconds of each part: {"imports": ..., "first_cached_call": ...}.
Usage: python numba_floor.py
"""
import json
import time

start = time.perf_counter()
import h5py  # noqa: E402,F401
import numba  # noqa: E402
import numpy as np  # noqa: E402
import scipy.special  # noqa: E402,F401

imported = time.perf_counter()


@numba.njit(cache=True)
def total(x):
    return x.sum()


total(np.ones(3))
print(json.dumps({"imports": imported - start, "first_cached_call": time.perf_counter() - imported}))
