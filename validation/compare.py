"""`mfdyn compare`: PDE against SGD at the common save times (MATH.md §1, §2)."""
from __future__ import annotations

import h5py
import numpy as np

from validation.observables import (QUANTILES, edges_from_centres, marginal_quantiles,
                                    particle_quantiles, risk_with_finite_n)


def _coords(f: h5py.File) -> list[str]:
    return f["particles"].attrs["coords"].split(",")


def comparison_table(f: h5py.File) -> dict[str, np.ndarray]:
    """Risks and reduced-coordinate quantiles of both engines at the times both saved.

    Keys: time, risk_pde, risk_pde_finite_n (R_pde + the 1/N term), risk_sgd, risk_gap
    (R_sgd − R_pde − 1/N term), and per coordinate c: quantiles_pde_c, quantiles_sgd_c of shape (T, 3).
    """
    if "pde" not in f or "particles" not in f:
        raise ValueError(f"{f.filename}: compare needs both engines; this file has "
                         + (", ".join(g for g in ("pde", "particles") if g in f) or "neither"))
    t_pde, t_sgd = f["pde/time"][:], f["particles/time"][:]
    pairs = [(i, int(np.argmin(np.abs(t_pde - t)))) for i, t in enumerate(t_sgd)]
    pairs = [(i, j) for i, j in pairs if t_pde.size and abs(t_pde[j] - t_sgd[i]) <= 1e-9 * max(1.0, t_sgd[i])]
    i_sgd = np.array([i for i, _ in pairs], dtype=int)
    i_pde = np.array([j for _, j in pairs], dtype=int)
    n = f["particles/theta"].shape[1]
    risk_pde = f["pde/risk"][:][i_pde]
    table = {"time": t_sgd[i_sgd], "risk_pde": risk_pde,
             "risk_pde_finite_n": risk_with_finite_n(risk_pde, f["pde/finite_n_term"][:][i_pde], n),
             "risk_sgd": f["particles/risk"][:][i_sgd]}
    table["risk_gap"] = table["risk_sgd"] - table["risk_pde_finite_n"]
    coords = _coords(f)
    edges = [edges_from_centres(f["pde"][c][:]) for c in coords]
    density = f["pde/density"]
    for axis, c in enumerate(coords):
        table[f"quantiles_pde_{c}"] = np.array([marginal_quantiles(density[j], edges, axis) for j in i_pde])
        table[f"quantiles_sgd_{c}"] = np.array([particle_quantiles(f["particles/z"][i][:, axis:axis + 1])[:, 0]
                                                for i in i_sgd])
    return table


def write_comparison(f: h5py.File, table: dict[str, np.ndarray]) -> None:
    """Store the table under /comparison (time as its dimension scale)."""
    g = f.require_group("comparison")
    for name, values in table.items():
        if name in g:
            del g[name]
        g.create_dataset(name, data=values)
    g["time"].make_scale("time")
    if "quantile" not in g:
        g.create_dataset("quantile", data=np.array(QUANTILES)).make_scale("quantile")
    for name, values in table.items():
        if name != "time":
            g[name].dims[0].attach_scale(g["time"])
            if np.ndim(values) == 2:
                g[name].dims[1].attach_scale(g["quantile"])
    g.attrs["quantile_levels"] = np.array(QUANTILES)
    f.flush()


def format_table(table: dict[str, np.ndarray], coords: list[str], n: int) -> str:
    """The comparison as aligned text, one row per common time."""
    head = ["t", "R_pde", "R_pde+1/N", "R_sgd", "gap"]
    for c in coords:
        head += [f"{c}{int(100 * q)}_pde" for q in QUANTILES] + [f"{c}{int(100 * q)}_sgd" for q in QUANTILES]
    rows = []
    for k, t in enumerate(table["time"]):
        row = [f"{t:g}"] + [f"{table[key][k]:.5f}" for key in ("risk_pde", "risk_pde_finite_n", "risk_sgd")]
        row.append(f"{table['risk_gap'][k]:+.5f}")
        for c in coords:
            row += [f"{v:.4f}" for v in table[f"quantiles_pde_{c}"][k]]
            row += [f"{v:.4f}" for v in table[f"quantiles_sgd_{c}"][k]]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = [f"PDE vs SGD, N = {n} (1/N term: MATH §1; gap = R_sgd − R_pde − 1/N term)",
             "  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    if rows:
        lines.append(f"max |gap| = {np.max(np.abs(table['risk_gap'])):.5f}")
    return "\n".join(lines)
