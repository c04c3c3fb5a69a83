"""Every figure in docs/ is made by the command its caption gives (README.md, docs/*.md).

A figure is a docs/*.png that the documentation shows (![...](docs/x.png)) or names in a code span. Its caption
is the paragraph after the image (or the paragraph naming it), and its commands are that caption's code spans
starting with `mfdyn `, each a chain of steps joined by ` && `: `mfdyn ...` or `cp SOURCE DEST`. The commands up
to the first one whose last step writes the figure (`--plot docs/x.png`, or `cp ... docs/x.png`) are what makes it.

Each figure's commands run here in a fresh folder holding a copy of configs/, shrunk: `mfdyn run` gets --set
overrides making it small (SHRINK_RUN); a sweep file is replaced by a reduced copy (shrunk_sweep: 2 values of every
list, t ≤ 0.5, small grids and N). The test checks that every command exits 0 and that the figure the caption
names is written. A figure without a parsable caption command fails, and so does a docs/*.png that no document
shows (a stale figure). The sweep figures take a minute or more each: they are marked slow.
"""
from __future__ import annotations

import re
import shlex
import shutil
import tomllib
from pathlib import Path

import pytest
from test_docs import _CODE_SPAN, _LINK, markdown_files, prose_lines

from mfdyn.schema import toml_value
from validation.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SHRINK_RUN = {"dynamics.t_end": 0.5, "output.every": 0.25, "particles.n": 200, "pde.cells": 64}
SWEEP_T_END, SWEEP_EVERY, SWEEP_CELLS, SWEEP_N = 0.5, 0.25, 48, 400


def paragraphs(relative: str) -> list[str]:
    """The prose paragraphs of a markdown file (code blocks left out), each as one string."""
    out, current = [], []
    for _, line in prose_lines((ROOT / relative).read_text(encoding="utf-8")):
        if line.strip():
            current.append(line.strip())
        elif current:
            out.append(" ".join(current))
            current = []
    return out + ([" ".join(current)] if current else [])


def _docs_png(path: Path) -> str | None:
    """'docs/x.png' if the path is a figure of docs/, else None."""
    try:
        relative = path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return None
    return relative if relative.startswith("docs/") and relative.endswith(".png") and "/" not in relative[5:] else None


def figures() -> dict[str, list[str]]:
    """docs/x.png → the command spans of its caption, for every figure the documentation shows or names."""
    found: dict[str, list[str]] = {}
    for relative in markdown_files():
        where = (ROOT / relative).parent
        texts = paragraphs(relative)
        for k, text in enumerate(texts):
            spans = [m.group(2).strip() for m in _CODE_SPAN.finditer(text)]
            bare = _CODE_SPAN.sub(" ", text)
            images = {f for m in _LINK.finditer(bare) if (f := _docs_png(where / m.group(1)))}
            named = {f for span in spans for word in span.split() if word.endswith(".png")
                     and (f := _docs_png(ROOT / word.strip("`'\"(),;")))}
            for figure in images | named:
                # an image alone in its paragraph is captioned by the next one
                alone = figure in images and not _LINK.sub("", bare).strip()
                caption = texts[k + 1] if alone and k + 1 < len(texts) else text
                commands = [m.group(2).strip() for m in _CODE_SPAN.finditer(caption)]
                found.setdefault(figure, []).extend(c for c in commands if c.startswith("mfdyn "))
    return {figure: list(dict.fromkeys(spans)) for figure, spans in found.items()}     # each command once, in order


def writes(command: str, figure: str) -> bool:
    """Whether a command's last step writes the figure (--plot FIGURE, or cp ... FIGURE)."""
    last = shlex.split(command.split(" && ")[-1])
    if last[0] == "cp":
        return last[-1] == figure
    return "--plot" in last and last[last.index("--plot") + 1] == figure


def commands_for(figure: str, spans: list[str]) -> list[str]:
    """The caption's commands up to the first that writes the figure (AssertionError if none does)."""
    for k, span in enumerate(spans):
        if writes(span, figure):
            return spans[:k + 1]
    raise AssertionError(f"{figure}: no command in its caption writes it; give one, e.g. "
                         f"`mfdyn compare RUN.h5 --plot {figure}` or `mfdyn sweep S.toml && cp runs/S/x.png {figure}`")


FIGURES = figures()


