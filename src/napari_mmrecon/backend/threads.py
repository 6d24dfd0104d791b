"""Small problems run on one intra-op thread.

A field of a 64 x 64 film is some 30 tensor operations of 10-50 us each. With two or more
threads every one of them is a parallel region whose helper threads must be woken, and when the
other cores are busy (another process, napari itself) the wake-up waits for the scheduler:
measured on 2 shared cores, a 64 x 64 field took 0.43 ms on one thread and 24 ms on two; a
128 x 128 field 1.3 ms vs 1.6 ms. On the same machine idle, two threads win from 128 x 128 on
(1.70 -> 1.03 ms; 256 x 256: 8.4 -> 5.0 ms) and tie at 64 x 64 (0.45 vs 0.43 ms). Larger problems
keep every thread the user allows.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

SERIAL_CELLS = 1 << 13
"""Problems of at most this many cells (summed over a batch) run on one thread."""


@contextmanager
def threads_for(cells: int):
    """Run the block on one intra-op thread if ``cells <= SERIAL_CELLS``; the thread count is
    restored afterwards (it is process-wide, as ``torch.set_num_threads`` is)."""
    n = torch.get_num_threads()
    if cells > SERIAL_CELLS or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
