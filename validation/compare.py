"""`mfdyn compare`: PDE against SGD at the common save times (docs/math.md §1, §2), and a run's last state against
the Gibbs state ρ* of its config (docs/math.md §6)."""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mfdyn.config import Config, load_config
from mfdyn.expressions import default_observables, evaluate, observable_frame
from mfdyn.schema import toml_value
from mfdyn.storage import RunFile
from validation.observables import (
    QUANTILES,
    SlicedW1,
    edges_from_centres,
    marginal_quantiles,
    particle_quantiles,
    pde_expectation,
    pde_expectations,
    risk_with_finite_n,
    w1_1d,
)


def observables_for(config: Config) -> tuple[str, ...]:
    """The test functions of a config: output.observables, or the defaults fitted to its grid
    (mfdyn.expressions.observable_frame: centred on the domain's middle, scaled to an eighth of its width)."""
    return config.output.observables or default_observables(config.coordinates, *observable_frame(config))


_OBSERVABLES_OF_GRID: dict[str, tuple[str, ...]] = {}


@lru_cache(maxsize=64)
def _observables_of_toml(config_toml: str) -> tuple[str, ...]:
    config = load_config(config_toml, from_text=True)
    key = config.grid_key()      # a sweep's members differ in [particles] only: one make_problem for all of them
    if key not in _OBSERVABLES_OF_GRID:
        _OBSERVABLES_OF_GRID[key] = observables_for(config)
    return _OBSERVABLES_OF_GRID[key]


def observables_of(run: RunFile) -> tuple[str, ...]:
    """The test functions of a run file (observables_for its config)."""
    return _observables_of_toml(run.config_toml)


@lru_cache(maxsize=8)
def _sliced_w1(grid_key: tuple) -> SlicedW1:
    """One SlicedW1 per grid (its projections are the expensive part), shared by every member of a sweep."""
    return SlicedW1([np.linspace(lo, hi, n) for lo, hi, n in grid_key])


def _w1_against(centres: list[np.ndarray], edges: list[np.ndarray]):
    """W1(particles z (N, k), cell averages ρ) on this grid: exact in 1-D, sliced above (64 fixed directions)."""
    if len(centres) == 1:
        return lambda z, rho: w1_1d(z[:, 0], rho, edges[0])
    return _sliced_w1(tuple((float(c[0]), float(c[-1]), len(c)) for c in centres))


def _match(times: np.ndarray, own: np.ndarray) -> np.ndarray:
    """For each of `times`, the index of the same time (to 1e-9 relative) in `own`, or −1 where `own` has none."""
    out = np.full(len(times), -1, dtype=int)
    for i, t in enumerate(times):
        j = int(np.argmin(np.abs(own - t))) if own.size else 0
        if own.size and abs(own[j] - t) <= 1e-9 * max(1.0, abs(t)):
            out[i] = j
    return out


class PdeSide:
    """What comparison_table needs of a file's /pde whatever run it is compared with, computed once and shared
    by every run compared with that file (a sweep's members, validation.sweep.rates): the save times `time`,
    `risk` and `finite_n_term` (T,), the grid (`coords`, `centres`, `edges`: cell faces) and the `densities`
    (T of them, grid-shaped); on first use, and then kept, per coordinate its marginal quantiles (T, 3), per
    test function ∫f dρ_t (T,), and per save time the grid side of W1 (SlicedW1.cdfs, above 1-D: 64 × cells
    floats each, kept up to CDFS_BYTES in all, the oldest dropped beyond)."""

    CDFS_BYTES = 2**30

    def __init__(self, pde: RunFile):
        self.time, self.risk = pde.series("pde", "time"), pde.series("pde", "risk")
        self.finite_n_term = pde.series("pde", "finite_n_term")
        self.coords = pde.coords("pde")
        self.centres = [pde.fixed("pde", c) for c in self.coords]
        self.edges = [edges_from_centres(c) for c in self.centres]
        self.densities = [pde.row("pde", "density", j) for j in range(len(self.time))]
        self._sliced = (_sliced_w1(tuple((float(c[0]), float(c[-1]), len(c)) for c in self.centres))
                        if len(self.centres) > 1 else None)
        self._quantiles: dict[int, np.ndarray] = {}
        self._expectations: dict[str, np.ndarray] = {}
        self._cdfs: dict[int, list[np.ndarray]] = {}

    def quantiles(self, axis: int) -> np.ndarray:
        """The marginal quantiles (QUANTILES) of coordinate `axis` at every save time, (T, 3)."""
        if axis not in self._quantiles:
            self._quantiles[axis] = np.array([marginal_quantiles(rho, self.edges, axis) for rho in self.densities])
        return self._quantiles[axis]

    def expectations(self, expression: str) -> np.ndarray:
        """∫ f dρ_t of a test function at every save time, (T,)."""
        if expression not in self._expectations:
            self._expectations[expression] = pde_expectations(expression, tuple(self.coords), self.densities,
                                                              self.centres)
        return self._expectations[expression]

    def w1(self, z: np.ndarray, j: int) -> float:
        """W1 between particles z (N, k) and the density of save time j: exact in 1-D, sliced above."""
        if self._sliced is None:
            return w1_1d(z[:, 0], self.densities[j], self.edges[0])
        if j not in self._cdfs:
            cdfs = self._sliced.cdfs(self.densities[j])
            size = sum(c.nbytes for c in cdfs)
            while self._cdfs and (len(self._cdfs) + 1) * size > self.CDFS_BYTES:
                del self._cdfs[next(iter(self._cdfs))]
            self._cdfs[j] = cdfs
        return self._sliced.distance(z, self._cdfs[j])


