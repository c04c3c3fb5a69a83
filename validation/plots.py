"""The comparison figure: risk against time, and the PDE density over the SGD histogram."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


def comparison_figure(f: h5py.File, table: dict[str, np.ndarray], path: Path, n_panels: int = 4) -> None:
    """Write a PNG: risk vs t for both engines (top), the first reduced coordinate's density at up to
    n_panels times (bottom). A narrow peak over 3× the rest of the density is clipped and labelled,
    so that it does not flatten the bulk of the distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coords = f["particles"].attrs["coords"].split(",")
    n = f["particles/theta"].shape[1]
    t = table["time"]
    picks = np.unique(np.linspace(0, len(t) - 1, n_panels).round().astype(int))
    fig = plt.figure(figsize=(3.3 * len(picks), 6.6))
    grid = fig.add_gridspec(2, len(picks), height_ratios=[1.1, 1])
    ax = fig.add_subplot(grid[0, :])
    ax.plot(f["pde/time"][:], f["pde/risk"][:], "-", color="C0", label="PDE  R(ρ_t)")
    ax.plot(t, table["risk_pde_finite_n"], "--", color="C0", alpha=0.6, label="PDE + iid 1/N term")
    ax.plot(t, table["risk_sgd"], "o", color="C3", ms=3.5, label=f"SGD  R_N,  N = {n}")
    ax.set_xlabel("t")
    ax.set_ylabel("population risk")
    ax.legend(frameon=False)
    centres = f["pde"][coords[0]][:]
    h = centres[1] - centres[0]
    t_pde, t_sgd = f["pde/time"][:], f["particles/time"][:]
    for col, k in enumerate(picks):
        ax = fig.add_subplot(grid[1, col])
        density = f["pde/density"][int(np.argmin(np.abs(t_pde - t[k])))]
        marginal = density.sum(axis=tuple(range(1, density.ndim))) if density.ndim > 1 else density
        z = f["particles/z"][int(np.argmin(np.abs(t_sgd - t[k])))][:, 0]
        cdf = np.cumsum(marginal) * h / (marginal.sum() * h)
        lo, hi = np.searchsorted(cdf, [0.001, 0.999])
        edges = np.linspace(centres[lo] - h / 2, max(centres[hi] + h / 2, z.max()), 41)
        ax.hist(z, bins=edges, density=True, color="C3", alpha=0.35, label="SGD")
        ax.plot(centres, marginal / (marginal.sum() * h), color="C0", label="PDE")
        j = int(np.argmax(marginal))
        window = max(3, (hi - lo) // 40)                  # cells counted as "the peak": 2.5% of the view
        away = np.abs(np.arange(len(marginal)) - j) > window
        bulk = (marginal[away].max() if away.any() else 0.0) / (marginal.sum() * h)
        peak = marginal[j] / (marginal.sum() * h)
        if peak > 3 * bulk > 0:
            mass = cdf[min(j + window, len(cdf) - 1)] - (cdf[j - window - 1] if j > window else 0.0)
            ax.set_ylim(0, 1.6 * bulk)
            ax.annotate(f"peak {peak:.0f} at {coords[0]} ≈ {centres[j]:.2f}\n({100 * mass:.0f}% of mass)",
                        xy=(centres[j], 1.55 * bulk), xytext=(0.25, 0.8), textcoords="axes fraction",
                        fontsize=8, arrowprops={"arrowstyle": "->", "lw": 0.7})
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(coords[0])
        ax.set_title(f"t = {t[k]:g}")
        if col == 0:
            ax.set_ylabel("density")
            ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
