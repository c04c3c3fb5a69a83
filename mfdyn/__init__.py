"""mfdyn: mean-field dynamics of two-layer networks, PDE and SGD side by side.

The shared core: problem catalogue, activations and Gaussian closed forms, config, HDF5 schema.
"""
import os

# Numba's OpenMP threads, by libgomp's default, spin between parallel regions. That is fastest on an
# idle machine (1-2 µs per region here), but while other multi-threaded work ran on this project's
# 2-core VMs we saw regions stall for 4-30 ms; waiting passively cost 6-50 µs in every case measured
# (benchmarks/bench_scaling.py prints both policies). The kernels go parallel only where their work
# dwarfs that. libgomp reads the variable when it loads, at the first parallel kernel, so it is set
# on import; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
