"""mfdyn.workspace: scratch arrays reused per thread, and the pair kernels that use them (docs/math.md §4), whose
numbers must not depend on whether the memory is new, reused, or used by two threads at once."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from mfdyn.config import InitConfig
from mfdyn.pair_kernel import pair_energy, pair_gradient
from mfdyn.problems.mmn_isotropic import MMNIsotropic, MMNIsotropicParams
from mfdyn.problems.single_index import CLASSES
from mfdyn.workspace import Workspace


def test_a_name_gets_the_same_memory_while_it_fits_and_new_memory_when_it_grows():
    work = Workspace()
    first = work.take("a", (10, 4))
    again = work.take("a", (3, 5), np.int64)
    assert np.shares_memory(first, again) and again.shape == (3, 5) and again.dtype == np.int64
    assert work.take("a", (2,), fill=7.0).tolist() == [7.0, 7.0]
    bigger = work.take("a", (100,))
    assert not np.shares_memory(first, bigger) and bigger.flags.c_contiguous
    assert not np.shares_memory(bigger, work.take("b", (100,)))
    work.release()
    assert work.buffers == {} and not np.shares_memory(bigger, work.take("a", (100,)))


def test_each_thread_has_its_own_arrays():
    work, seen = Workspace(), []
    mine = work.take("a", (8,))
    thread = threading.Thread(target=lambda: seen.append(work.take("a", (8,))))
    thread.start()
    thread.join()
    assert not np.shares_memory(mine, seen[0])


def _args(n: int, d: int, seed: int) -> tuple:
    problem = MMNIsotropic(MMNIsotropicParams(d=d), InitConfig())
    r = problem.ramp
    points = problem.sample_initial(n, np.random.default_rng(seed))
    scales = np.stack([problem.class_scale(y) for y in CLASSES])
    return points, np.full(n, 1.0 / n), scales, np.full(2, 0.5), r.t1, r.t2, r.s1, r.s2


@pytest.mark.parametrize("kernel", ["energy", "gradient"])
def test_the_pair_kernels_give_the_same_bits_on_reused_memory_and_from_two_threads_at_once(kernel):
    """A large call, a small one (its arrays inside the large one's) and again the large one: the same bits as
    the first time; then both sizes at once from two threads, many times over (any sharing between threads
    would mix their tiles)."""
    def value(args):
        if kernel == "energy":
            return pair_energy(*args)
        return pair_gradient(*args)[0].tobytes()

    large, small = _args(300, 5, 1), _args(70, 5, 2)
    want = {id(large): value(large), id(small): value(small)}
    assert value(large) == want[id(large)]
    got, errors = {id(large): [], id(small): []}, []

    def worker(args):
        try:
            for _ in range(6):
                got[id(args)].append(value(args))
        except Exception as exc:                     # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(a,)) for a in (large, small)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(v == want[key] for key, values in got.items() for v in values)
