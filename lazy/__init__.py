"""The lazy (tangent-kernel) limit α → ∞ of the network, as an engine (docs/math.md §7).

It knows the problem only through mfdyn's problem interface: never through the grid solver."""
