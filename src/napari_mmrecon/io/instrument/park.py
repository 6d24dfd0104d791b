"""Park Systems (PSIA) TIFF files: the measured channel behind the 8-bit preview.

A Park ``.tif``/``.tiff`` is a TIFF whose pixels are an 8-bit palette preview; the measurement
sits in private tags of the first IFD, as Gwyddion's ``psia`` module (modules/file/psia.c)
documents and reads them:

- 50432: magic number ``0x0E031301``; 50433: version (``0x01000001`` or ``0x01000002``);
- 50434: the data, ``xres * yres`` little-endian int16 (version 1), or int16 / int32 / float32
  as the version-2 header's data type says;
- 50435: the header, a packed little-endian struct (channel name, head mode, resolution, scan
  size in um, direction flags, data gain, z scale and offset, z unit, and in version 2 the NCM
  amplitude and frequency and the cantilever name);
- 50436: a free-text comment.

Values are ``data_gain * 10**p * (raw * z_scale + z_offset)`` with ``10**p`` the prefix of the
z unit (``z_scale`` 0 means 1), as psia.c computes them, then converted to SI. Row order: the
file's row 0 is the bottom of the image (psia.c flips it to Gwyddion's top-down order), so the
rows are returned as stored and increasing row = increasing y. A scan with swapped fast and
slow axes is rotated as psia.c rotates it, so that x is again along the rows.

The file is parsed here from its IFD (a few ``struct`` reads): one image per file, nothing a
TIFF library adds for a private-tag layout, and every size is checked against the file before
anything is allocated.
"""

from __future__ import annotations

import math
import os
import struct

import numpy as np

from napari_mmrecon.io.instrument import (MAX_CHANNEL_PIXELS, InstrumentChannel, InstrumentError, InstrumentFile,
                                         checked_channel_data)
from napari_mmrecon.io.instrument._units import missing_items, quantity_of, scaled, si_unit
from napari_mmrecon.io.instrument._tifftags import entry_bytes, first_ifd, long_value

__all__ = ["accepts", "read"]

MAGIC = 0x0E031301
VERSIONS = (0x01000001, 0x01000002)
TAG_MAGIC, TAG_VERSION, TAG_DATA, TAG_HEADER, TAG_COMMENTS = 50432, 50433, 50434, 50435, 50436

_HEADER_V1 = (("image_type", "I"), ("source_name", "64s"), ("image_mode", "16s"), ("lpf_strength", "d"),
              ("auto_flatten", "I"), ("ac_track", "I"), ("xres", "I"), ("yres", "I"), ("angle", "d"),
              ("sine_scan", "I"), ("overscan_rate", "d"), ("forward", "I"), ("scan_up", "I"), ("swap_xy", "I"),
              ("xreal_um", "d"), ("yreal_um", "d"), ("xoff_um", "d"), ("yoff_um", "d"), ("scan_rate", "d"),
              ("set_point", "d"), ("set_point_unit", "16s"), ("tip_bias", "d"), ("sample_bias", "d"),
              ("data_gain", "d"), ("z_scale", "d"), ("z_offset", "d"), ("z_unit", "16s"), ("data_min", "i"),
              ("data_max", "i"), ("data_avg", "i"), ("compression", "I"), ("logscale", "I"), ("square", "I"))
"""The version-1 image header, field by field in psia.c's ``psia_read_image_header`` order."""

_HEADER_V2 = _HEADER_V1 + (("z_servo_gain", "d"), ("z_scanner_range", "d"), ("xy_voltage_mode", "16s"),
                           ("z_voltage_mode", "16s"), ("xy_servo_mode", "16s"), ("data_type", "I"),
                           ("reserved1", "I"), ("reserved2", "I"), ("ncm_amplitude", "d"), ("ncm_frequency", "d"),
                           ("cantilever_name", "32s"))
"""Version 2 appends these (psia.c skips the struct's head rotation angle when reading, so do we)."""

_MIN_HEADER = {VERSIONS[0]: 356, VERSIONS[1]: 580}
"""Shortest header psia.c accepts per version (bytes)."""