def comparison_table(run: RunFile, pde: RunFile | None = None, side: PdeSide | None = None) -> dict[str, np.ndarray]:
    """Risks, test functions, W1 and reduced-coordinate quantiles of both engines at their common times.

    Keys: time, risk_pde, risk_pde_finite_n (R_pde + the iid 1/N term), risk_sgd, risk_gap
    (R_sgd − R_pde − 1/N term); per coordinate c: quantiles_pde_c, quantiles_sgd_c (T, 3); per test
    function k (attribute `observables` lists them): obs_pde_k, obs_sgd_k, gap_k = |mean f(z_i) − ∫f dρ|;
    and w1: W1 between the particles' reduced coordinates and ρ (exact in 1-D, sliced above).
    pde: the file holding /pde, if it is another one (sweeps); side: its PdeSide, when runs share one.
    """
    pde = run if pde is None else pde
    if not pde.has("pde") or not run.has("particles"):
        raise ValueError(f"{run.name}: compare needs /pde and /particles; this file has "
                         + (", ".join(f"/{g}" for g in run.groups()) or "no groups"))
    side = PdeSide(pde) if side is None else side
    coords = run.coords("particles")
    if coords != side.coords:
        raise ValueError(f"{run.name}: its particles have coordinates {coords}, the PDE {side.coords}; they must agree")
    t_sgd = run.series("particles", "time")
    matched = _match(t_sgd, side.time)
    i_sgd = np.flatnonzero(matched >= 0)
    i_pde = matched[i_sgd]
    n = particle_count(run)
    risk_pde = side.risk[i_pde]
    config = load_config(run.config_toml, from_text=True)
    # The iid 1/N term (docs/math.md §1) is E R_N − R for iid particles; paired particles (init.symmetric) and
    # the centred model have an initial output of exactly f(ρ_0) (or 0), so their reference is R itself
    iid = not (config.init.symmetric or config.dynamics.centered)
    finite_n = side.finite_n_term[i_pde] if iid else 0.0
    table = {"time": t_sgd[i_sgd], "risk_pde": risk_pde,
             "risk_pde_finite_n": risk_with_finite_n(risk_pde, finite_n, n),
             "risk_sgd": run.series("particles", "risk")[i_sgd]}
    table["risk_gap"] = table["risk_sgd"] - table["risk_pde_finite_n"]
    zs = [run.row("particles", "z", i) for i in i_sgd]
    for axis, c in enumerate(coords):
        table[f"quantiles_pde_{c}"] = side.quantiles(axis)[i_pde]
        table[f"quantiles_sgd_{c}"] = np.array([particle_quantiles(z[:, axis:axis + 1])[:, 0] for z in zs])
    for k, expression in enumerate(observables_of(run)):
        on_grid = side.expectations(expression)[i_pde]
        on_particles = np.array([evaluate(expression, tuple(coords), list(z.T)).mean() for z in zs])
        table[f"obs_pde_{k}"], table[f"obs_sgd_{k}"] = on_grid, on_particles
        table[f"gap_{k}"] = np.abs(on_particles - on_grid)
    table["w1"] = np.array([side.w1(z, j) for z, j in zip(zs, i_pde)])
    table.update(_laziness(run, pde, i_pde, i_sgd))
    table.update(_parts(run, i_sgd, table, coords))
    return table


# The coupled systems of docs/math.md §8 (particles.coupled): the parts of the gap, where the file has both
PARTS = ("sgd", "interaction", "sampling")
PARTS_RTOL = 1e-12        # |Σ parts − total| ≤ this × the largest value involved, or the table is refused


