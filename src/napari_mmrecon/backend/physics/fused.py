"""All linear field terms of a uniform film in one FFT convolution plus a few edge corrections.

For uniform ``Ms`` and ``A`` without vacuum cells, exchange is a translation-invariant
nearest-neighbour stencil, so it folds into the demag kernel in Fourier space and costs nothing
beyond the demag FFTs; so does a uniform anisotropy, a constant in Fourier space:

- exchange ``2 A / (mu0 Ms) sum_j (m_j - m_i) / d^2``: the kernel's diagonal gains
  ``2 A / (mu0 Ms) sum_axes (2 cos(k d) - 2) / d^2`` (along z the layer transform's
  ``2 pi q / Lz`` plays the role of ``k dz``); zero padding makes the neighbour sum exact at free
  edges, where a cell has one neighbour fewer than the ``- 2 m_i / d^2`` assumed, which an edge
  correction ``+ 2 A / (mu0 Ms d^2) m_i`` on the first and last cell of each open axis restores;
- anisotropy ``2 Ku / (mu0 Ms) (m . u) u``: the kernel gains ``2 Ku / (mu0 Ms) u_a u_b``;
- interfacial DMI ``H = 2 D / (mu0 Ms) (d_x m_z, d_y m_z, -d_x m_x - d_y m_y)`` by central
  differences: computed in real space, on arrays four times smaller than their transforms.

``D`` and ``Ku`` may differ between the states of a batch (then anisotropy is also done in real
space). The result equals the sum of the separate terms in ``terms.py`` to round-off, which the
tests check.
"""

from __future__ import annotations

import math

import torch

from .demag import SpectralConvolution, duplicate_reim, fft_length, kernel_fft, layer_length
from .grid import MU0, Grid

_DIAGONAL = ("xx", "yy", "zz")


def _per_state_or_scalar(p: torch.Tensor) -> bool:
    """A 0-d parameter, or one value per state of a batch, ``(B, 1, 1, 1)``."""
    return p.ndim == 0 or (p.ndim == 4 and tuple(p.shape[1:]) == (1, 1, 1))


def fusable(grid: Grid, Ms: torch.Tensor, params: dict) -> bool:
    """Whether the fused path applies: uniform scalar ``Ms > 0`` and ``A``; ``D`` and ``Ku``
    scalar or per state."""
    return (Ms.ndim == 0 and bool(Ms > 0) and params["A"].ndim == 0
            and _per_state_or_scalar(params["D"]) and _per_state_or_scalar(params["Ku"]))


def _planar_coefficient(p: torch.Tensor) -> torch.Tensor:
    """A 0-d or per-state ``(B, 1, 1, 1)`` coefficient shaped for one component of the planar
    layout ``(nz, G, ny, nx)``."""
    return p if p.ndim == 0 else p.reshape(1, -1, 1, 1)


