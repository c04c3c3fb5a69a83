"""The exact population gradient of the MMN problems (docs/math.md §4, §8): mfdyn.pair_kernel and
SingleIndexRamp.population_gradient.

- the Numba kernel against its NumPy twin (independent rules for |c| > 0.5: closed forms through the
  bivariate normal vs. quadrature over V), on clouds with c → ±1, exact copies, τ → 0 and w = 0;
- one call, uneven splits of the tasks, 1 or all threads: the same bits;
- the pair rules against Mehler at the switch |c| = 0.5 and against adaptive quadrature near |c| = 1;
- population_gradient against central differences of Ψ^α(w; ρ_N) built from gaussian.pair_expectation and q;
- the pair energy, as R_N, against exact_risk.
"""
from __future__ import annotations

from pathlib import Path

import numba
import numpy as np
import pytest
from scipy.integrate import quad

from mfdyn import pair_kernel
from mfdyn.config import load_config
from mfdyn.gaussian import (
    MEHLER_MAX_COSINE,
    Ramp,
    hermite_coefficients,
    mehler_sum,
    ndtr,
    npdf,
    pair_expectation,
    q,
    ramp_mean,
    ramp_second_moment,
)
from mfdyn.pair_kernel import (
    COL_CHUNK,
    ENERGY_FAR_COSINE,
    ENERGY_PARALLEL_PAIRS,
    ENERGY_TAIL,
    FAR_TERMS,
    LISTED_PAIRS,
    MID_TERMS,
    ROW_BLOCK,
    TAIL_SLACK,
    _far_terms,
    _mid_terms,
    _tiles,
    bvn_corners,
    bvn_upper,
    class_geometry,
    coefficients_into,
    derivative_coefficients,
    energy_arguments,
    energy_coefficient_tasks,
    energy_tasks,
    high_coefficient_tasks,
    mehler_terms,
    near_energy,
    near_pair,
    near_pairs_numpy,
    pair_energy,
    pair_energy_numpy,
    pair_gradient,
    pair_gradient_numpy,
    pair_tasks,
    run_energy_rows,
    run_pair_rows,
)
from mfdyn.problems import make_problem
from mfdyn.problems.single_index import CLASSES

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"iso": ROOT / "configs/mmn_isotropic.toml", "aniso": ROOT / "configs/mmn_anisotropic.toml"}
RAMPS = (Ramp(), Ramp(-0.3, 0.7, -1.0, 2.0), Ramp(0.2, 0.9, 3.0, -1.0))   # shipped; kinks around 0; decreasing


def problem_of(which: str, *overrides: str):
    return make_problem(load_config(CONFIGS[which], list(overrides)))


def scales_of(problem) -> np.ndarray:
    return np.stack([problem.class_scale(y) for y in CLASSES])


