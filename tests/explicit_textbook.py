"""The explicit SSP steppers' textbook formulas, written out the obvious way: what their in-place stages must equal
bit for bit (tests/test_explicit_steppers.py, tests/test_diffusion.py). rate(ρ) is L(ρ); each formula returns
(ρⁿ⁺¹, the embedded second-order û)."""
from __future__ import annotations

from pde.steppers import STEPPERS, ExplicitSSP


def ssprk3(rate, rho, dt):
    """Shu–Osher SSP-RK3 and Heun (û = 2ρ⁽²⁾ − ρ)."""
    rho1 = rho + dt * rate(rho)
    rho2 = 0.75 * rho + 0.25 * (rho1 + dt * rate(rho1))
    return rho / 3.0 + (2.0 / 3.0) * (rho2 + dt * rate(rho2)), 2.0 * rho2 - rho


def ssprk43(rate, rho, dt):
    """Four-stage SSP-RK3 with h = dt/2 and û = ⅓ρ + ⅔w."""
    h = 0.5 * dt
    rho1 = rho + h * rate(rho)
    rho2 = rho1 + h * rate(rho1)
    w = rho2 + h * rate(rho2)
    rho3 = (2.0 / 3.0) * rho + w / 3.0
    return rho3 + h * rate(rho3), rho / 3.0 + (2.0 / 3.0) * w


TEXTBOOK = {"explicit": ssprk3, "ssprk43": ssprk43}
EXPLICIT = sorted(name for name, cls in STEPPERS.items() if issubclass(cls, ExplicitSSP))
