"""Instrument (SPM) files: the channels an MFM or AFM writes, with their physical scale.

``read_instrument(path)`` returns an :class:`InstrumentFile`: every 2-D image channel the file
holds (MFM phase, frequency shift, amplitude, topography...) as :class:`InstrumentChannel`, in SI
units where the file states them, with the pixel size, the scan direction, and the lift height and
cantilever values where the file holds them. What the file does not say is listed in
``missing`` rather than guessed.

One module per format (``gwy``, ``ibw``, ``sxm``, ``nanoscope``, ``jpk``, ``park``), each with
``accepts(path) -> bool`` (a peek at the first bytes, no heavy import, for the npe2 reader entry)
and ``read(path) -> InstrumentFile``. Importing this package imports no torch and no reading
library; a format module imports its library when it reads.

Every failure to read (corrupt, truncated, unsupported, a library missing) is an
:class:`InstrumentError` whose message names the file and the problem.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["INSTRUMENT_SUFFIXES", "InstrumentChannel", "InstrumentError", "InstrumentFile", "accepts_instrument",
           "read_instrument"]

FORMAT_MODULES = {".gwy": "gwy", ".ibw": "ibw", ".sxm": "sxm", ".spm": "nanoscope", ".jpk": "jpk",
                  ".tif": "park", ".tiff": "park"}
"""File suffix (lower case) -> format module of this package. NanoScope's numbered files
(``.000``, ``.001``, ...) go to ``nanoscope`` as well (:func:`format_module`)."""

INSTRUMENT_SUFFIXES = tuple(FORMAT_MODULES) + (".000",)
"""The suffixes of instrument files (NanoScope numbers its files ``.000`` to ``.999``)."""

MAX_CHANNEL_PIXELS = 2**26
"""Largest channel a reader loads (64 Mi pixels); a larger declared size is a damaged header."""


class InstrumentError(ValueError):
    """An instrument file that cannot be read (corrupt, truncated, unsupported); the message names
    the file and the problem."""


@dataclass
class InstrumentChannel:
    """One image channel of an instrument file.

    Attributes
    ----------
    name : str
        The channel's name as the instrument wrote it (``"MFM phase"``, ``"Height"``, ``"Phase"``...).
    data : (ny, nx) float64 ndarray
        The values in ``unit``; row 0 is the first row in y (the image's bottom in the microscope's
        frame when ``origin_lower`` is True; readers flip so that increasing row = increasing y).
    unit : str
        SI unit of ``data`` after conversion (``"m"``, ``"deg"``, ``"Hz"``, ``"V"``, ``"N/m"``...),
        or ``""`` when the file does not state it.
    pixel_size : (dy, dx) in metres, or None when the file does not state the scan size.
    direction : str
        ``"forward"`` (trace), ``"backward"`` (retrace) or ``""`` when the file does not say.
    quantity : str
        What the channel measures, normalized: ``"phase"``, ``"frequency_shift"``, ``"amplitude"``,
        ``"height"``, ``"force_gradient"`` or ``""``.
    metadata : dict
        Everything else the file says of this channel, JSON-serialisable (numbers in SI).
    """

    name: str
    data: np.ndarray
    unit: str = ""
    pixel_size: tuple[float, float] | None = None
    direction: str = ""
    quantity: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass
class InstrumentFile:
    """The contents of one instrument file.

    Attributes
    ----------
    path : str
    format : str
        ``"gwy"``, ``"ibw"``, ``"sxm"``, ``"nanoscope"``, ``"jpk"`` or ``"park"``.
    channels : list of InstrumentChannel
    lift_height : float or None
        MFM lift (interleave) height in metres, where the file holds it.
    cantilever : dict
        ``k`` (N/m), ``f0`` (Hz), ``Q`` where the file holds them.
    missing : list of str
        What a physical analysis needs and this file does not say (``"pixel size"``,
        ``"lift height"``, ``"spring constant k"``...), in words for the user.
    header : dict
        The file's own header, JSON-serialisable, for the record.
    """

    path: str
    format: str
    channels: list
    lift_height: float | None = None
    cantilever: dict = field(default_factory=dict)
    missing: list = field(default_factory=list)
    header: dict = field(default_factory=dict)

    def channel(self, name: str) -> InstrumentChannel:
        """The channel called ``name`` (case-insensitive; a unique prefix or a quantity such as
        ``"phase"`` also matches). ``InstrumentError`` naming the channels there are otherwise."""
        wanted = name.strip().lower()
        for match in (lambda c: c.name.lower() == wanted, lambda c: c.name.lower().startswith(wanted),
                      lambda c: c.quantity == wanted, lambda c: wanted in c.name.lower()):
            found = [c for c in self.channels if match(c)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                names = ", ".join(repr(c.name) for c in found)
                raise InstrumentError(f"{self.path}: channel {name!r} is ambiguous: {names}")
        names = ", ".join(repr(c.name) for c in self.channels) or "none"
        raise InstrumentError(f"{self.path}: no channel {name!r}; the file has {names}")


def format_module(path):
    """The format module for ``path`` by its suffix, or None."""
    suffix = Path(str(path)).suffix.lower()
    name = FORMAT_MODULES.get(suffix) or ("nanoscope" if suffix[1:].isdigit() and len(suffix) == 4 else None)
    return None if name is None else importlib.import_module(f"{__name__}.{name}")


def accepts_instrument(path) -> bool:
    """Whether an instrument reader of this package reads ``path``, from its first bytes alone."""
    module = format_module(path)
    try:
        return bool(module is not None and module.accepts(path))
    except OSError:
        return False


def read_instrument(path) -> InstrumentFile:
    """Read an instrument file (format by suffix and signature). ``InstrumentError`` names the file
    and the problem for anything that cannot be read."""
    module = format_module(path)
    if module is None:
        raise InstrumentError(f"{path}: not an instrument file this plugin reads (suffix "
                              f"{Path(str(path)).suffix or 'none'}; known: {', '.join(sorted(set(FORMAT_MODULES)))}, .000)")
    if not Path(str(path)).is_file():
        raise InstrumentError(f"{path}: no such file")
    try:
        contents = module.read(path)
        for channel in contents.channels:  # row flips leave views with negative strides
            channel.data = np.ascontiguousarray(channel.data, dtype=np.float64)
        return contents
    except InstrumentError:
        raise
    except MemoryError:
        raise InstrumentError(f"{path}: the header declares a size too large to load (damaged)") from None
    except Exception as exc:  # a reading library's own error on a damaged file
        raise InstrumentError(f"{path}: cannot read this {module.__name__.rsplit('.', 1)[-1]} file "
                              f"({type(exc).__name__}: {exc})") from None


def checked_channel_data(path, name: str, values, shape=None) -> np.ndarray:
    """``values`` as a finite-or-NaN float64 ``(ny, nx)`` array, or ``InstrumentError`` naming the
    file and channel (wrong dimensions, too large, not numbers)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InstrumentError(f"{path}: channel {name!r} holds no numbers ({exc})") from None
    if shape is not None:
        if int(np.prod(shape)) != arr.size:
            raise InstrumentError(f"{path}: channel {name!r} holds {arr.size} values, the header says "
                                  f"{shape[0]} x {shape[1]} (truncated or damaged)")
        arr = arr.reshape(shape)
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise InstrumentError(f"{path}: channel {name!r} is not a 2-D image (shape {arr.shape})")
    if arr.size > MAX_CHANNEL_PIXELS:
        raise InstrumentError(f"{path}: channel {name!r} declares {arr.shape} pixels (damaged header)")
    return arr