def _parts(run: RunFile, i_sgd: np.ndarray, table: dict[str, np.ndarray], coords: list[str]) -> dict[str, np.ndarray]:
    """Per save time, for the risk and each test function: ⟨·⟩_S − ⟨·⟩_G (SGD part), ⟨·⟩_G − ⟨·⟩_T (interaction
    part), ⟨·⟩_T − ∫·dρ_t (sampling part) and their sum, the total ⟨·⟩_S − ∫·dρ_t (docs/math.md §8); R_N of G and
    of T; and per test function the spread std_i f(z_i^T) of the tracers (the sampling part's law: its standard
    deviation is that / √N). Empty when the file has no complete /gd and /tracers."""
    if not i_sgd.size or not all(run.has(g) and run.count(g) > i_sgd.max() for g in ("gd", "tracers")):
        return {}
    out = {"risk_gd": run.series("gd", "risk")[i_sgd], "risk_tracers": run.series("tracers", "risk")[i_sgd]}
    values = {"risk": (table["risk_sgd"], out["risk_gd"], out["risk_tracers"], table["risk_pde"])}
    z_gd, z_tracers = ([run.row(g, "z", i) for i in i_sgd] for g in ("gd", "tracers"))
    for k, expression in enumerate(observables_of(run)):
        on_gd, on_tracers = ([evaluate(expression, tuple(coords), list(zi.T)) for zi in z] for z in (z_gd, z_tracers))
        out[f"obs_gd_{k}"] = np.array([f.mean() for f in on_gd])
        out[f"obs_tracers_{k}"] = np.array([f.mean() for f in on_tracers])
        out[f"sd_tracers_{k}"] = np.array([f.std() for f in on_tracers])
        values[str(k)] = (table[f"obs_sgd_{k}"], out[f"obs_gd_{k}"], out[f"obs_tracers_{k}"], table[f"obs_pde_{k}"])
    residual = np.zeros(len(i_sgd))
    for q, (s, g, t, p) in values.items():
        parts = (s - g, g - t, t - p)
        out.update({f"{name}_part_{q}": part for name, part in zip(PARTS, parts)})
        out[f"total_{q}"] = s - p
        scale = np.max(np.abs([s, g, t, p]), axis=0)
        error = np.abs(parts[0] + parts[1] + parts[2] - out[f"total_{q}"])
        finite = np.isfinite(error)                  # R_N is NaN with output.particle_risk = false
        if np.any(error[finite] > PARTS_RTOL * np.maximum(scale[finite], 1.0)):
            raise RuntimeError(f"{run.name}: the parts of the gap of {q} do not sum to it (off by {error.max():.1e})")
        residual = np.fmax(residual, np.where(finite, error, 0.0))
    out["parts_residual"] = residual
    return out


# Laziness columns (docs/math.md §7): the source group and dataset of each, where the file has them
LAZINESS = {"risk_kernel": ("kernel", "risk"), "w2_pde": ("pde", "w2_displacement"),
            "kernel_change_pde": ("pde", "kernel_change"), "displacement_sgd": ("particles", "displacement"),
            "kernel_change_sgd": ("particles", "kernel_change")}


def _laziness(run: RunFile, pde: RunFile, i_pde: np.ndarray, i_sgd: np.ndarray) -> dict[str, np.ndarray]:
    """The kernel engine's risk (on the PDE's save times) and the laziness diagnostics at the common times."""
    out = {}
    for key, (group, name) in LAZINESS.items():
        source = pde if group == "pde" else run
        if source.has(group, name):
            values = source.series(group, name)
            index = i_sgd if group == "particles" else i_pde
            if group == "kernel" and len(values) < len(pde.series("pde", "time")):
                continue                        # a kernel group cut short: no common times to show
            out[key] = values[index]
    return out


# ------------------------------------------------------------------------------------------ which file is which


def is_gibbs(f: RunFile) -> bool:
    """Whether a file holds a Gibbs state (written by `mfdyn gibbs`: engine "gibbs", /pde at time = inf)."""
    return f.engine == "gibbs" or f.has("gibbs")


def _groups(f: RunFile) -> str:
    return ", ".join(f"/{g}" for g in f.groups()) or "no groups"


def _defining(config: Config) -> dict[str, object]:
    """What two compared files must share, flattened to dotted keys: [problem], [init], [dynamics] but t_end, and
    the grid (pde.cells, pde.bounds as resolved: the problem's default bounds spelled out)."""
    from mfdyn.grid import build_grid
    from mfdyn.problems import make_problem

    tables = config.to_dict()
    out = {f"{section}.{key}": value for section in ("problem", "init", "dynamics")
           for key, value in tables[section].items() if f"{section}.{key}" != "dynamics.t_end"}
    grid = build_grid(make_problem(config), config)
    out["pde.cells"] = list(grid.cells)
    out["pde.bounds"] = [[float(lo), float(hi)] for lo, hi in grid.bounds]
    return out


def check_same_config(a: RunFile, b: RunFile) -> None:
    """ValueError naming the first key (and both values) on which the configs of two files differ where they must
    agree (_defining); [output], [particles], [kernel], dynamics.t_end and the PDE's stepping and Gibbs-iteration
    keys may differ."""
    fa, fb = (_defining(load_config(f.config_toml, from_text=True)) for f in (a, b))
    for key in [*fa, *(k for k in fb if k not in fa)]:
        va, vb = (toml_value(f[key]) if key in f else "(unset)" for f in (fa, fb))
        if va != vb:
            raise ValueError(f"{a.name} and {b.name} have different configs: {key} is {va} in the first and {vb} in "
                             "the second (the grid, [problem], [init] and [dynamics] but t_end must agree)")


