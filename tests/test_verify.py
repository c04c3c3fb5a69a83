"""`mfdyn verify`: observed orders on the exact-solution cases of MATH §6 (β = ∞)."""
from __future__ import annotations

import pytest

from validation.cli import main
from validation.verify import CASES, MIN_ORDER, passes, run_case

BY_NAME = {c.name: c for c in CASES}


@pytest.mark.parametrize("name", ["ou_1d", "quadratic_1d", "ou_2d", "quadratic_2d"])
def test_one_and_two_dimensional_cases_are_second_order(name):
    levels = run_case(BY_NAME[name])
    assert levels[-1].order >= MIN_ORDER, [lv.order for lv in levels]
    assert passes(levels)
    assert all(lv.mass_drift < 1e-13 for lv in levels)


@pytest.mark.slow
def test_three_dimensional_case_is_second_order():
    levels = run_case(BY_NAME["ou_3d"])
    assert levels[-1].order >= MIN_ORDER, [lv.order for lv in levels]
    assert passes(levels)


def test_verify_command_prints_each_case_and_rejects_unknown_ones(capsys):
    assert main(["verify", "--case", "ou_1d", "--quick"]) in (0, 1)
    out = capsys.readouterr().out
    assert "ou_1d" in out and "L1 error" in out and "order" in out
    assert main(["verify", "--case", "nope"]) == 2
    assert "unknown case" in capsys.readouterr().err
