"""Keep freed memory in the process for reuse (glibc only), instead of returning it to the OS.

torch's CPU allocator hands every freed tensor back to ``malloc``. With glibc's defaults the top
of the heap is given back to the OS as soon as more than twice the largest recently freed block
is free there, so each field evaluation on a large grid can fault its FFT temporaries back in
page by page: measured on a 512 x 512 film, 18000 page faults and twice the time per field.
``keep_freed_memory`` raises the trim threshold (and pins the mmap threshold at glibc's
maximum, 32 MiB, which setting the trim threshold would otherwise freeze at its start value).
It is called once when the backend is imported; set the environment variable
``NAPARI_MMRECON_KEEP_MEMORY=0`` to leave malloc untouched.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 1 << 30
"""Free memory (bytes) the heap top may hold before glibc returns it to the OS."""
MMAP_THRESHOLD = 32 << 20
"""Blocks of at least this size (bytes) are mapped separately (glibc's largest allowed value)."""


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as described in the module docstring; ``True`` if it was done."""
    if not sys.platform.startswith("linux") or os.environ.get("NAPARI_MMRECON_KEEP_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (e.g. musl)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
