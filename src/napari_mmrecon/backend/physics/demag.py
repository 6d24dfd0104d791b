"""Demagnetizing field by FFT convolution with the Newell tensor.

Open boundaries zero-pad x and y to an FFT-friendly length >= ``2 n - 1``; in-plane periodic
boundaries (``grid.pbc``) use the unpadded grid with the tensor summed over periodic images
(explicitly up to ``grid.pbc_images`` images on each side, the rest as a continuum). The z axis
is never padded in real space: layers are coupled in Fourier space by a discrete Fourier
transform across the layers of length ``2 nz - 1`` (the circulant embedding of the sum over
layer pairs, done as one matrix product), so a single-layer film costs only 2-D transforms and
``nz`` layers cost ``2 nz - 1`` kernel products instead of ``nz^2``.

``SpectralConvolution`` does the work and is shared with the fused field of uniform films
(``fused.py``). Its layouts are chosen so that every transform runs along the last, contiguous
axis and returns a contiguous result (torch lays out the result of a transform along another
axis transposed, which makes every later product strided):

- real space is "planar", ``(nz, G, 3, ny, Lx)`` with G the flattened batch and the x padding
  zero: the forward real FFT along x runs on the ``ny`` rows that hold data;
- the x spectrum is transposed into a zero-padded ``(nz, G, 3, Kx, Ly)`` buffer for the y FFT;
  the layer transform is then one matrix product over the leading axis, and the inverse keeps
  only the first ``ny`` rows before its x transform;
- the kernel's transform is computed once per grid (cached); every component is even or odd in
  each axis, so after the layer transform it is real. It is stored duplicated over (re, im), so
  a kernel product is a plain real multiply-add on the complex data viewed as real.

Without autograd the work arrays (the padded input, the products) are kept and reused between
calls, and so are the transforms' outputs unless the application has tuned malloc
(``runtime.allocator``): fresh memory would otherwise be paged in again on every call (with
glibc's default trim threshold, 18000 page faults per field of a 512 x 512 film). An instance is
not meant to be shared between threads.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from ..runtime.allocator import freed_memory_kept
from .grid import Grid
from .newell import COMPONENTS, PARITY, demag_tensor


def fft_length(n: int, periodic: bool) -> int:
    """Transform length along one in-plane axis of ``n`` cells.

    ``n`` itself when periodic (or ``n == 1``), else the 2-3-5-smooth length ``L >= 2n - 1``
    (at most the next power of two) of the lowest estimated cost ``_fft_cost(L)``.
    """
    if periodic or n == 1:
        return n
    lowest = 2 * n - 1
    candidates = [L for L in range(lowest, 1 << (lowest - 1).bit_length() + 1) if _smooth_exponents(L)]
    return min(candidates, key=_fft_cost)


def _smooth_exponents(L: int):
    """``(a, b, c)`` with ``L = 2^a 3^b 5^c``, or ``None`` if ``L`` has another prime factor."""
    exponents = []
    for p in (2, 3, 5):
        e = 0
        while L % p == 0:
            L //= p
            e += 1
        exponents.append(e)
    return tuple(exponents) if L == 1 else None


def _fft_cost(L: int) -> float:
    """Estimated time of a length-``L`` FFT: ``L log2 L`` times a penalty for radix-3 and -5
    passes and odd lengths, measured with MKL (length 500 = 2^2 5^3 took 1.6x the time of 512,
    250 1.4x that of 256, while 96 and 192 beat 128 and 256)."""
    a, b, c = _smooth_exponents(L)
    return L * math.log2(max(L, 2)) * (1 + 0.1 * b + 0.15 * c + (0.4 if a == 0 else 0.0))


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


def layer_length(nz: int) -> int:
    """Length of the transform across ``nz`` layers: 1, or ``2 nz - 1`` (no wrap-around)."""
    return 1 if nz == 1 else 2 * nz - 1


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype of a real one (float64 -> complex128, float32 -> complex64)."""
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def layer_dft(nz: int, inverse: bool, dtype: torch.dtype, device) -> torch.Tensor:
    """DFT matrix across layers: ``(Lz, nz)`` with ``exp(-2 pi i q j / Lz)``, or its inverse
    ``(nz, Lz)`` with ``exp(2 pi i q j / Lz) / Lz`` (complex, on ``device``)."""
    lz = layer_length(nz)
    phase = (np.arange(lz)[:, None] * np.arange(nz)[None, :]) % lz
    w = np.exp(-2j * math.pi * phase / lz)
    if inverse:
        w = w.conj().T / lz
    return torch.as_tensor(w, dtype=complex_dtype(dtype), device=device)