def roles(first: RunFile, second: RunFile | None = None) -> tuple[RunFile, RunFile | None, bool]:
    """Which file is which in `mfdyn compare FIRST [--against SECOND]`: (the run, the file it is compared with or
    None, whether that one is a Gibbs file). A Gibbs file may come first or second; between two runs, the particles
    come from FIRST if it has them (else from SECOND) and the PDE from the other file. ValueError (one line) for
    files that cannot be compared: neither /pde nor /particles, two Gibbs files, a Gibbs file alone, configs that
    differ (check_same_config), or no /particles and /pde to pair."""
    files = [f for f in (first, second) if f is not None]
    for f in files:
        if not (f.has("pde") or f.has("particles")):
            raise ValueError(f"{f.name}: has neither /pde nor /particles ({_groups(f)}); nothing to compare")
    gibbs = [f for f in files if is_gibbs(f)]
    if len(gibbs) == 2:
        raise ValueError(f"{first.name} and {second.name} are both Gibbs states; compare a run with one of them")
    if second is None:
        if gibbs:
            raise ValueError(f"{first.name}: is a Gibbs state (mfdyn gibbs); compare a run of its config with it: "
                             f"mfdyn compare RUN.h5 --against {first.name}")
        if not (first.has("pde") and first.has("particles")):
            raise ValueError(f"{first.name}: compare needs /pde and /particles; this file has {_groups(first)}; "
                             "compare it with a file holding the other (--against RUN.h5) or with its Gibbs state "
                             "(--against GIBBS.h5)")
        return first, None, False
    if gibbs:
        run = second if gibbs[0] is first else first
        check_same_config(run, gibbs[0])
        return run, gibbs[0], True
    run, pde = (first, second) if first.has("particles") else (second, first)
    if not (run.has("particles") and pde.has("pde")):
        raise ValueError(f"{first.name} --against {second.name}: needs /particles in one file and /pde in the other; "
                         f"they have {_groups(first)} and {_groups(second)}")
    check_same_config(run, pde)
    return run, pde, False


def compare_files(first: RunFile, second: RunFile | None = None,
                  source: str | None = None) -> Comparison | GibbsComparison:
    """The comparison `mfdyn compare FIRST [--against SECOND]` prints (roles decides which file is which): a
    GibbsComparison when one file is a Gibbs state, else a Comparison of the run's particles with its own /pde or
    the other file's. source: the line saying where the PDE file came from (default: its name)."""
    run, other, gibbs = roles(first, second)
    return GibbsComparison.of(run, other) if gibbs else Comparison.of(run, other, source)


# ------------------------------------------------------------------------------------------ the domain edge


def edge_fraction(f: RunFile) -> float:
    """The largest fraction of the mass in the outermost cells (pde/engine.py's boundary_mass_max) over a file's
    /pde: its recorded attribute, else (a Gibbs file, a killed run) computed from its densities."""
    attrs = f.group_attrs("pde")
    if "boundary_mass_max" in attrs:
        return float(attrs["boundary_mass_max"])
    if not f.count("pde"):
        return math.nan
    from mfdyn.grid import build_grid
    from mfdyn.problems import make_problem
    from pde.engine import boundary_mass

    config = load_config(f.config_toml, from_text=True)
    problem = make_problem(config)
    grid = build_grid(problem, config)
    return max(boundary_mass(rho, grid, problem.natural_lower) for rho in f.series("pde", "density"))


def edge_reached(fraction: float) -> bool:
    """Whether that fraction means the mass has reached the domain edge (pde/engine.py's BOUNDARY_MASS_TOL)."""
    from pde.engine import BOUNDARY_MASS_TOL

    return bool(fraction > BOUNDARY_MASS_TOL)


def edge_line(fraction: float, of: str = "PDE") -> str:
    """The warning line of a table whose PDE (or another density, such as ρ*) has mass at the domain edge."""
    mass, subject = ("PDE mass", "the PDE") if of == "PDE" else (f"{of}'s mass", of)
    return f"{mass} reached the domain edge (fraction {fraction:.1e} at most): {subject} is cut there; widen pde.bounds"


# ------------------------------------------------------------------------------------------ the tables as objects


class _Table:
    """A comparison's arrays: indexable by key (c["risk_gap"]), keys(), and an xarray.Dataset on (time, quantile)
    with the attributes of the subclass's _attrs()."""

    table: dict[str, np.ndarray]
    observables: tuple[str, ...]

    def __getitem__(self, key: str) -> np.ndarray:
        return self.table[key]

    def keys(self):
        return self.table.keys()

    def to_xarray(self):
        import xarray as xr

        def dims(key: str, value: np.ndarray) -> tuple[str, ...]:
            if np.ndim(value) == 0:
                return ()
            if key.startswith("quantiles_star_"):
                return ("quantile",)
            return ("time",) if np.ndim(value) == 1 else ("time", "quantile")

        data = {k: (dims(k, v), v) for k, v in self.table.items() if k != "time"}
        return xr.Dataset(data, coords={"time": self.table["time"], "quantile": np.array(QUANTILES)},
                          attrs={"observables": "\n".join(self.observables), **self._attrs()})


