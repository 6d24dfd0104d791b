"""OOMMF Vector Field (OVF) 1.0 and 2.0 files on rectangular meshes.

The format is described in the OOMMF user guide ("Vector Field File Format (OVF)").
A file has a text header of ``# label: value`` lines, then one data block stored as
text, 4-byte or 8-byte IEEE floats. Binary data start with a check value
(1234567.0 or 123456789012345.0); OVF 1.0 stores binary data big-endian, OVF 2.0
little-endian. Values are ordered with x varying fastest, then y, then z, which is
exactly the C order of a numpy array of shape ``(nz, ny, nx, valuedim)``.

This module imports no torch at import time: :func:`accepts_ovf` is cheap enough for the
npe2 reader entry point; :func:`read_ovf` imports the backend's ``Grid`` on first use.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from napari_mmrecon.io.files import atomic_output

if TYPE_CHECKING:
    from napari_mmrecon.backend.physics.grid import Grid

__all__ = ["OVFError", "accepts_ovf", "read_ovf", "write_ovf"]

_MESH_UNITS = {"m": 1.0, "mm": 1e3, "um": 1e6, "µm": 1e6, "μm": 1e6, "nm": 1e9}
"""Number of ``meshunit`` lengths in one metre (dividing by an exact integer keeps
``3 nm`` -> ``3e-9`` correctly rounded)."""

_FORMATS = {"text": "text", "binary4": "binary4", "binary8": "binary8"}
"""Normalised ``Begin: Data`` representation -> ``header["format"]``."""

_ITEM_SIZE = {"binary4": 4, "binary8": 8}

_CHECK_VALUES = {"binary4": 1234567.0, "binary8": 123456789012345.0}

_BYTE_ORDER = {1: ">", 2: "<"}
"""OVF version -> numpy byte-order character of its binary data."""

_INT_KEYS = ("xnodes", "ynodes", "znodes", "valuedim", "segmentcount")

_FLOAT_KEYS = (
    "xbase", "ybase", "zbase", "xstepsize", "ystepsize", "zstepsize",
    "xmin", "ymin", "zmin", "xmax", "ymax", "zmax",
    "valuemultiplier", "valuerangeminmag", "valuerangemaxmag",
)

_LIST_KEYS = ("valuelabels", "valueunits")
"""OVF 2.0 keys whose values are Tcl lists."""

_REQUIRED_KEYS = (
    "meshtype", "meshunit", "xnodes", "ynodes", "znodes", "xstepsize", "ystepsize", "zstepsize",
)

_V1_SIGNATURE = re.compile(r"oommf:(rectangular|irregular)meshv(1\.0*|0\.99|0\.0a0)")

_END_LINE = re.compile(rb"^[ \t]*#[ \t]*end[ \t]*:[ \t]*data\b", re.IGNORECASE | re.MULTILINE)

_TCL_SPECIAL = re.compile(r'[\s{}"\\\[\]$;]')

_INT_TOKEN = re.compile(r"[+-]?[0-9]+")

_FLOAT_TOKEN = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""A decimal number as OVF writers print it; Python's ``float`` also takes ``nan``, ``inf``,
``1_0`` and non-ASCII digits, which no OVF file holds."""

_NOT_NUMBER_TEXT = re.compile(r"[^0-9eE+\-.\s]")
"""A character that cannot occur in whitespace-separated decimal numbers."""

_BAD_TOKEN = re.compile(r"(?<!\S)(?!" + _FLOAT_TOKEN.pattern + r"(?!\S))\S+")
"""The first whitespace-separated word that is not a decimal number (slower than
``_NOT_NUMBER_TEXT``; used to name the word once the data are known to be garbled)."""


class OVFError(ValueError):
    """An OVF file that cannot be read; the message names the file and the problem."""


