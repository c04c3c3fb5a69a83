"""Config loading, validation and overrides (docs/guide.md, "Config")."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from mfdyn.config import ConfigError, load_config, parse_override

SHIPPED = Path(__file__).resolve().parents[1] / "configs"
MINIMAL = """
[problem]
name = "mmn_isotropic"
[dynamics]
t_end = 1.0
"""


def test_minimal_config_gets_documented_defaults():
    cfg = load_config(MINIMAL, from_text=True)
    assert cfg.problem.params.d == 40 and cfg.problem.params.delta == 0.8
    assert cfg.dynamics.beta == math.inf and cfg.dynamics.xi == 1.0 and cfg.dynamics.lam == 0.0
    assert cfg.particles.n == 800 and cfg.particles.eps == 1e-4 and cfg.particles.batch == 1
    assert cfg.save_times() == pytest.approx([0.0, 0.5, 1.0])


def test_canonical_toml_round_trips():
    cfg = load_config(SHIPPED / "mmn_isotropic.toml", ["particles.seed=7", "dynamics.lambda=0.25"])
    again = load_config(cfg.to_toml(), from_text=True)
    assert again.particles.seed == 7 and again.dynamics.lam == 0.25
    assert again.to_toml() == cfg.to_toml()
    assert again.pde == cfg.pde and again.problem == cfg.problem


def test_overrides_are_toml_values_or_bare_strings():
    assert parse_override("problem.reduction=d_infinity") == ("problem", "reduction", "d_infinity")
    assert parse_override("dynamics.beta=inf") == ("dynamics", "beta", math.inf)
    assert parse_override("pde.cells=[10, 20]") == ("pde", "cells", [10, 20])
    cfg = load_config(MINIMAL, ["problem.reduction=d_infinity", "pde.cells=64"], from_text=True)
    assert cfg.problem.params.reduction == "d_infinity" and cfg.pde.cells == (64,)
    assert cfg.overrides == ("problem.reduction=d_infinity", "pde.cells=64")


def test_save_times_include_t_end():
    cfg = load_config(MINIMAL, ["output.every=0.3"], from_text=True)
    assert cfg.save_times() == pytest.approx([0.0, 0.3, 0.6, 0.9, 1.0])


@pytest.mark.parametrize("override,key", [
    ("particles.n=0", "particles.n"), ("particles.n=-3", "particles.n"), ("particles.n=2.5", "particles.n"),
    ("particles.eps=0", "particles.eps"), ("particles.eps=-1e-4", "particles.eps"),
    ("problem.delta=0", "problem.delta"), ("problem.delta=1", "problem.delta"),
    ("problem.delta=1.5", "problem.delta"), ("dynamics.t_end=0", "dynamics.t_end"),
    ("dynamics.t_end=-2", "dynamics.t_end"), ("problem.name=nope", "problem.name"),
    ("problem.sigma=1", "problem.sigma"), ("pde.cells=[8, 8]", "pde.cells"),
    ("dynamics.xi='fast'", "dynamics.xi"), ("particles.batch=true", "particles.batch"),
    ("output.every=0.00015", "output.every"), ("problem.t2=0.1", "problem.t2"),
    ("pde.bounds=[[1, 0]]", "pde.bounds"), ("pde.cfl=1.5", "pde.cfl"),
])
def test_bad_values_name_the_key_and_what_is_allowed(override, key):
    with pytest.raises(ConfigError) as info:
        load_config(MINIMAL, [override], from_text=True)
    message = str(info.value)
    assert key in message
    assert "must be" in message or "unknown" in message
    assert "\n" not in message


def test_all_errors_are_reported_at_once():
    with pytest.raises(ConfigError) as info:
        load_config(MINIMAL, ["particles.n=0", "particles.eps=0", "problem.delta=2", "init.kappa=-1"],
                    from_text=True)
    assert len(info.value.problems) == 4


def test_missing_required_key_and_unknown_section():
    with pytest.raises(ConfigError, match=r"dynamics\.t_end: missing"):
        load_config('[problem]\nname = "mmn_isotropic"\n', from_text=True)
    with pytest.raises(ConfigError, match=r"solver: unknown section"):
        load_config(MINIMAL + "\n[solver]\nx = 1\n", from_text=True)
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config("[problem\n", from_text=True)
