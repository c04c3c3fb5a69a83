"""The statistics of a sweep's rates (docs/guide.md, "Sweeps"), on plain records: no files.

validation/sweep.py's rates() reads a sweep folder into one record per member,

    {"x": float,                  # the swept value (e.g. particles.n)
     "seed": int,                 # particles.seed (0 if not varied)
     "sup": {quantity: float},    # sup over the save times of the member's gap
     "t0": {quantity: float},     # the gap at t = 0
     "mc": {quantity: float}}     # the t = 0 Monte Carlo prediction (test functions only; others absent)

and summarize() turns them into the summary: per quantity, the mean over seeds of the sup-gap and its
standard error for each x, the least-squares slope of log(mean) against log x, a 95% percentile
bootstrap interval for that slope (the seeds of each x resampled with replacement, BOOTSTRAP times,
one generator seeded 0 for the whole summary), the mean t = 0 gap and the mean prediction per x, and
the broken-line fit of log(mean) against log x (broken_line: two slopes and a break point x_b, kept
only where it is clearly better than one line).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP = 2000
BREAK_P_VALUE = 0.01      # the broken line is kept when the F-test against one line has p below this
BREAK_MIN_SIDE = 3        # points on each side of the break (x_b itself may be one of them)
ROUNDOFF_RMS = 1e-9       # rms of log residuals below this is round-off: the line is exact, nothing to break


def fit_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


@dataclass(frozen=True)
class BrokenLine:
    """A continuous two-segment line in log-log: log y = c + s_low (u − u_b) for u ≤ u_b and c + s_high (u − u_b)
    above, u = log x, u_b = log x_b; with the F-test of it against one straight line."""

    x_break: float           # x_b
    slope_low: float         # s_low, the slope for x ≤ x_b
    slope_high: float        # s_high, the slope for x ≥ x_b
    intercept: float         # c = log y at x_b
    p_value: float           # F-test, F = ((RSS_1 − RSS_2)/2) / (RSS_2/(n − 4)) on F(2, n − 4)
    kept: bool               # p_value < BREAK_P_VALUE: clearly better than one line

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The fitted y at x (any shape)."""
        u = np.log(x) - np.log(self.x_break)
        return np.exp(self.intercept + np.where(u <= 0, self.slope_low, self.slope_high) * u)


def _segments_fit(u: np.ndarray, v: np.ndarray, u_break: float) -> tuple[float, np.ndarray]:
    """Least squares of v on (1, min(u − u_b, 0), max(u − u_b, 0)): (RSS, (c, s_low, s_high))."""
    design = np.stack([np.ones_like(u), np.minimum(u - u_break, 0.0), np.maximum(u - u_break, 0.0)], axis=1)
    coef = np.linalg.lstsq(design, v, rcond=None)[0]
    return float(np.sum((design @ coef - v) ** 2)), coef


def broken_line(x: np.ndarray, y: np.ndarray) -> BrokenLine | None:
    """The continuous broken line (BrokenLine) fitted by least squares to log y against log x, and whether it is
    kept.

    Model: log y = c + s_low (u − u_b) for u ≤ u_b, c + s_high (u − u_b) for u > u_b (u = log x), four parameters.
    For a given u_b the fit is linear in (c, s_low, s_high); u_b is the minimiser of the residual sum of squares
    RSS_2 over [u_(k), u_(n−k)] with k = BREAK_MIN_SIDE points on each side (a grid of 200, then a bounded scalar
    search between the neighbours of the best). Against one line (RSS_1, two parameters) the F statistic
    ((RSS_1 − RSS_2)/2) / (RSS_2/(n − 4)) gives p on F(2, n − 4); the break is kept when p < BREAK_P_VALUE, never
    when one line already fits to round-off. x > 0 and y > 0, (n,) each; None when n < 2·BREAK_MIN_SIDE.
    """
    from scipy.optimize import minimize_scalar
    from scipy.stats import f as f_law

    u, v = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    n = len(u)
    if n < 2 * BREAK_MIN_SIDE:
        return None
    line = np.polyfit(u, v, 1)
    rss_line = float(np.sum((np.polyval(line, u) - v) ** 2))
    ordered = np.sort(u)
    grid = np.linspace(ordered[BREAK_MIN_SIDE - 1], ordered[n - BREAK_MIN_SIDE], 200)
    rss = np.array([_segments_fit(u, v, b)[0] for b in grid])
    best = int(np.argmin(rss))
    search = minimize_scalar(lambda b: _segments_fit(u, v, b)[0], method="bounded",
                             bounds=(grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]),
                             options={"xatol": 1e-10})
    u_break = float(search.x) if search.fun < rss[best] else float(grid[best])
    rss_broken, (c, low, high) = _segments_fit(u, v, u_break)
    exact = np.sqrt(rss_line / n) <= ROUNDOFF_RMS
    floor = n * ROUNDOFF_RMS**2
    statistic = max(rss_line - rss_broken, 0.0) / 2 / (max(rss_broken, floor) / (n - 4))
    p = 1.0 if exact else float(f_law.sf(statistic, 2, n - 4))
    return BrokenLine(float(np.exp(u_break)), float(low), float(high), float(c), p, bool(p < BREAK_P_VALUE))