def read_ovf(path, return_header: bool = False):
    """Read an OVF 1.0 or 2.0 file on a rectangular mesh.

    Parameters
    ----------
    path : str or os.PathLike
        The file. ``Data Text``, ``Data Binary 4`` and ``Data Binary 8`` are supported.
    return_header : bool
        Also return the parsed header.

    Returns
    -------
    data : ndarray of float64
        ``(nz, ny, nx, 3)`` for vector fields (OVF 1.0 files are always vector fields),
        ``(nz, ny, nx)`` for ``valuedim`` 1, ``(nz, ny, nx, n)`` for ``valuedim`` n.
        OVF 1.0 values are multiplied by ``valuemultiplier``.
    grid : Grid
        Node counts from ``x/y/znodes`` and cell size (m) from ``x/y/zstepsize`` in
        ``meshunit``.
    header : dict, optional
        Header labels lower-cased with blanks removed (``"title"``, ``"meshunit"``,
        ``"segmentcount"``...). Node counts and ``valuedim`` are ints; bases, step sizes,
        bounds and ``valuemultiplier`` are floats in the file's units; ``"desc"`` is a
        list of lines; OVF 2.0 ``"valuelabels"`` and ``"valueunits"`` are lists of
        strings. Added keys: ``"version"`` (1 or 2) and ``"format"`` (``"text"``,
        ``"binary4"`` or ``"binary8"``).

    Raises
    ------
    OVFError
        The file is not OVF, misses a header key, uses an irregular mesh, has a bad
        check value, is truncated, lacks ``End: Data``, holds a garbled number (text data
        and header values must be plain decimal numbers: no ``nan``, ``inf`` or ``1_0``)
        or a value that is not finite (NaN or infinity, also after ``valuemultiplier``).
    FileNotFoundError
        ``path`` does not exist.
    """
    name = str(path)
    with open(path, "rb") as handle:
        version = _version(handle.readline(256), name)
        raw = handle.read()
    header, start = _parse_header(raw, name)
    header["version"] = version
    _check_header(header, name)
    grid = _grid(header, name)
    valuedim = header.get("valuedim", 3) if version == 2 else 3
    count = grid.nx * grid.ny * grid.nz * valuedim
    if header["format"] == "text":
        values = _text_values(raw, start, count, name)
    else:
        values = _binary_values(raw, start, count, header["format"], version, name)
    data = values.reshape(grid.nz, grid.ny, grid.nx, valuedim)
    if version == 1:
        with np.errstate(over="ignore"):  # an overflow to infinity is reported below
            data = data * header.get("valuemultiplier", 1.0)
    _check_finite(data, name)
    if valuedim == 1:
        data = data[..., 0]
    data = np.ascontiguousarray(data, dtype=np.float64)
    return (data, grid, header) if return_header else (data, grid)


def accepts_ovf(path) -> bool:
    """Whether ``path`` starts with an OOMMF identification line (``# OOMMF ...``).

    Reads only the first line, for the npe2 reader to decline files named ``.ovf`` that
    are something else. A file that passes may still fail :func:`read_ovf`, which then
    names the problem. False when the file cannot be opened.
    """
    try:
        with open(path, "rb") as handle:
            first_line = handle.readline(256)
    except OSError:
        return False
    return re.sub(rb"[\s#]", b"", first_line).lower().startswith(b"oommf")


