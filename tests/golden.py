"""Digests of every shipped run config's numbers, on a short horizon, for the bit-identity test.

`python tests/golden.py` rewrites tests/data/golden.json from the code as it stands; the test
(tests/test_golden.py) reruns each config and compares. Regenerate only when the mathematics
changes on purpose, and say so in the commit.
"""
from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("pde/density", "pde/risk", "pde/free_energy", "pde/mass", "particles/theta", "particles/risk",
            "comparison/risk_gap", "comparison/w1")
GOLDEN = ROOT / "tests" / "data" / "golden.json"


def run_configs() -> list[Path]:
    """The shipped configs that are runs (not sweeps)."""
    return sorted(p for p in (ROOT / "configs").glob("*.toml") if "[problem]" in p.read_text())


def short_overrides(path: Path) -> list[str]:
    """40 SGD steps, saved after 20 and 40: every engine takes real steps, in a second or so."""
    import tomllib

    eps = tomllib.loads(path.read_text()).get("particles", {}).get("eps", 1e-4)
    return [f"dynamics.t_end={40 * eps!r}", f"output.every={20 * eps!r}"]


def digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes()).hexdigest()[:20]


def compute(path: Path, out: Path, overrides: list[str] | None = None) -> dict[str, str]:
    import mfdyn
    from mfdyn.config import load_config

    config = load_config(path, overrides if overrides is not None else short_overrides(path))
    with mfdyn.run(config, out=out) as run:
        return {name: digest(run.group(name.split("/")[0])[name.split("/")[1]].values) for name in DATASETS
                if name.split("/")[0] in run.groups}


def main() -> None:
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in run_configs():
            result[path.name] = compute(path, Path(tmp) / f"{path.stem}.h5")
            print(path.name, file=sys.stderr)
    GOLDEN.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
