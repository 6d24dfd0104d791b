"""Skyrmions held where an image has them: a pinning energy on each skyrmion's position.

Why: in a film of many skyrmions the positions are soft modes. In an ideal film they are set by
interactions that fall off exponentially with distance, in a measured one by defects. A state
relaxed to a torque of 1e-4 can still sit 0.2 nm and 1 % in radius away from the tight
equilibrium (the bundled lattice), and a fit that lets the positions relax turns that into
parameter errors of tens of percent along the nearly flat A-Ku-D direction. A fit therefore
holds each skyrmion's position, and only its position, where the image shows it.

The energy: for skyrmion ``i`` with centre ``c_i`` the first moment of its reversed
magnetization in a Gaussian window ``w_i`` (width ``WINDOW`` times its radius, cut to the cells
nearer to it than to any other skyrmion),

    C_i(m) = -1/2 sum_cells a_i(r) (mbar_z(r) - s),   a_i(r) = w_i(r) (r - c_i) / (d area_i),

(``s`` the background's sign, ``mbar_z`` the mean over the layers, ``d`` the cell size, ``area_i``
the skyrmion's area in cells) is about its displacement from ``c_i`` in cells, and
``E_pin = kappa / 2 sum_i |C_i|^2``. A skyrmion symmetric about ``c_i`` has ``C_i = 0``: it feels no
force and its size and profile are not changed; a displaced one is pulled back. The field is
``H_z = kappa / (2 nz mu0 Ms V) sum_i C_i . a_i``, affine in ``m`` (a linear part plus a constant),
so the energy stays quadratic, the minimizer and the implicit gradients treat it like any other
term, and the translation modes get a stiffness ``kappa`` per cell^2 of displacement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from ..physics.grid import MU0, Grid

WINDOW = 1.0
"""Width (standard deviation) of the Gaussian window of a skyrmion in units of its radius (at
least one cell)."""
WINDOW_CUTOFF = 1e-2
"""Window values below this are set to 0; each cell also belongs to its nearest skyrmion only, so
that the windows of neighbours do not overlap."""
MAX_RADIUS_FRACTION = 0.25
"""Reversed regions with an equivalent radius above this fraction of the smaller in-plane size are
domains, not skyrmions, and are not pinned."""


@dataclass
class Skyrmions:
    """Skyrmions found in a texture: centres ``(N, 2)`` as ``(x, y)`` in m from the grid origin
    (cell centres at ``(i + 1/2) d``), equivalent radii ``(N,)`` in m, and the background sign."""

    centers: np.ndarray
    radii: np.ndarray
    background: float

    def __len__(self) -> int:
        return len(self.radii)


def find_skyrmions(m, grid: Grid) -> Skyrmions:
    """Closed regions of reversed ``m_z`` (against the background's sign) in a texture.

    Parameters
    ----------
    m : array or tensor (nz, ny, nx, 3)
        The magnetization (the mean over the layers is used).
    grid : Grid

    Returns
    -------
    Skyrmions
        Centres are the ``(1 - s m_z) / 2``-weighted centroids of each region, radii
        ``sqrt(area / pi)``. Left out: regions that touch the film's edge (cut skyrmions, edge
        domains: the edge holds them), regions larger than ``MAX_RADIUS_FRACTION`` of the film
        (domains), and single cells.
    """
    mz = m[..., 2].mean(0) if isinstance(m, np.ndarray) else m[..., 2].mean(0).detach().cpu().numpy()
    s = 1.0 if float(np.mean(mz)) >= 0 else -1.0
    labels, count = ndimage.label(s * mz < 0)
    weight = (1 - s * mz) / 2
    limit = (MAX_RADIUS_FRACTION * min(grid.nx * grid.dx, grid.ny * grid.dy)) ** 2 * np.pi
    centers, radii = [], []
    for index in range(1, count + 1):
        region = labels == index
        area = region.sum() * grid.dx * grid.dy
        touches = region[0].any() or region[-1].any() or region[:, 0].any() or region[:, -1].any()
        if region.sum() < 2 or area > limit or touches:
            continue
        cy, cx = ndimage.center_of_mass(np.where(region, weight, 0.0))
        centers.append(((cx + 0.5) * grid.dx, (cy + 0.5) * grid.dy))
        radii.append(np.sqrt(area / np.pi))
    return Skyrmions(np.asarray(centers, dtype=float).reshape(-1, 2), np.asarray(radii, dtype=float), s)


class SkyrmionPinning:
    """The pinning energy of a set of skyrmions (see the module docstring).

    Parameters
    ----------
    grid : Grid
    skyrmions : Skyrmions
        Radii and background sign; the centres are taken from ``centers`` when given.
    stiffness : float
        ``kappa`` (J per cell^2 of displacement).
    centers : tensor (N, 2), optional
        Centres ``(x, y)`` (m) where the skyrmions are held.
    """

    def __init__(self, grid: Grid, skyrmions: Skyrmions, stiffness: float, centers: torch.Tensor | None = None):
        self.grid = grid
        self.skyrmions = skyrmions
        self.stiffness = float(stiffness)
        self.background = skyrmions.background
        if centers is None:
            centers = grid.tensor(skyrmions.centers)
        self.centers = centers.detach().reshape(-1, 2).to(dtype=grid.dtype, device=grid.device)
        self.moments = self._moments(self.centers)

    def _moments(self, centers: torch.Tensor) -> torch.Tensor:
        """``a_i`` for x and y of every skyrmion, ``(2N, ny, nx)`` (1/cell); sets ``regions``."""
        g = self.grid
        radii = torch.as_tensor(self.skyrmions.radii, dtype=g.dtype, device=g.device)
        x = (torch.arange(g.nx, dtype=g.dtype, device=g.device) + 0.5) * g.dx
        y = (torch.arange(g.ny, dtype=g.dtype, device=g.device) + 0.5) * g.dy
        dx = (x.reshape(1, 1, -1) - centers[:, 0].reshape(-1, 1, 1)) / g.dx  # cells
        dy = (y.reshape(1, -1, 1) - centers[:, 1].reshape(-1, 1, 1)) / g.dy
        distance2 = dx * dx + dy * dy
        sigma = WINDOW * torch.clamp(radii / min(g.dx, g.dy), min=1.0).reshape(-1, 1, 1)
        w = torch.exp(-distance2 / (2 * sigma * sigma))
        nearest = distance2 <= distance2.min(dim=0, keepdim=True).values  # each cell to its nearest skyrmion
        self.regions = ((w >= WINDOW_CUTOFF) & nearest).to(g.dtype)
        w = w * self.regions
        area = (np.pi * radii * radii / (g.dx * g.dy)).reshape(-1, 1, 1)
        return torch.stack((w * dx / area, w * dy / area), dim=1).reshape(-1, g.ny, g.nx)

    def moved_to(self, centers: torch.Tensor) -> "SkyrmionPinning":
        """The same pinning with other centres ``(N, 2)`` (m)."""
        return SkyrmionPinning(self.grid, self.skyrmions, self.stiffness, centers)

    def centered_on(self, m: torch.Tensor, iterations: int = 20, tol: float = 1e-6) -> "SkyrmionPinning":
        """The pinning whose centres hold ``m`` (``(nz, ny, nx, 3)``) without force: ``C_i(m) = 0``.

        Fixed-point steps ``c <- c + C(m; c) d`` (``C`` is about the displacement in cells) until the
        largest ``|C|`` is below ``tol`` cells.
        """
        pinning = self
        scale = torch.tensor([self.grid.dx, self.grid.dy], dtype=self.grid.dtype, device=self.grid.device)
        for _ in range(iterations):
            C = pinning.moment(m.detach()).reshape(-1, 2)
            if not bool(C.numel()) or float(C.abs().max()) < tol:
                break
            pinning = pinning.moved_to(pinning.centers + C * scale)
        return pinning

    def moment(self, m: torch.Tensor) -> torch.Tensor:
        """``C (..., 2N)``: each skyrmion's displacement from its centre (cells), x and y."""
        mz = m[..., 2].mean(-3)
        return -0.5 * torch.einsum("kyx,...yx->...k", self.moments, mz - self.background)

    def _field_of(self, C: torch.Tensor, Ms: torch.Tensor, shape) -> torch.Tensor:
        g = self.grid
        coefficient = self.stiffness / (2 * g.nz * MU0 * g.cell_volume)
        hz = coefficient * torch.einsum("...k,kyx->...yx", C, self.moments).unsqueeze(-3)
        inv_Ms = torch.where(Ms > 0, 1 / torch.where(Ms > 0, Ms, torch.ones_like(Ms)), torch.zeros_like(Ms))
        hz = hz * inv_Ms
        h = torch.zeros(shape, dtype=g.dtype, device=g.device)
        h[..., 2] = hz.expand(shape[:-1])
        return h

    def linear_field(self, v: torch.Tensor, Ms: torch.Tensor) -> torch.Tensor:
        """The part of the field linear in ``v`` (A/m), ``v``'s shape."""
        C = -0.5 * torch.einsum("kyx,...yx->...k", self.moments, v[..., 2].mean(-3))
        return self._field_of(C, Ms, v.shape)

    def constant_field(self, Ms: torch.Tensor, shape) -> torch.Tensor:
        """The constant part of the field (A/m), ``shape`` ``(..., nz, ny, nx, 3)``."""
        C = 0.5 * self.background * self.moments.sum((-2, -1))
        return self._field_of(C, Ms, shape)

    def energy(self, m: torch.Tensor) -> torch.Tensor:
        """``kappa / 2 sum |C_i|^2`` (J), 0-d or ``(B,)``."""
        return 0.5 * self.stiffness * (self.moment(m) ** 2).sum(-1)

    def translation_images(self, m: torch.Tensor, image_of) -> torch.Tensor:
        """Images of each skyrmion moved by one metre along x and along y, ``(2N, ny, nx)``.

        The texture's change is approximated by a rigid translation of the skyrmion within its
        region (the cells nearer to it than to any other, inside its window), ``dm = -d_x m``
        there (central differences): for a fit this is the image's derivative with respect to
        the centre where the skyrmion is held (the pinning is stiff against the forces between
        skyrmions, so a held skyrmion moves with its centre). ``image_of`` maps
        ``dm (B, nz, ny, nx, 3)`` to images ``(B, ny, nx)``.
        """
        g = self.grid
        gx = torch.gradient(m, spacing=g.dx, dim=-2)[0]
        gy = torch.gradient(m, spacing=g.dy, dim=-3)[0]
        regions = self.regions.reshape(-1, 1, 1, g.ny, g.nx, 1)  # (N, 1, 1, ny, nx, 1)
        dm = -regions * torch.stack((gx, gy)).unsqueeze(0)  # (N, 2, nz, ny, nx, 3)
        return image_of(dm.reshape(-1, *m.shape))