def write_ovf(
    path,
    data,
    grid,
    fmt: str = "binary8",
    version: int = 2,
    title: str = "m",
    value_units="",
    value_labels=None,
    desc=None,
) -> None:
    """Write a field to an OVF file on a rectangular mesh (``meshunit`` m).

    The file is first written to a temporary file in the same folder and then moved
    onto ``path``, so a failure never leaves a partial file at ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (``.ovf`` or ``.omf`` by convention).
    data : array_like or torch.Tensor
        ``(nz, ny, nx, n)`` with n >= 1 components, or ``(nz, ny, nx)`` for a scalar
        field (``valuedim`` 1). Finite real numbers.
    grid : Grid
        Mesh; ``grid.shape`` must equal ``data.shape[:3]``. Cell size in metres.
    fmt : {"binary8", "binary4", "text"}
        Data representation. Text uses the shortest repr that reads back exactly;
        binary4 rounds to float32.
    version : {2, 1}
        OVF version. Version 1 stores only 3-component vectors.
    title : str
        ``Title`` line; also the stem of the default value labels.
    value_units : str or sequence of str
        One unit for all components or one per component (``""`` = no unit).
        Version 1 has a single ``valueunit``, so all units must be equal.
    value_labels : sequence of str, optional
        One label per component (OVF 2.0 only). Default: ``title_x, title_y, title_z``
        for 3 components, ``title`` for a scalar, else ``title_0, title_1, ...``.
    desc : str or sequence of str, optional
        ``Desc`` lines; a string is split at line breaks.

    Raises
    ------
    ValueError
        Bad ``fmt``, ``version``, data shape (the message gives the expected shape),
        NaN or infinite data, labels or units, or text that would break the header.
    """
    array = _field_array(data, grid)
    valuedim = array.shape[3]
    if fmt not in _FORMATS:
        raise ValueError(f"fmt must be 'text', 'binary4' or 'binary8', got {fmt!r}")
    if version not in (1, 2):
        raise ValueError(f"OVF version must be 1 or 2, got {version!r}")
    if version == 1 and valuedim != 3:
        raise ValueError(f"OVF 1.0 stores only 3-component vectors; data has {valuedim} component(s)")
    header = _header_lines(array, grid, fmt, version, title, value_units, value_labels, desc)
    body = _data_text(array) if fmt == "text" else _data_binary(array, fmt, version)
    footer = _data_marker("End", fmt) + "# End: Segment\n"
    with atomic_output(path) as temporary, open(temporary, "xb") as handle:
        handle.write("".join(header).encode("utf-8"))
        handle.write(body)
        handle.write(footer.encode("ascii"))


# ----------------------------------------------------------------------------- reading


def _version(first_line: bytes, name: str) -> int:
    """OVF version (1 or 2) from the identification line."""
    signature = re.sub(r"[\s#]", "", first_line.decode("latin-1")).lower()
    if signature == "oommfovf2.0":
        return 2
    match = _V1_SIGNATURE.fullmatch(signature)
    if match is None:
        raise OVFError(f"{name}: not an OVF file (first line {first_line[:60]!r})")
    if match.group(1) == "irregular":
        raise OVFError(f"{name}: unsupported mesh type 'irregular' (only rectangular meshes)")
    return 1


def _split_line(line: str) -> tuple[str, str] | None:
    """``(label, value)`` of a ``# label: value`` line, or None for comments and blanks.

    The label is lower-cased with blanks removed; the value ends at a ``##`` comment.
    """
    if line.startswith("##") or ":" not in line:
        return None
    label, value = line[1:].split(":", 1)
    return re.sub(r"[ \t]", "", label).lower(), value.split("##", 1)[0].strip()


def _parse_header(raw: bytes, name: str) -> tuple[dict, int]:
    """Parse the header up to the ``Begin: Data`` line.

    Returns the header dict (with ``"format"``) and the offset of the first data byte
    in ``raw`` (just after the newline of the ``Begin: Data`` line).
    """
    header: dict = {"desc": []}
    position = 0
    while position < len(raw):
        newline = raw.find(b"\n", position)
        end = len(raw) if newline < 0 else newline + 1
        line = raw[position:end].decode("utf-8", "replace").strip()
        position = end
        if not line:
            continue
        if not line.startswith("#"):
            raise OVFError(f"{name}: malformed header line {line[:60]!r}")
        item = _split_line(line)
        if item is None:
            continue
        label, value = item
        if label == "begin" and value.lower().startswith("data"):
            if newline < 0:
                break
            header["format"] = _data_format(value, name)
            return header, position
        if label == "desc":
            header["desc"].append(value)
        elif label not in ("begin", "end"):
            header[label] = value
    raise OVFError(f"{name}: no 'Begin: Data' line (header incomplete or file truncated)")


def _data_format(value: str, name: str) -> str:
    """``"text"``, ``"binary4"`` or ``"binary8"`` from a ``Begin: Data ...`` value."""
    representation = "".join(value.lower().split()[1:])
    if representation not in _FORMATS:
        raise OVFError(f"{name}: unsupported data representation {value!r}")
    return _FORMATS[representation]


