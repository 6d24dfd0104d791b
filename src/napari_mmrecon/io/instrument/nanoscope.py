"""Bruker / Veeco NanoScope image files (``.spm``, ``.000``-``.009``): every image channel, scaled.

A NanoScope file is a Latin-1 text header of ``\\key: value`` lines in ``\\*Section`` blocks up to
``\\*File list end``, followed by the raw channels. Each ``\\*Ciao image list`` section is one
channel: ``Data offset``, ``Data length``, ``Bytes/pixel``, ``Samps/line`` x ``Number of lines``,
``Scan Size``, ``Line Direction`` and the CIAO value ``@2:Z scale: V [soft scale] (LSB value) hard
value unit``. Values are ``raw / 2**(8*Bytes/pixel) * hard value * soft scale``, the soft scale
(``@Sens. Zsens: V 34.55 nm/V``) looked up in the other sections, as Gwyddion's ``nanoscope``
module computes them; raw data are little-endian int16, int32 from version 9.2 on (Gwyddion's
rule), checked against ``Data length``.

Row order: the file stores the bottom line of the image first (Gwyddion flips it to its top-down
order), so rows are returned as stored and increasing row = increasing y.

Parsed here rather than through pySPM/AFMReader: the format is a text header and integers, and
those libraries return one channel at a time without units or direction (and AFMReader brings
~600 MB of dependencies and a 5 s import).
"""

from __future__ import annotations

import os
import re

import numpy as np

from napari_mmrecon.io.instrument import (MAX_CHANNEL_PIXELS, InstrumentChannel, InstrumentError, InstrumentFile,
                                          checked_channel_data)
from napari_mmrecon.io.instrument._units import missing_items, quantity_of, scaled, si_unit

__all__ = ["accepts", "read"]

_SIGNATURES = (b"\\*File list", b"\\\\*File list", b"?*File list", b"\\*EC File list")
"""How an image file's header starts (``?`` seen after text-mode transfers, as Gwyddion notes;
``EC`` in electrochemistry files)."""

_HEADER_END = "\\*File list end"
MAX_HEADER_BYTES = 2**20
"""A header longer than this (1 MiB; real ones are 8-80 kiB) is not a NanoScope header."""

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CIAO_VALUE = re.compile(rf"^V\s*(?:\[(?P<soft>[^\]]*)\])?\s*(?:\((?P<lsb>{_NUMBER})\s*(?P<lsb_unit>[^)]*)\))?\s*"
                         rf"(?P<hard>{_NUMBER})\s*(?P<unit>\S*)\s*$")
"""``V [Sens. Zsens] (0.0050354 V/LSB) 329.995 V``: soft-scale name, LSB value, hard value, unit."""
_SOFT_VALUE = re.compile(rf"^V\s+(?P<value>{_NUMBER})\s*(?P<unit>\S*)\s*$")
"""``V 34.55678 nm/V``: a soft scale's value and unit."""



def accepts(path) -> bool:
    """Whether ``path`` starts like a NanoScope image file's header (first 16 bytes)."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    return head.startswith(_SIGNATURES)


def read(path) -> InstrumentFile:
    """Read a NanoScope image file.

    Returns
    -------
    InstrumentFile
        One channel per ``Ciao image list``: ``(Number of lines, Samps/line)`` float64 in SI
        (height m, phase deg, volts V), pixel size ``(dy, dx)`` in m from ``Scan Size`` (with
        Gwyddion's rule for non-square aspect ratios), direction from ``Line Direction``
        (Trace = forward). Lift height only when the file's lift/interleave mode is on (from
        ``@Lift Scan Height`` through its soft scale), spring constant (N/m) from
        ``\\Spring Constant`` where a section has it (force lists do).
        ``header`` holds every section's keys and values as text.
    """
    name = str(path)
    size = os.path.getsize(name)
    with open(name, "rb") as fh:
        head = fh.read(MAX_HEADER_BYTES)
    if not head.startswith(_SIGNATURES):
        what = "force-curve files are not read" if b"Force file list" in head[:32] else "no '\\*File list' header"
        raise InstrumentError(f"{name}: not a NanoScope image file ({what})")
    text = head.decode("latin-1")
    end = text.find(_HEADER_END)
    if end < 0:
        raise InstrumentError(f"{name}: the NanoScope header has no '\\*File list end' (truncated or damaged)")
    sections = _sections(text[:end])
    version = _version(sections)
    images = [values for title, values in sections if title == "ciao image list"]
    if not images:
        raise InstrumentError(f"{name}: the NanoScope header lists no image ('\\*Ciao image list')")
    scan_list = next((values for title, values in sections if title == "ciao scan list"), {})
    channels = []
    for index, image in enumerate(images):
        channels.append(_channel(name, size, image, index, sections, scan_list, version))
    _unique_names(channels)
    lift_height, lift_note = _lift_height(sections, scan_list, channels)
    cantilever = {}
    spring = _float(_lookup(sections, "spring constant"))  # "\\Spring Constant: 0.4" (N/m)
    if spring is not None and spring > 0:
        cantilever["k"] = spring
    pixel_size = None if any(c.pixel_size is None for c in channels) else channels[0].pixel_size
    missing = [lift_note if item == "lift height" else item for item in missing_items(pixel_size, lift_height,
                                                                                         cantilever)]
    header = {_section_key(title, i, sections): dict(values) for i, (title, values) in enumerate(sections)}
    return InstrumentFile(path=name, format="nanoscope", channels=channels, lift_height=lift_height,
                          cantilever=cantilever, missing=missing, header=header)


def _sections(text: str) -> list[tuple[str, dict]]:
    """``[(section title lower-cased, {key lower-cased: value})]`` in file order."""
    sections: list[tuple[str, dict]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("\\\\"):
            line = line[1:]
        if line.startswith("?*"):
            line = "\\" + line[1:]
        if line.startswith("\\*"):
            sections.append((line[2:].strip().lower(), {}))
        elif line.startswith("\\") and sections:
            key, sep, value = line[1:].partition(":")
            if key.startswith("@"):  # "@2:Z scale: ..." holds a group number before the key
                group, sep2, rest = value.partition(":")
                if group.strip() and key[1:].isdigit() and sep2:
                    key, value = f"@{key[1:]}:{group}", rest
            if sep:
                sections[-1][1][key.strip().lower()] = value.strip()
    return sections


def _version(sections) -> int:
    """The header's ``\\Version`` (hex) from the File list, 0 when absent."""
    for title, values in sections:
        if title in ("file list", "ec file list") and "version" in values:
            try:
                return int(values["version"], 16)
            except ValueError:
                return 0
    return 0


