"""The flux kernel against its NumPy twin, and the scheme's discrete properties (docs/math.md §5)."""
from __future__ import annotations

import numpy as np
import pytest

from pde.upwind import axis_flux_divergence, axis_flux_divergence_numpy, flux_divergence


def random_state(rng, shape, holes=True):
    rho = rng.random(shape) ** 3
    if holes:                       # zero cells and sharp edges make the limiter work
        rho[rng.random(shape) < 0.25] = 0.0
    zeta = np.cumsum(rng.standard_normal(shape), axis=-1)
    return rho, zeta


@pytest.mark.parametrize("shape3", [(1, 50, 1), (3, 17, 4), (1, 2, 1), (5, 9, 1), (2, 1, 3), (40, 33, 1), (2, 9, 600)])
def test_kernel_matches_numpy_twin(shape3):
    rng = np.random.default_rng(sum(shape3))
    rho, zeta = random_state(rng, shape3)
    out_k, out_n = rng.standard_normal(shape3), None
    out_n = out_k.copy()
    a_k = axis_flux_divergence(rho, zeta, 0.37, out_k)
    a_n = axis_flux_divergence_numpy(rho, zeta, 0.37, out_n)
    np.testing.assert_allclose(out_k, out_n, rtol=1e-13, atol=1e-13)
    assert a_k == pytest.approx(a_n, rel=1e-15)


@pytest.mark.parametrize("shape", [(40,), (12, 9), (6, 5, 7)])
def test_divergence_conserves_mass_and_keeps_positivity(shape):
    """Σ dρ/dt = 0 to round-off; an Euler step at the positivity bound keeps ρ ≥ 0."""
    rng = np.random.default_rng(len(shape))
    rho, zeta = random_state(rng, shape)
    widths = np.linspace(0.1, 0.3, len(shape))
    out = np.empty(shape)
    amax = flux_divergence(rho, zeta, widths, out)
    assert abs(out.sum()) < 1e-12 * np.abs(out).sum()
    dt = np.min(widths / (2 * len(shape) * amax))
    assert (rho + dt * out).min() >= -1e-14 * rho.max()
    # the twin gives the same multi-axis divergence
    out2 = np.empty(shape)
    flux_divergence(rho, zeta, widths, out2, kernel=axis_flux_divergence_numpy)
    np.testing.assert_allclose(out, out2, rtol=1e-12, atol=1e-13)


def test_constant_potential_means_no_flux():
    rho = np.random.default_rng(0).random(30)
    out = np.empty(30)
    amax = flux_divergence(rho, np.full(30, 2.5), np.array([0.1]), out)
    assert amax == 0.0 and np.all(out == 0.0)


def test_linear_transport_moves_a_profile_at_the_right_speed():
    """ζ = −c·z: velocity u = c everywhere; the first moment moves at speed c (before hitting the wall)."""
    n, h, c = 200, 0.05, 0.7
    z = (np.arange(n) + 0.5) * h
    rho = np.exp(-((z - 5.0) ** 2) / 0.5)           # ≈ e^{-50} at the walls
    out = np.empty(n)
    flux_divergence(rho, -c * z, np.array([h]), out)
    dmean_dt = (out * z).sum() / rho.sum()
    assert dmean_dt == pytest.approx(c, rel=1e-10)


def test_reconstruction_is_second_order_for_smooth_profiles():
    """Error of dρ/dt for a smooth flow against the exact −∂_z(ρ u): observed order ≈ 2."""
    errors = []
    for n in (100, 200, 400):
        h = 4.0 / n
        z = (np.arange(n) + 0.5) * h
        rho = np.exp(-((z - 2.0) ** 2))
        zeta = 0.5 * (z - 2.0) ** 2 - 0.2 * z ** 3 / 3       # u = −ζ' = −(z − 2) + 0.2 z²
        u = -(z - 2.0) + 0.2 * z**2
        # exact: −∂_z(ρu) = −(ρ' u + ρ u')
        rho_prime = -2 * (z - 2.0) * rho
        exact = -(rho_prime * u + rho * (-1.0 + 0.4 * z))
        out = np.empty(n)
        flux_divergence(rho, zeta, np.array([h]), out)
        inner = slice(n // 8, -n // 8)
        errors.append(np.abs(out[inner] - exact[inner]).mean())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders > 1.8), orders


def test_parallel_build_is_bit_identical_to_serial():
    from pde.upwind import axis_flux_divergence_parallel

    rng = np.random.default_rng(2)
    for shape3 in [(1, 70, 300), (90, 40, 1), (7, 33, 130)]:
        rho, zeta = random_state(rng, shape3)
        a, b = np.zeros(shape3), np.zeros(shape3)
        amax_a = axis_flux_divergence(rho, zeta, 0.1, a)
        amax_b = axis_flux_divergence_parallel(rho, zeta, 0.1, b)
        np.testing.assert_array_equal(a, b)
        assert amax_a == amax_b