@dataclass
class Comparison(_Table):
    """The comparison of a run: `table` (comparison_table's arrays), printed as `mfdyn compare` prints it,
    indexable by key (c["risk_gap"]), and as an xarray.Dataset on (time, quantile) with to_xarray().
    source: where the PDE came from when it is another file; boundary_mass_max and mass_reached_boundary: whether
    the PDE's mass reached the domain edge (the table then warns in its header)."""

    table: dict[str, np.ndarray]
    coords: list[str]
    n: int
    observables: tuple[str, ...]
    source: str | None = None
    boundary_mass_max: float = math.nan
    mass_reached_boundary: bool = False

    @classmethod
    def of(cls, run: RunFile, pde: RunFile | None = None, source: str | None = None) -> Comparison:
        """The comparison of a run file's particles with its /pde (or that of the file pde; source: the line
        saying where that came from, by default its name)."""
        if pde is not None and source is None:
            source = f"PDE from {pde.name}"
        table = comparison_table(run, pde)              # first: its one-line error for a file without /pde
        fraction = edge_fraction(run if pde is None else pde)
        return cls(table, run.coords("particles"), particle_count(run), observables_of(run), source, fraction,
                   edge_reached(fraction))

    def notes(self) -> tuple[str, ...]:
        """The header lines under the title: where the PDE came from, and the domain-edge warning."""
        return tuple(([self.source] if self.source else [])
                     + ([edge_line(self.boundary_mass_max)] if self.mass_reached_boundary else []))

    def __str__(self) -> str:
        return format_table(self.table, self.coords, self.n, self.observables, notes=self.notes())

    def _attrs(self) -> dict:
        return {"n": self.n, "source": self.source or "", "boundary_mass_max": self.boundary_mass_max,
                "mass_reached_boundary": int(self.mass_reached_boundary)}


def particle_count(run: RunFile) -> int:
    """N, the number of particles of a run file."""
    return len(run.fixed("particles", "particle"))


def write_comparison(run: RunFile, table: dict[str, np.ndarray]) -> None:
    """Store the table as the group /comparison (time and quantile as its dimension scales)."""
    dims = {name: ("time",) if np.ndim(v) == 1 else ("time", "quantile") for name, v in table.items()}
    run.write_table("comparison", table, dims, {"time": table["time"], "quantile": np.array(QUANTILES)},
                    quantile_levels=np.array(QUANTILES), observables="\n".join(observables_of(run)))


def terminal_width() -> int:
    """The width tables wrap to: the terminal's (COLUMNS, or the terminal of stdout), 80 when there is none."""
    return shutil.get_terminal_size((80, 24)).columns


def _columns(head: list[str], rows: list[list[str]], width: int, widths: list[int] | None = None,
             lead: int = 1) -> list[str]:
    """Right-aligned columns two spaces apart, in blocks of columns that fit in `width` characters (one block when
    all fit), each block repeating the first `lead` columns (the time); blocks are separated by a blank line.
    widths: each column's width (default: the widest of its header and cells)."""
    if widths is None:
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    fixed = sum(widths[:lead]) + 2 * (lead - 1)
    blocks, current, used = [], [], fixed
    for i in range(lead, len(head)):
        if current and used + 2 + widths[i] > width:
            blocks.append(current)
            current, used = [], fixed
        current.append(i)
        used += 2 + widths[i]
    blocks.append(current)
    lines = []
    for b, block in enumerate(blocks):
        columns = [*range(lead), *block]
        lines += [""] if b else []
        lines.append("  ".join(head[i].rjust(widths[i]) for i in columns))
        lines += ["  ".join(r[i].rjust(widths[i]) for i in columns) for r in rows]
    return lines


def quantile_name(coord: str, q: float) -> str:
    """A quantile column's name stem: r_q05, theta2_q95."""
    return f"{coord}_q{round(100 * q):02d}"


