"""The law of the gap's random parts across seeds (docs/math.md §8), on plain records: no files.

validation/sweep.py gives one record per member of a sweep whose files hold G and T (particles.coupled):

    {"x": float, "n": int,              # the swept value and N
     "sampling": (T, F) array,          # ⟨f⟩_T − ∫f dρ_t per save time and test function
     "flow": (T, F) array,              # ⟨f⟩_G − ∫f dρ_t (interaction + sampling part)
     "spread": (T, F) array}            # std_i f(z_i^T): the tracers' own estimate of std_ρ0(f∘X_t)

The tracers are iid with law ρ_t, so the sampling part has mean 0 and standard deviation std_ρ0(f∘X_t)/√N,
and √N·(sampling part) → N(0, Var_ρ0(f∘X_t)) (the CLT of §8). law() tests both at each x: the mean over seeds
against its standard error, sd·√N against the mean spread, the same sd·√N for G (whose fluctuation includes
the interaction's feedback) and their ratio sd(G − ρ)/sd(T − ρ), each sd with a 95% percentile bootstrap
interval over the seeds (BOOTSTRAP draws, one generator seeded 0).
"""
from __future__ import annotations

import numpy as np

from validation.rates import BOOTSTRAP


def _sd_interval(values: np.ndarray, rng: np.random.Generator, draws: int = BOOTSTRAP) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile bootstrap interval of the standard deviation over axis 0 of values (S, ...)."""
    picks = rng.integers(0, len(values), size=(draws, len(values)))
    boot = np.stack([values[p].std(axis=0, ddof=1) for p in picks])
    return np.percentile(boot, 2.5, axis=0), np.percentile(boot, 97.5, axis=0)


def law(records: list[dict]) -> dict:
    """Per x (sorted): arrays over (save time, test function) of
    mean, stderr             the sampling part's mean over seeds and its standard error;
    sd_sqrt_n, sd_ci         sd over seeds of √N·(T − ρ) and its bootstrap interval (low, high);
    spread                   the mean over seeds of std_i f(z_i^T), which sd_sqrt_n should equal;
    ratio                    sd_sqrt_n / spread;
    flow_sd_sqrt_n, flow_ci  the same sd for √N·(G − ρ);
    amplification            sd(G − ρ) / sd(T − ρ);
    and seeds, the number of members at that x. Only x with at least 2 seeds."""
    rng = np.random.default_rng(0)
    xs = sorted({r["x"] for r in records})
    out = {"x": [], "seeds": [], "mean": [], "stderr": [], "sd_sqrt_n": [], "sd_low": [], "sd_high": [], "spread": [],
           "ratio": [], "flow_sd_sqrt_n": [], "flow_low": [], "flow_high": [], "amplification": []}
    for x in xs:
        group = [r for r in records if r["x"] == x]
        if len(group) < 2:
            continue
        root_n = np.sqrt(np.array([r["n"] for r in group], dtype=float))[:, None, None]
        raw = np.stack([r["sampling"] for r in group])                        # (S, T, F)
        sampling = raw * root_n
        flow = np.stack([r["flow"] for r in group]) * root_n
        spread = np.stack([r["spread"] for r in group]).mean(axis=0)
        sd, flow_sd = sampling.std(axis=0, ddof=1), flow.std(axis=0, ddof=1)
        low, high = _sd_interval(sampling, rng)
        flow_low, flow_high = _sd_interval(flow, rng)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = {"x": x, "seeds": len(group), "mean": raw.mean(axis=0),
                      "stderr": raw.std(axis=0, ddof=1) / np.sqrt(len(group)), "sd_sqrt_n": sd, "sd_low": low,
                      "sd_high": high, "spread": spread, "ratio": sd / spread, "flow_sd_sqrt_n": flow_sd,
                      "flow_low": flow_low, "flow_high": flow_high, "amplification": flow_sd / sd}
        for key, value in values.items():
            out[key].append(value)
    return {key: np.array(value) for key, value in out.items()}
