"""The input fields of declared options (``field_for``) and parsing what users type into text
fields, with messages that name the field and its unit."""

from __future__ import annotations

import math

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, SpinBox

from ..workflows.options import Option


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


# ----------------------------------------------------------------------------- fields of declared options

SPIN_LIMIT = 1e7
"""Float spin boxes take any value within +-this (display units), not just the declared range: a
spin box clamps what is typed without a word, while the jobs' checks refuse an impossible value
with a message. The range is in the tooltip."""
INT_LIMIT = 2**31 - 1
"""Largest value of an integer spin box (Qt's int)."""
_PRETTY = (("^2", "²"), ("^3", "³"), (" ", "·"))


def unit_text(option: Option) -> str:
    """The unit a field shows: the display unit, else the SI one, with ² ³ and · (``"A·m²"``)."""
    unit = option.display_unit or option.unit
    for plain, pretty in _PRETTY:
        unit = unit.replace(plain, pretty)
    return unit


def shown(option: Option, value: float) -> float:
    """An SI value of ``option`` in the unit its field shows."""
    return value * option.display_scale


def si(option: Option, value: float) -> float:
    """A value shown in ``option``'s field in SI (``shown``'s inverse, without float dust:
    0.8 MJ/m³ is 8e5 J/m³, not 800000.0000000001)."""
    return float(f"{value / option.display_scale:.12g}")


def _text(number: float) -> str:
    """A number as typed: ``1e-16``, ``0.0001``, ``75``."""
    return f"{number:.6g}".replace("e-0", "e-").replace("e+0", "e+")


def _tooltip(option: Option) -> str:
    """The option's help and its range in the field's unit."""
    unit = f" {unit_text(option)}" if unit_text(option) else ""
    low, high = option.minimum, option.maximum
    if low is None or high is None or option.kind is str:
        return option.help
    return f"{option.help}; {_text(shown(option, low))} to {_text(shown(option, high))}{unit}"


def _step(value: float) -> float:
    """A tenth of the leading decade of ``value`` (1 for 0): 580 -> 10, 0.8 -> 0.01."""
    return 10.0 ** (math.floor(math.log10(abs(value))) - 1) if value else 1.0


def field_for(option: Option, label: str, value=None, **kwargs):
    """The input widget of a declared option (``workflows.options``).

    Parameters
    ----------
    option : Option
    label : str
        What the field is called; the unit it shows is appended (``"Ms (kA/m)"``).
    value : optional
        SI value instead of the declared default (an option declared without one, or a form
        that starts elsewhere, e.g. "relax first" on).
    **kwargs
        Passed to the widget, e.g. ``choices`` (a subset, or ``(text, value)`` pairs).

    A bool is a CheckBox, an option with choices a ComboBox, an int a SpinBox (from its declared
    minimum), a number of order 1e-3 or larger a FloatSpinBox in the display unit (within
    ``SPIN_LIMIT``), a smaller one or several values a LineEdit (``"1e-16"``, ``"10, 20"``). The
    tooltip is the option's help and its range in the field's unit.
    """
    value = option.default if value is None else value
    unit = unit_text(option)
    text = f"{label} ({unit})" if unit else label
    common = {"tooltip": _tooltip(option), **kwargs}
    if option.kind is bool:
        return CheckBox(value=bool(value), text=label, **common)
    if option.kind is str:
        return ComboBox(choices=common.pop("choices", option.choices), value=value, label=text, **common)
    if option.kind is int:
        return SpinBox(value=value, min=int(option.minimum or 0), max=INT_LIMIT, label=text, **common)
    if isinstance(value, tuple):
        return LineEdit(value=", ".join(_text(shown(option, v)) for v in value), label=text, **common)
    number = shown(option, value)
    if number and abs(number) < 1e-3:
        return LineEdit(value=_text(number), label=text, **common)
    return FloatSpinBox(value=number, min=-SPIN_LIMIT, max=SPIN_LIMIT, step=_step(number), label=text, **common)
