"""Time steppers for the finite-volume semi-discretisation (docs/math.md §5).

Each stepper is a Stepper subclass registered under its pde.stepper name with @register_stepper;
solve() builds the one named from StepperInputs, so a new stepper is one new class here plus its name among
the choices of pde.stepper (mfdyn/config.py; tests/test_diffusion.py keeps the two lists equal).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mfdyn.errors import BlowUp
from pde.scharfetter_gummel import SGWeights, sg_apply
from pde.sg_system import SGSystem

# rhs(rho, out) -> dt_max: writes dρ/dt at rho into out and returns the positivity bound of a forward-Euler
# step at that state
RHS = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class StepperInputs:
    """What solve() offers every stepper: the semi-discretisation and the pde.* options; each takes what it needs.

    rhs: dρ/dt and the forward-Euler bound (RHS). field_at(ρ): what the fluxes take from Ψ_λ[ρ], i.e. ζ
    (β = ∞) or the SGWeights of ψ (β < ∞). psi_fixed: ψ does not depend on ρ (field_at ignores ρ).
    dt_next: the error controller's proposal saved with a state (np.inf: none), for exact resumes.
    """

    rhs: RHS
    field_at: Callable[[np.ndarray], object]
    beta: float
    psi_fixed: bool
    cfl: float
    rtol: float | None
    dt: float | None
    dt_next: float = np.inf


class Stepper:
    """A time stepper: step(ρ, dt_wanted) → (new ρ, dt taken ≤ dt_wanted), counting rejected attempts."""

    name: str = ""               # set by register_stepper
    rejected: int = 0

    @classmethod
    def build(cls, inputs: StepperInputs) -> Stepper:
        """The stepper for one solve; raise ValueError if the inputs do not suit it."""
        raise NotImplementedError

    def step(self, rho: np.ndarray, dt_wanted: float) -> tuple[np.ndarray, float]:
        raise NotImplementedError

    @property
    def dt_next(self) -> float:
        """What a saved state needs to resume this stepper exactly (StepperInputs.dt_next); np.inf: nothing."""
        return np.inf


STEPPERS: dict[str, type[Stepper]] = {}


def register_stepper(name: str) -> Callable[[type[Stepper]], type[Stepper]]:
    """Class decorator: make the Stepper subclass available to solve() as pde.stepper = name."""
    def register(cls: type[Stepper]) -> type[Stepper]:
        if name in STEPPERS:
            raise ValueError(f"stepper {name!r} is already registered ({STEPPERS[name].__name__})")
        cls.name = name
        STEPPERS[name] = cls
        return cls
    return register


def step_factor(rtol: float, err: float) -> float:
    """The error controller's change of dt after a step of local error err against rtol (both steppers of order
    3 in their error): 0.9 (rtol/err)^{1/3}, clipped to [0.2, 2]. A non-finite err raises BlowUp (no dt would
    ever pass)."""
    if not math.isfinite(err):
        raise BlowUp(f"the PDE step's error estimate is {err}; likely fix: a smaller pde.cfl or pde.dt, or a finer grid")
    return min(2.0, max(0.2, 0.9 * (rtol / err) ** (1.0 / 3.0))) if err > 0 else 2.0


class ExplicitSSP(Stepper):
    """An explicit SSP Runge–Kutta method in Shu–Osher form, positivity checked at every stage, with optional
    local error control against its embedded second-order solution (docs/math.md §5).

    Every stage is a forward-Euler step of stage_dt × dt, so the scheme stays positive if stage_dt × dt obeys
    each stage's own bound: the first dt is cfl × the bound at ρⁿ / stage_dt, and a stage that violates its bound
    rejects the step, which is retried with cfl × (that bound) / stage_dt. With rtol, the step is accepted if
    ‖ρⁿ⁺¹ − û‖₁ ≤ rtol ‖ρⁿ‖₁ (û the embedded solution) and the next dt is scaled by step_factor. A subclass gives
    stage_dt, rhs_per_step and stages(), which forms the stages in buffers kept across steps (the same
    operations in the same order as the textbook formulas, so the same bits); only the returned state is new.
    """

    stage_dt: float = 1.0        # each stage's forward-Euler step, in units of dt: the SSP coefficient is 1/this
    rhs_per_step: int = 3
    buffers: int = 3             # grid-sized arrays kept across steps: L(ρ), then the stages' work

    @classmethod
    def rhs_per_bound(cls) -> float:
        """Right-hand sides per unit of the forward-Euler bound of time: what the method costs per unit time."""
        return cls.rhs_per_step * cls.stage_dt

    def __init__(self, rhs: RHS, cfl: float, rtol: float | None = None):
        self.rhs, self.cfl, self.rtol = rhs, cfl, rtol
        self.rejected = 0
        self.dt_error = np.inf          # the error controller's proposal for the next step
        self._buffers: tuple[np.ndarray, ...] | None = None

    @classmethod
    def build(cls, inputs: StepperInputs) -> ExplicitSSP:
        stepper = cls(inputs.rhs, inputs.cfl, inputs.rtol)
        stepper.dt_error = inputs.dt_next
        return stepper

    @property
    def dt_next(self) -> float:
        return self.dt_error

    def stages(self, rho: np.ndarray, l0: np.ndarray, dt: float,
               buffers: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray | None] | float:
        """The step of size dt from ρ with l0 = L(ρ): (ρⁿ⁺¹, û or None without rtol), or the bound of the first
        stage whose forward-Euler step stage_dt × dt exceeds it."""
        raise NotImplementedError

    def step(self, rho: np.ndarray, dt_wanted: float) -> tuple[np.ndarray, float]:
        """Advance by at most dt_wanted; return (new ρ, dt actually taken)."""
        if self._buffers is None or self._buffers[0].shape != rho.shape:
            self._buffers = tuple(np.empty(rho.shape) for _ in range(self.buffers))
        l0 = self._buffers[0]
        bound = self.rhs(rho, l0)
        dt = min(dt_wanted, self.cfl * bound / self.stage_dt, self.dt_error)
        while True:
            done = self.stages(rho, l0, dt, self._buffers)
            if not isinstance(done, tuple):             # a stage's bound, which dt exceeded
                if math.isnan(done):
                    raise BlowUp("the PDE right-hand side became non-finite within a step (its stable-step bound is "
                                 "NaN); likely fix: a smaller pde.cfl or a finer grid")
                self.rejected += 1
                dt = self.cfl * done / self.stage_dt
                continue
            new, embedded = done
            if self.rtol is None:
                return new, dt
            err = np.abs(new - embedded).sum() / max(np.abs(rho).sum(), 1e-300)
            factor = step_factor(self.rtol, err)
            if err <= self.rtol:
                self.dt_error = dt * factor
                return new, dt
            self.rejected += 1
            dt *= factor


@register_stepper("explicit")
class SSPRK3(ExplicitSSP):
    """Shu–Osher SSP-RK3 (SSP coefficient 1, three right-hand sides a step); embedded: Heun, û = 2ρ⁽²⁾ − ρ."""

    def stages(self, rho, l0, dt, buffers):
        _, work, stage = buffers
        np.multiply(dt, l0, out=stage)
        stage += rho                                    # ρ⁽¹⁾ = ρ + dt L(ρ)
        b = self.rhs(stage, work)
        if not dt <= b:                                 # NaN too: the caller stops there
            return b
        work *= dt
        work += stage
        work *= 0.25
        np.multiply(0.75, rho, out=stage)
        stage += work                                   # ρ⁽²⁾ = ¾ρ + ¼(ρ⁽¹⁾ + dt L(ρ⁽¹⁾))
        b = self.rhs(stage, work)
        if not dt <= b:                                 # NaN too: the caller stops there
            return b
        work *= dt
        work += stage
        work *= 2.0 / 3.0
        new = rho / 3.0
        new += work                                     # ρⁿ⁺¹ = ⅓ρ + ⅔(ρ⁽²⁾ + dt L(ρ⁽²⁾))
        return new, (None if self.rtol is None else 2.0 * stage - rho)


@register_stepper("ssprk43")
class SSPRK43(ExplicitSSP):
    """The four-stage third-order SSP method (Kraaijevanger 1991; Spiteri & Ruuth 2002): SSP coefficient 2 with
    four right-hand sides a step, so 2 per unit of the forward-Euler bound against SSP-RK3's 3. With h = dt/2,

        ρ⁽¹⁾ = ρ + h L(ρ),  ρ⁽²⁾ = ρ⁽¹⁾ + h L(ρ⁽¹⁾),  w = ρ⁽²⁾ + h L(ρ⁽²⁾),  ρ⁽³⁾ = ⅔ρ + w/3,  ρⁿ⁺¹ = ρ⁽³⁾ + h L(ρ⁽³⁾);

    embedded second-order solution û = ⅓ρ + ⅔w (Butcher weights ⅓, ⅓, ⅓, 0), itself SSP with coefficient 2.
    """

    stage_dt = 0.5
    rhs_per_step = 4
    buffers = 4

    def stages(self, rho, l0, dt, buffers):
        _, work, stage, third = buffers                 # stage: ρ⁽¹⁾, ρ⁽²⁾, then w
        h = 0.5 * dt
        np.multiply(h, l0, out=stage)
        stage += rho                                    # ρ⁽¹⁾ = ρ + h L(ρ)
        for _ in range(2):
            b = self.rhs(stage, work)
            if not h <= b:
                return b
            work *= h
            stage += work                               # ρ⁽²⁾ = ρ⁽¹⁾ + h L(ρ⁽¹⁾), then w = ρ⁽²⁾ + h L(ρ⁽²⁾)
        np.divide(stage, 3.0, out=work)
        np.multiply(2.0 / 3.0, rho, out=third)
        third += work                                   # ρ⁽³⁾ = ⅔ρ + w/3
        b = self.rhs(third, work)
        if not h <= b:
            return b
        work *= h
        new = third + work                              # ρⁿ⁺¹ = ρ⁽³⁾ + h L(ρ⁽³⁾)
        return new, (None if self.rtol is None else rho / 3.0 + (2.0 / 3.0) * stage)


@register_stepper("implicit")
class LinearlyImplicit(Stepper):
    """(I − dt A(ψ_n)) ρⁿ⁺¹ = ρⁿ with ψ frozen at tⁿ (docs/math.md §5): positive and mass-conserving for any dt,
    first order in time. weights_of(ρ) gives the SG face weights of ψ = Ψ_λ[ρ] − β⁻¹ log J; SGSystem solves
    (Thomas in 1-D, sparse LU above). With psi_fixed (ψ does not depend on ρ) the factorisation is kept while dt
    stays the same."""

    def __init__(self, weights_of: Callable[[np.ndarray], SGWeights], dt: float, psi_fixed: bool = False):
        self.weights_of, self.dt, self.psi_fixed = weights_of, dt, psi_fixed
        self.rejected = 0
        self._factor: tuple[float, SGSystem] | None = None

    @classmethod
    def build(cls, inputs: StepperInputs) -> LinearlyImplicit:
        if math.isinf(inputs.beta) or inputs.dt is None:
            raise ValueError("the implicit stepper needs a finite dynamics.beta and a step pde.dt")
        return cls(inputs.field_at, inputs.dt, psi_fixed=inputs.psi_fixed)

    def step(self, rho: np.ndarray, dt_wanted: float) -> tuple[np.ndarray, float]:
        dt = min(self.dt, dt_wanted)
        if not (self.psi_fixed and self._factor is not None and self._factor[0] == dt):
            self._factor = (dt, SGSystem(self.weights_of(rho), dt))
        new = self._factor[1].solve(rho.ravel()).reshape(rho.shape)
        return np.maximum(new, 0.0), dt      # the M-matrix keeps ρ ≥ 0; clip round-off below 0


# TR-BDF2 (Bank et al., IEEE Trans. Electron Devices 32 (1985) 1992; Hosea & Shampine, Appl. Numer. Math. 20
# (1996) 21): γ = 2 − √2 makes both implicit stages use the same matrix I − c·dt·A, c = γ/2 = 1 − 1/√2.
TRBDF2_GAMMA = 2.0 - math.sqrt(2.0)
TRBDF2_C = 0.5 * TRBDF2_GAMMA
TRBDF2_ERROR = math.sqrt(2.0) - 4.0 / 3.0     # local error (√2/2 − 2/3) dt³ρ''' = this × dt × the f-bracket's ½ dt²ρ'''
TRBDF2_RTOL = 1e-6            # local L1 error per step relative to the mass, when pde.rtol is 0
NEGATIVE_TOL = 1e-13          # a stage below −this × its maximum rejects the step (round-off above it is clipped)


@register_stepper("trbdf2")
class TRBDF2(Stepper):
    """Linearly implicit TR-BDF2 for β < ∞ (docs/math.md §5): second order in time, error-controlled, mass to
    round-off, never negative (a step with a negative stage is rejected and retried with half the dt).

    A step of size dt from ρⁿ, with A(ψ) the Scharfetter–Gummel operator (pde.sg_system.sg_matrix) and c = 1 − 1/√2:
      1. ρ̂ = (I − ½dt A(ψ[ρⁿ]))⁻¹ ρⁿ, backward Euler to the midpoint (skipped when ψ does not depend on ρ);
      2. with A = A(ψ[ρ̂]) frozen (the midpoint rule of the first Magnus term: second order),
         (I − c dt A) ρ_γ = ρⁿ + c dt A ρⁿ                      (trapezoid to tⁿ + γ dt, γ = 2c)
         (I − c dt A) ρⁿ⁺¹ = (ρ_γ − (1 − γ)² ρⁿ) / (γ(2 − γ))    (BDF2 to tⁿ + dt), one LU for both;
      3. the local error (√2 − 4/3) dt (Aρⁿ/γ − Aρ_γ/(γ(1−γ)) + Aρⁿ⁺¹/(1−γ)), filtered by (I − c dt A)⁻¹
         (Hosea–Shampine: the stiff components' estimate is damped as the step damps them), in L1 relative to
         ‖ρⁿ‖₁; accepted if ≤ rtol, and dt scaled by 0.9 (rtol/err)^{1/3} clipped to [0.2, 2]. rtol = inf: steps
         of the first dt, no control (the order studies).
    Every matrix has zero column sums, so each solve keeps the mass; (I − s A)⁻¹ ≥ 0 keeps ρ̂ ≥ 0. The
    trapezoid's explicit half and the BDF2 combination can go negative for long steps: those are rejected.
    The whole drift, including −β⁻¹∇log J near r = 0, and the diffusion are implicit.
    """

    def __init__(self, weights_of: Callable[[np.ndarray], SGWeights], dt: float, rtol: float, psi_fixed: bool = False):
        self.weights_of, self.rtol, self.psi_fixed = weights_of, rtol, psi_fixed
        self.dt_error = dt               # the next step to try: pde.dt at first, then the controller's
        self.rejected = 0
        self._fixed: tuple[float, SGWeights, SGSystem] | None = None    # (dt, weights, system) while ψ is fixed

    @classmethod
    def build(cls, inputs: StepperInputs) -> TRBDF2:
        if math.isinf(inputs.beta) or inputs.dt is None:
            raise ValueError("the trbdf2 stepper needs a finite dynamics.beta and a first step pde.dt")
        dt = inputs.dt_next if math.isfinite(inputs.dt_next) else inputs.dt
        return cls(inputs.field_at, dt, inputs.rtol or TRBDF2_RTOL, psi_fixed=inputs.psi_fixed)

    @property
    def dt_next(self) -> float:
        return self.dt_error

    def step(self, rho: np.ndarray, dt_wanted: float) -> tuple[np.ndarray, float]:
        """Advance by at most dt_wanted; return (new ρ, dt actually taken)."""
        g, c = TRBDF2_GAMMA, TRBDF2_C
        shape = rho.shape

        def apply(weights: SGWeights, x: np.ndarray) -> np.ndarray:          # A x, flat
            out = np.empty(shape)
            sg_apply(x.reshape(shape), weights, out)
            return out.ravel()

        flat = rho.ravel()
        mass = max(np.abs(flat).sum(), 1e-300)
        cut = dt_wanted < self.dt_error              # a step cut short by a save time keeps the proposal ...
        dt = min(dt_wanted, self.dt_error)
        while True:
            if self.psi_fixed:
                if self._fixed is None or self._fixed[0] != dt:
                    weights = self.weights_of(rho)
                    self._fixed = (dt, weights, SGSystem(weights, c * dt))
                weights, system = self._fixed[1:]
            else:
                half = SGSystem(self.weights_of(rho), 0.5 * dt).solve(flat)
                weights = self.weights_of(np.maximum(half, 0.0).reshape(shape))
                system = SGSystem(weights, c * dt)
            f0 = apply(weights, flat)
            stage = system.solve(flat + c * dt * f0)
            new = system.solve((stage - (1.0 - g) ** 2 * flat) / (g * (2.0 - g)))
            if min(stage.min(), new.min()) < -NEGATIVE_TOL * max(stage.max(), new.max()):
                self.rejected += 1
                dt *= 0.5
                continue
            bracket = f0 / g - apply(weights, stage) / (g * (1.0 - g)) + apply(weights, new) / (1.0 - g)
            err = np.abs(system.solve(TRBDF2_ERROR * dt * bracket)).sum() / mass
            if math.isinf(self.rtol):                  # no error control: steps of pde.dt (order studies)
                return np.maximum(new, 0.0).reshape(shape), dt
            factor = step_factor(self.rtol, err)
            if err <= self.rtol:
                if not cut or factor < 1.0:               # ... unless its error asks for less
                    self.dt_error = dt * factor
                return np.maximum(new, 0.0).reshape(shape), dt
            self.rejected += 1
            dt *= factor
