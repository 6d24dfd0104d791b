"""Gwyddion ``.gwy`` files (GWYP serialization), read by this module's own parser.

``gwyfile`` (the Python library for the format) trusts every size and terminator in the file: a
file one byte short makes it loop for ever, and it copies the rest of the buffer at each component
(quadratic in the file size). The format is small (Gwyddion's "Serialization" documentation):
``GWYP``, then an object: its type name NUL-terminated, a little-endian uint32 byte count and its
components, each a NUL-terminated name, a one-letter type and the value (``b c i q d s o``, or an
array ``C I Q D S O`` of a uint32 count and the items). :func:`parse_gwyp` reads it with every
count checked against the bytes left; the tests check it against ``gwyfile`` on the sound files.

Every ``/N/data`` data field of the top container is a channel, titled by ``/N/data/title``;
masks, presentations, graphs and volume data are left out. Values are in ``si_unit_z`` (an SI
prefix or radians are converted: heights in m, phases in degrees); the pixel size is
``(yreal / yres, xreal / xres)`` when ``si_unit_xy`` is a length, otherwise None and listed as
missing. A ``.gwy`` file holds no lift height or cantilever values, so those are listed as missing;
the channel's ``/N/meta`` strings (what Gwyddion kept of the original file) go to ``metadata``.

Row order: Gwyddion's row 0 is the top of the image as it displays it (its y axis points down),
so the rows are flipped: row 0 of ``data`` is the image's bottom and increasing row = increasing y,
as in the other formats (an Igor file opened directly and as Gwyddion saves it give the same array).
"""

from __future__ import annotations

import re
import struct

import numpy as np

from napari_mmrecon.io.instrument import (
    InstrumentChannel,
    InstrumentError,
    InstrumentFile,
    checked_channel_data,
)
from napari_mmrecon.io.instrument._units import (
    missing_items,
    quantity_of,
    scan_direction,
    si_unit,
)

MAGIC = b"GWYP"
MAX_DEPTH = 64
"""Objects nest a few levels deep (container -> data field -> unit); deeper is a damaged file."""

_SCALARS = {"b": "<B", "c": "<c", "i": "<i", "q": "<q", "d": "<d"}
_ARRAYS = {"C": np.dtype("S1"), "I": np.dtype("<i4"), "Q": np.dtype("<i8"), "D": np.dtype("<f8")}


class _Damaged(Exception):
    """The GWYP stream breaks its own structure at a byte offset."""


def _cstring(raw: bytes, pos: int, end: int) -> tuple[str, int]:
    stop = raw.find(b"\0", pos, end)
    if stop < 0:
        raise _Damaged(f"unterminated string at byte {pos}")
    return raw[pos:stop].decode("utf-8", "replace"), stop + 1


def _object(raw: bytes, pos: int, end: int, depth: int) -> tuple[dict, int]:
    """The object at ``pos`` as ``{"__type__": name, component: value...}`` and the offset after it."""
    if depth > MAX_DEPTH:
        raise _Damaged(f"objects nested deeper than {MAX_DEPTH} at byte {pos}")
    name, pos = _cstring(raw, pos, end)
    name = name[:40]
    if pos + 4 > end:
        raise _Damaged(f"object {name!r} cut short at byte {pos}")
    (size,) = struct.unpack_from("<I", raw, pos)
    pos += 4
    stop = pos + size
    if stop > end:
        raise _Damaged(f"object {name!r} declares {size} bytes, {end - pos} are left")
    components = {"__type__": name}
    while pos < stop:
        key, value, pos = _component(raw, pos, stop, depth)
        components[key] = value
    return components, stop


def _component(raw: bytes, pos: int, end: int, depth: int):
    key, pos = _cstring(raw, pos, end)
    if pos >= end:
        raise _Damaged(f"component {key[:40]!r} has no type at byte {pos}")
    kind = chr(raw[pos])
    pos += 1
    if kind in _SCALARS:
        size = struct.calcsize(_SCALARS[kind])
        if pos + size > end:
            raise _Damaged(f"component {key[:40]!r} cut short at byte {pos}")
        (value,) = struct.unpack_from(_SCALARS[kind], raw, pos)
        return key, value, pos + size
    if kind == "s":
        value, pos = _cstring(raw, pos, end)
        return key, value, pos
    if kind == "o":
        value, pos = _object(raw, pos, end, depth + 1)
        return key, value, pos
    if kind not in _ARRAYS and kind not in "SO":
        raise _Damaged(f"component {key[:40]!r} has unknown type {kind!r} at byte {pos - 1}")
    if pos + 4 > end:
        raise _Damaged(f"component {key[:40]!r} cut short at byte {pos}")
    (count,) = struct.unpack_from("<I", raw, pos)
    pos += 4
    if kind in _ARRAYS:
        nbytes = count * _ARRAYS[kind].itemsize
        if pos + nbytes > end:
            raise _Damaged(f"array {key[:40]!r} declares {count} items, {end - pos} bytes are left")
        return key, np.frombuffer(raw, dtype=_ARRAYS[kind], count=count, offset=pos), pos + nbytes
    if count > end - pos:  # every string or object takes at least a byte
        raise _Damaged(f"array {key[:40]!r} declares {count} items, {end - pos} bytes are left")
    items = []
    for _ in range(count):
        item, pos = _cstring(raw, pos, end) if kind == "S" else _object(raw, pos, end, depth + 1)
        items.append(item)
    return key, items, pos


