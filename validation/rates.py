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
one generator seeded 0 for the whole summary), the mean t = 0 gap and the mean prediction per x.
"""
from __future__ import annotations

import numpy as np

BOOTSTRAP = 2000


def fit_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def bootstrap_slopes(xs: np.ndarray, per_x: list[np.ndarray], rng: np.random.Generator,
                     draws: int = BOOTSTRAP) -> list[float]:
    """Slopes of log(mean) against log x with each x's values resampled with replacement, `draws` times
    ([nan] if there is one x, or an x with a single value)."""
    if len(xs) < 2 or any(len(v) < 2 for v in per_x):
        return [np.nan]
    return [fit_slope(xs, np.array([rng.choice(v, len(v)).mean() for v in per_x])) for _ in range(draws)]


def summarize(records: list[dict], x_key: str) -> dict:
    """The summary of a sweep's records (module docstring): {"x_key", "x" (sorted distinct x), "quantities":
    {q: {"mean", "stderr", "slope", "ci", "t0", "t0_predicted", "seeds"}}}, quantities those of the first record."""
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
                                    "t0": t0, "t0_predicted": predicted, "seeds": len(per_x[0])}
    return summary
