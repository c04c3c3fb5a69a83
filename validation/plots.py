"""The comparison figure: the risk (or what the problem tracks, Problem.quantity) and the gaps against time, and the
PDE density against the particles at successive times, on shared axes and one colour scale."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mfdyn.config import load_config
from mfdyn.grid import Grid
from mfdyn.problems import make_problem
from mfdyn.storage import RunFile, cannot_create
from pde.engine import BOUNDARY_MASS_TOL, boundary_mass
from validation.compare import edge_fraction, edge_reached, observables_of, particle_count

HEAT_MAP = "Blues"
CONTOUR_LEVELS = (0.1, 0.3, 0.6, 0.9)      # fractions of each panel's own peak
MAX_DOTS = 600                             # particles drawn per 2-D panel
EDGE_COLOUR = "red"


def writable_figure(path: str | Path) -> Path:
    """path as a figure file that can be written, its folders made; else ValueError naming --plot and what is
    allowed (a format matplotlib writes, a place a file can be created). Call it before computing the figure."""
    from matplotlib.backend_bases import FigureCanvasBase

    path, formats = Path(path), sorted(FigureCanvasBase.get_supported_filetypes())
    reason = cannot_create(path)
    if reason is None and path.suffix.lower().lstrip(".") not in formats:
        reason = f"unknown figure format {path.suffix or '(no suffix)'!r}; use one of " + ", ".join(f".{f}" for f in formats)
    if reason is not None:
        raise ValueError(f"--plot {path}: {reason}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _marginal(density: np.ndarray, keep: tuple[int, ...], widths: np.ndarray) -> np.ndarray:
    """Marginal density of the kept axes: sum the others times their widths."""
    drop = tuple(k for k in range(density.ndim) if k not in keep)
    return density.sum(axis=drop) * float(np.prod(widths[list(drop)])) if drop else density


def _mass_box(masses: np.ndarray, centres: np.ndarray, pad_cells: int = 0) -> tuple[float, float]:
    """The interval of centres holding 99.8% of the (1-D, cell) masses, padded by pad_cells cell widths."""
    cdf = np.cumsum(masses) / masses.sum()
    lo, hi = np.searchsorted(cdf, [0.001, 0.999])
    h, pad = centres[1] - centres[0], pad_cells * (centres[1] - centres[0])
    return centres[lo] - h / 2 - pad, centres[min(hi, len(centres) - 1)] + h / 2 + pad


def _union(boxes: list[tuple[float, float]]) -> tuple[float, float]:
    return min(b[0] for b in boxes), max(b[1] for b in boxes)


def _density_1d(ax, marginal: np.ndarray, centres: np.ndarray, z: np.ndarray, name: str) -> None:
    """The PDE density of one coordinate over the particles' histogram (41 bins over this panel's own 99.8% box and
    particles); a narrow peak over 3× the rest of the density is clipped and labelled, so that it does not flatten
    the bulk."""
    h = centres[1] - centres[0]
    mass = marginal.sum() * h
    cdf = np.cumsum(marginal) * h / mass
    lo, hi = _mass_box(marginal, centres)
    edges = np.linspace(min(lo, z.min()), max(hi, z.max()), 41)
    ax.hist(z, bins=edges, density=True, color="C3", alpha=0.35)
    ax.plot(centres, marginal / mass, color="C0")
    j = int(np.argmax(marginal))
    first, last = np.searchsorted(cdf, [0.001, 0.999])
    window = max(3, (last - first) // 40)             # cells counted as "the peak": 2.5% of the view
    away = np.abs(np.arange(len(marginal)) - j) > window
    bulk = (marginal[away].max() if away.any() else 0.0) / mass
    peak = marginal[j] / mass
    if peak > 3 * bulk > 0:
        share = cdf[min(j + window, len(cdf) - 1)] - (cdf[j - window - 1] if j > window else 0.0)
        ax.set_ylim(0, 1.6 * bulk)
        ax.annotate(f"peak {peak:.0f} at {name} ≈ {centres[j]:.2f}\n({100 * share:.0f}% of mass)",
                    xy=(centres[j], 1.55 * bulk), xytext=(0.25, 0.8), textcoords="axes fraction",
                    fontsize=8, arrowprops={"arrowstyle": "->", "lw": 0.7})
    ax.set_xlabel(name)


def _density_2d(ax, marginal: np.ndarray, cx: np.ndarray, cy: np.ndarray, points: np.ndarray, norm,
                teacher: np.ndarray | None, names: tuple[str, str]):
    """A 2-D density as a heat map on the figure's colour scale `norm`, with contour lines at CONTOUR_LEVELS of its
    own peak, under (up to MAX_DOTS of) the particles and the teacher's neurons; returns the heat map."""
    mesh = ax.pcolormesh(cx, cy, marginal.T, shading="nearest", cmap=HEAT_MAP, norm=norm, rasterized=True)
    if marginal.max() > 0:
        ax.contour(cx, cy, marginal.T, levels=marginal.max() * np.array(CONTOUR_LEVELS), colors="navy",
                   linewidths=0.8)
    show = points[:: max(1, len(points) // MAX_DOTS)]
    ax.plot(show[:, 0], show[:, 1], ".", color="C3", ms=2, alpha=0.5)
    if teacher is not None:
        ax.plot(teacher[:, 0], teacher[:, 1], "*", color="k", mec="white", mew=0.6, ms=12)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    return mesh


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


def _parts_panel(ax, t: np.ndarray, table: dict[str, np.ndarray], quantity: str) -> None:
    """The risk gap and its three parts against t (docs/math.md §8); they sum to the total."""
    for key, (label, color, marker) in PART_LINES.items():
        ax.plot(t, table[key], "-" if marker == "-" else "--", marker=None if marker == "-" else marker, ms=3,
                color=color, lw=1.2 if marker == "-" else 0.8, label=label)
    ax.axhline(0.0, color="gray", lw=0.5)
    ax.set_xlabel("t")
    ax.set_ylabel(f"parts of the {quantity} gap")
    ax.legend(frameon=False, fontsize=7)


def _gap_panel(ax, t: np.ndarray, table: dict[str, np.ndarray], observables: tuple[str, ...], quantity: str) -> None:
    """The gaps between particles and PDE against t: |R_N − R(ρ_t) − 1/N term| (risk_gap), each test function's
    |mean f(z_i) − ∫f dρ_t| (gap_k) and W1; log y where they are positive (zeros and NaN are left out)."""
    lines = [(np.abs(table["risk_gap"]), f"{quantity}: |R_N − R(ρ_t) − 1/N term|", "k", "-", "o")]
    lines += [(table[f"gap_{k}"], f"f = {expression}", f"C{k}", "-", None) for k, expression in enumerate(observables)
              if f"gap_{k}" in table]
    lines.append((table["w1"], "W1(particles, ρ_t)", "gray", ":", None))
    positive = False
    for values, label, color, style, marker in lines:
        shown = np.where(np.isfinite(values) & (values > 0), values, np.nan)
        if np.all(np.isnan(shown)):
            continue
        positive = True
        ax.plot(t, shown, style, marker=marker, ms=3, color=color, lw=1.0, label=label)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("gap, particles against PDE")
    ax.legend(frameon=False, fontsize=6.5, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _risk_panel(ax, t_pde: np.ndarray, risk_pde: np.ndarray, table: dict[str, np.ndarray], n: int, particles: str,
                quantity: str) -> None:
    """R(ρ_t) of the PDE, its finite-N reference (R_N of G when coupled, else R + the iid 1/N term), R_N of the
    particles and the kernel limit where it ran, against t (log y when they span over 5×)."""
    t = table["time"]
    ax.plot(t_pde, risk_pde, "-", color="C0", label="PDE  R(ρ_t)")
    if "risk_gd" in table:       # the finite-N reference along the dynamics (docs/math.md §8), not the iid term
        ax.plot(t, table["risk_gd"], "--", color="C2", label="gradient flow G  R_N (finite-N reference)")
    else:
        ax.plot(t, table["risk_pde_finite_n"], "--", color="C0", alpha=0.6,
                label="PDE + iid 1/N term (exact at t = 0 only)")
    ax.plot(t, table["risk_sgd"], "o", color="C3", ms=3.5, label=f"{particles}  R_N,  N = {n}")
    if "risk_kernel" in table:
        ax.plot(t, table["risk_kernel"], ":", color="k", label="kernel limit  R_∞ (α → ∞)")
    ax.set_xlabel("t")
    ax.set_ylabel(quantity)
    risks = np.concatenate([risk_pde, table["risk_sgd"]])
    risks = risks[np.isfinite(risks)]
    log = bool(risks.size and risks.min() > 0 and risks.max() > 5 * risks.min())
    if log:
        ax.set_yscale("log")
    # The curves fall from the upper left (or rise from the lower left): the legend goes to the right, in a band of
    # 45% of the data's span added above (below) them, so that it covers none of it
    falling = risk_pde[0] >= risk_pde[-1]
    if risks.size and risks.max() > risks.min():
        lo, hi = (np.log(risks.min()), np.log(risks.max())) if log else (risks.min(), risks.max())
        band = 0.45 * (hi - lo)
        lo, hi = (lo - 0.05 * (hi - lo), hi + band) if falling else (lo - band, hi + 0.05 * (hi - lo))
        ax.set_ylim(*((np.exp(lo), np.exp(hi)) if log else (lo, hi)))
    ax.legend(frameon=False, fontsize=8, loc="upper right" if falling else "lower right")


def _edge_frame(ax, fraction: float) -> None:
    """A red frame and title line on a panel whose PDE density has mass in the outermost cells."""
    for spine in ax.spines.values():
        spine.set_edgecolor(EDGE_COLOUR)
        spine.set_linewidth(2.5)
    ax.set_title(f"{ax.get_title()}\nmass at the domain edge: {fraction:.1e}", color=EDGE_COLOUR, fontsize=9)


def _legend_handles(ndim: int, particles: str, n: int, shown: int, teacher: bool) -> list:
    """What the density panels show, for the figure's legend."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    drawn = "" if shown >= n else f" ({shown} drawn)"
    if ndim == 1:
        return [Line2D([], [], color="C0", label="PDE density ρ_t"),
                Patch(color="C3", alpha=0.35, label=f"{particles}, N = {n} (histogram)")]
    handles = [Patch(color="#6baed6", label="PDE density ρ_t" + (" (2-D marginal)" if ndim == 3 else "")
                     + ", heat map (colour bar)"),
               Line2D([], [], color="navy", lw=0.8,
                      label="PDE contours at " + ", ".join(f"{100 * c:.0f}" for c in CONTOUR_LEVELS) + "% of the peak"),
               Line2D([], [], ls="", marker=".", color="C3", label=f"{particles}, N = {n}{drawn}")]
    if teacher:
        handles.append(Line2D([], [], ls="", marker="*", ms=11, color="k", mec="white",
                              label="teacher neurons, as student points (a × m/α: mass 1/m each)"))
    return handles


def comparison_figure(run: RunFile, table: dict[str, np.ndarray], path: Path | None = None, n_panels: int = 4,
                      pde: RunFile | None = None):
    """The comparison figure of a run (the table is comparison_table's); returns the matplotlib Figure, written to
    path (PNG, PDF, SVG by its suffix) if given. pde: the file holding /pde when it is another one (a sweep
    member's grid file); by default the run's own.

    Top row, against t: R(ρ_t) of the PDE with its finite-N reference and the particles' R_N (the problem's
    `quantity`: "risk", or "energy" for the linear flows); the gaps (|risk_gap|, each test function's gap_k and W1,
    log y); where the file has them, the three parts of the gap (coupled runs) and the laziness. Below, at up to
    n_panels save times, the PDE density against the particles on shared axes (the zoom box holds 99.8% of the
    mass at every shown time): in 1-D the density over the particles' histogram (x shared); in 2-D a heat map with
    contours under the particles and the teacher's neurons (Problem.teacher_points), one colour scale with its
    colour bar; in 3-D the three pairwise marginals at up to 3 times (axes shared per pair). Panels whose density
    has more than BOUNDARY_MASS_TOL of the mass in the outermost cells get a red frame, and the title says so when
    the PDE group records that the mass reached the domain edge (mass_reached_boundary).
    """
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure

    grid_file = run if pde is None else pde
    config = load_config(run.config_toml, from_text=True)
    problem = make_problem(config)
    quantity = problem.quantity
    particles = "SGD particles" if problem.has_network else "particles"
    teacher = problem.teacher_points(config.dynamics.alpha)
    coords = run.coords("particles")
    ndim = len(coords)
    n = particle_count(run)
    t_pde, risk_pde = grid_file.series("pde", "time"), grid_file.series("pde", "risk")
    t = table["time"]
    picks = np.unique(np.linspace(0, len(t) - 1, n_panels if ndim < 3 else 3).round().astype(int))
    rows, cols = (1, len(picks)) if ndim < 3 else (len(picks), 3)
    lazy = [k for k in ("w2_pde", "displacement_sgd", "kernel_change_pde", "kernel_change_sgd")
            if k in table and np.any(np.isfinite(table[k][1:]) & (table[k][1:] > 0))]
    coupled = "risk_gd" in table
    width = max(3.3 * cols + 1.5, 4.2 * (2 + coupled + bool(lazy)))
    fig = Figure(figsize=(width, 4.0 + 3.1 * rows + (0.5 if ndim > 1 else 0.3)), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.6, 3.1 * rows + 0.9])
    # the risk panel's legend sits inside it and the gaps' beside it: both get more width than the others
    panels = top.subplots(1, 2 + coupled + bool(lazy), squeeze=False,
                          width_ratios=[1.35, 1.5] + [1.0] * (coupled + bool(lazy)))[0]
    _risk_panel(panels[0], t_pde, risk_pde, table, n, particles, quantity)
    _gap_panel(panels[1], t, table, observables_of(run), quantity)
    if coupled:
        _parts_panel(panels[2], t, table, quantity)
    if lazy:
        _laziness_panel(panels[-1], t, table, lazy)

    centres = [grid_file.fixed("pde", c) for c in coords]
    widths = np.array([c[1] - c[0] for c in centres])
    grid = Grid(tuple((float(c[0] - h / 2), float(c[-1] + h / 2)) for c, h in zip(centres, widths)),
                tuple(len(c) for c in centres), tuple(coords))
    t_sgd = run.series("particles", "time")
    densities = [grid_file.row("pde", "density", int(np.argmin(np.abs(t_pde - t[k])))) for k in picks]
    zs = [run.row("particles", "z", int(np.argmin(np.abs(t_sgd - t[k])))) for k in picks]
    edge = [boundary_mass(rho, grid, problem.natural_lower) for rho in densities]
    pairs = [(0,)] if ndim == 1 else [(0, 1)] if ndim == 2 else [(0, 1), (0, 2), (1, 2)]
    share = {1: {"sharex": "all"}, 2: {"sharex": "all", "sharey": "all"}, 3: {"sharex": "col", "sharey": "col"}}[ndim]
    axes = bottom.subplots(rows, cols, squeeze=False, **share)
    axes = axes if ndim == 3 else axes.T                      # axes[time][pair]
    marginals = [[_marginal(rho, pair, widths) for pair in pairs] for rho in densities]
    # one colour scale for every panel; square-root, so that a spread-out density still shows beside a peaked one
    norm = PowerNorm(0.5, 0.0, max(float(m.max()) for row in marginals for m in row))
    mesh = None
    for row, (k, rho_pairs, z) in enumerate(zip(picks, marginals, zs)):
        for col, pair in enumerate(pairs):
            ax = axes[row][col]
            if ndim == 1:
                _density_1d(ax, rho_pairs[0], centres[0], z[:, 0], coords[0])
                ax.set_ylabel("density" if row == 0 else "")
            else:
                a, b = pair
                mesh = _density_2d(ax, rho_pairs[col], centres[a], centres[b], z[:, [a, b]], norm,
                                   None if teacher is None else teacher[:, [a, b]], (coords[a], coords[b]))
                if ndim == 2 and row:
                    ax.set_ylabel("")
            ax.set_title(f"t = {t[k]:g}" + ("" if ndim < 3 else f": ({', '.join(coords[i] for i in pair)})"),
                         fontsize=10)
            if edge[row] > BOUNDARY_MASS_TOL:
                _edge_frame(ax, edge[row])
    for col, pair in enumerate(pairs):         # the zoom box: the union over the shown times, on the shared axes
        for axis, setter in zip(pair, (axes[0][col].set_xlim, axes[0][col].set_ylim)):
            boxes = [_mass_box(_marginal(rho, (axis,), widths), centres[axis], 0 if ndim == 1 else 2)
                     for rho in densities]
            if ndim == 1:
                boxes += [(float(z[:, 0].min()), float(z[:, 0].max())) for z in zs]
            if teacher is not None:
                boxes.append((float(teacher[:, axis].min() - 2 * widths[axis]), float(teacher[:, axis].max()
                                                                                      + 2 * widths[axis])))
            setter(*_union(boxes))
    if mesh is not None:
        bottom.colorbar(mesh, ax=axes, shrink=0.9, pad=0.01,
                        label="PDE density ρ_t" + (" (2-D marginal)" if ndim == 3 else "")
                        + ", one square-root scale for all panels")
    shown = len(range(0, n, max(1, n // MAX_DOTS)))             # what _density_2d draws
    bottom.legend(handles=_legend_handles(ndim, particles, n, shown, teacher is not None), loc="outside lower center",
                  ncols=4, frameon=False, fontsize=8)
    worst = edge_fraction(grid_file)               # over every save, as compare's table says it
    reached = edge_reached(worst)
    title = f"{problem.name}: PDE against {particles}, N = {n}"
    if reached:
        title += (f"\nwarning: the PDE mass reached the domain edge (up to {worst:.1e} of it in the outermost cells; "
                  "red frames: the panels where it is); widen pde.bounds")
    fig.suptitle(title, color=EDGE_COLOUR if reached else "black", fontsize=11)
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
