"""The comparison figure: risk against time, and the PDE density over the SGD histogram."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mfdyn.storage import RunFile
from validation.compare import particle_count


def _marginal(density: np.ndarray, keep: tuple[int, ...], widths: np.ndarray) -> np.ndarray:
    """Marginal density of the kept axes: sum the others times their widths."""
    drop = tuple(k for k in range(density.ndim) if k not in keep)
    return density.sum(axis=drop) * float(np.prod(widths[list(drop)])) if drop else density


def _density_1d(ax, marginal: np.ndarray, centres: np.ndarray, z: np.ndarray, name: str) -> None:
    """The PDE density of one coordinate over the particles' histogram; a narrow peak over 3× the
    rest of the density is clipped and labelled, so that it does not flatten the bulk."""
    h = centres[1] - centres[0]
    mass = marginal.sum() * h
    cdf = np.cumsum(marginal) * h / mass
    lo, hi = np.searchsorted(cdf, [0.001, 0.999])
    edges = np.linspace(min(centres[lo] - h / 2, z.min()), max(centres[hi] + h / 2, z.max()), 41)
    ax.hist(z, bins=edges, density=True, color="C3", alpha=0.35, label="SGD")
    ax.plot(centres, marginal / mass, color="C0", label="PDE")
    j = int(np.argmax(marginal))
    window = max(3, (hi - lo) // 40)                  # cells counted as "the peak": 2.5% of the view
    away = np.abs(np.arange(len(marginal)) - j) > window
    bulk = (marginal[away].max() if away.any() else 0.0) / mass
    peak = marginal[j] / mass
    if peak > 3 * bulk > 0:
        share = cdf[min(j + window, len(cdf) - 1)] - (cdf[j - window - 1] if j > window else 0.0)
        ax.set_ylim(0, 1.6 * bulk)
        ax.annotate(f"peak {peak:.0f} at {name} ≈ {centres[j]:.2f}\n({100 * share:.0f}% of mass)",
                    xy=(centres[j], 1.55 * bulk), xytext=(0.25, 0.8), textcoords="axes fraction",
                    fontsize=8, arrowprops={"arrowstyle": "->", "lw": 0.7})
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(name)


def _density_2d(ax, marginal: np.ndarray, cx: np.ndarray, cy: np.ndarray, points: np.ndarray,
                names: tuple[str, str]) -> None:
    """A 2-D density as a heat map with contour lines over (up to 600 of) the particles, zoomed to
    the box holding 99.8% of the PDE mass on each axis."""
    ax.pcolormesh(cx, cy, marginal.T, shading="nearest", cmap="Blues")
    show = points[:: max(1, len(points) // 600)]
    ax.plot(show[:, 0], show[:, 1], ".", color="C3", ms=2, alpha=0.5)
    if marginal.max() > 0:
        ax.contour(cx, cy, marginal.T, levels=marginal.max() * np.array([0.1, 0.3, 0.6, 0.9]),
                   colors="navy", linewidths=0.8)
    for centres, axis, setter in ((cx, 1, ax.set_xlim), (cy, 0, ax.set_ylim)):
        cdf = np.cumsum(marginal.sum(axis=axis))
        lo, hi = np.searchsorted(cdf / cdf[-1], [0.001, 0.999])
        pad = 2 * (centres[1] - centres[0])
        setter(centres[lo] - pad, centres[min(hi, len(centres) - 1)] + pad)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])


LAZY_LABELS = {"w2_pde": ("PDE  W2(ρ_t, ρ_0)", "C0", "-"), "displacement_sgd": ("particles  displacement", "C3", "o"),
               "kernel_change_pde": ("PDE  kernel change", "C0", "--"),
               "kernel_change_sgd": ("particles  kernel change", "C3", "s")}


def _laziness_panel(ax, t: np.ndarray, table: dict[str, np.ndarray], keys: list[str]) -> None:
    """How far the network moved from its start (docs/math.md §7), on log axes from the first save on."""
    for key in keys:
        label, color, style = LAZY_LABELS[key]
        marker = style if style in "os" else None
        ax.plot(t[1:], table[key][1:], "-" if marker is None and style == "-" else "--" if marker is None else "",
                marker=marker, ms=3.5, color=color, label=label, alpha=0.9)
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("distance from the start")
    ax.legend(frameon=False, fontsize=8)


PART_LINES = {"total_risk": ("total R_sgd − R_pde", "k", "-"), "sgd_part_risk": ("SGD part  S − G", "C3", "o"),
              "interaction_part_risk": ("interaction part  G − T", "C0", "s"),
              "sampling_part_risk": ("sampling part  T − ρ_t", "C2", "^")}


def _parts_panel(ax, t: np.ndarray, table: dict[str, np.ndarray]) -> None:
    """The risk gap and its three parts against t (docs/math.md §8); they sum to the total."""
    for key, (label, color, marker) in PART_LINES.items():
        ax.plot(t, table[key], "-" if marker == "-" else "--", marker=None if marker == "-" else marker, ms=3,
                color=color, lw=1.2 if marker == "-" else 0.8, label=label)
    ax.axhline(0.0, color="gray", lw=0.5)
    ax.set_xlabel("t")
    ax.set_ylabel("parts of the risk gap")
    ax.legend(frameon=False, fontsize=7)


def comparison_figure(run: RunFile, table: dict[str, np.ndarray], path: Path | None = None, n_panels: int = 4):
    """Write a PNG: risk vs t for both engines (top); below, at up to n_panels times, the PDE density
    against the particles: a histogram overlay (1-D), a heat map with the particles (2-D), or the three
    pairwise marginals at up to 3 times (3-D). Returns the Figure (written to path if given, then closed)."""
    from matplotlib.figure import Figure

    coords = run.coords("particles")
    ndim = len(coords)
    n = particle_count(run)
    t_pde, risk_pde = run.series("pde", "time"), run.series("pde", "risk")
    t = table["time"]
    picks = np.unique(np.linspace(0, len(t) - 1, n_panels if ndim < 3 else 3).round().astype(int))
    rows, cols = (1, len(picks)) if ndim < 3 else (len(picks), 3)
    fig = Figure(figsize=(3.3 * cols if ndim < 3 else 11, 3.6 + 3.0 * rows))
    grid = fig.add_gridspec(1 + rows, cols, height_ratios=[1.1] + [1] * rows)
    lazy = [k for k in ("w2_pde", "displacement_sgd", "kernel_change_pde", "kernel_change_sgd")
            if k in table and np.any(np.isfinite(table[k][1:]) & (table[k][1:] > 0))]
    coupled = "risk_gd" in table
    top = grid[0, :].subgridspec(1, 1 + coupled + bool(lazy))
    ax = fig.add_subplot(top[0, 0])
    ax.plot(t_pde, risk_pde, "-", color="C0", label="PDE  R(ρ_t)")
    if coupled:           # the finite-N reference along the dynamics (docs/math.md §8), not the iid term
        ax.plot(t, table["risk_gd"], "--", color="C2", label="gradient flow G  R_N (finite-N reference)")
    else:
        ax.plot(t, table["risk_pde_finite_n"], "--", color="C0", alpha=0.6,
                label="PDE + iid 1/N term (exact at t = 0 only)")
    ax.plot(t, table["risk_sgd"], "o", color="C3", ms=3.5, label=f"particles  R_N,  N = {n}")
    if "risk_kernel" in table:
        ax.plot(t, table["risk_kernel"], ":", color="k", label="kernel limit  R_∞ (α → ∞)")
    ax.set_xlabel("t")
    ax.set_ylabel("risk")
    risks = np.concatenate([risk_pde, table["risk_sgd"]])
    if risks.min() > 0 and risks.max() > 5 * risks.min():
        ax.set_yscale("log")
    ax.legend(frameon=False, fontsize=8)
    if coupled:
        _parts_panel(fig.add_subplot(top[0, 1]), t, table)
    if lazy:
        _laziness_panel(fig.add_subplot(top[0, 1 + coupled]), t, table, lazy)
    centres = [run.fixed("pde", c) for c in coords]
    widths = np.array([c[1] - c[0] for c in centres])
    t_sgd = run.series("particles", "time")
    pairs = [(0, 1), (0, 2), (1, 2)]
    for row_or_col, k in enumerate(picks):
        density = run.row("pde", "density", int(np.argmin(np.abs(t_pde - t[k]))))
        z = run.row("particles", "z", int(np.argmin(np.abs(t_sgd - t[k]))))
        if ndim == 1:
            ax = fig.add_subplot(grid[1, row_or_col])
            _density_1d(ax, density, centres[0], z[:, 0], coords[0])
            ax.set_title(f"t = {t[k]:g}")
            if row_or_col == 0:
                ax.set_ylabel("density")
                ax.legend(frameon=False, fontsize=8)
        elif ndim == 2:
            ax = fig.add_subplot(grid[1, row_or_col])
            _density_2d(ax, density, centres[0], centres[1], z, (coords[0], coords[1]))
            ax.set_title(f"t = {t[k]:g}")
        else:
            for col, (a, b) in enumerate(pairs):
                ax = fig.add_subplot(grid[1 + row_or_col, col])
                _density_2d(ax, _marginal(density, (a, b), widths), centres[a], centres[b], z[:, [a, b]],
                            (coords[a], coords[b]))
                ax.set_title(f"t = {t[k]:g}: ({coords[a]}, {coords[b]})")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