def format_table(table: dict[str, np.ndarray], coords: list[str], n: int,
                 observables: tuple[str, ...] = (), width: int | None = None, notes: tuple[str, ...] = ()) -> str:
    """The comparison as aligned text, one row per common time, wrapped to `width` characters (default: the
    terminal's, terminal_width) in blocks of columns that each repeat t; notes: lines under the title."""
    width = terminal_width() if width is None else width
    coupled = "risk_gd" in table
    reference = ("risk_gd", "R_gd") if coupled else ("risk_pde_finite_n", "R_pde+1/N")
    head = ["t", "R_pde", reference[1], "R_sgd", "gap"]
    for c in coords:
        head += [f"{quantile_name(c, q)}_pde" for q in QUANTILES] + [f"{quantile_name(c, q)}_sgd" for q in QUANTILES]
    rows = []
    for k, t in enumerate(table["time"]):
        row = [f"{t:g}"] + [f"{table[key][k]:.5f}" for key in ("risk_pde", reference[0], "risk_sgd")]
        row.append(f"{(table['total_risk'] if coupled else table['risk_gap'])[k]:+.5f}")
        for c in coords:
            row += [f"{v:.4f}" for v in table[f"quantiles_pde_{c}"][k]]
            row += [f"{v:.4f}" for v in table[f"quantiles_sgd_{c}"][k]]
        rows.append(row)
    title = (f"PDE vs SGD, N = {n} (R_gd: R_N of the N-particle gradient flow G, the finite-N reference; "
             "gap = R_sgd − R_pde, split below)" if coupled else
             f"PDE vs SGD, N = {n} (1/N term: for iid particles, docs/math.md §1, exact at t = 0 only; "
             "gap = R_sgd − R_pde − 1/N term)")
    lines = [title, *notes, *_columns(head, rows, width)]
    if rows:
        lines.append(f"max |gap| = {np.max(np.abs(table['total_risk' if coupled else 'risk_gap'])):.5f}")
    names = [k for k in table if k.startswith("gap_")]
    if names and rows:
        lines.append("")
        lines.append("test functions: |mean f(z_i) − ∫f dρ| per time, and W1(particles, ρ); f_k are")
        lines += [f"  f{k.split('_')[1]} = {expr}" for k, expr in zip(names, observables)] if observables else []
        head2 = ["t"] + [f"f{k.split('_')[1]}" for k in names] + ["W1"]
        rows2 = [[f"{t:g}"] + [f"{table[k][i]:.2e}" for k in names] + [f"{table['w1'][i]:.2e}"]
                 for i, t in enumerate(table["time"])]
        lines += _columns(head2, rows2, width, [10] * len(head2))
    if coupled and rows:
        lines += ["", format_parts(table, observables, width)]
    lazy = [k for k in LAZINESS if k in table and np.any(np.isfinite(table[k]))]
    if lazy and rows:
        words = {"risk_kernel": "R_∞ of the kernel engine", "w2_pde": "W2(ρ_t, ρ_0)",
                 "kernel_change_pde": "the PDE's relative kernel change", "displacement_sgd": "the particles' displacement",
                 "kernel_change_sgd": "their relative kernel change"}
        lines += ["", "lazy training (docs/math.md §7): " + "; ".join(words[k] for k in lazy)]
        rows3 = [[f"{t:g}"] + [f"{table[k][i]:.4e}" for k in lazy] for i, t in enumerate(table["time"])]
        lines += _columns(["t", *lazy], rows3, width, [17] * (1 + len(lazy)))
    return "\n".join(lines)


def format_parts(table: dict[str, np.ndarray], observables: tuple[str, ...] = (), width: int | None = None) -> str:
    """The parts of the gap (docs/math.md §8) as text: per quantity, a row per time of total, SGD, interaction and
    sampling parts, and the tracers' spread std_ρ0(f∘X_t)/√N that the sampling part has as its standard deviation.
    Wrapped to `width` (default: terminal_width) in blocks that each repeat t and the quantity."""
    names = ["risk"] + [k[len("total_"):] for k in table if k.startswith("total_") and k != "total_risk"]
    lines = ["where the gap comes from (docs/math.md §8): total = SGD part (S − G) + interaction part (G − T) "
             "+ sampling part (T − ρ_t)",
             f"  largest |sum of parts − total| = {np.max(table['parts_residual']):.1e}"]
    head = ["t", "quantity", "total", "SGD", "interaction", "sampling"]
    rows = []
    for q in names:
        label = "R" if q == "risk" else f"f{q}"
        for i, t in enumerate(table["time"]):
            rows.append([f"{t:g}", label] + [f"{table[key][i]:+.3e}" for key in
                                             (f"total_{q}", f"sgd_part_{q}", f"interaction_part_{q}", f"sampling_part_{q}")])
    lines += _columns(head, rows, terminal_width() if width is None else width, [11] * len(head), lead=2)
    if observables and len(names) > 1:
        lines += [f"  f{q} = {observables[int(q)]}" for q in names[1:]]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ against ρ*


