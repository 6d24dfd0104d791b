"""Preparation of measured images (MFM, NV, Hall maps) before they are compared with simulations.

Function-first, numpy in and out: every image is a 2-D float array ``(ny, nx)``; pixel sizes are
``(dy, dx)`` in metres.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, stats


def _check_image(image, name: str = "image") -> np.ndarray:
    arr = np.asarray(image, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (ny, nx), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values ({int((~np.isfinite(arr)).sum())} pixels)")
    return arr


def plane_level(image, mask=None) -> np.ndarray:
    """Subtract the least-squares plane ``a + b x + c y``: ``polynomial_level(image, 1, mask)``.

    Parameters
    ----------
    image : (ny, nx) array
    mask : (ny, nx) bool array, optional
        Pixels used for the fit (e.g. background only); default all.

    Returns
    -------
    (ny, nx) float array.
    """
    return polynomial_level(image, 1, mask)


POLYNOMIAL_ORDERS = (1, 2, 3, 4, 5)
"""Total degrees ``polynomial_level`` fits."""


def polynomial_level(image, order: int, mask=None) -> np.ndarray:
    """Subtract the least-squares 2-D polynomial ``sum c_ij x^i y^j`` of total degree ``i + j <= order``.

    Parameters
    ----------
    image : (ny, nx) array
    order : int
        Total degree, 1 (a plane) to 5.
    mask : (ny, nx) bool array, optional
        Pixels used for the fit (e.g. background only); default all. The polynomial is subtracted
        everywhere.

    Returns
    -------
    (ny, nx) float array: the image minus the fitted polynomial (pixel coordinates are mapped onto
    [-1, 1] for the fit, which changes nothing but its conditioning).
    """
    arr = _check_image(image)
    if isinstance(order, bool) or order not in POLYNOMIAL_ORDERS:
        raise ValueError(f"order must be an integer 1 to 5 (the polynomial's total degree), got {order!r}")
    use = np.ones(arr.shape, bool) if mask is None else np.asarray(mask, bool)
    if use.shape != arr.shape:
        raise ValueError(f"mask has shape {use.shape}; expected the image shape {arr.shape}")
    powers = [(total - j, j) for total in range(order + 1) for j in range(total + 1)]  # (i, j) of x^i y^j
    if use.sum() < len(powers):
        raise ValueError(f"a polynomial of degree {order} needs at least {len(powers)} pixels to fit, the mask "
                         f"leaves {int(use.sum())}")
    y, x = (np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1) for n in arr.shape)
    x_powers = np.stack([x**i for i in range(order + 1)])  # (order + 1, nx)
    y_powers = np.stack([y**j for j in range(order + 1)])  # (order + 1, ny)
    terms = np.stack([y_powers[j][:, None] * x_powers[i][None, :] for i, j in powers])  # (nterms, ny, nx)
    coeff, *_ = np.linalg.lstsq(terms[:, use].T, arr[use], rcond=None)
    return arr - np.tensordot(coeff, terms, axes=1)


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


ROW_ALIGNMENTS = ("median", "trimmed_mean", "median_difference")
"""Methods of ``align_rows``."""


def align_rows(image, method: str = "median", trim: float = 0.25) -> np.ndarray:
    """Remove scan-line jumps: shift every row (a scan line along x) by one constant, as Gwyddion's
    "Align rows".

    Parameters
    ----------
    image : (ny, nx) array
    method : {"median", "trimmed_mean", "median_difference"}
        How each row's shift is estimated: the row's median; its mean after discarding the fraction
        ``trim`` of its lowest and of its highest values; or the median of the differences between
        the row and the row before, accumulated from the first row (for rows whose content differs,
        e.g. a row through a skyrmion and one beside it, where a row's own median would not be its
        background).
    trim : float
        For ``"trimmed_mean"``: fraction cut from each end, 0 (the mean) to below 0.5.

    Returns
    -------
    (ny, nx) float array: each row minus its shift; the shifts are taken relative to their mean, so
    that the image's mean level stays (Gwyddion does the same).
    """
    arr = _check_image(image)
    if method not in ROW_ALIGNMENTS:
        raise ValueError(f"method must be one of {', '.join(ROW_ALIGNMENTS)}, got {method!r}")
    if method == "median":
        shifts = np.median(arr, axis=1)
    elif method == "trimmed_mean":
        if isinstance(trim, bool) or not (isinstance(trim, (int, float)) and 0 <= trim < 0.5):
            raise ValueError(f"trim must be a fraction from 0 to below 0.5, got {trim!r}")
        shifts = stats.trim_mean(arr, trim, axis=1)
    else:
        shifts = np.concatenate([[0.0], np.cumsum(np.median(np.diff(arr, axis=0), axis=1))])
    return arr - (shifts - shifts.mean())[:, None]


OUTLIER_SIZE = 3
"""Side (pixels) of the window of the local median ``remove_outliers`` compares with."""
MAD_SIGMA = 1.4826
"""Standard deviations of a normal distribution per median absolute deviation."""
RESOLUTION = float(np.finfo(np.float32).eps)
"""Deviations below this fraction of an image's largest magnitude are never outliers: the resolution of
float32, the widest type instrument files store a channel in, and far above float64 round-off."""
_ROWS_PER_BLOCK = 128
"""Rows per block of ``_local_spread`` (bounds its memory to ``(size + 2)**2`` block copies)."""


def remove_outliers(image, threshold: float = 5.0, size: int = OUTLIER_SIZE, return_mask: bool = False):
    """Replace glitches and spikes by the median of their neighbourhood.

    A pixel's deviation ``r`` from the median of the ``size x size`` window around it is compared with
    the larger of two robust standard deviations (1.4826 times a median absolute deviation, MAD):

    - the image's noise: the MAD of ``r`` over the image;
    - the image's own variation around the pixel: the MAD of the ``(size + 2) x (size + 2)``
      neighbourhood after the local gradient (central differences of the median-filtered image) is
      taken out. Real structure varies over several pixels, so the pixel's neighbours vary about as
      much as it deviates; an isolated spike is one value among ``(size + 2)**2`` and moves neither
      median.

    The pixel is an outlier when ``|r - median(r)|`` exceeds ``threshold`` times that scale and
    ``RESOLUTION`` times the image's largest magnitude. On a noisy image the noise sets the scale,
    and spikes of more than ``threshold`` standard deviations are found where the image is smooth on
    the scale of a few pixels; on a noise-free image nothing smooth is ever replaced (the MAD of
    ``r`` over the image is then near 0, and alone it would call every pixel with curvature a
    glitch).

    Parameters
    ----------
    image : (ny, nx) array
    threshold : float
        In robust standard deviations, > 0.
    size : int
        Odd window side in pixels, >= 3.
    return_mask : bool
        Also return the (ny, nx) bool mask of the replaced pixels.

    Returns
    -------
    (ny, nx) float array (a new array), and the mask with ``return_mask``.
    """
    arr = _check_image(image)
    _check_threshold(threshold)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 3 or size % 2 == 0:
        raise ValueError(f"size must be an odd number of pixels >= 3, got {size!r}")
    local = ndimage.median_filter(arr, size=int(size), mode="reflect")
    deviation = arr - local
    spread = np.abs(deviation - np.median(deviation))
    scale = np.maximum(np.median(spread), _local_spread(arr, local, int(size) + 2))
    mask = (spread > threshold * MAD_SIGMA * scale) & (spread > RESOLUTION * np.abs(arr).max())
    out = np.where(mask, local, arr)
    return (out, mask) if return_mask else out


def _local_spread(arr: np.ndarray, smooth: np.ndarray, size: int) -> np.ndarray:
    """The MAD of every pixel's ``size x size`` neighbourhood of ``arr`` (edges reflected) after the
    plane through the pixel with the gradient of ``smooth`` (central differences) is subtracted;
    (ny, nx)."""
    half = size // 2
    gy, gx = np.gradient(smooth)
    offsets = np.arange(-half, half + 1, dtype=float)
    padded = np.pad(arr, half, mode="symmetric")  # numpy's "symmetric" is scipy's "reflect"
    out = np.empty(arr.shape)
    for start in range(0, arr.shape[0], _ROWS_PER_BLOCK):
        rows = slice(start, min(start + _ROWS_PER_BLOCK, arr.shape[0]))
        block = padded[rows.start:rows.stop + 2 * half]
        windows = np.lib.stride_tricks.sliding_window_view(block, (size, size))  # (rows, nx, size, size)
        detrended = (windows - gy[rows, :, None, None] * offsets[:, None]
                     - gx[rows, :, None, None] * offsets[None, :])
        centre = np.median(detrended, axis=(-2, -1), keepdims=True)
        out[rows] = np.median(np.abs(detrended - centre), axis=(-2, -1))
    return out


SCAR_LENGTH = 4
"""Shortest scar ``remove_scars`` replaces (pixels along a row); shorter ones are left to ``remove_outliers``."""


def remove_scars(image, threshold: float = 5.0, min_length: int = SCAR_LENGTH, return_mask: bool = False):
    """Replace scars: strokes one scan line (row) thick where the tip jumped, by the mean of the rows
    above and below (Gwyddion's "Remove scars", for scars one row thick).

    A pixel is a scar pixel when it lies above both its neighbours in the rows before and after (or
    below both) by more than ``threshold`` robust standard deviations of the row-to-row differences
    (1.4826 times their median absolute deviation), in a run of at least ``min_length`` such pixels
    along its row. The first and the last row are never scars.

    Parameters
    ----------
    image : (ny, nx) array
    threshold : float
        In robust standard deviations of the row-to-row differences, > 0.
    min_length : int
        Shortest scar in pixels, >= 1.
    return_mask : bool
        Also return the (ny, nx) bool mask of the replaced pixels.

    Returns
    -------
    (ny, nx) float array (a new array), and the mask with ``return_mask``.
    """
    arr = _check_image(image)
    _check_threshold(threshold)
    if isinstance(min_length, bool) or not isinstance(min_length, (int, np.integer)) or min_length < 1:
        raise ValueError(f"min_length must be a whole number of pixels >= 1, got {min_length!r}")
    if arr.shape[0] < 3:
        return (arr.copy(), np.zeros(arr.shape, bool)) if return_mask else arr.copy()
    differences = np.diff(arr, axis=0)
    limit = threshold * MAD_SIGMA * np.median(np.abs(differences - np.median(differences)))
    above, below = arr[1:-1] - arr[:-2], arr[1:-1] - arr[2:]
    candidate = np.zeros(arr.shape, bool)
    candidate[1:-1] = ((above > limit) & (below > limit)) | ((above < -limit) & (below < -limit))
    runs, count = ndimage.label(candidate, structure=[[0, 0, 0], [1, 1, 1], [0, 0, 0]])
    lengths = np.bincount(runs.ravel(), minlength=count + 1)
    mask = candidate & (lengths[runs] >= min_length)
    out = arr.copy()
    between = np.zeros(arr.shape)
    between[1:-1] = (arr[:-2] + arr[2:]) / 2
    out[mask] = between[mask]
    return (out, mask) if return_mask else out


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


def _check_threshold(threshold) -> None:
    """``ValueError`` unless ``threshold`` is a positive number (of robust standard deviations)."""
    if isinstance(threshold, bool) or not (isinstance(threshold, (int, float)) and np.isfinite(threshold)
                                           and threshold > 0):
        raise ValueError(f"threshold must be a positive number of robust standard deviations, got {threshold!r}")


def _pixel_size(pixel_size, name: str = "pixel_size") -> tuple[float, float]:
    if pixel_size is None:
        raise ValueError(f"{name} is missing: the physical pixel size (m) is needed")
    values = np.broadcast_to(np.asarray(pixel_size, dtype=float), (2,))
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{name} must be positive lengths in metres, got {pixel_size!r}")
    return float(values[0]), float(values[1])
