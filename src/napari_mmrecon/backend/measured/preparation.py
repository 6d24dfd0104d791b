"""A measured image's preparation as a list of recorded steps, replayable bit for bit.

``prepare_image(image, pixel_size, steps)`` applies ``steps`` in order and returns a
``PreparedImage`` whose ``steps`` is the record: each step with every parameter spelled out (the
defaults filled in) and what it found (``remove_outliers``: ``replaced``, the number of pixels it
replaced). The record is JSON-serialisable; ``prepare_image(raw, pixel_size, prepared.steps)``
gives the same image again, bit for bit. The input array is never modified.

A step is a dict ``{"step": name, **parameters}``, lengths in metres:

``{"step": "plane"}``
    subtract the least-squares plane (``imageprep.plane_level``);
``{"step": "polynomial", "order": 1..5}``
    subtract a 2-D polynomial of that total degree (``imageprep.polynomial_level``);
``{"step": "line", "order": 0..3}``
    subtract a polynomial fitted to each row (``imageprep.line_level``; default order 0);
``{"step": "background", "length": m}``
    subtract a Gaussian low-pass of that width (``imageprep.remove_background``);
``{"step": "align_rows", "method": "median" | "trimmed_mean" | "median_difference", "trim": 0.25}``
    scan-line jumps (``imageprep.align_rows``);
``{"step": "remove_outliers", "threshold": 5.0, "size": 3}``
    glitches and spikes (``imageprep.remove_outliers``); the record adds ``replaced``;
``{"step": "remove_scars", "threshold": 5.0, "min_length": 4}``
    strokes one row thick where the tip jumped (``imageprep.remove_scars``); the record adds
    ``replaced``;
``{"step": "crop", "origin": [y0, x0], "size": [height, width]}``
    a rectangle, from the image's corner (``imageprep.crop``);
``{"step": "resample", "pixel_size": [dy, dx] or d, "shape": [ny, nx] or None}``
    onto another pixel size (``imageprep.resample``);
``{"step": "convert", "from": quantity, "to": quantity, "cantilever": {...}}``
    between ``"phase"`` (deg), ``"frequency_shift"`` (Hz) and ``"force_gradient"`` (N/m) by
    ``forward.mfm``'s formulas; ``cantilever`` holds the values the conversion needs (``f0`` and
    ``Q`` between phase and frequency shift, ``k`` and ``Q`` between phase and force gradient,
    ``k`` and ``f0`` between frequency shift and force gradient); ``from`` defaults to the image's
    quantity;
``{"step": "scale", "factor": 1.0, "offset": 0.0}``
    ``factor * image + offset`` (a known gain and offset; the unit stays).

Steps that need the pixel size (``background``, ``crop``, ``resample``) refuse an image without
one. Every bad step is a ``ValueError`` that names the step (its number and name) and the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..forward.mfm import (
    Cantilever,
    force_gradient_from_frequency_shift,
    force_gradient_from_phase,
    frequency_shift_from_force_gradient,
    frequency_shift_from_phase,
    phase_from_force_gradient,
    phase_from_frequency_shift,
)
from . import imageprep

UNITS = {"phase": "deg", "frequency_shift": "Hz", "force_gradient": "N/m"}
"""The quantities ``convert`` converts between, and the unit of each."""

CONVERSIONS = {
    ("phase", "frequency_shift"): (frequency_shift_from_phase, ("f0", "Q")),
    ("frequency_shift", "phase"): (phase_from_frequency_shift, ("f0", "Q")),
    ("phase", "force_gradient"): (force_gradient_from_phase, ("k", "Q")),
    ("force_gradient", "phase"): (phase_from_force_gradient, ("k", "Q")),
    ("frequency_shift", "force_gradient"): (force_gradient_from_frequency_shift, ("k", "f0")),
    ("force_gradient", "frequency_shift"): (frequency_shift_from_force_gradient, ("k", "f0")),
}
"""``(from, to) -> (function, the cantilever values it needs)``."""


@dataclass(frozen=True)
class PreparedImage:
    """The result of ``prepare_image``.

    Attributes
    ----------
    image : (ny, nx) float64 ndarray
    pixel_size : (dy, dx) in metres, or None when neither the input nor a step gave one
    steps : list of dict
        The record: the steps as applied (JSON-serialisable), ``prepare_image``'s input for a replay.
    quantity, unit : str
        What the image is after the steps (``""`` when unknown).
    """

    image: np.ndarray
    pixel_size: tuple | None
    steps: list
    quantity: str = ""
    unit: str = ""


@dataclass
class _State:
    image: np.ndarray
    pixel_size: tuple | None
    quantity: str
    unit: str


def prepare_image(image, pixel_size=None, steps=(), quantity: str = "", unit: str = "") -> PreparedImage:
    """Apply the preparation ``steps`` (module docstring) to ``image`` in order.

    Parameters
    ----------
    image : (ny, nx) array
        The measured image; not modified.
    pixel_size : float or (dy, dx) in metres, optional
        Needed by ``background``, ``crop`` and ``resample``.
    steps : sequence of dict
        ``{"step": name, **parameters}``; a record of an earlier call replays it.
    quantity, unit : str
        What the image is (``"phase"`` in ``"deg"``, ...), for ``convert``.

    Returns
    -------
    PreparedImage
    """
    arr = imageprep._check_image(image)
    pixel = None if pixel_size is None else imageprep._pixel_size(pixel_size)
    if isinstance(steps, (str, dict)) or not hasattr(steps, "__iter__"):
        raise ValueError(f"steps must be a list of {{'step': name, ...}} dicts, got {type(steps).__name__}")
    state = _State(arr.copy(), pixel, str(quantity or ""), str(unit or ""))
    record = []
    for index, step in enumerate(steps):
        record.append(_apply(index, step, state))
    return PreparedImage(state.image, state.pixel_size, record, state.quantity, state.unit)


def _apply(index: int, step, state: _State) -> dict:
    """Apply one step to ``state`` in place; return its record. ``ValueError`` names the step."""
    if not isinstance(step, dict) or not isinstance(step.get("step"), str):
        raise ValueError(f"step {index + 1}: a step is a dict {{'step': name, ...}}, got {step!r}")
    name = step["step"]
    if name not in STEPS:
        raise ValueError(f"step {index + 1}: unknown step {name!r}; known: {', '.join(STEPS)}")
    run, parameters, outputs = STEPS[name]
    unknown = sorted(set(step) - {"step", *parameters, *outputs})
    if unknown:
        raise ValueError(f"step {index + 1} ({name}): unknown parameter{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)}; it takes {', '.join(parameters) or 'none'}")
    try:
        return {"step": name, **run(state, {key: step[key] for key in parameters if key in step})}
    except ValueError as exc:
        raise ValueError(f"step {index + 1} ({name}): {exc}") from None


# ----------------------------------------------------------------------------- parameters


def _number(params: dict, key: str, default=None, positive: bool = False) -> float:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{key} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{key} must be a {'positive ' if positive else ''}finite number, got {params.get(key)!r}")
    return value


def _integer(params: dict, key: str, default, allowed) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value not in allowed:
        raise ValueError(f"{key} must be an integer {min(allowed)} to {max(allowed)}, got {value!r}")
    return int(value)


def _pair(params: dict, key: str, positive: bool) -> list[float]:
    value = params.get(key)
    items = [value, value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(items, (list, tuple)) or len(items) != 2:
        raise ValueError(f"{key} must be two lengths [y, x] in metres, got {value!r}")
    numbers = [_number({key: item}, key) for item in items]
    if any(n <= 0 if positive else n < 0 for n in numbers):
        raise ValueError(f"{key} must be {'positive' if positive else 'non-negative'} lengths in metres, "
                         f"got {value!r}")
    return numbers


def _needs_pixel(state: _State) -> tuple:
    if state.pixel_size is None:
        raise ValueError("the image has no pixel size (m): give one")
    return state.pixel_size


# ----------------------------------------------------------------------------- the steps


def _plane(state: _State, params: dict) -> dict:
    state.image = imageprep.plane_level(state.image)
    return {}


def _polynomial(state: _State, params: dict) -> dict:
    order = _integer(params, "order", None, imageprep.POLYNOMIAL_ORDERS)
    state.image = imageprep.polynomial_level(state.image, order)
    return {"order": order}


def _line(state: _State, params: dict) -> dict:
    order = _integer(params, "order", 0, range(4))
    state.image = imageprep.line_level(state.image, order)
    return {"order": order}


def _background(state: _State, params: dict) -> dict:
    length = _number(params, "length", None, positive=True)
    state.image = imageprep.remove_background(state.image, _needs_pixel(state), length)
    return {"length": length}


def _align_rows(state: _State, params: dict) -> dict:
    method = params.get("method", "median")
    trim = _number(params, "trim", 0.25)
    state.image = imageprep.align_rows(state.image, method, trim)
    return {"method": method, "trim": trim}


def _remove_outliers(state: _State, params: dict) -> dict:
    threshold = _number(params, "threshold", 5.0, positive=True)
    size = params.get("size", imageprep.OUTLIER_SIZE)
    state.image, mask = imageprep.remove_outliers(state.image, threshold, size, return_mask=True)
    return {"threshold": threshold, "size": int(size), "replaced": int(mask.sum())}


def _remove_scars(state: _State, params: dict) -> dict:
    threshold = _number(params, "threshold", 5.0, positive=True)
    min_length = params.get("min_length", imageprep.SCAR_LENGTH)
    state.image, mask = imageprep.remove_scars(state.image, threshold, min_length, return_mask=True)
    return {"threshold": threshold, "min_length": int(min_length), "replaced": int(mask.sum())}


def _crop(state: _State, params: dict) -> dict:
    origin, size = _pair(params, "origin", positive=False), _pair(params, "size", positive=True)
    state.image = imageprep.crop(state.image, origin, size, _needs_pixel(state))
    return {"origin": origin, "size": size}


def _resample(state: _State, params: dict) -> dict:
    new_pixel = _pair(params, "pixel_size", positive=True)
    shape = params.get("shape")
    if shape is not None:
        if (not isinstance(shape, (list, tuple)) or len(shape) != 2
                or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in shape)):
            raise ValueError(f"shape must be two positive integers [ny, nx] or None, got {shape!r}")
        shape = [int(n) for n in shape]
    state.image = imageprep.resample(state.image, _needs_pixel(state), new_pixel, shape)
    state.pixel_size = tuple(new_pixel)
    return {"pixel_size": new_pixel, "shape": shape}


def _convert(state: _State, params: dict) -> dict:
    source, target = params.get("from", state.quantity), params.get("to")
    for key, value in (("to", target), ("from", source)):
        if value not in UNITS:
            hint = ": the image's quantity is not known, give 'from'" if key == "from" and not value else ""
            raise ValueError(f"{key} must be one of {', '.join(UNITS)}, got {value!r}{hint}")
    if state.quantity and state.quantity != source:
        raise ValueError(f"from = {source!r} but the image is a {state.quantity}")
    if state.unit and state.unit != UNITS[source]:
        raise ValueError(f"a {source} in {UNITS[source]} is converted, but the image is in {state.unit!r}")
    if source == target:
        raise ValueError(f"the image is a {source} already (from = to = {source!r})")
    function, needed = CONVERSIONS[source, target]
    given = params.get("cantilever")
    if not isinstance(given, dict):
        raise ValueError(f"cantilever must be a dict with {', '.join(needed)}, got {given!r}")
    missing = [key for key in needed if given.get(key) is None]
    if missing:
        raise ValueError(f"converting a {source} to a {target} needs the cantilever's {' and '.join(missing)}")
    values = {key: _number(given, key, positive=True) for key in needed}
    state.image = np.asarray(function(state.image, Cantilever(**values)), dtype=np.float64)
    state.quantity, state.unit = target, UNITS[target]
    return {"from": source, "to": target, "cantilever": values}


def _scale(state: _State, params: dict) -> dict:
    factor, offset = _number(params, "factor", 1.0), _number(params, "offset", 0.0)
    if factor == 0:
        raise ValueError("factor must be non-zero, got 0")
    state.image = state.image * factor + offset
    return {"factor": factor, "offset": offset}


STEPS = {
    "plane": (_plane, (), ()),
    "polynomial": (_polynomial, ("order",), ()),
    "line": (_line, ("order",), ()),
    "background": (_background, ("length",), ()),
    "align_rows": (_align_rows, ("method", "trim"), ()),
    "remove_outliers": (_remove_outliers, ("threshold", "size"), ("replaced",)),
    "remove_scars": (_remove_scars, ("threshold", "min_length"), ("replaced",)),
    "crop": (_crop, ("origin", "size"), ()),
    "resample": (_resample, ("pixel_size", "shape"), ()),
    "convert": (_convert, ("from", "to", "cantilever"), ()),
    "scale": (_scale, ("factor", "offset"), ()),
}
"""``name -> (function, its parameters, what it records besides them)`` (module docstring)."""
