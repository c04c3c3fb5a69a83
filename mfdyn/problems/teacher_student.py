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
from scipy.special import ndtr

from mfdyn.activations import CODES, sigma
from mfdyn.schema import choice, rule
from mfdyn.problems.base import GridModel, Problem
from mfdyn.problems.single_index import RampParams, check_ramp

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
        """ρ_0 to 4κ, and the teacher's neurons (when the target is one) with a margin of 1."""
        bounds = []
        for axis in range(self.dim):
            lo, hi = self.mean0[axis] - 4 * self.kappa, self.mean0[axis] + 4 * self.kappa
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

    def initial_cell_averages(self, edges: list[np.ndarray]) -> np.ndarray:
        """ρ_0 = N(mean, κ² I): a product over axes of normal-CDF differences over widths."""
        out = np.ones(())
        for e, m in zip(edges, self.mean0):
            out = np.multiply.outer(out, np.diff(ndtr((e - m) / self.kappa)) / np.diff(e))
        return out

    def sample_initial(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.mean0 + self.kappa * rng.standard_normal((n, self.dim))

    def sample_data(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal(n) if self.params.x_law == "gaussian" else rng.uniform(-1.0, 1.0, n)
        y = self.target(x)
        if self.params.noise > 0:
            y = y + self.params.noise * rng.standard_normal(n)
        return x, y

    def reduce(self, theta: np.ndarray) -> np.ndarray:
        return np.array(theta, copy=True)

    def exact_risk(self, theta: np.ndarray) -> float:
        """R_N = Σ_k q_k (f*(x_k) − ŷ(x_k))² + noise², with the grid's quadrature rule (module docstring)."""
        residual = self.target(self.x_nodes) - self.features(theta).mean(axis=1)
        return float(self.x_weights @ residual**2 + self.params.noise**2)