def gibbs_table(run: RunFile, gibbs: RunFile) -> dict[str, np.ndarray]:
    """A run (its /pde and/or /particles) against the Gibbs state ρ* of a Gibbs file, at every save time of the run
    (NaN where one engine has no snapshot). Keys: time; of ρ*: risk_star, free_energy_star, quantiles_star_c (3,),
    obs_star_k; of the PDE: risk_pde, free_energy_pde, l1_pde = ∫|ρ_t − ρ*|, free_energy_gap_pde = (F − F*)/|F*|,
    risk_gap_pde = (R − R*)/|R*|, quantiles_pde_c (T, 3), obs_pde_k and gap_pde_k = |∫f dρ_t − ∫f dρ*|; of the
    particles: risk_sgd, risk_gap_sgd = (R_N − R*)/|R*|, risk_star_finite_n = R* + the iid 1/N term (E R_N of N iid
    draws from ρ*; SGD's particles are not iid, docs/math.md §8), w1_sgd = W1(particles, ρ*) (exact in 1-D, sliced
    above), quantiles_sgd_c, obs_sgd_k and gap_sgd_k = |mean f(z_i) − ∫f dρ*|. Test functions k: observables_of(run)."""
    if not gibbs.count("pde"):
        raise ValueError(f"{gibbs.name}: holds no Gibbs state (its /pde has no complete row)")
    coords = gibbs.coords("pde")
    centres = [gibbs.fixed("pde", c) for c in coords]
    edges = [edges_from_centres(c) for c in centres]
    volume = float(np.prod([c[1] - c[0] for c in centres]))
    star = gibbs.row("pde", "density", -1)
    engines = [g for g in ("pde", "particles") if run.has(g) and run.count(g)]
    if not engines:
        raise ValueError(f"{run.name}: has no complete snapshot of /pde or /particles to compare with ρ*")
    times = np.unique(np.concatenate([run.series(g, "time") for g in engines]))
    risk_star = float(gibbs.row("pde", "risk", -1))
    table = {"time": times, "risk_star": np.float64(risk_star),
             "free_energy_star": np.float64(gibbs.row("pde", "free_energy", -1))}
    observables = observables_of(run)
    for axis, c in enumerate(coords):
        table[f"quantiles_star_{c}"] = marginal_quantiles(star, edges, axis)
    for k, expression in enumerate(observables):
        table[f"obs_star_{k}"] = np.float64(pde_expectation(expression, tuple(coords), star, centres))

    def fill(rows: np.ndarray, values: list) -> np.ndarray:
        """Values at the matched rows, NaN elsewhere (one value per matched time, scalars or (3,) quantiles)."""
        out = np.full((len(times),) + np.shape(values[0]) if values else (len(times),), np.nan)
        out[rows >= 0] = values
        return out

    if "pde" in engines:
        rows = _match(times, run.series("pde", "time"))
        rhos = [run.row("pde", "density", j) for j in rows[rows >= 0]]
        risk = run.series("pde", "risk")[rows[rows >= 0]]
        free = run.series("pde", "free_energy")[rows[rows >= 0]]
        table["risk_pde"], table["free_energy_pde"] = fill(rows, list(risk)), fill(rows, list(free))
        table["l1_pde"] = fill(rows, [float(np.abs(rho - star).sum() * volume) for rho in rhos])
        with np.errstate(divide="ignore", invalid="ignore"):
            table["free_energy_gap_pde"] = (table["free_energy_pde"] - table["free_energy_star"]) / abs(
                table["free_energy_star"])
            table["risk_gap_pde"] = (table["risk_pde"] - risk_star) / abs(risk_star)
        for axis, c in enumerate(coords):
            table[f"quantiles_pde_{c}"] = fill(rows, [marginal_quantiles(rho, edges, axis) for rho in rhos])
        for k, expression in enumerate(observables):
            table[f"obs_pde_{k}"] = fill(rows, [pde_expectation(expression, tuple(coords), rho, centres)
                                                for rho in rhos])
            table[f"gap_pde_{k}"] = np.abs(table[f"obs_pde_{k}"] - table[f"obs_star_{k}"])
    if "particles" in engines:
        rows = _match(times, run.series("particles", "time"))
        zs = [run.row("particles", "z", j) for j in rows[rows >= 0]]
        reference = float(risk_with_finite_n(risk_star, gibbs.row("pde", "finite_n_term", -1), particle_count(run)))
        table["risk_sgd"] = fill(rows, list(run.series("particles", "risk")[rows[rows >= 0]]))
        table["risk_star_finite_n"] = np.float64(reference)
        with np.errstate(divide="ignore", invalid="ignore"):
            table["risk_gap_sgd"] = (table["risk_sgd"] - risk_star) / abs(risk_star)
        w1 = _w1_against(centres, edges)
        table["w1_sgd"] = fill(rows, [w1(z, star) for z in zs])
        for axis, c in enumerate(coords):
            table[f"quantiles_sgd_{c}"] = fill(rows, [particle_quantiles(z[:, axis:axis + 1])[:, 0] for z in zs])
        for k, expression in enumerate(observables):
            table[f"obs_sgd_{k}"] = fill(rows, [float(evaluate(expression, tuple(coords), list(z.T)).mean())
                                                for z in zs])
            table[f"gap_sgd_{k}"] = np.abs(table[f"obs_sgd_{k}"] - table[f"obs_star_{k}"])
    return table


