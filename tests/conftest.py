"""Shared fixtures: small problems and grids that compile and run in well under a second."""
from __future__ import annotations

import numpy as np
import pytest

from mfdyn.config import InitConfig
from mfdyn.problems.mmn_isotropic import MMNIsotropic, MMNIsotropicParams

# A run config that runs both engines in well under a second (MMN isotropic, d = 10, two saves after t = 0)
TINY_MMN = """
[problem]
name = "mmn_isotropic"
d = 10
delta = 0.8
[dynamics]
t_end = 0.2
[pde]
cells = 80
bounds = [[0.0, 4.0]]
[particles]
n = 30
eps = 1e-3
seed = 3
[output]
every = 0.1
"""


@pytest.fixture
def iso() -> MMNIsotropic:
    """The shipped MMN isotropic problem: d = 40, Δ = 0.8, κ = 0.8, exact kernel."""
    return MMNIsotropic(MMNIsotropicParams(), InitConfig())


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