def bootstrap_slopes(xs: np.ndarray, per_x: list[np.ndarray], rng: np.random.Generator,
                     draws: int = BOOTSTRAP) -> np.ndarray:
    """Slopes of log(mean) against log x with each x's values resampled with replacement, `draws` times, (draws,)
    ([nan] if there is one x, or an x with a single value). Draw by draw and x by x, each resample is
    rng.choice(v, len(v)) (bootstrap_slopes_loop): with as many values at every x, one rng.integers call
    makes the same picks in the same order, and one polyfit fits every draw's line."""
    if len(xs) < 2 or any(len(v) < 2 for v in per_x):
        return np.array([np.nan])
    sizes = {len(v) for v in per_x}
    if len(sizes) > 1:
        return bootstrap_slopes_loop(xs, per_x, rng, draws)
    n = sizes.pop()
    picks = rng.integers(0, n, size=(draws, len(xs), n))
    means = np.stack(per_x)[np.arange(len(xs))[:, None], picks].mean(axis=2)        # (draws, X)
    return np.polyfit(np.log(xs), np.log(means.T), 1)[0]


def bootstrap_slopes_loop(xs: np.ndarray, per_x: list[np.ndarray], rng: np.random.Generator,
                          draws: int = BOOTSTRAP) -> np.ndarray:
    """bootstrap_slopes one resample and one fit at a time: the readable twin, and the way for unequal seeds."""
    return np.array([fit_slope(xs, np.array([rng.choice(v, len(v)).mean() for v in per_x])) for _ in range(draws)])


def summarize(records: list[dict], x_key: str) -> dict:
    """The summary of a sweep's records (module docstring): {"x_key", "x" (sorted distinct x), "quantities":
    {q: {"mean", "stderr", "slope", "ci", "t0", "t0_predicted", "seeds", "broken"}}}, quantities those of the first
    record; "broken" is the BrokenLine of the means (None with fewer than 2·BREAK_MIN_SIDE values of x or a mean
    ≤ 0)."""
    xs = np.array(sorted({r["x"] for r in records}))
    names = sorted(records[0]["sup"])
    rng = np.random.default_rng(0)
    summary = {"x_key": x_key, "x": xs, "quantities": {}}
    for q in names:
        per_x = [np.array([r["sup"][q] for r in records if r["x"] == x]) for x in xs]
        means = np.array([v.mean() for v in per_x])
        errors = np.array([v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan for v in per_x])
        slope = fit_slope(xs, means) if len(xs) > 1 else np.nan
        boot = bootstrap_slopes(xs, per_x, rng)
        t0 = np.array([np.mean([r["t0"][q] for r in records if r["x"] == x]) for x in xs])
        predicted = np.array([np.mean([r["mc"].get(q, np.nan) for r in records if r["x"] == x]) for x in xs])
        summary["quantities"][q] = {"mean": means, "stderr": errors, "slope": slope,
                                    "ci": (float(np.nanpercentile(boot, 2.5)), float(np.nanpercentile(boot, 97.5))),
                                    "t0": t0, "t0_predicted": predicted, "seeds": len(per_x[0]),
                                    "broken": broken_line(xs, means) if np.all(means > 0) else None}
    return summary
