"""The coupled particle systems of docs/math.md §8: the N-particle gradient flow G (engine "gd") and Sznitman's
tracers T of the PDE's ρ_t (engine "tracers"), both from SGD's own θ(0) and Brownian increments."""
