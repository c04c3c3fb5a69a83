"""Benchmark: `mfdyn movie` on the shipped MMN run (issue 15, item 1: a 10 s, 100-frame GIF in under 30 s).

The run is configs/mmn_isotropic.toml with output.every = 0.1 (101 save times: a 10 s movie at 10 fps).
  movie       validation.movie.write_movie: the figure drawn once, each frame blitted (only what moves redrawn)
  full redraw the obvious way, as its peer in the same process: the same Movie's artists moved to each frame
              and the whole figure drawn (canvas.draw) per frame, the pixels handed to the same GIF writer
Printed: seconds per frame of each, the whole movie's seconds, and the ratio full redraw / movie.
Usage: python benchmarks/bench_movie.py
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from timing import wall_time

from mfdyn.storage import RunFile
from validation.api import run
from validation.movie import Movie, write_movie

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "mmn_isotropic.toml"


def full_redraw(movie: Movie) -> list[np.ndarray]:
    """Every frame by drawing the whole figure: what a FuncAnimation without blitting does."""
    frames = []
    for k in range(len(movie)):
        movie.draw(k)
        movie.figure.canvas.draw()
        frames.append(np.asarray(movie.figure.canvas.buffer_rgba()).copy())
    return frames


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mmn.h5"
        run(CONFIG, set={"output.every": 0.1}, out=path).close()
        with RunFile.open(path) as f:
            frames = len(Movie(f))
            movie_s = wall_time(lambda: write_movie(f, Path(folder) / "mmn.gif"))
            redraw_s = wall_time(lambda: full_redraw(Movie(f)))
    print(f"frames: {frames} (a {frames / 10:.1f} s movie at 10 fps)")
    print(f"movie (blitted, GIF written):  {movie_s:6.2f} s   {1e3 * movie_s / frames:6.1f} ms per frame")
    print(f"full redraw (pixels only):     {redraw_s:6.2f} s   {1e3 * redraw_s / frames:6.1f} ms per frame")
    print(f"ratio full redraw / movie: {redraw_s / movie_s:.1f}x   (target: the movie under 30 s)")


if __name__ == "__main__":
    main()
