"""JPK Instruments image files (``.jpk``, and QI maps saved as ``.jpk``): every channel, calibrated.

A JPK image is a TIFF: page 0 is an 8-bit thumbnail whose private tags hold the scan grid
(32832-32839: origin, ``Grid-uLength``/``vLength`` in m, angle, reflect flag, ``Grid-iLength``/
``jLength`` in pixels) and the instrument's settings as ``key : value`` text; each further page
is one channel, tagged with its name (32848), trace/retrace (32849), display name (32850) and
calibration slots: 32896 the number of slots, 32897 the default slot, and slot ``k`` in the 48
tags from ``32912 + 48 k`` (name, type, parent; +18 unit, +19 scaling type, +20 multiplier,
+21 offset). The default slot's ``LinearScaling`` gives ``value = raw * multiplier + offset``
(``NullScaling``: raw), as JPK's image specification and AFMReader's ``jpk`` module read them.

Row order: the TIFF's row 0 is the bottom line of the scan unless the grid's reflect flag is set
(Gwyddion's ``jpkscan`` reads rows bottom-up accordingly); rows are returned so that increasing
row = increasing y. Cantilever spring constant, resonance frequency and Q come from the
``cantilever-calibration-info`` settings where the file holds them.

Read with tifffile (already a dependency, handles the strips and typed tags); AFMReader's
reader loads one channel at a time and brings ~600 MB of dependencies.
"""

from __future__ import annotations

import math

import numpy as np

from napari_mmrecon.io.instrument import (MAX_CHANNEL_PIXELS, InstrumentChannel, InstrumentError, InstrumentFile,
                                          checked_channel_data)
from napari_mmrecon.io.instrument._units import missing_items, quantity_of, scaled, si_unit, value_with_unit
from napari_mmrecon.io.instrument._tifftags import first_ifd

__all__ = ["accepts", "read"]

TAG_X0, TAG_Y0, TAG_ULENGTH, TAG_VLENGTH, TAG_ANGLE, TAG_REFLECT, TAG_ILENGTH, TAG_JLENGTH = range(32832, 32840)
TAG_CHANNEL, TAG_RETRACE, TAG_FANCY_NAME = 32848, 32849, 32850
TAG_NSLOTS, TAG_DEFAULT_SLOT, TAG_FIRST_SLOT, SLOT_SIZE = 32896, 32897, 32912, 48

_CANTILEVER = {"k": "cantilever-calibration-info.spring-constant", "f0": "cantilever-calibration-info.frequency",
               "Q": "cantilever-calibration-info.qFactor"}
"""Cantilever value -> the settings key JPK writes it under (value and unit)."""



def accepts(path) -> bool:
    """Whether ``path`` is a TIFF whose first IFD holds JPK's grid tags (``Grid-uLength`` 32834
    and ``Grid-vLength`` 32835, the test Gwyddion's jpkscan uses); reads that IFD only."""
    ifd = first_ifd(path)
    return ifd is not None and TAG_ULENGTH in ifd[1] and TAG_VLENGTH in ifd[1]


def read(path) -> InstrumentFile:
    """Read a JPK image file.

    Returns
    -------
    InstrumentFile
        One channel per data page: ``(jLength, iLength)`` float64 in SI units (height m, force
        N, volts V, phase deg), named by JPK's display name (``" (retrace)"`` appended for
        retrace), pixel size ``(dy, dx)`` = ``(vLength / rows, uLength / columns)`` in m,
        direction trace = forward. ``cantilever`` holds k (N/m), f0 (Hz), Q where calibrated.
        ``header`` holds the grid and the settings text as ``key: value``.
    """
    import tifffile

    from napari_mmrecon.io.tiff import _tifffile_errors

    name = str(path)
    if not accepts(name):
        raise InstrumentError(f"{name}: not a JPK image file (no JPK grid tags in the first TIFF directory)")
    with _tifffile_errors() as errors, tifffile.TiffFile(name) as tif:
        pages = list(tif.pages)
        grid = {tag: _tag(pages[0], tag) for tag in range(TAG_X0, TAG_JLENGTH + 1)}
        settings = _settings(pages[0])
        channels = [_channel(name, page, grid) for page in pages[1:] if TAG_CHANNEL in page.tags]
    if errors:
        raise InstrumentError(f"{name}: corrupt or truncated JPK file ({errors[0]})")
    if not channels:
        raise InstrumentError(f"{name}: the JPK file holds no channel pages")
    _unique_names(channels)
    cantilever = {}
    for key, setting in _CANTILEVER.items():
        value = value_with_unit(settings.get(setting, ""))
        if value is not None and value > 0:
            cantilever[key] = value
    pixel_size = None if any(c.pixel_size is None for c in channels) else channels[0].pixel_size
    missing = missing_items(pixel_size, None, cantilever)
    header = {"grid": {str(tag): value for tag, value in grid.items() if isinstance(value, (bool, int, float, str))},
              "settings": settings}
    return InstrumentFile(path=name, format="jpk", channels=channels, cantilever=cantilever, missing=missing,
                          header=header)


