"""Measurements on magnetization states (skyrmion size, averages)."""

from __future__ import annotations

import numpy as np
import torch
from skimage import measure

from ..runtime.arrays import as_numpy
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


def topological_charge(m) -> float:
    """Skyrmion number ``Q = 1/(4 pi) int m . (d_x m x d_y m) dx dy`` of each layer, averaged over layers.

    Computed on the lattice (Berg and Luescher, Nucl. Phys. B 190, 412 (1981)): every square of four
    neighbouring cell centres is split into two triangles whose signed solid angles sum to ``4 pi Q``,
    so ``Q`` is an integer for a texture that is smooth on the grid scale. A core-down skyrmion in an
    up background (mumax3 / this package's convention) has ``Q = -1``; open edges with tilted spins add
    a small non-integer part.

    Parameters
    ----------
    m : array or tensor ``(nz, ny, nx, 3)``, unit vectors (torch tensors stay on their device).
    """
    t = m if isinstance(m, torch.Tensor) else torch.as_tensor(np.asarray(m, dtype=float))
    a, b = t[:, :-1, :-1], t[:, :-1, 1:]
    c, d = t[:, 1:, 1:], t[:, 1:, :-1]
    total = _solid_angle(a, b, c) + _solid_angle(a, c, d)
    return float(total.sum() / (4 * np.pi * t.shape[0]))


def _solid_angle(a, b, c):
    """Signed solid angle of the spherical triangle of unit vectors ``a, b, c`` (last axis)."""
    num = (a * torch.linalg.cross(b, c, dim=-1)).sum(-1)
    den = 1 + (a * b).sum(-1) + (b * c).sum(-1) + (c * a).sum(-1)
    return 2 * torch.atan2(num, den)
