"""Measurements on magnetization states (skyrmion size, averages)."""

from __future__ import annotations

import numpy as np
from skimage import measure

from .arrays import as_numpy
from .grid import Grid


def skyrmion_radius(m, grid: Grid, layer: int = 0) -> float:
    """Radius (m) of the ``m_z = 0`` contour of the largest closed skyrmion in one layer.

    The contour is found by linear interpolation between cell centres (marching squares) and
    its enclosed area ``A`` by the shoelace formula; the radius is ``sqrt(A / pi)``.

    Parameters
    ----------
    m : array or tensor ``(nz, ny, nx, 3)``
    grid : Grid
    layer : int
        Index of the layer (z) to measure.

    Raises
    ------
    ValueError
        If no closed ``m_z = 0`` contour lies inside the grid.
    """
    mz = as_numpy(m)[layer, :, :, 2]
    best = 0.0
    for contour in measure.find_contours(mz, 0.0):
        if not np.allclose(contour[0], contour[-1]):
            continue  # open contour: touches the grid edge
        y, x = contour[:, 0] * grid.dy, contour[:, 1] * grid.dx
        area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
        best = max(best, area)
    if best == 0.0:
        raise ValueError("no closed m_z = 0 contour (skyrmion) found in the layer")
    return float(np.sqrt(best / np.pi))
