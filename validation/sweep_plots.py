"""The figures of a sweep: the rates (rates.png), the parts of the gap of a coupled sweep (parts.png; docs/math.md
§8) and, for a sweep over dynamics.alpha, the transition from mean field to the lazy limit (transition.png; §7)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mfdyn.storage import RunFile
from validation.sweep import is_part, member_values

# The theory's slope for the swept key (docs/math.md §2, §8): N^(−1/2) propagation of chaos, MMN's sqrt(ε)
THEORY_SLOPES = {"particles.n": (-0.5, r"theory $x^{-1/2}$"), "particles.eps": (0.5, r"MMN bound $x^{1/2}$")}


def _reference(ax, xs: np.ndarray, key: str, start: float) -> None:
    """The theory's slope for the swept key through the first point, where it has one."""
    if key in THEORY_SLOPES:
        slope, label = THEORY_SLOPES[key]
        ax.plot(xs, start * (xs / xs[0]) ** slope, "k--", lw=1, label=label)


def plot_rates(folder: Path, summary: dict, observables: tuple[str, ...] = ()) -> Path:
    """rates.png: mean sup-gaps against x on log-log axes (error bars: standard error over seeds), fitted lines,
    and the theory's reference slope for the swept key. The parts of the gap have their own figure (plot_parts)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.6))
    ax = fig.add_subplot()
    xs = summary["x"]
    gaps = {q: d for q, d in summary["quantities"].items() if not is_part(q)}
    for k, (q, d) in enumerate(gaps.items()):
        label = observables[int(q[4:])] if q.startswith("gap_") and observables else q
        ax.errorbar(xs, d["mean"], yerr=d["stderr"], fmt="o", ms=4, color=f"C{k}", label=f"{label}: slope {d['slope']:+.2f}")
        if np.isfinite(d["slope"]):
            fit = np.exp(np.polyval(np.polyfit(np.log(xs), np.log(d["mean"]), 1), np.log(xs)))
            ax.plot(xs, fit, "-", color=f"C{k}", lw=0.8)
    _reference(ax, xs, summary["x_key"], next(iter(gaps.values()))["mean"][0])
    ax.errorbar([], [], yerr=[], fmt="o", color="gray", ms=4, label="mean over seeds ± standard error")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(summary["x_key"])
    ax.set_ylabel("mean over seeds of sup_t gap")
    ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    path = folder / "rates.png"
    fig.savefig(path, dpi=110)
    return path


PART_STYLE = {"sgd": ("SGD part S − G", "C3", "o"), "interaction": ("interaction part G − T", "C0", "s"),
              "sampling": ("sampling part T − ρ", "C2", "^")}


def plot_parts(folder: Path, summary: dict, observables: tuple[str, ...] = ()) -> Path | None:
    """parts.png: per quantity (the risk and each test function) the mean sup_t |part| of each part of the gap
    (docs/math.md §8) against x, ± standard error, with its fitted slope and the theory's reference."""
    from matplotlib.figure import Figure

    names = [q[len("sgd_part_"):] for q in summary["quantities"] if q.startswith("sgd_part_")]
    if not names:
        return None
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(4.4 * cols, 3.6 * rows))
    xs, q = summary["x"], summary["quantities"]
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    for ax, name in zip(axes.ravel(), names):
        for part, (label, color, marker) in PART_STYLE.items():
            d = q[f"{part}_part_{name}"]
            ax.errorbar(xs, d["mean"], yerr=d["stderr"], fmt=marker, ms=4, color=color,
                        label=f"{label}: slope {d['slope']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]")
            if np.isfinite(d["slope"]):
                fit = np.exp(np.polyval(np.polyfit(np.log(xs), np.log(d["mean"]), 1), np.log(xs)))
                ax.plot(xs, fit, "-", color=color, lw=0.8)
        _reference(ax, xs, summary["x_key"], q[f"sampling_part_{name}"]["mean"][0])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title("risk R" if name == "risk" else f"f = {observables[int(name)]}" if observables else f"f{name}",
                     fontsize=9)
        ax.set_xlabel(summary["x_key"])
        ax.set_ylabel("mean over seeds of sup_t |part|")
        ax.legend(frameon=False, fontsize=6)
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    fig.suptitle("where the gap comes from (docs/math.md §8); error bars: standard error over seeds; "
                 "brackets: 95% bootstrap interval of the slope", fontsize=8)
    fig.tight_layout()
    path = folder / "parts.png"
    fig.savefig(path, dpi=110)
    return path


# Reference slopes of the laziness against α (docs/math.md §7): displacement 1/α; kernel change 1/α², or
# 1/α without the a ↦ −a symmetry of ρ_0
LAZY_CURVES = {"sup_w2_pde": ("PDE  sup_t W2(ρ_t, ρ_0)", "C0", "o", -1.0),
               "sup_displacement_sgd": ("particles  sup_t displacement", "C3", "o", -1.0),
               "sup_kernel_change_pde": ("PDE  sup_t kernel change", "C0", "s", -2.0),
               "sup_kernel_change_sgd": ("particles  sup_t kernel change", "C3", "s", -2.0)}


