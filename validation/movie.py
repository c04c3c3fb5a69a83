"""`mfdyn movie`: the PDE density evolving with the particles drawn over it, as a GIF or an MP4
(docs/guide.md, "Movies").

One frame per PDE save time (or every K-th), beside the risk (energy, for the data-free linear flows)
of both engines with a time cursor. The figure is built once and its artists are moved from frame to
frame; the axes and the colour scales are fixed over the whole movie, from one pass over all frames.
"""
from __future__ import annotations

import math
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mfdyn.config import load_config
from mfdyn.problems import PROBLEMS, make_problem
from mfdyn.storage import RunFile
from validation.compare import particle_count
from validation.plots import _marginal

SUFFIXES = (".gif", ".mp4")
DPI = 80                     # the frames' resolution: a 10 × 4.2 in figure is 800 × 336 pixels
MAX_POINTS = 2000            # particles drawn per frame: a fixed subset, so that the same ones move
SHOWN = (0.001, 0.999)       # the axes hold this share of the PDE mass and of the particles, in every frame
PAIRS = ((0, 1), (0, 2), (1, 2))
BINS = 40                    # histogram bins of the particles (1-D) over the fixed x range
CMAP = "Blues"
NO_FFMPEG = "{out}: MP4 needs ffmpeg (not on the PATH; pip install 'mfdyn[movie]' provides one), or write a .gif"

Updater = Callable[[list[np.ndarray] | None, np.ndarray | None], None]


def _interval(weights: np.ndarray, centres: np.ndarray) -> tuple[float, float]:
    """The cell-centre range holding the SHOWN share of a 1-D marginal's mass (weights ≥ 0 per cell)."""
    cdf = np.cumsum(weights)
    if cdf[-1] <= 0:
        return float(centres[0]), float(centres[-1])
    lo, hi = np.searchsorted(cdf / cdf[-1], SHOWN)
    return float(centres[lo]), float(centres[min(hi, len(centres) - 1)])


def _bulk_height(curve: np.ndarray, window: int) -> float:
    """The height of a 1-D density without a narrow side peak: its maximum, unless the peak (the cells within
    `window` of it) holds under half of the mass and is over 3× the rest of the curve, which then sets it."""
    j = int(np.argmax(curve))
    near = np.abs(np.arange(len(curve)) - j) <= window
    rest = float(curve[~near].max()) if (~near).any() else 0.0
    spike = curve[j] > 3 * rest and curve[near].sum() < 0.5 * curve.sum()
    return rest if spike else float(curve[j])


def _histogram(z: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The particles' density on the bins `edges` (count / (N × width); mass outside is not shown)."""
    return np.histogram(z, bins=edges)[0] / (len(z) * np.diff(edges))


def _legend_above(ax, handles: list | None = None):
    """The axes' legend in one row just above it, where nothing moves (so it is drawn once, with the still part)."""
    return ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, frameon=False,
                     fontsize=8, borderaxespad=0.2)