_DATA_TYPES = {0: "<i2", 1: "<i4", 2: "<f4"}
"""Version-2 data type -> numpy dtype (always little-endian, as psia.c reads it)."""



def accepts(path) -> bool:
    """Whether ``path`` is a TIFF with Park's magic number in private tag 50432 (reads the TIFF
    header and first IFD only)."""
    ifd = first_ifd(path)
    if ifd is None or TAG_MAGIC not in ifd[1]:
        return False
    return long_value(ifd[0], ifd[1][TAG_MAGIC]) == MAGIC


def read(path) -> InstrumentFile:
    """Read a Park Systems TIFF.

    Returns
    -------
    InstrumentFile
        One channel: the measured ``(yres, xres)`` float64 data (not the preview) in SI units
        (height in m, phase in deg, volts V, frequency Hz), pixel size ``(dy, dx)`` in m from
        the scan size, direction from the forward flag; ``header`` holds the parsed header and
        the comment. The file holds no lift height, spring constant or Q; the NCM drive
        frequency and amplitude go to the channel's metadata, not to ``cantilever``.
    """
    name = str(path)
    ifd = first_ifd(name)
    if ifd is None:
        raise InstrumentError(f"{name}: not a TIFF file (or its first directory is cut short)")
    order, tags = ifd
    if TAG_MAGIC not in tags or long_value(order, tags[TAG_MAGIC]) != MAGIC:
        raise InstrumentError(f"{name}: not a Park Systems TIFF (no PSIA magic number in tag 50432)")
    version = long_value(order, tags[TAG_VERSION]) if TAG_VERSION in tags else None
    if version not in VERSIONS:
        raise InstrumentError(f"{name}: unsupported Park Systems TIFF version "
                              f"{'missing' if version is None else hex(version)} (known: 0x1000001, 0x1000002)")
    size = os.path.getsize(name)
    _check_complete(name, order, tags, size)
    raw_header = _tag_bytes(name, order, tags, TAG_HEADER, size, "header")
    if len(raw_header) < _MIN_HEADER[version]:
        raise InstrumentError(f"{name}: Park header is {len(raw_header)} bytes, version {hex(version)} "
                              f"needs {_MIN_HEADER[version]}")
    header = _parse_header(raw_header, version)
    if header["image_type"] != 0:
        raise InstrumentError(f"{name}: this Park file holds no 2-D image (type {header['image_type']}: "
                              "line profile or spectroscopy)")
    dtype = _DATA_TYPES.get(header.get("data_type", 0))
    if dtype is None:
        raise InstrumentError(f"{name}: unknown Park data type {header['data_type']}")
    nx, ny = header["xres"], header["yres"]
    if nx < 2 or ny < 2 or nx * ny > MAX_CHANNEL_PIXELS:
        raise InstrumentError(f"{name}: the Park header declares {ny} x {nx} pixels (damaged header)")
    raw = _tag_bytes(name, order, tags, TAG_DATA, size, "data")
    expected = nx * ny * np.dtype(dtype).itemsize
    if len(raw) != expected:
        raise InstrumentError(f"{name}: the header says {ny} x {nx} pixels of {np.dtype(dtype).name} "
                              f"({expected} bytes), the data tag holds {len(raw)} bytes")
    with np.errstate(invalid="ignore"):  # a float32 signalling NaN warns in the cast
        values = np.frombuffer(raw, dtype=dtype).astype(np.float64)
    values[~np.isfinite(values)] = np.nan  # float data: a lost pixel, never an infinity
    unit, factor, note = _z_unit(header["z_unit"])
    z_scale = header["z_scale"] if header["z_scale"] != 0 else 1.0
    gain = header["data_gain"] * factor
    channel_name = header["source_name"] or "Park data"
    values = scaled(name, channel_name, values, gain * z_scale, gain * header["z_offset"])
    data = checked_channel_data(name, channel_name, values, (ny, nx))
    xreal, yreal = abs(header["xreal_um"]) * 1e-6, abs(header["yreal_um"]) * 1e-6
    pixel_size = (yreal / ny, xreal / nx) if all(0 < v < math.inf for v in (xreal, yreal)) else None
    if header["swap_xy"]:
        data = np.flipud(np.rot90(np.flipud(data)))
        pixel_size = None if pixel_size is None else (xreal / nx, yreal / ny)
    comment = _tag_text(name, order, tags, size)
    metadata = {key: header[key] for key in ("image_mode", "angle", "scan_rate", "set_point", "set_point_unit",
                                             "tip_bias", "sample_bias", "xoff_um", "yoff_um", "swap_xy",
                                             "scan_up", "ncm_amplitude", "ncm_frequency", "cantilever_name")
                if key in header}
    metadata["file_unit"] = header["z_unit"]
    channel = InstrumentChannel(name=channel_name, data=data, unit=unit, pixel_size=pixel_size,
                                direction="forward" if header["forward"] else "backward",
                                quantity=quantity_of(channel_name, unit), metadata=metadata)
    missing = missing_items(pixel_size, None, {})
    if note:
        missing.append(note)
    return InstrumentFile(path=name, format="park", channels=[channel], missing=missing,
                          header={"version": hex(version), **header, "comment": comment})


