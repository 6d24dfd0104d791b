"""Unit strings as instruments write them -> (factor, SI unit), and the scaling of raw counts, for the
NanoScope, JPK and Park readers.

``to_si("nm") == (1e-9, "m")``: multiply a value in the written unit by the factor to get it in
the SI unit. Phases go to degrees (``"deg"``), the unit the analysis uses for MFM phase.
"""

from __future__ import annotations

import math

import numpy as np

_PREFIXES = {"": 1.0, "p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "~": 1e-6, "m": 1e-3,
             "k": 1e3, "M": 1e6, "G": 1e9}
"""SI prefixes; ``~`` is NanoScope's micro (its headers are 8-bit text without a mu)."""

_BASE = {"m": "m", "V": "V", "A": "A", "N": "N", "Hz": "Hz", "N/m": "N/m", "s": "s", "Pa": "Pa"}
"""SI units a channel or parameter may carry, after the prefix."""

_ANGLES = {"deg": 1.0, "°": 1.0, "º": 1.0, "degree": 1.0, "degrees": 1.0, "rad": 180.0 / math.pi}
"""Angle units -> factor to degrees (``º`` is NanoScope's Latin-1 byte 0xBA)."""


def to_si(unit: str) -> tuple[float, str] | None:
    """``(factor, si_unit)`` for a written unit (``"nm"``, ``"~m"``, ``"mV"``, ``"kHz"``, ``"mN/m"``,
    ``"deg"``, ``"rad"``...), or None when the unit is not one of these."""
    text = str(unit).strip()
    if text in _ANGLES:
        return _ANGLES[text], "deg"
    for base in sorted(_BASE, key=len, reverse=True):
        if text.endswith(base):
            prefix = text[: len(text) - len(base)]
            if prefix in _PREFIXES:
                return _PREFIXES[prefix], _BASE[base]
    return None


def value_with_unit(text: str) -> float | None:
    """A ``"27.78 kHz"`` / ``"98.4935 mN/m"`` string as an SI float, or None when it does not parse."""
    parts = str(text).split()
    if not parts:
        return None
    try:
        number = float(parts[0])
    except ValueError:
        return None
    conversion = to_si(parts[1]) if len(parts) > 1 else (1.0, "")
    if conversion is None or not math.isfinite(number):
        return None
    return number * conversion[0]


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
