"""TIFF images with a physical pixel size, in the ImageJ flavour Fiji understands.

Images are stored as float32 with ``XResolution``/``YResolution`` in pixels per unit and
the unit (default ``nm``) in the ImageJ description, so Fiji shows the calibration.
A JSON-serialisable metadata dict goes into the ImageJ ``Info`` property as JSON.

This module imports no torch at import time: :func:`accepts_tiff` is cheap enough for the
npe2 reader entry point.
"""

from __future__ import annotations

import json
import logging
import math
import reprlib
from contextlib import contextmanager

import numpy as np
import tifffile

from napari_mmrecon.io.files import atomic_output

__all__ = ["MAX_IMAGE_BYTES", "PIXEL_SIZE_RANGE", "TiffError", "accepts_tiff", "read_tiff", "write_tiff"]

_WRITE_UNITS = {"m": 1.0, "cm": 1e-2, "mm": 1e-3, "um": 1e-6, "micron": 1e-6, "nm": 1e-9, "pm": 1e-12}
"""Units accepted by :func:`write_tiff` (ASCII, understood by ImageJ), in metres."""

_READ_UNITS = {**_WRITE_UNITS, "µm": 1e-6, "μm": 1e-6, "\\u00b5m": 1e-6, "microns": 1e-6, "meter": 1.0}
"""ImageJ ``unit`` values (lower-cased) recognised by :func:`read_tiff`, in metres."""

_RESOLUTION_UNITS = {2: 0.0254, 3: 1e-2, 4: 1e-3, 5: 1e-6}
"""TIFF ``ResolutionUnit`` tag (inch, centimetre, tifffile's millimetre and micrometre)."""

_RESOLUTION_KEYS = ("XResolution", "YResolution", "ResolutionUnit")

_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
"""First four bytes of a little- or big-endian classic TIFF or BigTIFF."""

MAX_IMAGE_BYTES = 4 * 2**30
"""Largest image :func:`read_tiff` loads, in bytes of its float64 result (4 GiB); a larger
size is almost surely a damaged ``ImageWidth`` or ``ImageLength`` tag."""

PIXEL_SIZE_RANGE = (1e-12, 1e-2)
"""Pixel sizes (m) :func:`read_tiff` takes from the resolution tags, from a picometre to a
centimetre; outside it the tags are damaged or not in the declared unit."""


