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


def test_a_binary_file_is_named_with_its_first_bad_byte(tmp_path):
    path, head = tmp_path / "x.toml", b'[problem]\nname = "'
    path.write_bytes(head + b'\xff\xfe"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: not a TOML text file (invalid UTF-8 at byte {len(head)})"


def test_names_and_values_are_quoted_on_one_line():
    """A TOML quoted key may hold a newline, and a date-time is no Python literal: every message stays one line."""
    text = MINIMAL.replace("t_end = 1.0", "t_end = 1979-05-27T07:32:00Z") + '"a\\nb" = 1\n["x\\ny"]\nq = 1\n'
    with pytest.raises(ConfigError) as info:
        load_config(text, from_text=True)
    message = str(info.value)
    assert "\n" not in message
    assert "dynamics.t_end: must be a number > 0, got 1979-05-27T07:32:00+00:00" in message
    assert "dynamics.'a\\nb': unknown key" in message and "'x\\ny': unknown section" in message


def test_sizes_that_cannot_run_are_refused_in_validation():
    from mfdyn.config import MAX_SNAPSHOTS

    # a huge grid is no config error: a particles-only run never builds it (the grid engines refuse it, test_cli)
    assert load_config(MINIMAL, ["pde.cells=100000000"], from_text=True).pde.cells == (100000000,)
    with pytest.raises(ConfigError) as info:                  # snapshots: t_end / every
        load_config(MINIMAL, ["dynamics.t_end=1e300"], from_text=True)
    assert any(p.startswith("output.every: dynamics.t_end / output.every = 2e+300 snapshots; allowed at most "
                            f"{MAX_SNAPSHOTS}") for p in info.value.problems)
    with pytest.raises(ConfigError, match=r"particles\.eps: dynamics\.t_end / particles\.eps = 1e\+300 SGD steps"):
        load_config(MINIMAL, ["particles.eps=1e-300", "output.every=1.0"], from_text=True)
    with pytest.raises(ConfigError, match=r"particles\.n: 100000000000000000 particles need more than"):
        load_config(MINIMAL, ["particles.n=100000000000000000"], from_text=True)


def test_a_step_of_zero_sgd_steps_is_not_a_whole_number_of_them():
    with pytest.raises(ConfigError, match=r"particles\.coupled_dt: must be a whole number of steps"):
        load_config(MINIMAL, ["particles.coupled_dt=1e-300"], from_text=True)
    assert load_config(MINIMAL, ["particles.coupled_dt=0.01"], from_text=True).particles.coupled_dt == 0.01
