"""MMN 2018 example 1: isotropic Gaussians, reduced to the radius r = |w| (docs/math.md §3.1, §4)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfdyn.gaussian import hermite_coefficients, q, ramp_second_moment, sphere_cosine_moments
from mfdyn.problems.base import GridModel
from mfdyn.problems.single_index import SingleIndexParams, SingleIndexRamp
from mfdyn.schema import choice, rule

_REDUCTION = choice("exact", "d_infinity")
# u_d is truncated at the first even k whose term is below this everywhere on the grid (docs/math.md §3.1)
KERNEL_TRUNCATION = 1e-10
_KMAX = 400
_PROBE = 2048
_ORDER_CACHE = 8     # kernel orders remembered per problem (one per grid it has seen)


def hermite_coefficient_derivatives(h: np.ndarray, a: np.ndarray) -> np.ndarray:
    """dĥ_k/da for k = 0..K−2, from ĥ_0..ĥ_K (h of shape (K+1, *a.shape), hermite_coefficients):

        dĥ_k/da = (√((k+1)(k+2)) ĥ_{k+2}(a) + k ĥ_k(a)) / a

    (Stein's lemma: d/da E σ(aG)He_k = E σ'(aG) G He_k, G He_k = He_{k+1} + k He_{k−1}, and
    a E σ'(aG)He_j = E σ(aG)He_{j+1}). k = 0 is q'(a). Set to 0 at a = 0, where every caller multiplies
    it by a zero direction (w/|w| at w = 0).
    """
    a = np.asarray(a, dtype=float)
    k = np.arange(len(h) - 2, dtype=float).reshape((-1,) + (1,) * a.ndim)
    pos = a > 0
    return np.where(pos, (np.sqrt((k + 1.0) * (k + 2.0)) * h[2:] + k * h[:-2]) / np.where(pos, a, 1.0), 0.0)


def cached_kernel_order(problem, centres: list[np.ndarray], order) -> int:
    """order(centres), remembered per centres on the problem: the engine asks for the feature count, then for the
    rows, and field_gradient every tracer step (an order is ~0.1 s of Hermite coefficients at d = 40)."""
    key = tuple(np.asarray(c, dtype=float).tobytes() for c in centres)
    cache = problem.__dict__.setdefault("_kernel_orders", {})
    if key not in cache:
        if len(cache) >= _ORDER_CACHE:
            cache.clear()
        cache[key] = order(centres)
    return cache[key]


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

    def potential_derivative(self, r: np.ndarray) -> np.ndarray:
        """v'(r) = −½ τ₊ q'(τ₊ r) + ½ τ₋ q'(τ₋ r)."""
        tp, tm = self.taus
        dq = [hermite_coefficient_derivatives(hermite_coefficients(self.ramp, t * r, 2), t * r)[0] for t in self.taus]
        return -0.5 * tp * dq[0] + 0.5 * tm * dq[1]

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
        return 2 * (self._centres_order(centres[0]) // 2 + 1)

    def _centres_order(self, r: np.ndarray) -> int:
        """kernel_order(r), computed once per set of radii (the engine asks for the feature count, then the rows)."""
        return cached_kernel_order(self, [r], lambda c: self.kernel_order(c[0]))

    def kernel_features(self, r: np.ndarray) -> np.ndarray:
        """Φ with u(r, r') = Σ_rows Φ(r) Φ(r'): rows sqrt(½ E c^k) ĥ_k(τ± r), k even (docs/math.md §3.1).

        'd_infinity' keeps k = 0 only; 'exact' keeps even k up to the first whose term
        ½ E c^k max ĥ_k² falls below KERNEL_TRUNCATION on these points.
        """
        return self._kernel_rows(r, self._centres_order(r), derivatives=False)[0]

    def kernel_features_and_derivatives(self, r: np.ndarray, kmax: int) -> tuple[np.ndarray, np.ndarray]:
        """The rows of kernel_features for even k ≤ kmax at radii r (n,), and their derivatives dΦ/dr: each (K, n).
        With kmax = kernel_order(centres) these are grid_model(centres)'s rows, at any r."""
        return self._kernel_rows(r, kmax, derivatives=True)

    def _kernel_rows(self, r: np.ndarray, kmax: int, derivatives: bool) -> tuple[np.ndarray, np.ndarray | None]:
        ks = np.arange(0, kmax + 1, 2)
        scale = np.sqrt(0.5 * sphere_cosine_moments(self.params.d, kmax)[ks])
        rows, drows = [], []
        for t in self.taus:
            h = hermite_coefficients(self.ramp, t * r, kmax + 2 if derivatives else kmax)   # ĥ_k does not depend on kmax
            rows.append(scale[:, None] * h[ks])
            if derivatives:
                drows.append(scale[:, None] * t * hermite_coefficient_derivatives(h, t * r)[ks])
        return np.concatenate(rows, axis=0), np.concatenate(drows, axis=0) if derivatives else None

    def grid_model(self, centres: list[np.ndarray]) -> GridModel:
        (r,) = centres
        feats = self.kernel_features(r)
        return GridModel(potential=self.potential(r), features=feats, weights=np.ones(len(feats)),
                         r_sharp=1.0, sq_norm=r * r, self_interaction=self.self_interaction(r),
                         log_volume=(self.params.d - 1) * np.log(r))

    def field_gradient(self, theta: np.ndarray, moments: np.ndarray, centres: list[np.ndarray],
                       alpha: float = 1.0) -> np.ndarray:
        """∇_w [v(r)/α + Σ_k Φ_k(r) moments_k] = ∂_rΨ · w/r at r = |w| (0 at w = 0), with grid_model(centres)'s
        rows (weights 1); moments_k = Σ_c Φ_kc ν_c|cell| with those rows (not the operator's compressed ones)."""
        theta = np.asarray(theta, dtype=float)
        kmax = self._centres_order(centres[0])
        r = np.linalg.norm(theta, axis=1)
        _, drows = self.kernel_features_and_derivatives(r, kmax)
        dpsi = self.potential_derivative(r) / alpha + moments @ drows
        return (dpsi / np.where(r > 0, r, 1.0))[:, None] * theta         # θ = 0 at r = 0

    def initial_cell_averages(self, edges: list[np.ndarray]) -> np.ndarray:
        """r_0 = κ χ_d / sqrt(d): P(r_0 ≤ r) = F_{χ²_d}(d r² / κ²), differenced over each cell."""
        from scipy.special import chdtr  # F_{χ²_d}, what scipy.stats.chi2.cdf calls (scipy.stats adds ~1 s)

        (e,) = edges
        cdf = chdtr(self.params.d, self.params.d * (e / self.kappa) ** 2)
        return np.diff(cdf) / np.diff(e)