def _channel(name, page, grid) -> InstrumentChannel:
    """One data page as a calibrated channel."""
    internal = str(_tag(page, TAG_CHANNEL))
    label = str(_tag(page, TAG_FANCY_NAME) or internal)
    if len(page.shape) != 2 or math.prod(page.shape) > MAX_CHANNEL_PIXELS:
        raise InstrumentError(f"{name}: channel {label!r} has shape {page.shape} (not a 2-D image or damaged)")
    multiplier, offset, unit, slot = _calibration(name, page, label)
    si, factor = si_unit(unit)
    values = checked_channel_data(name, label, page.asarray(), page.shape)
    data = scaled(name, label, values, multiplier * factor, offset * factor)
    if grid[TAG_REFLECT]:
        data = data[::-1].copy()
    ulength, vlength = grid[TAG_ULENGTH], grid[TAG_VLENGTH]
    ny, nx = data.shape
    pixel_size = None
    if _positive(ulength) and _positive(vlength):
        pixel_size = (abs(float(vlength)) / ny, abs(float(ulength)) / nx)
    retrace = bool(_tag(page, TAG_RETRACE))
    metadata = {"jpk_channel": internal, "calibration_slot": slot, "file_unit": unit}
    return InstrumentChannel(name=f"{label} (retrace)" if retrace else label, data=data, unit=si,
                             pixel_size=pixel_size, direction="backward" if retrace else "forward",
                             quantity=quantity_of(f"{internal} {label}", si), metadata=metadata)


def _calibration(name, page, label) -> tuple[float, float, str, str]:
    """``(multiplier, offset, unit, slot name)`` of the page's default calibration slot."""
    default = _tag(page, TAG_DEFAULT_SLOT)
    count = _tag(page, TAG_NSLOTS)
    if not isinstance(count, int) or not 0 < count <= 64 or default is None:
        raise InstrumentError(f"{name}: channel {label!r} has no valid calibration slots (tags 32896/32897)")
    for k in range(count):
        base = TAG_FIRST_SLOT + SLOT_SIZE * k
        if _tag(page, base) != default:
            continue
        scaling = _tag(page, base + 19)
        if scaling == "NullScaling":
            return 1.0, 0.0, str(_tag(page, base + 18) or ""), str(default)
        multiplier, offset = _tag(page, base + 20), _tag(page, base + 21)
        if scaling != "LinearScaling" or not all(isinstance(v, float) and math.isfinite(v) for v in (multiplier,
                                                                                                        offset)):
            raise InstrumentError(f"{name}: channel {label!r}: calibration slot {default!r} has scaling "
                                  f"{scaling!r} (LinearScaling with a multiplier and offset expected)")
        return multiplier, offset, str(_tag(page, base + 18) or ""), str(default)
    raise InstrumentError(f"{name}: channel {label!r}: default calibration slot {default!r} is not among its "
                          f"{count} slots")


def _settings(page) -> dict:
    """Every ``key : value`` line of the page's text tags (JPK's instrument settings)."""
    settings = {}
    for tag in page.tags.values():
        if tag.code >= 32768 and isinstance(tag.value, str) and " : " in tag.value:
            for line in tag.value.splitlines():
                key, sep, value = line.partition(" : ")
                if sep:
                    settings[key.strip()] = value.strip()
    return settings


def _tag(page, code):
    """A tag's value, a 1-element tuple unpacked; None when absent."""
    tag = page.tags.get(code)
    if tag is None:
        return None
    value = tag.value
    if isinstance(value, tuple) and len(value) == 1:
        value = value[0]
    return value.item() if isinstance(value, np.generic) else value


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value != 0


def _unique_names(channels) -> None:
    """Number channels whose names repeat (JPK QI files hold e.g. two measured-height pages)."""
    seen: dict[str, int] = {}
    for channel in channels:
        seen[channel.name] = seen.get(channel.name, 0) + 1
        if seen[channel.name] > 1:
            channel.name = f"{channel.name} {seen[channel.name]}"

