"""MMN 2018 example 2: anisotropic Gaussians, reduced to z = (r1, r2) (docs/math.md §3.2).

x | y ~ N(0, diag((1 + yΔ)² I_{s0}, I_{d−s0})): the classes differ only in the s0-dimensional
subspace S. With r1 = |P_S w| and r2 = |P_S⊥ w|, given y, <w, x> ~ N(0, τ_y²) with
τ± = sqrt((1 ± Δ)² r1² + r2²). The particles run in full d-dimensional w-space.

The kernel. ρ keeps the O(s0) × O(d − s0) symmetry, so the directions of P_S w and P_S⊥ w are uniform
and independent. Given y, two neurons' pre-activations have correlation c_y = A c₁ + B c₂, with
A = (1 + yΔ)² r1 r1'/(τ τ'), B = r2 r2'/(τ τ'), and c₁, c₂ independent sphere cosines in S and S⊥.
Averaging Mehler's series (docs/math.md §4) over them gives the exact reduced kernel in any d:

    u(z, z') = ½ Σ_y Σ_{k even} Σ_{j even ≤ k} C(k, j) E c₁^j E c₂^{k−j} ĥ_k(τ_y) ĥ_k(τ_y')
               × ((1+yΔ)² r1 r1')^j (r2 r2')^{k−j} / (τ_y τ_y')^k,

a sum of products φ(z)φ(z') with nonnegative weights: feature form again, truncated like u_d
(docs/math.md §3.1). Only k = 0 survives as s0, d − s0 → ∞. That is the d = ∞ kernel of docs/math.md §3.2,
u = ½ q(τ₊)q(τ₊') + ½ q(τ₋)q(τ₋'), kept as reduction = "d_infinity". At d = 40, s0 = 10 the two
differ by far more than the SGD–PDE gap: see tests/test_problem_anisotropic.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfdyn.gaussian import hermite_coefficients, q, ramp_second_moment, sphere_cosine_moments
from mfdyn.problems.base import GridModel
from mfdyn.problems.mmn_isotropic import cached_kernel_order, hermite_coefficient_derivatives
from mfdyn.problems.single_index import SingleIndexParams, SingleIndexRamp
from mfdyn.schema import choice, rule

# The kernel is truncated at the first even k whose diagonal term is below this on the grid. That bound
# decays only like k^-3.3 (at r2 = 0 the correlation is a bare cosine in S); off the diagonal the terms
# fall geometrically, and the grid operator compresses the rest (pde.potential.compress_features).
KERNEL_TRUNCATION = 1e-7
_KMAX = 60
_PROBE = 64          # probe points per axis for the truncation order


@dataclass(frozen=True)
class MMNAnisotropicParams(SingleIndexParams):
    """[problem] keys of mmn_anisotropic (Δ defaults to 0.3: the neurons must align with S)."""

    delta: float = rule(0.3, "float", lambda v: 0 < v < 1, "in (0, 1)", "class contrast Δ inside S")
    s0: int = rule(10, "int", lambda v: v >= 1, "≥ 1 and < problem.d", "dimension of the signal subspace S")
    reduction: str = rule("exact", "str", *choice("exact", "d_infinity"),
                          "'exact': the finite-d kernel; 'd_infinity': its k = 0 term (docs/math.md §3.2)")


class MMNAnisotropic(SingleIndexRamp):
    """The second MMN example on the (r1, r2) grid; J = r1^{s0−1} r2^{d−s0−1}."""

    name = "mmn_anisotropic"
    Params = MMNAnisotropicParams
    natural_lower = (True, True)

    @classmethod
    def check(cls, params: MMNAnisotropicParams, init) -> list[str]:
        errors = super().check(params, init)
        if not params.s0 < params.d:
            errors.append(f"problem.s0: must be < problem.d = {params.d}, got {params.s0}")
        return errors

    @classmethod
    def coordinates(cls, params: MMNAnisotropicParams) -> tuple[str, ...]:
        return ("r1", "r2")

    def class_scale(self, y: float) -> np.ndarray:
        scale = np.ones(self.params.d)
        scale[: self.params.s0] = 1.0 + y * self.params.delta
        return scale

    def reduce(self, theta: np.ndarray) -> np.ndarray:
        """(r1, r2) = (|P_S w|, |P_S⊥ w|), shape (n, 2)."""
        s0 = self.params.s0
        return np.stack([np.linalg.norm(theta[:, :s0], axis=1), np.linalg.norm(theta[:, s0:], axis=1)], axis=1)

    def default_bounds(self) -> tuple[tuple[float, float], ...]:
        return ((0.0, 2.5), (0.0, 2.0))

    def taus(self, r1: np.ndarray, r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """τ± = sqrt((1 ± Δ)² r1² + r2²)."""
        delta = self.params.delta
        return tuple(np.sqrt((1.0 + y * delta) ** 2 * r1**2 + r2**2) for y in (1.0, -1.0))

    def potential(self, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
        """V(z) = −½ q(τ₊) + ½ q(τ₋)."""
        tp, tm = self.taus(r1, r2)
        return -0.5 * q(self.ramp, tp) + 0.5 * q(self.ramp, tm)

    def potential_derivatives(self, r1: np.ndarray, r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(∂V/∂r1, ∂V/∂r2), with ∂τ_y/∂r1 = (1+yΔ)² r1/τ_y and ∂τ_y/∂r2 = r2/τ_y."""
        delta = self.params.delta
        d1, d2 = np.zeros(np.shape(r1)), np.zeros(np.shape(r1))
        for y, tau in zip((1.0, -1.0), self.taus(r1, r2)):
            dq = hermite_coefficient_derivatives(hermite_coefficients(self.ramp, tau, 2), tau)[0]
            safe = np.where(tau > 0, tau, 1.0)
            d1 = d1 - 0.5 * y * dq * (1.0 + y * delta) ** 2 * r1 / safe
            d2 = d2 - 0.5 * y * dq * r2 / safe
        return d1, d2

    def kernel_features(self, r1: np.ndarray, r2: np.ndarray, kmax: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows φ_{y,k,j}(z) for both classes, even k ≤ kmax, even j ≤ k (see the module docstring),
        and the order k of each row."""
        rows, orders, _ = self._kernel_rows(r1, r2, kmax, derivatives=False)
        return rows, orders

    def kernel_features_and_derivatives(self, r1: np.ndarray, r2: np.ndarray,
                                        kmax: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows of kernel_features(r1, r2, kmax) and their derivatives ∂φ/∂r1, ∂φ/∂r2, each (K, n).
        With kmax = kernel_order(centres) these are grid_model(centres)'s rows, at any z."""
        rows, _, (d1, d2) = self._kernel_rows(r1, r2, kmax, derivatives=True)
        return rows, d1, d2

    def _kernel_rows(self, r1: np.ndarray, r2: np.ndarray, kmax: int, derivatives: bool):
        """Rows, orders and, with derivatives, (∂/∂r1, ∂/∂r2) of the rows, by the product rule on
        φ = c ĥ_k(τ) a^j b^{k−j}. With a = (1+yΔ)r1/τ, b = r2/τ (a² + b² = 1):
        ∂τ = ((1+yΔ)a, b), ∂a = ((1+yΔ)b²/τ, −ab/τ), ∂b = (−(1+yΔ)ab/τ, a²/τ)."""
        from scipy.special import comb  # scipy.special is heavy: imported on first use

        d, s0, delta = self.params.d, self.params.s0, self.params.delta
        m1, m2 = sphere_cosine_moments(s0, kmax), sphere_cosine_moments(d - s0, kmax)
        top = kmax + 2 if derivatives else kmax
        rows, orders, d1, d2 = [], [], [], []
        for y, tau in zip((1.0, -1.0), self.taus(r1, r2)):
            h = hermite_coefficients(self.ramp, tau, top)      # ĥ_k does not depend on the top order
            safe = np.where(tau > 0, tau, 1.0)
            s = 1.0 + y * delta
            a, b = s * r1 / safe, r2 / safe          # (1+yΔ) r1/τ and r2/τ, each ≤ 1/(1−Δ)
            pa = np.stack([a**n for n in range(top + 1)])      # a^n, b^n
            pb = np.stack([b**n for n in range(top + 1)])
            if derivatives:
                dh = hermite_coefficient_derivatives(h, tau)
            for k in range(0, kmax + 1, 2):
                j = np.arange(0, k + 1, 2)
                c = np.array([np.sqrt(0.5 * comb(k, i) * m1[i] * m2[k - i]) for i in j]).reshape((-1,) + (1,) * tau.ndim)
                rows.append(c * h[k] * pa[j] * pb[k - j])
                orders += [k] * len(j)
                if derivatives:
                    jj = j.reshape(c.shape)
                    p = pa[j] * pb[k - j]
                    # j a^{j−1} and (k−j) b^{k−j−1}: the index wraps at j = 0 (j = k), where the factor is 0
                    dp1 = s * (jj * pa[j - 1] * pb[k - j + 2] - (k - jj) * pa[j + 1] * pb[k - j]) / safe
                    dp2 = ((k - jj) * pa[j + 2] * pb[k - j - 1] - jj * pa[j] * pb[k - j + 1]) / safe
                    d1.append(c * (dh[k] * s * a * p + h[k] * dp1))
                    d2.append(c * (dh[k] * b * p + h[k] * dp2))
        out = np.concatenate(rows), np.array(orders)
        return (*out, (np.concatenate(d1), np.concatenate(d2)) if derivatives else None)

    def kernel_order(self, centres: list[np.ndarray]) -> int:
        """Largest even k kept: 0 for 'd_infinity'; for 'exact', the last even k before the first whose
        diagonal term Σ_{y,j} φ_{y,k,j}(z)² falls below KERNEL_TRUNCATION on a probe of the grid."""
        if self.params.reduction == "d_infinity":
            return 0
        probes = [np.linspace(c.min(), c.max(), min(c.size, _PROBE)) for c in centres]
        r1, r2 = (m.ravel() for m in np.meshgrid(*probes, indexing="ij"))
        feats, orders = self.kernel_features(r1, r2, _KMAX)
        for k in range(2, _KMAX + 1, 2):
            if np.sum(feats[orders == k] ** 2, axis=0).max() < KERNEL_TRUNCATION:
                return k - 2
        return _KMAX

    def feature_count(self, centres: list[np.ndarray]) -> int:
        return 2 * sum(k // 2 + 1 for k in range(0, cached_kernel_order(self, centres, self.kernel_order) + 1, 2))

    def grid_model(self, centres: list[np.ndarray]) -> GridModel:
        r1, r2 = (m.ravel() for m in np.meshgrid(*centres, indexing="ij"))
        tp, tm = self.taus(r1, r2)
        features, _ = self.kernel_features(r1, r2, cached_kernel_order(self, centres, self.kernel_order))
        d, s0 = self.params.d, self.params.s0
        return GridModel(potential=self.potential(r1, r2), features=features,
                         weights=np.ones(len(features)), r_sharp=1.0, sq_norm=r1**2 + r2**2,
                         self_interaction=0.5 * (ramp_second_moment(self.ramp, tp) + ramp_second_moment(self.ramp, tm)),
                         log_volume=(s0 - 1) * np.log(r1) + (d - s0 - 1) * np.log(r2))

    def field_gradient(self, theta: np.ndarray, moments: np.ndarray, centres: list[np.ndarray],
                       alpha: float = 1.0) -> np.ndarray:
        """∇_w [V(z)/α + Σ_k φ_k(z) moments_k] = ∂_{r1}Ψ · P_S w/r1 + ∂_{r2}Ψ · P_S⊥ w/r2 at z = reduce(w) (a term
        is 0 where its r is 0), with grid_model(centres)'s rows (weights 1); moments_k = Σ_c φ_kc ν_c|cell| with
        those rows (not the operator's compressed ones)."""
        theta = np.asarray(theta, dtype=float)
        s0 = self.params.s0
        kmax = cached_kernel_order(self, centres, self.kernel_order)
        r1, r2 = self.reduce(theta).T
        _, d1, d2 = self.kernel_features_and_derivatives(r1, r2, kmax)
        v1, v2 = self.potential_derivatives(r1, r2)
        g1, g2 = v1 / alpha + moments @ d1, v2 / alpha + moments @ d2
        out = np.empty_like(theta)
        out[:, :s0] = (g1 / np.where(r1 > 0, r1, 1.0))[:, None] * theta[:, :s0]
        out[:, s0:] = (g2 / np.where(r2 > 0, r2, 1.0))[:, None] * theta[:, s0:]
        return out

    def initial_cell_averages(self, edges: list[np.ndarray]) -> np.ndarray:
        """r1 = κ χ_{s0}/√d and r2 = κ χ_{d−s0}/√d, independent: a product of χ CDF differences."""
        from scipy.special import chdtr  # F_{χ²_k}, what scipy.stats.chi2.cdf calls (scipy.stats adds ~1 s)

        d, s0 = self.params.d, self.params.s0
        e1, e2 = edges
        p1 = np.diff(chdtr(s0, d * (e1 / self.kappa) ** 2)) / np.diff(e1)
        p2 = np.diff(chdtr(d - s0, d * (e2 / self.kappa) ** 2)) / np.diff(e2)
        return np.multiply.outer(p1, p2)
