"""Measured-image preparation for ``mmrecon prepare`` and the "Measured-image preparation" dock.

A measured image comes from a file (``read_measured``: a TIFF, or a channel of an instrument file)
or from a layer (``measured_from_layer``) as a ``MeasuredImage``: the values with their pixel size,
quantity, unit, lift height and cantilever where known. ``steps_from_options`` turns the user's
choices into the steps of ``backend.measured.preparation.prepare_image``, always in the order
crop, row alignment, outliers, scars, levelling, conversion, resampling; ``read_steps`` reads the steps
recorded in a prepared TIFF (or a JSON list of steps) to replay them. ``prepared_metadata`` and
``prepared_layer`` carry the result with its record (``layer_data``'s schema, ``preparation``
entry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..backend.measured.preparation import PreparedImage, prepare_image
from ..io import read_tiff
from ..io.instrument import accepts_instrument, read_instrument
from . import layer_data

TIFF_SUFFIXES = (".tif", ".tiff")
CANTILEVER_KEYS = ("k", "f0", "Q")


@dataclass
class MeasuredImage:
    """A measured image before preparation.

    ``data`` ``(ny, nx)`` float64; ``pixel_size`` ``(dy, dx)`` (m) or None; ``quantity`` and ``unit``
    (``""`` when unknown); ``source`` (the file or layer it came from), ``channel`` (an instrument
    file's channel name, else ``""``), ``name`` (for the prepared layer), ``lift_height`` (m) or
    None, ``cantilever`` (the known ones of ``k`` N/m, ``f0`` Hz, ``Q``).
    """

    data: np.ndarray
    pixel_size: tuple | None
    quantity: str = ""
    unit: str = ""
    source: str = ""
    channel: str = ""
    name: str = ""
    lift_height: float | None = None
    cantilever: dict = field(default_factory=dict)


def _known_cantilever(values) -> dict:
    """The finite positive ``k``, ``f0``, ``Q`` of a dict (others dropped)."""
    values = values if isinstance(values, dict) else {}
    return {key: float(values[key]) for key in CANTILEVER_KEYS
            if isinstance(values.get(key), (int, float)) and not isinstance(values.get(key), bool)
            and np.isfinite(values[key]) and values[key] > 0}


def _lift(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def _is_instrument(path: Path) -> bool:
    """Whether ``path`` goes to an instrument reader: any suffix but a TIFF's, and a TIFF that an
    instrument reader recognises (a Park Systems TIFF)."""
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return True
    try:
        return accepts_instrument(path)
    except ImportError:  # no instrument reader of TIFF files in this installation
        return False


def read_measured(path, channel: str | None = None, pixel_size=None) -> MeasuredImage:
    """The image of a TIFF (``read_tiff``; its mmrecon metadata gives quantity, unit, lift height
    and cantilever) or the channel ``channel`` of an instrument file (``read_instrument``; a file
    of one channel needs no ``channel``). ``pixel_size`` (m) serves a file that does not state its
    own. ``ValueError`` names the file and the problem."""
    path = Path(path)
    if _is_instrument(path):
        try:
            contents = read_instrument(path)
        except ImportError as exc:
            raise ValueError(f"{path}: no reader for {path.suffix} files in this installation ({exc})") from None
        if channel is None and len(contents.channels) != 1:
            names = ", ".join(repr(c.name) for c in contents.channels) or "none"
            raise ValueError(f"{path} holds several channels ({names}): choose one with --channel")
        chosen = contents.channels[0] if channel is None else contents.channel(channel)
        return MeasuredImage(np.asarray(chosen.data, dtype=np.float64), chosen.pixel_size or _pixel(pixel_size),
                             chosen.quantity, chosen.unit, str(path), chosen.name, f"{path.stem} {chosen.name}",
                             _lift(contents.lift_height), _known_cantilever(contents.cantilever))
    if channel is not None:
        raise ValueError(f"{path} is a TIFF image of one channel: --channel is for instrument files")
    image, pixel, meta = read_tiff(path)
    if image.ndim != 2:
        raise ValueError(f"{path}: a measured image is one 2-D image, got an array of shape {image.shape}")
    text = {key: meta.get(key) if isinstance(meta.get(key), str) else "" for key in ("quantity", "unit", "name")}
    return MeasuredImage(image, pixel or _pixel(pixel_size), text["quantity"], text["unit"], str(path), "",
                         text["name"] or path.stem, _lift(meta.get("height")),
                         _known_cantilever(meta.get("cantilever")))


def _pixel(pixel_size) -> tuple | None:
    return None if pixel_size is None else (float(pixel_size), float(pixel_size))


def measured_from_layer(layer, fallback_pixel: float | None = None) -> MeasuredImage:
    """The image of a napari Image layer (anything with ``data``, ``name``, ``scale``, ``metadata``):
    its pixel size (``layer_data.pixel_size``), and quantity, unit, lift height and cantilever from
    its mmrecon metadata. ``ValueError`` for a layer that is not one 2-D image."""
    data = np.asarray(layer.data)
    if data.ndim != 2 or getattr(layer, "rgb", False) or data.dtype.kind not in "biuf":
        raise ValueError(f"layer {layer.name!r} is not one 2-D image of numbers (shape {data.shape})")
    meta = layer_data.mmrecon_metadata(layer)
    return MeasuredImage(data.astype(np.float64), layer_data.pixel_size(layer, fallback_pixel),
                         str(meta.get("quantity") or ""), str(meta.get("unit") or ""),
                         f"layer {layer.name!r}" + (f" ({meta['source']})" if meta.get("source") else ""),
                         str(meta.get("channel") or ""), layer.name,
                         _lift(meta.get("height")), _known_cantilever(meta.get("cantilever")))


# ----------------------------------------------------------------------------- steps


def level_step(level: str) -> dict:
    """The step of a levelling choice: ``"plane"``, ``"poly:N"`` or ``"line:N"``."""
    kind, _, order = str(level).partition(":")
    if kind == "plane" and not order:
        return {"step": "plane"}
    if kind in ("poly", "line") and order.isdigit():
        return {"step": "polynomial" if kind == "poly" else "line", "order": int(order)}
    raise ValueError(f"level must be plane, poly:N (N = 1 to 5) or line:N (N = 0 to 3), got {level!r}")


def steps_from_options(level=None, align_rows=None, outliers=None, crop=None, resample=None, convert=None,
                       cantilever=None, scars=None) -> list[dict]:
    """The preparation steps of the user's choices (None: not done), in the order crop, row
    alignment, outliers, scars, levelling, conversion, resampling.

    Parameters
    ----------
    level : ``"plane"``, ``"poly:N"``, ``"line:N"`` or None
    align_rows : ``"median"``, ``"trimmed_mean"``, ``"median_difference"`` or None
    outliers : threshold in robust standard deviations, or None
    crop : ``(y0, x0, height, width)`` in metres, or None
    resample : the new (square) pixel size in metres, or None
    convert : ``"phase"``, ``"frequency_shift"``, ``"force_gradient"`` or None
    cantilever : dict of ``k`` (N/m), ``f0`` (Hz), ``Q``: those the conversion needs
    scars : threshold in robust standard deviations, or None
    """
    steps = []
    if crop is not None:
        crop = [float(value) for value in crop]
        if len(crop) != 4:
            raise ValueError(f"crop takes four lengths y0 x0 height width (m), got {len(crop)}")
        steps.append({"step": "crop", "origin": crop[:2], "size": crop[2:]})
    if align_rows is not None:
        steps.append({"step": "align_rows", "method": align_rows})
    if outliers is not None:
        steps.append({"step": "remove_outliers", "threshold": float(outliers)})
    if scars is not None:
        steps.append({"step": "remove_scars", "threshold": float(scars)})
    if level is not None:
        steps.append(level_step(level))
    if convert is not None:
        steps.append({"step": "convert", "to": convert, "cantilever": dict(cantilever or {})})
    if resample is not None:
        steps.append({"step": "resample", "pixel_size": float(resample)})
    return steps


def read_steps(path) -> list[dict]:
    """The steps recorded in ``path``: a TIFF written by ``mmrecon prepare`` (its metadata's
    ``preparation``) or a JSON file (a list of steps, or a dict with ``"steps"``)."""
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        meta = read_tiff(path)[2]
        record = meta.get("preparation") if isinstance(meta.get("preparation"), dict) else {}
        steps = record.get("steps")
    else:
        try:
            values = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a JSON file of preparation steps ({exc})") from None
        steps = values.get("steps") if isinstance(values, dict) else values
    if not isinstance(steps, list):
        raise ValueError(f"{path} holds no preparation steps: give a TIFF written by mmrecon prepare or a JSON list "
                         "of steps")
    return steps


def prepare(measured: MeasuredImage, steps) -> PreparedImage:
    """``prepare_image`` of the measured image with its pixel size, quantity and unit."""
    return prepare_image(measured.data, measured.pixel_size, steps, measured.quantity, measured.unit)


# ----------------------------------------------------------------------------- results


def prepared_metadata(measured: MeasuredImage, prepared: PreparedImage, cantilever: dict | None = None) -> dict:
    """The metadata (``layer_data.image_metadata``, kind ``"image"``) of a prepared image.

    ``quantity``, ``unit``, ``pixel_size`` of the result; ``source``; ``height`` (the lift height)
    and ``cantilever`` (the known values: the measured image's, then ``cantilever``, then those a
    conversion used) where known, so that the image is a fit's target as it is; and
    ``preparation``: ``{"input", "channel", "input_pixel_size" (m), "input_quantity",
    "input_unit", "steps"}`` (``steps``: the record that ``prepare_image`` replays).
    """
    return layer_data.image_metadata(prepared.pixel_size, prepared.quantity, prepared.unit,
                                     **_entries(measured, prepared, cantilever))


def prepared_layer(measured: MeasuredImage, prepared: PreparedImage, cantilever: dict | None = None) -> tuple:
    """The layer data tuple ``"<name> prepared"`` of a prepared image: nm scale, the metadata of
    ``prepared_metadata``."""
    return layer_data.image_layer(prepared.image, prepared.pixel_size, f"{measured.name} prepared",
                                  prepared.quantity, prepared.unit, **_entries(measured, prepared, cantilever))


def _entries(measured: MeasuredImage, prepared: PreparedImage, cantilever: dict | None) -> dict:
    """The metadata entries of ``prepared_metadata`` besides pixel size, quantity and unit."""
    known = {**measured.cantilever, **_known_cantilever(cantilever)}
    for step in prepared.steps:
        if step["step"] == "convert":
            known.update(step["cantilever"])
    entries = {"source": measured.source}
    if measured.lift_height is not None:
        entries["height"] = measured.lift_height
    if known:
        entries["cantilever"] = known
    entries["preparation"] = {"input": measured.source, "channel": measured.channel,
                              "input_pixel_size": None if measured.pixel_size is None else list(measured.pixel_size),
                              "input_quantity": measured.quantity, "input_unit": measured.unit,
                              "steps": prepared.steps}
    return entries
