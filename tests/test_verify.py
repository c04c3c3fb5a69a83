"""`mfdyn verify`: observed orders on the exact-solution cases of docs/math.md §6 (β = ∞).

Every test here requires a passing verdict, and checks the numbers behind it against the bars of
validation/verify.py (MIN_ORDER for the finest pair, MASS_TOL, ρ ≥ 0, a risk that never increases),
on the full grids and on the --quick grids of every case; a failing verdict names the check it missed.
"""
from __future__ import annotations

import re
from itertools import pairwise

import numpy as np
import pytest

from validation import verify
from validation.cli import main
from validation.verify import CASES, MASS_TOL, MIN_ORDER, Level, format_report, passes, run_case

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
    """Case name → (verdict, printed order of the finest pair) from a verify report's ok lines."""
    return {m[1]: (m[2], float(m[3])) for m in re.finditer(r"^(\S+)\s+(ok): order (\S+) \(bar ", text, re.MULTILINE)}


def failures(text: str) -> dict[str, list[str]]:
    """Case name → the checks its FAIL line names (split at '; ')."""
    return {m[1]: m[2].split("; ") for m in re.finditer(r"^(\S+)\s+FAIL: (.*)$", text, re.MULTILINE)}


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


def test_the_quick_verify_command_passes_on_coarser_grids(capsys, judged):
    """`mfdyn verify --quick` as a new user runs it: every case on grids coarser than the full run (its
    finest level below the full one's), each meeting every bar, and the extra checks too: exit 0, no FAIL."""
    assert main(["verify", "--quick"]) == 0
    out = capsys.readouterr().out
    assert set(judged) == set(BY_NAME) and "FAIL" not in out
    printed = verdicts(out)
    for name, levels in judged.items():
        case = BY_NAME[name]
        assert max(case.levels(quick=True)) < max(case.cells) and len(case.levels(quick=True)) >= 2, name
        check_levels(name, levels, case.levels(quick=True))
        assert printed[name] == ("ok", pytest.approx(levels[-1].order, abs=0.005)), name
        assert len(rows_of(out, name)) == len(case.levels(quick=True))
    assert "ok (order 1" in out and "ok (order 2" in out and out.count("ok (≤ 1e-12)") == 3


def test_verify_command_fails_when_an_order_misses_the_bar(capsys, monkeypatch):
    """The exit status follows the verdict: the same case against a bar it cannot meet (third order) fails,
    and its FAIL line names the order, with the value and the bar, and none of the checks it met."""
    monkeypatch.setattr(verify, "MIN_ORDER", 3.0)
    assert main(["verify", "--case", "ou_1d"]) == 1
    out = capsys.readouterr().out
    assert "ou_1d" not in verdicts(out)
    order = run_case(BY_NAME["ou_1d"])[-1].order
    assert failures(out) == {"ou_1d": [f"order {order:.2f} < bar 3.0"]}


def _levels(**worst) -> list[Level]:
    """Two levels that pass every bar, with the finer one's fields replaced by `worst`."""
    good = dict(l1_error=1e-3, order=2.0, mass_drift=1e-15, min_density=0.0, max_risk_increase=-1e-3, seconds=0.1)
    return [Level(32, **{**good, "l1_error": 4e-3, "order": np.nan}), Level(64, **{**good, **worst})]


@pytest.mark.parametrize("worst,named", [
    ({"mass_drift": 3e-11}, f"mass drift 3.0e-11 > {MASS_TOL:g} at 64 cells"),
    ({"min_density": -2e-9}, "positivity: min rho -2.0e-09 < 0 at 64 cells"),
    ({"max_risk_increase": 5e-8}, "monotone R or F: it rose by 5.0e-08 at 64 cells"),
    ({"order": 1.79}, f"order 1.79 < bar {MIN_ORDER}"),
    ({"order": np.nan}, f"order nan < bar {MIN_ORDER}"),
])
def test_a_fail_line_names_only_the_check_that_failed(worst, named):
    levels = _levels(**worst)
    assert not passes(levels) and passes(_levels())
    report = format_report({"case_x": levels, "case_ok": _levels()})
    assert failures(report) == {"case_x": [named]}
    assert set(verdicts(report)) == {"case_ok"}


def test_a_fail_line_names_every_check_that_failed():
    report = format_report({"case_x": _levels(order=1.5, min_density=-1.0)})
    assert failures(report) == {"case_x": [f"order 1.50 < bar {MIN_ORDER}", "positivity: min rho -1.0e+00 < 0 at 64 cells"]}


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
