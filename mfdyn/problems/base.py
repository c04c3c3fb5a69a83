"""What a problem gives the engines, and the registry of problems (docs/guide.md, "Problems").

A Problem is the single source of truth: the grid solver sees it through a GridModel (the problem
on cell centres, in the feature form of docs/math.md §1), the particle engine through samplers, the
network's kernel (by name, from the particle engine's registry of networks) and the exact risk R_N.

Every concrete subclass that sets `name` registers itself in PROBLEMS when its class is defined,
so a problem written in user code is available to configs (problem.name) like the built-in ones.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mfdyn.schema import Section


@dataclass(frozen=True)
class GridModel:
    """A problem on the cell centres of a grid with M cells (docs/math.md §1, §3).

    The interaction is held in feature form, U(z_i, z_j) = Σ_k w_k Φ_ki Φ_kj, so that
    Ψ = V + Φᵀ(w ∘ Φρ|cell|) and R = R# + 2⟨V, ρ⟩|cell| + Σ_k w_k (Φρ|cell|)_k²: two products,
    O(K·M), never O(M²). Quadrature rules (docs/math.md §1) and moment reductions (docs/math.md §3) both fit.

    Arrays are flat over cells in C order of the grid shape.
    """

    potential: np.ndarray         # V on cells, (M,)
    features: np.ndarray          # Φ, (K, M)
    weights: np.ndarray           # w, (K,); signed is allowed (U = ½|θ − θ'|² needs it)
    r_sharp: float                # R# = E[y²]
    sq_norm: np.ndarray           # |θ|² on cells, (M,), for the weight decay λ
    self_interaction: np.ndarray  # U(θ, θ) on cells, (M,), for the finite-N term of docs/math.md §1
    log_volume: np.ndarray        # log J on cells, (M,); zeros in full θ-space


PROBLEMS: dict[str, type[Problem]] = {}


class Problem(ABC):
    """A data law, a network σ*, and ρ_0, known to both engines.

    A subclass that defines `name` is registered in PROBLEMS under it (a second class with the
    same name is an error). It declares its [problem] keys as a Section subclass in `Params`.
    """

    name: ClassVar[str]
    Params: ClassVar[type[Section]]   # the problem's [problem] keys (section = "problem")
    # How particles move: a name in the particle engine's network registry (particles.networks):
    # "single_index_ramp" (σ(<w,x>), ramp σ), "neuron" (a σ(w·x + b)), or "potential" (no data:
    # the deterministic gradient flow of Ψ_λ(·; ρ_N), see drift()).
    network: ClassVar[str]
    # Whether the network has an output weight a in θ (σ* = a σ(·)): init.symmetric pairs a with −a.
    has_output_weight: ClassVar[bool] = False
    # Whether there is a network output f_ρ at all (False for the data-free linear flows): α and
    # the centred model act on it.
    has_network: ClassVar[bool] = True
    # What R(ρ) is called in figures and legends: the population risk of a network, or what a problem
    # without one tracks (the linear flows' energy 2∫V dρ + ∫∫U dρ dρ).
    quantity: ClassVar[str] = "risk"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return                     # an abstract family (e.g. the single-index ramp problems)
        known = PROBLEMS.get(cls.name)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise TypeError(f"problem name {cls.name!r} is already registered by {known.__module__}."
                            f"{known.__qualname__}; choose another name")
        PROBLEMS[cls.name] = cls

    def __init__(self, params: Any, init: Any):
        self.params = params
        self.init = init
        self.kappa = init.kappa

    @classmethod
    def check(cls, params: Any, init: Any) -> list[str]:
        """Errors that tie [problem] keys together or to [init] (each 'section.key: …')."""
        if init.mean is not None:
            return [f"init.mean: not used by {cls.name} (its ρ_0 is centred); remove it"]
        return []

    @classmethod
    @abstractmethod
    def coordinates(cls, params: Any) -> tuple[str, ...]:
        """Names of the grid (reduced) coordinates for these parameters."""

    @property
    def coords(self) -> tuple[str, ...]:
        return self.coordinates(self.params)

    @property
    def natural_lower(self) -> tuple[bool, ...]:
        """Per axis: is the lower bound a natural edge (r = 0) rather than a cut of the domain?"""
        return (False,) * len(self.coords)

    @property
    @abstractmethod
    def dim(self) -> int:
        """D, the dimension of one particle θ."""

    @abstractmethod
    def default_bounds(self) -> tuple[tuple[float, float], ...]:
        """Grid domain per reduced coordinate."""

    @abstractmethod
    def feature_count(self, centres: list[np.ndarray]) -> int:
        """K, the number of feature rows grid_model will build on these centres (cheap to call)."""

    @abstractmethod
    def grid_model(self, centres: list[np.ndarray]) -> GridModel:
        """The problem on the cell centres (one 1-D array of centres per axis)."""

    @abstractmethod
    def initial_cell_averages(self, edges: list[np.ndarray]) -> np.ndarray:
        """Exact cell averages of ρ_0 (a density in the reduced coordinates), grid-shaped."""

    @abstractmethod
    def sample_initial(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n particles θ ~ ρ_0 in full θ-space, shape (n, D)."""

    @abstractmethod
    def sample_data(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n samples (x, y): x of shape (n, d_x), y of shape (n,)."""

    @abstractmethod
    def reduce(self, theta: np.ndarray) -> np.ndarray:
        """θ (n, D) → reduced coordinates z (n, len(coords))."""

    def teacher_points(self, alpha: float = 1.0) -> np.ndarray | None:
        """The teacher's neurons as points of the grid (reduced) coordinates, (m, len(coords)), for a problem whose
        target is a network of the student's kind with output scale α; None when the target is no such network."""
        return None

    @abstractmethod
    def exact_risk(self, theta: np.ndarray, alpha: float = 1.0, theta0: np.ndarray | None = None) -> float:
        """The population risk R_α(ρ_N) of the particle network with output scale α, exactly (docs/math.md §1, §4,
        §7); with theta0 (the initial particles) that of the centred model α(ŷ − ŷ_0)."""

    # ------------------------------------------------------------------ the lazy limit (docs/math.md §7)
    # Problems whose input x has a quadrature rule give the tangent kernel and the kernel engine what
    # they need; the others say why not (the message is the one-line refusal users see).
    def x_quadrature(self) -> tuple[np.ndarray, np.ndarray]:
        """The quadrature {x_k, q_k} of the law of x: nodes (K,), weights (K,) summing to 1."""
        raise NotImplementedError(f"{self.name} has no quadrature rule for x, so no tangent kernel on it")

    def regression_function(self) -> np.ndarray:
        """m(x_k) = E[y | x_k] on the quadrature nodes, (K,)."""
        raise NotImplementedError(self.x_quadrature.__doc__)

    @property
    def label_variance(self) -> float:
        """E Var(y | x): the part of the risk no network removes."""
        return 0.0

    def features(self, theta: np.ndarray) -> np.ndarray:
        """σ*(x_k; θ_m) for θ (M, D), shape (K, M)."""
        raise NotImplementedError(f"{self.name} has no x-quadrature features")

    def tangent_features(self, theta: np.ndarray) -> np.ndarray:
        """∇_θ σ*(x_k; θ_m) for θ (M, D), shape (D, K, M)."""
        raise NotImplementedError(f"{self.name} has no x-quadrature features")

    def point_tangent_kernel(self, points: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """H on the x-quadrature for weights ≥ 0 (M,) on points θ (M, D) (e.g. 1/N per particle), (K, K).
        Generic: the tangent features at every point; problems may do it faster."""
        from mfdyn.tangent import tangent_kernel

        return tangent_kernel(self, points, weights)

    def grid_tangent_kernel(self, centres: list[np.ndarray], masses: np.ndarray) -> np.ndarray:
        """H_ρ on the x-quadrature for cell masses ρ_c|cell| (grid-shaped) at the cell centres of a grid in
        θ-space, (K, K). Generic: the tangent features at every centre; problems may do it faster."""
        from mfdyn.tangent import tangent_kernel

        points = np.stack([m.ravel() for m in np.meshgrid(*centres, indexing="ij")], axis=1)
        return tangent_kernel(self, points, masses.ravel())

    def tangent_kernel_exact(self) -> np.ndarray:
        """H_ρ0 on the x-quadrature from the closed-form ρ_0, (K, K)."""
        raise NotImplementedError(f"{self.name} has no closed-form tangent kernel of ρ_0")

    def initial_output_exact(self) -> np.ndarray:
        """f_ρ0(x_k) on the x-quadrature from the closed-form ρ_0, (K,)."""
        raise NotImplementedError(f"{self.name} has no closed-form initial output")

    def network_output(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """ŷ(x) = (1/N) Σ_i σ*(x; θ_i) at samples x, shape (n,): the centred model subtracts it at θ(0)."""
        raise NotImplementedError(f"{self.name} has no network output")

    # ------------------------------------------------------------------ the coupled systems (docs/math.md §8)
    # G and T of docs/math.md §8 need Ψ's gradient at a particle's own position in full θ-space: for G under
    # the empirical law ρ_N itself, for T under the PDE's ρ_t given by its feature moments.
    @classmethod
    def can_couple(cls) -> bool:
        """Whether the problem gives both gradients the coupled systems G and T need (particles.coupled)."""
        return cls.population_gradient is not Problem.population_gradient and cls.field_gradient is not Problem.field_gradient

    def population_gradient(self, theta: np.ndarray, alpha: float = 1.0, theta0: np.ndarray | None = None) -> np.ndarray:
        """∇_θ Ψ^α(θ_i; ρ_N) at every particle, (N, D), with Ψ^α(θ; ρ) = V(θ)/α + ∫U(θ, θ')ρ(dθ') and
        ρ_N = (1/N) Σ_j δ_θj, the j = i term included (the derivative in U's first argument); with theta0 (the
        initial particles, centred model) ρ_N − ρ_N(0) in the interaction. The drift of G (docs/math.md §8)."""
        raise NotImplementedError(f"{self.name} has no exact population gradient ∇Ψ(θ_i; ρ_N)")

    def field_gradient(self, theta: np.ndarray, moments: np.ndarray, centres: list[np.ndarray],
                       alpha: float = 1.0) -> np.ndarray:
        """∇_θ [V(z)/α + Σ_k w_k Φ_k(z) moments_k] at points θ (n, D), z = reduce(θ): the gradient of the grid's
        Ψ^α at each point's own position (not interpolated), in the feature form of grid_model(centres)
        (rows Φ_k, weights w_k), for a law given by its moments_k = Σ_c Φ_kc ν_c|cell| on that grid (ν = ρ_t,
        or ρ_t − ρ_0 for the centred model). The drift of the tracers T (docs/math.md §8)."""
        raise NotImplementedError(f"{self.name} cannot evaluate the grid's Ψ at a tracer's own position")

    def drift(self, theta: np.ndarray) -> np.ndarray:
        """∇_θ Ψ(θ_i; ρ_N) for every particle, (N, D): only for network = "potential"."""
        raise NotImplementedError(f"{self.name} moves its particles by SGD on data, not by a drift")
