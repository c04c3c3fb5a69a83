"""`mfdyn compare`: PDE against SGD at the common save times (docs/math.md §1, §2)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mfdyn.config import load_config
from mfdyn.expressions import default_observables, evaluate
from mfdyn.storage import RunFile
from validation.observables import (
    QUANTILES,
    SlicedW1,
    edges_from_centres,
    marginal_quantiles,
    particle_quantiles,
    pde_expectation,
    risk_with_finite_n,
    w1_1d,
)


def observables_for(config) -> tuple[str, ...]:
    """The test functions of a config: output.observables, or the defaults for its problem's coordinates."""
    return config.output.observables or default_observables(config.coordinates)


def observables_of(run: RunFile) -> tuple[str, ...]:
    """The test functions of a run file (observables_for its config)."""
    return observables_for(load_config(run.config_toml, from_text=True))


@lru_cache(maxsize=8)
def _sliced_w1(grid_key: tuple) -> SlicedW1:
    """One SlicedW1 per grid (its projections are the expensive part), shared by every member of a sweep."""
    return SlicedW1([np.linspace(lo, hi, n) for lo, hi, n in grid_key])


def comparison_table(run: RunFile, pde: RunFile | None = None) -> dict[str, np.ndarray]:
    """Risks, test functions, W1 and reduced-coordinate quantiles of both engines at their common times.

    Keys: time, risk_pde, risk_pde_finite_n (R_pde + the iid 1/N term), risk_sgd, risk_gap
    (R_sgd − R_pde − 1/N term); per coordinate c: quantiles_pde_c, quantiles_sgd_c (T, 3); per test
    function k (attribute `observables` lists them): obs_pde_k, obs_sgd_k, gap_k = |mean f(z_i) − ∫f dρ|;
    and w1: W1 between the particles' reduced coordinates and ρ (exact in 1-D, sliced above).
    pde: the file holding /pde, if it is another one (sweeps).
    """
    pde = run if pde is None else pde
    if not pde.has("pde") or not run.has("particles"):
        raise ValueError(f"{run.name}: compare needs /pde and /particles; this file has "
                         + (", ".join(f"/{g}" for g in run.groups()) or "no groups"))
    t_pde, t_sgd = pde.series("pde", "time"), run.series("particles", "time")
    pairs = [(i, int(np.argmin(np.abs(t_pde - t)))) for i, t in enumerate(t_sgd)]
    pairs = [(i, j) for i, j in pairs if t_pde.size and abs(t_pde[j] - t_sgd[i]) <= 1e-9 * max(1.0, t_sgd[i])]
    i_sgd = np.array([i for i, _ in pairs], dtype=int)
    i_pde = np.array([j for _, j in pairs], dtype=int)
    n = particle_count(run)
    risk_pde = pde.series("pde", "risk")[i_pde]
    config = load_config(run.config_toml, from_text=True)
    # The iid 1/N term (docs/math.md §1) is E R_N − R for iid particles; paired particles (init.symmetric) and
    # the centred model have an initial output of exactly f(ρ_0) (or 0), so their reference is R itself
    iid = not (config.init.symmetric or config.dynamics.centered)
    finite_n = pde.series("pde", "finite_n_term")[i_pde] if iid else 0.0
    table = {"time": t_sgd[i_sgd], "risk_pde": risk_pde,
             "risk_pde_finite_n": risk_with_finite_n(risk_pde, finite_n, n),
             "risk_sgd": run.series("particles", "risk")[i_sgd]}
    table["risk_gap"] = table["risk_sgd"] - table["risk_pde_finite_n"]
    coords = run.coords("particles")
    centres = [pde.fixed("pde", c) for c in coords]
    edges = [edges_from_centres(c) for c in centres]
    zs = [run.row("particles", "z", i) for i in i_sgd]
    rhos = [pde.row("pde", "density", j) for j in i_pde]
    for axis, c in enumerate(coords):
        table[f"quantiles_pde_{c}"] = np.array([marginal_quantiles(rho, edges, axis) for rho in rhos])
        table[f"quantiles_sgd_{c}"] = np.array([particle_quantiles(z[:, axis:axis + 1])[:, 0] for z in zs])
    for k, expression in enumerate(observables_of(run)):
        on_grid = np.array([pde_expectation(expression, tuple(coords), rho, centres) for rho in rhos])
        on_particles = np.array([evaluate(expression, tuple(coords), list(z.T)).mean() for z in zs])
        table[f"obs_pde_{k}"], table[f"obs_sgd_{k}"] = on_grid, on_particles
        table[f"gap_{k}"] = np.abs(on_particles - on_grid)
    w1 = ((lambda z, rho: w1_1d(z[:, 0], rho, edges[0])) if len(coords) == 1
          else _sliced_w1(tuple((float(c[0]), float(c[-1]), len(c)) for c in centres)))
    table["w1"] = np.array([w1(z, rho) for z, rho in zip(zs, rhos)])
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


@dataclass
class Comparison:
    """The comparison of a run: `table` (comparison_table's arrays), printed as `mfdyn compare` prints it,
    indexable by key (c["risk_gap"]), and as an xarray.Dataset on (time, quantile) with to_xarray()."""

    table: dict[str, np.ndarray]
    coords: list[str]
    n: int
    observables: tuple[str, ...]

    @classmethod
    def of(cls, run: RunFile, pde: RunFile | None = None) -> Comparison:
        """The comparison of a run file's particles with its /pde (or that of the file pde)."""
        return cls(comparison_table(run, pde), run.coords("particles"), particle_count(run), observables_of(run))

    def __str__(self) -> str:
        return format_table(self.table, self.coords, self.n, self.observables)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.table[key]

    def keys(self):
        return self.table.keys()

    def to_xarray(self):
        import xarray as xr

        data = {k: (("time",) if np.ndim(v) == 1 else ("time", "quantile"), v)
                for k, v in self.table.items() if k != "time"}
        return xr.Dataset(data, coords={"time": self.table["time"], "quantile": np.array(QUANTILES)},
                          attrs={"observables": "\n".join(self.observables), "n": self.n})


