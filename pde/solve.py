"""The solve loop: integrate ∂_t ρ = 2ξ [∇·(ρ∇Ψ_λ[ρ]) + β⁻¹Δρ] to each save time (docs/math.md §2, §5)."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from mfdyn.errors import BlowUp
from mfdyn.grid import Grid
from pde.potential import PotentialOperator
from pde.scharfetter_gummel import SGWeights, sg_apply, sg_weights
from pde.steppers import SSPRK3, STEPPERS, StepperInputs
from pde.upwind import flux_divergence
from pde.upwind_rhs import interaction_rhs

# pde.stepper = "auto": one trbdf2 step at pde.rtol = 1e-6 replaces about stiffness / AUTO_STEPS_PER_STIFFNESS
# SSP-RK3 steps (its local error 0.04 (dt/τ)³ allows dt ≈ 0.03 τ; benchmarks/RESULTS.md has the measurements)
AUTO_STEPS_PER_STIFFNESS = 35.0
AUTO_EXPLICIT = "ssprk43"     # the explicit stepper "auto" takes: the fewest right-hand sides per unit time


def implicit_step_cost(shape: tuple[int, ...]) -> float:
    """What one trbdf2 step costs in SSP-RK3 steps (three right-hand sides each) on a grid of this shape (measured,
    benchmarks/RESULTS.md): 2 in 1-D (tridiagonal solves), 2.6·cells^⅓ in 2-D and 0.0025·cells^1.31 in 3-D (sparse
    LU and its fill-in)."""
    cells = float(np.prod(shape))
    return {1: 2.0, 2: 2.6 * cells ** (1.0 / 3.0)}.get(len(shape), 0.0025 * cells**1.31)


def noisy_weights(op: PotentialOperator, rho: np.ndarray, xi: float) -> SGWeights:
    """The Scharfetter–Gummel face weights of ψ = Ψ_λ[ρ] − β⁻¹ log J with Dif = 2ξ/β (β < ∞; docs/math.md §5)."""
    return sg_weights(op.psi_noisy(rho), op.grid.widths, op.beta, 2.0 * xi / op.beta)


def stiffness(op: PotentialOperator, rho: np.ndarray, xi: float, cfl: float = 0.8) -> float:
    """How stiff a noisy solve from ρ is for the explicit stepper (dimensionless; β < ∞, else NaN): the time scale
    ‖ρ‖₁/‖dρ/dt‖₁ on which ρ changes, over the explicit step cfl × 1/Σ rates that positivity allows there
    (docs/math.md §5). About 1 means the explicit step follows the dynamics; 10⁴, that it takes 10⁴ steps where
    the dynamics needs one."""
    if math.isinf(op.beta):
        return math.nan
    weights = noisy_weights(op, rho, xi)
    rate = np.empty(rho.shape)
    sg_apply(rho, weights, rate)
    change = float(np.abs(rate).sum())
    return math.inf if change == 0.0 else float(np.abs(rho).sum()) / change / (cfl * weights.dt_max)


def auto_stepper(op: PotentialOperator, rho: np.ndarray, xi: float, cfl: float = 0.8) -> tuple[str, float]:
    """pde.stepper = "auto": (AUTO_EXPLICIT or "trbdf2", the stiffness at ρ). trbdf2 when β < ∞ and it is the
    cheaper: the SSP-RK3 steps one of its steps replaces, stiffness / AUTO_STEPS_PER_STIFFNESS, times what the
    explicit stepper costs against SSP-RK3 per unit time (⅔ for ssprk43), exceed what it costs,
    implicit_step_cost(grid shape). Both counts assume explicit steps set by positivity, as a stiff run's are. A
    function of the config and ρ_0 only, so a run is reproducible."""
    stiff = stiffness(op, rho, xi, cfl)
    explicit = STEPPERS[AUTO_EXPLICIT]
    relative = explicit.rhs_per_bound() / SSPRK3.rhs_per_bound()
    cheaper = stiff / AUTO_STEPS_PER_STIFFNESS * relative > implicit_step_cost(op.grid.shape)      # False for NaN
    return ("trbdf2" if cheaper else AUTO_EXPLICIT), stiff


@dataclass
class PDEState:
    """ρ (cell averages, grid-shaped) at time t after `steps` accepted steps."""

    t: float
    rho: np.ndarray
    steps: int
    rejected: int
    dt_next: float = np.inf      # the explicit stepper's error-controlled proposal (for exact resumes)


def solve(op: PotentialOperator, rho0: np.ndarray, save_times: list[float], xi: float, cfl: float = 0.8,
          stepper: str = "explicit", rtol: float | None = None, dt: float | None = None, t0: float = 0.0,
          dt_next: float = np.inf, steps0: int = 0,
          on_step: Callable[[float, np.ndarray], None] | None = None) -> Iterator[PDEState]:
    """Yield the state at each of save_times (ascending, ≥ t0), landing on them exactly.

    Starting from (t0, rho0, dt_next, steps0) of a saved state continues a run exactly. Raises BlowUp
    if the density stops being finite and non-negative or the time step collapses.

    β = op.beta. Noiseless: upwind fluxes of ζ = 2ξΨ_λ. Noisy: Scharfetter–Gummel fluxes with
    ψ = Ψ_λ − β⁻¹ log J and Dif = 2ξ/β (docs/math.md §5). stepper: a name in pde.steppers.STEPPERS, e.g.
    "explicit" is SSP-RK3 (rtol: local error control), "implicit" the linearly implicit step of size dt
    (β < ∞ only). on_step(t, ρ), if given, sees every accepted step (ρ is the solver's own array: read it,
    don't keep it): the tracers of docs/math.md §8 follow ρ_t through it.
    """
    if stepper not in STEPPERS:
        raise ValueError(f"unknown stepper {stepper!r}; known: {', '.join(sorted(STEPPERS))}")
    grid: Grid = op.grid
    beta = op.beta

    def flux_field(rho: np.ndarray) -> np.ndarray | SGWeights:
        """What the fluxes take from Ψ_λ[ρ]: ζ = 2ξΨ_λ (upwind), or the SG face weights of ψ (β < ∞)."""
        if math.isinf(beta):
            return 2.0 * xi * op.psi(rho)
        return noisy_weights(op, rho, xi)

    # Without interaction ψ, hence ζ or the weights, is the same at every stage: compute it once.
    frozen = None if op.depends_on_rho else flux_field(np.asarray(rho0, dtype=float))

    def field_at(rho: np.ndarray) -> np.ndarray | SGWeights:
        return flux_field(rho) if frozen is None else frozen

    fused = interaction_rhs(op, xi) if math.isinf(beta) else None     # one Numba call per stage, same bits

    def rhs(rho: np.ndarray, out: np.ndarray) -> float:
        if fused is not None:
            return fused(rho, out)
        if math.isinf(beta):
            amax = flux_divergence(rho, field_at(rho), grid.widths, out)
            with np.errstate(divide="ignore"):
                return float(np.min(grid.widths / (2.0 * grid.ndim * amax)))
        weights = field_at(rho)
        sg_apply(rho, weights, out)
        return weights.dt_max

    advance = STEPPERS[stepper].build(StepperInputs(rhs=rhs, field_at=field_at, beta=beta, psi_fixed=frozen is not None,
                                                    cfl=cfl, rtol=rtol, dt=dt, dt_next=dt_next))
    rho = np.array(rho0, dtype=float, copy=True)
    t, steps = t0, steps0
    for t_save in save_times:
        while t < t_save:
            remaining = t_save - t
            rho, taken = advance.step(rho, remaining)
            lo, hi = float(rho.min()), float(rho.max())       # a NaN anywhere makes both NaN
            if not (math.isfinite(lo) and math.isfinite(hi) and lo >= -1e-12 * max(hi, -lo, 1e-300)):
                raise BlowUp(f"PDE density became non-finite or negative near t = {t:.6g}; likely fix: "
                             "a smaller pde.cfl, a finer grid, or pde.stepper = 'implicit' (β < ∞)")
            if taken < 1e-12 * max(1.0, t_save) and taken < remaining:
                raise BlowUp(f"PDE time step collapsed to {taken:.2e} near t = {t:.6g}; likely fix: a finer grid "
                             "or larger pde.bounds (steep potentials at the edge), or a larger pde.rtol")
            t = t_save if taken >= remaining else t + taken
            steps += 1
            if on_step is not None:
                on_step(t, rho)
        yield PDEState(t, rho.copy(), steps, advance.rejected, advance.dt_next)
