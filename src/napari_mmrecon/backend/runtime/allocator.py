"""Keep freed memory in the process for reuse (glibc only), instead of returning it to the OS.

Opt-in: nothing in the package calls ``keep_freed_memory``; malloc's settings are process-wide
and glibc has no way back to its defaults (setting a threshold turns its dynamic thresholds off
for good), so only an application that owns its process should call it.

torch's CPU allocator hands every freed tensor back to ``malloc``. With glibc's defaults the top
of the heap is given back to the OS as soon as more than twice the largest recently freed block
is free there, so memory allocated afresh on every call is faulted back in page by page: measured
on a 512 x 512 film, 18000 page faults and twice the time per field. Untuned, the convolutions
therefore write their transforms into kept buffers (``physics/demag.py``), which avoids the faults
but costs a copy (torch's MKL transforms compute into a temporary first): measured on one thread,
0-10 % at 256 x 256 and 20 % at 512 x 512 over fresh results with malloc tuned.
``keep_freed_memory`` raises the trim threshold (and pins the mmap threshold at glibc's maximum,
32 MiB, which setting the trim threshold would otherwise freeze at its start value); the
convolutions then take fresh results (``freed_memory_kept``).
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 1 << 30
"""Free memory (bytes) the heap top may hold before glibc returns it to the OS."""
MMAP_THRESHOLD = 32 << 20
"""Blocks of at least this size (bytes) are mapped separately (glibc's largest allowed value)."""

_kept = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as described in the module docstring (process-wide, for good);
    ``True`` if it was done."""
    global _kept
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (e.g. musl)
    _kept = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _kept


def freed_memory_kept() -> bool:
    """Whether ``keep_freed_memory`` has tuned malloc in this process."""
    return _kept
