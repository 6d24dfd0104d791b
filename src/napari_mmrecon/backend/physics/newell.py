"""Cell-averaged demagnetizing tensor of two equal cuboid cells (Newell, Williams, Dunlop 1993).

``N_ab(X)`` relates the volume-averaged field in a target cell to the uniform magnetization of a
source cell displaced by ``-X``: ``<H_a> = -N_ab M_b``. Offsets are integer multiples of the cell
size ``(i dx, j dy, k dz)``. Near cells use Newell's closed forms, evaluated in numpy extended
precision (``np.longdouble``) because their 27-point second differences cancel about
``(r/d)^6`` of the leading digits; cells farther than ``FAR_CELLS`` cell sizes use the point
dipole, whose relative error there is below ``(1/FAR_CELLS)^2``.
"""

from __future__ import annotations

import math

import numpy as np

FAR_CELLS = 64.0
"""Distance (in units of the largest cell size) beyond which the point dipole is used."""

COMPONENTS = ("xx", "yy", "zz", "xy", "xz", "yz")


def _asinh_term(pref, num, den):
    """``pref * asinh(num / den)``, with the term set to 0 where ``den == 0`` (pref -> 0 there)."""
    safe = np.where(den > 0, den, 1)
    return np.where(den > 0, pref * np.arcsinh(num / safe), 0)


def _atan_term(pref, num, den):
    """``pref * atan(num / den)`` with the term set to 0 where ``den == 0`` (pref -> 0 there)."""
    safe = np.where(den != 0, den, 1)
    return np.where(den != 0, pref * np.arctan(num / safe), 0)


def newell_f(x, y, z):
    """Newell's ``f(x, y, z)`` (even in every argument); lengths in any consistent unit."""
    x2, y2, z2 = x * x, y * y, z * z
    r = np.sqrt(x2 + y2 + z2)
    out = (2 * x2 - y2 - z2) * r / 6
    out = out + _asinh_term(y / 2 * (z2 - x2), y, np.sqrt(x2 + z2))
    out = out + _asinh_term(z / 2 * (y2 - x2), z, np.sqrt(x2 + y2))
    out = out - _atan_term(x * y * z, y * z, x * r)
    return out


def newell_g(x, y, z):
    """Newell's ``g(x, y, z)`` (odd in x and y, even in z)."""
    x2, y2, z2 = x * x, y * y, z * z
    r = np.sqrt(x2 + y2 + z2)
    out = -x * y * r / 3
    out = out + _asinh_term(x * y * z, z, np.sqrt(x2 + y2))
    out = out + _asinh_term(y / 6 * (3 * z2 - y2), x, np.sqrt(y2 + z2))
    out = out + _asinh_term(x / 6 * (3 * z2 - x2), y, np.sqrt(x2 + z2))
    out = out - _atan_term(z * z2 / 6, x * y, z * r)
    out = out - _atan_term(z * y2 / 2, x * z, y * r)
    out = out - _atan_term(z * x2 / 2, y * z, x * r)
    return out


def _second_difference(values: np.ndarray, axis: int, odd: bool) -> np.ndarray:
    """``2 F(i) - F(i-1) - F(i+1)`` along ``axis`` for i = 0..n-2 of nodes F(0..n-1).

    F(-1) is taken from the parity of F: ``F(1)`` if even, ``-F(1)`` if odd.
    """
    v = np.moveaxis(values, axis, 0)
    below = np.concatenate([(-v[1:2] if odd else v[1:2]), v[:-2]], axis=0)
    out = 2 * v[:-1] - below - v[1:]
    return np.moveaxis(out, 0, axis)


def _newell_octant(func, odd_axes, counts, cell):
    """Newell tensor component on offsets ``0..counts[a]-1`` (axes z, y, x), from ``func``.

    ``func`` is called as ``func(u, v, w)`` where (u, v, w) are the coordinates permuted as the
    caller arranged; ``cell`` are the cell sizes in the same (z, y, x) order.
    """
    nz, ny, nx = counts
    dz, dy, dx = cell
    z = np.arange(nz + 1, dtype=np.longdouble)[:, None, None] * dz
    y = np.arange(ny + 1, dtype=np.longdouble)[None, :, None] * dy
    x = np.arange(nx + 1, dtype=np.longdouble)[None, None, :] * dx
    nodes = func(z, y, x)
    for axis in range(3):
        nodes = _second_difference(nodes, axis, odd=axis in odd_axes)
    return nodes / (4 * math.pi * dx * dy * dz)


