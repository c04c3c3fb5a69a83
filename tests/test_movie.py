"""`mfdyn movie` and Run.movie (docs/guide.md, "Movies"): frames, figure elements, formats and the error lines."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from matplotlib.patches import StepPatch
from PIL import Image, ImageSequence

import mfdyn
from mfdyn.problems import make_problem
from mfdyn.storage import RunFile
from validation.cli import main
from validation.movie import NO_FFMPEG, Movie

ROOT = Path(__file__).resolve().parents[1]
MMN_1D = {"problem.d": 10, "dynamics.t_end": 0.4, "output.every": 0.1, "pde.cells": 80, "pde.bounds": [[0.0, 4.0]],
          "particles.n": 60, "particles.eps": 1e-3}
OU_2D = {"dynamics.t_end": 1.0, "output.every": 0.25, "particles.n": 200, "pde.cells": 32}
TS_3D = {"dynamics.t_end": 0.4, "output.every": 0.1, "particles.n": 200, "pde.cells": [17, 14, 16]}
CONFIGS = {"1d": ("mmn_isotropic.toml", MMN_1D), "2d": ("ornstein_uhlenbeck_2d.toml", OU_2D),
           "3d": ("teacher_student_3d.toml", TS_3D)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny runs (five save times each) of a 1-D, a 2-D and a 3-D problem, and one-engine runs of the 2-D one."""
    folder = tmp_path_factory.mktemp("movie_runs")
    out = {}
    for key, (config, overrides) in CONFIGS.items():
        out[key] = folder / f"{key}.h5"
        mfdyn.run(ROOT / "configs" / config, set=overrides, out=out[key]).close()
    for engine in ("pde", "particles"):
        out[f"2d_{engine}"] = folder / f"2d_{engine}.h5"
        mfdyn.run(ROOT / "configs" / "ornstein_uhlenbeck_2d.toml", set=OU_2D, engine=engine, out=out[f"2d_{engine}"]).close()
    return out


def gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as image:
        return [np.asarray(frame.convert("RGB")).astype(int) for frame in ImageSequence.Iterator(image)]


def legend_texts(movie: Movie) -> list[str]:
    return [text.get_text() for legend in movie.legends for text in legend.get_texts()]


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mfdyn: error: "), err
    return err


