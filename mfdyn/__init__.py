"""mfdyn: mean-field dynamics of two-layer networks, PDE and SGD side by side.

The shared core: problem catalogue, activations and Gaussian closed forms, config, HDF5 schema.
"""
__version__ = "0.1.0"
