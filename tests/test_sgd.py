"""The SGD kernel against its NumPy twin, the update rule of docs/math.md §2, and reproducibility."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from mfdyn.gaussian import Ramp
from particles import run_sgd
from particles.run import BLOCK_STEPS
from particles.sgd import (
    ROW_CHUNK,
    sgd_steps_ramp,
    sgd_steps_ramp_numpy,
    sgd_steps_ramp_parallel,
    sgd_steps_ramp_serial,
)

RAMP = Ramp()


@pytest.mark.parametrize("batch,lam", [(1, 0.0), (3, 0.0), (4, 0.3)])
def test_kernel_matches_numpy_twin(batch, lam):
    rng = np.random.default_rng(batch)
    w = rng.standard_normal((37, 9)) * 0.4
    x = rng.standard_normal((60 * batch, 9)) * 1.5
    y = rng.choice([-1.0, 1.0], 60 * batch)
    a, b = w.copy(), w.copy()
    noise = 0.01 * rng.standard_normal((60, 37, 9)) if lam > 0 else np.empty((0, 1, 1))
    args = (x, y, batch, 0.05, lam, RAMP.t1, RAMP.t2, RAMP.s1, RAMP.s2, noise)
    sgd_steps_ramp(a, *args)
    sgd_steps_ramp_numpy(b, *args)
    assert not np.allclose(a, w)                     # something happened ...
    np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)   # ... the same thing


@pytest.mark.parametrize("batch,lam,noisy", [(1, 0.0, False), (3, 0.2, True)])
def test_parallel_build_gives_the_serial_numbers_for_any_thread_count(batch, lam, noisy):
    """Tasks of ROW_CHUNK rows, ŷ summed task by task: the same bits on 1 or 2 threads, or serially.
    N spans three tasks, the last one ragged."""
    rng = np.random.default_rng(7)
    n, d, steps = 2 * ROW_CHUNK + 37, 6, 25
    w = rng.standard_normal((n, d)) * 0.5
    x = rng.standard_normal((steps * batch, d)) * 1.5
    y = rng.choice([-1.0, 1.0], steps * batch)
    noise = 0.01 * rng.standard_normal((steps, n, d)) if noisy else np.empty((0, 1, 1))
    args = (x, y, batch, 0.05, lam, RAMP.t1, RAMP.t2, RAMP.s1, RAMP.s2, noise)
    serial = w.copy()
    sgd_steps_ramp_serial(serial, *args)
    threads = numba.get_num_threads()
    try:
        for count in sorted({1, threads}):
            numba.set_num_threads(count)
            parallel = w.copy()
            sgd_steps_ramp_parallel(parallel, *args)
            np.testing.assert_array_equal(parallel, serial)
    finally:
        numba.set_num_threads(threads)
    assert sgd_steps_ramp_serial.py_func.__qualname__ != sgd_steps_ramp_parallel.py_func.__qualname__  # own cache
    twin = w.copy()
    sgd_steps_ramp_numpy(twin, *args)
    assert not np.allclose(serial, w)
    np.testing.assert_allclose(serial, twin, rtol=1e-11, atol=1e-12)


def test_one_step_is_the_update_of_math_section_2():
    """w_i ← w_i + 2s[(y − ŷ)σ'(<w_i,x>)x − λw_i], written out by hand for N = 2."""
    w = np.array([[0.6, 0.2], [-0.1, 0.05]])
    x = np.array([[1.5, 0.5]])
    y = np.array([1.0])
    s, lam = 0.01, 0.2
    pre = w @ x[0]                                   # 1.0 (linear part) and −0.125 (flat part)
    yhat = RAMP(pre).mean()
    expected = w + 2 * s * ((y[0] - yhat) * RAMP.derivative(pre)[:, None] * x[0] - lam * w)
    sgd_steps_ramp(w, x, y, 1, 2 * s, lam, RAMP.t1, RAMP.t2, RAMP.s1, RAMP.s2, np.empty((0, 1, 1)))
    np.testing.assert_allclose(w, expected, rtol=1e-14)


def test_trajectory_does_not_depend_on_how_it_is_cut(iso):
    """Snapshots change nothing: data come in fixed blocks of steps, one stream each."""
    eps = 1e-3
    t_end = 2.5 * BLOCK_STEPS * eps
    whole = list(run_sgd(iso, 16, eps, 1.0, 0.0, 1, 5, [0.0, t_end]))[-1].theta
    cut = list(run_sgd(iso, 16, eps, 1.0, 0.0, 1, 5, [0.0, 0.777, 4.1, 6.0, t_end]))[-1].theta
    np.testing.assert_array_equal(whole, cut)
    other = list(run_sgd(iso, 16, eps, 1.0, 0.0, 1, 6, [0.0, t_end]))[-1].theta
    assert not np.allclose(whole, other)


def test_snapshot_times_are_whole_steps(iso):
    states = list(run_sgd(iso, 4, 1e-3, 1.0, 0.0, 2, 0, [0.0, 0.05, 0.1]))
    assert [s.steps for s in states] == [0, 50, 100]
    assert [s.t for s in states] == pytest.approx([0.0, 0.05, 0.1])