def test_potential_kernels_match_numpy_twins():
    """Both builds of each Ψ kernel against the NumPy twin, and against each other bit for bit."""
    from pde.potential import (
        expand_numpy,
        expand_parallel,
        expand_serial,
        moments_numpy,
        moments_parallel,
        moments_serial,
    )

    rng = np.random.default_rng(4)
    for k, m in [(3, 7), (40, 9000), (1, 513), (17, 4097)]:
        phi, rho, g, base = rng.standard_normal((k, m)), rng.random(m), rng.standard_normal(k), rng.standard_normal(m)
        a, a2, b = np.empty(k), np.empty(k), np.empty(k)
        moments_serial(phi, rho, 0.37, a)
        moments_parallel(phi, rho, 0.37, a2)
        moments_numpy(phi, rho, 0.37, b)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(a, a2)
        c, c2, d = np.empty(m), np.empty(m), np.empty(m)
        expand_serial(phi, g, base, c)
        expand_parallel(phi, g, base, c2)
        expand_numpy(phi, g, base, d)
        np.testing.assert_allclose(c, d, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(c, c2)


def test_serial_and_parallel_builds_are_distinct_in_the_cache():
    """numba's on-disk cache keys a function by name and bytecode, not by parallel=: each pair must have
    two names (else the parallel build silently loads the serial machine code, or the reverse)."""
    from pde import potential, scharfetter_gummel, upwind

    pairs = [(getattr(module, n), getattr(module, n + "_parallel"))
             for module, n in ((upwind, "axis_flux_divergence"), (scharfetter_gummel, "axis_sg_weights"),
                               (scharfetter_gummel, "axis_sg_apply"))]
    pairs += [(potential.moments_serial, potential.moments_parallel), (potential.expand_serial, potential.expand_parallel)]
    for serial, parallel in pairs:
        assert serial.py_func.__code__ is parallel.py_func.__code__
        assert serial.py_func.__qualname__ != parallel.py_func.__qualname__
        assert parallel.targetoptions.get("parallel") and not serial.targetoptions.get("parallel")


@pytest.mark.parametrize("z", [0.0, -0.0, 1e-300, -1e-300, 1e-8, -1e-8, 1e-6, -1e-6, 0.3, -0.3, 1.0, -1.0,
                               50.0, -50.0, 700.0, -700.0, 800.0, -800.0])
def test_bernoulli_pair_matches_the_direct_formula(z):
    """(B(z), B(−z)) with one expm1 against z/(e^z − 1) evaluated directly, over tiny to overflowing |z|."""
    from pde.scharfetter_gummel import bernoulli_array, bernoulli_pair

    b_plus, b_minus = bernoulli_pair(z)
    direct = bernoulli_array(np.array([z, -z]))
    assert b_plus == pytest.approx(direct[0], rel=4e-16, abs=1e-300)
    assert b_minus == pytest.approx(direct[1], rel=4e-16, abs=1e-300)
    assert b_minus - b_plus == pytest.approx(z, rel=4e-16, abs=4e-16 * b_minus)    # B(−z) − B(z) = z


def test_bernoulli_pair_on_a_dense_range():
    from pde.scharfetter_gummel import bernoulli_array, bernoulli_pair

    z = np.concatenate([np.linspace(-60, 60, 2001), np.geomspace(1e-12, 1e3, 400), -np.geomspace(1e-12, 1e3, 400)])
    pairs = np.array([bernoulli_pair(v) for v in z])
    np.testing.assert_allclose(pairs[:, 0], bernoulli_array(z), rtol=4e-16, atol=1e-300)
    np.testing.assert_allclose(pairs[:, 1], bernoulli_array(-z), rtol=4e-16, atol=1e-300)


def _face_views(shape3):
    """(P, n·Q) flat views of a (P, n, Q) axis, its stride Q and the (P, (n−1)·Q) face shape."""
    P, n, Q = shape3
    return (P, n * Q), Q, (P, max(n - 1, 0) * Q)


@pytest.mark.parametrize("shape3", [(1, 50, 1), (3, 17, 70), (6, 2, 1), (2, 1, 5), (4, 300, 3)])
def test_sg_kernels_match_numpy_twins_and_parallel_builds(shape3):
    from pde.scharfetter_gummel import (
        axis_sg_apply,
        axis_sg_apply_numpy,
        axis_sg_apply_parallel,
        axis_sg_weights,
        axis_sg_weights_numpy,
        axis_sg_weights_parallel,
    )

    rng = np.random.default_rng(9)
    rho, psi = random_state(rng, shape3)
    psi = psi * 3.0                                  # large and small δ, both signs
    psi[:, 1::3] = psi[:, :-1:3]                     # and δ = 0 exactly on every third face
    cells, stride, faces = _face_views(shape3)
    weights = [(np.full(faces, np.nan), np.full(faces, np.nan)) for _ in range(3)]
    rates = [k(psi.reshape(cells), stride, 0.2, 7.0, 0.3, fw, bw) for k, (fw, bw) in zip(
        (axis_sg_weights, axis_sg_weights_numpy, axis_sg_weights_parallel), weights)]
    for got, want in zip(weights[0], weights[1]):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=0.0)
    for got, want in zip(weights[0], weights[2]):
        np.testing.assert_array_equal(got, want)
    assert rates[0] == pytest.approx(rates[1], rel=1e-14) and rates[0] == rates[2]
    start = rng.standard_normal(cells)
    outs = [start.copy() for _ in range(3)]
    for k, o in zip((axis_sg_apply, axis_sg_apply_numpy, axis_sg_apply_parallel), outs):
        k(rho.reshape(cells), *weights[1], stride, o)
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(outs[0], outs[2])


