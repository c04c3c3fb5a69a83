"""Test functions f(z) of the grid coordinates, written as NumPy expressions (the config's
output.observables). Shared by config validation and the validation layer."""
from __future__ import annotations

import numpy as np

# Expressions of the reduced coordinates (names like r, r1, a, w, theta1) may use these functions.
FUNCTIONS = {name: getattr(np, name) for name in ("sin", "cos", "tanh", "exp", "log", "sqrt", "abs", "minimum",
                                                   "maximum", "clip", "arctan", "where", "sign")}
FUNCTIONS["pi"] = np.pi


def default_observables(coords: tuple[str, ...]) -> tuple[str, ...]:
    """Bounded Lipschitz test functions: tanh(c) and exp(−c²/2) per coordinate, and tanh(c1)·tanh(c2)."""
    out = []
    for c in coords:
        out += [f"tanh({c})", f"exp(-{c}**2/2)"]
    if len(coords) >= 2:
        out.append(f"tanh({coords[0]})*tanh({coords[1]})")
    return tuple(out)


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
