"""Preparation of measured images (MFM, NV, Hall maps) before they are compared with simulations.

Function-first, numpy in and out: every image is a 2-D float array ``(ny, nx)``; pixel sizes are
``(dy, dx)`` in metres.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _check_image(image, name: str = "image") -> np.ndarray:
    arr = np.asarray(image, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (ny, nx), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values ({int((~np.isfinite(arr)).sum())} pixels)")
    return arr


def plane_level(image, mask=None) -> np.ndarray:
    """Subtract the least-squares plane ``a + b x + c y``.

    Parameters
    ----------
    image : (ny, nx) array
    mask : (ny, nx) bool array, optional
        Pixels used for the fit (e.g. background only); default all.

    Returns
    -------
    (ny, nx) float array.
    """
    arr = _check_image(image)
    ny, nx = arr.shape
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    use = np.ones(arr.shape, bool) if mask is None else np.asarray(mask, bool)
    if use.shape != arr.shape:
        raise ValueError(f"mask has shape {use.shape}; expected the image shape {arr.shape}")
    design = np.stack([np.ones(use.sum()), x[use], y[use]], axis=1)
    coeff, *_ = np.linalg.lstsq(design, arr[use], rcond=None)
    return arr - (coeff[0] + coeff[1] * x + coeff[2] * y)


def line_level(image, order: int = 0, axis: int = 1) -> np.ndarray:
    """Subtract a polynomial of degree ``order`` fitted to each scan line (rows for ``axis=1``).

    Removes the line-to-line offsets (and slopes for ``order=1``) of a raster scan.
    """
    arr = _check_image(image)
    if order not in (0, 1, 2, 3):
        raise ValueError(f"order must be 0, 1, 2 or 3, got {order!r}")
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 (columns) or 1 (rows), got {axis!r}")
    lines = arr if axis == 1 else arr.T
    t = np.arange(lines.shape[1], dtype=float)
    coeff = np.polynomial.polynomial.polyfit(t, lines.T, order)  # (order+1, nlines)
    fitted = np.polynomial.polynomial.polyval(t, coeff)  # (nlines, n)
    out = lines - fitted
    return out if axis == 1 else out.T


def remove_background(image, pixel_size, length: float) -> np.ndarray:
    """Subtract a smooth background: the image low-passed by a Gaussian of width ``length`` (m)."""
    arr = _check_image(image)
    dy, dx = _pixel_size(pixel_size)
    if not length > 0:
        raise ValueError(f"length must be a positive length in metres, got {length!r}")
    return arr - ndimage.gaussian_filter(arr, sigma=(length / dy, length / dx), mode="reflect")


def resample(image, pixel_size, new_pixel_size, shape=None) -> np.ndarray:
    """Resample an image to another pixel size (anti-aliased when shrinking).

    Parameters
    ----------
    image : (ny, nx) array
    pixel_size, new_pixel_size : (dy, dx) in metres, or one float for square pixels
    shape : (ny, nx), optional
        Output shape; default the same physical extent at the new pixel size (rounded).

    Returns
    -------
    (ny', nx') float array: the image (low-passed by a Gaussian of ``(scale - 1) / 2`` input pixels
    along an axis shrunk by ``scale``, as scikit-image does) linearly interpolated at the new pixel
    centres ``((i + 1/2) dy', (j + 1/2) dx')``, measured from the same corner as the input's. Centres
    beyond the outermost input centres take the edge value.
    """
    arr = _check_image(image)
    dy, dx = _pixel_size(pixel_size)
    ndy, ndx = _pixel_size(new_pixel_size, "new_pixel_size")
    if shape is None:
        shape = (max(1, round(arr.shape[0] * dy / ndy)), max(1, round(arr.shape[1] * dx / ndx)))
    if len(shape) != 2 or any(int(n) != n or n < 1 for n in shape):
        raise ValueError(f"shape must be two positive integers (ny, nx), got {shape!r}")
    scale = (ndy / dy, ndx / dx)
    sigma = [max(0.0, (s - 1) / 2) for s in scale]
    smooth = ndimage.gaussian_filter(arr, sigma, mode="nearest") if max(sigma) > 0 else arr
    centres = [(np.arange(int(n)) + 0.5) * s - 0.5 for n, s in zip(shape, scale)]  # in input pixels
    return ndimage.map_coordinates(smooth, np.meshgrid(*centres, indexing="ij"), order=1, mode="nearest")


def crop(image, origin, size, pixel_size) -> np.ndarray:
    """Cut a rectangle ``origin = (y0, x0)``, ``size = (height, width)`` (m) out of an image."""
    arr = _check_image(image)
    dy, dx = _pixel_size(pixel_size)
    i0, j0 = int(round(origin[0] / dy)), int(round(origin[1] / dx))
    i1, j1 = i0 + int(round(size[0] / dy)), j0 + int(round(size[1] / dx))
    if not (0 <= i0 < i1 <= arr.shape[0] and 0 <= j0 < j1 <= arr.shape[1]):
        raise ValueError(f"crop rectangle rows {i0}:{i1}, columns {j0}:{j1} lies outside the image {arr.shape}")
    return arr[i0:i1, j0:j1].copy()


def _pixel_size(pixel_size, name: str = "pixel_size") -> tuple[float, float]:
    if pixel_size is None:
        raise ValueError(f"{name} is missing: the physical pixel size (m) is needed")
    values = np.broadcast_to(np.asarray(pixel_size, dtype=float), (2,))
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{name} must be positive lengths in metres, got {pixel_size!r}")
    return float(values[0]), float(values[1])
