"""How close a reconstructed texture is to the true one: angles, ``m_z``, the Neel / Bloch character
of the in-plane part, the topological charge and the skyrmions (count, positions, radii).

The in-plane part ``m_par = (m_x, m_y)`` of each layer is split by a Helmholtz decomposition
(``helmholtz_parts``) into a curl-free (longitudinal, Neel-like: a radial in-plane field is a
gradient) and a divergence-free (transverse, Bloch-like: an azimuthal in-plane field is a curl)
part. A Neel skyrmion's in-plane part is curl-free, a Bloch skyrmion's divergence-free, so the
fraction of the in-plane power in the divergence-free part (the ``helicity`` here) is 0 for Neel
and 1 for Bloch textures, and the errors of the two parts tell a wrong helicity apart from a wrong
size or position.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..physics.analysis import topological_charge
from ..physics.grid import Grid
from ..runtime.arrays import as_numpy
from .pinning import find_skyrmions

ZERO_NORM = 1e-12
"""A norm below this times the square root of the number of cells counts as 0 (unit vectors: the
norm of a field of order 1 is about that square root); a relative error by a zero norm is NaN."""

MATCH_CELLS = 2.0
"""Skyrmions are matched within ``max(MATCH_CELLS cells, true radius)``."""

_UNITS = {
    "angle_error": "deg",
    "angle_error_max": "deg",
    "position_error": "m",
    "radius_error": "m",
}


@dataclass
class TextureMetrics:
    """Measures of a texture ``m`` against the true texture ``m_true`` (see ``texture_metrics``).

    Attributes
    ----------
    angle_error, angle_error_max : float
        Mean and largest angle between ``m`` and ``m_true`` over the magnetic cells (degrees).
    mz_correlation : float
        Pearson correlation of ``m_z`` and ``m_true_z`` over the magnetic cells (NaN if either is
        constant there).
    mz_rmse : float
        Root mean square of ``m_z - m_true_z`` over the magnetic cells (dimensionless).
    curl_free_error : float
        ``|P_cf(m) - P_cf(m_true)| / |P_cf(m_true)|``: relative L2 error of the curl-free
        (longitudinal, Neel-like) in-plane part, over all layers (NaN if ``P_cf(m_true)`` is 0).
    div_free_error : float
        ``|P_df(m) - P_df(m_true)| / |P_cf(m_true) + P_df(m_true)|``: error of the
        divergence-free (transverse, Bloch-like) in-plane part relative to the whole (mean-free)
        in-plane part of ``m_true``, not to its divergence-free part, which is about 0 for a Neel
        texture (NaN if ``m_true`` has no in-plane part beyond a uniform one).
    helicity, helicity_true : float
        ``|P_df|^2 / (|P_cf|^2 + |P_df|^2)`` of ``m`` and of ``m_true``: the fraction of the
        (mean-free) in-plane power that is divergence-free; 0 for Neel, 1 for Bloch textures (NaN
        without an in-plane part).
    charge, charge_true : float
        Topological charge (skyrmion number, mean over the layers) of ``m`` and ``m_true``.
    skyrmions, skyrmions_true : int
        Skyrmions found (``find_skyrmions``) in ``m`` and in ``m_true``.
    matched : int
        Skyrmions matched one to one within ``max(2 cells, true radius)`` of each other.
    position_error : float
        Mean distance between the centres of the matched pairs (m; NaN if none matched).
    radius_error : float
        Mean ``|r - r_true|`` of the matched pairs (m; NaN if none matched).
    """

    angle_error: float
    angle_error_max: float
    mz_correlation: float
    mz_rmse: float
    curl_free_error: float
    div_free_error: float
    helicity: float
    helicity_true: float
    charge: float
    charge_true: float
    skyrmions: int
    skyrmions_true: int
    matched: int
    position_error: float
    radius_error: float

    def to_dict(self) -> dict:
        """The metrics as plain Python floats and ints (NaN stays NaN), in field order."""
        return {name: int(value) if isinstance(value, (int, np.integer)) else float(value)
                for name, value in asdict(self).items()}

    def table(self) -> str:
        """One line ``name  value unit`` per metric (SI units; relative and count metrics have
        no unit)."""
        lines = []
        for name, value in self.to_dict().items():
            text = str(value) if isinstance(value, int) else f"{value:.6g}"
            lines.append(f"{name:<16s}{text:>14s} {_UNITS.get(name, '')}".rstrip())
        return "\n".join(lines)


def helmholtz_parts(m_par, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Split an in-plane vector field into its curl-free and its divergence-free part.

    Each layer is transformed by FFT and projected in k-space onto ``k^`` (the curl-free,
    longitudinal part) and onto ``z^ x k^`` (the divergence-free, transverse part).

    Conventions: the field's uniform part (its mean over the layer's cells, the k = 0 component)
    is put into neither part. A film (``grid.pbc`` False) is not periodic: the mean-free field is
    taken as zero outside the film, zero-padded to twice its size in x and y, decomposed there and
    cropped back. So ``curl_free + div_free == m_par - mean`` holds in the film to round-off (and
    in the padded domain too), but each part may leak slightly outside the film, and near the edges
    the parts depend on this convention. With ``grid.pbc`` the field is periodic and is not padded.

    Parameters
    ----------
    m_par : array or tensor (ny, nx, 2) or (nz, ny, nx, 2)
        The in-plane field, components ``(x, y)`` on the last axis (any unit; for a texture the
        dimensionless ``(m_x, m_y)``). Layers (any leading axes) are decomposed independently.
    grid : Grid
        The cell sizes ``dx, dy`` (m) and ``nx, ny``.

    Returns
    -------
    curl_free, div_free : ndarray, the shape of ``m_par``, float64
        The curl-free (longitudinal, Neel-like) and divergence-free (transverse, Bloch-like) parts.

    Raises
    ------
    ValueError
        If ``m_par`` is not ``(..., ny, nx, 2)`` for the grid or holds NaN or infinite values.
    """
    f = np.asarray(as_numpy(m_par), dtype=float)
    if f.ndim < 3 or f.shape[-3:] != (grid.ny, grid.nx, 2):
        raise ValueError(f"m_par must have shape (ny, nx, 2) or (nz, ny, nx, 2) = (..., {grid.ny}, {grid.nx}, 2) "
                         f"for the grid, got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("m_par contains NaN or infinite values")
    ny, nx = grid.ny, grid.nx
    f = f - f.mean(axis=(-3, -2), keepdims=True)
    py, px = (ny, nx) if grid.pbc else (2 * ny, 2 * nx)
    if not grid.pbc:
        f = np.pad(f, [(0, 0)] * (f.ndim - 3) + [(0, ny), (0, nx), (0, 0)])
    F = np.fft.fft2(f, axes=(-3, -2))
    kx = np.fft.fftfreq(px, d=grid.dx)[None, :]
    ky = np.fft.fftfreq(py, d=grid.dy)[:, None]
    k = np.hypot(kx, ky)
    k[0, 0] = 1.0
    ux, uy = kx / k, ky / k  # k^ (the 2 pi cancels); 0 at k = 0
    longitudinal = ux * F[..., 0] + uy * F[..., 1]
    curl_free = np.stack((ux * longitudinal, uy * longitudinal), axis=-1)
    div_free = F - curl_free
    div_free[..., 0, 0, :] = 0.0
    curl_free = np.fft.ifft2(curl_free, axes=(-3, -2)).real[..., :ny, :nx, :]
    div_free = np.fft.ifft2(div_free, axes=(-3, -2)).real[..., :ny, :nx, :]
    return curl_free, div_free


def _checked(m_value, m_true_value, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(as_numpy(m_value), dtype=float)
    m_true = np.asarray(as_numpy(m_true_value), dtype=float)
    if m.shape != m_true.shape:
        raise ValueError(f"m and m_true must have the same shape, got shapes {m.shape} and {m_true.shape}")
    if m.shape != grid.vector_shape:
        raise ValueError(f"m and m_true must have the grid's shape (nz, ny, nx, 3) = {grid.vector_shape}, "
                         f"got shape {m.shape}")
    for name, value in (("m", m), ("m_true", m_true)):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} contains NaN or infinite values")
    return m, m_true


def _ratio(num: float, den: float, cells: int) -> float:
    return num / den if den > ZERO_NORM * math.sqrt(cells) else math.nan


def _match(found, true, grid: Grid) -> tuple[int, float, float]:
    """Matched pairs, mean centre distance (m), mean radius difference (m)."""
    if len(found) == 0 or len(true) == 0:
        return 0, math.nan, math.nan
    distance = np.linalg.norm(found.centers[:, None, :] - true.centers[None, :, :], axis=-1)  # (found, true)
    allowed = distance <= np.maximum(MATCH_CELLS * max(grid.dx, grid.dy), true.radii)[None, :]
    # a cost above any sum of allowed distances: the assignment first has as many allowed pairs as
    # can be had, then the smallest total distance among them
    forbidden = 1.0 + distance[allowed].sum() * 2 if allowed.any() else 1.0
    rows, cols = linear_sum_assignment(np.where(allowed, distance, forbidden))
    keep = allowed[rows, cols]
    rows, cols = rows[keep], cols[keep]
    if len(rows) == 0:
        return 0, math.nan, math.nan
    position = float(distance[rows, cols].mean())
    radius = float(np.abs(found.radii[rows] - true.radii[cols]).mean())
    return len(rows), position, radius


def texture_metrics(m, m_true, grid: Grid) -> TextureMetrics:
    """Compare a texture with the true one.

    Parameters
    ----------
    m : array or tensor (nz, ny, nx, 3)
        The texture (e.g. a reconstruction): unit vectors, ``(x, y, z)`` components on the last
        axis. A cell where ``m`` is 0 but ``m_true`` is magnetic counts as 90 degrees off.
    m_true : array or tensor (nz, ny, nx, 3)
        The true texture; cells where ``|m_true| == 0`` are vacuum and are left out of the angles
        and the ``m_z`` correlation and RMS error.
    grid : Grid
        The grid of both (cell sizes in m).

    Returns
    -------
    TextureMetrics
        Angles in degrees, lengths in m. The in-plane errors and the helicities sum the squared
        norms over all layers (each layer is decomposed by ``helmholtz_parts``; uniform in-plane
        parts are left out). Skyrmions are found by ``find_skyrmions`` (on the mean over the
        layers) and matched one to one (``scipy.optimize.linear_sum_assignment``, as many pairs
        as can be had, then the smallest total distance) within ``max(2 cells, true radius)``,
        the cell being the larger of ``dx, dy``.

    Raises
    ------
    ValueError
        If the shapes differ from each other or from ``grid.vector_shape``, if either holds NaN or
        infinite values, or if ``m_true`` has no magnetic cell.
    """
    m, m_true = _checked(m, m_true, grid)
    magnetic = np.linalg.norm(m_true, axis=-1) > 0
    if not magnetic.any():
        raise ValueError("m_true has no magnetic cell (|m_true| is 0 everywhere)")
    a, b = m[magnetic], m_true[magnetic]
    norm_a = np.linalg.norm(a, axis=-1)
    a_unit = a / np.where(norm_a > 0, norm_a, 1.0)[:, None]
    b_unit = b / np.linalg.norm(b, axis=-1)[:, None]
    # atan2 of |a x b| and a . b: accurate at small angles, where arccos of the dot product is not
    angle = np.degrees(np.arctan2(np.linalg.norm(np.cross(a_unit, b_unit), axis=-1), (a_unit * b_unit).sum(-1)))
    angle = np.where(norm_a > 0, angle, 90.0)
    za, zb = a[:, 2], b[:, 2]
    da, db = za - za.mean(), zb - zb.mean()
    den = math.sqrt(float((da * da).sum()) * float((db * db).sum()))
    correlation = float((da * db).sum()) / den if den > ZERO_NORM * len(za) else math.nan

    cells = m.shape[0] * m.shape[1] * m.shape[2]
    cf, df = helmholtz_parts(m[..., :2], grid)
    cf_true, df_true = helmholtz_parts(m_true[..., :2], grid)

    def power(v):
        return float((v * v).sum())

    def helicity(c, d):
        total = power(c) + power(d)
        return power(d) / total if math.sqrt(total) > ZERO_NORM * math.sqrt(cells) else math.nan

    found, true = find_skyrmions(m, grid), find_skyrmions(m_true, grid)
    matched, position_error, radius_error = _match(found, true, grid)
    return TextureMetrics(
        angle_error=float(angle.mean()),
        angle_error_max=float(angle.max()),
        mz_correlation=correlation,
        mz_rmse=float(np.sqrt(np.mean((za - zb) ** 2))),
        curl_free_error=_ratio(math.sqrt(power(cf - cf_true)), math.sqrt(power(cf_true)), cells),
        div_free_error=_ratio(math.sqrt(power(df - df_true)), math.sqrt(power(cf_true + df_true)), cells),
        helicity=helicity(cf, df),
        helicity_true=helicity(cf_true, df_true),
        charge=topological_charge(m),
        charge_true=topological_charge(m_true),
        skyrmions=len(found),
        skyrmions_true=len(true),
        matched=matched,
        position_error=position_error,
        radius_error=radius_error,
    )
