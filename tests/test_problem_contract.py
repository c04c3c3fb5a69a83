"""The contract every registered problem keeps with both engines (mfdyn/problems/base.py, docs/math.md §1, §3).

Parametrised over the registry, so a problem is held to it the moment its class is defined:

1. the GridModel's arrays have the grid's cell count, and feature_count predicts the features built;
2. ρ_0's exact cell averages are a probability law, exactly additive under refinement, and the default
   domain holds it (the mass it leaves outside is what the sampler puts outside);
3. sample_initial draws ρ_0: the reduced particles against the cell averages (mean, quantiles, CDF);
4. R(ρ_N) on the grid is the particles' exact R_N (§1), for point masses at cell centres: exactly
   in full θ-space; in reduced coordinates on average over the directions the reduction integrates out;
5. the network is registered, and coordinates, bounds, dim and reduce agree.

Every problem is built with its default parameters and the default [init].
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import particles.run  # noqa: F401  (fills the network registry)
from mfdyn.config import InitConfig, ParticlesConfig
from mfdyn.grid import Grid
from mfdyn.problems import PROBLEMS
from particles.networks import NETWORKS
from pde.potential import PotentialOperator

NAMES = sorted(PROBLEMS)

# Grids for the GridModel: small, and not square, so that a transposed axis or a wrong flattening order shows.
MODEL_CELLS = {1: (48,), 2: (32, 24), 3: (16, 12, 10)}
# Grids for ρ_0 alone (cheap: products of CDF differences), fine enough that the cell width is small
# against ρ_0's spread, so that the cell-width term of the sampler tolerances is not what decides them.
FINE_CELLS = {1: (4096,), 2: (1024, 768), 3: (96, 80, 64)}
N_SAMPLE = 20_000
Z = 4.0                       # standard errors allowed in Monte Carlo comparisons (two-sided p ≈ 6e-5)
DKW_ALPHA = 1e-6              # false-alarm probability of the CDF band
QUANTILE_LEVELS = (0.1, 0.5, 0.9)
ROUNDOFF = 1e-12              # relative, for identities that hold to round-off
REPEATS = 8                   # particles per chosen cell in the point-mass tests
DIRECTION_DRAWS = 300         # Monte Carlo draws of the directions a reduction integrates out

_cache: dict[str, dict] = {}


def make(name: str):
    cls = PROBLEMS[name]
    return cls(cls.Params(), InitConfig())


def case(name: str) -> dict:
    """The problem, its model grid, GridModel and PotentialOperator, and a sample of ρ_0 (built once per module)."""
    if name not in _cache:
        problem = make(name)
        ndim = len(problem.coords)
        grid = Grid(tuple(problem.default_bounds()), MODEL_CELLS[ndim], problem.coords)
        model = problem.grid_model(grid.centres)
        theta = problem.sample_initial(N_SAMPLE, np.random.default_rng([7, NAMES.index(name)]))
        _cache[name] = {"problem": problem, "grid": grid, "model": model, "op": PotentialOperator(model, grid),
                        "theta": theta, "z": problem.reduce(theta)}
    return _cache[name]


def inside(z: np.ndarray, bounds) -> np.ndarray:
    """Rows of z inside the box (closed)."""
    return np.all([(z[:, k] >= lo) & (z[:, k] <= hi) for k, (lo, hi) in enumerate(bounds)], axis=0)


def marginal_masses(rho: np.ndarray, grid: Grid, axis: int) -> np.ndarray:
    """Cell masses of the axis-marginal of the cell averages rho."""
    others = tuple(k for k in range(grid.ndim) if k != axis)
    return rho.sum(axis=others) * grid.cell_volume


# ---------------------------------------------------------------------------------------------- lifts z → θ
def _unit(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    g = rng.standard_normal((n, k))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def _lift_isotropic(problem, z, rng):
    """w = r u, u uniform on S^{d−1} independently per particle (the average of docs/math.md §3.1)."""
    return z[:, :1] * _unit(rng, len(z), problem.params.d)


def _lift_anisotropic(problem, z, rng):
    """w = (r1 u1, r2 u2): u1 uniform on the sphere of S = the first s0 coordinates, u2 on that of S⊥,
    independent per particle (the average of docs/math.md §3.2)."""
    s0, d = problem.params.s0, problem.params.d
    return np.hstack([z[:, :1] * _unit(rng, len(z), s0), z[:, 1:2] * _unit(rng, len(z), d - s0)])


# Reduced problems: θ with reduce(θ) = z, its free directions drawn from the law the reduction averages over.
LIFTS = {"mmn_isotropic": _lift_isotropic, "mmn_anisotropic": _lift_anisotropic}


def full_space(problem) -> bool:
    """Is the grid θ itself (no reduction)?"""
    return problem.dim == len(problem.coords)


def lift(problem, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if full_space(problem):
        return np.array(z, copy=True)
    if problem.name not in LIFTS:
        pytest.fail(f"{problem.name} is a reduced problem (dim {problem.dim}, coordinates {problem.coords}); "
                    "add its lift z → θ (with the directions its reduction averages over) to LIFTS in "
                    "tests/test_problem_contract.py")
    theta = LIFTS[problem.name](problem, z, rng)
    np.testing.assert_allclose(problem.reduce(theta), z, rtol=1e-12, atol=1e-14)
    return theta


def chosen_cells(c: dict) -> list[int]:
    """Three cells in the bulk of ρ_0 (flat C-order indices): on each axis, the cells holding the marginal
    20 %, 50 % and 80 % quantiles, combined as (lo, hi, ...), (mid, mid, ...), (hi, lo, ...)."""
    grid, problem = c["grid"], c["problem"]
    rho0 = problem.initial_cell_averages(grid.edges)
    per_axis = []
    for axis in range(grid.ndim):
        cdf = np.cumsum(marginal_masses(rho0, grid, axis))
        per_axis.append([int(np.searchsorted(cdf, p * cdf[-1])) for p in (0.2, 0.5, 0.8)])
    picks = [tuple(per_axis[k][0 if k % 2 == 0 else 2] for k in range(grid.ndim)),
             tuple(per_axis[k][1] for k in range(grid.ndim)),
             tuple(per_axis[k][2 if k % 2 == 0 else 0] for k in range(grid.ndim))]
    return [int(np.ravel_multi_index(p, grid.shape)) for p in picks]


def point_masses(grid: Grid, cells: list[int]) -> np.ndarray:
    """Cell averages of ρ_N = (1/N) Σ δ at the centres of `cells` (a cell may repeat): mass 1/N per particle."""
    rho = np.zeros(int(np.prod(grid.shape)))
    np.add.at(rho, cells, 1.0 / (len(cells) * grid.cell_volume))
    return rho.reshape(grid.shape)


def centres_of(grid: Grid, cells: list[int]) -> np.ndarray:
    return np.stack(grid.mesh(), axis=1)[cells]


# ------------------------------------------------------------------------------------------ 1. the GridModel
@pytest.mark.parametrize("name", NAMES)
def test_grid_model_shapes_and_feature_count(name):
    c = case(name)
    problem = c["problem"]
    ndim = len(problem.coords)
    for cells in (MODEL_CELLS[ndim], tuple(n + 6 for n in MODEL_CELLS[ndim])):
        grid = Grid(tuple(problem.default_bounds()), cells, problem.coords)
        model = c["model"] if cells == MODEL_CELLS[ndim] else problem.grid_model(grid.centres)
        m = int(np.prod(cells))
        k = problem.feature_count(grid.centres)
        assert model.features.shape == (k, m), (cells, model.features.shape, k)
        assert model.weights.shape == (k,)
        for field in ("potential", "sq_norm", "self_interaction", "log_volume"):
            value = getattr(model, field)
            assert value.shape == (m,), (field, value.shape)
            assert np.all(np.isfinite(value)), field
        assert np.all(np.isfinite(model.features)) and np.all(np.isfinite(model.weights))
        assert np.isfinite(model.r_sharp) and model.r_sharp >= 0.0
        assert np.all(model.sq_norm >= 0.0)
        assert problem.initial_cell_averages(grid.edges).shape == grid.shape


# ------------------------------------------------------------------------------------------------- 2. ρ_0 mass
@pytest.mark.parametrize("name", NAMES)
def test_initial_cell_averages_are_the_law_of_rho0(name):
    """Exact cell averages: nonnegative; on a domain five times as wide (lower natural edges kept) they hold
    mass 1; on the default domain they miss only ρ_0's tails: less than one particle of the default
    particles.n on average, and the same fraction the sampler puts outside (a binomial count, within Z
    standard deviations plus 3 for counts near 0: P(Poisson(λ) > λ + 4√λ + 3) < 1e−4 for every λ).
    Exact averages are additive: the means of pairs of cells of a refined grid are the coarse averages."""
    c = case(name)
    problem, grid = c["problem"], c["grid"]
    rho0 = problem.initial_cell_averages(grid.edges)
    assert np.all(rho0 >= 0.0)
    mass = grid.integrate(rho0)

    wide_bounds = []
    for (lo, hi), natural in zip(grid.bounds, problem.natural_lower):
        width = hi - lo
        wide_bounds.append((lo if natural else lo - 2 * width, hi + 2 * width))
    wide_cells = tuple(n * (3 if natural else 5) for n, natural in zip(grid.cells, problem.natural_lower))
    wide = Grid(tuple(wide_bounds), wide_cells, grid.names)
    assert wide.integrate(problem.initial_cell_averages(wide.edges)) == pytest.approx(1.0, abs=1e-9)

    assert mass <= 1.0 + ROUNDOFF
    outside = 1.0 - mass
    assert outside < 1.0 / ParticlesConfig().n, f"the default domain leaves {outside:.2e} of ρ_0 outside"
    count = int(np.sum(~inside(c["z"], grid.bounds)))
    assert abs(count - N_SAMPLE * outside) <= Z * math.sqrt(N_SAMPLE * max(outside, 0.0)) + 3, (count, outside)

    fine = Grid(grid.bounds, tuple(2 * n for n in grid.cells), grid.names)
    coarsened = problem.initial_cell_averages(fine.edges)
    for axis in range(grid.ndim):
        coarsened = np.add.reduceat(coarsened, np.arange(0, coarsened.shape[axis], 2), axis=axis) / 2.0
    np.testing.assert_allclose(coarsened, rho0, rtol=0, atol=1e-10 * rho0.max())


# ---------------------------------------------------------------------------------------- 3. sampler vs grid
@pytest.mark.parametrize("name", NAMES)
def test_sampler_draws_the_initial_cell_averages(name):
    """The reduced particles inside the default domain against the normalised cell-average law, per axis:

    - the CDF at every cell edge (exact there for exact averages): within the DKW band
      sqrt(log(2/α)/(2n)), α = 1e−6;
    - the mean and the standard deviation: Z standard errors + h/2 (moving each draw to its cell's centre
      moves it by at most h/2, hence the mean and, by Minkowski, the standard deviation by at most h/2;
      the cell-centred law is the grid's);
    - the 10/50/90 % quantiles (CDF linear inside a cell, so off by at most h):
      Z·sqrt(p(1−p)/n)/f + h, with f the marginal density of the quantile's cell.
    """
    c = case(name)
    problem = c["problem"]
    ndim = len(problem.coords)
    grid = Grid(tuple(problem.default_bounds()), FINE_CELLS[ndim], problem.coords)
    rho0 = problem.initial_cell_averages(grid.edges)
    z = c["z"][inside(c["z"], grid.bounds)]
    n = len(z)
    assert n > 0.99 * N_SAMPLE
    band = math.sqrt(math.log(2.0 / DKW_ALPHA) / (2.0 * n))
    for axis in range(ndim):
        masses = marginal_masses(rho0, grid, axis)
        masses = masses / masses.sum()
        edges, centres, h = grid.edges[axis], grid.centres[axis], grid.widths[axis]
        cdf = np.concatenate([[0.0], np.cumsum(masses)])
        values = np.sort(z[:, axis])
        empirical = np.searchsorted(values, edges, side="right") / n
        worst = np.abs(empirical - cdf).max()
        assert worst < band, f"{problem.coords[axis]}: CDF gap {worst:.4f} > DKW band {band:.4f}"

        grid_mean = float(masses @ centres)
        grid_sd = math.sqrt(float(masses @ (centres - grid_mean) ** 2))
        sd = values.std(ddof=1)
        assert abs(values.mean() - grid_mean) <= Z * sd / math.sqrt(n) + h / 2, \
            (problem.coords[axis], values.mean(), grid_mean)
        sd_error = math.sqrt(max(np.mean((values - values.mean()) ** 4) - sd**4, 0.0) / n) / (2 * sd)
        assert abs(sd - grid_sd) <= Z * sd_error + h / 2, (problem.coords[axis], sd, grid_sd)

        for p in QUANTILE_LEVELS:
            j = int(np.clip(np.searchsorted(cdf, p, side="left"), 1, len(masses)))
            q_grid = edges[j - 1] + (p - cdf[j - 1]) / masses[j - 1] * h
            density = masses[j - 1] / h
            tol = Z * math.sqrt(p * (1 - p) / n) / density + h
            q_sample = float(np.quantile(values, p))
            assert abs(q_sample - q_grid) <= tol, (problem.coords[axis], p, q_sample, q_grid, tol)


# --------------------------------------------------------------------------------- 4. grid risk of point masses
@pytest.mark.parametrize("name", NAMES)
def test_grid_risk_of_one_point_mass_is_the_exact_risk(name):
    """One particle: R_1(θ) = R# + 2V(θ) + U(θ, θ) exactly (docs/math.md §1). On the grid a point mass at cell c gives
    R# + 2V_c + u(z_c, z_c) with the grid kernel's diagonal; GridModel.self_interaction is U(θ, θ), so
    risk(δ_c) − u_cc + self_interaction_c must equal exact_risk. In full θ-space the kernel's diagonal is
    U(θ, θ) itself, so there self_interaction = Σ_k w_k Φ_kc² too. Also |θ|² = sq_norm_c."""
    c = case(name)
    problem, grid, model, op = c["problem"], c["grid"], c["model"], c["op"]
    rng = np.random.default_rng([11, NAMES.index(name)])
    for cell in chosen_cells(c):
        delta = point_masses(grid, [cell])
        theta = lift(problem, centres_of(grid, [cell]), rng)
        u_cc = op.interaction_energy(delta)
        grid_value = op.risk(delta) - u_cc + model.self_interaction[cell]
        exact = problem.exact_risk(theta)
        assert grid_value == pytest.approx(exact, rel=ROUNDOFF, abs=ROUNDOFF), (cell, grid_value, exact)
        assert float(theta[0] @ theta[0]) == pytest.approx(model.sq_norm[cell], rel=ROUNDOFF, abs=ROUNDOFF)
        if full_space(problem):
            diagonal = float(model.weights @ model.features[:, cell] ** 2)
            assert model.self_interaction[cell] == pytest.approx(diagonal, rel=ROUNDOFF, abs=ROUNDOFF)


@pytest.mark.parametrize("name", NAMES)
def test_grid_risk_of_point_masses_is_the_exact_particle_risk(name):
    """N = 3 × REPEATS particles at three cell centres, ρ_N their cell averages.

    Full θ-space: R(ρ_N) on the grid is R_N(θ) exactly (the same kernel, the same quadrature).
    Reduced: the reduced kernel u(z, z') is U averaged over the free directions of two independent neurons,
    so for directions drawn independently per particle (LIFTS)
        E R_N = R# + (2/N) Σ V + (1/N²) [Σ_{i≠j} u(z_i, z_j) + Σ_i U(θ_i, θ_i)]
              = R(ρ_N) + (1/N²) Σ_i (self_interaction_i − u_ii),
    checked against the mean of exact_risk over DIRECTION_DRAWS draws within Z standard errors
    (the kernels' truncation, ≤ 1e−7 per term, and compression, ≤ 1e−13, are far below that).
    """
    c = case(name)
    problem, grid, model, op = c["problem"], c["grid"], c["model"], c["op"]
    cells = np.repeat(chosen_cells(c), REPEATS).tolist()
    n = len(cells)
    rho_n = point_masses(grid, cells)
    z = centres_of(grid, cells)
    rng = np.random.default_rng([13, NAMES.index(name)])
    if full_space(problem):
        assert op.risk(rho_n) == pytest.approx(problem.exact_risk(lift(problem, z, rng)), rel=ROUNDOFF, abs=ROUNDOFF)
        return
    diagonal = sum(op.interaction_energy(point_masses(grid, [cell])) for cell in cells)
    expected = op.risk(rho_n) + (float(model.self_interaction[cells].sum()) - diagonal) / n**2
    draws = np.array([problem.exact_risk(lift(problem, z, rng)) for _ in range(DIRECTION_DRAWS)])
    sem = draws.std(ddof=1) / math.sqrt(len(draws))
    assert abs(draws.mean() - expected) <= Z * sem, (draws.mean(), expected, sem)


# ------------------------------------------------------------------------------ 5. network, coordinates, bounds
@pytest.mark.parametrize("name", NAMES)
def test_network_coordinates_and_bounds_agree(name):
    cls = PROBLEMS[name]
    problem = make(name)
    assert cls.name == name
    assert cls.check(problem.params, problem.init) == [], "the default parameters must pass the problem's check"
    assert problem.network in NETWORKS, f"network {problem.network!r} not in {sorted(NETWORKS)}"
    coords = cls.coordinates(problem.params)
    assert coords == problem.coords and len(coords) >= 1 and len(set(coords)) == len(coords)
    assert all(isinstance(c, str) and c.isidentifier() for c in coords)
    bounds = problem.default_bounds()
    assert len(bounds) == len(coords)
    for lo, hi in bounds:
        assert np.isfinite(lo) and np.isfinite(hi) and lo < hi
    assert len(problem.natural_lower) == len(coords)
    theta = problem.sample_initial(5, np.random.default_rng(0))
    assert theta.shape == (5, problem.dim)
    assert problem.reduce(theta).shape == (5, len(coords))
    assert np.isfinite(problem.exact_risk(theta))


# 6. The coupled systems of docs/math.md §8, for problems that provide them (Problem.can_couple).
COUPLED = [name for name in NAMES if PROBLEMS[name].can_couple()]


@pytest.mark.parametrize("name", COUPLED)
@pytest.mark.parametrize("alpha,centred", [(1.0, False), (3.0, True)])
def test_population_gradient_is_the_gradient_of_the_exact_risk(name, alpha, centred):
    """∇_θi R_α(ρ_N) = (2α²/N) ∇Ψ^α(θ_i; ρ_N) (docs/math.md §7, §8): G's drift against central differences of
    exact_risk, for a few particles of a small cloud (the centred model: θ(0) held fixed)."""
    problem = make(name)
    if centred and not problem.has_network:
        pytest.skip("no network output to scale or centre")
    rng = np.random.default_rng(3)
    theta = problem.sample_initial(12, rng)
    theta0 = problem.sample_initial(12, rng) if centred else None
    grad = problem.population_gradient(theta, alpha, theta0)
    h, n = 1e-5, len(theta)
    for i in (0, 5):
        for a in range(min(problem.dim, 4)):
            up, down = theta.copy(), theta.copy()
            up[i, a] += h
            down[i, a] -= h
            fd = (problem.exact_risk(up, alpha, theta0) - problem.exact_risk(down, alpha, theta0)) / (2 * h)
            assert abs(n / (2 * alpha**2) * fd - grad[i, a]) <= 1e-6 * max(1.0, abs(grad[i, a])), (i, a)


@pytest.mark.parametrize("name", COUPLED)
def test_field_gradient_is_the_gradient_of_the_grids_psi_at_the_point(name):
    """field_gradient is ∇ of the grid's feature-form Ψ = V + Σ_k w_k Φ_k g_k evaluated at the point itself: against
    central differences of grid_model built on that point alone (full θ-space problems; the reduced ones, whose
    feature rows depend on the grid, are checked in tests/test_field_gradient.py)."""
    c = case(name)
    problem, grid, model = c["problem"], c["grid"], c["model"]
    if problem.dim != grid.ndim:
        pytest.skip("reduced coordinates: checked in tests/test_field_gradient.py")
    rho = problem.initial_cell_averages(grid.edges)
    moments = model.features @ rho.ravel() * grid.cell_volume
    point = problem.sample_initial(1, np.random.default_rng(11))[0]

    def psi(x):
        at = problem.grid_model([np.array([v]) for v in x])
        return float(at.potential[0] + (at.weights * moments) @ at.features[:, 0])

    grad = problem.field_gradient(point[None, :], moments, grid.centres)[0]
    h = 1e-5
    for axis in range(problem.dim):
        step = np.eye(problem.dim)[axis] * h
        fd = (psi(point + step) - psi(point - step)) / (2 * h)
        assert abs(fd - grad[axis]) <= 1e-7 * max(1.0, abs(grad[axis])), (axis, fd, grad)
