"""The problem catalogue: a config picks a problem by problem.name (DESIGN.md)."""
from __future__ import annotations

from mfdyn.problems.base import GridModel, Problem
from mfdyn.problems.linear_flows import OrnsteinUhlenbeck, QuadraticInteraction
from mfdyn.problems.mmn_anisotropic import MMNAnisotropic
from mfdyn.problems.mmn_isotropic import MMNIsotropic
from mfdyn.problems.teacher_student import TeacherStudent

CATALOGUE: dict[str, type[Problem]] = {
    cls.name: cls for cls in (MMNIsotropic, MMNAnisotropic, TeacherStudent, OrnsteinUhlenbeck, QuadraticInteraction)}


def make_problem(config) -> Problem:
    """The Problem a validated Config names, built with its parameters and [init]."""
    return CATALOGUE[config.problem.name](config.problem.params, config.init)


__all__ = ["CATALOGUE", "GridModel", "Problem", "make_problem"]
