"""Bias fields and starting textures shaped from a measured image.

A stray-field or MFM image is linear in ``M = Ms m``. For a film magnetized mostly out of plane,
``m_z`` is estimated from the image (``perpendicular_estimate``): the image of a uniform film (its
edge charges) gives the background level, and early-stopped least squares (conjugate gradients
on the normal equations of ``min |K(Ms m_z z^) - rest|^2``, ``K`` the measurement's forward
operator) the deviations from it:
the few leading singular directions carry the domain layout, the noisy rest is left out. The
deviation, scaled to ``[-1, 1]`` (``b``), shapes

- a bias field ``H_b = strength * H_K * b(x, y) z^`` with ``H_K = 2 Ku / (mu0 Ms)``, which holds the
  texture in the measured configuration while the material parameters change, and
- a starting texture ``m_z = +-1`` (the background's sign, and the opposite one where ``b`` points
  against it by more than half its extreme), for a fit without a given start, and
- a bias along those domains themselves (``domain_bias_shape``), background included, which holds
  the domains' sizes as well as their positions.

The outer two cells are taken from the interior: there the estimate mostly shows the edge charges
of the uniform background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from ..physics.grid import MU0, Grid
from ..solvers.krylov import normal_equations
from ..forward.measurement import simulate_image


def _simulate_mz(measurement, grid: Grid, Ms: float, mz: torch.Tensor) -> torch.Tensor:
    """Image of the perpendicular texture ``m = (0, 0, mz)`` (``mz (ny, nx)``, not unit)."""
    m = torch.stack((torch.zeros_like(mz), torch.zeros_like(mz), mz), dim=-1).expand(grid.vector_shape)
    return simulate_image(measurement, m, grid, Ms)


@dataclass
class PerpendicularEstimate:
    """``m_z ~ background + deviation`` estimated from an image.

    ``background`` (dimensionless) is the least-squares level of a uniform ``m_z`` (about +-1 for a
    saturated background, about 0 for a balanced domain pattern); ``deviation`` ``(ny, nx)`` the
    early-stopped least-squares estimate of the rest (blurred, not to scale).
    """

    background: float
    deviation: np.ndarray


def perpendicular_estimate(target, grid: Grid, measurement, Ms: float, iterations: int = 25) -> PerpendicularEstimate:
    """Estimate ``m_z`` of a mostly perpendicular film from its image.

    The image of a uniform ``m_z = 1`` film (its edge charges) and a constant offset are fitted
    first by least squares; their coefficient of the uniform film is the background. The rest is
    inverted by ``iterations`` conjugate-gradient steps on the normal equations of
    ``min |K(Ms m_z z^) - rest|^2`` (early stopping regularizes).

    Parameters
    ----------
    target : array (ny, nx)
        The measured image in the measurement's units.
    grid : Grid
    measurement : StrayFieldMeasurement or MFMMeasurement
    Ms : float
        Saturation magnetization (A/m) used for the forward operator.
    iterations : int
        Conjugate-gradient iterations.

    Returns
    -------
    PerpendicularEstimate
    """
    t = grid.tensor(np.asarray(target, dtype=float))

    def forward(mz):
        return _simulate_mz(measurement, grid, Ms, mz)

    def adjoint(r):
        mz = torch.zeros((grid.ny, grid.nx), dtype=grid.dtype, device=grid.device, requires_grad=True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad((forward(mz) * r).sum(), mz)
        return g

    uniform = forward(torch.ones((grid.ny, grid.nx), dtype=grid.dtype, device=grid.device))
    basis = torch.stack((uniform.reshape(-1), torch.ones_like(uniform).reshape(-1)), dim=1)
    coeffs = torch.linalg.lstsq(basis, t.reshape(-1, 1)).solution.reshape(-1)
    background = float(coeffs[0])
    rest = t - (basis @ coeffs).reshape(t.shape)
    x = normal_equations(forward, adjoint, rest, (grid.ny, grid.nx), iterations)
    return PerpendicularEstimate(background, x.detach().cpu().numpy())


def _interior_edge_padded(b: np.ndarray, border: int) -> np.ndarray:
    """``b`` smoothed over about a cell (a Gaussian of one cell, which removes the grid-scale ringing
    of the inversion) with its outer ``border`` cells replaced by the nearest interior value (there
    the estimate mostly shows what the background's edge charges leave)."""
    b = ndimage.gaussian_filter(np.asarray(b, dtype=float), sigma=1.0, mode="nearest")
    ny, nx = b.shape
    if min(ny, nx) <= 2 * border + 2:
        return b
    return np.pad(b[border:ny - border, border:nx - border], border, mode="edge")


def bias_shape(estimate: PerpendicularEstimate, border: int = 2) -> np.ndarray:
    """Bias shape from an estimate: its deviation with the edges padded from the interior, scaled to
    max ``|shape| = 1``; ``(ny, nx)``."""
    b = _interior_edge_padded(estimate.deviation, border)
    scale = np.abs(b).max()
    return b / scale if scale > 0 else b


def texture_bias_shape(m: np.ndarray) -> np.ndarray:
    """Bias shape from a starting texture ``m (nz, ny, nx, 3)`` (e.g. the U-Net's): its layer-mean
    ``m_z`` minus the median, smoothed over about a cell and scaled to max ``|shape| = 1``; ``(ny, nx)``.
    It holds the start's skyrmions and domains where they are, as ``bias_shape`` does for an estimate."""
    mz = np.asarray(m, dtype=float)[..., 2].mean(axis=0)
    b = ndimage.gaussian_filter(mz - np.median(mz), sigma=1.0, mode="nearest")
    scale = np.abs(b).max()
    return b / scale if scale > 0 else b


def bias_from_shape(shape: np.ndarray, grid: Grid, strength: float, Ms: float, Ku: float) -> np.ndarray:
    """Bias field ``strength * 2 Ku / (mu0 Ms) * shape`` along z, ``(nz, ny, nx, 3)`` in A/m."""
    h = np.zeros(grid.vector_shape)
    h[..., 2] = strength * 2 * Ku / (MU0 * Ms) * np.asarray(shape)
    return h


def _domains(estimate: PerpendicularEstimate, border: int) -> np.ndarray:
    """``m_z = +-1`` ``(ny, nx)`` from an estimate: the background's sign (+1 if it is 0), and the
    opposite one where the deviation (edges padded from the interior) points against it by more
    than half the largest such deviation."""
    sign = 1.0 if estimate.background >= 0 else -1.0
    against = -_interior_edge_padded(estimate.deviation, border) * sign
    extreme = against.max()
    return np.where(against > 0.5 * extreme, -sign, sign) if extreme > 0 else np.full(against.shape, sign)


def domain_bias_shape(estimate: PerpendicularEstimate, border: int = 2) -> np.ndarray:
    """Bias shape along the estimated magnetization itself, background included: the ``m_z = +-1``
    domains of ``texture_from_estimate`` smoothed over about a cell; ``(ny, nx)``, max ``|shape| <= 1``.

    ``bias_shape`` follows the deviation from the background, which is about 0 over a saturated
    background: it pushes skyrmion cores along themselves and holds their positions, but nothing
    pushes back on a wall that moves outwards. Where the wall energy at the trial parameters is
    negative (a free skyrmion grows towards a stripe), only a field along the background as well
    holds the measured sizes.
    """
    return ndimage.gaussian_filter(_domains(estimate, border), sigma=1.0, mode="nearest")


def texture_from_estimate(estimate: PerpendicularEstimate, grid: Grid, border: int = 2, seed: int = 0) -> np.ndarray:
    """Starting texture from an estimate, ``(nz, ny, nx, 3)``.

    The background takes the sign of ``estimate.background`` (+1 if it is 0); cells whose deviation
    points against it by more than half the largest such deviation (edges padded from the interior)
    take the opposite sign: skyrmion cores, bubbles, the minority domains. A small random in-plane
    tilt lets the relaxation pick the wall chirality.
    """
    mz = _domains(estimate, border)
    rng = np.random.default_rng(seed)
    m = np.zeros(grid.vector_shape)
    m[..., :2] = 0.05 * rng.standard_normal(grid.vector_shape[:-1] + (2,))
    m[..., 2] = mz
    return m / np.linalg.norm(m, axis=-1, keepdims=True)
