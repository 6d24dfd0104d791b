"""Nanonis ``.sxm`` scan files, read by this module's own parser.

``nanonispy`` 1.1.0 (the library for this format) fails on numpy >= 1.24 (it uses the removed
``np.float``), and the format is small: a text header of ``:KEY:`` lines up to ``:SCANIT_END:``,
then ``\\x1a\\x04`` and the images as 4-byte floats (``:SCANIT_TYPE:``, big-endian as Nanonis
writes them), channel after channel in ``:DATA_INFO:`` order, forward then backward for a channel
scanned ``both`` ways, each ``ny`` lines of ``nx`` values (``:SCAN_PIXELS: nx ny``). Values are
already in the channel's unit (``:DATA_INFO:``'s Unit column); the pixel size is
``:SCAN_RANGE:`` (x y, in m) over the pixel counts. A channel is named as ``:DATA_INFO:`` names it
with its direction, as Gwyddion does: ``"Frequency_Shift (forward)"``.

Row order: lines are stored in the order they were scanned. With ``:SCAN_DIR: up`` the first line
is the frame's bottom, so increasing row = increasing y as stored; with ``down`` the rows are
flipped. A backward (retrace) line is stored in its scan order, right to left, so backward images
are mirrored in x to put column 0 at the frame's left, as the forward images are.

Cantilever: ``f0`` from ``Oscillation Control>Center Frequency (Hz)`` and ``Q`` from
``Oscillation Control>PLL-Setup Q-Factor`` where the oscillation controller wrote them; Nanonis
files hold no spring constant. The lift height is ``Z-Controller>TipLift (m)`` when non-zero.
"""

from __future__ import annotations

import re

import numpy as np

from napari_mmrecon.io.instrument import (
    MAX_CHANNEL_PIXELS,
    InstrumentChannel,
    InstrumentError,
    InstrumentFile,
    checked_channel_data,
)
from napari_mmrecon.io.instrument._units import missing_items, quantity_of, si_unit

MAGIC = b":NANONIS_VERSION:"
HEADER_END = b":SCANIT_END:"
DATA_START = b"\x1a\x04"
MAX_HEADER_BYTES = 2**22
"""A header longer than 4 MiB is not a Nanonis header."""

_TYPES = {"FLOAT": "f4", "INT": "i4", "UINT": "u4", "DOUBLE": "f8"}


