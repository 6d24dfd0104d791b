"""Small problems run on one intra-op thread, without changing other threads' settings.

A field of a 64 x 64 film is some 30 tensor operations of 10-50 us each. With two or more
threads every one of them is a parallel region whose helper threads must be woken, and when the
other cores are busy (another process, napari itself) the wake-up waits for the scheduler:
measured on 2 shared cores, a 64 x 64 field took 0.43 ms on one thread and 24 ms on two; a
128 x 128 field 1.3 ms vs 1.6 ms. On the same machine idle, two threads win from 128 x 128 on
(1.70 -> 1.03 ms; 256 x 256: 8.4 -> 5.0 ms) and tie at 64 x 64 (0.45 vs 0.43 ms). Larger problems
keep every thread the caller has.

``torch.set_num_threads`` sets the calling thread's OpenMP and MKL thread counts, but also torch's
process-wide default, which every thread making its first torch call meanwhile adopts for good
(a napari worker relaxing a small film would leave a thread started meanwhile on one thread).
``threads_for`` therefore changes only the calling thread's OpenMP setting
(``omp_set_num_threads`` of the OpenMP runtime torch loaded), which torch's parallel loops follow,
and so do MKL's FFTs and matrix products unless torch has given this thread an MKL count of its
own (it does wherever ``torch.set_num_threads`` ran in the thread, or ran in the process before
the thread's first torch call). In that case MKL would keep its threads, so torch's setting is
changed and restored instead, but only while the calling thread is the process's only Python
thread (none other exists to pick the setting up, though one that the block itself starts, in a
progress callback say, would); otherwise the block keeps the caller's threads.
Where torch's OpenMP runtime cannot be reached (no ``omp_set_num_threads`` among the process's
shared-library symbols), the same rule applies.
"""

from __future__ import annotations

import ctypes
import re
import threading
from contextlib import contextmanager
from functools import lru_cache

import torch

SERIAL_CELLS = 1 << 13
"""Problems of at most this many cells (summed over a batch) run on one thread."""

_local = threading.local()


@lru_cache(maxsize=1)
def _omp_set_num_threads():
    """The process's ``omp_set_num_threads`` (the OpenMP runtime torch loaded), or ``None``."""
    try:
        return ctypes.CDLL(None).omp_set_num_threads
    except (OSError, AttributeError, TypeError):
        return None


def _mkl_threads() -> int | None:
    """MKL's thread count in the calling thread as torch reports it, or ``None`` without MKL."""
    found = re.search(r"mkl_get_max_threads\(\) : (\d+)", torch.__config__.parallel_info())
    return int(found.group(1)) if found else None


def _mkl_follows_openmp(n: int) -> bool:
    """Whether MKL follows the calling thread's OpenMP setting of one thread (in effect when
    called); remembered per thread and torch thread count ``n``."""
    known = getattr(_local, "follows", None)
    if known is None:
        known = _local.follows = {}
    if n not in known:
        known[n] = _mkl_threads() in (None, 1)
    return known[n]


@contextmanager
def _thread_setting(setter, n: int):
    """One OpenMP thread in the calling thread for the block, then ``n`` again."""
    setter(1)
    try:
        yield
    finally:
        setter(n)


@contextmanager
def _torch_setting(n: int):
    """``torch.set_num_threads(1)`` for the block, then ``n`` again (process-wide)."""
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@contextmanager
def threads_for(cells: int):
    """Run the block on one intra-op thread if ``cells <= SERIAL_CELLS`` (see the module
    docstring for how, and when the caller's threads are kept instead); every setting changed is
    restored afterwards."""
    n = torch.get_num_threads()
    if cells > SERIAL_CELLS or n == 1:
        yield
        return
    setter = _omp_set_num_threads()
    if setter is not None:
        with _thread_setting(setter, n):
            if _mkl_follows_openmp(n):
                yield
                return
    if threading.active_count() == 1:
        with _torch_setting(n):
            yield
        return
    yield
