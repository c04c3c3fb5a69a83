"""The Numba kernels of mfdyn/problems/neuron_gradient.py (G's and T's drift for a σ(w x + b)) against their
NumPy twins, for every activation and both parameter sets, and on one thread against two (docs/math.md §8)."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from mfdyn.activations import CODES
from mfdyn.problems.neuron_gradient import (
    activations_at_nodes,
    activations_at_nodes_numpy,
    network_at_nodes,
    network_at_nodes_numpy,
    neuron_field_gradient,
    neuron_field_gradient_numpy,
)

RAMP = (0.5, 1.5, -2.5, 7.5)


@pytest.mark.parametrize("name", sorted(CODES))
@pytest.mark.parametrize("dim", [2, 3])
def test_kernels_match_their_numpy_twins_on_any_thread_count(name, dim):
    rng = np.random.default_rng([dim, CODES[name]])
    theta = rng.normal(size=(257, dim))
    x, c = rng.normal(size=64), rng.normal(size=64)
    out, grad, act = np.empty(64), np.empty((257, dim)), np.empty((64, 257))
    activations_at_nodes(theta, x, CODES[name], *RAMP, act)
    network_at_nodes(theta, act, out)
    neuron_field_gradient(theta, x, c, act, CODES[name], *RAMP, grad)
    np.testing.assert_allclose(act, activations_at_nodes_numpy(theta, x, name, RAMP), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(out, network_at_nodes_numpy(theta, x, name, RAMP), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(grad, neuron_field_gradient_numpy(theta, x, c, name, RAMP), rtol=1e-12, atol=1e-12)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one, grad1, act1 = np.empty(64), np.empty((257, dim)), np.empty((64, 257))
        activations_at_nodes(theta, x, CODES[name], *RAMP, act1)
        network_at_nodes(theta, act1, one)
        neuron_field_gradient(theta, x, c, act1, CODES[name], *RAMP, grad1)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(act1, act) and np.array_equal(one, out) and np.array_equal(grad1, grad)      # bit for bit


@pytest.mark.parametrize("name", sorted(CODES))
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("nodes", [64, 65])
def test_a_symmetric_rule_gives_each_node_the_bits_it_has_alone(name, dim, nodes):
    """On nodes x_{K−1−k} = −x_k (an even and an odd count) the kernel may copy a mirrored row (odd σ, no bias): every
    row must equal the kernel run on that node alone, bit for bit, and the NumPy twin."""
    rng = np.random.default_rng([nodes, dim, CODES[name]])
    half = np.sort(rng.normal(scale=4.0, size=nodes // 2))
    x = np.r_[half, [0.0] * (nodes % 2), -half[::-1]]
    theta = rng.normal(scale=2.0, size=(301, dim))
    theta[:3, 1] = [0.0, -0.0, 1e-300]                              # signed zeros and an underflowing product
    act = np.empty((nodes, 301))
    activations_at_nodes(theta, x, CODES[name], *RAMP, act)
    for k in range(nodes):
        alone = np.empty((1, 301))
        activations_at_nodes(theta, x[k:k + 1], CODES[name], *RAMP, alone)
        assert np.array_equal(act[k], alone[0]) and np.array_equal(np.signbit(act[k]), np.signbit(alone[0])), k
    np.testing.assert_allclose(act, activations_at_nodes_numpy(theta, x, name, RAMP), rtol=1e-13, atol=1e-14)