@dataclass
class GibbsComparison(_Table):
    """A run against the Gibbs state ρ* of its config (gibbs_table's arrays): str() is the table `mfdyn compare
    RUN --against GIBBS` prints (ρ*, the run's last PDE and SGD states, and the distances to ρ* at every save
    time); c["l1_pde"], keys() and to_xarray() as for a Comparison. boundary_mass_max / mass_reached_boundary: the
    run's PDE at the domain edge; star_boundary_mass / star_reached_boundary: ρ*'s; gibbs_status: the Gibbs file's
    status ("failed: not converged …" when ρ* is the iteration's last iterate, which the table then says)."""

    table: dict[str, np.ndarray]
    coords: list[str]
    n: int | None
    observables: tuple[str, ...]
    run_name: str
    gibbs_name: str
    boundary_mass_max: float = math.nan
    mass_reached_boundary: bool = False
    star_boundary_mass: float = math.nan
    star_reached_boundary: bool = False
    gibbs_status: str = "completed"

    @classmethod
    def of(cls, run: RunFile, gibbs: RunFile) -> GibbsComparison:
        """The comparison of a run file (/pde and/or /particles) with the Gibbs file of its config."""
        table = gibbs_table(run, gibbs)
        fraction = edge_fraction(run) if run.has("pde") else math.nan
        star = edge_fraction(gibbs)
        return cls(table, gibbs.coords("pde"), particle_count(run) if run.has("particles") else None,
                   observables_of(run), run.name, gibbs.name, fraction, edge_reached(fraction), star,
                   edge_reached(star), gibbs.status)

    def notes(self) -> tuple[str, ...]:
        """The domain-edge warnings of the run's PDE and of ρ*, and a line if ρ* did not converge."""
        return tuple(([f"{self.gibbs_name}: status {self.gibbs_status!r}: ρ* is the iteration's last iterate"]
                      if self.gibbs_status != "completed" else [])
                     + ([edge_line(self.boundary_mass_max)] if self.mass_reached_boundary else [])
                     + ([edge_line(self.star_boundary_mass, "ρ*")] if self.star_reached_boundary else []))

    def __str__(self) -> str:
        return format_gibbs(self.table, self.coords, self.n, self.observables, self.run_name, self.gibbs_name,
                            notes=self.notes())

    def _attrs(self) -> dict:
        return {"n": -1 if self.n is None else self.n, "run": self.run_name, "gibbs": self.gibbs_name,
                "boundary_mass_max": self.boundary_mass_max, "mass_reached_boundary": int(self.mass_reached_boundary),
                "star_boundary_mass": self.star_boundary_mass, "star_reached_boundary": int(self.star_reached_boundary),
                "gibbs_status": self.gibbs_status}


def format_gibbs(table: dict[str, np.ndarray], coords: list[str], n: int | None, observables: tuple[str, ...],
                 run_name: str, gibbs_name: str, width: int | None = None, notes: tuple[str, ...] = ()) -> str:
    """A GibbsComparison as text, wrapped to `width` (default: terminal_width): ρ* and the run's last state of each
    engine (R, quantiles, ∫f), then the distances to ρ* at every save time."""
    width = terminal_width() if width is None else width
    engines = [(e, label) for e, label in (("pde", "PDE"), ("sgd", "SGD")) if f"risk_{e}" in table]
    what = " and ".join(label for _, label in engines) + (f", N = {n}" if n is not None else "")
    lines = [f"{run_name} ({what}) against the Gibbs state ρ* of {gibbs_name} (docs/math.md §6): the last state",
             *notes]
    names = [f"{quantile_name(c, q)}" for c in coords for q in QUANTILES] + [f"f{k}" for k in range(len(observables))]
    head = ["", "t", "R", *names]

    def values(prefix: str, i: int | None) -> list[str]:
        pick = (lambda v: v) if i is None else (lambda v: v[i])
        return ([f"{pick(table[f'quantiles_{prefix}_{c}'])[j]:.4f}" for c in coords for j in range(len(QUANTILES))]
                + [f"{float(pick(table[f'obs_{prefix}_{k}'])):.5f}" for k in range(len(observables))])

    rows = [["ρ*", "inf", f"{float(table['risk_star']):.5f}", *values("star", None)]]
    for e, label in engines:
        last = int(np.flatnonzero(np.isfinite(table[f"quantiles_{e}_{coords[0]}"][:, 0])).max())   # its last snapshot
        rows.append([label, f"{table['time'][last]:g}", f"{table[f'risk_{e}'][last]:.5f}", *values(e, last)])
    lines += _columns(head, rows, width, lead=2)
    if "risk_star_finite_n" in table:
        lines.append(f"  R* + 1/N term = {float(table['risk_star_finite_n']):.5f}: E R_N of N iid draws from ρ* (SGD's "
                     "particles are not iid: docs/math.md §8)")
    lines += [f"  f{k} = {expr}" for k, expr in enumerate(observables)]
    columns = [(key, label, fmt) for key, label, fmt in
               (("l1_pde", "L1_pde", ".2e"), ("free_energy_gap_pde", "dF_pde", "+.2e"), ("risk_gap_pde", "dR_pde", "+.2e"),
                ("w1_sgd", "W1_sgd", ".2e"), ("risk_gap_sgd", "dR_sgd", "+.2e")) if key in table]
    lines += ["", "distance to ρ* at every save time: L1 = ∫|ρ_t − ρ*|, dF = (F − F*)/|F*|, dR = (R − R*)/|R*| "
              "(R_N for SGD), W1(particles, ρ*)"]
    rows2 = [[f"{t:g}"] + [format(table[key][i], fmt) for key, _, fmt in columns] for i, t in enumerate(table["time"])]
    lines += _columns(["t", *(label for _, label, _ in columns)], rows2, width)
    return "\n".join(lines)