def test_sg_apply_is_bit_identical_whatever_the_cell_chunks():
    """Each cell recomputes both its fluxes, so the parallel split cannot change a bit."""
    from pde import scharfetter_gummel as sg

    rng = np.random.default_rng(3)
    shape3 = (2, 9000, 3)                             # several CELL_CHUNKs per row
    rho, psi = random_state(rng, shape3)
    cells, stride, faces = _face_views(shape3)
    fw, bw = np.empty(faces), np.empty(faces)
    sg.axis_sg_weights(psi.reshape(cells), stride, 0.1, 2.0, 0.5, fw, bw)
    a, b = np.zeros(cells), np.zeros(cells)
    sg.axis_sg_apply(rho.reshape(cells), fw, bw, stride, a)
    sg.axis_sg_apply_parallel(rho.reshape(cells), fw, bw, stride, b)
    np.testing.assert_array_equal(a, b)
    c = np.zeros(cells)
    sg.axis_sg_apply_numpy(rho.reshape(cells), fw, bw, stride, c)
    np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_sg_flux_is_zero_on_a_discrete_gibbs_state_and_conserves_mass():
    from pde.scharfetter_gummel import sg_apply, sg_weights

    rng = np.random.default_rng(1)
    psi = rng.standard_normal((30, 20)).cumsum(axis=0)
    beta = 3.0
    gibbs = np.exp(-beta * (psi - psi.min()))
    out = np.empty(psi.shape)
    weights = sg_weights(psi, np.array([0.1, 0.2]), beta, 0.5)
    sg_apply(gibbs, weights, out)
    assert np.abs(out).max() <= 1e-13 * np.abs(gibbs).max() / 0.01
    other = rng.random(psi.shape)
    sg_apply(other, weights, out)
    assert abs(out.sum()) < 1e-12 * np.abs(out).sum()
    assert (other + weights.dt_max * out).min() >= 0.0


def test_sg_weights_match_the_twin_on_a_grid():
    """The grid-level wrappers with the Numba kernels and with the twins agree, on every axis of a 3-D grid."""
    from pde.scharfetter_gummel import axis_sg_apply_numpy, axis_sg_weights_numpy, sg_apply, sg_weights

    rng = np.random.default_rng(6)
    rho, psi = random_state(rng, (6, 5, 7))
    widths = np.array([0.1, 0.2, 0.3])
    w_numba, w_numpy = sg_weights(psi, widths, 4.0, 0.7), sg_weights(psi, widths, 4.0, 0.7, kernel=axis_sg_weights_numpy)
    for axis in range(3):
        np.testing.assert_allclose(w_numba.forward[axis], w_numpy.forward[axis], rtol=1e-14)
        np.testing.assert_allclose(w_numba.backward[axis], w_numpy.backward[axis], rtol=1e-14)
    np.testing.assert_allclose(w_numba.rates, w_numpy.rates, rtol=1e-14)
    a, b = np.empty(rho.shape), np.empty(rho.shape)
    sg_apply(rho, w_numba, a)
    sg_apply(rho, w_numba, b, kernel=axis_sg_apply_numpy)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_sg_flux_is_second_order_for_smooth_solutions():
    """Against −∂_z J, J = −Dif(ρ' + βψ'ρ), for smooth ρ and ψ: observed order ≈ 2."""
    from pde.scharfetter_gummel import sg_apply, sg_weights

    beta, dif, errors = 2.0, 0.7, []
    for n in (100, 200, 400):
        h = 4.0 / n
        z = (np.arange(n) + 0.5) * h
        rho = np.exp(-((z - 2.0) ** 2))
        psi = np.sin(z)
        rho_p, rho_pp = -2 * (z - 2) * rho, (4 * (z - 2) ** 2 - 2) * rho
        exact = dif * (rho_pp + beta * (np.cos(z) * rho_p - np.sin(z) * rho))
        out = np.empty(n)
        sg_apply(rho, sg_weights(psi, np.array([h]), beta, dif), out)
        inner = slice(n // 8, -n // 8)
        errors.append(np.abs(out[inner] - exact[inner]).mean())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders > 1.9), orders
