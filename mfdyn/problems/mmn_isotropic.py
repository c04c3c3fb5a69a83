"""MMN 2018 example 1: isotropic Gaussians, reduced to the radius r = |w| (docs/math.md §3.1, §4)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from mfdyn.gaussian import hermite_coefficients, q, ramp_second_moment, sphere_cosine_moments
from mfdyn.problems.base import GridModel
from mfdyn.problems.single_index import SingleIndexParams, SingleIndexRamp
from mfdyn.schema import choice, rule

_REDUCTION = choice("exact", "d_infinity")
# u_d is truncated at the first even k whose term is below this everywhere on the grid (docs/math.md §3.1)
KERNEL_TRUNCATION = 1e-10
_KMAX = 400
_PROBE = 2048


@dataclass(frozen=True)
class MMNIsotropicParams(SingleIndexParams):
    """[problem] keys of mmn_isotropic."""

    reduction: str = rule("exact", "str", *_REDUCTION, "'exact' uses u_d; 'd_infinity' only k = 0")


class MMNIsotropic(SingleIndexRamp):
    """y = ±1, x | y ~ N(0, (1 + yΔ)² I_d), σ*(x; w) = σ(<w, x>), ρ_0 = N(0, κ²/d I_d).

    Reduced coordinate r = |w| with J = r^{d−1}; the kernel is u_d (exact in any d) or u_∞.
    """

    name = "mmn_isotropic"
    Params = MMNIsotropicParams
    natural_lower = (True,)

    def __init__(self, params: MMNIsotropicParams, init):
        super().__init__(params, init)
        self.taus = (1.0 + params.delta, 1.0 - params.delta)

    @classmethod
    def coordinates(cls, params: MMNIsotropicParams) -> tuple[str, ...]:
        return ("r",)

    def class_scale(self, y: float) -> np.ndarray:
        return np.full(self.params.d, 1.0 + y * self.params.delta)

    def reduce(self, theta: np.ndarray) -> np.ndarray:
        """r = |w|, shape (n, 1)."""
        return np.linalg.norm(theta, axis=1)[:, None]

    def default_bounds(self) -> tuple[tuple[float, float], ...]:
        return ((0.0, 8.0),)

    # ------------------------------------------------------------------ the reduced problem
    def potential(self, r: np.ndarray) -> np.ndarray:
        """v(r) = −½ q((1+Δ)r) + ½ q((1−Δ)r)."""
        tp, tm = self.taus
        return -0.5 * q(self.ramp, tp * r) + 0.5 * q(self.ramp, tm * r)

    def self_interaction(self, r: np.ndarray) -> np.ndarray:
        """U(w, w) = ½ Σ± E σ(τ± r Z)², closed form."""
        return 0.5 * sum(ramp_second_moment(self.ramp, t * r) for t in self.taus)

    def kernel_order(self, r: np.ndarray) -> int:
        """Largest even k kept in u_d on these radii: 0 for 'd_infinity'; for 'exact', the last even k
        before the first whose term ½ E c^k max ĥ_k² falls below KERNEL_TRUNCATION (docs/math.md §3.1)."""
        if self.params.reduction == "d_infinity":
            return 0
        if r.size > _PROBE:      # ĥ_k is smooth in r: a fine probe of the range finds the same maximum
            r = np.linspace(r.min(), r.max(), _PROBE)
        moments = sphere_cosine_moments(self.params.d, _KMAX)
        h2 = np.stack([hermite_coefficients(self.ramp, t * r, _KMAX) ** 2 for t in self.taus])
        term = 0.5 * moments * h2.max(axis=(0, 2))
        small = np.flatnonzero((term < KERNEL_TRUNCATION) & (np.arange(_KMAX + 1) % 2 == 0))
        return int(small[0]) - 2 if small.size else _KMAX

    def feature_count(self, centres: list[np.ndarray]) -> int:
        return 2 * (self.kernel_order(centres[0]) // 2 + 1)

    def kernel_features(self, r: np.ndarray) -> np.ndarray:
        """Φ with u(r, r') = Σ_rows Φ(r) Φ(r'): rows sqrt(½ E c^k) ĥ_k(τ± r), k even (docs/math.md §3.1).

        'd_infinity' keeps k = 0 only; 'exact' keeps even k up to the first whose term
        ½ E c^k max ĥ_k² falls below KERNEL_TRUNCATION on these points.
        """
        kmax = self.kernel_order(r)
        ks = np.arange(0, kmax + 1, 2)
        scale = np.sqrt(0.5 * sphere_cosine_moments(self.params.d, kmax)[ks])
        rows = [scale[:, None] * hermite_coefficients(self.ramp, t * r, kmax)[ks] for t in self.taus]
        return np.concatenate(rows, axis=0)

    def grid_model(self, centres: list[np.ndarray]) -> GridModel:
        (r,) = centres
        feats = self.kernel_features(r)
        return GridModel(potential=self.potential(r), features=feats, weights=np.ones(len(feats)),
                         r_sharp=1.0, sq_norm=r * r, self_interaction=self.self_interaction(r),
                         log_volume=(self.params.d - 1) * np.log(r))

    def initial_cell_averages(self, edges: list[np.ndarray]) -> np.ndarray:
        """r_0 = κ χ_d / sqrt(d): P(r_0 ≤ r) = F_{χ²_d}(d r² / κ²), differenced over each cell."""
        (e,) = edges
        cdf = chi2.cdf(self.params.d * (e / self.kappa) ** 2, self.params.d)
        return np.diff(cdf) / np.diff(e)
