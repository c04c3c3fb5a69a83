"""The problem registry: a config picks a problem by problem.name (docs/guide.md, "Problems").

Importing this package registers the built-in problems; a Problem subclass defined anywhere else
registers itself the same way when its class statement runs.
"""
from __future__ import annotations

from mfdyn.problems import linear_flows, mmn_anisotropic, mmn_isotropic, teacher_student  # noqa: F401  (register)
from mfdyn.problems.base import PROBLEMS, GridModel, Problem


def make_problem(config) -> Problem:
    """The Problem a validated Config names, built with its parameters and [init]."""
    return PROBLEMS[config.problem.name](config.problem.params, config.init)


__all__ = ["GridModel", "PROBLEMS", "Problem", "make_problem"]
