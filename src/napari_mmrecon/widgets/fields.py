"""Parsing what users type into text fields, with messages that name the field and its unit."""

from __future__ import annotations

import math


def parse_number(text: str, label: str, positive: bool = True) -> float:
    """A finite number (``1e-16`` notation allowed); > 0 if ``positive``; else ``ValueError``."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError(f"{label} must be a number, got {text!r}") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{label} must be a {'positive ' if positive else ''}finite number, got {text!r}")
    return value


def parse_numbers(text: str, label: str) -> list[float]:
    """One or more positive numbers separated by commas or blanks, e.g. ``"10, 20"``."""
    items = str(text).replace(",", " ").split()
    if not items:
        raise ValueError(f"{label} needs at least one value")
    return [parse_number(item, label) for item in items]
