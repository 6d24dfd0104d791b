"""TIFF images with a physical pixel size, in the ImageJ flavour Fiji understands.

Images are stored as float32 with ``XResolution``/``YResolution`` in pixels per unit and
the unit (default ``nm``) in the ImageJ description, so Fiji shows the calibration.
A JSON-serialisable metadata dict goes into the ImageJ ``Info`` property as JSON.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from contextlib import contextmanager

import numpy as np
import tifffile

from napari_mmrecon.backend.arrays import as_numpy
from napari_mmrecon.io.files import atomic_output

__all__ = ["TiffError", "read_tiff", "write_tiff"]

_WRITE_UNITS = {"m": 1.0, "cm": 1e-2, "mm": 1e-3, "um": 1e-6, "micron": 1e-6, "nm": 1e-9, "pm": 1e-12}
"""Units accepted by :func:`write_tiff` (ASCII, understood by ImageJ), in metres."""

_READ_UNITS = {**_WRITE_UNITS, "µm": 1e-6, "μm": 1e-6, "\\u00b5m": 1e-6, "microns": 1e-6, "meter": 1.0}
"""ImageJ ``unit`` values (lower-cased) recognised by :func:`read_tiff`, in metres."""

_RESOLUTION_UNITS = {2: 0.0254, 3: 1e-2, 4: 1e-3, 5: 1e-6}
"""TIFF ``ResolutionUnit`` tag (inch, centimetre, tifffile's millimetre and micrometre)."""


class TiffError(ValueError):
    """A TIFF file that cannot be read (corrupt or truncated); the message names the file."""


def write_tiff(path, image, pixel_size, unit: str = "nm", metadata: dict | None = None) -> None:
    """Write a float image or stack as an ImageJ TIFF with its physical pixel size.

    The file is written to a temporary file beside ``path`` and then moved onto it.

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    image : array_like or torch.Tensor
        ``(ny, nx)`` image or ``(n, ny, nx)`` stack (ImageJ slices); stored as float32.
    pixel_size : float or (dy, dx)
        Pixel size in metres; a single float means square pixels.
    unit : {"nm", "um", "micron", "mm", "cm", "m", "pm"}
        Unit of the stored calibration (what Fiji shows).
    metadata : dict, optional
        JSON-serialisable values stored as JSON in the ImageJ ``Info`` property.

    Raises
    ------
    ValueError
        Bad image shape or type, non-positive or non-finite ``pixel_size``, unknown
        ``unit`` or metadata that JSON cannot encode.
    """
    array = _image_array(image)
    dy, dx = _pixel_size_pair(pixel_size)
    if unit not in _WRITE_UNITS:
        raise ValueError(f"unit must be one of {sorted(_WRITE_UNITS)}, got {unit!r}")
    scale = _WRITE_UNITS[unit]
    imagej = {"axes": "YX" if array.ndim == 2 else "ZYX", "unit": unit}
    if metadata is not None:
        imagej["Info"] = _metadata_json(metadata)
    with atomic_output(path) as temporary:
        tifffile.imwrite(temporary, array, imagej=True, resolution=(scale / dx, scale / dy), metadata=imagej)


def read_tiff(path):
    """Read a TIFF image, its pixel size and the metadata stored by :func:`write_tiff`.

    Parameters
    ----------
    path : str or os.PathLike
        A TIFF file (ImageJ or plain).

    Returns
    -------
    image : ndarray of float64
        The first image series: ``(ny, nx)`` or ``(n, ny, nx)`` for files written by
        :func:`write_tiff`.
    pixel_size : (dy, dx) or None
        Pixel size in metres, from the resolution tags with the ImageJ ``unit`` or an
        explicit ``ResolutionUnit`` tag (inch, cm, mm, um); None when the file declares
        no physical unit.
    metadata : dict
        The JSON dict of the ImageJ ``Info`` property; ``{"info": text}`` when ``Info``
        is not a JSON object; empty without ``Info``.

    Raises
    ------
    TiffError
        The file is not a readable TIFF (corrupt, truncated or unsupported pixel type).
    FileNotFoundError
        ``path`` does not exist.
    """
    image, tags, imagej = _load(path)
    if image.dtype.kind not in "biuf":
        raise TiffError(f"{path}: unsupported pixel type {image.dtype} (real numbers expected)")
    return image.astype(np.float64), _pixel_size(tags, imagej), _info_metadata(imagej)


def _load(path):
    """First series, tags of its first page and ImageJ metadata, or TiffError."""
    try:
        with _tifffile_errors() as errors, tifffile.TiffFile(path) as tif:
            image = tif.asarray()
            page = tif.pages.first
            tags = {tag.name: tag.value for tag in page.tags}
            imagej = tif.imagej_metadata or {}
        if errors:
            raise TiffError(f"{path}: corrupt or truncated TIFF ({errors[0]})")
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except TiffError:
        raise
    except (ValueError, OSError, EOFError, IndexError, KeyError, struct.error) as exc:
        raise TiffError(f"{path}: corrupt or truncated TIFF ({exc})") from None
    return image, tags, imagej


class _ErrorRecords(logging.Handler):
    """Collects the messages of ERROR records."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextmanager
def _tifffile_errors():
    """Yield the list of error messages tifffile logs meanwhile.

    tifffile logs, rather than raises, some structural damage such as a truncated
    chain of pages, and then returns fewer images.
    """
    handler = _ErrorRecords()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def _pixel_size(tags: dict, imagej: dict) -> tuple[float, float] | None:
    """``(dy, dx)`` in metres from resolution tags and unit, or None."""
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    unit = str(imagej.get("unit", "")).strip().lower()
    if unit:
        scale = _READ_UNITS.get(unit)
    else:
        scale = _RESOLUTION_UNITS.get(int(tags.get("ResolutionUnit", 1)))
    if scale is None:
        return None
    per_unit_x, per_unit_y = _rational(tags["XResolution"]), _rational(tags["YResolution"])
    if not per_unit_x > 0 or not per_unit_y > 0:
        return None
    return scale / per_unit_y, scale / per_unit_x


def _rational(value) -> float:
    """A TIFF RATIONAL ``(numerator, denominator)`` (or a plain number) as a float."""
    if isinstance(value, tuple):
        numerator, denominator = value
        return numerator / denominator if denominator else math.nan
    return float(value)


def _info_metadata(imagej: dict) -> dict:
    """Metadata dict from the ImageJ ``Info`` property."""
    info = imagej.get("Info")
    if info is None:
        return {}
    try:
        parsed = json.loads(info)
    except ValueError:
        return {"info": info}
    return parsed if isinstance(parsed, dict) else {"info": info}


def _image_array(image) -> np.ndarray:
    """``image`` as float32 ``(ny, nx)`` or ``(n, ny, nx)``."""
    array = as_numpy(image)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"image must hold real numbers, got dtype {array.dtype}")
    if array.ndim not in (2, 3) or array.size == 0:
        raise ValueError(f"image must be a non-empty (ny, nx) image or (n, ny, nx) stack, got shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _pixel_size_pair(pixel_size) -> tuple[float, float]:
    """``(dy, dx)`` in metres from a float or a pair, validated finite and positive."""
    try:
        values = np.asarray(pixel_size, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"pixel_size must be a length in metres or a (dy, dx) pair, got {pixel_size!r}") from None
    if values.shape == ():
        values = np.array([values, values])
    if values.shape != (2,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"pixel_size must be positive finite (dy, dx) in metres, got {pixel_size!r}")
    return float(values[0]), float(values[1])


def _metadata_json(metadata: dict) -> str:
    """``metadata`` as a JSON object string."""
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
    try:
        return json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata is not JSON-serialisable: {exc}") from None
