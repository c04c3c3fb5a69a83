"""Test functions f(z) of the grid coordinates, written as NumPy expressions (the config's
output.observables, or the defaults made to fit its grid). Shared by config validation and the validation layer."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mfdyn.config import Config

# Expressions of the reduced coordinates (names like r, r1, a, w, theta1) may use these functions.
FUNCTIONS = {name: getattr(np, name) for name in ("sin", "cos", "tanh", "exp", "log", "sqrt", "abs", "minimum",
                                                   "maximum", "clip", "arctan", "where", "sign")}
FUNCTIONS["pi"] = np.pi


def default_observables(coords: tuple[str, ...], centres: tuple[float, ...], scales: tuple[float, ...]) -> tuple[str, ...]:
    """Bounded Lipschitz test functions of u = (c − m)/s per grid coordinate c (centre m, scale s, one each per
    coordinate): tanh(u) and exp(−u²/2), and tanh(u1)·tanh(u2) of the first two in 2-D and 3-D. Written as short
    expressions: m = 0 and s = 1 give tanh(r) and exp(-r**2/2)."""
    scaled = [_scaled(c, m, s) for c, m, s in zip(coords, centres, scales)]
    out = []
    for c, u in zip(coords, scaled):
        atom = u if u == c else f"({u})"
        out += [f"tanh({u})", f"exp(-{atom}**2/2)"]
    if len(coords) >= 2:
        out.append(f"tanh({scaled[0]})*tanh({scaled[1]})")
    return tuple(out)


def _scaled(name: str, centre: float, scale: float) -> str:
    """(name − centre)/scale as an expression: r, a/2, r - 4, (theta2 + 0.2)/0.7."""
    shifted = name if centre == 0 else f"{name} {'-' if centre > 0 else '+'} {abs(centre):.12g}"
    if scale == 1:
        return shifted
    return f"{name}/{scale:.12g}" if centre == 0 else f"({shifted})/{scale:.12g}"


# The default test functions' scale, as a fraction of the domain's width on each axis
SCALE_OF_DOMAIN = 1 / 8


def observable_frame(config: Config) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(centres, scales) of the default test functions of a config, one per grid axis: the middle of the grid's
    domain on that axis (pde.bounds, or the problem's default) and an eighth of its width, both rounded to the
    scale's first significant digit so that the expressions read short (teacher_student_2d's [−4.5, 4.5] × [−5, 5]
    keeps tanh(a) and exp(-a**2/2)). The domain is where the config lets
    the mass go, so tanh((c − m)/s) rises across its middle half and exp(−((c − m)/s)²/2) spans it wherever the
    mass travels: on mmn_isotropic (domain [0, 8]) they are tanh(r - 4) and exp(-(r - 4)**2/2)."""
    from mfdyn.grid import build_grid
    from mfdyn.problems import make_problem

    centres, scales = [], []
    for lo, hi in build_grid(make_problem(config), config).bounds:
        scale = float(hi - lo) * SCALE_OF_DOMAIN
        digits = -math.floor(math.log10(scale))
        centres.append(round(0.5 * float(lo + hi), digits) + 0.0)        # + 0.0: no −0
        scales.append(round(scale, digits))
    return tuple(centres), tuple(scales)


def evaluate(expression: str, coords: tuple[str, ...], values: list[np.ndarray]) -> np.ndarray:
    """The expression at the points whose coordinates are `values` (one array per coordinate)."""
    namespace = dict(FUNCTIONS)
    namespace.update(zip(coords, values))
    out = eval(compile(expression, "<observable>", "eval"), {"__builtins__": {}}, namespace)  # noqa: S307
    return np.broadcast_to(np.asarray(out, dtype=float), np.broadcast_shapes(*(v.shape for v in values)))


def check_observable(expression: str, coords: tuple[str, ...]) -> str | None:
    """None if the expression evaluates to finite numbers on a test set of points, else the reason."""
    try:
        probe = [np.linspace(-1.5, 2.5, 7) + 0.1 * k for k in range(len(coords))]
        with np.errstate(all="ignore"):
            values = evaluate(expression, coords, probe)
    except Exception as exc:  # any failure of a user expression is reported, not raised
        return f"{type(exc).__name__}: {exc}"
    return None if np.all(np.isfinite(values)) else "not finite on test points"