def _check_complete(name, order, tags, size) -> None:
    """InstrumentError when a tag's values or a preview strip lie past the end of the file: a
    truncated file, even where the cut spares the data tag."""
    for tag, entry in tags.items():
        if entry_bytes(name, order, entry, size) is None:
            raise InstrumentError(f"{name}: TIFF tag {tag} is damaged or points past the end of the file (truncated)")
    if 273 in tags and 279 in tags:
        offsets, counts = (_unsigned(order, tags[t], entry_bytes(name, order, tags[t], size)) for t in (273, 279))
        if len(offsets) != len(counts) or any(o + c > size for o, c in zip(offsets, counts, strict=True)):
            raise InstrumentError(f"{name}: the preview's strips run past the end of the file (truncated)")


def _unsigned(order, entry, raw) -> list[int]:
    """SHORT or LONG values of an entry."""
    code = {3: "H", 4: "I"}.get(entry[0])
    return [] if code is None else list(struct.unpack(f"{order}{entry[1]}{code}", raw))


def _tag_bytes(name, order, tags, tag, size, what) -> bytes:
    """The bytes of a private tag, or InstrumentError naming the file when missing or cut short."""
    if tag not in tags:
        raise InstrumentError(f"{name}: the Park {what} tag {tag} is missing")
    raw = entry_bytes(name, order, tags[tag], size)
    if raw is None:
        raise InstrumentError(f"{name}: the Park {what} tag {tag} runs past the end of the file (truncated)")
    return raw


def _tag_text(name, order, tags, size) -> str:
    """The comment tag as text ('' when absent or unreadable)."""
    raw = entry_bytes(name, order, tags[TAG_COMMENTS], size) if TAG_COMMENTS in tags else None
    return "" if raw is None else raw.split(b"\x00", 1)[0].decode("latin-1")


def _parse_header(raw: bytes, version: int) -> dict:
    """The image header as a dict of numbers and strings (UTF-16 fields decoded)."""
    fields = _HEADER_V2 if version == VERSIONS[1] else _HEADER_V1
    fmt = "<" + "".join(code for _, code in fields)
    values = struct.unpack(fmt, raw[: struct.calcsize(fmt)])
    header = {}
    for (key, _), value in zip(fields, values, strict=True):
        if isinstance(value, bytes):
            value = value.decode("utf-16-le", errors="replace").split("\x00", 1)[0]
        header[key] = value
    return header


def _z_unit(unit: str) -> tuple[str, float, str]:
    """``(SI unit, factor, note)`` for the header's z unit; an unknown unit keeps factor 1 and
    unit ``""`` with a note for ``missing``."""
    si, factor = si_unit(unit)
    if not si:
        return "", 1.0, f"the data unit ({unit!r} is not one this reader knows)"
    return si, factor, ""

