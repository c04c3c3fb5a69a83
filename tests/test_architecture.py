"""The house rules, checked on the source: layers, no import circle, one storage module.

- Layers: mfdyn ← pde, particles, lazy ← coupled ← validation. A module of mfdyn imports only mfdyn; pde,
  particles and lazy (the kernel engine) import mfdyn and themselves, never each other; coupled (the systems G
  and T of docs/math.md §8) imports pde and particles; only validation sees everything. This
  holds for every import statement, at module level or inside a function. The one bridge upward is
  mfdyn/__init__.py's table of API names, resolved by name on first use (PEP 562).
- No circle: the graph of module-level imports is acyclic, and every module imports on its own in a
  fresh interpreter.
- Storage: only mfdyn/storage.py uses h5py or spells a path inside the run file.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mfdyn", "pde", "particles", "lazy", "coupled", "validation")
ALLOWED = {"mfdyn": {"mfdyn"}, "pde": {"mfdyn", "pde"}, "particles": {"mfdyn", "particles"},
           "lazy": {"mfdyn", "lazy"}, "coupled": {"mfdyn", "pde", "particles", "coupled"},
           "validation": set(PACKAGES)}


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = modules()


def imports(path: Path, top_level_only: bool) -> set[str]:
    """Project modules a file imports (for `from a import b`, a.b when that is a module, else a)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                      for a in node.names}
    return {name for name in found if name.split(".")[0] in PACKAGES}


def test_the_source_tree_is_found():
    assert {"mfdyn.schema", "mfdyn.storage", "pde.engine", "particles.engine", "validation.api"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_respect_the_layers(module):
    layer = module.split(".")[0]
    bad = sorted(name for name in imports(MODULES[module], top_level_only=False)
                 if name.split(".")[0] not in ALLOWED[layer])
    assert not bad, f"{module} ({layer}) imports {bad}; {layer} may import only {sorted(ALLOWED[layer])}"


def test_the_api_bridge_names_only_api_modules():
    import mfdyn

    assert set(mfdyn._API.values()) <= {"validation.api", "mfdyn.config", "mfdyn.schema"}
    for name in mfdyn._API:
        assert callable(getattr(mfdyn, name))


def test_schema_imports_nothing_from_the_project():
    assert imports(MODULES["mfdyn.schema"], top_level_only=False) == set()


def test_module_level_imports_have_no_cycle():
    graph = {m: {i for i in imports(p, top_level_only=True) if i in MODULES and i != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_every_module_imports_on_its_own():
    def check(module: str) -> tuple[str, str]:
        out = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
        return module, (out.stderr.strip().splitlines() or [""])[-1] if out.returncode else ""

    with ThreadPoolExecutor(2) as pool:
        failures = [f"{m}: {err}" for m, err in pool.map(check, sorted(MODULES)) if err]
    assert not failures, "\n".join(failures)


# A path inside the run file: a known group name followed by a slash, or indexing a file by a group name
GROUP_PATH = re.compile(r"""["']/?(pde|particles|comparison|gibbs|kernel|gd|tracers)/\w""")
GROUP_INDEX = re.compile(r"""\[\s*["'](pde|particles|comparison|gibbs|kernel|gd|tracers)["']\s*\]""")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "mfdyn.storage"))
def test_only_the_storage_module_knows_the_file(module):
    text = MODULES[module].read_text()
    assert "import h5py" not in text, f"{module} imports h5py: read and write run files through mfdyn.storage"
    for pattern in (GROUP_PATH, GROUP_INDEX):
        hits = [line.strip() for line in text.splitlines() if pattern.search(line)]
        assert not hits, f"{module} spells HDF5 paths of the run file: {hits}; ask mfdyn.storage instead"
