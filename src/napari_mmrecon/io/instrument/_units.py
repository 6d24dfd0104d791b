"""Units and quantities of instrument channels: a unit string with an SI prefix -> the SI unit and
the factor to it, and a channel name -> the normalized quantity (``"phase"``, ``"height"``...)."""

from __future__ import annotations

import math
import re

import numpy as np

_PREFIXES = {"": 1.0, "f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "\u00b5": 1e-6, "\u03bc": 1e-6, "m": 1e-3,
             "c": 1e-2, "k": 1e3, "M": 1e6, "G": 1e9, "~": 1e-6}
"""SI prefix -> factor (micro written as u, the micro sign, the Greek mu, or ``~`` as NanoScope's
8-bit headers write it)."""

_BASE_UNITS = {"m": ("m", 1.0), "Hz": ("Hz", 1.0), "V": ("V", 1.0), "A": ("A", 1.0), "N": ("N", 1.0),
               "N/m": ("N/m", 1.0), "deg": ("deg", 1.0), "rad": ("deg", 180.0 / math.pi), "s": ("s", 1.0)}
"""Unit without prefix -> (the SI unit the readers return, factor to it); phases are returned in degrees."""

_DEGREE_SPELLINGS = {"\u00b0": "deg", "\u00ba": "deg", "degree": "deg", "degrees": "deg"}
"""``\u00ba`` (ordinal indicator, Latin-1 0xBA) is the degree sign of NanoScope headers."""


def si_unit(unit: str) -> tuple[str, float]:
    """``(si, factor)`` such that ``value * factor`` is in ``si`` (``"nm"`` -> ``("m", 1e-9)``,
    ``"rad"`` -> ``("deg", 57.29...)``); ``("", 1.0)`` for an empty or unknown unit, so an unknown
    unit is reported as unknown rather than mis-scaled."""
    text = _DEGREE_SPELLINGS.get(unit.strip(), unit.strip())
    if text in _BASE_UNITS:
        return _BASE_UNITS[text]
    if len(text) > 1 and text[0] in _PREFIXES and text[1:] in _BASE_UNITS and text[1:] not in ("deg", "rad"):
        si, factor = _BASE_UNITS[text[1:]]
        return si, factor * _PREFIXES[text[0]]
    return "", 1.0


def value_with_unit(text: str) -> float | None:
    """A ``"27.78 kHz"`` / ``"98.4935 mN/m"`` string as an SI float, or None when the number or
    the unit does not parse."""
    parts = str(text).split()
    try:
        number = float(parts[0]) if parts else math.nan
    except ValueError:
        return None
    si, factor = si_unit(parts[1]) if len(parts) > 1 else ("", 1.0)
    if not math.isfinite(number) or (len(parts) > 1 and not si):
        return None
    return number * factor


def scaled(path, label: str, raw, factor: float, offset: float = 0.0) -> np.ndarray:
    """``raw * factor + offset`` as float64, or InstrumentError naming the file and channel when a
    damaged scale makes a value overflow to infinity."""
    from napari_mmrecon.io.instrument import InstrumentError

    with np.errstate(over="ignore", invalid="ignore"):
        data = np.asarray(raw, dtype=np.float64) * factor + offset
    if np.isinf(data).any() or not (math.isfinite(factor) and math.isfinite(offset)):
        raise InstrumentError(f"{path}: channel {label!r}: its scale ({factor:g}, offset {offset:g}) overflows "
                              "(damaged header)")
    return data


_QUANTITY_PATTERNS = [
    ("frequency_shift", re.compile(r"freq|\bdf\b|delta_?f", re.IGNORECASE), ("Hz", "")),
    ("phase", re.compile(r"phase", re.IGNORECASE), ("deg", "")),
    ("amplitude", re.compile(r"amp", re.IGNORECASE), ("m", "V", "")),
    ("height", re.compile(r"height|topo|^z(\b|_|sensor)|z[ _-]?sensor", re.IGNORECASE), ("m", "")),
]
"""(quantity, channel-name pattern, units the quantity may have) in order of precedence."""


def quantity_of(name: str, unit: str) -> str:
    """The normalized quantity a channel called ``name`` with SI ``unit`` measures: ``"phase"``,
    ``"frequency_shift"``, ``"amplitude"``, ``"height"``, or ``""`` when neither tells."""
    for quantity, pattern, units in _QUANTITY_PATTERNS:
        if pattern.search(name) and unit in units:
            return quantity
    return ""


def scan_direction(name: str) -> str:
    """``"backward"`` for a retrace / backward channel name, ``"forward"`` for a trace / forward one,
    ``""`` when the name does not say."""
    lowered = name.lower()
    if "retrace" in lowered or "backward" in lowered or lowered.endswith(("_bwd", " bwd")):
        return "backward"
    if "trace" in lowered or "forward" in lowered or lowered.endswith(("_fwd", " fwd")):
        return "forward"
    return ""


def missing_items(pixel_size, lift_height, cantilever: dict) -> list[str]:
    """In words, what a physical analysis needs that a file did not give."""
    missing = [] if pixel_size is not None else ["pixel size"]
    if lift_height is None:
        missing.append("lift height")
    for key, words in (("k", "cantilever spring constant k"), ("f0", "cantilever resonance frequency f0"),
                       ("Q", "cantilever quality factor Q")):
        if key not in cantilever:
            missing.append(words)
    return missing