def accepts(path) -> bool:
    """Whether ``path`` starts with Nanonis' ``:NANONIS_VERSION:`` line."""
    with open(path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


def parse_header(text: str) -> dict:
    """``{key: value text}`` of a Nanonis header (the lines between ``:KEY:`` lines, stripped)."""
    header, key, lines = {}, None, []
    for line in text.splitlines():
        match = re.fullmatch(r":(.+):", line.strip()) if line.startswith(":") else None
        if match:
            if key is not None:
                header[key] = "\n".join(lines).strip()
            key, lines = match.group(1), []
        elif key is not None:
            lines.append(line)
    if key is not None:
        header[key] = "\n".join(lines).strip()
    return header


def _numbers(path, header: dict, key: str, count: int) -> list[float]:
    try:
        values = [float(word) for word in header[key].split()]
    except KeyError:
        raise InstrumentError(f"{path}: the Nanonis header has no :{key}:") from None
    except ValueError:
        raise InstrumentError(f"{path}: :{key}: is not {count} numbers ({header[key]!r})") from None
    if len(values) != count:
        raise InstrumentError(f"{path}: :{key}: is not {count} numbers ({header[key]!r})")
    return values


def _float(header: dict, key: str) -> float | None:
    try:
        value = float(header[key].replace(",", "."))
    except (KeyError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _data_info(path, header: dict) -> list[dict]:
    """The ``:DATA_INFO:`` table as dicts (Channel, Name, Unit, Direction, Calibration, Offset)."""
    rows = [line.split("\t") for line in header.get("DATA_INFO", "").splitlines() if line.strip()]
    rows = [[cell.strip() for cell in row if cell.strip()] for row in rows]
    if len(rows) < 2 or "Name" not in rows[0] or "Direction" not in rows[0]:
        raise InstrumentError(f"{path}: the Nanonis header has no readable :DATA_INFO: table")
    columns = rows[0]
    table = [dict(zip(columns, row)) for row in rows[1:]]
    for row in table:
        if row.get("Direction") not in ("both", "forward", "backward"):
            raise InstrumentError(f"{path}: :DATA_INFO: channel {row.get('Name')!r} has direction "
                                  f"{row.get('Direction')!r}")
    return table


def _header_and_offset(path, raw: bytes) -> tuple[dict, int]:
    end = raw.find(HEADER_END, 0, MAX_HEADER_BYTES)
    if end < 0:
        raise InstrumentError(f"{path}: no :SCANIT_END: ending the Nanonis header (truncated or damaged)")
    start = raw.find(DATA_START, end, end + 64)
    if start < 0:
        raise InstrumentError(f"{path}: no data marker after :SCANIT_END: (truncated or damaged)")
    return parse_header(raw[:end].decode("latin-1")), start + len(DATA_START)


def read(path) -> InstrumentFile:
    """Every image of the Nanonis scan ``path``: each channel forward and backward where scanned."""
    with open(path, "rb") as handle:
        raw = handle.read()
    if not raw.startswith(MAGIC):
        raise InstrumentError(f"{path}: not a Nanonis scan (no :NANONIS_VERSION: line)")
    header, offset = _header_and_offset(path, raw)
    nx, ny = (int(v) if v.is_integer() else -1 for v in _numbers(path, header, "SCAN_PIXELS", 2))
    if nx < 2 or ny < 2 or nx * ny > MAX_CHANNEL_PIXELS:
        raise InstrumentError(f"{path}: :SCAN_PIXELS: {header['SCAN_PIXELS']!r} is not an image size")
    kind = header.get("SCANIT_TYPE", "FLOAT MSBFIRST").split()
    if len(kind) != 2 or kind[0] not in _TYPES or kind[1] not in ("MSBFIRST", "LSBFIRST"):
        raise InstrumentError(f"{path}: unknown :SCANIT_TYPE: {header.get('SCANIT_TYPE')!r}")
    dtype = np.dtype((">" if kind[1] == "MSBFIRST" else "<") + _TYPES[kind[0]])
    table = _data_info(path, header)
    images = [(row, direction) for row in table
              for direction in (("forward", "backward") if row["Direction"] == "both" else (row["Direction"],))]
    expected = len(images) * nx * ny * dtype.itemsize
    if len(raw) - offset < expected:
        raise InstrumentError(f"{path}: {len(raw) - offset} data bytes, the header declares {len(images)} images "
                              f"of {nx} x {ny} ({expected} bytes): truncated")
    width, height = _numbers(path, header, "SCAN_RANGE", 2)
    pixel_size = (height / ny, width / nx) if width > 0 and height > 0 and np.isfinite([width, height]).all() else None
    scan_up = header.get("SCAN_DIR", "").strip().lower() != "down"
    values = np.frombuffer(raw, dtype=dtype, count=len(images) * nx * ny, offset=offset).reshape(len(images), ny, nx)
    channels = []
    for (row, direction), image in zip(images, values):
        unit, factor = si_unit(row.get("Unit", ""))
        name = f"{row['Name']} ({direction})"
        data = checked_channel_data(path, name, image) * factor
        data = data if scan_up else data[::-1]
        data = data[:, ::-1] if direction == "backward" else data
        channels.append(InstrumentChannel(name=name, data=np.ascontiguousarray(data), unit=unit,
                                          pixel_size=pixel_size, direction=direction,
                                          quantity=quantity_of(row["Name"], unit),
                                          metadata={"unit_in_file": row.get("Unit", ""),
                                                    "calibration": row.get("Calibration", ""),
                                                    "offset": row.get("Offset", "")}))
    cantilever = {key: value for key, value in (
        ("f0", _float(header, "Oscillation Control>Center Frequency (Hz)")),
        ("Q", _float(header, "Oscillation Control>PLL-Setup Q-Factor"))) if value is not None and value > 0}
    lift = _float(header, "Z-Controller>TipLift (m)")
    lift = lift if lift else None
    return InstrumentFile(path=str(path), format="sxm", channels=channels, lift_height=lift, cantilever=cantilever,
                          missing=missing_items(pixel_size, lift, cantilever),
                          header={**header, "scan_dir": "up" if scan_up else "down"})