def _check_header(header: dict, name: str) -> None:
    """Validate required keys and convert typed values in place."""
    required = _REQUIRED_KEYS + (("valuedim",) if header["version"] == 2 else ())
    for key in required:
        if key not in header:
            raise OVFError(f"{name}: missing header key {key!r}")
    for key in _INT_KEYS + _FLOAT_KEYS:
        if key in header:
            header[key] = _number(header[key], int if key in _INT_KEYS else float, key, name)
    if header["version"] == 2:
        for key in _LIST_KEYS:
            if key in header:
                header[key] = _tcl_split(header[key])
        if header["valuedim"] < 1:
            raise OVFError(f"{name}: valuedim must be >= 1, got {header['valuedim']}")
    if header["meshtype"].lower() != "rectangular":
        raise OVFError(f"{name}: unsupported mesh type {header['meshtype']!r} (only rectangular meshes)")
    if header.get("segmentcount", 1) != 1:
        raise OVFError(f"{name}: {header['segmentcount']} segments; only single-segment files are supported")


def _number(text: str, kind: type, key: str, name: str):
    """``text`` as a finite ``kind`` (int or float), or OVFError naming ``key``.

    Only plain decimal numbers are taken (Python's ``float`` would also take ``nan``,
    ``inf`` and ``1_0``).
    """
    pattern = _INT_TOKEN if kind is int else _FLOAT_TOKEN
    if pattern.fullmatch(text) is None:
        expected = "an integer" if kind is int else "a decimal number"
        raise OVFError(f"{name}: header key {key!r} has a non-numeric value {text!r} ({expected} expected)")
    value = kind(text)
    if kind is float and not np.isfinite(value):
        raise OVFError(f"{name}: header key {key!r} has a value out of the float range: {text!r}")
    return value


def _grid(header: dict, name: str) -> Grid:
    """The Grid of a checked header; step sizes converted from ``meshunit`` to metres."""
    # torch: imported on the first read
    from napari_mmrecon.backend.physics.grid import Grid

    unit = header["meshunit"]
    if unit not in _MESH_UNITS:
        raise OVFError(f"{name}: unknown meshunit {unit!r} (known: {', '.join(_MESH_UNITS)})")
    per_metre = _MESH_UNITS[unit]
    try:
        return Grid(
            header["xnodes"], header["ynodes"], header["znodes"],
            header["xstepsize"] / per_metre, header["ystepsize"] / per_metre, header["zstepsize"] / per_metre,
        )
    except ValueError as exc:
        raise OVFError(f"{name}: invalid mesh: {exc}") from None


def _binary_values(raw: bytes, start: int, count: int, fmt: str, version: int, name: str) -> np.ndarray:
    """``count`` binary values after the check value, followed by ``End: Data``."""
    size = _ITEM_SIZE[fmt]
    needed = (count + 1) * size
    if len(raw) - start < needed:
        found = max(len(raw) - start - size, 0) // size
        raise OVFError(f"{name}: truncated data: {found} of {count} values present")
    order = "big-endian" if version == 1 else "little-endian"
    values = np.frombuffer(raw, dtype=f"{_BYTE_ORDER[version]}f{size}", count=count + 1, offset=start)
    if values[0] != _CHECK_VALUES[fmt]:
        raise OVFError(
            f"{name}: bad check value {float(values[0])!r} "
            f"(expected {_CHECK_VALUES[fmt]!r} as {order} {fmt})"
        )
    if _END_LINE.match(raw[start + needed :].lstrip(b"\r\n\t ")) is None:
        raise OVFError(f"{name}: missing 'End: Data' line after {count} values")
    return values[1:].astype(np.float64)


def _text_values(raw: bytes, start: int, count: int, name: str) -> np.ndarray:
    """``count`` whitespace-separated decimal numbers up to the ``End: Data`` line.

    Anything from ``#`` to the end of a line is a comment. ``raw`` is the file from its
    second line on (the first is the identification line), which numbers the lines in
    messages.
    """
    end = _END_LINE.search(raw, start)
    block = re.sub(r"#[^\n]*", "", raw[start : len(raw) if end is None else end.start()].decode("latin-1"))
    tokens = block.split()
    if len(tokens) < count:
        raise OVFError(f"{name}: truncated data: {len(tokens)} of {count} values present")
    if len(tokens) > count:
        raise OVFError(f"{name}: {len(tokens)} values in text data, expected {count}")
    if end is None:
        raise OVFError(f"{name}: missing 'End: Data' line after {count} values")
    values = _decimal_values(block, tokens)
    if values is None:
        bad = _BAD_TOKEN.search(block)
        line = 2 + raw.count(b"\n", 0, start) + block.count("\n", 0, bad.start())
        word = bad.group().encode("latin-1").decode("utf-8", "replace")
        raise OVFError(f"{name}: garbled number {word!r} in text data at line {line}")
    return values


