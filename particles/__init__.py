"""N-particle SGD engine for two-layer networks in the mean-field scaling (docs/math.md §2)."""
from particles.run import ParticleState, run_sgd

__all__ = ["ParticleState", "run_sgd"]
