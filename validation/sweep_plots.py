"""The figures of a sweep: the rates (rates.png), the parts of the gap of a coupled sweep (parts.png; docs/math.md
§8) and, for a sweep over dynamics.alpha, the transition from mean field to the lazy limit (transition.png; §7)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mfdyn.storage import RunFile
from validation.rates import BREAK_P_VALUE
from validation.sweep import is_part, member_values

# The theory's slope for the swept key (docs/math.md §2, §8): N^(−1/2) propagation of chaos, MMN's sqrt(ε)
THEORY_SLOPES = {"particles.n": (-0.5, r"theory $x^{-1/2}$"), "particles.eps": (0.5, r"MMN bound $x^{1/2}$")}


def _reference(ax, xs: np.ndarray, key: str, start: float) -> None:
    """The theory's slope for the swept key (THEORY_SLOPES) through the first point, where it has one."""
    if key in THEORY_SLOPES:
        slope, label = THEORY_SLOPES[key]
        ax.plot(xs, start * (xs / xs[0]) ** slope, "k--", lw=1, label=label)


def _fit(ax, xs: np.ndarray, d: dict, color: str) -> str:
    """A quantity's fit drawn on log-log axes: the broken line (validation.rates.broken_line) where it is kept, with
    its break point marked, else the least-squares line; returns the words for its legend entry."""
    slope = f"slope {d['slope']:+.2f}" + (f" [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]" if np.all(np.isfinite(d["ci"])) else "")
    broken = d["broken"]
    if broken is not None and broken.kept:
        dense = np.geomspace(xs[0], xs[-1], 200)
        ax.plot(dense, broken(dense), "-", color=color, lw=1.6)
        ax.plot([broken.x_break], broken(np.array([broken.x_break])), "|", color=color, ms=14, mew=2)
        return (f"{slope}; broken line {broken.slope_low:+.2f} → {broken.slope_high:+.2f} at x_b = "
                f"{broken.x_break:.4g}")
    if np.isfinite(d["slope"]):
        ax.plot(xs, np.exp(np.polyval(np.polyfit(np.log(xs), np.log(d["mean"]), 1), np.log(xs))), "-", color=color,
                lw=0.8)
    return slope


def _bars_note(seeds: int) -> str:
    """What the error bars and brackets are (validation/rates.py)."""
    if seeds < 2:
        return "one seed per x: no error bars, no interval for the slopes"
    return (f"bars: ±1 standard error of the mean over {seeds} seeds; [ ]: 95% bootstrap interval of the slope "
            "(seeds resampled)")


def _gap_label(q: str, quantity: str, observables: tuple[str, ...]) -> str:
    """A summary quantity in words: the risk gap (by the problem's name for R), a test function, or W1."""
    if q == "risk":
        return f"{quantity} |R_N − R − 1/N term|"
    if q.startswith("gap_"):
        return f"f = {observables[int(q[4:])]}" if observables else f"f{q[4:]}"
    return "W1(particles, ρ_t)" if q == "w1" else q


def rates_figure(summary: dict, observables: tuple[str, ...] = ()):
    """The figure of rates.png (a matplotlib Figure): per gap (the risk gap, each test function, W1; not the parts of
    the gap) the mean over seeds of sup_t gap against x on log-log axes, with ±1 standard error bars, the
    least-squares line (slope and 95% bootstrap interval in the legend) or, where it is clearly better, the broken
    line with its break point x_b marked (validation.rates.broken_line), and the theory's reference slope for the
    swept key (THEORY_SLOPES; none for other keys). The legend is outside the axes."""
    from matplotlib.figure import Figure

    xs = summary["x"]
    gaps = {q: d for q, d in summary["quantities"].items() if not is_part(q)}
    fig = Figure(figsize=(8.0, 7.0), layout="constrained")
    ax = fig.add_subplot()
    for k, (q, d) in enumerate(gaps.items()):
        color = f"C{k}"
        ax.errorbar(xs, d["mean"], yerr=d["stderr"], fmt="o", ms=4, color=color, capsize=2,
                    label=f"{_gap_label(q, summary['quantity'], observables)}: {_fit(ax, xs, d, color)}")
    _reference(ax, xs, summary["x_key"], next(iter(gaps.values()))["mean"][0])
    seeds = next(iter(gaps.values()))["seeds"]
    ax.errorbar([], [], yerr=[], fmt="o", ms=4, color="gray", capsize=2, label=_bars_note(seeds))
    if any(d["broken"] is not None and d["broken"].kept for d in gaps.values()):
        ax.plot([], [], ls="", marker="|", ms=10, mew=2, color="gray",
                label=f"x_b: break of a broken line, kept where it beats one line (F-test p < {BREAK_P_VALUE:g})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(summary["x_key"])
    ax.set_ylabel("mean over seeds of sup_t gap")
    ax.set_title(f"particles against the PDE: sup over t of each gap, against {summary['x_key']}", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    references = {label for _, label in THEORY_SLOPES.values()}
    order = sorted(range(len(labels)), key=lambda i: labels[i] in references or labels[i].startswith("x_b"))
    fig.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside lower center", frameon=False,
               fontsize=7.5)
    return fig


def plot_rates(folder: Path, summary: dict, observables: tuple[str, ...] = ()) -> Path:
    """rates.png in the sweep folder (rates_figure); returns its path. The parts of the gap have their own figure
    (plot_parts)."""
    path = folder / "rates.png"
    rates_figure(summary, observables).savefig(path, dpi=110)
    return path


PART_STYLE = {"sgd": ("SGD part S − G", "C3", "o"), "interaction": ("interaction part G − T", "C0", "s"),
              "sampling": ("sampling part T − ρ", "C2", "^")}


def parts_figure(summary: dict, observables: tuple[str, ...] = ()):
    """The figure of parts.png (a matplotlib Figure), None if the sweep has no parts: per quantity (the risk and each
    test function) the mean sup_t |part| of each part of the gap (docs/math.md §8) against x, ±1 standard error,
    with its fit (as in rates_figure) and the theory's reference slope."""
    from matplotlib.figure import Figure

    names = [q[len("sgd_part_"):] for q in summary["quantities"] if q.startswith("sgd_part_")]
    if not names:
        return None
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(5.2 * cols, 4.4 * rows), layout="constrained")
    xs, q = summary["x"], summary["quantities"]
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    for ax, name in zip(axes.ravel(), names):
        for part, (label, color, marker) in PART_STYLE.items():
            d = q[f"{part}_part_{name}"]
            ax.errorbar(xs, d["mean"], yerr=d["stderr"], fmt=marker, ms=4, color=color, capsize=2,
                        label=f"{label}: {_fit(ax, xs, d, color)}")
        _reference(ax, xs, summary["x_key"], q[f"sampling_part_{name}"]["mean"][0])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{summary['quantity']} R" if name == "risk" else
                     f"f = {observables[int(name)]}" if observables else f"f{name}", fontsize=9)
        ax.set_xlabel(summary["x_key"])
        ax.set_ylabel("mean over seeds of sup_t |part|")
        ax.legend(frameon=False, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    fig.suptitle(f"where the gap comes from (docs/math.md §8); {_bars_note(q[f'sgd_part_{names[0]}']['seeds'])}",
                 fontsize=8)
    return fig


def plot_parts(folder: Path, summary: dict, observables: tuple[str, ...] = ()) -> Path | None:
    """parts.png in the sweep folder (parts_figure); returns its path, or None if the sweep has no parts."""
    fig = parts_figure(summary, observables)
    if fig is None:
        return None
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
    left.set_ylabel(f"{summary['quantity']} R_α(t)")
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
