"""Test problems with exact answers (docs/math.md §6): Ornstein–Uhlenbeck drift and quadratic interaction.

Both live in full θ-space, D = 1 to 3, with V(θ) = ½ Σ_k K_k θ_k² (diagonal stiffness K). ρ_0 is a
product over axes of one profile, centred at init.mean with scale κ: "gaussian" (N(m, κ²)) or
"bump" (∝ cos⁶(π(θ−m)/(6κ)) on |θ − m| < 3κ: smooth, compactly supported). Noiseless (β = ∞),
the drift is linear, so every particle moves along an exact affine characteristic and the profile
keeps its shape, with a closed-form centre and scale on each axis:

- ornstein_uhlenbeck: no interaction. θ' = −2ξ(K + λ)θ: mean and spread both decay as e^{−2ξ(K_k+λ)t}.
  K = 0 is allowed: with noise that is the heat equation.
- quadratic_interaction: U(θ, θ') = ½|θ − θ'|², so ∇Ψ = Kθ + θ − μ (unit mass). The mean decays as
  e^{−2ξ(K_k+λ)t}, and with K = 0 it is conserved. The spread about it decays as e^{−2ξ(K_k+λ+1)t}.

With noise (β < ∞, Gaussian profile) the law stays Gaussian (docs/math.md §6): the mean as above, and per axis
the variance solves v' = −4ξ c v + 4ξ/β, with c = K + λ (OU) or K + λ + 1 (about the mean), so
v(t) = v∞ + (v0 − v∞) e^{−4ξct}, v∞ = 1/(βc); and v(t) = v0 + 4ξt/β when c = 0 (heat).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from mfdyn.gaussian import ndtr
from mfdyn.problems.base import GridModel, Problem
from mfdyn.schema import Section, choice, rule

PROFILES = choice("gaussian", "bump")
_BUMP_HALF_WIDTH = 3.0      # in units of κ


def _bump_primitive(x: np.ndarray) -> np.ndarray:
    """∫ cos⁶ x dx, from cos⁶ x = (10 + 15 cos 2x + 6 cos 4x + cos 6x)/32."""
    return (10 * x + 7.5 * np.sin(2 * x) + 1.5 * np.sin(4 * x) + np.sin(6 * x) / 6) / 32


def profile_cdf(profile: str, u: np.ndarray) -> np.ndarray:
    """CDF of the standardised profile at u = (θ − centre)/scale."""
    if profile == "gaussian":
        return ndtr(u)
    x = 0.5 * np.pi * np.clip(u, -_BUMP_HALF_WIDTH, _BUMP_HALF_WIDTH) / _BUMP_HALF_WIDTH
    lo, hi = _bump_primitive(-0.5 * np.pi), _bump_primitive(0.5 * np.pi)
    return (_bump_primitive(x) - lo) / (hi - lo)


def sample_profile(profile: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Draws of the standardised profile (rejection sampling for the bump; acceptance 5/16)."""
    if profile == "gaussian":
        return rng.standard_normal(shape)
    out = np.empty(int(np.prod(shape)))
    filled = 0
    while filled < out.size:
        u = rng.uniform(-_BUMP_HALF_WIDTH, _BUMP_HALF_WIDTH, 4 * (out.size - filled) + 16)
        keep = u[rng.random(u.size) < np.cos(0.5 * np.pi * u / _BUMP_HALF_WIDTH) ** 6]
        take = min(keep.size, out.size - filled)
        out[filled:filled + take] = keep[:take]
        filled += take
    return out.reshape(shape)


def _stiffness_rule(minimum: float, words: str):
    return rule((1.0,), "floats", lambda v: 1 <= len(v) <= 3 and all(x >= minimum and np.isfinite(x) for x in v),
                f"with 1 to 3 entries (one per θ coordinate), each {words}", "diagonal of K in V = ½ θᵀKθ")


@dataclass(frozen=True)
class OUParams(Section):
    """[problem] keys of ornstein_uhlenbeck."""

    section: ClassVar[str] = "problem"

    stiffness: tuple[float, ...] = _stiffness_rule(0.0, "≥ 0")
    profile: str = rule("gaussian", "str", *PROFILES, "shape of ρ_0 on each axis")


