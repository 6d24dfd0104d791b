"""All linear field terms of a uniform single-layer film in one FFT convolution.

For uniform ``Ms, A, D, Ku`` without vacuum cells, exchange and interfacial DMI are
translation-invariant nearest-neighbour stencils, so they fold into the demag kernel in Fourier
space and cost nothing beyond the demag FFTs:

- exchange: the neighbour sum ``sum_j m_j`` becomes ``2 cos(k_x dx) / dx^2 + 2 cos(k_y dy) / dy^2``
  times ``2 A / (mu0 Ms)`` on the diagonal; the ``- m_i`` part, which counts only the neighbours
  inside the film (free boundaries), stays a per-cell coefficient map;
- DMI: ``H_x = 2 D / (mu0 Ms) d_x m_z`` by central differences becomes ``i U_x m_z`` with
  ``U_x = 2 D sin(k_x dx) / (mu0 Ms dx)``, and ``H_z = -i (U_x m_x + U_y m_y)``;
- anisotropy ``2 Ku / (mu0 Ms) (m . u) u`` is local.

Zero padding keeps the stencils exact at free edges (neighbours in the padding are zero), and the
unpadded periodic transform makes them exactly periodic. The result equals the sum of the
separate terms in ``terms.py`` to round-off, which the tests check.
"""

from __future__ import annotations

import math

import torch

from .demag import DemagField, times_i
from .grid import MU0, Grid


def fusable(grid: Grid, Ms: torch.Tensor, params: dict) -> bool:
    """Whether the fused path applies: one layer, uniform scalar parameters, no vacuum."""
    return grid.nz == 1 and all(p.ndim == 0 for p in params.values()) and Ms.ndim == 0 and bool(Ms > 0)


def _neighbour_counts(n: int, periodic: bool, dtype, device) -> torch.Tensor:
    """Number of neighbours of each cell along an axis of ``n`` cells, ``(n,)``."""
    if n == 1:
        return torch.zeros(1, dtype=dtype, device=device)
    counts = torch.full((n,), 2.0, dtype=dtype, device=device)
    if not periodic:
        counts[0] = counts[-1] = 1.0
    return counts


class FusedLinearField:
    """Exchange + interfacial DMI + uniaxial anisotropy + demag of a uniform film, ``nz == 1``.

    Parameters
    ----------
    grid : Grid
    Ms, A, D, Ku : 0-d tensors (may require grad)
        Uniform material parameters (SI units).
    axis : 3-sequence
        Anisotropy axis (unit vector).
    include : set of str
        Which of ``"exchange", "dmi", "anisotropy", "demag"`` to include.
    """

    def __init__(self, grid: Grid, Ms, A, D, Ku, axis, include):
        self.grid = grid
        self.demag = DemagField(grid)
        lx, ly = self.demag.lx, self.demag.ly
        kx = 2 * math.pi * torch.arange(lx // 2 + 1, dtype=grid.dtype, device=grid.device) / lx
        ky = 2 * math.pi * torch.arange(ly, dtype=grid.dtype, device=grid.device) / ly
        kx, ky = kx[None, :], ky[:, None]
        zero = torch.zeros((), dtype=grid.dtype, device=grid.device)
        K = self.demag.kernel
        has = {name: name in include for name in ("exchange", "dmi", "anisotropy", "demag")}
        scale = Ms if has["demag"] else zero
        k_xx, k_yy, k_zz, k_xy = (scale * K[c][0] for c in ("xx", "yy", "zz", "xy"))
        # neighbour sums along the axes that have neighbours
        use_x, use_y = grid.nx > 1, grid.ny > 1
        if has["exchange"]:
            w = 2 * A / (MU0 * Ms)
            stencil = zero
            if use_x:
                stencil = stencil + 2 * torch.cos(kx) / grid.dx**2
            if use_y:
                stencil = stencil + 2 * torch.cos(ky) / grid.dy**2
            k_xx, k_yy, k_zz = k_xx + w * stencil, k_yy + w * stencil, k_zz + w * stencil
            nx = _neighbour_counts(grid.nx, grid.pbc, grid.dtype, grid.device)[None, :] / grid.dx**2
            ny = _neighbour_counts(grid.ny, grid.pbc, grid.dtype, grid.device)[:, None] / grid.dy**2
            self.self_coeff = -w * (nx + ny)  # (ny, nx)
        else:
            self.self_coeff = None
        if has["dmi"]:
            u = 2 * D / (MU0 * Ms)
            self.u_x = (u * torch.sin(kx) / grid.dx).expand(ly, -1) if use_x else None
            self.u_y = (u * torch.sin(ky) / grid.dy).expand(-1, lx // 2 + 1) if use_y else None
        else:
            self.u_x = self.u_y = None
        self.k = (k_xx, k_yy, k_zz, k_xy)
        self.aniso = 2 * Ku / (MU0 * Ms) if has["anisotropy"] else None
        self.axis = grid.tensor(axis)
        self.axis_is_z = bool(torch.equal(self.axis, grid.tensor((0.0, 0.0, 1.0))))

    def field(self, m: torch.Tensor) -> torch.Tensor:
        """Field (A/m) of the included terms, ``(..., 1, ny, nx, 3)``."""
        g, d = self.grid, self.demag
        mc = m.movedim(-1, -4)[..., 0, :, :]  # (..., 3, ny, nx)
        mk = torch.fft.rfft(mc, n=d.lx, dim=-1)
        if d.ly > 1:
            mk = torch.fft.fft(mk, n=d.ly, dim=-2)
        mx, my, mz = mk.unbind(-3)
        k_xx, k_yy, k_zz, k_xy = self.k
        hx = mx * k_xx + my * k_xy
        hy = mx * k_xy + my * k_yy
        hz = mz * k_zz
        if self.u_x is not None or self.u_y is not None:
            acc = 0
            if self.u_x is not None:
                hx = hx + times_i(mz * self.u_x)
                acc = acc + mx * self.u_x
            if self.u_y is not None:
                hy = hy + times_i(mz * self.u_y)
                acc = acc + my * self.u_y
            hz = hz - times_i(acc)
        hk = torch.stack((hx, hy, hz), dim=-3)
        if d.ly > 1:
            hk = torch.fft.ifft(hk, dim=-2)[..., : g.ny, :]
        h = torch.fft.irfft(hk, n=d.lx, dim=-1)[..., : g.nx]  # (..., 3, ny, nx)
        if self.self_coeff is not None:
            h = h + self.self_coeff * mc
        h = h.unsqueeze(-3).movedim(-4, -1)  # (..., 1, ny, nx, 3)
        if self.aniso is not None:
            if self.axis_is_z:  # (m . z) z is m masked to its z component
                h = h + (self.aniso * self.axis) * m
            else:
                h = h + (self.aniso * (m * self.axis).sum(-1, keepdim=True)) * self.axis
        return h
