"""A peek at the first image file directory (IFD) of a classic TIFF without importing a TIFF library.

JPK and Park Systems files are TIFFs told apart from a plain TIFF by private tags in the first
IFD; ``first_ifd(path)`` reads the 8-byte header and that directory alone (a few hundred bytes)
so that ``accepts`` stays cheap.
"""

from __future__ import annotations

import struct

_MAX_ENTRIES = 4096
"""More entries than this in the first IFD is not a file these readers take."""


def first_ifd(path) -> tuple[str, dict[int, tuple[int, int, bytes]]] | None:
    """``(byte_order, {tag: (type, count, raw 4-byte value field)})`` of the first IFD of a
    classic TIFF, or None when ``path`` is not one (or is cut short)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if head[:4] == b"II*\x00":
            order = "<"
        elif head[:4] == b"MM\x00*":
            order = ">"
        else:
            return None
        (offset,) = struct.unpack(order + "I", head[4:8])
        fh.seek(offset)
        raw = fh.read(2)
        if len(raw) < 2:
            return None
        (count,) = struct.unpack(order + "H", raw)
        if count > _MAX_ENTRIES:
            return None
        block = fh.read(12 * count)
    if len(block) < 12 * count:
        return None
    tags = {}
    for i in range(count):
        tag, typ, n = struct.unpack(order + "HHI", block[12 * i: 12 * i + 8])
        tags[tag] = (typ, n, block[12 * i + 8: 12 * i + 12])
    return order, tags


def long_value(order: str, entry: tuple[int, int, bytes]) -> int | None:
    """The value of a single LONG (type 4) entry, or None when the entry is something else."""
    typ, count, field = entry
    if typ != 4 or count != 1:
        return None
    return struct.unpack(order + "I", field)[0]


_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8}
"""Bytes per value of each TIFF field type."""


def entry_bytes(path, order: str, entry: tuple[int, int, bytes], file_size: int) -> bytes | None:
    """The raw bytes of an IFD entry's values (in the entry or at its offset), or None when the
    entry's type is unknown or its values run past the end of the file."""
    typ, count, field = entry
    size = _TYPE_SIZES.get(typ)
    if size is None:
        return None
    nbytes = size * count
    if nbytes <= 4:
        return field[:nbytes]
    (offset,) = struct.unpack(order + "I", field)
    if offset + nbytes > file_size:
        return None
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(nbytes)
    return data if len(data) == nbytes else None