@dataclass(frozen=True)
class QuadraticParams(Section):
    """[problem] keys of quadratic_interaction."""

    section: ClassVar[str] = "problem"

    stiffness: tuple[float, ...] = _stiffness_rule(0.0, "≥ 0")
    profile: str = rule("gaussian", "str", *PROFILES, "shape of ρ_0 on each axis")


class _GaussianFlow(Problem):
    """What both problems share: product-profile ρ_0, diagonal K, coordinates theta1..thetaD, exact solution."""

    network = "potential"
    has_network = False
    quantity = "energy"          # R = 2∫V dρ + ∫∫U dρ dρ: no network, so no risk
    # extra contraction rate of the spread about the mean (0: OU; 1: quadratic interaction)
    spread_rate: float = 0.0

    @classmethod
    def check(cls, params, init) -> list[str]:
        if init.mean is not None and len(init.mean) != len(params.stiffness):
            return [f"init.mean: must have {len(params.stiffness)} entries (one per problem.stiffness), "
                    f"got {len(init.mean)}"]
        return []

    @classmethod
    def coordinates(cls, params) -> tuple[str, ...]:
        return tuple(f"theta{k + 1}" for k in range(len(params.stiffness)))

    @property
    def dim(self) -> int:
        return len(self.params.stiffness)

    @property
    def stiffness(self) -> np.ndarray:
        return np.array(self.params.stiffness)

    @property
    def mean0(self) -> np.ndarray:
        return np.zeros(self.dim) if self.init.mean is None else np.array(self.init.mean)

    def default_bounds(self) -> tuple[tuple[float, float], ...]:
        """ρ_0's support (the bump) or 6κ (the Gaussian) about the centre, and 0: the flow contracts toward 0."""
        reach = (_BUMP_HALF_WIDTH + 0.2 if self.params.profile == "bump" else 6.0) * self.kappa
        return tuple((min(m, 0.0) - reach, max(m, 0.0) + reach) for m in self.mean0)

    def affine_law(self, t: float, xi: float, lam: float, beta: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
        """Centre and scale per axis of the exact ρ_t; the profile's shape does not change.
        With noise (β < ∞, Gaussian profile only) the scale is the standard deviation (module docstring)."""
        rate = 2.0 * xi * (self.stiffness + lam)
        centre = self.mean0 * np.exp(-rate * t)
        c = self.stiffness + lam + self.spread_rate
        if np.isinf(beta):
            return centre, self.kappa * np.exp(-2.0 * xi * c * t)
        if self.params.profile != "gaussian":
            raise ValueError("with noise only the Gaussian profile keeps its shape; set problem.profile = 'gaussian'")
        v0 = self.kappa**2
        with np.errstate(divide="ignore", invalid="ignore"):
            v_inf = 1.0 / (beta * c)
            v = np.where(c > 0, v_inf + (v0 - v_inf) * np.exp(-4.0 * xi * c * t), v0 + 4.0 * xi * t / beta)
        return centre, np.sqrt(v)

    def exact_cell_averages(self, edges: list[np.ndarray], t: float, xi: float, lam: float,
                            beta: float = np.inf) -> np.ndarray:
        """Exact cell averages of ρ_t: a product over axes of profile-CDF differences over widths."""
        centre, scale = self.affine_law(t, xi, lam, beta)
        out = np.ones(())
        for e, m, s in zip(edges, centre, scale):
            out = np.multiply.outer(out, np.diff(profile_cdf(self.params.profile, (e - m) / s)) / np.diff(e))
        return out

    def initial_cell_averages(self, edges: list[np.ndarray]) -> np.ndarray:
        return self.exact_cell_averages(edges, 0.0, 1.0, 0.0)

    def potential(self, theta: np.ndarray) -> np.ndarray:
        """V(θ) = ½ Σ K_k θ_k², θ of shape (M, D)."""
        return 0.5 * (theta**2) @ self.stiffness

    def sample_initial(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.mean0 + self.kappa * sample_profile(self.params.profile, (n, self.dim), rng)

    def sample_data(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError(f"{self.name} has no data: its particles follow drift()")

    def reduce(self, theta: np.ndarray) -> np.ndarray:
        return np.array(theta, copy=True)


class OrnsteinUhlenbeck(_GaussianFlow):
    """V = ½ θᵀKθ, no interaction (docs/math.md §6): linear contraction toward 0."""

    name = "ornstein_uhlenbeck"
    Params = OUParams

    def feature_count(self, centres: list[np.ndarray]) -> int:
        return 0

    def grid_model(self, centres: list[np.ndarray]) -> GridModel:
        theta = np.stack(np.meshgrid(*centres, indexing="ij"), axis=-1).reshape(-1, len(centres))
        m = len(theta)
        return GridModel(potential=self.potential(theta), features=np.zeros((0, m)), weights=np.zeros(0),
                         r_sharp=0.0, sq_norm=(theta**2).sum(axis=1), self_interaction=np.zeros(m),
                         log_volume=np.zeros(m))

    def exact_risk(self, theta: np.ndarray, alpha: float = 1.0, theta0: np.ndarray | None = None) -> float:
        """R_N = 2 ∫V dρ_N (no interaction, R# = 0)."""
        return float(2.0 * self.potential(theta).mean())

    def drift(self, theta: np.ndarray) -> np.ndarray:
        return theta * self.stiffness

    def population_gradient(self, theta: np.ndarray, alpha: float = 1.0, theta0: np.ndarray | None = None) -> np.ndarray:
        """∇V = Kθ: no interaction, so ρ_N plays no part (docs/math.md §8; α = 1, not centred)."""
        return self.drift(theta)

    def field_gradient(self, theta: np.ndarray, moments: np.ndarray, centres: list[np.ndarray] | None = None,
                       alpha: float = 1.0) -> np.ndarray:
        """∇V = Kθ (there are no features)."""
        return self.drift(theta)


class QuadraticInteraction(_GaussianFlow):
    """U(θ, θ') = ½|θ − θ'|², plus V = ½ θᵀKθ (K = 0 allowed) (docs/math.md §6)."""

    name = "quadratic_interaction"
    Params = QuadraticParams
    spread_rate = 1.0

    def feature_count(self, centres: list[np.ndarray]) -> int:
        return 2 + len(centres)

    def grid_model(self, centres: list[np.ndarray]) -> GridModel:
        """U in feature form: with s = ½|θ|², ½|θ−θ'|² = ½(1+s)(1+s') − ½(1−s)(1−s') − θ·θ'."""
        theta = np.stack(np.meshgrid(*centres, indexing="ij"), axis=-1).reshape(-1, len(centres))
        s = 0.5 * (theta**2).sum(axis=1)
        features = np.vstack([1.0 + s, 1.0 - s, theta.T])
        weights = np.concatenate([[0.5, -0.5], -np.ones(len(centres))])
        return GridModel(potential=self.potential(theta), features=features, weights=weights, r_sharp=0.0,
                         sq_norm=2.0 * s, self_interaction=np.zeros(len(theta)), log_volume=np.zeros(len(theta)))

    def exact_risk(self, theta: np.ndarray, alpha: float = 1.0, theta0: np.ndarray | None = None) -> float:
        """R_N = 2 ∫V dρ_N + (1/N²) Σ_ij ½|θ_i − θ_j|² = 2 mean V + mean |θ|² − |mean θ|²."""
        centred = theta - theta.mean(axis=0)
        return float(2.0 * self.potential(theta).mean() + (centred**2).sum(axis=1).mean())

    def drift(self, theta: np.ndarray) -> np.ndarray:
        return theta * self.stiffness + theta - theta.mean(axis=0)

    def population_gradient(self, theta: np.ndarray, alpha: float = 1.0, theta0: np.ndarray | None = None) -> np.ndarray:
        """∇Ψ(θ_i; ρ_N) = Kθ_i + θ_i − mean θ: the drift the particle engine already follows (docs/math.md §8)."""
        return self.drift(theta)

    def field_gradient(self, theta: np.ndarray, moments: np.ndarray, centres: list[np.ndarray] | None = None,
                       alpha: float = 1.0) -> np.ndarray:
        """∇[V + ½(1+s)g_0 − ½(1−s)g_1 − θ·g_θ] = Kθ + ½(g_0 + g_1)θ − g_θ for the moments
        g = (∫(1+s), ∫(1−s), ∫θ) of grid_model's features (s = ½|θ|²; ½(g_0 + g_1) is the mass)."""
        return theta * self.stiffness + 0.5 * (moments[0] + moments[1]) * theta - moments[2:]