def _channel(name, size, image, index, sections, scan_list, version) -> InstrumentChannel:
    """One ``Ciao image list`` section as a scaled channel."""
    label = _channel_label(image, index)
    nx, ny = _int(image.get("samps/line")), _int(image.get("number of lines"))
    offset, length = _int(image.get("data offset")), _int(image.get("data length"))
    if None in (nx, ny, offset, length) or nx < 2 or ny < 2 or offset < 0:
        raise InstrumentError(f"{name}: channel {label!r} lacks a valid Samps/line, Number of lines, "
                              "Data offset or Data length")
    if nx * ny > MAX_CHANNEL_PIXELS:
        raise InstrumentError(f"{name}: channel {label!r} declares {ny} x {nx} pixels (damaged header)")
    itemsize = 4 if version >= 0x09200000 else 2
    rows = _rows(name, label, image, nx, ny, itemsize, length)
    nbytes = nx * rows * itemsize
    if offset + nbytes > size:
        raise InstrumentError(f"{name}: channel {label!r} runs past the end of the file (truncated: "
                              f"{size} bytes, needs {offset + nbytes})")
    scale_bytes = _int(image.get("bytes/pixel")) or itemsize
    if scale_bytes not in (1, 2, 4):
        raise InstrumentError(f"{name}: channel {label!r} has Bytes/pixel {scale_bytes} (damaged header)")
    factor, unit, scale_note = _z_scale(image, sections, scale_bytes)
    with open(name, "rb") as fh:
        fh.seek(offset)
        raw = np.fromfile(fh, dtype="<i4" if itemsize == 4 else "<i2", count=nx * rows)
    data = checked_channel_data(name, label, scaled(name, label, raw, factor), (rows, nx))
    metadata = {key: image[key] for key in ("scan line", "frame direction", "line direction", "@2:z scale",
                                            "@2:z offset", "@2:image data", "plane fit", "data type")
                if key in image}
    if scale_note:
        metadata["scale_note"] = scale_note
    if rows < ny:
        metadata["partial_frame"] = (f"{rows} of {ny} lines (scan stopped early); rows as stored, their place "
                                     "in the frame is not in the header")
    direction = {"trace": "forward", "retrace": "backward"}.get(image.get("line direction", "").lower(), "")
    data_type = _bracket(image.get("@2:image data", ""))
    return InstrumentChannel(name=label, data=data, unit=unit, pixel_size=_pixel_size(image, scan_list, nx, ny),
                             direction=direction, quantity=quantity_of(f"{label} {data_type}", unit), metadata=metadata)


def _rows(name, label, image, nx, ny, itemsize, length) -> int:
    """Lines the channel holds: ``Number of lines``, or fewer for a scan stopped early, where
    ``Data length`` holds whole lines and ``Valid data len Y`` says how many (as pySPM reads it)."""
    if length >= nx * ny * itemsize:
        return ny
    rows, rest = divmod(length, nx * itemsize)
    if rest == 0 and 2 <= rows and _int(image.get("valid data len y")) == rows:
        return rows
    raise InstrumentError(f"{name}: channel {label!r} has Data length {length}, {ny} x {nx} pixels of "
                          f"{itemsize} bytes need {nx * ny * itemsize}")


def _channel_label(image, index) -> str:
    """The channel's name: the quoted name of ``@2:Image Data`` (else its bracket or value)."""
    value = image.get("@2:image data") or image.get("image data") or ""
    quoted = re.search(r'"([^"]*)"', value)
    if quoted and quoted.group(1).strip():
        return quoted.group(1).strip()
    return _bracket(value) or value.strip() or f"Channel {index + 1}"