def newell_octant(counts, cell) -> dict:
    """All six tensor components on the non-negative offsets ``(0..nz-1, 0..ny-1, 0..nx-1)``.

    Parameters
    ----------
    counts : (nz, ny, nx)
        Number of offsets per axis.
    cell : (dz, dy, dx)
        Cell size (any length unit; the tensor is dimensionless).

    Returns
    -------
    dict of component name -> float64 array (nz, ny, nx).
    """
    scale = max(cell)
    dz, dy, dx = (np.longdouble(c) / np.longdouble(scale) for c in cell)
    cell_n = (dz, dy, dx)
    out = {
        "xx": _newell_octant(lambda z, y, x: newell_f(x, y, z), (), counts, cell_n),
        "yy": _newell_octant(lambda z, y, x: newell_f(y, x, z), (), counts, cell_n),
        "zz": _newell_octant(lambda z, y, x: newell_f(z, y, x), (), counts, cell_n),
        "xy": _newell_octant(lambda z, y, x: newell_g(x, y, z), (1, 2), counts, cell_n),
        "xz": _newell_octant(lambda z, y, x: newell_g(x, z, y), (0, 2), counts, cell_n),
        "yz": _newell_octant(lambda z, y, x: newell_g(y, z, x), (0, 1), counts, cell_n),
    }
    return {k: v.astype(np.float64) for k, v in out.items()}


def dipole_tensor(kz, ky, kx, cell) -> dict:
    """Point-dipole approximation of the tensor at integer offsets (arrays broadcast together).

    ``N_ab = V / (4 pi) (delta_ab / r^3 - 3 r_a r_b / r^5)``; undefined (set to 0) at r = 0.
    """
    dz, dy, dx = cell
    z, y, x = kz * dz, ky * dy, kx * dx
    r2 = x * x + y * y + z * z
    safe = np.where(r2 > 0, r2, 1.0)
    inv3 = np.where(r2 > 0, safe ** -1.5, 0.0)
    inv5 = inv3 / safe
    pref = dx * dy * dz / (4 * math.pi)
    comps = {"x": x, "y": y, "z": z}
    out = {}
    for name in COMPONENTS:
        a, b = comps[name[0]], comps[name[1]]
        diag = inv3 if name[0] == name[1] else 0.0
        out[name] = pref * (diag - 3 * a * b * inv5)
    return out


PARITY = {
    # sign of each component under (z -> -z, y -> -y, x -> -x)
    "xx": (1, 1, 1),
    "yy": (1, 1, 1),
    "zz": (1, 1, 1),
    "xy": (1, -1, -1),
    "xz": (-1, 1, -1),
    "yz": (-1, -1, 1),
}


def demag_tensor(kz, ky, kx, cell) -> dict:
    """Cell-averaged tensor at integer offsets ``kz, ky, kx`` (int arrays broadcasting together).

    Newell's formula within ``FAR_CELLS`` cell sizes, point dipole beyond.

    Parameters
    ----------
    kz, ky, kx : int arrays
        Offsets in cells (any sign).
    cell : (dz, dy, dx)
        Cell size in metres.

    Returns
    -------
    dict of the six components (``COMPONENTS``), float64 arrays of the broadcast shape.
    """
    kz, ky, kx = np.broadcast_arrays(*(np.asarray(k, dtype=np.int64) for k in (kz, ky, kx)))
    dz, dy, dx = cell
    out = dipole_tensor(kz.astype(float), ky.astype(float), kx.astype(float), cell)
    dist = np.sqrt((kz * dz) ** 2 + (ky * dy) ** 2 + (kx * dx) ** 2) / max(cell)
    near = dist < FAR_CELLS
    if not near.any():
        return out
    az, ay, ax = np.abs(kz[near]), np.abs(ky[near]), np.abs(kx[near])
    octant = newell_octant((int(az.max()) + 1, int(ay.max()) + 1, int(ax.max()) + 1), cell)
    for name in COMPONENTS:
        pz, py, px = PARITY[name]
        sign = np.where(kz[near] < 0, pz, 1) * np.where(ky[near] < 0, py, 1) * np.where(kx[near] < 0, px, 1)
        out[name][near] = sign * octant[name][az, ay, ax]
    return out
