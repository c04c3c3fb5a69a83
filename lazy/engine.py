"""The kernel engine: the residual of the lazy limit, u(t) = exp(−2ξ t H Q) u_0, in closed form (docs/math.md §7).

H = H_ρ0 is the tangent kernel on the problem's x-quadrature {x_k, q_k}, computed once: by default
from the grid's initial cell averages, the very ρ_0 the PDE starts from, with the grid scheme's own
face differences (mfdyn.tangent.finite_volume_tangent_kernel), so that the PDE's α → ∞ limit is
this engine's risk; with kernel.rho0 = "exact", from the closed-form ρ_0 by its own quadrature.
With S = Q^½ H Q^½ = V Λ Vᵀ, Q^½ u(t) = V e^{−2ξtΛ} Vᵀ Q^½ u_0, and R_∞(t) = Σ_k q_k u_k(t)² + E Var(y|x);
u_0 = m − α f_ρ0 (m for the centred model).
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from mfdyn.engines import Snapshot, register_engine, remaining_times
from mfdyn.grid import build_grid
from mfdyn.tangent import finite_volume_tangent_kernel

SMOOTH = ("tanh", "erf", "sigmoid")     # activations whose closed-form H_ρ0 Gauss–Hermite resolves spectrally


@register_engine
class KernelEngine:
    """The lazy limit of a config's network: R_∞(t) and u(t) at the save times, from one eigendecomposition."""

    name = "kernel"
    resumed_attrs: dict = {}         # the group attributes a resumed run restores (none: closed form)

    def __init__(self, problem, config):
        self.problem, self.config = problem, config
        dyn = config.dynamics
        if not math.isinf(dyn.beta):
            raise ValueError(f"dynamics.beta: the kernel engine is the noiseless lazy limit, got β = {dyn.beta:g}; "
                             "allowed: inf")
        if dyn.lam != 0.0:
            raise ValueError(f"dynamics.lambda: the kernel engine is the lazy limit without weight decay, got "
                             f"{dyn.lam:g}; allowed: 0")
        try:
            self.nodes, self.q = problem.x_quadrature()
        except NotImplementedError as exc:
            raise ValueError(f"engine kernel: {exc}; the lazy limit needs the tangent kernel on an "
                             "x-quadrature (teacher_student has one)") from None
        activation = getattr(problem.params, "activation", None)
        if config.kernel.rho0 == "exact" and activation not in SMOOTH:
            raise ValueError("kernel.rho0: 'exact' integrates ρ_0 by Gauss–Hermite, which resolves only smooth σ "
                             f"({', '.join(SMOOTH)}), not {activation or problem.name}; allowed for it: 'grid'")
        if problem.dim != len(problem.coords):
            raise ValueError(f"engine kernel: {problem.name} is solved in reduced coordinates, not in θ-space")

    def prepare(self) -> None:
        """H_ρ0, f_ρ0 and u_0 on the x-quadrature, and the eigendecomposition of Q^½ H Q^½."""
        problem, dyn = self.problem, self.config.dynamics
        if self.config.kernel.rho0 == "exact":
            h = problem.tangent_kernel_exact()
            output0 = problem.initial_output_exact()
        else:
            grid = build_grid(problem, self.config)
            rho0 = problem.initial_cell_averages(grid.edges)
            features = problem.features(np.stack(grid.mesh(), axis=1))             # (K, M)
            h = finite_volume_tangent_kernel(features.reshape((-1,) + grid.shape), rho0, grid.widths,
                                             grid.cell_volume)
            output0 = features @ rho0.ravel() * grid.cell_volume
        self.u0 = problem.regression_function() - (0.0 if dyn.centered else dyn.alpha * output0)
        root = np.sqrt(self.q)
        self.eigenvalues, self.modes = np.linalg.eigh(root[:, None] * h * root[None, :])
        self.coefficients = self.modes.T @ (root * self.u0)
        self.lift = h @ (root[:, None] * self.modes)         # H Q^½ V

    def layout(self, writer) -> None:
        g = self.name
        writer.scale(g, "time", units="t")
        writer.scale(g, "x", self.nodes, long_name="quadrature nodes of the law of x")
        writer.scale(g, "mode", np.arange(len(self.nodes)), long_name="eigenmode of Q^½ H_ρ0 Q^½, ascending")
        writer.table(g, "eigenvalues", self.eigenvalues, ("mode",), long_name="eigenvalues Λ of Q^½ H_ρ0 Q^½")
        writer.table(g, "weights", self.q, ("x",), long_name="quadrature weights q_k")
        writer.series(g, "risk", (), ("time",), long_name="R_∞(t) = Σ q_k u_k(t)² + E Var(y|x), docs/math.md §7")
        writer.series(g, "residual", (len(self.nodes),), ("time", "x"),
                      long_name="u(t) on the nodes: m − αf (m − α(f − f_ρ0) for the centred model)")
        writer.group_attrs(g, rho0=self.config.kernel.rho0)

    def residual(self, t: float) -> np.ndarray:
        """u(t) = u_0 + H Q^½ V g(Λ) Vᵀ Q^½ u_0 with g(λ) = (e^{−sλ} − 1)/λ, s = 2ξt: the series of
        exp(−sHQ) regrouped around S = Q^½HQ^½, with no division by the (tiny) weights of far nodes."""
        s = 2.0 * self.config.dynamics.xi * t
        lam = np.maximum(self.eigenvalues, 0.0)             # S is PSD; round-off below 0 is 0
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(lam > 0, np.expm1(-s * lam) / lam, -s)
        return self.u0 + self.lift @ (g * self.coefficients)

    def run(self, start=None) -> Iterator[Snapshot]:
        for t in remaining_times(self.config.save_times(), start):
            u = self.residual(t)
            risk = float(self.q @ u**2 + self.problem.label_variance)
            yield Snapshot(t, 0, {"time": t, "risk": risk, "residual": u})

    def start_state(self, run_file, n: int) -> float | None:
        """The time of the last complete snapshot (the solution is closed form: nothing else to resume)."""
        return float(run_file.row(self.name, "time", n - 1)) if n else None