@lru_cache(maxsize=16)
def _kernel_fft_cached(nx, ny, nz, dx, dy, dz, pbc, pbc_images, device, dtype):
    grid = Grid(nx=nx, ny=ny, nz=nz, dx=dx, dy=dy, dz=dz, pbc=pbc, pbc_images=pbc_images,
                device=device, dtype=dtype)
    spatial = real_space_kernel(grid)
    lz = layer_length(nz)
    where = np.arange(-(nz - 1), nz) % lz  # index of layer offset d on the layer transform
    out = {}
    for name in COMPONENTS:
        pz, py, px = PARITY[name]
        if nz == 1 and pz < 0:
            continue  # odd in z: vanishes within one layer
        spectrum = np.fft.rfft2(spatial[name])
        # Even x even -> real, odd x odd -> real (with a sign), odd x even -> imaginary.
        inplane = spectrum.real if py == px else 1j * spectrum.imag
        wrapped = np.zeros((lz,) + inplane.shape[1:], dtype=complex)
        wrapped[where] = inplane
        # even in z with a real in-plane part, or odd in z with an imaginary one: real
        layered = np.fft.fft(wrapped, axis=0).real  # (Lz, Ly, Kx)
        kernel = torch.as_tensor(-layered.transpose(0, 2, 1), dtype=dtype, device=device)
        out[name] = duplicate_reim(kernel.unsqueeze(1))
    return out


def duplicate_reim(k: torch.Tensor) -> torch.Tensor:
    """A real kernel ``(...)`` as ``(..., 2)`` (the same value for re and im), contiguous."""
    return k.unsqueeze(-1).expand(k.shape + (2,)).contiguous()


def kernel_fft(grid: Grid) -> dict:
    """Cached transform of ``-N`` per component: real tensors ``(Lz, 1, Kx, Ly, 2)``.

    ``Kx = Lx // 2 + 1`` and ``Ly`` are the in-plane transform sizes (``fft_length``), ``Lz``
    the layer transform length (``layer_length``); the last axis repeats the value for the real
    and imaginary parts. Single-layer films omit xz and yz (they vanish).
    """
    return _kernel_fft_cached(grid.nx, grid.ny, grid.nz, grid.dx, grid.dy, grid.dz, grid.pbc,
                              grid.pbc_images, grid.device, grid.dtype)


def _pair(a: int, b: int) -> str:
    """Component name of the symmetric pair ``(a, b)``, e.g. ``(2, 0) -> "xz"``."""
    return "xyz"[min(a, b)] + "xyz"[max(a, b)]


