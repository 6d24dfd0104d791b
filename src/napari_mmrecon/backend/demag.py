"""Demagnetizing field by FFT convolution with the Newell tensor.

Open boundaries zero-pad x and y to an FFT-friendly length >= ``2 n - 1``; in-plane periodic
boundaries (``grid.pbc``) use the unpadded grid with the tensor summed over periodic images
(explicitly up to ``grid.pbc_images`` images on each side, the rest as a continuum). The z axis
is never padded or transformed: layers are coupled by a direct sum over layer pairs in Fourier
space, so a single-layer film costs only 2-D transforms.

The transforms are pruned: the forward real FFT along x runs on the ``ny`` non-zero rows only,
and the inverse FFT along x on the ``ny`` rows that are kept. The kernel's transform is
computed once per grid (cached) and is stored real, because every component is even or odd in
each in-plane axis.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from .grid import Grid
from .newell import COMPONENTS, PARITY, demag_tensor


def fft_length(n: int, periodic: bool) -> int:
    """Transform length along one in-plane axis of ``n`` cells.

    ``n`` itself when periodic (or ``n == 1``), else the smallest 2-3-5-smooth length >= 2n - 1.
    """
    if periodic or n == 1:
        return n
    m = 2 * n - 1
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _wrapped_offsets(n: int, length: int, periodic: bool) -> np.ndarray:
    """Signed cell offset stored at each index of a length-``length`` transform axis.

    Open axes: ``0..n-1`` then ``-(n-1)..-1`` at the end; the zero padding in between is marked
    with a sentinel ``length`` (those entries are zeroed). Periodic axes: ``-n/2 .. n/2``.
    """
    idx = np.arange(length)
    if periodic:
        return np.where(idx <= length // 2, idx, idx - length)
    return np.where(idx < n, idx, np.where(idx > length - n, idx - length, length))


def _periodic_tail(grid: Grid, reach_x: float, reach_y: float) -> dict:
    """Continuum tensor of the periodic images beyond the rectangle ``|x| < reach_x, |y| < reach_y``.

    Far images are smeared over the supercell area ``Lx Ly``; with ``rho(theta)`` the distance to
    the rectangle's edge, ``int dA / r^3 = int dtheta / rho`` and likewise for the angular weights.
    """
    lx, ly = grid.nx * grid.dx, grid.ny * grid.dy
    pref = grid.cell_volume / (4 * math.pi * lx * ly)
    theta = (np.arange(20000) + 0.5) * (2 * math.pi / 20000)
    c, s = np.abs(np.cos(theta)), np.abs(np.sin(theta))
    with np.errstate(divide="ignore"):
        rho = np.minimum(reach_x / c, reach_y / s)
    inv = np.where(np.isfinite(rho), 1.0 / rho, 0.0)
    w = 2 * math.pi / theta.size
    i_all = inv.sum() * w
    i_cos = (inv * c * c).sum() * w
    i_sin = (inv * s * s).sum() * w
    return {"xx": pref * (i_all - 3 * i_cos), "yy": pref * (i_all - 3 * i_sin), "zz": pref * i_all}


def real_space_kernel(grid: Grid) -> dict:
    """Demag tensor laid out on the transform grid, per layer offset.

    Returns
    -------
    dict component -> float64 array ``(2 nz - 1, Ly, Lx)`` where index ``kz + nz - 1`` holds layer
    offset ``kz`` and ``(Ly, Lx)`` are the transform lengths of ``fft_length``.
    """
    periodic = grid.pbc
    lx, ly = fft_length(grid.nx, periodic), fft_length(grid.ny, periodic)
    kz = np.arange(-(grid.nz - 1), grid.nz)[:, None, None]
    ox = _wrapped_offsets(grid.nx, lx, periodic)
    oy = _wrapped_offsets(grid.ny, ly, periodic)
    cell = (grid.dz, grid.dy, grid.dx)
    if not periodic:
        valid = (oy[:, None] != ly) & (ox[None, :] != lx)
        ky = np.where(oy == ly, 0, oy)[None, :, None]
        kx = np.where(ox == lx, 0, ox)[None, None, :]
        tensor = demag_tensor(kz, ky, kx, cell)
        return {k: np.where(valid[None], v, 0.0) for k, v in tensor.items()}
    images_x = images_y = grid.pbc_images
    out = {k: np.zeros((2 * grid.nz - 1, ly, lx)) for k in COMPONENTS}
    for py in range(-images_y, images_y + 1):
        for px in range(-images_x, images_x + 1):
            tensor = demag_tensor(kz, oy[None, :, None] + py * ly, ox[None, None, :] + px * lx, cell)
            for k in COMPONENTS:
                out[k] += tensor[k]
    reach_x = (images_x + 0.5) * grid.nx * grid.dx
    reach_y = (images_y + 0.5) * grid.ny * grid.dy
    for k, v in _periodic_tail(grid, reach_x, reach_y).items():
        out[k] += v
    return out


@lru_cache(maxsize=16)
def _kernel_fft_cached(nx, ny, nz, dx, dy, dz, pbc, pbc_images, device, dtype):
    grid = Grid(nx=nx, ny=ny, nz=nz, dx=dx, dy=dy, dz=dz, pbc=pbc, pbc_images=pbc_images,
                device=device, dtype=dtype)
    spatial = real_space_kernel(grid)
    out = {}
    for name in COMPONENTS:
        pz, py, px = PARITY[name]
        if grid.nz == 1 and pz < 0:
            continue  # odd in z: vanishes within one layer
        spectrum = np.fft.rfft2(spatial[name])
        # Even x even -> real, odd x odd -> real (with a sign), odd x even -> imaginary.
        part = spectrum.real if py == px else spectrum.imag
        out[name] = torch.as_tensor(-part, dtype=dtype, device=device).contiguous()
    return out


def kernel_fft(grid: Grid) -> dict:
    """Cached transform of ``-N`` per component: real tensors ``(2 nz - 1, Ly, Lx // 2 + 1)``.

    For even-odd components (xz, yz) the stored tensor is the imaginary part of the transform.
    Single-layer films omit xz and yz (they vanish).
    """
    return _kernel_fft_cached(grid.nx, grid.ny, grid.nz, grid.dx, grid.dy, grid.dz, grid.pbc,
                              grid.pbc_images, grid.device, grid.dtype)


def times_i(z: torch.Tensor) -> torch.Tensor:
    """``i z`` for a complex tensor, without forming a complex constant."""
    return torch.complex(-z.imag, z.real)


class DemagField:
    """Demagnetizing field ``H = -N * M`` (A/m) of the magnetization ``M = Ms m``.

    Parameters
    ----------
    grid : Grid
    """

    def __init__(self, grid: Grid):
        self.grid = grid
        self.lx = fft_length(grid.nx, grid.pbc)
        self.ly = fft_length(grid.ny, grid.pbc)
        self.kernel = kernel_fft(grid)

    def field_from_M(self, M: torch.Tensor) -> torch.Tensor:
        """Demag field of ``M`` (A/m), shape ``(..., nz, ny, nx, 3)`` -> same shape."""
        g = self.grid
        Mc = M.movedim(-1, -4)  # (..., 3, nz, ny, nx)
        Mk = torch.fft.rfft(Mc, n=self.lx, dim=-1)
        if self.ly > 1:
            Mk = torch.fft.fft(Mk, n=self.ly, dim=-2)
        mx, my, mz = Mk.unbind(-4)  # each (..., nz, Ly, Kx)
        K = self.kernel
        if g.nz == 1:
            k_xx, k_yy, k_zz, k_xy = (K[c][0] for c in ("xx", "yy", "zz", "xy"))
            hx = mx * k_xx + my * k_xy
            hy = mx * k_xy + my * k_yy
            hz = mz * k_zz
        else:
            hx, hy, hz = self._layer_sum(mx, my, mz)
        Hk = torch.stack((hx, hy, hz), dim=-4)
        if self.ly > 1:
            Hk = torch.fft.ifft(Hk, dim=-2)[..., : g.ny, :]
        H = torch.fft.irfft(Hk, n=self.lx, dim=-1)[..., : g.nx]
        return H.movedim(-4, -1)

    def _layer_sum(self, mx, my, mz):
        """``H_a[i] = sum_j K_ab[i - j] M_b[j]`` over layers (multi-layer films)."""
        K = self.kernel
        nz = self.grid.nz
        hx, hy, hz = [], [], []
        for i in range(nz):
            ax = ay = az = 0
            for j in range(nz):
                k = i - j + nz - 1
                ax = ax + mx[..., j, :, :] * K["xx"][k] + my[..., j, :, :] * K["xy"][k] \
                    + times_i(mz[..., j, :, :] * K["xz"][k])
                ay = ay + mx[..., j, :, :] * K["xy"][k] + my[..., j, :, :] * K["yy"][k] \
                    + times_i(mz[..., j, :, :] * K["yz"][k])
                az = az + times_i(mx[..., j, :, :] * K["xz"][k] + my[..., j, :, :] * K["yz"][k]) \
                    + mz[..., j, :, :] * K["zz"][k]
            hx.append(ax)
            hy.append(ay)
            hz.append(az)
        return torch.stack(hx, -3), torch.stack(hy, -3), torch.stack(hz, -3)
