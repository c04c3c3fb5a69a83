"""The second-order face values of the finite-volume scheme, as readable NumPy (docs/math.md §5).

Along the middle axis of a (P, n, Q) array of cell averages: ρ^E_j = ρ_j + (h/2)s_j and
ρ^W_j = ρ_j − (h/2)s_j with the centred slope, (h/2)s_j = (ρ_{j+1} − ρ_{j−1})/4, replaced by half the
generalised minmod (θ = 2) only where a face value would go negative; mirrored ghost cells at the
ends. The upwind scheme's NumPy twin (pde/upwind.py) and the scheme's own tangent kernel
(mfdyn/tangent.py) both read the face values from here; the Numba kernel computes the same inline.
"""
from __future__ import annotations

import numpy as np

MINMOD_THETA = 2.0


def face_values(rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ρ^E, ρ^W), each shaped like rho (P, n, Q): the values of each cell at its upper and lower face."""
    padded = np.concatenate([rho[:, :1], rho, rho[:, -1:]], axis=1)      # mirrored ghost cells
    rm, r0, rp = padded[:, :-2], padded[:, 1:-1], padded[:, 2:]
    half = 0.25 * (rp - rm)
    a, b, c = MINMOD_THETA * (rp - r0), 0.5 * (rp - rm), MINMOD_THETA * (r0 - rm)
    minmod = np.where((a > 0) & (b > 0) & (c > 0), np.minimum(np.minimum(a, b), c),
                      np.where((a < 0) & (b < 0) & (c < 0), np.maximum(np.maximum(a, b), c), 0.0))
    half = np.where(r0 - np.abs(half) >= 0, half, 0.5 * minmod)
    return rho + half, rho - half