class TiffError(ValueError):
    """A TIFF file that cannot be read (corrupt, truncated or unsupported); the message names the file."""


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
        The file is not a readable TIFF: corrupt, truncated, compressed with a codec that
        is not installed, of a pixel type other than real numbers, without pixels, larger
        than ``MAX_IMAGE_BYTES`` as float64, or with a declared pixel size outside
        ``PIXEL_SIZE_RANGE``. The message names the file and the problem.
    FileNotFoundError
        ``path`` does not exist.
    """
    image, tags, imagej = _load(path)
    return image.astype(np.float64), _pixel_size(tags, imagej, path), _info_metadata(imagej)


def accepts_tiff(path) -> bool:
    """Whether :func:`read_tiff` is the reader for ``path``, judged from its header alone.

    True for a TIFF whose only image series is a ``(ny, nx)`` image of real numbers with one
    sample per pixel, or an ImageJ ``(n, ny, nx)`` z-stack as :func:`write_tiff` writes;
    also for a file that starts like a TIFF but whose header cannot be parsed, so that
    :func:`read_tiff` names the damage. False for other files, which other readers may
    know: not a TIFF, RGB or several samples per pixel, several series, other axes (time,
    channels, pages), complex or other non-real pixels, or a file that cannot be opened.
    Reads no pixel data.
    """
    try:
        with open(path, "rb") as handle:
            signature = handle.read(4)
    except OSError:
        return False
    if signature not in _TIFF_SIGNATURES:
        return False
    try:
        with tifffile.TiffFile(path) as tif:
            return not _is_foreign(tif)
    except Exception:  # tifffile fails in many ways on a damaged header; read_tiff reports it
        return True


def _is_foreign(tif: tifffile.TiffFile) -> bool:
    """Whether the header of ``tif`` shows a layout :func:`read_tiff` is not for.

    That is several series, pixels that are not real numbers, or axes other than ``YX``
    and an ImageJ ``ZYX`` z-stack. A file without a series or pixel type is damaged, not
    foreign.
    """
    if not tif.series:
        return False
    if len(tif.series) > 1:
        return True
    series = tif.series[0]
    if series.dtype is not None and series.dtype.kind not in "biuf":
        return True
    return not (series.axes == "YX" or (tif.is_imagej and series.axes == "ZYX"))


def _load(path):
    """First series, tags of its first page and ImageJ metadata, or TiffError.

    The series' shape and pixel type are checked before any pixel data are read, and the
    decoded shape after.
    """
    try:
        with _tifffile_errors() as errors, tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            _check_layout(series.shape, series.dtype, path)
            image = series.asarray()
            if image.shape != series.shape:
                raise TiffError(f"{path}: decoded pixels have shape {image.shape}, the header declares "
                                f"{series.shape} (damaged BitsPerSample or SampleFormat tag?)")
            tags = {tag.name: tag.value for tag in tif.pages.first.tags}
            imagej = tif.imagej_metadata or {}
        if errors:
            raise TiffError(f"{path}: corrupt or truncated TIFF ({errors[0]})")
    except (FileNotFoundError, IsADirectoryError, PermissionError, TiffError):
        raise
    except Exception as exc:  # tifffile and its codecs fail in many ways on damaged files
        raise TiffError(f"{path}: corrupt, truncated or unsupported TIFF ({type(exc).__name__}: {exc})") from None
    return image, tags, imagej


def _check_layout(shape: tuple, dtype, path) -> None:
    """TiffError unless ``shape`` has pixels, fits ``MAX_IMAGE_BYTES`` as float64 and
    ``dtype`` holds real numbers."""
    if dtype is None or dtype.kind not in "biuf":
        raise TiffError(f"{path}: unsupported pixel type {dtype} (real numbers expected)")
    pixels = math.prod(shape)
    if pixels == 0:
        raise TiffError(f"{path}: image of shape {shape} has no pixels (ImageWidth or ImageLength is 0 or damaged)")
    if pixels * 8 > MAX_IMAGE_BYTES:
        raise TiffError(
            f"{path}: image of shape {shape} needs {pixels * 8 / 2**30:.3g} GiB as float64, more than the "
            f"{MAX_IMAGE_BYTES / 2**30:.3g} GiB limit (damaged ImageWidth or ImageLength tag?)"
        )


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


def _pixel_size(tags: dict, imagej: dict, path) -> tuple[float, float] | None:
    """``(dy, dx)`` in metres from resolution tags and unit, or None; TiffError if implausible."""
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    try:
        scale = _unit_scale(tags, imagej)
        per_unit_x, per_unit_y = _rational(tags["XResolution"]), _rational(tags["YResolution"])
    except (TypeError, ValueError, OverflowError):
        values = ", ".join(f"{key} {reprlib.repr(tags.get(key))}" for key in _RESOLUTION_KEYS)
        raise TiffError(f"{path}: damaged resolution tags ({values})") from None
    if scale is None or not per_unit_x > 0 or not per_unit_y > 0:
        return None
    dy, dx = scale / per_unit_y, scale / per_unit_x
    low, high = PIXEL_SIZE_RANGE
    if not (low <= dy <= high and low <= dx <= high):
        raise TiffError(
            f"{path}: implausible pixel size {dy:.3g} m x {dx:.3g} m (dy x dx) from the resolution tags; "
            f"expected {low:g} m to {high:g} m"
        )
    return dy, dx


def _unit_scale(tags: dict, imagej: dict) -> float | None:
    """Metres per resolution unit, from the ImageJ ``unit`` or ``ResolutionUnit``; None if not physical."""
    unit = str(imagej.get("unit", "")).strip().lower()
    if unit:
        return _READ_UNITS.get(unit)
    return _RESOLUTION_UNITS.get(int(tags.get("ResolutionUnit", 1)))


def _rational(value) -> float:
    """A TIFF RATIONAL ``(numerator, denominator)`` (or a plain number) as a float."""
    if isinstance(value, tuple):
        numerator, denominator = value
        return numerator / denominator if denominator else math.nan
    return float(value)


def _info_metadata(imagej: dict) -> dict:
    """Metadata dict from the ImageJ ``Info`` property (text; tifffile may give a number)."""
    info = imagej.get("Info")
    if info is None:
        return {}
    info = str(info)
    try:
        parsed = json.loads(info)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's stack
        return {"info": info}
    return parsed if isinstance(parsed, dict) else {"info": info}


def _image_array(image) -> np.ndarray:
    """``image`` as float32 ``(ny, nx)`` or ``(n, ny, nx)``."""
    # torch: imported on the first write
    from napari_mmrecon.backend.runtime.arrays import as_numpy

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