def parse_gwyp(raw: bytes) -> dict:
    """The top object of a GWYP file's bytes, nested objects as dicts (``"__type__"`` their type
    name, arrays as numpy arrays). ``ValueError`` naming the byte where the structure breaks."""
    if not raw.startswith(MAGIC):
        raise ValueError("no GWYP magic")
    try:
        top, end = _object(raw, len(MAGIC), len(raw), 0)
    except _Damaged as exc:
        raise ValueError(str(exc)) from None
    if end != len(raw):
        raise ValueError(f"{len(raw) - end} bytes after the top object")
    return top


def accepts(path) -> bool:
    """Whether ``path`` starts with Gwyddion's ``GWYP`` magic."""
    with open(path, "rb") as handle:
        return handle.read(4) == MAGIC


def _unit_string(unit) -> str:
    return str(unit.get("unitstr", "")) if isinstance(unit, dict) else ""


def _number(path, title: str, field: dict, key: str, default=None) -> float:
    value = field.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InstrumentError(f"{path}: channel {title!r} has no valid {key} ({value!r})")
    return value


def _channel(path, number: int, title: str, field: dict, meta) -> InstrumentChannel:
    xres, yres = _number(path, title, field, "xres"), _number(path, title, field, "yres")
    xreal, yreal = _number(path, title, field, "xreal"), _number(path, title, field, "yreal")
    if not isinstance(xres, int) or not isinstance(yres, int) or min(xres, yres) < 2:
        raise InstrumentError(f"{path}: channel {title!r} has size {xres!r} x {yres!r}")
    raw = field.get("data")
    if not isinstance(raw, np.ndarray):
        raise InstrumentError(f"{path}: channel {title!r} holds no data")
    data = checked_channel_data(path, title, raw, (yres, xres))
    z_unit, z_factor = si_unit(_unit_string(field.get("si_unit_z")))
    xy_unit, xy_factor = si_unit(_unit_string(field.get("si_unit_xy")))
    pixel_size = None
    if xy_unit == "m" and np.isfinite([xreal, yreal]).all() and xreal > 0 and yreal > 0:
        pixel_size = (yreal * xy_factor / yres, xreal * xy_factor / xres)
    metadata = {"gwyddion_id": number,
                "xoff": _number(path, title, field, "xoff", 0.0) * xy_factor,
                "yoff": _number(path, title, field, "yoff", 0.0) * xy_factor,
                "unit_z_in_file": _unit_string(field.get("si_unit_z")),
                "unit_xy_in_file": _unit_string(field.get("si_unit_xy"))}
    if isinstance(meta, dict):
        metadata["meta"] = {k: v for k, v in meta.items() if k != "__type__" and isinstance(v, str)}
    return InstrumentChannel(name=title, data=np.flipud(data * z_factor), unit=z_unit, pixel_size=pixel_size,
                             direction=scan_direction(title), quantity=quantity_of(title, z_unit),
                             metadata=metadata)


def read(path) -> InstrumentFile:
    """Every image channel of the Gwyddion file ``path`` (rows flipped to increasing y)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw.startswith(b"GWYO"):
        raise InstrumentError(f"{path}: a Gwyddion 1.x file (GWYO), which is not read here; save it again "
                              "with Gwyddion 2 (GWYP)")
    if not raw.startswith(MAGIC):
        raise InstrumentError(f"{path}: not a Gwyddion file (no GWYP magic)")
    try:
        container = parse_gwyp(raw)
    except ValueError as exc:
        raise InstrumentError(f"{path}: damaged or truncated Gwyddion file ({exc})") from None
    numbers = sorted(int(m.group(1)) for key in container if (m := re.fullmatch(r"/(\d+)/data", str(key))))
    channels = []
    for number in numbers:
        field = container[f"/{number}/data"]
        if not isinstance(field, dict) or field.get("__type__") != "GwyDataField":
            raise InstrumentError(f"{path}: /{number}/data is not a data field")
        title = container.get(f"/{number}/data/title")
        title = title if isinstance(title, str) and title else f"Channel {number}"
        channels.append(_channel(path, number, title, field, container.get(f"/{number}/meta")))
    if not channels:
        raise InstrumentError(f"{path}: the Gwyddion file holds no image channel")
    pixel = None if any(c.pixel_size is None for c in channels) else channels[0].pixel_size
    header = {"filename": str(container.get("/filename", "")),
              "channels": {str(c.metadata["gwyddion_id"]): c.name for c in channels}}
    return InstrumentFile(path=str(path), format="gwy", channels=channels,
                          missing=missing_items(pixel, None, {}), header=header)