def particle_count(run: RunFile) -> int:
    """N, the number of particles of a run file."""
    return len(run.fixed("particles", "particle"))


def write_comparison(run: RunFile, table: dict[str, np.ndarray]) -> None:
    """Store the table as the group /comparison (time and quantile as its dimension scales)."""
    dims = {name: ("time",) if np.ndim(v) == 1 else ("time", "quantile") for name, v in table.items()}
    run.write_table("comparison", table, dims, {"time": table["time"], "quantile": np.array(QUANTILES)},
                    quantile_levels=np.array(QUANTILES), observables="\n".join(observables_of(run)))


def format_table(table: dict[str, np.ndarray], coords: list[str], n: int,
                 observables: tuple[str, ...] = ()) -> str:
    """The comparison as aligned text, one row per common time."""
    coupled = "risk_gd" in table
    reference = ("risk_gd", "R_gd") if coupled else ("risk_pde_finite_n", "R_pde+1/N")
    head = ["t", "R_pde", reference[1], "R_sgd", "gap"]
    for c in coords:
        head += [f"{c}{int(100 * q)}_pde" for q in QUANTILES] + [f"{c}{int(100 * q)}_sgd" for q in QUANTILES]
    rows = []
    for k, t in enumerate(table["time"]):
        row = [f"{t:g}"] + [f"{table[key][k]:.5f}" for key in ("risk_pde", reference[0], "risk_sgd")]
        row.append(f"{(table['total_risk'] if coupled else table['risk_gap'])[k]:+.5f}")
        for c in coords:
            row += [f"{v:.4f}" for v in table[f"quantiles_pde_{c}"][k]]
            row += [f"{v:.4f}" for v in table[f"quantiles_sgd_{c}"][k]]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    title = (f"PDE vs SGD, N = {n} (R_gd: R_N of the N-particle gradient flow G, the finite-N reference; "
             "gap = R_sgd − R_pde, split below)" if coupled else
             f"PDE vs SGD, N = {n} (1/N term: for iid particles, docs/math.md §1, exact at t = 0 only; "
             "gap = R_sgd − R_pde − 1/N term)")
    lines = [title, "  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    if rows:
        lines.append(f"max |gap| = {np.max(np.abs(table['total_risk' if coupled else 'risk_gap'])):.5f}")
    names = [k for k in table if k.startswith("gap_")]
    if names and rows:
        lines.append("")
        lines.append("test functions: |mean f(z_i) − ∫f dρ| per time, and W1(particles, ρ); f_k are")
        lines += [f"  f{k.split('_')[1]} = {expr}" for k, expr in zip(names, observables)] if observables else []
        head2 = ["t"] + [f"f{k.split('_')[1]}" for k in names] + ["W1"]
        lines.append("  ".join(h.rjust(10) for h in head2))
        for i, t in enumerate(table["time"]):
            lines.append("  ".join([f"{t:g}".rjust(10)] + [f"{table[k][i]:.2e}".rjust(10) for k in names]
                                   + [f"{table['w1'][i]:.2e}".rjust(10)]))
    if coupled and rows:
        lines += ["", format_parts(table, observables)]
    lazy = [k for k in LAZINESS if k in table and np.any(np.isfinite(table[k]))]
    if lazy and rows:
        words = {"risk_kernel": "R_∞ of the kernel engine", "w2_pde": "W2(ρ_t, ρ_0)",
                 "kernel_change_pde": "the PDE's relative kernel change", "displacement_sgd": "the particles' displacement",
                 "kernel_change_sgd": "their relative kernel change"}
        lines += ["", "lazy training (docs/math.md §7): " + "; ".join(words[k] for k in lazy)]
        lines.append("  ".join(h.rjust(17) for h in ["t", *lazy]))
        for i, t in enumerate(table["time"]):
            lines.append("  ".join([f"{t:g}".rjust(17)] + [f"{table[k][i]:.4e}".rjust(17) for k in lazy]))
    return "\n".join(lines)


def format_parts(table: dict[str, np.ndarray], observables: tuple[str, ...] = ()) -> str:
    """The parts of the gap (docs/math.md §8) as text: per quantity, a row per time of total, SGD, interaction and
    sampling parts, and the tracers' spread std_ρ0(f∘X_t)/√N that the sampling part has as its standard deviation."""
    names = ["risk"] + [k[len("total_"):] for k in table if k.startswith("total_") and k != "total_risk"]
    lines = ["where the gap comes from (docs/math.md §8): total = SGD part (S − G) + interaction part (G − T) "
             "+ sampling part (T − ρ_t)",
             f"  largest |sum of parts − total| = {np.max(table['parts_residual']):.1e}"]
    head = ["t", "quantity", "total", "SGD", "interaction", "sampling"]
    lines.append("  ".join(h.rjust(11) for h in head))
    for q in names:
        label = "R" if q == "risk" else f"f{q}"
        for i, t in enumerate(table["time"]):
            cells = [f"{t:g}", label] + [f"{table[key][i]:+.3e}" for key in
                                         (f"total_{q}", f"sgd_part_{q}", f"interaction_part_{q}", f"sampling_part_{q}")]
            lines.append("  ".join(c.rjust(11) for c in cells))
    if observables and len(names) > 1:
        lines += [f"  f{q} = {observables[int(q)]}" for q in names[1:]]
    return "\n".join(lines)