# ----------------------------------------------------------------------------------- frames of the GIF
@pytest.mark.parametrize("key", ["1d", "2d", "3d"])
def test_the_gif_has_one_frame_per_pde_save_and_every_frame_differs(key, runs, tmp_path, capsys):
    out = tmp_path / "movie.gif"
    assert main(["movie", str(runs[key]), str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    with RunFile.open(runs[key]) as f:
        saves = f.count("pde")
    frames = gif_frames(out)
    assert saves == 5 and len(frames) == saves
    for before, after in zip(frames, frames[1:]):
        assert np.any(before != after)
    with Image.open(out) as image:
        assert image.info["duration"] == 100                # fps 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.gif"]   # no temporary file left beside it


def test_every_and_fps_pick_the_frames_and_their_duration(runs, tmp_path):
    out = tmp_path / "every.gif"
    assert main(["movie", str(runs["2d"]), str(out), "--every", "2", "--fps", "4"]) == 0
    assert len(gif_frames(out)) == 3                        # saves 0, 2, 4 of 5
    with Image.open(out) as image:
        assert image.info["duration"] == 250
    with RunFile.open(runs["2d"]) as f:
        movie = Movie(f, every=2)
        np.testing.assert_array_equal(movie.times, f.series("pde", "time")[::2])


def test_a_frame_is_the_still_figure_with_the_moving_artists_over_it(runs):
    """render() draws the moving artists over the still part drawn once; a full redraw gives the same picture."""
    with RunFile.open(runs["2d"]) as f:
        movie = Movie(f)
        fast = movie.render(3).copy()
        for artist in movie._moving:
            artist.set_animated(False)
        movie.figure.canvas.draw()
        full = np.asarray(movie.figure.canvas.buffer_rgba())
        assert fast.shape == full.shape == (336, 800, 4)
        assert np.mean(np.any(fast != full, axis=2)) < 1e-4     # a few pixels where the cursor meets the frame


# ----------------------------------------------------------------------------------- what a frame shows
def test_1d_frame_density_over_the_histogram_on_fixed_axes(runs):
    with RunFile.open(runs["1d"]) as f, mfdyn.open(runs["1d"]) as run:
        movie = Movie(f)
        assert legend_texts(movie) == ["PDE", "particles (N = 60)", "PDE", "particles (N = 60)"]
        assert movie.curve_axes.get_ylabel() == "risk"
        ax = movie.density_axes[0]
        line, = ax.get_lines()
        steps, = (p for p in ax.patches if isinstance(p, StepPatch))
        limits = ax.get_xlim(), ax.get_ylim()
        density, z = run.pde.density.values, run.particles.z.values[:, :, 0]
        for k in (0, 2, 4):
            movie.draw(k)
            np.testing.assert_array_equal(line.get_ydata(), density[k])
            values, edges = steps.get_data().values, steps.get_data().edges
            inside = (z[k] >= edges[0]) & (z[k] <= edges[-1])
            assert np.sum(values * np.diff(edges)) == pytest.approx(inside.mean())
            counts = np.histogram(z[k], bins=edges)[0]
            np.testing.assert_allclose(values, counts / (60 * np.diff(edges)))
            assert movie.cursor.get_xdata()[0] == movie.times[k] == run.pde.time.values[k]
            assert f"t = {movie.times[k]:.4g}" in movie.title.get_text()
            assert (ax.get_xlim(), ax.get_ylim()) == limits
        assert ax.get_ylim()[1] >= max(density.max(axis=1).max(), 0)     # no narrow peak here: nothing off the scale


def test_2d_frame_heat_map_on_one_colour_scale_with_the_cloud(runs):
    with RunFile.open(runs["2d"]) as f, mfdyn.open(runs["2d"]) as run:
        movie = Movie(f)
        assert len(movie.colorbars) == 1 and movie.colorbars[0].ax.get_ylabel() == "PDE density"
        texts = legend_texts(movie)
        assert texts[:2] == ["PDE density", "particles (N = 200)"] and "PDE" in texts[2:]
        assert movie.curve_axes.get_ylabel() == "energy"       # a linear flow: no network, no risk
        ax = movie.density_axes[0]
        image, = ax.get_images()
        cloud = next(line for line in ax.get_lines() if line.get_label().startswith("particles"))
        density, z = run.pde.density.values, run.particles.z.values
        assert image.norm.vmin == 0 and image.norm.vmax == pytest.approx(density.max())   # over all frames
        limits = ax.get_xlim(), ax.get_ylim()
        cursor = []
        for k in range(len(movie)):
            movie.draw(k)
            np.testing.assert_array_equal(image.get_array(), density[k].T)
            np.testing.assert_array_equal(np.column_stack(cloud.get_data()), z[k])
            assert image.norm.vmax == pytest.approx(density.max())
            assert (ax.get_xlim(), ax.get_ylim()) == limits
            cursor.append(movie.cursor.get_xdata()[0])
        assert cursor == list(run.pde.time.values)


def test_3d_frame_three_marginals_each_with_its_colour_bar(runs):
    with RunFile.open(runs["3d"]) as f, mfdyn.open(runs["3d"]) as run:
        movie = Movie(f)
        assert [c.ax.get_ylabel() for c in movie.colorbars] == ["PDE density of (a, w)", "PDE density of (a, b)",
                                                                 "PDE density of (w, b)"]
        assert legend_texts(movie)[:2] == ["PDE density", "particles (N = 200)"]     # target |x|: no teacher
        assert movie.curve_axes.get_ylabel() == "risk"
        widths = [float(np.diff(run.pde[c].values[:2])[0]) for c in ("a", "w", "b")]
        density, z = run.pde.density.values, run.particles.z.values
        movie.draw(4)
        for (a, b), ax in zip([(0, 1), (0, 2), (1, 2)], movie.density_axes):
            dropped = 3 - a - b
            image, = ax.get_images()
            np.testing.assert_allclose(image.get_array(), (density[4].sum(axis=dropped) * widths[dropped]).T)
            tops = [(d.sum(axis=dropped) * widths[dropped]).max() for d in density]
            assert image.norm.vmax == pytest.approx(max(tops))
            cloud, = (line for line in ax.get_lines() if line.get_label().startswith("particles"))
            np.testing.assert_array_equal(np.column_stack(cloud.get_data()), z[4][:, [a, b]])


def test_the_teachers_neurons_are_stars_on_every_pairwise_panel(tmp_path):
    teacher = [[1.0, 2.0, 0.3], [-0.5, 0.7, 0.0]]
    out = tmp_path / "teacher.h5"
    mfdyn.run(ROOT / "configs" / "teacher_student_3d.toml", set={**TS_3D, "problem.target": "teacher",
                                                                  "problem.teacher": teacher}, out=out).close()
    with RunFile.open(out) as f, mfdyn.open(out) as run:
        movie = Movie(f)
        assert legend_texts(movie)[:3] == ["PDE density", "particles (N = 200)", "teacher neurons"]
        points = make_problem(run.config).teacher_points()
        assert points.shape == (2, 3)
        for (a, b), ax in zip([(0, 1), (0, 2), (1, 2)], movie.density_axes):
            stars, = (line for line in ax.get_lines() if line.get_label() == "teacher neurons")
            np.testing.assert_array_equal(np.column_stack(stars.get_data()), points[:, [a, b]])
            assert stars in movie._moving and stars.get_marker() == "*"      # redrawn over each frame's heat map


def test_one_engine_runs_show_the_density_alone_or_the_cloud_alone(runs, tmp_path):
    with RunFile.open(runs["2d_pde"]) as f:
        movie = Movie(f)
        assert movie.particle_rows is None and len(movie.colorbars) == 1
        assert legend_texts(movie) == ["PDE density", "PDE"]
        assert not [line for line in movie.density_axes[0].get_lines() if line.get_label().startswith("particles")]
    with RunFile.open(runs["2d_particles"]) as f:
        movie = Movie(f)
        assert movie.pde_rows is None and movie.colorbars == []
        assert legend_texts(movie) == ["particles (N = 200)", "particles (N = 200)"]
        assert movie.density_axes[0].get_images() == []
        np.testing.assert_array_equal(movie.times, f.series("particles", "time"))
    for key in ("2d_pde", "2d_particles"):
        assert main(["movie", str(runs[key]), str(tmp_path / f"{key}.gif")]) == 0
        assert len(gif_frames(tmp_path / f"{key}.gif")) == 5


def test_frames_draw_the_nearest_particle_save(runs, tmp_path):
    cut = tmp_path / "cut.h5"
    shutil.copy(runs["1d"], cut)
    with h5py.File(cut, "r+") as f:                     # as if killed after two particle snapshots (t = 0, 0.1)
        f["particles/time"].resize(2, axis=0)
    with RunFile.open(cut) as f:
        movie = Movie(f)
        assert list(movie.particle_rows) == [0, 1, 1, 1, 1]
        movie.draw(3)
        assert movie.title.get_text().endswith("t = 0.3  (particles: t = 0.1)")
        movie.draw(1)
        assert "particles:" not in movie.title.get_text()


# ----------------------------------------------------------------------------------- formats, files, progress
def test_mp4_through_ffmpeg(runs, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")      # the movie extra (and the test extra) bring it
    out = tmp_path / "movie.mp4"
    with mfdyn.open(runs["3d"]) as run:
        assert run.movie(out) == out
    assert imageio_ffmpeg.count_frames_and_secs(str(out)) == (5, 0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.mp4"]


def test_an_interrupted_movie_leaves_no_file_and_the_old_one_intact(runs, tmp_path, monkeypatch):
    out = tmp_path / "movie.gif"
    out.write_bytes(b"the old movie")
    render = Movie.render

    def interrupted(self, k):
        if k == 3:
            raise KeyboardInterrupt
        return render(self, k)

    monkeypatch.setattr(Movie, "render", interrupted)
    for name in ("movie.gif", "movie.mp4"):
        if name.endswith(".mp4") and shutil.which("ffmpeg") is None:
            pytest.importorskip("imageio_ffmpeg")
        with mfdyn.open(runs["2d"]) as run, pytest.raises(KeyboardInterrupt):
            run.movie(tmp_path / name, overwrite=True)
    assert out.read_bytes() == b"the old movie"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.gif"]


def test_progress_line_at_a_terminal_only(runs, tmp_path, capsys):
    with mfdyn.open(runs["2d"]) as run:
        run.movie(tmp_path / "quiet.gif")                # capsys' stderr is not a terminal
        assert capsys.readouterr().err == ""
        run.movie(tmp_path / "loud.gif", progress=True)
    err = capsys.readouterr().err
    assert err == "".join(f"\rmovie: frame {k}/5" for k in range(1, 6)) + "\n"


# ----------------------------------------------------------------------------------- bad input: one line, exit 2
@pytest.mark.parametrize("args, message", [
    (["OUT.avi"], "OUT.avi: unknown movie format '.avi'; allowed: .gif, .mp4"),
    (["OUT"], "OUT: unknown movie format '(no suffix)'; allowed: .gif, .mp4"),
    (["OUT.gif", "--fps", "0"], "fps (--fps): must be a number > 0 (frames per second), got 0.0"),
    (["OUT.gif", "--fps", "-2"], "fps (--fps): must be a number > 0 (frames per second), got -2.0"),
    (["OUT.gif", "--every", "0"], "every (--every): must be an integer ≥ 1 (one frame per every-th save), got 0"),
    (["OUT.gif", "--every", "1.5"], "mfdyn movie: argument --every: invalid int value: '1.5'"),
])
def test_bad_options_are_one_line_and_exit_2(args, message, runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["movie", str(runs["2d"]), *args]) == 2
    assert error_line(capsys) == f"mfdyn: error: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_an_existing_out_is_refused_without_overwrite_and_kept(runs, tmp_path, capsys):
    out = tmp_path / "movie.gif"
    out.write_bytes(b"keep me")
    assert main(["movie", str(runs["2d"]), str(out)]) == 2
    assert "movie.gif: file exists; pass overwrite=True (--overwrite)" in error_line(capsys)
    assert out.read_bytes() == b"keep me"
    assert main(["movie", str(runs["2d"]), str(out), "--overwrite"]) == 0
    assert len(gif_frames(out)) == 5


def test_mp4_without_ffmpeg_says_how_to_get_it(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)      # import imageio_ffmpeg raises ImportError
    out = tmp_path / "movie.mp4"
    assert main(["movie", str(runs["2d"]), str(out)]) == 2
    assert error_line(capsys) == "mfdyn: error: " + NO_FFMPEG.format(out=out) + "\n"
    assert NO_FFMPEG.format(out="OUT.mp4") == ("OUT.mp4: MP4 needs ffmpeg (not on the PATH; pip install 'mfdyn[movie]' "
                                               "provides one), or write a .gif")
    assert list(tmp_path.iterdir()) == []


def test_files_that_hold_nothing_to_animate(tmp_path, capsys):
    missing = tmp_path / "missing.h5"
    assert main(["movie", str(missing), str(tmp_path / "m.gif")]) == 2
    assert error_line(capsys) == f"mfdyn: error: {missing}: no such file\n"
    kernel = tmp_path / "kernel.h5"
    mfdyn.run(ROOT / "configs" / "teacher_student_lazy.toml", engine="kernel", out=kernel,
              set={"dynamics.t_end": 0.2, "output.every": 0.1, "pde.cells": [24, 16], "problem.nodes": 32}).close()
    assert main(["movie", str(kernel), str(tmp_path / "m.gif")]) == 2
    assert error_line(capsys) == (f"mfdyn: error: {kernel}: a movie needs snapshots in /pde or /particles; "
                                  "this file has /kernel\n")
    gibbs = tmp_path / "gibbs.h5"
    mfdyn.gibbs(ROOT / "configs" / "ornstein_uhlenbeck_2d.toml", set={"dynamics.beta": 20.0, "pde.cells": 24},
                out=gibbs).close()
    assert main(["movie", str(gibbs), str(tmp_path / "m.gif")]) == 2
    assert "no finite save times to animate (a Gibbs state is one at t = inf)" in error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gibbs.h5", "kernel.h5"]


def test_the_python_api_raises_the_same_errors(runs, tmp_path):
    with mfdyn.open(runs["2d"]) as run:
        with pytest.raises(ValueError, match=r"^every \(--every\): must be an integer ≥ 1"):
            run.movie(tmp_path / "m.gif", every=0)
        with pytest.raises(ValueError, match=r"^fps \(--fps\): must be a number > 0.*got inf"):
            run.movie(tmp_path / "m.gif", fps=float("inf"))
        folder = tmp_path / "folder.gif"
        folder.mkdir()
        with pytest.raises(ValueError, match="folder.gif: is a directory"):
            run.movie(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.gif"]