def plot_transition(folder: Path, summary: dict, path: Path | None = None) -> Path:
    """transition.png: left, R(t) of the PDE for each α, between the mean-field (α = 1) and the kernel-limit
    curves, with the particles where they ran; right, sup_t displacement and kernel change against α with
    their fitted and reference slopes."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    index = json.loads((folder / "index.json").read_text())
    key = index["x"]
    curves: dict[float, dict] = {}
    for member in index["members"]:
        x = float(member_values(member)[key])
        if x in curves and ("file" not in member or "risk_sgd" in curves[x]):
            continue
        with RunFile.open(folder / member["grid"]) as f:
            if not f.has("pde"):
                continue
            entry = curves.setdefault(x, {})
            entry["t"], entry["risk_pde"] = f.series("pde", "time"), f.series("pde", "risk")
            if f.has("kernel"):
                entry["risk_kernel"] = f.series("kernel", "risk")
        if "file" in member:
            with RunFile.open(folder / member["file"]) as f:
                entry["t_sgd"], entry["risk_sgd"] = f.series("particles", "time"), f.series("particles", "risk")
    alphas = np.array(sorted(curves))
    fig = Figure(figsize=(12, 4.8))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    norm = LogNorm(alphas.min(), alphas.max())
    cmap = colormaps["viridis"]
    for a in alphas:
        c = curves[a]
        left.plot(c["t"], c["risk_pde"], "-", color=cmap(norm(a)), lw=2.2 if a == 1 else 1.0,
                  label="PDE, α = 1 (mean field)" if a == 1 else None)
        if "risk_sgd" in c:
            left.plot(c["t_sgd"][::2], c["risk_sgd"][::2], "o", ms=2.5, color=cmap(norm(a)))
    kernel = next((curves[a]["risk_kernel"] for a in alphas if "risk_kernel" in curves[a]), None)
    if kernel is not None:
        left.plot(curves[alphas[0]]["t"], kernel, "k--", lw=2, label="kernel limit R_∞ (α → ∞)")
    if any("risk_sgd" in c for c in curves.values()):
        left.plot([], [], "o", color="gray", ms=3, label="particles, where they ran")
    left.set_yscale("log")
    left.set_xlabel("t")
    left.set_ylabel("risk R_α(t)")
    left.legend(frameon=False, fontsize=8)
    bar = fig.colorbar(cmap_mappable(norm, cmap), ax=left)
    bar.set_label(f"α ({key})")
    lazy = summary["laziness"]
    for name, (label, color, marker, reference) in LAZY_CURVES.items():
        if name not in lazy["values"]:
            continue
        y = lazy["values"][name]
        slope = lazy["slopes"].get(name, np.nan)
        right.plot(lazy["x"], y, marker, ls="-" if "pde" in name else ":", color=color, ms=4,
                   label=f"{label}: slope {slope:+.2f} (α ≥ {lazy['fit_from']:g})")
        use = lazy["x"] >= max(lazy["fit_from"], lazy["x"].min())
        if use.any():
            x0, y0 = lazy["x"][use][0], y[use][0]
            right.plot(lazy["x"][use], y0 * (lazy["x"][use] / x0) ** reference, color="gray", lw=0.8, ls="--")
    right.plot([], [], color="gray", lw=0.8, ls="--", label="reference slopes −1 (displacement), −2 (kernel)")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel(f"α ({key})")
    right.set_ylabel("sup over t")
    right.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    out = folder / "transition.png" if path is None else Path(path)
    fig.savefig(out, dpi=110)
    return out


def cmap_mappable(norm, cmap):
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)


def plot_fluctuations(folder: Path, summary: dict, observables: tuple[str, ...] = ()) -> Path | None:
    """fluctuations.png: per test function, at the last save time, sd over seeds of √N(⟨f⟩_T − ∫f dρ_t) and of
    √N(⟨f⟩_G − ∫f dρ_t) against x with their 95% bootstrap intervals, and the tracers' std_ρ0(f∘X_t) that the
    first must equal (the CLT of docs/math.md §8)."""
    from matplotlib.figure import Figure

    law_ = summary.get("fluctuations", {})
    if len(law_.get("x", [])) < 2:
        return None
    xs, count = law_["x"], law_["mean"].shape[2]
    cols = min(3, count)
    rows = -(-count // cols)
    fig = Figure(figsize=(4.4 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    for k, ax in enumerate(axes.ravel()[:count]):
        pick = lambda name: law_[name][:, -1, k]              # noqa: E731
        for name, low, high, label, color, shift in (("sd_sqrt_n", "sd_low", "sd_high", "tracers T", "C2", 0.97),
                                                      ("flow_sd_sqrt_n", "flow_low", "flow_high", "gradient flow G",
                                                       "C0", 1.03)):
            ax.errorbar(xs * shift, pick(name), yerr=[pick(name) - pick(low), pick(high) - pick(name)], fmt="o",
                        ms=4, color=color, capsize=2, label=f"sd·√N of {label} − ρ_t")
        ax.plot(xs, pick("spread"), "k--", lw=1, label="tracers' std_ρ0(f∘X_t)")
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.set_title(f"f = {observables[k]}" if observables else f"f{k}", fontsize=9)
        ax.set_xlabel(summary["x_key"])
        ax.legend(frameon=False, fontsize=6)
    for ax in axes.ravel()[count:]:
        ax.set_visible(False)
    fig.suptitle(f"fluctuations at the last save time over {int(law_['seeds'][0])} seeds (docs/math.md §8); "
                 "bars: 95% bootstrap intervals", fontsize=8)
    fig.tight_layout()
    path = folder / "fluctuations.png"
    fig.savefig(path, dpi=110)
    return path
