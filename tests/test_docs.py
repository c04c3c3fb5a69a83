"""The documentation points only at things that exist, and only inside the repository.

For README.md and every docs/**/*.md, each relative markdown link [text](target) must resolve to a file
or folder (relative to the file holding the link; a #anchor into a markdown file must name one of its
headings), and each backticked repository path, such as `configs/n_scaling.toml`, `pde/` or
`tests/test_cli.py::test_name`, must resolve relative to the repository root (the test named after
:: must be defined in that file). A path is a word with a "/" in it that ends in one of PATH_SUFFIXES
or in "/". Bare names such as `rates.png` or `index.json` are not checked: in this documentation they
name outputs or files of a folder the sentence has just named. Skipped: URLs, paths under runs/ (outputs
users create), and placeholders (with <, * or X., or starting with /). Code blocks are not markdown, so
they are not scanned.

The repository is self-contained: nothing in README.md, docs/, configs/ or the packages refers to
"../shared".
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PATH_SUFFIXES = (".py", ".toml", ".md", ".png", ".json", ".txt")
SELF_CONTAINED = ("README.md", "docs", "configs", "mfdyn", "pde", "particles", "validation")
FORBIDDEN = "../shared"


def markdown_files() -> list[str]:
    files = ["README.md"] if (ROOT / "README.md").is_file() else []
    return files + sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md"))


# ----------------------------------------------------------------------------------- markdown parsing
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s")
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
_LINK = re.compile(r"!?\[(?:[^\[\]\n]|\[[^\[\]\n]*\])*\]\(\s*<?([^()\s<>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.M)
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_PATHLIKE = re.compile(r"^[\w.\-/]+$")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the markdown outside fenced and indented code blocks; code lines become ''."""
    out, fence, in_code, in_list, previous_blank = [], None, False, False, True
    for number, line in enumerate(text.splitlines(), 1):
        opening = _FENCE.match(line)
        if fence is not None:                                   # inside a fenced block
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence) \
                    and not line.strip().strip(fence[0]):
                fence = None
            out.append((number, ""))
            continue
        if opening:
            fence = opening.group(1)
            out.append((number, ""))
            continue
        blank = not line.strip()
        indented = line.startswith("    ") or line.startswith("\t")
        if in_code and (indented or blank):
            out.append((number, ""))
            continue
        in_code = indented and previous_blank and not in_list and not blank
        if in_code:
            out.append((number, ""))
            previous_blank = False
            continue
        if not blank:
            if _LIST_ITEM.match(line):
                in_list = True
            elif not line.startswith(" ") and previous_blank:
                in_list = False
        out.append((number, line))
        previous_blank = blank
    return out


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of the headings: lower case, punctuation and symbols dropped, spaces to hyphens,
    a repeated anchor suffixed -1, -2, …"""
    seen: dict[str, int] = {}
    anchors = set()
    for _, line in prose_lines(text):
        match = _HEADING.match(line)
        if not match:
            continue
        title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2)).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def references(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(line, target) of every markdown link and (line, content) of every inline code span, outside code."""
    lines = prose_lines(text)
    prose = "\n".join(line for _, line in lines)
    starts = [0]
    for _, line in lines:
        starts.append(starts[-1] + len(line) + 1)

    def line_of(offset: int) -> int:
        lo, hi = 0, len(starts) - 1
        while lo < hi - 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if starts[mid] <= offset else (lo, mid)
        return lines[lo][0]

    spans, blanked = [], list(prose)
    for match in _CODE_SPAN.finditer(prose):
        if "\n\n" in match.group(2):
            continue
        spans.append((line_of(match.start()), match.group(2).strip()))
        blanked[match.start():match.end()] = " " * (match.end() - match.start())
    outside_spans = "".join(blanked)
    links = [(line_of(m.start()), m.group(1)) for m in _LINK.finditer(outside_spans)]
    links += [(line_of(m.start()), m.group(1)) for m in _REFERENCE.finditer(outside_spans)]
    return links, spans


def is_placeholder(target: str) -> bool:
    return "<" in target or "*" in target or "X." in target or target.startswith("/")


def under_runs(path: str) -> bool:
    parts = [p for p in Path(path).parts if p not in (".",)]
    return bool(parts) and parts[0] == "runs"


def inside_repository(path: Path) -> bool:
    try:
        path.resolve().relative_to(ROOT)
    except ValueError:
        return False
    return True


def path_words(span: str) -> list[str]:
    """The words of a code span that look like repository paths (possibly with ::test or #anchor)."""
    words = []
    for raw in span.split():
        word = raw.strip("\"'()[],;")
        word = word[:-1] if word.endswith((".", ":")) and not word.endswith(("..", "::")) else word
        if not word or _SCHEME.match(word) and "::" not in word:
            continue
        path = re.split(r"::|#", word, maxsplit=1)[0]
        if "/" not in path or is_placeholder(path) or not _PATHLIKE.match(path):
            continue
        if path.endswith(PATH_SUFFIXES) or path.endswith("/"):
            words.append(word)
    return words


