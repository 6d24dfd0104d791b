"""Micromagnetic energy terms: each gives its effective field (A/m) and energy (J).

All terms act on unit magnetization tensors ``m`` of shape ``(..., nz, ny, nx, 3)`` (the leading
axes are an optional batch). Fields vanish in vacuum cells (``Ms == 0``).

Conventions (the same as mumax3 and magnum.np):

- Exchange: ``H_i = 2 / (mu0 Ms_i) sum_j A_ij (m_j - m_i) / d^2`` over the six neighbours, ``A_ij``
  the harmonic mean of the two cells (0 towards vacuum), free (Neumann) outer boundaries.
- Interfacial DMI, energy density ``D [m_z div m - (m . grad) m_z]`` (mumax3 ``Dind``):
  ``H = 2 D / (mu0 Ms) (d_x m_z, d_y m_z, -d_x m_x - d_y m_y)`` by central differences with the
  interface value ``D_ij``. At free surfaces and next to vacuum the missing neighbour pairs are
  simply absent; the discrete energy is exact for this field, so a minimizer satisfies the
  discrete form of the DMI boundary condition ``d_n m = D / (2A) (z x n) x m``.
- Uniaxial anisotropy: ``E = -Ku (m . u)^2 V``.
- Zeeman: ``E = -mu0 Ms m . (H_ext + H_bias) V``.

Every quadratic term's energy is ``E = -mu0 / 2 sum Ms V m . H``, so that
``H = -1 / (mu0 Ms V) dE/dm`` exactly, which the tests check by autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .demag import DemagField
from .grid import MU0, Grid


def _pad_axis(t: torch.Tensor, axis: int, before: int, after: int) -> torch.Tensor:
    """Zero-pad ``t`` along the negative ``axis`` (counted from the end) by ``before, after``."""
    pad = [0, 0] * (-axis)
    pad[-2], pad[-1] = before, after
    return F.pad(t, pad)


def _pairs(t: torch.Tensor, axis: int, periodic: bool):
    """``(t_i, t_{i+1})`` for all neighbour pairs along ``axis`` (with the wrap if periodic)."""
    if periodic:
        return t, torch.roll(t, -1, axis)
    n = t.shape[axis]
    return t.narrow(axis, 0, n - 1), t.narrow(axis, 1, n - 1)


def _scatter_pairs(to_first: torch.Tensor, to_second: torch.Tensor, axis: int, periodic: bool):
    """Per-cell sum of pair contributions: cell i gets ``to_first`` of pair (i, i+1) and
    ``to_second`` of pair (i-1, i)."""
    if periodic:
        return to_first + torch.roll(to_second, 1, axis)
    return _pad_axis(to_first, axis, 0, 1) + _pad_axis(to_second, axis, 1, 0)


def interface_mean(p: torch.Tensor, magnetic: torch.Tensor, axis: int, periodic: bool) -> torch.Tensor:
    """Value of a scalar parameter on the interfaces between neighbours along ``axis``.

    Parameters
    ----------
    p : tensor broadcastable to ``magnetic``
        Cell values (a 0-d tensor for a uniform parameter).
    magnetic : bool tensor ``(..., nz, ny, nx)``
        Cells with ``Ms > 0``.
    axis : int
        -1 (x), -2 (y) or -3 (z) on the scalar layout.
    periodic : bool
        Include the wrap-around interface (n interfaces instead of n - 1).

    Returns
    -------
    tensor with ``n - 1`` (or ``n`` if periodic) entries along ``axis``: ``p`` itself for a
    uniform parameter, else the harmonic mean ``2 p_i p_j / (p_i + p_j)`` (0 where the sum is
    0); 0 on interfaces towards vacuum.
    """
    if p.ndim > 0:
        magnetic = magnetic.expand(torch.broadcast_shapes(magnetic.shape, p.shape))
    first, second = _pairs(magnetic, axis, periodic)
    both = first & second
    if p.ndim == 0:
        return p * both
    a, b = _pairs(p.expand(magnetic.shape), axis, periodic)
    s = a + b
    ok = (s != 0) & both
    return torch.where(ok, 2 * a * b / torch.where(ok, s, torch.ones_like(s)), torch.zeros_like(s))


def _magnetic_mask(grid: Grid, Ms: torch.Tensor) -> torch.Tensor:
    """Bool map of magnetic cells, ``(nz, ny, nx)`` or ``(B, nz, ny, nx)`` for batched ``Ms``."""
    magnetic = Ms > 0
    return magnetic.expand(tuple(Ms.shape[:-3]) + grid.shape)


class Term:
    """Base of all terms: ``field(m)`` in A/m; quadratic energy ``-mu0/2 sum Ms V m.H`` in J.

    Subclasses implement ``field``; linear terms (Zeeman) set ``energy_factor = 1``.
    """

    name = ""
    energy_factor = 0.5

    def __init__(self, grid: Grid, Ms: torch.Tensor):
        self.grid = grid
        self.Ms = Ms
        magnetic = Ms > 0
        self.inv_Ms = torch.where(magnetic, 1.0 / torch.where(magnetic, Ms, torch.ones_like(Ms)),
                                  torch.zeros_like(Ms))

    def energy(self, m: torch.Tensor) -> torch.Tensor:
        """Energy (J): a 0-d tensor, or ``(B,)`` for a batch ``m (B, nz, ny, nx, 3)``."""
        density = (m * self.field(m)).sum(-1) * self.Ms
        return -self.energy_factor * MU0 * self.grid.cell_volume * density.sum((-3, -2, -1))


class ExchangeField(Term):
    """Heisenberg exchange with stiffness ``A`` (J/m); see the module docstring."""

    name = "exchange"

    def __init__(self, grid: Grid, Ms: torch.Tensor, A: torch.Tensor):
        super().__init__(grid, Ms)
        magnetic = _magnetic_mask(grid, Ms)
        self.couplings = []
        for axis, d, n, periodic in ((-1, grid.dx, grid.nx, grid.pbc), (-2, grid.dy, grid.ny, grid.pbc),
                                     (-3, grid.dz, grid.nz, False)):
            if n == 1:
                continue  # no neighbours (a periodic axis of one cell couples a cell to itself)
            w = interface_mean(A, magnetic, axis, periodic) * (2.0 / (MU0 * d * d))
            self.couplings.append((axis - 1, periodic, w.unsqueeze(-1)))

    def field(self, m: torch.Tensor) -> torch.Tensor:
        """Exchange field (A/m), ``(..., nz, ny, nx, 3)``."""
        h = torch.zeros_like(m)
        for axis, periodic, w in self.couplings:
            first, second = _pairs(m, axis, periodic)
            flux = w * (second - first)
            h = h + _scatter_pairs(flux, -flux, axis, periodic)
        return h * self.inv_Ms.unsqueeze(-1)


class InterfacialDMIField(Term):
    """Interfacial (C_nv) DMI with constant ``D`` (J/m^2), mumax3 ``Dind`` convention."""

    name = "dmi"

    def __init__(self, grid: Grid, Ms: torch.Tensor, D: torch.Tensor):
        super().__init__(grid, Ms)
        magnetic = _magnetic_mask(grid, Ms)
        self.couplings = []
        for axis, comp, d, n in ((-1, 0, grid.dx, grid.nx), (-2, 1, grid.dy, grid.ny)):
            if n == 1:
                continue
            u = interface_mean(D, magnetic, axis, grid.pbc) * (1.0 / (MU0 * d))
            self.couplings.append((axis, comp, grid.pbc, u))

    def field(self, m: torch.Tensor) -> torch.Tensor:
        """DMI field (A/m), ``(..., nz, ny, nx, 3)``."""
        mz = m[..., 2]
        h_inplane = [torch.zeros_like(mz), torch.zeros_like(mz)]
        hz = torch.zeros_like(mz)
        for axis, comp, periodic, u in self.couplings:
            mc_i, mc_j = _pairs(m[..., comp], axis, periodic)
            mz_i, mz_j = _pairs(mz, axis, periodic)
            # Pair (i, j = i + 1): H_c,i += u mz_j, H_z,i -= u mc_j; H_c,j -= u mz_i, H_z,j += u mc_i.
            h_inplane[comp] = h_inplane[comp] + _scatter_pairs(u * mz_j, -u * mz_i, axis, periodic)
            hz = hz + _scatter_pairs(-u * mc_j, u * mc_i, axis, periodic)
        h = torch.stack((h_inplane[0], h_inplane[1], hz), dim=-1)
        return h * self.inv_Ms.unsqueeze(-1)


class UniaxialAnisotropyField(Term):
    """Uniaxial anisotropy ``E = -Ku (m . u)^2 V``, ``H = 2 Ku / (mu0 Ms) (m . u) u``."""

    name = "anisotropy"

    def __init__(self, grid: Grid, Ms: torch.Tensor, Ku: torch.Tensor, axis):
        super().__init__(grid, Ms)
        self.axis = grid.tensor(axis)
        self.coeff = (2.0 / MU0) * Ku * self.inv_Ms

    def field(self, m: torch.Tensor) -> torch.Tensor:
        """Anisotropy field (A/m), ``(..., nz, ny, nx, 3)``."""
        proj = (m * self.axis).sum(-1) * self.coeff
        return proj.unsqueeze(-1) * self.axis


class ZeemanField(Term):
    """Uniform external field plus a per-cell bias field (both H in A/m); linear in m."""

    name = "zeeman"
    energy_factor = 1.0

    def __init__(self, grid: Grid, Ms: torch.Tensor, external_field=None, bias_field=None):
        super().__init__(grid, Ms)
        total = torch.zeros(3, dtype=grid.dtype, device=grid.device)
        for value in (external_field, bias_field):
            if value is not None:
                total = total + value
        magnetic = (Ms > 0).unsqueeze(-1)
        self.h = torch.where(magnetic, total, torch.zeros_like(total))

    def field(self, m: torch.Tensor) -> torch.Tensor:
        """Applied field (A/m), broadcast to ``m``'s shape."""
        return self.h.expand(m.shape)


class DemagTerm(Term):
    """Demagnetizing field, Newell tensor and FFT convolution (see ``demag.DemagField``)."""

    name = "demag"

    def __init__(self, grid: Grid, Ms: torch.Tensor):
        super().__init__(grid, Ms)
        self.op = DemagField(grid)
        vacuum = bool((Ms <= 0).any())
        self.mask = (Ms > 0).unsqueeze(-1).to(grid.dtype) if vacuum else None

    def release_buffers(self) -> None:
        """Free the convolution's work buffers (allocated again by the next field)."""
        self.op.conv.release_buffers()

    def field(self, m: torch.Tensor) -> torch.Tensor:
        """Demag field (A/m) in the magnetic cells (0 in vacuum), ``(..., nz, ny, nx, 3)``."""
        h = self.op.field_from_M(m * self.Ms.unsqueeze(-1))
        return h if self.mask is None else h * self.mask