def _z_scale(image, sections, scale_bytes) -> tuple[float, str, str]:
    """``(factor per raw count, SI unit, note)`` from the ``Z scale`` chain."""
    text = image.get("@2:z scale") or image.get("z scale")
    match = _CIAO_VALUE.match(text or "")
    if match is None:
        return 1.0, "", "no Z scale in the header: raw counts"
    per_count = float(match["hard"]) / 2.0 ** (8 * scale_bytes)
    unit = match["unit"]
    soft = (match["soft"] or "").strip()
    if soft:
        soft_match = _SOFT_VALUE.match(_lookup(sections, f"@{soft}".lower()) or "")
        if soft_match is None:
            return per_count, "", f"soft scale {soft!r} not in the header: values in {unit or 'hard units'}"
        per_count *= float(soft_match["value"])
        soft_unit = soft_match["unit"]
        if soft_unit:
            numerator, _, denominator = soft_unit.partition("/")
            (hard_si, hard_factor), (denominator_si, denominator_factor) = si_unit(unit), si_unit(denominator)
            if hard_si and hard_si == denominator_si:
                per_count *= hard_factor / denominator_factor
            unit = numerator
    si, factor = si_unit(unit)
    if not si:
        return per_count, "", f"unit {unit!r} not understood: values as the file scales them"
    return per_count * factor, si, ""


def _pixel_size(image, scan_list, nx, ny) -> tuple[float, float] | None:
    """``(dy, dx)`` in metres from ``Scan Size`` (one or two numbers, then a unit)."""
    parts = (image.get("scan size") or scan_list.get("scan size") or "").split()
    numbers = []
    for part in parts:
        value = _float(part)
        if value is None:
            break
        numbers.append(abs(value))
    unit = parts[len(numbers)] if len(parts) > len(numbers) else ""
    si, factor = si_unit(unit)
    if not numbers or si != "m" or not numbers[0] > 0:
        return None
    xreal = numbers[0] * factor
    yreal = (numbers[1] if len(numbers) > 1 and numbers[1] > 0 else numbers[0]) * factor
    if _nonsquare(image):  # Gwyddion's rule (nanoscope.c, hash_to_data_field)
        if _nonsquare(scan_list):
            yreal *= ny / nx
        else:
            yreal *= ny / (_int(scan_list.get("lines")) or ny)
    return yreal / ny, xreal / nx


def _nonsquare(values) -> bool:
    ratio = values.get("aspect ratio", "1:1")
    number = _float(ratio.split(":")[0]) if ratio != "1:1" else 1.0
    return number is not None and number > 0 and number != 1.0


def _lift_height(sections, scan_list, channels) -> tuple[float | None, str]:
    """``(lift height in m, note for missing)``: from ``@Lift Scan Height`` when lift or interleave
    mode is on (``\\Lift Mode`` / ``\\Interleave Mode``, in whichever section holds them: NanoScope
    5 to 9 write them in the ``Fast Scan list``), or a channel is an interleave scan line; else None
    with the reason."""
    modes = [(_lookup(sections, key) or "").lower() for key in ("lift mode", "interleave mode")]
    interleaved = any(c.metadata.get("scan line", "").lower().startswith("interleave") for c in channels)
    if not interleaved and all(mode in ("", "disabled") for mode in modes):
        return None, "lift height (lift/interleave mode is off in this file)"
    match = _CIAO_VALUE.match(scan_list.get("@lift scan height", ""))
    if match is None or not match["soft"]:
        return None, "lift height (no '@Lift Scan Height' in the header)"
    soft = _SOFT_VALUE.match(_lookup(sections, f"@{match['soft'].strip()}".lower()) or "")
    si, factor = si_unit(soft["unit"].partition("/")[0]) if soft else ("", 1.0)
    if si != "m":
        return None, "lift height (its scale is not a length)"
    return abs(float(match["hard"]) * float(soft["value"]) * factor), ""


def _lookup(sections, key):
    """The first value of ``key`` in any section."""
    return next((values[key] for _, values in sections if key in values), None)


def _unique_names(channels) -> None:
    """Tell channels of the same name apart by direction, then by number."""
    for channel in channels:
        same = [c for c in channels if c.name == channel.name]
        if len(same) > 1 and channel.direction == "backward":
            channel.name = f"{channel.name} (retrace)"
    seen: dict[str, int] = {}
    for channel in channels:
        seen[channel.name] = seen.get(channel.name, 0) + 1
        if seen[channel.name] > 1:
            channel.name = f"{channel.name} {seen[channel.name]}"


def _section_key(title, index, sections) -> str:
    repeated = sum(1 for t, _ in sections if t == title) > 1
    return f"{title} {sum(1 for t, _ in sections[:index] if t == title) + 1}" if repeated else title


def _bracket(value: str) -> str:
    found = re.search(r"\[([^\]]*)\]", value)
    return found.group(1).strip() if found else ""



def _int(value) -> int | None:
    number = _float(str(value).split()[0]) if value and str(value).split() else None
    return int(number) if number is not None and number == int(number) else None


def _float(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None
