"""What the two MMN problems share (docs/math.md §3.1, §3.2, §4): a single-index ramp network on two classes.

y = ±1 with probability ½, and given y, x = s_y ∘ g with g ~ N(0, I_d) and a per-coordinate class
scale s_y. The network is ŷ(x) = (1/N) Σ_i σ(<w_i, x>) with the ramp σ, and ρ_0 = N(0, κ²/d I_d).
Given y, <w, x> ~ N(0, τ_y(w)²) with τ_y(w) = |s_y ∘ w|, and two neurons have covariance
<s_y ∘ w_i, s_y ∘ w_j>. So V, U and the exact R_N are closed forms in these (docs/math.md §4).
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from mfdyn.gaussian import (
    Ramp,
    npdf,
    q,
)
from mfdyn.pair_kernel import pair_energy, pair_gradient
from mfdyn.problems.base import Problem
from mfdyn.schema import Section, finite, rule

CLASSES = (1.0, -1.0)        # y, each with probability ½


@dataclass(frozen=True)
class RampParams(Section):
    """[problem] keys of the ramp σ (docs/math.md §3.1 defaults), for every problem that can use it."""

    section: ClassVar[str] = "problem"

    t1: float = rule(0.5, "float", finite, "finite", "ramp: start of the linear part")
    t2: float = rule(1.5, "float", finite, "finite", "ramp: end of the linear part")
    s1: float = rule(-2.5, "float", finite, "finite", "ramp: value below t1")
    s2: float = rule(7.5, "float", finite, "finite", "ramp: value above t2")


def check_ramp(params: RampParams) -> list[str]:
    """The ramp needs t1 < t2."""
    return [] if params.t2 > params.t1 else [f"problem.t2: must be > problem.t1 = {params.t1}, got {params.t2}"]


@dataclass(frozen=True)
class SingleIndexParams(RampParams):
    """[problem] keys common to the MMN problems."""

    d: int = rule(40, "int", lambda v: v >= 2, "≥ 2", "input dimension d")
    delta: float = rule(0.8, "float", lambda v: 0 < v < 1, "in (0, 1)", "class contrast Δ")


class SingleIndexRamp(Problem):
    """Base of the MMN problems: samplers and the exact risk of the particle network."""

    network = "single_index_ramp"

    def __init__(self, params: SingleIndexParams, init):
        super().__init__(params, init)
        self.ramp = Ramp(params.t1, params.t2, params.s1, params.s2)

    @classmethod
    def check(cls, params: SingleIndexParams, init) -> list[str]:
        return super().check(params, init) + check_ramp(params)

    @property
    def dim(self) -> int:
        return self.params.d

    @abstractmethod
    def class_scale(self, y: float) -> np.ndarray:
        """s_y, shape (d,): x | y = s_y ∘ g."""

    def sample_initial(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return (self.kappa / np.sqrt(self.params.d)) * rng.standard_normal((n, self.params.d))

    def sample_data(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = np.where(rng.random(n) < 0.5, CLASSES[0], CLASSES[1])
        scale = np.where((y == CLASSES[0])[:, None], self.class_scale(CLASSES[0]), self.class_scale(CLASSES[1]))
        return scale * rng.standard_normal((n, self.params.d)), y

    def network_output(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """ŷ(x) = (1/N) Σ_i σ(<w_i, x>) at the samples x (n, d), shape (n,)."""
        return self.ramp(x @ theta.T).mean(axis=1)

    def exact_risk(self, theta: np.ndarray, alpha: float = 1.0, theta0: np.ndarray | None = None) -> float:
        """R_α(ρ_N) = 1 + Σ_y ½ [ −2yα Σ_i c_i q(τ_yi) + α² Σ_ij c_i c_j E σ(τ_yi X)σ(τ_yj Y) ] (docs/math.md §1,
        §4, §7), with c_i = 1/N; for the centred model (theta0: the initial particles) the particles of
        θ_0 join with c = −1/N, so that the network is ŷ − ŷ_0.

        The pair term Σ_y ½ Σ_ij c_i c_j E σσ is mfdyn.pair_kernel.pair_energy (Mehler's series cut where a bound
        on its tail is below 1e−13 max σ², closed forms through the bivariate normal for the pairs that would
        need more than 256 terms, the c = 1 closed form on the diagonal).
        """
        theta = np.ascontiguousarray(theta, dtype=float)
        n = len(theta)
        points, coeff = theta, np.full(n, 1.0 / n)
        if theta0 is not None:
            points = np.concatenate([theta, np.asarray(theta0, dtype=float)])
            coeff = np.r_[coeff, np.full(n, -1.0 / n)]
        scales = np.stack([self.class_scale(y) for y in CLASSES])
        r = self.ramp
        energy = pair_energy(points, coeff, scales, np.full(len(CLASSES), 0.5), r.t1, r.t2, r.s1, r.s2)
        linear = sum(y * (coeff @ q(r, np.linalg.norm(points * scale, axis=1))) for y, scale in zip(CLASSES, scales))
        return float(1.0 - alpha * linear + alpha**2 * energy)

    def population_gradient(self, theta: np.ndarray, alpha: float = 1.0, theta0: np.ndarray | None = None) -> np.ndarray:
        """∇_w Ψ^α(w_i; ρ_N) at every particle, (N, d) (docs/math.md §4, §8): Ψ^α = V/α + ∫U d(ρ_N [− ρ_N(0)]),
        V(w) = −½ Σ_y y q(τ_y(w)), U(w, w') = ½ Σ_y E σ(τ_y X)σ(τ'_y Y) at corr c_y(w, w'), the j = i term being
        ∇_1U(w, w_i) at w = w_i; theta0 (the initial particles) for the centred model.

        By Stein's lemma on x = s_y ∘ g, ∇V(w) = −½ Σ_y y E[σ''(τ_y X)] s_y² ∘ w with E σ''(τX) = (m/τ)[φ(t1/τ) −
        φ(t2/τ)] (0 at τ = 0); the pair sums come from mfdyn.pair_kernel.pair_gradient (Mehler for |c| ≤ 0.5,
        closed forms through the bivariate normal above, the c = 1 closed form for j = i).
        """
        theta = np.ascontiguousarray(theta, dtype=float)
        n = len(theta)
        scales = np.stack([self.class_scale(y) for y in CLASSES])
        points, weights = theta, np.full(n, 1.0 / n)
        if theta0 is not None:
            points = np.concatenate([theta, np.asarray(theta0, dtype=float)])
            weights = np.r_[weights, np.full(n, -1.0 / n)]
        r = self.ramp
        grad, _ = pair_gradient(points, weights, scales, np.full(len(CLASSES), 0.5), r.t1, r.t2, r.s1, r.s2, rows=n)
        for y, scale in zip(CLASSES, scales):
            tau = np.linalg.norm(theta * scale, axis=1)
            safe = np.where(tau > 0, tau, 1.0)
            curvature = np.where(tau > 0, (r.slope / safe) * (npdf(r.t1 / safe) - npdf(r.t2 / safe)), 0.0)
            grad -= (0.5 * y / alpha) * curvature[:, None] * scale**2 * theta
        return grad
