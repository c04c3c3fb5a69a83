"""Teacher–student in full low-dimensional θ-space, no reduction (docs/math.md §3.3, §1).

x ∈ R (standard Gaussian or uniform on [−1, 1]); the student neuron is σ*(x; θ) = a σ(w x + b) with
θ = (a, w) (D = 2) or (a, w, b) (D = 3); the target y = f*(x) + noise·g is a teacher network
f*(x) = Σ_j a_j σ(w_j x + b_j) given as a list of neurons, or a named function.

On the grid, Ψ comes from a quadrature rule {x_k, q_k} for the law of x (Gauss–Hermite or
Gauss–Legendre): Φ_kc = σ*(x_k; θ_c), V_c = −Σ_k q_k Φ_kc f*(x_k), weights q_k, and
R# = Σ_k q_k f*(x_k)² + noise² (docs/math.md §1). The particle risk R_N uses the same rule, so that both
engines measure the same functional; for smooth σ it is exact to round-off at the default 128
nodes, while for relu and ramp the kinks limit it to about 1e−5.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss

from mfdyn.activations import CODES, sigma, sigma_prime
from mfdyn.gaussian import ndtr
from mfdyn.problems.base import GridModel, Problem
from mfdyn.problems.neuron_gradient import activations_at_nodes, network_at_nodes, neuron_field_gradient
from mfdyn.problems.single_index import RampParams, check_ramp
from mfdyn.schema import choice, rule

TARGETS = {"teacher": None, "sin": np.sin, "abs": np.abs, "square": np.square, "tanh": np.tanh}


@dataclass(frozen=True)
class TeacherStudentParams(RampParams):
    """[problem] keys of teacher_student."""

    parameters: str = rule("aw", "str", *choice("aw", "awb"), "θ = (a, w) or (a, w, b)")
    activation: str = rule("tanh", "str", *choice(*CODES), "σ")
    x_law: str = rule("gaussian", "str", *choice("gaussian", "uniform"), "x ~ N(0, 1) or U[−1, 1]")
    target: str = rule("teacher", "str", *choice(*TARGETS), "f*: the teacher network, or a named function")
    teacher: tuple = rule(((1.0, 2.0, 0.0),), "teacher", lambda v: len(v) >= 1, "",
                          "teacher neurons [[a, w] or [a, w, b], …]: f*(x) = Σ a σ(w x + b)")
    noise: float = rule(0.0, "float", lambda v: 0 <= v < np.inf, "≥ 0", "label noise standard deviation")
    nodes: int = rule(128, "int", lambda v: 4 <= v <= 4096, "in [4, 4096]", "quadrature nodes in x")


class TeacherStudent(Problem):
    """A network a σ(w x + b) of scalar x learning a teacher; grid and particles in full θ-space."""

    name = "teacher_student"
    Params = TeacherStudentParams
    network = "neuron"
    has_output_weight = True

    def __init__(self, params: TeacherStudentParams, init):
        super().__init__(params, init)
        self.ramp = (params.t1, params.t2, params.s1, params.s2)
        self.code = CODES[params.activation]
        if params.x_law == "gaussian":
            nodes, weights = hermegauss(params.nodes)
            self.x_nodes, self.x_weights = nodes, weights / weights.sum()
        else:
            nodes, weights = leggauss(params.nodes)
            self.x_nodes, self.x_weights = nodes, weights / 2.0
        self._reference: tuple[np.ndarray, np.ndarray] | None = None    # (θ(0), ŷ_0) of the centred model's G

    @classmethod
    def check(cls, params: TeacherStudentParams, init) -> list[str]:
        errors = []
        dim = len(params.parameters)
        if init.mean is not None and len(init.mean) != dim:
            errors.append(f"init.mean: must have {dim} entries ({', '.join(params.parameters)}), got {len(init.mean)}")
        return errors + (check_ramp(params) if params.activation == "ramp" else [])

    @classmethod
    def coordinates(cls, params: TeacherStudentParams) -> tuple[str, ...]:
        return tuple(params.parameters)

    @property
    def dim(self) -> int:
        return len(self.params.parameters)

    @property
    def mean0(self) -> np.ndarray:
        return np.zeros(self.dim) if self.init.mean is None else np.array(self.init.mean)

    def target(self, x: np.ndarray) -> np.ndarray:
        """f*(x)."""
        if self.params.target != "teacher":
            return TARGETS[self.params.target](x)
        total = np.zeros_like(x, dtype=float)
        for neuron in self.params.teacher:
            a, w, b = (list(neuron) + [0.0])[:3]
            total += a * sigma(self.params.activation, w * x + b, self.ramp)
        return total

    def default_bounds(self) -> tuple[tuple[float, float], ...]:
        """ρ_0 to 4κ (and its mirror image a ↦ −a with init.symmetric), and the teacher's neurons (when the
        target is one) with a margin of 1."""
        bounds = []
        for axis in range(self.dim):
            centre = abs(self.mean0[axis]) if axis == 0 and self.init.symmetric else self.mean0[axis]
            lo = (-centre if axis == 0 and self.init.symmetric else centre) - 4 * self.kappa
            hi = centre + 4 * self.kappa
            if self.params.target == "teacher":
                coords = [(list(n) + [0.0])[axis] for n in self.params.teacher]
                lo, hi = min(lo, min(coords) - 1.0), max(hi, max(coords) + 1.0)
            bounds.append((lo, hi))
        return tuple(bounds)

    def features(self, theta: np.ndarray) -> np.ndarray:
        """Φ_kc = a_c σ(w_c x_k + b_c) for θ (M, D); shape (K, M)."""
        a, w = theta[:, 0], theta[:, 1]
        b = theta[:, 2] if self.dim == 3 else 0.0
        return a * sigma(self.params.activation, np.outer(self.x_nodes, w) + b, self.ramp)

    def feature_count(self, centres: list[np.ndarray]) -> int:
        return self.params.nodes

    def grid_model(self, centres: list[np.ndarray]) -> GridModel:
        theta = np.stack(np.meshgrid(*centres, indexing="ij"), axis=-1).reshape(-1, len(centres))
        phi = self.features(theta)
        m = self.target(self.x_nodes)
        q = self.x_weights
        return GridModel(potential=-(q * m) @ phi, features=phi, weights=q,
                         r_sharp=float(q @ m**2 + self.params.noise**2), sq_norm=(theta**2).sum(axis=1),
                         self_interaction=q @ phi**2, log_volume=np.zeros(len(theta)))

    def _gaussian_cell_averages(self, edges: list[np.ndarray], mean: np.ndarray) -> np.ndarray:
        out = np.ones(())
        for e, m in zip(edges, mean):
            out = np.multiply.outer(out, np.diff(ndtr((e - m) / self.kappa)) / np.diff(e))
        return out

    def initial_cell_averages(self, edges: list[np.ndarray]) -> np.ndarray:
        """ρ_0 = N(mean, κ² I): a product over axes of normal-CDF differences over widths. With
        init.symmetric, the average of that law and its mirror image a ↦ −a (docs/math.md §7)."""
        out = self._gaussian_cell_averages(edges, self.mean0)
        if self.init.symmetric:
            out = 0.5 * (out + self._gaussian_cell_averages(edges, self.mean0 * np.r_[-1.0, np.ones(self.dim - 1)]))
        return out

    def sample_initial(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """θ_i ~ N(mean, κ² I); with init.symmetric, n/2 draws followed by their mirror images (−a, w, b),
        so that the network's output is exactly 0 (docs/math.md §7)."""
        if not self.init.symmetric:
            return self.mean0 + self.kappa * rng.standard_normal((n, self.dim))
        half = self.mean0 + self.kappa * rng.standard_normal((n // 2, self.dim))
        return np.concatenate([half, half * np.r_[-1.0, np.ones(self.dim - 1)]])

    def sample_data(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal(n) if self.params.x_law == "gaussian" else rng.uniform(-1.0, 1.0, n)
        y = self.target(x)
        if self.params.noise > 0:
            y = y + self.params.noise * rng.standard_normal(n)
        return x, y

    def reduce(self, theta: np.ndarray) -> np.ndarray:
        return np.array(theta, copy=True)

    def teacher_points(self, alpha: float = 1.0) -> np.ndarray | None:
        """The m teacher neurons (a_j, w_j[, b_j]) as the student's own points (m a_j/α, w_j[, b_j]), (m, D): a
        student of output scale α with mass 1/m at each of them computes f* = Σ_j a_j σ(w_j x + b_j) exactly.
        None for a named target. With θ = (a, w), neurons with b_j ≠ 0 are not points of θ-space and are left out
        (None if that is all of them)."""
        if self.params.target != "teacher":
            return None
        neurons = np.array([(list(n) + [0.0])[:3] for n in self.params.teacher], dtype=float)
        if self.dim == 2:
            neurons = neurons[neurons[:, 2] == 0.0, :2]
        if not len(neurons):
            return None
        return neurons * np.r_[len(self.params.teacher) / alpha, np.ones(self.dim - 1)]

    def exact_risk(self, theta: np.ndarray, alpha: float = 1.0, theta0: np.ndarray | None = None) -> float:
        """R_α(ρ_N) = Σ_k q_k (f*(x_k) − α ŷ(x_k))² + noise², with the grid's quadrature rule (module docstring);
        ŷ − ŷ_0 in place of ŷ for the centred model (theta0: the initial particles; docs/math.md §7)."""
        output = self.features(theta).mean(axis=1)
        if theta0 is not None:
            output = output - self.features(theta0).mean(axis=1)
        residual = self.target(self.x_nodes) - alpha * output
        return float(self.x_weights @ residual**2 + self.params.noise**2)

    def network_output(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """ŷ(x) = (1/N) Σ_i a_i σ(w_i x + b_i) at the samples x (n,), elementwise then a pairwise mean
        (no BLAS: the same numbers on any thread count)."""
        a, w = theta[:, 0], theta[:, 1]
        b = theta[:, 2] if self.dim == 3 else 0.0
        return (a * sigma(self.params.activation, np.multiply.outer(x, w) + b, self.ramp)).mean(axis=1)

    # ------------------------------------------------------------------ the lazy limit (docs/math.md §7)
    def x_quadrature(self) -> tuple[np.ndarray, np.ndarray]:
        """The quadrature {x_k, q_k} of the law of x that Ψ and R use: nodes (K,), weights (K,) summing to 1."""
        return self.x_nodes, self.x_weights

    def regression_function(self) -> np.ndarray:
        """m(x_k) = E[y | x_k] on the quadrature nodes, (K,)."""
        return self.target(self.x_nodes)

    @property
    def label_variance(self) -> float:
        """E Var(y | x): the part of the risk no network removes."""
        return self.params.noise**2

    def tangent_features(self, theta: np.ndarray) -> np.ndarray:
        """∇_θ σ*(x_k; θ_c) for θ (M, D): shape (D, K, M); σ* = a σ(w x + b), so the rows are
        (σ(z), a σ'(z) x, a σ'(z)) at z = w x_k + b."""
        a, w = theta[:, 0], theta[:, 1]
        b = theta[:, 2] if self.dim == 3 else 0.0
        z = np.outer(self.x_nodes, w) + b
        act, slope = sigma(self.params.activation, z, self.ramp), a * sigma_prime(self.params.activation, z, self.ramp)
        rows = [act, slope * self.x_nodes[:, None], slope][: self.dim]
        return np.stack(rows)

    # ------------------------------------------------------------------ the coupled systems (docs/math.md §8)
    def field_gradient(self, theta: np.ndarray, moments: np.ndarray, centres: list[np.ndarray] | None = None,
                       alpha: float = 1.0) -> np.ndarray:
        """∇_θ Ψ^α = Σ_k q_k ∇_θσ*(x_k; θ) (moments_k − m(x_k)/α) at points θ (n, D), moments_k = ∫σ*(x_k; ·)dν (the
        network output at the nodes): the feature form of grid_model, with V = −Σ_k q_k m(x_k) Φ_k. The grid plays
        no part (full θ-space), so centres may be None."""
        theta = np.ascontiguousarray(theta, dtype=float)
        return self._gradient(theta, self._activations(theta), moments, alpha)

    def _gradient(self, theta: np.ndarray, act: np.ndarray, moments: np.ndarray, alpha: float) -> np.ndarray:
        """field_gradient from the activations of θ (K, N) (_activations)."""
        coefficient = self.x_weights * (moments - self.target(self.x_nodes) / alpha)
        out = np.empty(theta.shape)
        neuron_field_gradient(theta, self.x_nodes, coefficient, act, self.code, *self.ramp, out)
        return out

    def population_gradient(self, theta: np.ndarray, alpha: float = 1.0, theta0: np.ndarray | None = None) -> np.ndarray:
        """∇_θ Ψ^α(θ_i; ρ_N) (N, D): field_gradient with the moments of ρ_N, ŷ(x_k) = (1/N) Σ_j σ*(x_k; θ_j)
        (minus ŷ_0 for the centred model), by the quadrature rule that R_N uses (module docstring). The
        activations of θ serve both the output and the gradient."""
        theta = np.ascontiguousarray(theta, dtype=float)
        act = self._activations(theta)
        output = self._output_at_nodes(theta, act)
        if theta0 is not None:
            if self._reference is None or self._reference[0] is not theta0:    # ŷ_0: once per θ(0)
                self._reference = (theta0, self._output_at_nodes(theta0))
            output = output - self._reference[1]
        return self._gradient(theta, act, output, alpha)

    def _activations(self, theta: np.ndarray) -> np.ndarray:
        """σ(w_i x_k + b_i) (K, N) for contiguous θ (N, D)."""
        act = np.empty((len(self.x_nodes), len(theta)))
        activations_at_nodes(theta, self.x_nodes, self.code, *self.ramp, act)
        return act

    def _output_at_nodes(self, theta: np.ndarray, act: np.ndarray | None = None) -> np.ndarray:
        """The network (1/N) Σ_i a_i σ(w_i x_k + b_i) at the nodes (K,), from θ's activations if given."""
        theta = np.ascontiguousarray(theta, dtype=float)
        out = np.empty(len(self.x_nodes))
        network_at_nodes(theta, self._activations(theta) if act is None else act, out)
        return out

    def _kernel_of_marginals(self, w: np.ndarray, b: np.ndarray | float, m0: np.ndarray, m2: np.ndarray) -> np.ndarray:
        """Σ_j m0_j σ(z_kj)σ(z_lj) + m2_j σ'(z_kj)σ'(z_lj)(x_k x_l + [b ∈ θ]) at z = w_j x + b_j: H for a law whose
        (w, b) points carry mass m0_j and second moment of a m2_j (σ* = aσ(wx + b) is linear in a)."""
        z = np.outer(self.x_nodes, w) + b
        act = sigma(self.params.activation, z, self.ramp)
        der = sigma_prime(self.params.activation, z, self.ramp)
        geometry = np.outer(self.x_nodes, self.x_nodes) + (1.0 if self.dim == 3 else 0.0)
        return (act * m0) @ act.T + ((der * m2) @ der.T) * geometry

    def point_tangent_kernel(self, points: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """H for weights on points (a, w[, b]): each point is a (w, b) column of mass weight and a-moment a²·weight."""
        b = points[:, 2] if self.dim == 3 else 0.0
        return self._kernel_of_marginals(points[:, 1], b, weights, points[:, 0] ** 2 * weights)

    def grid_tangent_kernel(self, centres: list[np.ndarray], masses: np.ndarray) -> np.ndarray:
        """H_ρ for cell masses on an (a, w[, b]) grid: the a-axis enters only through the mass and the second
        moment of a at each (w, b), so H costs K² per (w, b) column rather than per cell."""
        a = centres[0]
        m0 = masses.sum(axis=0).ravel()
        m2 = np.tensordot(a**2, masses, axes=(0, 0)).ravel()
        wb = np.meshgrid(*centres[1:], indexing="ij")
        b = wb[1].ravel() if self.dim == 3 else 0.0
        return self._kernel_of_marginals(wb[0].ravel(), b, m0, m2)

    def _gauss_hermite_wb(self, order: int) -> tuple[np.ndarray, np.ndarray | float, np.ndarray]:
        """Tensor Gauss–Hermite nodes (w, b) and weights for the (w, b) part of ρ_0 = N(mean, κ² I)."""
        g, gw = hermegauss(order)
        gw = gw / gw.sum()
        w, weights, b = self.mean0[1] + self.kappa * g, gw, 0.0
        if self.dim == 3:
            w, b = (m.ravel() for m in np.meshgrid(w, self.mean0[2] + self.kappa * g, indexing="ij"))
            weights = np.outer(gw, gw).ravel()
        return w, b, weights

    def initial_output_exact(self, order: int = 64) -> np.ndarray:
        """f_ρ0(x_k) = E[a] E[σ(w x_k + b)] for the closed-form ρ_0 (E[a] = 0 for the symmetric start), (K,)."""
        if self.init.symmetric:
            return np.zeros(len(self.x_nodes))
        w, b, weights = self._gauss_hermite_wb(order)
        return self.mean0[0] * (sigma(self.params.activation, np.outer(self.x_nodes, w) + b, self.ramp) @ weights)

    def tangent_kernel_exact(self, order: int = 64) -> np.ndarray:
        """H_ρ0(x_k, x_l) = ∫ ⟨∇σ*(x_k; θ), ∇σ*(x_l; θ)⟩ ρ_0(dθ), (K, K), from the closed-form ρ_0 (grid-free).

        With θ ~ N(mean, κ² I) (or its a ↦ −a symmetrisation, which has the same second moment of a):
        H = E[σ(z_k) σ(z_l)] + E[a²] E[σ'(z_k) σ'(z_l)] (x_k x_l + [b ∈ θ]), z = w x + b independent
        of a; the (w, b) expectations by tensor Gauss–Hermite of `order` points per axis.
        """
        w, b, weights = self._gauss_hermite_wb(order)
        return self._kernel_of_marginals(w, b, weights, (self.mean0[0] ** 2 + self.kappa**2) * weights)