def check_code_path(word: str) -> str | None:
    """Why `word` does not resolve relative to the repository root, or None."""
    path, _, test = word.partition("::")
    path = path.split("#", 1)[0]
    if under_runs(path):
        return None
    target = ROOT / path
    if not inside_repository(target):
        return "points outside the repository"
    if path.endswith("/") and not target.is_dir():
        return "no such folder"
    if not target.exists():
        return "no such file"
    if test:
        source = target.read_text(encoding="utf-8") if target.is_file() else ""
        for name in test.split("::"):
            name = name.split("[", 1)[0]
            if not re.search(rf"^\s*(async\s+)?(def|class)\s+{re.escape(name)}\b", source, re.M):
                return f"{name} is not defined in {path}"
    return None


def check_link(doc: Path, target: str) -> str | None:
    """Why the link target does not resolve relative to doc (or to a heading of it), or None."""
    if _SCHEME.match(target) or target.startswith("//"):
        return None                                   # http(s), mailto and other URLs
    path, _, anchor = target.partition("#")
    path = path.split("?", 1)[0]
    if is_placeholder(path):
        return None
    file = doc if not path else (doc.parent / path)
    if path and under_runs(file.resolve().relative_to(ROOT).as_posix() if inside_repository(file) else path):
        return None
    if not inside_repository(file):
        return "points outside the repository"
    if not file.exists():
        return "no such file or folder"
    if anchor and file.is_file() and file.suffix == ".md":
        if anchor.lower() not in heading_anchors(file.read_text(encoding="utf-8")):
            return f"no heading with anchor #{anchor} in {file.relative_to(ROOT).as_posix()}"
    return None


def broken_references(relative: str) -> list[str]:
    doc = ROOT / relative
    links, spans = references(doc.read_text(encoding="utf-8"))
    problems = []
    for line, target in links:
        why = check_link(doc, target)
        if why:
            problems.append(f"{relative}:{line}: link ({target}): {why}")
    for line, span in spans:
        for word in path_words(span):
            why = check_code_path(word)
            if why:
                problems.append(f"{relative}:{line}: `{word}`: {why}")
    return problems


# ----------------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("relative", markdown_files())
def test_links_and_backticked_paths_resolve(relative):
    problems = broken_references(relative)
    assert not problems, f"{len(problems)} broken reference(s) in {relative}:\n" + "\n".join(problems)


def test_math_document_exists_with_the_sections_code_cites():
    text = (ROOT / "docs" / "math.md").read_text(encoding="utf-8")
    headings = [m.group(2) for _, line in prose_lines(text) if (m := _HEADING.match(line))]
    numbered = [h.split(" ", 1)[0].rstrip(".") for h in headings if re.match(r"\d", h)]
    assert numbered == ["1", "2", "3", "3.1", "3.2", "3.3", "4", "5", "6", "7", "8"]
    for outside in (FORBIDDEN, "MATH.md", "DESIGN.md"):       # the project's own document, citing no outside file
        assert outside not in text, f"docs/math.md mentions {outside!r}"


@pytest.mark.parametrize("area", SELF_CONTAINED)
def test_nothing_refers_outside_the_repository(area):
    root = ROOT / area
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()
                                                 and "__pycache__" not in p.parts)
    hits = []
    for file in files:
        data = file.read_bytes()
        if b"\0" in data:                               # binary (figures, caches)
            continue
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if FORBIDDEN in line:
                hits.append(f"{file.relative_to(ROOT).as_posix()}:{number}: {line.strip()}")
    assert not hits, f"{FORBIDDEN!r} found (the repository must be self-contained):\n" + "\n".join(hits)


def test_the_checker_catches_what_it_should_and_skips_the_rest():
    text = ("See [the guide](docs/no_such_page.md), [ok](README.md), [web](https://example.org/x.md) and\n"
            "`configs/no_such.toml`, `tests/test_docs.py::no_such_test`, `runs/sweep/index.json`, `runs/<name>/index.json`,\n"
            "`mfdyn run configs/mmn_isotropic.toml`, `../outside/MATH.md`, `rates.png`, `/abs/path.py`.\n"
            "\n"
            "    [not a link](nowhere.md) `not/a/path.py` in an indented code block\n"
            "\n"
            "```\n[nor](here.md) `fenced/path.py`\n```\n")
    links, spans = references(text)
    assert [target for _, target in links] == ["docs/no_such_page.md", "README.md", "https://example.org/x.md"]
    words = [w for _, span in spans for w in path_words(span)]
    assert words == ["configs/no_such.toml", "tests/test_docs.py::no_such_test", "runs/sweep/index.json",
                     "configs/mmn_isotropic.toml", "../outside/MATH.md"]
    assert [check_code_path(w) is None for w in words] == [False, False, True, True, False]
    readme = ROOT / "README.md"
    assert [check_link(readme, t) is None for _, t in links] == [False, True, True]
    assert check_link(ROOT / "docs" / "math.md", "#5-finite-volume-discretisation") is None
    assert check_link(ROOT / "docs" / "math.md", "#no-such-section") is not None