def test_every_docs_figure_is_shown_and_captioned_by_a_command_that_makes_it():
    on_disk = {f"docs/{p.name}" for p in DOCS.glob("*.png")}
    assert on_disk <= set(FIGURES), f"figures no document shows (stale?): {sorted(on_disk - set(FIGURES))}"
    assert set(FIGURES) <= on_disk, f"figures the documents show but docs/ lacks: {sorted(set(FIGURES) - on_disk)}"
    for figure, spans in FIGURES.items():
        for step in (s for command in commands_for(figure, spans) for s in command.split(" && ")):
            argv = shlex.split(step)
            assert argv[0] in ("mfdyn", "cp") and (argv[0] != "cp" or len(argv) == 3), f"{figure}: cannot run {step!r}"


def test_the_caption_parser_finds_commands_and_refuses_a_caption_without_one():
    assert writes("mfdyn compare runs/a.h5 --plot docs/a.png", "docs/a.png")
    assert writes("mfdyn sweep configs/s.toml && cp runs/s/rates.png docs/s.png", "docs/s.png")
    assert not writes("mfdyn sweep configs/s.toml && cp runs/s/rates.png docs/s.png", "docs/t.png")
    assert commands_for("docs/a.png", ["mfdyn run c.toml", "mfdyn compare r.h5 --plot docs/a.png", "mfdyn info r.h5"]) \
        == ["mfdyn run c.toml", "mfdyn compare r.h5 --plot docs/a.png"]
    with pytest.raises(AssertionError, match="no command in its caption writes it"):
        commands_for("docs/a.png", ["mfdyn sweep configs/s.toml"])


def _capped(key: str, value, fixed: bool):
    """A sweep value made small: grids to SWEEP_CELLS cells per axis, and a fixed N (in [set]) to SWEEP_N; a varied
    N keeps its first values (capping them could make two members one)."""
    if key == "pde.cells":
        return [min(c, SWEEP_CELLS) for c in value] if isinstance(value, list) else min(value, SWEEP_CELLS)
    if key == "particles.n" and fixed:
        return min(value, SWEEP_N)
    return value


def shrunk_sweep(path: Path) -> None:
    """Rewrite a sweep file in place as a small one: the first 2 entries of every [vary] and [zip] list, t_end ≤
    SWEEP_T_END with saves every SWEEP_EVERY, grids and N capped (_capped); its name (hence its folder) is kept."""
    data = tomllib.loads(path.read_text())
    fixed = {k: _capped(k, v, True) for k, v in data.get("set", {}).items()}
    fixed |= {"dynamics.t_end": SWEEP_T_END, "output.every": SWEEP_EVERY}
    tables = {"set": fixed}
    for table in ("vary", "zip"):
        if table in data:
            tables[table] = {k: [_capped(k, v, False) for v in values[:2]] for k, values in data[table].items()}
    lines = [f"{key} = {toml_value(value)}" for key, value in data.items() if not isinstance(value, dict)]
    for table, entries in tables.items():
        lines += [f"[{table}]", *(f'"{key}" = {toml_value(value)}' for key, value in entries.items())]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A fresh folder with a copy of configs/ and an empty docs/; the steps already run there (run once each)."""
    folder = tmp_path_factory.mktemp("docs_figures")
    shutil.copytree(ROOT / "configs", folder / "configs")
    (folder / "docs").mkdir()
    return folder, set()


def run_step(step: str, done: set[str]) -> None:
    """One step of a caption's command, shrunk (module docstring), in the current folder."""
    if step in done:
        return
    argv = shlex.split(step)
    if argv[0] == "cp":
        shutil.copyfile(argv[1], argv[2])
    else:
        if argv[1] == "run" and "--resume" not in argv:
            argv += [a for key, value in SHRINK_RUN.items() for a in ("--set", f"{key}={toml_value(value)}")]
        if argv[1] == "sweep":
            shrunk_sweep(Path(argv[2]))
        assert main(argv[1:]) == 0, f"{step!r} (shrunk: {' '.join(argv)}) failed"
    done.add(step)


def _slow(figure: str) -> list:
    return [pytest.mark.slow] if any("mfdyn sweep" in c for c in FIGURES[figure]) else []


@pytest.mark.parametrize("figure", [pytest.param(f, marks=_slow(f)) for f in sorted(FIGURES)])
def test_the_caption_command_makes_the_figure(figure, workspace, monkeypatch):
    folder, done = workspace
    monkeypatch.chdir(folder)
    for command in commands_for(figure, FIGURES[figure]):
        for step in command.split(" && "):
            run_step(step, done)
    written = folder / figure
    assert written.is_file() and written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and written.stat().st_size > 10_000
    assert re.fullmatch(r"docs/[\w.-]+\.png", figure)
