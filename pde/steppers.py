"""Time steppers for the finite-volume semi-discretisation (docs/math.md §5).

Each stepper is a Stepper subclass registered under its pde.stepper name with @register_stepper;
solve() builds the one named from StepperInputs, so a new stepper is one new class here plus its name among
the choices of pde.stepper (mfdyn/config.py; tests/test_diffusion.py keeps the two lists equal).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pde.scharfetter_gummel import SGWeights

if TYPE_CHECKING:
    import scipy.sparse as sp

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


@register_stepper("explicit")
class SSPRK3(Stepper):
    """Shu–Osher SSP-RK3, positivity checked at every stage, with optional local error control.

    Each stage is a forward-Euler step, so the scheme stays positive if every stage's dt obeys that
    stage's bound; a stage that violates it rejects the step, which is retried with cfl × (the
    smallest bound seen). With rtol, the step is also checked against the embedded second-order
    (Heun) solution û = 2ρ⁽²⁾ − ρ: it is accepted if ‖ρⁿ⁺¹ − û‖₁ ≤ rtol ‖ρⁿ‖₁, and the next dt is
    scaled by 0.9 (rtol/err)^{1/3}, clipped to [0.2, 2].

    The stages are formed in place in buffers kept across steps (the same operations in the same
    order as the textbook formulas, so the same bits); only the returned state is a new array.
    """

    def __init__(self, rhs: RHS, cfl: float, rtol: float | None = None):
        self.rhs, self.cfl, self.rtol = rhs, cfl, rtol
        self.rejected = 0
        self.dt_error = np.inf          # the error controller's proposal for the next step
        self._buffers: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def build(cls, inputs: StepperInputs) -> SSPRK3:
        stepper = cls(inputs.rhs, inputs.cfl, inputs.rtol)
        stepper.dt_error = inputs.dt_next
        return stepper

    @property
    def dt_next(self) -> float:
        return self.dt_error

    def step(self, rho: np.ndarray, dt_wanted: float) -> tuple[np.ndarray, float]:
        """Advance by at most dt_wanted; return (new ρ, dt actually taken)."""
        if self._buffers is None or self._buffers[0].shape != rho.shape:
            self._buffers = (np.empty(rho.shape), np.empty(rho.shape), np.empty(rho.shape))
        l0, work, stage = self._buffers
        bound = self.rhs(rho, l0)
        dt = min(dt_wanted, self.cfl * bound, self.dt_error)
        while True:
            np.multiply(dt, l0, out=stage)
            stage += rho                                    # ρ⁽¹⁾ = ρ + dt L(ρ)
            b1 = self.rhs(stage, work)
            if dt <= b1:
                work *= dt
                work += stage
                work *= 0.25
                np.multiply(0.75, rho, out=stage)
                stage += work                               # ρ⁽²⁾ = ¾ρ + ¼(ρ⁽¹⁾ + dt L(ρ⁽¹⁾))
                b2 = self.rhs(stage, work)
                if dt <= b2:
                    work *= dt
                    work += stage
                    work *= 2.0 / 3.0
                    new = rho / 3.0
                    new += work                             # ρⁿ⁺¹ = ⅓ρ + ⅔(ρ⁽²⁾ + dt L(ρ⁽²⁾))
                    if self.rtol is None:
                        return new, dt
                    err = np.abs(new - (2.0 * stage - rho)).sum() / max(np.abs(rho).sum(), 1e-300)
                    factor = min(2.0, max(0.2, 0.9 * (self.rtol / err) ** (1.0 / 3.0))) if err > 0 else 2.0
                    if err <= self.rtol:
                        self.dt_error = dt * factor
                        return new, dt
                    self.rejected += 1
                    dt *= factor
                    continue
                b1 = b2
            self.rejected += 1
            dt = self.cfl * b1


def sg_matrix(weights: SGWeights) -> sp.csc_matrix:
    """The Scharfetter–Gummel operator A (dρ/dt = Aρ) of the face weights of a frozen ψ, flattened in C order.

    For each face between cells i and i' (next along an axis), mass moves i → i' at rate
    forward = (Dif/h²) B(β(ψ_i' − ψ_i)) and i' → i at backward = (Dif/h²) B(β(ψ_i − ψ_i')): A has zero
    column sums (mass) and nonnegative off-diagonals, so I − dt A is an M-matrix for any dt (docs/math.md §5).
    """
    import scipy.sparse as sp  # heavy: only the implicit stepper needs it

    shape = (weights.forward[0].shape[0] + 1,) + weights.forward[0].shape[1:]      # the grid's
    index = np.arange(int(np.prod(shape))).reshape(shape)
    rows, cols, vals = [], [], []
    for axis, (forward, backward) in enumerate(zip(weights.forward, weights.backward)):
        lo = [slice(None)] * len(shape)
        hi = [slice(None)] * len(shape)
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        i, j = index[tuple(lo)].ravel(), index[tuple(hi)].ravel()
        rows += [i, j, i, j]
        cols += [i, i, j, j]
        vals += [-forward.ravel(), forward.ravel(), backward.ravel(), -backward.ravel()]
    return sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(index.size, index.size))


@register_stepper("implicit")
class LinearlyImplicit(Stepper):
    """(I − dt A(ψ_n)) ρⁿ⁺¹ = ρⁿ with ψ frozen at tⁿ (docs/math.md §5): positive and mass-conserving for any dt,
    first order in time. weights_of(ρ) gives the SG face weights of ψ = Ψ_λ[ρ] − β⁻¹ log J; sparse LU
    solves. With psi_fixed (ψ does not depend on ρ) the factorisation is kept while dt stays the same."""

    def __init__(self, weights_of: Callable[[np.ndarray], SGWeights], dt: float, psi_fixed: bool = False):
        self.weights_of, self.dt, self.psi_fixed = weights_of, dt, psi_fixed
        self.rejected = 0
        self._factor: tuple[float, object] | None = None

    @classmethod
    def build(cls, inputs: StepperInputs) -> LinearlyImplicit:
        if math.isinf(inputs.beta) or inputs.dt is None:
            raise ValueError("the implicit stepper needs a finite dynamics.beta and a step pde.dt")
        return cls(inputs.field_at, inputs.dt, psi_fixed=inputs.psi_fixed)

    def step(self, rho: np.ndarray, dt_wanted: float) -> tuple[np.ndarray, float]:
        import scipy.sparse as sp
        from scipy.sparse.linalg import splu

        dt = min(self.dt, dt_wanted)
        if not (self.psi_fixed and self._factor is not None and self._factor[0] == dt):
            a = sg_matrix(self.weights_of(rho))
            self._factor = (dt, splu((sp.identity(rho.size, format="csc") - dt * a).tocsc()))
        new = self._factor[1].solve(rho.ravel()).reshape(rho.shape)
        return np.maximum(new, 0.0), dt      # the M-matrix keeps ρ ≥ 0; clip round-off below 0