class SpectralConvolution:
    """``H_a = sum_b K_ab * M_b``: a symmetric 3x3 kernel convolved with a vector field.

    Parameters
    ----------
    grid : Grid
    kernel : dict component name (``"xx", "yy", "zz", "xy", "xz", "yz"``) -> tensor
        The kernel's transform, real, ``(Lz, 1, Kx, Ly, 2)`` as ``kernel_fft`` gives it (or
        broadcasting to it; may require grad). Missing components are zero.

    The input is any field ``(..., nz, ny, nx, 3)``; the output has the input's unit times the
    kernel's unit (A/m for the demag kernel times M in A/m).
    """

    def __init__(self, grid: Grid, kernel: dict):
        self.grid = grid
        self.lx = fft_length(grid.nx, grid.pbc)
        self.ly = fft_length(grid.ny, grid.pbc)
        self.lz = layer_length(grid.nz)
        zero = torch.zeros((1, 1, 1, 1, 2), dtype=grid.dtype, device=grid.device)
        self.kernel = {name: kernel.get(name, zero) for name in ("xx", "yy", "zz")}
        self.kernel.update({name: k for name, k in kernel.items() if name not in self.kernel})
        self.requires_grad = any(k.requires_grad for k in self.kernel.values())
        self.dft = self.idft = None
        if grid.nz > 1:
            self.dft = layer_dft(grid.nz, False, grid.dtype, grid.device)
            self.idft = layer_dft(grid.nz, True, grid.dtype, grid.device)
        self._buffers = {}

    def reuse(self, x: torch.Tensor) -> bool:
        """Whether work buffers may be reused: no autograd graph through ``x`` or the kernel."""
        return not (torch.is_grad_enabled() and (x.requires_grad or self.requires_grad))

    def _buffer(self, name: str, shape: tuple, dtype: torch.dtype, reuse: bool) -> torch.Tensor:
        """A zero-initialized work tensor; kept between calls if ``reuse`` (parts never written
        stay zero)."""
        if not reuse:
            return torch.zeros(shape, dtype=dtype, device=self.grid.device)
        buf = self._buffers.get(name)
        if buf is None or tuple(buf.shape) != tuple(shape) or buf.dtype != dtype:
            buf = torch.zeros(shape, dtype=dtype, device=self.grid.device)
            self._buffers[name] = buf
        return buf

    def release_buffers(self) -> None:
        """Free the kept work buffers (they are allocated again when next needed)."""
        self._buffers.clear()

    def to_planar(self, M: torch.Tensor, reuse: bool) -> torch.Tensor:
        """``(..., nz, ny, nx, 3)`` -> zero-padded planar ``(nz, G, 3, ny, Lx)``."""
        g = self.grid
        flat = M.reshape((-1,) + g.vector_shape)
        P = self._buffer("planar", (g.nz, flat.shape[0], 3, g.ny, self.lx), M.dtype, reuse)
        P[..., : g.nx] = flat.permute(1, 0, 4, 2, 3)
        return P

    def from_planar(self, h: torch.Tensor, shape, add: torch.Tensor | None, reuse: bool) -> torch.Tensor:
        """Planar ``(nz, G, 3, ny, >= nx)`` -> contiguous ``shape = (..., nz, ny, nx, 3)``,
        plus ``add`` (broadcast against ``shape``) if given."""
        g = self.grid
        view = h[..., : g.nx].permute(1, 0, 3, 4, 2)  # (G, nz, ny, nx, 3)
        if not reuse:
            out = view.contiguous().reshape(shape)
            return out if add is None else out + add
        out = torch.empty(shape, dtype=h.dtype, device=h.device)
        flat = out.view(view.shape)
        if add is None:
            flat.copy_(view)
        else:
            torch.add(view, add.expand(shape).reshape(view.shape), out=flat)
        return out

    def convolve(self, P: torch.Tensor, reuse: bool) -> torch.Tensor:
        """Planar input ``(nz, G, 3, ny, Lx)`` -> planar output, valid in ``[..., :nx]``: a kept
        buffer that the next call overwrites if ``reuse``, else a new tensor."""
        g = self.grid
        lead, kx = tuple(P.shape[:-2]), self.lx // 2 + 1
        cdtype = complex_dtype(P.dtype)
        X = self._transform(torch.fft.rfft, P, "rfft", lead + (g.ny, kx), cdtype, reuse)  # (nz, G, 3, ny, Kx)
        Y = self._buffer("spectrum", lead + (kx, self.ly), cdtype, reuse)
        Y[..., : g.ny] = X.transpose(-1, -2)
        if self.ly > 1:
            Y = self._transform(torch.fft.fft, Y, "fft_y", Y.shape, cdtype, reuse)  # (nz, G, 3, Kx, Ly)
        H = self._across_layers(self._apply_kernel(self._across_layers(Y, self.dft, reuse, "layers"), reuse),
                                self.idft, reuse, "layers_back")
        if self.ly > 1:
            H = self._transform(torch.fft.ifft, H, "ifft_y", H.shape, cdtype, reuse)[..., : g.ny]
        return self._transform(torch.fft.irfft, H.transpose(-1, -2), "irfft", lead + (g.ny, self.lx), P.dtype,
                               reuse, n=self.lx)

    def _transform(self, fft, x: torch.Tensor, name: str, shape: tuple, dtype: torch.dtype, reuse: bool,
                   **kwargs) -> torch.Tensor:
        """``fft(x, dim=-1, **kwargs)``, written into the kept buffer ``name`` (``shape``, ``dtype``)
        if ``reuse`` and malloc is untuned (``allocator.freed_memory_kept``: a fresh result is
        cheaper when its memory is not faulted in again; ``out=None`` itself would cost 8 %)."""
        if not reuse or freed_memory_kept():
            return fft(x, dim=-1, **kwargs)
        return fft(x, dim=-1, out=self._buffer(name, tuple(shape), dtype, reuse), **kwargs)

    def _across_layers(self, X: torch.Tensor, dft, reuse: bool, name: str) -> torch.Tensor:
        """Apply the layer transform ``dft (n_out, n)`` to the leading axis of ``X``; identity
        for a single layer."""
        if dft is None:
            return X
        shape = (dft.shape[0],) + tuple(X.shape[1:])
        out = self._buffer(name, shape, X.dtype, reuse).view(shape[0], -1) if reuse else None
        return torch.matmul(dft, X.reshape(X.shape[0], -1), out=out).view(shape)

    def _apply_kernel(self, Q: torch.Tensor, reuse: bool) -> torch.Tensor:
        """``H_a = sum_b K_ab Q_b`` at every frequency, ``Q (Lz, G, 3, Kx, Ly)`` complex."""
        out = self._buffer("product", tuple(Q.shape), Q.dtype, reuse) if reuse else None
        q = [torch.view_as_real(Q[:, :, b]) for b in range(3)]
        rows = []
        for a in range(3):
            pairs = [(self.kernel[_pair(a, b)], q[b]) for b in range(3) if _pair(a, b) in self.kernel]
            k, qb = pairs[0]
            acc = torch.mul(qb, k, out=None if out is None else torch.view_as_real(out[:, :, a]))
            for k, qb in pairs[1:]:
                acc.addcmul_(qb, k)
            rows.append(acc)
        if out is not None:
            return out
        return torch.view_as_complex(torch.stack(rows, dim=2))


class DemagField:
    """Demagnetizing field ``H = -N * M`` (A/m) of the magnetization ``M = Ms m``.

    Parameters
    ----------
    grid : Grid
    """

    def __init__(self, grid: Grid):
        self.grid = grid
        self.conv = SpectralConvolution(grid, kernel_fft(grid))

    def field_from_M(self, M: torch.Tensor) -> torch.Tensor:
        """Demag field of ``M`` (A/m), shape ``(..., nz, ny, nx, 3)`` -> same shape."""
        reuse = self.conv.reuse(M)
        h = self.conv.convolve(self.conv.to_planar(M, reuse), reuse)
        return self.conv.from_planar(h, M.shape, None, reuse)
