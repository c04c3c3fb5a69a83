"""Every shipped run config gives the same numbers, bit for bit, as when tests/data/golden.json was
written (tests/golden.py): refactors and new options at their defaults change nothing."""
import json

import pytest
from golden import GOLDEN, compute, run_configs

EXPECTED = json.loads(GOLDEN.read_text())


def test_every_shipped_run_config_has_a_golden_record():
    assert sorted(p.name for p in run_configs()) == sorted(EXPECTED)


@pytest.mark.parametrize("path", run_configs(), ids=lambda p: p.stem)
def test_shipped_config_is_bit_identical_to_its_golden_record(path, tmp_path):
    got = compute(path, tmp_path / "run.h5")
    assert got == EXPECTED[path.name]
