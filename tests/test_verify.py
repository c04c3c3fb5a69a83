"""`mfdyn verify`: observed orders on the exact-solution cases of docs/math.md §6 (β = ∞).

Every test here requires a passing verdict, and checks the numbers behind it against the bars of
validation/verify.py (MIN_ORDER for the finest pair, MASS_TOL, ρ ≥ 0, a risk that never increases).
The cases run on their full grids: the --quick grid of ou_3d (32 → 64 cells) only reaches order 1.79,
below the bar, so the quick path is exercised on a 1-D case whose quick grid does meet it.
"""
from __future__ import annotations

import re
from itertools import pairwise

import numpy as np
import pytest

from validation import verify
from validation.cli import main
from validation.verify import CASES, MASS_TOL, MIN_ORDER, passes, run_case

BY_NAME = {c.name: c for c in CASES}


def check_levels(name: str, levels, cells: tuple[int, ...]) -> None:
    """The numbers behind a passing verdict, each against its bar."""
    report = [(lv.cells, lv.l1_error, lv.order) for lv in levels]
    assert [lv.cells for lv in levels] == list(cells), name
    assert np.isnan(levels[0].order) and levels[-1].order >= MIN_ORDER, report
    assert all(b.l1_error < a.l1_error for a, b in pairwise(levels)), report   # errors fall under refinement
    for lv in levels:
        assert lv.mass_drift <= MASS_TOL, (lv.cells, lv.mass_drift)
        assert lv.min_density >= 0.0, (lv.cells, lv.min_density)
        assert lv.max_risk_increase <= 0.0, (lv.cells, lv.max_risk_increase)
    assert passes(levels)


@pytest.mark.parametrize("name", ["ou_1d", "quadratic_1d", "ou_2d", "quadratic_2d"])
def test_one_and_two_dimensional_cases_are_second_order(name):
    levels = run_case(BY_NAME[name])
    check_levels(name, levels, BY_NAME[name].cells)
    assert all(lv.mass_drift < 1e-13 for lv in levels)


def verdicts(text: str) -> dict[str, tuple[str, float]]:
    """Case name → (verdict, printed order of the finest pair) from a verify report."""
    return {m[1]: (m[2], float(m[3])) for m in re.finditer(r"^(\S+)\s+(ok|FAIL): order (\S+) \(bar ", text, re.MULTILINE)}


def rows_of(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(rf"{name}\s+\d+\s", line)]


@pytest.fixture
def judged(monkeypatch) -> dict:
    """The levels the verify command computed, per case (run_case, recorded)."""
    out = {}

    def recording(case, quick=False):
        out[case.name] = levels = run_case(case, quick)
        return levels

    monkeypatch.setattr(verify, "run_case", recording)
    return out


def test_verify_command_passes_and_prints_the_orders_it_judged(capsys, judged):
    names = ["ou_1d", "quadratic_2d"]
    assert main(["verify"] + [a for n in names for a in ("--case", n)]) == 0
    out = capsys.readouterr().out
    assert "L1 error" in out and set(judged) == set(names)
    printed = verdicts(out)
    for name in names:
        check_levels(name, judged[name], BY_NAME[name].cells)
        assert printed[name] == ("ok", pytest.approx(judged[name][-1].order, abs=0.005)), (name, printed)
        assert len(rows_of(out, name)) == len(BY_NAME[name].cells)


def test_quick_skips_the_finest_grid_and_still_meets_the_bar(capsys, judged):
    assert main(["verify", "--case", "ou_1d", "--quick"]) == 0
    out = capsys.readouterr().out
    check_levels("ou_1d", judged["ou_1d"], BY_NAME["ou_1d"].cells[:-1])
    assert verdicts(out)["ou_1d"] == ("ok", pytest.approx(judged["ou_1d"][-1].order, abs=0.005))
    assert len(rows_of(out, "ou_1d")) == len(BY_NAME["ou_1d"].cells) - 1


def test_verify_command_fails_when_an_order_misses_the_bar(capsys, monkeypatch):
    """The exit status follows the verdict: the same case against a bar it cannot meet (third order) fails."""
    monkeypatch.setattr(verify, "MIN_ORDER", 3.0)
    assert main(["verify", "--case", "ou_1d"]) == 1
    assert verdicts(capsys.readouterr().out)["ou_1d"][0] == "FAIL"


def test_unknown_cases_are_rejected(capsys):
    assert main(["verify", "--case", "nope"]) == 2
    assert "unknown case" in capsys.readouterr().err


@pytest.mark.slow
def test_the_whole_verify_command_passes(capsys, judged):
    """`mfdyn verify` (all cases on their full grids, the implicit stepper's order in dt, the Gibbs states)
    exits 0, and every case's numbers meet the bars; ou_3d is the expensive one (128³ cells)."""
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    assert set(judged) == set(BY_NAME)
    printed = verdicts(out)
    for name, levels in judged.items():
        check_levels(name, levels, BY_NAME[name].cells)
        assert printed[name] == ("ok", pytest.approx(levels[-1].order, abs=0.005)), name
    assert "FAIL" not in out