def _decimal_values(block: str, tokens: list[str]) -> np.ndarray | None:
    """``tokens``, the words of ``block``, as float64; None if one is not a decimal number.

    The character screen runs first because numpy, like ``float``, reads ``nan``, ``inf``
    and ``1_0``.
    """
    if _NOT_NUMBER_TEXT.search(block) is not None:
        return None
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        return None


def _check_finite(data: np.ndarray, name: str) -> None:
    """OVFError naming the count and first index of NaN or infinite values in ``data``."""
    bad = ~np.isfinite(data)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise OVFError(
            f"{name}: {int(bad.sum())} value(s) in the data are not finite (NaN or infinity), "
            f"the first at index {first} of the (nz, ny, nx, valuedim) array"
        )


def _tcl_split(text: str) -> list[str]:
    """Split a Tcl list: ``'{} {a b} c'`` -> ``['', 'a b', 'c']``."""
    items, position = [], 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return items
        if text[position] in "{\"":
            item, position = _tcl_group(text, position)
        else:
            end = position
            while end < len(text) and not text[end].isspace():
                end += 1
            item, position = text[position:end], end
        items.append(item)


def _tcl_group(text: str, position: int) -> tuple[str, int]:
    """The braced or quoted Tcl word at ``position`` and the index after it.

    An unclosed group extends to the end of ``text``.
    """
    opening = text[position]
    closing = "}" if opening == "{" else '"'
    depth = 0
    for index in range(position, len(text)):
        char = text[index]
        if opening == "{" and char == "{":
            depth += 1
        elif char == closing and (opening == "{" or index > position):
            depth -= 1
            if depth <= 0:
                return text[position + 1 : index], index + 1
    return text[position + 1 :], len(text)


# ----------------------------------------------------------------------------- writing


def _field_array(data, grid) -> np.ndarray:
    """``data`` as float64 ``(nz, ny, nx, n)``; a scalar field gets n = 1."""
    # torch: imported on the first write
    from napari_mmrecon.backend.runtime.arrays import as_numpy

    array = as_numpy(data)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"OVF data must be real numbers, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise ValueError("OVF data must be finite: read_ovf refuses NaN and infinite values")
    shape = (grid.nz, grid.ny, grid.nx)
    if array.shape == shape:
        array = array[..., None]
    if array.ndim != 4 or array.shape[:3] != shape or array.shape[3] < 1:
        raise ValueError(
            f"OVF data has shape {array.shape}; the grid needs {shape + (3,)} for a vector field, "
            f"{shape} for a scalar field or {shape + ('n',)} for n components"
        )
    return array.astype(np.float64)


def _header_lines(array, grid, fmt, version, title, value_units, value_labels, desc) -> list[str]:
    """All header lines up to and including ``Begin: Data``, each ending in a newline."""
    valuedim = array.shape[3]
    first = "# OOMMF OVF 2.0" if version == 2 else "# OOMMF: rectangular mesh v1.0"
    lines = [first, "# Segment count: 1", "# Begin: Segment", "# Begin: Header"]
    lines.append(f"# Title: {_header_text(title, 'title')}")
    lines += [f"# Desc: {_header_text(line, 'desc')}" for line in _desc_lines(desc)]
    lines += ["# meshtype: rectangular", "# meshunit: m"]
    for axis, nodes, step in zip("xyz", (grid.nx, grid.ny, grid.nz), (grid.dx, grid.dy, grid.dz)):
        lines += [
            f"# {axis}min: 0",
            f"# {axis}max: {float(nodes * step)!r}",
            f"# {axis}base: {float(step / 2)!r}",
            f"# {axis}stepsize: {float(step)!r}",
            f"# {axis}nodes: {int(nodes)}",
        ]
    units = _units(value_units, valuedim)
    if version == 2:
        lines.append(f"# valuedim: {valuedim}")
        lines.append(f"# valuelabels: {_tcl_join(_labels(value_labels, title, valuedim))}")
        lines.append(f"# valueunits: {_tcl_join(units)}")
    else:
        lines += _v1_value_lines(array, units)
    lines.append("# End: Header")
    return [line + "\n" for line in lines] + [_data_marker("Begin", fmt)]