class Movie:
    """The movie's figure, built once: draw(k) moves its artists to frame k, render(k) gives that frame's pixels.

    run: an open run file with complete snapshots in /pde, /particles or both. One frame per PDE save
    time, every `every`-th (per particle save for a particles-only run); each frame draws the nearest
    particle save. Attributes for inspection: figure (a matplotlib Figure, no display needed), times (F,)
    the frame times, pde_rows / particle_rows (F,) the rows drawn (None without that group), cursor (the
    time cursor, a Line2D), title, colorbars, legends, curve_axes, density_axes.
    """

    def __init__(self, run: RunFile, every: int = 1, dpi: float = DPI):
        if not isinstance(every, (int, np.integer)) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every (--every): must be an integer ≥ 1 (one frame per every-th save), got {every!r}")
        self.run = run
        has_pde, has_particles = (run.count(g) > 0 for g in ("pde", "particles"))
        if not (has_pde or has_particles):
            raise ValueError(f"{run.name}: a movie needs snapshots in /pde or /particles; this file has "
                             + (", ".join(f"/{g}" for g in run.groups()) or "no groups"))
        t_pde = run.series("pde", "time") if has_pde else None
        t_sgd = run.series("particles", "time") if has_particles else None
        self._t_sgd = t_sgd
        leading = t_pde if has_pde else t_sgd
        rows = np.flatnonzero(np.isfinite(leading))[::every]
        if not rows.size:
            raise ValueError(f"{run.name}: no finite save times to animate (a Gibbs state is one at t = inf)")
        self.times = leading[rows]
        self.pde_rows = rows if has_pde else None
        self.particle_rows = (np.array([int(np.argmin(np.abs(t_sgd - t))) for t in self.times])
                              if has_particles else None)
        config = load_config(run.config_toml, from_text=True)
        self.problem = config.problem.name
        self.teacher = make_problem(config).teacher_points(config.dynamics.alpha)      # (m, ndim) or None
        self.coords = run.coords("pde" if has_pde else "particles")
        self.ndim = len(self.coords)
        self.n = particle_count(run) if has_particles else 0
        self.show = np.arange(0, self.n, max(1, math.ceil(self.n / MAX_POINTS)))
        self.centres = [run.fixed("pde", c) for c in self.coords] if has_pde else None
        self.widths = np.array([c[1] - c[0] for c in self.centres]) if has_pde else None
        self._build(dpi, t_pde, t_sgd, PROBLEMS[self.problem].quantity)

    # ------------------------------------------------------------------ data per frame
    def _views(self, density: np.ndarray) -> list[np.ndarray]:
        """What the density panels show of one PDE row: the density (1-D, 2-D) or its three pairwise marginals."""
        return [density] if self.ndim < 3 else [_marginal(density, pair, self.widths) for pair in PAIRS]

    def _frame(self, k: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        density = None if self.pde_rows is None else self.run.row("pde", "density", int(self.pde_rows[k]))
        z = None if self.particle_rows is None else self.run.row("particles", "z", int(self.particle_rows[k]))
        return density, z

    def _scales(self) -> tuple[list[tuple[float, float]], list[float]]:
        """One pass over every frame: per coordinate the fixed axis range (the SHOWN share of the PDE mass and
        of the particles, in every frame, with a margin), and per density panel the top of its colour scale (1-D:
        of the y axis, the curve's height without a narrow peak, or the histogram's)."""
        lo, hi = np.full(self.ndim, np.inf), np.full(self.ndim, -np.inf)
        tops = [0.0] * (1 if self.ndim < 3 else 3)
        curves = []                                   # 1-D: the densities, for the y axis once the x range is known
        for row in [] if self.pde_rows is None else self.pde_rows:
            density = self.run.row("pde", "density", int(row))
            for axis in range(self.ndim):
                a, b = _interval(_marginal(density, (axis,), self.widths), self.centres[axis])
                lo[axis], hi[axis] = min(lo[axis], a), max(hi[axis], b)
            if self.ndim == 1:
                curves.append(density)
            else:
                tops = [max(top, float(view.max())) for top, view in zip(tops, self._views(density))]
        particle_rows = [] if self.particle_rows is None else np.unique(self.particle_rows)
        for row in particle_rows:
            q = np.quantile(self.run.row("particles", "z", int(row)), SHOWN, axis=0)
            lo, hi = np.minimum(lo, q[0]), np.maximum(hi, q[1])
        pad = (hi - lo) * 0.04 + (0 if self.widths is None else 2 * self.widths)
        pad = np.where(pad > 0, pad, 1.0)
        # the margin stops at the grid's edges (r ≥ 0), unless particles lie beyond them
        edges = ([(-np.inf, np.inf)] * self.ndim if self.centres is None else
                 [(c[0] - h / 2, c[-1] + h / 2) for c, h in zip(self.centres, self.widths)])
        limits = [(float(max(a - p, min(e_lo, a))), float(min(b + p, max(e_hi, b))))
                  for a, b, p, (e_lo, e_hi) in zip(lo, hi, pad, edges)]
        if self.ndim == 1:
            if curves:
                window = max(3, int((limits[0][1] - limits[0][0]) / self.widths[0]) // 40)
                tops[0] = max(_bulk_height(curve, window) for curve in curves)
            bins = np.linspace(*limits[0], BINS + 1)
            for row in particle_rows:
                tops[0] = max(tops[0], float(_histogram(self.run.row("particles", "z", int(row))[:, 0], bins).max()))
            tops[0] *= 1.1
        return limits, [top if top > 0 else 1.0 for top in tops]

    # ------------------------------------------------------------------ the figure
    def _build(self, dpi: float, t_pde: np.ndarray | None, t_sgd: np.ndarray | None, quantity: str) -> None:
        """Lay the figure out once and draw its still part (axes, ticks, curves, colour bars) once; the moving
        artists (density, particles, cursor, legends over them, title) are drawn over that per frame."""
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        limits, tops = self._scales()
        self.colorbars, self.legends = [], []
        if self.ndim < 3:
            self.figure = Figure(figsize=(10, 4.2), dpi=dpi, layout="constrained")
            density_ax, self.curve_axes = self.figure.subplots(1, 2, width_ratios=[1.15, 1])
            self.density_axes = [density_ax]
            panels = [self._panel_1d(density_ax, limits, tops[0]) if self.ndim == 1
                      else self._panel_2d(density_ax, limits, tops[0], 0)]
        else:
            self.figure = Figure(figsize=(12, 7), dpi=dpi, layout="constrained")
            grid = self.figure.add_gridspec(2, 3, height_ratios=[1.3, 1])
            self.density_axes = [self.figure.add_subplot(grid[0, col]) for col in range(3)]
            self.curve_axes = self.figure.add_subplot(grid[1, :])
            panels = [self._panel_2d(ax, limits, tops[k], k) for k, ax in enumerate(self.density_axes)]
        self._updaters = [update for update, _ in panels]
        self.cursor = self._curve_panel(self.curve_axes, t_pde, t_sgd, quantity)
        self.title = self.figure.suptitle(" ")
        self._moving = [artist for _, artists in panels for artist in artists]
        for ax in self.density_axes:                 # the axes' frame stays on top of the moving density
            self._moving += list(ax.spines.values())
        self._moving += [self.cursor, self.title]
        for artist in self._moving:
            artist.set_animated(True)
        self.draw(0)
        self.figure.draw_without_rendering()        # lay out once, then keep it: no layout pass per frame
        with matplotlib.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
            self.figure.set_layout_engine(None)
        self._canvas = FigureCanvasAgg(self.figure)
        self._canvas.draw()                          # the still part: animated artists are left out
        self._background = self._canvas.copy_from_bbox(self.figure.bbox)

    def _panel_1d(self, ax, limits, top: float) -> tuple[Updater, list]:
        """The density of the one coordinate (line) over the particles' histogram (filled steps)."""
        name = self.coords[0]
        edges = np.linspace(*limits[0], BINS + 1)
        steps = None if self.particle_rows is None else ax.stairs(
            np.zeros(len(edges) - 1), edges, fill=True, color="C3", alpha=0.35, label=f"particles (N = {self.n})")
        line = None if self.centres is None else ax.plot(self.centres[0], np.zeros(len(self.centres[0])), color="C0",
                                                         lw=1.5, label="PDE")[0]
        note = ax.text(0.98, 0.97, "", transform=ax.transAxes, ha="right", va="top", fontsize=8)
        ax.set_xlim(*limits[0])
        ax.set_ylim(0, top)
        ax.set_xlabel(name)
        ax.set_ylabel("density")
        self.legends.append(_legend_above(ax, [a for a in (line, steps) if a is not None]))

        def update(views, z):
            if line is not None:
                line.set_ydata(views[0])
                j = int(np.argmax(views[0]))
                note.set_text(f"peak {views[0][j]:.3g} at {name} ≈ {self.centres[0][j]:.3g}\n(off the scale)"
                              if views[0][j] > top else "")
            if steps is not None:
                steps.set_data(_histogram(z[:, 0], edges))
        return update, [a for a in (steps, line, note) if a is not None]

    def _panel_2d(self, ax, limits, top: float, k: int) -> tuple[Updater, list]:
        """A heat map of the density (or of the k-th pairwise marginal, 3-D) with the particles over it."""
        from matplotlib.patches import Patch

        a, b = PAIRS[k] if self.ndim == 3 else (0, 1)
        image = cloud = stars = None
        handles = []
        if self.centres is not None:
            cx, cy = self.centres[a], self.centres[b]
            hx, hy = self.widths[a], self.widths[b]
            image = ax.imshow(np.zeros((len(cy), len(cx))), origin="lower", aspect="auto", interpolation="nearest",
                              extent=(cx[0] - hx / 2, cx[-1] + hx / 2, cy[0] - hy / 2, cy[-1] + hy / 2),
                              cmap=CMAP, vmin=0.0, vmax=top)
            label = "PDE density" if self.ndim == 2 else f"PDE density of ({self.coords[a]}, {self.coords[b]})"
            self.colorbars.append(self.figure.colorbar(image, ax=ax, label=label, shrink=0.9))
            handles.append(Patch(facecolor=image.cmap(0.7), label="PDE density"))
        if self.particle_rows is not None:
            cloud = ax.plot([], [], ".", color="C3", ms=2.5, alpha=0.6, label=f"particles (N = {self.n})")[0]
            handles.append(cloud)
        if self.teacher is not None:          # they do not move, but are redrawn over the heat map of each frame
            stars = ax.plot(self.teacher[:, a], self.teacher[:, b], "*", color="k", ms=9, label="teacher neurons")[0]
            handles.append(stars)
        ax.set_xlim(*limits[a])
        ax.set_ylim(*limits[b])
        ax.set_xlabel(self.coords[a])
        ax.set_ylabel(self.coords[b])
        if k == 0:
            self.legends.append(_legend_above(ax, handles))

        def update(views, z):
            if image is not None:
                image.set_data(views[k].T)
            if cloud is not None:
                cloud.set_data(z[self.show, a], z[self.show, b])
        return update, [artist for artist in (image, cloud, stars) if artist is not None]

    def _curve_panel(self, ax, t_pde: np.ndarray | None, t_sgd: np.ndarray | None, quantity: str):
        """The risk (or energy) of both engines against t, with the time cursor; returns the cursor."""
        values = []
        if t_pde is not None:
            risk = self.run.series("pde", "risk")
            ax.plot(t_pde, risk, "-", color="C0", label="PDE")
            values.append(risk)
        if t_sgd is not None:
            risk = self.run.series("particles", "risk")
            ax.plot(t_sgd, risk, "o", color="C3", ms=3, label=f"particles (N = {self.n})")
            values.append(risk)
        finite = np.concatenate(values)
        finite = finite[np.isfinite(finite)]
        if finite.size and finite.min() > 0 and finite.max() > 5 * finite.min():
            ax.set_yscale("log")
        span = self.times[-1] - self.times[0]
        margin = 0.02 * span if span > 0 else 1.0
        ax.set_xlim(self.times[0] - margin, self.times[-1] + margin)
        ax.set_xlabel("t")
        ax.set_ylabel(quantity)
        self.legends.append(_legend_above(ax))
        return ax.axvline(self.times[0], color="k", lw=1.0)

    # ------------------------------------------------------------------ frames
    def __len__(self) -> int:
        return len(self.times)

    def draw(self, k: int) -> None:
        """Move every artist to frame k (0 ≤ k < len(self)): the density, the particles, the cursor, the title."""
        density, z = self._frame(k)
        views = None if density is None else self._views(density)
        for update in self._updaters:
            update(views, z)
        t = float(self.times[k])
        self.cursor.set_xdata([t, t])
        title = f"{self.problem}:  t = {t:.4g}"
        if self.pde_rows is not None and self.particle_rows is not None:
            t_sgd = float(self._t_sgd[self.particle_rows[k]])
            title += "" if abs(t_sgd - t) <= 1e-9 * max(1.0, abs(t)) else f"  (particles: t = {t_sgd:.4g})"
        self.title.set_text(title)

    def render(self, k: int) -> np.ndarray:
        """Frame k as pixels, (height, width, 4) RGBA uint8: draw(k), then the moving artists over the still
        part drawn once. The array is a view that the next render overwrites."""
        self.draw(k)
        self._canvas.restore_region(self._background)
        for artist in self._moving:
            self.figure.draw_artist(artist)
        return np.asarray(self._canvas.buffer_rgba())


class _GifWriter:
    """Frames into a GIF through Pillow, all on one 256-colour palette taken from a few sample frames (one palette
    keeps the still part of the figure the same colour in every frame)."""

    def __init__(self, path: Path, fps: float, samples: list[np.ndarray]):
        from PIL import Image

        self.path, self.duration, self.frames = path, 1000.0 / fps, []
        self.palette = Image.fromarray(np.concatenate([s[..., :3] for s in samples])).quantize(256)

    def add(self, rgba: np.ndarray) -> None:
        from PIL import Image

        self.frames.append(Image.fromarray(rgba[..., :3]).quantize(palette=self.palette, dither=Image.Dither.NONE))

    def finish(self) -> None:
        self.frames[0].save(self.path, format="GIF", save_all=True, append_images=self.frames[1:],
                            duration=self.duration, loop=0)

    def abandon(self) -> None:
        self.frames.clear()


class _Mp4Writer:
    """Frames piped into ffmpeg as raw RGBA, encoded as H.264 (yuv420p, padded to even sizes)."""

    def __init__(self, program: str, path: Path, fps: float, size: tuple[int, int]):
        import subprocess

        self.path = path
        self.process = subprocess.Popen(
            [program, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgba", "-s", f"{size[0]}x{size[1]}",
             "-framerate", f"{fps:g}", "-i", "pipe:", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-vcodec", "h264",
             "-pix_fmt", "yuv420p", str(path)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def add(self, rgba: np.ndarray) -> None:
        try:
            self.process.stdin.write(rgba.tobytes())
        except BrokenPipeError:
            self.finish()                              # ffmpeg stopped: say why

    def finish(self) -> None:
        _, err = self.process.communicate()
        if self.process.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"ffmpeg failed writing {self.path} (exit {self.process.returncode}): "
                               + (lines[-1] if lines else "no message"))

    def abandon(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def check_movie_output(out: Path, fps: float, overwrite: bool) -> str | None:
    """Check a movie's output and rate before anything is drawn: the suffix (.gif or .mp4), fps (a finite
    number > 0) and OUT (not a folder; an existing file only with overwrite). Returns the ffmpeg program for
    an MP4 (on the PATH, else imageio-ffmpeg's), None for a GIF. Raises ValueError with one line."""
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{out}: unknown movie format {out.suffix or '(no suffix)'!r}; allowed: "
                         + ", ".join(SUFFIXES))
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps (--fps): must be a number > 0 (frames per second), got {fps!r}")
    if out.is_dir():
        raise ValueError(f"{out}: is a directory; give a file path such as {out / ('movie' + suffix)}")
    if out.exists() and not overwrite:
        raise ValueError(f"{out}: file exists; pass overwrite=True (--overwrite) to replace it or choose another path")
    if suffix == ".gif":
        return None
    program = shutil.which("ffmpeg")
    if program is None:
        try:
            import imageio_ffmpeg

            program = imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError):
            raise ValueError(NO_FFMPEG.format(out=out)) from None
    return program


def write_movie(run: RunFile, out: str | Path, fps: float = 10, every: int = 1, overwrite: bool = False,
                progress: bool | None = None) -> Path:
    """Write the movie of a run file to out (.gif through Pillow, .mp4 through ffmpeg) and return its path.

    fps: frames per second; every: one frame per every-th PDE save. The movie is written to a hidden
    temporary file beside out and renamed at the end, so an interrupted movie leaves no partial file and an
    existing out (overwrite=True) is untouched until then. progress: the line "movie: frame k/F" on stderr
    (default: when stderr is a terminal). Raises ValueError (one line) for bad input, before drawing.
    """
    out = Path(out)
    program = check_movie_output(out, fps, overwrite)
    movie = Movie(run, every)
    live = sys.stderr.isatty() if progress is None else progress
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(f".{out.stem}.partial-{os.getpid()}{out.suffix}")
    size = movie.figure.canvas.get_width_height()
    if program is None:
        writer = _GifWriter(temp, fps, [movie.render(k).copy() for k in sorted({0, len(movie) // 2, len(movie) - 1})])
    else:
        writer = _Mp4Writer(program, temp, fps, size)
    written = False
    try:
        for k in range(len(movie)):
            writer.add(movie.render(k))
            if live:
                print(f"\rmovie: frame {k + 1}/{len(movie)}", end="", file=sys.stderr, flush=True)
        writer.finish()
        written = True
        os.replace(temp, out)
    finally:
        if live:
            print(file=sys.stderr)
        if not written:
            writer.abandon()
        temp.unlink(missing_ok=True)
    return out


__all__ = ["Movie", "check_movie_output", "write_movie"]
