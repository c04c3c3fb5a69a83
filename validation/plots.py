"""The comparison figure: risk against time, and the PDE density over the SGD histogram."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


def comparison_figure(f: h5py.File, table: dict[str, np.ndarray], path: Path, n_panels: int = 4) -> None:
    """Write a PNG: risk vs t for both engines, and the reduced density at up to n_panels times (1-D)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coords = f["particles"].attrs["coords"].split(",")
    t = table["time"]
    picks = np.unique(np.linspace(0, len(t) - 1, n_panels).round().astype(int))
    fig, axes = plt.subplots(1, 1 + len(picks), figsize=(4.2 * (1 + len(picks)), 3.6),
                             gridspec_kw={"width_ratios": [1.4] + [1] * len(picks)})
    ax = axes[0]
    ax.plot(f["pde/time"][:], f["pde/risk"][:], "-", color="C0", label="PDE  R(ρ_t)")
    ax.plot(t, table["risk_pde_finite_n"], "--", color="C0", alpha=0.7, label="PDE + 1/N term")
    ax.plot(t, table["risk_sgd"], "o", color="C3", ms=3.5, label=f"SGD  R_N, N = {f['particles/theta'].shape[1]}")
    ax.set_xlabel("t")
    ax.set_ylabel("risk")
    ax.set_title("population risk")
    ax.legend(frameon=False, fontsize=8)
    centres = f["pde"][coords[0]][:]
    t_pde = f["pde/time"][:]
    t_sgd = f["particles/time"][:]
    for ax, k in zip(axes[1:], picks):
        j = int(np.argmin(np.abs(t_pde - t[k])))
        i = int(np.argmin(np.abs(t_sgd - t[k])))
        density = f["pde/density"][j]
        marginal = density if density.ndim == 1 else density.sum(axis=tuple(range(1, density.ndim)))
        z = f["particles/z"][i][:, 0]
        ax.hist(z, bins=40, density=True, color="C3", alpha=0.35, label="SGD")
        ax.plot(centres, marginal, color="C0", label="PDE")
        hi = max(np.quantile(z, 0.999), centres[np.flatnonzero(np.cumsum(marginal) >= 0.999 * marginal.sum())[0]])
        ax.set_xlim(centres[0] - 0.5 * (centres[1] - centres[0]), 1.1 * hi)
        ax.set_xlabel(coords[0])
        ax.set_title(f"t = {t[k]:g}")
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