def _v1_value_lines(array: np.ndarray, units: list[str]) -> list[str]:
    """OVF 1.0 ``valueunit``, ``valuemultiplier`` and magnitude-range lines."""
    if len(set(units)) != 1:
        raise ValueError(f"OVF 1.0 has a single valueunit; got different units {units}")
    norms = np.linalg.norm(array, axis=-1)
    norms = norms[np.isfinite(norms)]
    low, high = (float(norms.min()), float(norms.max())) if norms.size else (0.0, 0.0)
    return [
        f"# valueunit: {units[0]}",
        "# valuemultiplier: 1",
        f"# ValueRangeMinMag: {low!r}",
        f"# ValueRangeMaxMag: {high!r}",
    ]


def _desc_lines(desc) -> list[str]:
    """``desc`` (None, a string or a sequence of strings) as a list of single lines."""
    if desc is None:
        return []
    items = [desc] if isinstance(desc, str) else list(desc)
    return [line for item in items for line in str(item).splitlines()]


def _units(value_units, valuedim: int) -> list[str]:
    """One unit string per component."""
    if isinstance(value_units, str):
        return [_header_text(value_units, "value_units")] * valuedim
    units = [_header_text(str(unit), "value_units") for unit in value_units]
    if len(units) != valuedim:
        raise ValueError(f"value_units has {len(units)} entries; the data has {valuedim} components")
    return units


def _labels(value_labels, title: str, valuedim: int) -> list[str]:
    """One label per component, defaulting to names derived from ``title``."""
    if value_labels is None:
        if valuedim == 1:
            return [title]
        suffixes = "xyz" if valuedim == 3 else [str(i) for i in range(valuedim)]
        return [f"{title}_{suffix}" for suffix in suffixes]
    labels = [_header_text(str(label), "value_labels") for label in value_labels]
    if len(labels) != valuedim:
        raise ValueError(f"value_labels has {len(labels)} entries; the data has {valuedim} components")
    return labels


def _header_text(text: str, what: str) -> str:
    """``text`` if it fits on one header line without starting a ``##`` comment."""
    text = str(text)
    if "\n" in text or "\r" in text or "##" in text:
        raise ValueError(f"{what} must be one line without '##', got {text!r}")
    return text


def _tcl_join(items: list[str]) -> str:
    """Format strings as a Tcl list, bracing empty items and items with blanks."""
    words = []
    for item in items:
        if item and _TCL_SPECIAL.search(item) is None:
            words.append(item)
        elif "{" in item or "}" in item or "\\" in item:
            raise ValueError(f"OVF labels and units cannot contain braces or backslashes: {item!r}")
        else:
            words.append("{" + item + "}")
    return " ".join(words)


def _data_marker(which: str, fmt: str) -> str:
    """The ``# Begin: Data ...`` or ``# End: Data ...`` line for ``fmt``."""
    representation = "Text" if fmt == "text" else f"Binary {_ITEM_SIZE[fmt]}"
    return f"# {which}: Data {representation}\n"


def _data_text(array: np.ndarray) -> bytes:
    """One line per cell, components separated by spaces, in exact repr precision."""
    rows = array.reshape(-1, array.shape[3]).tolist()
    return "".join(" ".join(map(repr, row)) + "\n" for row in rows).encode("ascii")


def _data_binary(array: np.ndarray, fmt: str, version: int) -> bytes:
    """Check value and values in the version's byte order, then a newline."""
    dtype = np.dtype(f"{_BYTE_ORDER[version]}f{_ITEM_SIZE[fmt]}")
    values = np.concatenate([[_CHECK_VALUES[fmt]], array.reshape(-1)]).astype(dtype)
    return values.tobytes() + b"\n"
