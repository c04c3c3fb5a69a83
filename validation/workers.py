"""What a sweep's pool worker does before anything else: one Numba thread.

It lives apart from validation.sweep on purpose: a spawned worker unpickles its initializer by importing
its module, and Numba reads NUMBA_NUM_THREADS when it is first imported. Imported from here, nothing
has imported Numba yet, so the setting takes (and Numba's later config reloads agree with it).
"""
import os


def one_numba_thread() -> None:
    os.environ["NUMBA_NUM_THREADS"] = "1"
