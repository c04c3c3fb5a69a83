"""mfdyn: mean-field dynamics of two-layer networks, PDE and SGD side by side.

The shared core: problem catalogue, activations and Gaussian closed forms, config, HDF5 schema.
"""
import os

# Numba's OpenMP threads, by libgomp's default, spin and then sleep between parallel regions; on this
# project's 2-core VMs waking them took 8 ms per region, against 6 µs when they wait passively
# (benchmarks/bench_scaling.py prints both). libgomp reads this when it loads, at the first parallel
# kernel, so it must be set before any runs; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
