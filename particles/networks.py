"""The registry of particle networks: how a problem's particles take their steps (docs/math.md §2).

A problem names its network (Problem.network); the network registers, where its kernel is defined,
a factory

    factory(problem, theta, batch, step, lam, alpha) -> advance(x, y, steps, noise)

that binds the problem's constants and returns a function advancing theta (N, D) in place by
`steps` steps on the data x, y (None for data-free networks), adding noise[s] (already scaled by
sqrt(4s/β); an empty array when β = ∞) after step s. step = 2εξ; alpha is the output scale α
(docs/math.md §7: residual y − αŷ, gradient carrying 1/α).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Advance = Callable[[Any, Any, int, np.ndarray], None]
NETWORKS: dict[str, Callable[..., Advance]] = {}


def register_network(name: str) -> Callable[[Callable[..., Advance]], Callable[..., Advance]]:
    """Decorator: register a network's step factory under name."""
    def register(factory: Callable[..., Advance]) -> Callable[..., Advance]:
        NETWORKS[name] = factory
        return factory
    return register


def network_stepper(problem, theta: np.ndarray, batch: int, step: float, lam: float, alpha: float = 1.0) -> Advance:
    """The advance function of a problem's network; ValueError naming the registered networks otherwise."""
    if problem.network not in NETWORKS:
        raise ValueError(f"problem {problem.name!r}: network {problem.network!r} is not registered; "
                         f"registered: {', '.join(sorted(NETWORKS))}")
    return NETWORKS[problem.network](problem, theta, batch, step, lam, alpha)
