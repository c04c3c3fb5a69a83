"""Shared fixtures: small problems and grids that compile and run in well under a second."""
from __future__ import annotations

import numpy as np
import pytest

from mfdyn.config import InitConfig
from mfdyn.problems.mmn_isotropic import MMNIsotropic, MMNIsotropicParams


@pytest.fixture
def iso() -> MMNIsotropic:
    """The shipped MMN isotropic problem: d = 40, Δ = 0.8, κ = 0.8, exact kernel."""
    return MMNIsotropic(MMNIsotropicParams(), InitConfig())


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