def hard_cloud(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """A cloud with every awkward pair: near-parallel at 1 − c = O(1e−18) .. O(1e−4), antiparallel, exact
    copies (c = 1 exactly) and negatives (c = −1), a tiny particle (τ ~ 1e−3) and w = 0."""
    w = rng.standard_normal((n, d)) * rng.uniform(0.1, 0.6, (n, 1))
    for k, eps in enumerate((1e-9, 1e-6, 1e-4, 1e-2)):
        w[1 + k] = w[0] * (1.0 + 0.3 * k) + eps * rng.standard_normal(d)
        w[5 + k] = -w[0] * (0.5 + 0.2 * k) + eps * rng.standard_normal(d)
    w[9] = w[10]
    w[11] = -w[12]
    w[13] = 1e-3 * w[13]
    w[14] = 0.0
    return w


# ------------------------------------------------------------------------------------------------ kernel vs twin
@pytest.mark.parametrize("which,overrides", [("iso", ("problem.d=3",)), ("aniso", ("problem.d=5", "problem.s0=2")),
                                             ("iso", ()), ("aniso", ())])
def test_numba_kernel_matches_the_numpy_twin(which, overrides):
    """Signed weights (a centred model), rows a prefix of the points, the energy too: to 1e−12 of the scale
    (the energy's: Σ_ij |ω_i ω_j| max|σ|², which it cancels down from)."""
    problem = problem_of(which, *overrides)
    rng = np.random.default_rng(11)
    d = problem.dim
    points = hard_cloud(70, d, rng)
    weights = np.r_[np.full(40, 1 / 40), np.full(30, -1 / 40)]
    r = problem.ramp
    args = (points, weights, scales_of(problem), np.full(2, 0.5), r.t1, r.t2, r.s1, r.s2)
    _, unit = class_geometry(points, scales_of(problem))
    assert np.sum(np.abs(unit[0] @ unit[0].T) > MEHLER_MAX_COSINE) > 2 * len(points)    # the near branch is used
    for rows in (40, 70):
        grad, energy = pair_gradient(*args, rows=rows, energy=True)
        twin, twin_energy = pair_gradient_numpy(*args, rows=rows, energy=True)
        assert np.all(np.isfinite(grad)) and grad.shape == (rows, d)
        np.testing.assert_allclose(grad, twin, rtol=1e-12, atol=1e-12 * np.abs(twin).max())
        scale = np.abs(weights[:rows]).sum() * np.abs(weights).sum() * max(r.s1**2, r.s2**2)
        assert energy == pytest.approx(twin_energy, rel=0, abs=1e-12 * scale)
    alone, nan = pair_gradient(*args, rows=70)
    np.testing.assert_array_equal(alone, grad)                      # the energy does not touch the gradient
    assert np.isnan(nan)


def test_the_numbers_do_not_depend_on_the_thread_count_or_the_split():
    """Rows over several tasks (the last ragged), columns over several chunks: one call over all tasks, the
    tasks in uneven pieces, and run_pair_rows on 1 or all threads give the same bits."""
    problem = problem_of("aniso", "problem.d=7", "problem.s0=3")
    n = 3 * ROW_BLOCK + 3 + 2 * COL_CHUNK
    points = hard_cloud(n, 7, np.random.default_rng(5))
    r = problem.ramp
    tau, unit = class_geometry(points, scales_of(problem))
    h, d1, d2 = (np.empty(tau.shape + (49,)) for _ in range(3))
    coefficients_into(tau, r.t1, r.t2, r.s1, r.s2, h, d1, d2)
    args = (unit, tau, h, d1, d2, _tiles(unit, COL_CHUNK), _tiles(h, COL_CHUNK), _tiles(d1, COL_CHUNK), points,
            np.full(n, 1.0 / n), 0.5 * scales_of(problem) ** 2, np.full(2, 0.5), n, r.t1, r.t2, r.s1, r.s2,
            MEHLER_MAX_COSINE, True)
    tasks = -(-n // ROW_BLOCK)
    serial = np.empty((n, 7)), np.empty(n)
    pair_tasks(0, tasks, *args, *serial)
    pieces = np.full((n, 7), np.nan), np.full(n, np.nan)
    for first, last in ((2, tasks), (0, 1), (1, 2)):
        pair_tasks(first, last, *args, *pieces)
    np.testing.assert_array_equal(pieces[0], serial[0])
    np.testing.assert_array_equal(pieces[1], serial[1])
    threads = numba.get_num_threads()
    try:
        for count in sorted({1, threads}):
            numba.set_num_threads(count)
            out = np.full((n, 7), np.nan), np.full(n, np.nan)
            run_pair_rows(*args, *out)
            np.testing.assert_array_equal(out[0], serial[0])
            np.testing.assert_array_equal(out[1], serial[1])
    finally:
        numba.set_num_threads(threads)


@pytest.mark.parametrize("which,overrides", [("iso", ("problem.d=3",)), ("aniso", ("problem.d=5", "problem.s0=2")),
                                             ("iso", ())])
def test_energy_kernel_matches_the_numpy_twin_and_the_gradient_kernel(which, overrides):
    """pair_energy (pairs j ≥ i, near_energy) against pair_energy_numpy (V-quadrature) to 1e−12 of the scale on
    the hard cloud with signed weights, and against pair_gradient's energy (the same rules, all pairs)."""
    problem = problem_of(which, *overrides)
    points = hard_cloud(150, problem.dim, np.random.default_rng(12))     # > one row block and column chunk
    weights = np.r_[np.full(80, 1 / 80), np.full(70, -1 / 80)]
    r = problem.ramp
    args = (points, weights, scales_of(problem), np.full(2, 0.5), r.t1, r.t2, r.s1, r.s2)
    energy = pair_energy(*args)
    scale = np.abs(weights).sum() ** 2 * max(r.s1**2, r.s2**2)
    assert abs(energy) > 1e-3
    assert energy == pytest.approx(pair_energy_numpy(*args), rel=0, abs=1e-12 * scale)
    assert energy == pytest.approx(pair_gradient(*args, energy=True)[1], rel=0, abs=1e-13 * scale)
    for a, b, c in ((1.2, 0.9, 0.7), (0.8, 0.8, 1 - 1e-9), (2.0, 0.3, -0.99)):
        omc = 1 - abs(c)
        assert near_energy(a, b, c, omc, q(r, a), q(r, b), r.t1, r.t2, r.s1, r.s2) == near_pair(
            a, b, c, omc, q(r, a), q(r, b), r.t1, r.t2, r.s1, r.s2, True)[2]


def test_the_four_corners_share_their_nodes_and_keep_the_bits_of_four_calls():
    """bvn_corners (the four Φ₂ of a rectangle at one correlation, nodes shared from |r| = 0.925 on) against four
    bvn_upper calls, bit for bit from 0.925 on, for r of either sign down to 1 − |r| = 1e−12 and r = ±1, equal and unequal h, k;
    and bvn_upper there against Φ₂(h, k; r) = ∫_h^∞ φ(x) Φ((r x − k)/s) dx by adaptive quadrature."""
    rng = np.random.default_rng(3)
    for _ in range(400):
        h1, h2, k1, k2 = rng.normal(0.0, 2.0, 4)
        k1 = h1 if rng.random() < 0.2 else k1
        omc = 0.0 if rng.random() < 0.05 else 10.0 ** rng.uniform(-12.0, np.log10(0.5))
        r = rng.choice([-1.0, 1.0]) * (1.0 - omc)
        sin2 = omc * (2.0 - omc)
        corners, calls = bvn_corners(h1, h2, k1, k2, r, sin2), [bvn_upper(h, k, r, sin2) for h in (h1, h2) for k in (k1, k2)]
        if omc <= 0.075:
            assert corners == tuple(calls)
        else:                                        # below 0.925 the corners also share the sines, in another order
            np.testing.assert_allclose(corners, calls, rtol=0, atol=1e-15)
    for h, k, r in ((0.3, 0.4, 0.95), (-1.0, 0.5, 0.99), (1.2, 1.2, -0.97), (0.5, -2.0, 0.999)):
        s = np.sqrt(1.0 - r * r)
        want = quad(lambda x: npdf(x) * ndtr((r * x - k) / s), h, np.inf, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
        assert bvn_upper(h, k, r, 1.0 - r * r) == pytest.approx(want, rel=0, abs=1e-12)


def test_the_energy_does_not_depend_on_the_thread_count_or_the_split():
    """energy_tasks in one call and in uneven pieces (row energies and deferred marks), and run_energy_rows (with
    deferred_tasks, which this cloud's near-parallel pairs need) on 1 and 2 threads (above ENERGY_PARALLEL_PAIRS,
    so the threads are used): the same bits; pair_energy, whose set-up runs on the threads too, is
    Σ_i ω_i row_energy_i."""
    problem = problem_of("aniso", "problem.d=7", "problem.s0=3")
    n = 380
    assert n * (n + 1) // 2 >= ENERGY_PARALLEL_PAIRS
    points = hard_cloud(n, 7, np.random.default_rng(6))
    weights = np.r_[np.full(200, 1 / 200), np.full(n - 200, -1 / 200)]
    r = problem.ramp
    args = energy_arguments(points, weights, scales_of(problem), np.full(2, 0.5), r.t1, r.t2, r.s1, r.s2)
    tasks = -(-n // ROW_BLOCK)
    marks = (2, tasks, -(-n // COL_CHUNK))

    def lists():
        return (np.full((tasks, LISTED_PAIRS), -1, dtype=np.int64), np.full((tasks, LISTED_PAIRS), np.nan),
                np.full(tasks, -1, dtype=np.int64))
    serial, deferred, listed = np.empty(n), np.empty(marks, dtype=np.uint8), lists()
    energy_tasks(0, tasks, *args, serial, deferred, *listed)
    assert deferred.any()
    pieces, pieces_deferred, pieces_listed = np.full(n, np.nan), np.full(marks, 7, dtype=np.uint8), lists()
    for first, last in ((3, tasks), (0, 1), (1, 3)):
        energy_tasks(first, last, *args, pieces, pieces_deferred, *pieces_listed)
    np.testing.assert_array_equal(pieces, serial)
    np.testing.assert_array_equal(pieces_deferred, deferred)
    for got, want in zip(pieces_listed, listed):
        np.testing.assert_array_equal(got, want)
    threads = numba.get_num_threads()
    try:
        outs = []
        for count in (1, 2):
            numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
            outs.append(np.full(n, np.nan))
            run_energy_rows(*args, outs[-1])
            assert pair_energy(points, weights, scales_of(problem), np.full(2, 0.5), r.t1, r.t2, r.s1, r.s2) == float(
                np.sum(weights * outs[-1]))
        np.testing.assert_array_equal(outs[0], outs[1])
        assert not np.array_equal(outs[0], serial)                      # the deferred pairs were added
    finally:
        numba.set_num_threads(threads)


def test_the_deferred_pairs_give_the_same_bits_listed_or_found_again(monkeypatch):
    """run_energy_rows with lists long enough for every row block (listed_tasks only), for some (both kernels)
    and for none (deferred_tasks only, which finds the pairs again from the marks): the same bits."""
    problem = problem_of("aniso", "problem.d=7", "problem.s0=3")
    n = 380
    points = hard_cloud(n, 7, np.random.default_rng(6))
    weights = np.r_[np.full(200, 1 / 200), np.full(n - 200, -1 / 200)]
    r = problem.ramp
    args = energy_arguments(points, weights, scales_of(problem), np.full(2, 0.5), r.t1, r.t2, r.s1, r.s2)
    tasks = -(-n // ROW_BLOCK)
    deferred, listed = np.empty((2, tasks, -(-n // COL_CHUNK)), dtype=np.uint8), np.empty((tasks, LISTED_PAIRS), np.int64)
    counts = np.empty(tasks, dtype=np.int64)
    energy_tasks(0, tasks, *args, np.empty(n), deferred, listed, np.empty((tasks, LISTED_PAIRS)), counts)
    assert counts.max() <= LISTED_PAIRS and np.count_nonzero(counts) > 3
    outs = []
    for room in (LISTED_PAIRS, int(np.median(counts[counts > 0])), 0):
        monkeypatch.setattr(pair_kernel, "LISTED_PAIRS", room)
        outs.append(np.full(n, np.nan))
        run_energy_rows(*args, outs[-1])
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


# ------------------------------------------------------------------------------------------------ the pair rules
@pytest.mark.parametrize("ramp", RAMPS)
def test_closed_forms_match_the_v_quadrature_up_to_c_equal_one(ramp):
    """near_pair (Numba: bivariate normal) against near_pairs_numpy (quadrature over V) for 0 ≤ 1 − |c| ≤ 0.5,
    a third of them near copies (b ≈ a, where the O(1) terms of L cancel to O(1 − |c|))."""
    rng = np.random.default_rng(1)
    n = 400
    a, b = (np.exp(rng.uniform(np.log(0.02), np.log(15), n)) for _ in range(2))
    b[::3] = a[::3] * (1.0 + np.exp(rng.uniform(np.log(1e-12), np.log(1e-8), len(a[::3]))))   # near copies
    omc = np.exp(rng.uniform(np.log(1e-17), np.log(0.5), n))
    omc[:20] = 0.0
    c = np.where(rng.random(n) < 0.5, -1.0, 1.0) * (1.0 - omc)
    ours = np.array([near_pair(a[i], b[i], c[i], omc[i], q(ramp, a[i]), q(ramp, b[i]), ramp.t1, ramp.t2, ramp.s1,
                               ramp.s2, True) for i in range(n)])
    twin = np.stack(near_pairs_numpy(ramp, a, b, c, omc), axis=1)
    scale = np.abs(twin).max(axis=0)
    np.testing.assert_allclose(ours[:, :2], twin[:, :2], rtol=0, atol=1e-13 * scale[:2].max())
    np.testing.assert_allclose(ours[:, 2], twin[:, 2], rtol=0, atol=1e-12 * scale[2])


@pytest.mark.parametrize("c", [-0.5, 0.5])
def test_the_rules_meet_mehler_at_the_switch(c):
    """At |c| = MEHLER_MAX_COSINE both sides give the same A, B, P (Mehler's truncation is below 1e−13 there)."""
    ramp = RAMPS[0]
    a, b = np.array([0.08, 0.4, 1.0, 2.5, 9.0]), np.array([1.7, 0.3, 1.2, 6.0, 0.9])
    (ha, d1a, d2a), (hb, d1b, _) = derivative_coefficients(ramp, a), derivative_coefficients(ramp, b)
    mehler = np.stack([mehler_sum(d2a, hb, c), mehler_sum(d1a, d1b, c), mehler_sum(ha, hb, c)], axis=1)
    ours = np.array([near_pair(a[i], b[i], c, 1 - abs(c), ha[0, i], hb[0, i], ramp.t1, ramp.t2, ramp.s1, ramp.s2,
                               True) for i in range(len(a))])
    np.testing.assert_allclose(ours, mehler, rtol=0, atol=3e-13 * np.abs(mehler).max())


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def test_near_pair_matches_adaptive_quadrature_near_c_equal_one():
    """An independent reference: E σ(aX)σ(bY) = ∫ σ(ax) E[σ(bY) | x] φ(x) dx by adaptive quadrature, split at
    the kinks and around the boundary layers of width ~√(1 − c²) that form at the limit's kinks."""
    ramp = RAMPS[0]
    for a, b, c in ((1.2, 0.9, 1 - 1e-2), (1.2, 0.9, 1 - 1e-4), (0.7, 2.0, -(1 - 1e-3))):
        s = np.sqrt(1 - c * c)
        f = lambda x: float(ramp(a * x) * ramp_mean(ramp, b * c * x, b * s) * npdf(x))
        kinks = [ramp.t1 / a, ramp.t2 / a, ramp.t1 / (b * c), ramp.t2 / (b * c)]
        edges = sorted({-12.0, 12.0, *kinks, *(p + g * s * k for p in kinks[2:] for k in (1, 4, 16) for g in (-1, 1))})
        reference = sum(quad(f, lo, hi, epsabs=1e-15, epsrel=1e-14, limit=200)[0] for lo, hi in zip(edges, edges[1:]))
        ours = near_pair(a, b, c, 1 - abs(c), q(ramp, a), q(ramp, b), ramp.t1, ramp.t2, ramp.s1, ramp.s2, True)[2]
        assert ours == pytest.approx(reference, abs=1e-12)


@pytest.mark.parametrize("ramp", RAMPS)
def test_numba_coefficients_match_derivative_coefficients(ramp):
    tau = np.r_[0.0, 1e-3, 0.02, np.exp(np.linspace(np.log(0.05), np.log(20), 200))].reshape(1, -1)
    ours = [np.empty(tau.shape + (49,)) for _ in range(3)]
    coefficients_into(tau, ramp.t1, ramp.t2, ramp.s1, ramp.s2, *ours)
    for ref, got in zip(derivative_coefficients(ramp, tau), ours):
        assert np.all(np.abs(np.moveaxis(got, -1, 0) - ref) <= 1e-14 * np.abs(ref).max(axis=0))


# ------------------------------------------------------------------------------------------------ the energy's series
@pytest.mark.parametrize("ramp", RAMPS)
def test_energy_coefficients_and_their_tail_bounds(ramp):
    """high_coefficient_tasks: ĥ_k to MID_TERMS against gaussian.hermite_coefficients; every tail bound T_K at least
    the tail Σ_{K<k≤1500} ĥ_k² of the NumPy coefficients yet within TAIL_SLACK + 1e−13 of E σ² − Σ_{k≤K} ĥ_k² (in
    units of E σ²): a bound, and not a loose one. energy_coefficient_tasks: the same numbers to FAR_TERMS in
    column tiles (0 beyond the points), bounds on their logarithms above ln T_K by < 0.08, the chunks' largest."""
    tau = np.r_[0.0, 1e-3, 0.02, np.exp(np.linspace(np.log(0.05), np.log(20), 100))].reshape(1, -1)
    npts, chunks = tau.shape[1], -(-tau.shape[1] // COL_CHUNK)
    h, tails = np.empty((1, npts, MID_TERMS)), np.empty((1, npts, MID_TERMS // 2))
    high_coefficient_tasks(0, chunks, np.arange(chunks), tau, ramp.t1, ramp.t2, ramp.s1, ramp.s2, h, tails)
    ref = hermite_coefficients(ramp, tau[0], 1500)
    assert np.all(np.abs(h[0].T - ref[:MID_TERMS]) <= 1e-14 * np.abs(ref).max(axis=0))
    second = ramp_second_moment(ramp, tau[0])
    order = np.arange(1, MID_TERMS, 2)
    beyond = np.array([np.sum(ref[k + 1:] ** 2, axis=0) for k in order]).T           # (points, H/2)
    head = second[:, None] - np.array([np.sum(ref[:k + 1] ** 2, axis=0) for k in order]).T
    assert np.all(tails[0] >= beyond)
    assert np.all(np.abs(tails[0] - np.maximum(head, 0.0) - TAIL_SLACK * second[:, None]) <= 1e-13 * second[:, None])
    assert np.all(np.diff(tails[0, 3:], axis=1) <= 1e-13 * second[3:, None])                # T_K falls with K
    h_tiles = np.empty((1, chunks, FAR_TERMS, COL_CHUNK))
    tail_tiles, logs = np.empty((1, chunks, FAR_TERMS // 2, COL_CHUNK)), np.empty((1, chunks, FAR_TERMS // 2, COL_CHUNK))
    chunk_logs = np.empty((1, chunks, FAR_TERMS // 2))
    energy_coefficient_tasks(0, chunks, tau, ramp.t1, ramp.t2, ramp.s1, ramp.s2, h_tiles, tail_tiles, logs, chunk_logs)
    np.testing.assert_array_equal(h_tiles, _tiles(h[:, :, :FAR_TERMS], COL_CHUNK))
    untile = lambda tiles: tiles.transpose(0, 1, 3, 2).reshape(1, -1, tiles.shape[2])[:, :npts]
    np.testing.assert_array_equal(untile(tail_tiles), tails[:, :, :FAR_TERMS // 2])
    ours, theirs = untile(logs), tails[:, :, :FAR_TERMS // 2]
    assert np.all((ours >= np.log(theirs)) & (ours < np.log(theirs) + 0.08))
    padded = np.pad(ours, ((0, 0), (0, chunks * COL_CHUNK - npts), (0, 0)), constant_values=-np.inf)
    np.testing.assert_array_equal(chunk_logs, padded.reshape(1, chunks, COL_CHUNK, -1).max(axis=2))


def test_mehler_terms_matches_mehler_sum():
    """The eight-chain Horner of the pairs |c| > ENERGY_FAR_COSINE against the plain series of gaussian.mehler_sum."""
    ramp = RAMPS[0]
    x, y = hermite_coefficients(ramp, 1.3, MID_TERMS - 1), hermite_coefficients(ramp, 0.7, MID_TERMS - 1)
    for c in (-0.93, -0.4, 0.0, 0.6, 0.8, 0.97):
        for n in (8, 16, 96, MID_TERMS):
            assert mehler_terms(x, y, c, n) == pytest.approx(mehler_sum(x[:n], y[:n], c), rel=0, abs=1e-14)


def test_the_truncation_orders_satisfy_their_bounds():
    """_far_terms (a row's order over a chunk, K + 1 a multiple of 4) and _mid_terms (one pair's, the fewest
    multiple of 8 terms) give orders whose Cauchy–Schwarz bound |c|^{K+1} √(T_K(a) T_K(b)) on the series' tail
    is ≤ tol, fewer than the most for small |c|, and _mid_terms gives 0 only where even MID_TERMS terms do
    not reach tol."""
    rng = np.random.default_rng(3)
    tol = 1e-13
    order = np.arange(1, MID_TERMS, 2)
    for _ in range(300):
        rows, cols = (np.exp(rng.uniform(-15, 1)) * (order / order[0]) ** -rng.uniform(1, 2) for _ in range(2))
        cm = rng.uniform(0.0, ENERGY_FAR_COSINE)
        kfar = int(order[np.argmax(ENERGY_FAR_COSINE ** (order + 1.0) * np.maximum(rows, cols) <= tol)])
        kfar += 3 - kfar % 4                                                  # K + 1 a multiple of 4, as FAR_TERMS
        k = _far_terms(cm, np.log(rows), np.log(cols), kfar, np.log(tol))
        assert (k + 1) % 4 == 0 and 3 <= k <= kfar
        assert cm ** (k + 1) * np.sqrt(rows[k // 2] * cols[k // 2]) <= tol * (1 + 1e-12)
        c = rng.choice([-1, 1]) * rng.uniform(ENERGY_FAR_COSINE, 1.0)
        n = _mid_terms(c, rows, cols, tol * tol)
        if n:
            assert n % 8 == 0 and abs(c) ** n * np.sqrt(rows[n // 2 - 1] * cols[n // 2 - 1]) <= tol * (1 + 1e-12)
            assert n == 8 or abs(c) ** (n - 8) * np.sqrt(rows[n // 2 - 5] * cols[n // 2 - 5]) > tol    # the fewest
        else:
            assert abs(c) ** MID_TERMS * np.sqrt(rows[-1] * cols[-1]) > tol
    assert _far_terms(0.1, np.zeros(62), np.zeros(62), 123, np.log(tol)) == 15 and _far_terms(0.0, np.zeros(62),
                                                                                          np.zeros(62), 123, 0.0) == 3


@pytest.mark.parametrize("which,overrides", [("iso", ("problem.d=3",)), ("aniso", ("problem.d=5", "problem.s0=2")),
                                             ("iso", ()), ("aniso", ("problem.d=320", "problem.s0=40"))])
def test_the_truncated_energy_matches_the_full_series(which, overrides):
    """pair_energy (series cut by the tail bounds, the band ENERGY_FAR_COSINE < |c| pair by pair) against
    pair_gradient's energy (48 terms for |c| ≤ 0.5, closed forms above, nothing cut by a bound) on a random
    cloud of 400 with radii ×0.2..3, signed weights and the hard cloud's awkward pairs: within 4 ENERGY_TAIL
    of the scale (Σ|ω|)² max σ² (the bound's promise plus rounding)."""
    problem = problem_of(which, *overrides)
    rng = np.random.default_rng(21)
    d = problem.dim
    points = problem.sample_initial(400, rng) * rng.uniform(0.2, 3.0, (400, 1))
    points[:15] = hard_cloud(15, d, rng) * np.linalg.norm(points[15]) / np.sqrt(0.1 * d)
    weights = np.r_[np.full(220, 1 / 220), np.full(180, -1 / 220)]
    r = problem.ramp
    args = (points, weights, scales_of(problem), np.full(2, 0.5), r.t1, r.t2, r.s1, r.s2)
    _, unit = class_geometry(points, scales_of(problem))
    cos = np.abs(unit @ np.swapaxes(unit, 1, 2))
    if d < 40:
        assert np.count_nonzero(cos > ENERGY_FAR_COSINE) > 2000                       # the pair-by-pair band
    scale = np.abs(weights).sum() ** 2 * max(r.s1**2, r.s2**2)
    assert pair_energy(*args) == pytest.approx(pair_gradient(*args, energy=True)[1], rel=0, abs=4 * ENERGY_TAIL * scale)


# ------------------------------------------------------------------------------------------------ population_gradient
def psi(problem, w: np.ndarray, cols: np.ndarray, coef: np.ndarray, alpha: float, self_weight: float) -> np.ndarray:
    """Ψ^α at the points w (P, d) for ρ = Σ_j coef_j δ_cols_j plus self_weight·δ_w: V/α + Σ_j coef_j U(w, cols_j)
    + self_weight ½ U(w, w). The last term's gradient is ∇_1U(w, w), the j = i term of docs/math.md §8."""
    out = np.zeros(len(w))
    for y in CLASSES:
        s = problem.class_scale(y)
        a, b = np.linalg.norm(w * s, axis=1), np.linalg.norm(cols * s, axis=1)
        cos = np.clip((w * s) @ (cols * s).T / np.outer(a, b), -1.0, 1.0)
        pair = pair_expectation(problem.ramp, *np.broadcast_arrays(a[:, None], b[None, :], cos))
        out += -0.5 * y * q(problem.ramp, a) / alpha + 0.5 * pair @ coef
        out += 0.5 * self_weight * 0.5 * ramp_second_moment(problem.ramp, a)
    return out


def fd_gradient(problem, theta: np.ndarray, i: int, alpha: float, theta0: np.ndarray | None, h: float = 1e-4):
    """Fourth-order central differences of Ψ^α(·; ρ_N) at θ_i, ρ_N held fixed."""
    n, d = theta.shape
    cols, coef = np.delete(theta, i, axis=0), np.full(n - 1, 1.0 / n)
    if theta0 is not None:
        cols, coef = np.concatenate([cols, theta0]), np.r_[coef, np.full(n, -1.0 / n)]
    steps = np.array([-2.0, -1.0, 1.0, 2.0])[:, None, None] * h * np.eye(d)
    f = psi(problem, (theta[i] + steps).reshape(-1, d), cols, coef, alpha, 1.0 / n).reshape(4, d)
    return (8.0 * (f[2] - f[1]) - (f[3] - f[0])) / (12.0 * h)


# pair_expectation's quadrature (and so exact_risk) loses digits as |c| → 1 (4e−10 at 1 − |c| = 1e−2, 4e−7 at
# 1e−3: see test_near_pair_matches_adaptive_quadrature_near_c_equal_one): the clouds it checks stay below this.
REFERENCE_MAX_COSINE = 0.97


def spread_cloud(problem, n: int, rng: np.random.Generator, centred: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """θ (n, d): ρ_0 with radii spread ×0.5..2.5, θ_1 and θ_2 partners of θ_0 at c ≈ 0.9 and −0.85 (the rules for
    |c| > 0.5 in any d); with centred, θ(0) (n, d), each θ_i(0) near θ_i (c ≈ 0.93). Drawn by rejection so that
    every pair has |c_y| ≤ REFERENCE_MAX_COSINE in both classes."""
    scales, d = scales_of(problem), problem.dim
    units: list[np.ndarray] = []

    def accept(w: np.ndarray) -> bool:
        u = w * scales / np.linalg.norm(w * scales, axis=1)[:, None]
        if units and np.abs(np.einsum("ye,pye->py", u, np.array(units))).max() > REFERENCE_MAX_COSINE:
            return False
        units.append(u)
        return True

    def draw(make) -> np.ndarray:
        while not accept(w := make()):
            pass
        return w

    fresh = lambda: problem.sample_initial(1, rng)[0] * rng.uniform(0.5, 2.5)
    theta = [draw(fresh)]
    noise = lambda w, size: size * np.linalg.norm(w) / np.sqrt(d) * rng.standard_normal(d)
    theta.append(draw(lambda: 1.3 * theta[0] + noise(1.3 * theta[0], 0.45)))
    theta.append(draw(lambda: -0.8 * theta[0] + noise(0.8 * theta[0], 0.6)))
    while len(theta) < n:
        theta.append(draw(fresh))
    theta = np.array(theta)
    if not centred:
        return theta, None
    return theta, np.array([draw(lambda: w + noise(w, 0.4)) for w in theta])


@pytest.mark.parametrize("which,overrides", [("iso", ("problem.d=5",)), ("aniso", ("problem.d=6", "problem.s0=2")),
                                             ("iso", ()), ("aniso", ())])
@pytest.mark.parametrize("alpha", [1.0, 4.0])
@pytest.mark.parametrize("centred", [False, True])
def test_population_gradient_matches_finite_differences(which, overrides, alpha, centred):
    """To 1e−7 relative, particle by particle (θ_0, its partners, one more)."""
    problem = problem_of(which, *overrides)
    theta, theta0 = spread_cloud(problem, 15, np.random.default_rng(5), centred)
    _, unit = class_geometry(theta, scales_of(problem))
    assert np.count_nonzero(np.abs(unit @ np.swapaxes(unit, 1, 2)) > MEHLER_MAX_COSINE) > 2 * 15   # both rules
    grad = problem.population_gradient(theta, alpha, theta0)
    assert grad.shape == theta.shape
    for i in (0, 1, 2, 7):
        ref = fd_gradient(problem, theta, i, alpha, theta0)
        assert np.linalg.norm(grad[i] - ref) <= 1e-7 * np.linalg.norm(ref), f"particle {i}"


def test_population_gradient_at_the_origin_and_of_a_tiny_particle():
    """w = 0: σ(<w, x>) is the constant σ(0) (t1 > 0), so its gradient is 0; τ ~ 1e−3: finite and tiny."""
    problem = problem_of("iso", "problem.d=4")
    theta = problem.sample_initial(10, np.random.default_rng(2))
    theta[3] = 0.0
    theta[4] *= 1e-3
    grad = problem.population_gradient(theta, 2.0, theta[::-1].copy())
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[3], 0.0)
    assert np.abs(grad[4]).max() < 1e-30


# ------------------------------------------------------------------------------------------------ the energy is R_N
@pytest.mark.parametrize("which,overrides", [("iso", ("problem.d=5",)), ("aniso", ("problem.d=6", "problem.s0=2")),
                                             ("iso", ()), ("aniso", ())])
@pytest.mark.parametrize("centred", [False, True])
def test_pair_energy_gives_exact_risk(which, overrides, centred):
    """R_N = 1 − α Σ_y y Σ_i c_i q(τ_yi) + α² Σ_ij c_i c_j U_ij (docs/math.md §4) from the kernel's energy, against
    exact_risk (whose quadrature for |c| > 0.5 is accurate on these clouds: |c| ≤ REFERENCE_MAX_COSINE)."""
    problem = problem_of(which, *overrides)
    theta, theta0 = spread_cloud(problem, 30, np.random.default_rng(8), centred)
    n = len(theta)
    pts = theta if theta0 is None else np.concatenate([theta, theta0])
    coef = np.full(n, 1.0 / n) if theta0 is None else np.r_[np.full(n, 1.0 / n), np.full(n, -1.0 / n)]
    r = problem.ramp
    _, energy = pair_gradient(pts, coef, scales_of(problem), np.full(2, 0.5), r.t1, r.t2, r.s1, r.s2, energy=True)
    for alpha in (1.0, 4.0):
        linear = sum(y * coef @ q(r, np.linalg.norm(pts * problem.class_scale(y), axis=1)) for y in CLASSES)
        risk = 1.0 - alpha * linear + alpha**2 * energy
        assert risk == pytest.approx(problem.exact_risk(theta, alpha, theta0), abs=1e-9)