def _exchange_stencil(grid: Grid, dtype, device) -> torch.Tensor:
    """``sum_axes (2 cos(k d) - 2) / d^2`` (1/m^2) on the transform grid, ``(Lz, 1, Kx, Ly)``.

    Axes of one cell have no neighbours and contribute nothing.
    """
    lx, ly, lz = fft_length(grid.nx, grid.pbc), fft_length(grid.ny, grid.pbc), layer_length(grid.nz)
    shape = {"x": (1, 1, -1, 1), "y": (1, 1, 1, -1), "z": (-1, 1, 1, 1)}
    out = torch.zeros((1, 1, 1, 1), dtype=dtype, device=device)
    for axis, n, length, d, count in (("x", grid.nx, lx, grid.dx, lx // 2 + 1), ("y", grid.ny, ly, grid.dy, ly),
                                      ("z", grid.nz, lz, grid.dz, lz)):
        if n > 1:
            theta = 2 * math.pi * torch.arange(count, dtype=dtype, device=device) / length
            out = out + ((2 * torch.cos(theta) - 2) / d**2).reshape(shape[axis])
    return out


def _add_central_difference(h: torch.Tensor, f: torch.Tensor, axis: int, u: tuple, periodic: bool):
    """``h += u (f[i + 1] - f[i - 1])`` along ``axis``, in place; beyond the ends of an open axis
    ``f`` is 0. ``u`` is a pair ``(u, -u)`` of tensors broadcasting against ``h``."""
    n = h.shape[axis]
    plus, minus = u
    h.narrow(axis, 0, n - 1).addcmul_(f.narrow(axis, 1, n - 1), plus)
    h.narrow(axis, 1, n - 1).addcmul_(f.narrow(axis, 0, n - 1), minus)
    if periodic:
        h.narrow(axis, n - 1, 1).addcmul_(f.narrow(axis, 0, 1), plus)
        h.narrow(axis, 0, 1).addcmul_(f.narrow(axis, n - 1, 1), minus)


def _add_dmi(h: torch.Tensor, m: torch.Tensor, axis: int, comp: int, u: tuple, periodic: bool):
    """Interfacial DMI along one in-plane axis, in place on planar ``h (nz, G, 3, ny, nx)``:
    ``h_c += u d m_z`` and ``h_z -= u d m_c`` with ``d`` the central difference along ``axis``
    (``c = comp``: 0 for x, 1 for y); ``u = (u, -u)``, ``u = D / (mu0 Ms d)`` in A/m."""
    _add_central_difference(h[:, :, comp], m[:, :, 2], axis, u, periodic)
    _add_central_difference(h[:, :, 2], m[:, :, comp], axis, u[::-1], periodic)


def _add_edges(h: torch.Tensor, m: torch.Tensor, axis: int, coeff: torch.Tensor):
    """``h += coeff m`` on the first and last cell along ``axis`` of planar ``h`` and ``m``."""
    n = h.shape[axis]
    index = [slice(None)] * h.ndim
    index[axis] = slice(0, n, n - 1)
    h[tuple(index)].addcmul_(m[tuple(index)], coeff)


def _fold_anisotropy(kernel: dict, c: torch.Tensor, u):
    """Add the constant ``c u_a u_b`` (A/m) to the kernel components it touches, in place."""
    for name in ("xx", "yy", "zz", "xy", "xz", "yz"):
        a, b = "xyz".index(name[0]), "xyz".index(name[1])
        if u[a] * u[b] != 0:
            term = c * (u[a] * u[b])
            kernel[name] = kernel[name] + term if name in kernel else term.expand(1, 1, 1, 1, 2)


class FusedLinearField:
    """Exchange + interfacial DMI + uniaxial anisotropy + demag of a uniform film.

    Parameters
    ----------
    grid : Grid
    Ms, A : 0-d tensors (may require grad)
        Saturation magnetization (A/m, > 0) and exchange stiffness (J/m).
    D, Ku : 0-d or per-state ``(B, 1, 1, 1)`` tensors
        Interfacial DMI (J/m^2) and uniaxial anisotropy (J/m^3).
    axis : 3-sequence
        Anisotropy axis (unit vector).
    include : set of str
        Which of ``"exchange", "dmi", "anisotropy", "demag"`` to include.
    """

    def __init__(self, grid: Grid, Ms, A, D, Ku, axis, include):
        self.grid = grid
        has = {name: name in include for name in ("exchange", "dmi", "anisotropy", "demag")}
        kernel = {name: Ms * k for name, k in kernel_fft(grid).items()} if has["demag"] else {}
        self.edges = []
        if has["exchange"]:
            w = 2 * A / (MU0 * Ms)
            stencil = duplicate_reim(w * _exchange_stencil(grid, grid.dtype, grid.device))
            for name in _DIAGONAL:
                kernel[name] = kernel[name] + stencil if name in kernel else stencil
            for axis_index, n, d, periodic in ((-1, grid.nx, grid.dx, grid.pbc), (-2, grid.ny, grid.dy, grid.pbc),
                                               (0, grid.nz, grid.dz, False)):
                if n > 1 and not periodic:
                    self.edges.append((axis_index, w / d**2))
        self.axis = grid.tensor(axis)
        self.aniso = None
        if has["anisotropy"]:
            c = 2 * Ku / (MU0 * Ms)
            if c.ndim == 0:
                _fold_anisotropy(kernel, c, [float(v) for v in axis])
            else:
                self.aniso = _planar_coefficient(c)
        self.dmi = []
        if has["dmi"]:
            for axis_index, comp, n, d in ((-1, 0, grid.nx, grid.dx), (-2, 1, grid.ny, grid.dy)):
                if n > 1:
                    u = _planar_coefficient(D / (MU0 * Ms * d))
                    self.dmi.append((axis_index, comp, (u, -u)))
        self.conv = SpectralConvolution(grid, kernel)

    def release_buffers(self) -> None:
        """Free the convolution's work buffers (allocated again by the next field)."""
        self.conv.release_buffers()

    def field(self, m: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """Field (A/m) of the included terms plus ``add`` (A/m, broadcast), ``(..., nz, ny, nx, 3)``."""
        g, conv = self.grid, self.conv
        reuse = conv.reuse(m)
        P = conv.to_planar(m, reuse)
        h = conv.convolve(P, reuse)[..., : g.nx]
        mp = P[..., : g.nx]
        for axis_index, coeff in self.edges:
            _add_edges(h, mp, axis_index, coeff)
        for axis_index, comp, u in self.dmi:
            _add_dmi(h, mp, axis_index, comp, u, g.pbc)
        if self.aniso is not None:
            u = self.axis.reshape(3, 1, 1)
            proj = (mp * u).sum(2, keepdim=True)
            h.add_(proj * self.aniso.unsqueeze(2) * u)
        return conv.from_planar(h, m.shape, add, reuse)
