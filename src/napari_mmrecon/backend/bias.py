"""Bias fields and starting textures shaped from a measured image.

A stray-field or MFM image is linear in ``M = Ms m``. For a film magnetized mostly out of plane,
``m_z`` is estimated from the image by early-stopped least squares (CGLS on
``min |K(Ms m_z z^) - target|^2``, ``K`` the measurement's forward operator): the few leading
singular directions carry the domain layout, the noisy rest is left out. The estimate, scaled to
``[-1, 1]``, shapes

- a bias field ``H_b = strength * H_K * b(x, y) z^`` with ``H_K = 2 Ku / (mu0 Ms)``, which holds the
  texture in the measured configuration while the material parameters change, and
- a starting texture ``m_z = +-1`` (minority domains where ``b`` passes half its extreme excursion
  from the median), for a fit without a given start.

The outer two cells are taken from the interior: there the estimate mostly shows the edge charges
of the uniform background.
"""

from __future__ import annotations

import numpy as np
import torch

from .grid import MU0, Grid
from .measurement import simulate_image


def _simulate_mz(measurement, grid: Grid, Ms: float, mz: torch.Tensor) -> torch.Tensor:
    """Image of the perpendicular texture ``m = (0, 0, mz)`` (``mz (ny, nx)``, not unit)."""
    m = torch.stack((torch.zeros_like(mz), torch.zeros_like(mz), mz), dim=-1).expand(grid.vector_shape)
    return simulate_image(measurement, m, grid, Ms)


def perpendicular_estimate(target, grid: Grid, measurement, Ms: float, iterations: int = 25) -> np.ndarray:
    """Estimate of ``m_z`` (``(ny, nx)``, scaled to max ``|b| = 1``) from an image.

    Parameters
    ----------
    target : array (ny, nx)
        The measured image in the measurement's units.
    grid : Grid
    measurement : StrayFieldMeasurement or MFMMeasurement
    Ms : float
        Saturation magnetization (A/m) used for the forward operator.
    iterations : int
        CGLS iterations (early stopping regularizes).

    Returns
    -------
    ndarray (ny, nx) in ``[-1, 1]``.
    """
    t = torch.as_tensor(np.asarray(target, dtype=float), dtype=grid.dtype, device=grid.device)
    t = t - t.mean()

    def forward(mz):
        return _simulate_mz(measurement, grid, Ms, mz)

    def adjoint(r):
        mz = torch.zeros((grid.ny, grid.nx), dtype=grid.dtype, device=grid.device, requires_grad=True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad((forward(mz) * r).sum(), mz)
        return g

    x = torch.zeros((grid.ny, grid.nx), dtype=grid.dtype, device=grid.device)
    r = t.clone()
    s = adjoint(r)
    p = s.clone()
    gamma = (s * s).sum()
    for _ in range(iterations):
        if float(gamma) == 0.0:
            break
        q = forward(p)
        alpha = gamma / (q * q).sum()
        x = x + alpha * p
        r = r - alpha * q
        s = adjoint(r)
        gamma_new = (s * s).sum()
        p = s + (gamma_new / gamma) * p
        gamma = gamma_new
    scale = float(x.abs().max())
    b = x / scale if scale > 0 else x
    return b.detach().cpu().numpy()


def _interior_edge_padded(b: np.ndarray, border: int) -> np.ndarray:
    """``b`` with its outer ``border`` cells replaced by the nearest interior value (the estimate is
    unreliable at the film edges, where the uniform background's edge charges sit)."""
    ny, nx = b.shape
    if min(ny, nx) <= 2 * border + 2:
        return b
    return np.pad(b[border:ny - border, border:nx - border], border, mode="edge")


def bias_shape(estimate: np.ndarray, border: int = 2) -> np.ndarray:
    """Bias shape from ``perpendicular_estimate``: edges padded from the interior, the background
    (median) removed, scaled to max ``|shape| = 1``; ``(ny, nx)``."""
    b = _interior_edge_padded(np.asarray(estimate, dtype=float), border)
    b = b - np.median(b)
    scale = np.abs(b).max()
    return b / scale if scale > 0 else b


def bias_from_shape(shape: np.ndarray, grid: Grid, strength: float, Ms: float, Ku: float) -> np.ndarray:
    """Bias field ``strength * 2 Ku / (mu0 Ms) * shape`` along z, ``(nz, ny, nx, 3)`` in A/m."""
    h = np.zeros(grid.vector_shape)
    h[..., 2] = strength * 2 * Ku / (MU0 * Ms) * np.asarray(shape)
    return h


def texture_from_estimate(estimate: np.ndarray, grid: Grid, border: int = 2, seed: int = 0) -> np.ndarray:
    """Starting texture from ``perpendicular_estimate``, ``(nz, ny, nx, 3)``.

    With ``c = b - median(b)`` (edges padded from the interior), the side of the larger excursion
    of ``c`` is taken as the minority domains (skyrmion cores, bubbles): ``m_z`` has the minority
    sign where ``|c|`` exceeds half that excursion on that side, the majority sign elsewhere; a small
    random in-plane tilt lets the relaxation pick the wall chirality.
    """
    b = _interior_edge_padded(np.asarray(estimate, dtype=float), border)
    c = b - np.median(b)
    low, high = -c.min(), c.max()
    minority = 1.0 if high >= low else -1.0
    extreme = max(low, high)
    mz = np.where(minority * c > 0.5 * extreme, minority, -minority) if extreme > 0 else np.ones_like(c)
    rng = np.random.default_rng(seed)
    m = np.zeros(grid.vector_shape)
    m[..., :2] = 0.05 * rng.standard_normal(grid.vector_shape[:-1] + (2,))
    m[..., 2] = mz
    return m / np.linalg.norm(m, axis=-1, keepdims=True)
