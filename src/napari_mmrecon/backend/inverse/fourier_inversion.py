"""Fourier inversion of a stray-field or MFM image for ``m_z``: the "fourier" baseline.

The standard reconstruction of NV / quantum-diamond magnetometry codes (e.g. qdmpy), for a film
magnetized out of plane with ``M = Ms m_z(x, y) z^`` (the same in every layer):

    image = K (Ms m_z z^) = P * m_z        (a 2-D convolution, open boundaries)

with a point-spread function ``P`` that the package's own forward operator gives exactly: the image
of one cell (one column of cells, every layer) with ``m_z = 1`` at the centre of a film of twice the
size holds ``P`` at every offset ``-n .. n - 1`` a film of ``n`` cells can produce, so its FFT
``T(k)`` on the 2x zero-padded grid reproduces the forward operator on the film exactly (no wrap).
Then, on the zero-padded image,

    m_z(k) = F(k) conj(T(k)) I(k) / (|T(k)|^2 + eps),    eps = (EPS_RELATIVE max |T|)^2,

with ``F`` a Hann window in ``|k|``, ``F = (1 + cos(pi |k| / k_c)) / 2`` below the cut-off ``k_c``
and 0 beyond. ``|T|`` falls like ``exp(-|k| d)`` with the plane's distance ``d`` from the film, so
the noise and model error the inversion amplifies grow like ``exp(|k| d)``: the default cut-off is
``k_c = CUTOFF_FACTOR / d_eff`` with ``d_eff`` the height (lift height) plus half the film
thickness (see ``CUTOFF_FACTOR`` for the scan that set it).

Background (the ``k = 0`` part). A finite image hardly fixes the mean of ``m_z`` (``T(0) = 0`` for
an infinite plane), and a uniform film shows only its edge charges, which zero padding would cut
off. As in ``bias.perpendicular_estimate``, the image ``U`` of a uniform ``m_z = 1`` film is fitted
first: ``b = <U, I> / <U, U>`` (least squares over the image) is the background level. The rest,
``I - b U``, is the image of ``m_z - b``, which is localized where the texture differs from the
background, so zero padding it truncates little. Its inversion's additive constant is set so that
it averages to zero over the padding, where there is no material. ``m_z = b + rest`` is finally
clipped to ``[-1, 1]``. No constant image offset is fitted beside ``U`` (unlike
``perpendicular_estimate``): it would take up the window mean of the texture's own image (for the
bundled skyrmion at 5 nm, ``b`` became 2.96 instead of 1.12), so an image must come without an
offset (subtract a measured one first).

Periodic films (``grid.pbc``): the forward operator is circular on the film itself, so ``T`` is the
FFT of the image of one cell at the origin and no padding is used; a uniform film has no image
there, so the constant is chosen to centre the estimate's range, ``(max + min) / 2 = 0`` (right for
any texture with both up and down domains).

The in-plane part is not seen by this inversion: it is modelled as zero, so a Neel texture's
volume charges, which add to the surface charge on one side and subtract on the other, make the
inversion sharper (larger) on the strong side and weaker on the weak side. ``fourier_texture``
adds a Neel in-plane part along ``chirality * grad m_z``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..forward.measurement import check_measurement, plane_distance, simulate_image
from ..physics.grid import Grid

CUTOFF_FACTOR = 6.0
"""``c`` of the default cut-off ``k_c = c / (d + nz dz / 2)`` (dimensionless; ``d`` the height or
lift height).

Set by a scan of ``c`` on the bundled relaxed Neel skyrmion (``load_state("single_skyrmion")``:
64 x 64 x 1 cells of 1 nm, ``m_z < 0`` over ~150 cells), image ``H_z`` on its strong (top) side;
Pearson correlation of the estimated with the true ``m_z``:

    c        2.0    3.0    4.0    5.0    6.0    7.0    8.0    10     12
    5 nm    0.929  0.980  0.981  0.979  0.978  0.978  0.979  0.960  0.788
    10 nm   0.666  0.856  0.933  0.968  0.979  0.981  0.982  0.980  0.955

``c = 6`` is the smallest value within 0.005 of the best at both heights (the least noise
amplification on the plateau); 5 % white noise (relative to the image's standard deviation)
changes these numbers by < 0.002 up to ``c = 8``. At 20 nm the plateau starts later (0.873 at
``c = 6``, 0.979 at ``c = 10``). On the weak (bottom) side, where the Neel volume charges cancel
part of the surface charge, smaller cut-offs do better (best 0.55 at 5 nm for ``c = 1``, 0.60 at
10 nm for ``c = 2.5``) but the model ``M = Ms m_z z^`` fails there whatever the cut-off. Noisy
measured images may need a smaller cut-off (the ``cutoff`` argument).
"""

EPS_RELATIVE = 1e-4
"""Regularization ``eps = (EPS_RELATIVE max |T|)^2`` of the deconvolution: it keeps the zeros of
``T`` finite and caps the gain at about ``1 / (2 EPS_RELATIVE max |T|)`` (it is what ends the
plateau of ``CUTOFF_FACTOR`` beyond ``c ~ 10``, where ``|T(k_c)| / max |T|`` nears ``1e-4`` in
noise-free images); the Hann window does the low-pass filtering."""

GRADIENT_FLOOR = 1e-6
"""``fourier_texture``: where ``|grad m_z|`` (per cell) is below this, the in-plane direction is
undefined; the texture there is ``(0, 0, sign m_z)``."""


def _positive_number(value, message: str) -> float:
    """``value`` as a float if it is one finite number > 0, else ``ValueError(message)``."""
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise ValueError(f"{message}, got {value!r}")
    return number


def _target_tensor(target, grid: Grid) -> torch.Tensor:
    """``target`` as a ``(ny, nx)`` tensor on the grid's device and dtype; ``ValueError`` otherwise."""
    if isinstance(target, torch.Tensor):
        t = target.detach().to(device=grid.device, dtype=grid.dtype)
    else:
        try:
            array = np.asarray(target, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"target must be a numeric (ny, nx) = ({grid.ny}, {grid.nx}) image, got "
                             f"{type(target).__name__}") from None
        t = torch.as_tensor(array, dtype=grid.dtype, device=grid.device)
    if tuple(t.shape) != (grid.ny, grid.nx):
        raise ValueError(f"target must be an image of shape (ny, nx) = ({grid.ny}, {grid.nx}), got shape "
                         f"{tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError("target contains NaN or inf")
    return t


def _check_inputs(grid, measurement, Ms, cutoff) -> tuple[float, float]:
    """``(Ms, cutoff)`` as floats (the default cut-off for ``None``); ``ValueError`` for bad input."""
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a Grid, got {type(grid).__name__}")
    check_measurement(measurement)
    Ms = _positive_number(Ms, "Ms must be one positive saturation magnetization in A/m")
    if cutoff is None:
        return Ms, default_cutoff(grid, measurement)
    return Ms, _positive_number(cutoff, "cutoff must be a positive wave number in rad/m")


def default_cutoff(grid: Grid, measurement) -> float:
    """Default low-pass cut-off ``k_c = CUTOFF_FACTOR / (d + nz dz / 2)`` in rad/m.

    Parameters
    ----------
    grid : Grid
    measurement : StrayFieldMeasurement or MFMMeasurement
        ``d`` is its height (lift height) in metres.
    """
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a Grid, got {type(grid).__name__}")
    check_measurement(measurement)
    return CUTOFF_FACTOR / (plane_distance(measurement) + grid.nz * grid.dz / 2)


def _padded_shape(grid: Grid) -> tuple[int, int]:
    return (grid.ny, grid.nx) if grid.pbc else (2 * grid.ny, 2 * grid.nx)


def _perpendicular_image(measurement, grid: Grid, Ms: float, mz: torch.Tensor) -> torch.Tensor:
    """Image of ``m = (0, 0, mz)`` (``mz (ny, nx)``, not unit, every layer) on ``grid``."""
    m = torch.stack((torch.zeros_like(mz), torch.zeros_like(mz), mz), dim=-1).expand(grid.vector_shape)
    return simulate_image(measurement, m, grid, Ms)


def transfer_function(grid: Grid, measurement, Ms: float) -> torch.Tensor:
    """``T(k)``: FFT of the point-spread function of ``m_z``, complex ``(Ly, Lx)``.

    ``(Ly, Lx) = (2 ny, 2 nx)`` for open films (the zero-padded grid), ``(ny, nx)`` for periodic
    ones; the image of ``m_z (ny, nx)`` is ``ifft2(T fft2(pad(m_z)))`` cropped to ``(ny, nx)``.

    Parameters
    ----------
    grid : Grid
    measurement : StrayFieldMeasurement or MFMMeasurement
    Ms : float
        Saturation magnetization (A/m); ``T`` is in image units per unit ``m_z``.
    """
    Ms, _ = _check_inputs(grid, measurement, Ms, 1.0)
    ly, lx = _padded_shape(grid)
    big = grid if grid.pbc else grid.with_(nx=lx, ny=ly)
    cy, cx = (0, 0) if grid.pbc else (grid.ny, grid.nx)
    delta = torch.zeros((ly, lx), dtype=grid.dtype, device=grid.device)
    delta[cy, cx] = 1.0
    psf = _perpendicular_image(measurement, big, Ms, delta)
    return torch.fft.fft2(torch.roll(psf, shifts=(-cy, -cx), dims=(0, 1)))


def _hann(grid: Grid, shape: tuple[int, int], cutoff: float) -> torch.Tensor:
    """Hann window ``(1 + cos(pi |k| / k_c)) / 2`` for ``|k| < k_c``, 0 beyond, on ``shape``."""
    opts = {"dtype": grid.dtype, "device": grid.device}
    ky = 2 * math.pi * torch.fft.fftfreq(shape[0], d=grid.dy, **opts)
    kx = 2 * math.pi * torch.fft.fftfreq(shape[1], d=grid.dx, **opts)
    k = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    return torch.where(k < cutoff, 0.5 * (1 + torch.cos(math.pi * k / cutoff)), torch.zeros_like(k))


def _deconvolve(rest: torch.Tensor, T: torch.Tensor, window: torch.Tensor, shape) -> torch.Tensor:
    """Filtered Wiener-like deconvolution of ``rest (ny, nx)`` zero-padded to ``shape``."""
    ny, nx = rest.shape
    padded = rest.new_zeros(shape)
    padded[:ny, :nx] = rest
    power = T.real ** 2 + T.imag ** 2
    eps = EPS_RELATIVE ** 2 * power.max()
    spectrum = window * torch.conj(T) * torch.fft.fft2(padded) / (power + eps)
    return torch.fft.ifft2(spectrum).real


def fourier_mz(target, grid: Grid, measurement, Ms: float, cutoff: float | None = None) -> np.ndarray:
    """Estimate ``m_z`` of a perpendicular film from its image by filtered Fourier inversion.

    Parameters
    ----------
    target : array or tensor (ny, nx)
        The image in the measurement's units (A/m for a stray field, Hz or degrees for MFM).
    grid : Grid
        The film; the estimate is the same in each of its ``nz`` layers.
    measurement : StrayFieldMeasurement or MFMMeasurement
    Ms : float
        Saturation magnetization (A/m) of the forward operator.
    cutoff : float, optional
        Low-pass cut-off ``k_c`` (rad/m) of the Hann window; default ``default_cutoff``.

    Returns
    -------
    ndarray (ny, nx)
        ``m_z`` (dimensionless), clipped to ``[-1, 1]``. See the module docstring for the
        background (``k = 0``) choice.
    """
    Ms, cutoff = _check_inputs(grid, measurement, Ms, cutoff)
    t = _target_tensor(target, grid)
    with torch.no_grad():
        mz = _estimate(t, grid, measurement, Ms, cutoff)
    return mz.clamp(-1.0, 1.0).cpu().numpy()


def _estimate(t: torch.Tensor, grid: Grid, measurement, Ms: float, cutoff: float) -> torch.Tensor:
    """Unclipped ``m_z (ny, nx)`` estimate (tensor)."""
    shape = _padded_shape(grid)
    T = transfer_function(grid, measurement, Ms)
    window = _hann(grid, shape, cutoff)
    ny, nx = grid.ny, grid.nx
    if grid.pbc:
        rest = _deconvolve(t - t.mean(), T, window, shape)
        return rest - 0.5 * (rest.max() + rest.min())
    ones = torch.ones((ny, nx), dtype=grid.dtype, device=grid.device)
    uniform = _perpendicular_image(measurement, grid, Ms, ones)
    norm = (uniform * uniform).sum()
    background = (uniform * t).sum() / torch.where(norm > 0, norm, torch.ones_like(norm))
    rest = _deconvolve(t - background * uniform, T, window, shape)
    inside = rest[:ny, :nx]
    outside_mean = (rest.sum() - inside.sum()) / (shape[0] * shape[1] - ny * nx)
    return background + inside - outside_mean


def fourier_texture(target, grid: Grid, measurement, Ms: float, chirality: int = 1,
                    cutoff: float | None = None) -> np.ndarray:
    """A Neel texture from the Fourier ``m_z`` estimate of an image.

    ``m_z`` is ``fourier_mz`` (the same in every layer); the in-plane part has magnitude
    ``sqrt(1 - m_z^2)`` and points along ``chirality * grad m_z / |grad m_z|``: for
    ``chirality = +1`` the sense of ``textures.skyrmion(..., chirality=1)`` (Neel, favoured by
    ``D > 0``: outwards for a core-down skyrmion, where ``m_z`` grows outwards). Where
    ``|grad m_z|`` is below ``GRADIENT_FLOOR`` per cell the in-plane part is 0 and ``m_z = +-1``
    (its sign, +1 at 0).

    Parameters
    ----------
    target, grid, measurement, Ms, cutoff
        As for ``fourier_mz``.
    chirality : +1 or -1

    Returns
    -------
    ndarray (nz, ny, nx, 3)
        Unit vectors.
    """
    if isinstance(chirality, bool) or chirality not in (1, -1):
        raise ValueError(f"chirality must be +1 or -1, got {chirality!r}")
    Ms, cutoff = _check_inputs(grid, measurement, Ms, cutoff)
    t = _target_tensor(target, grid)
    with torch.no_grad():
        mz = _estimate(t, grid, measurement, Ms, cutoff).clamp(-1.0, 1.0)
        gy, gx = torch.gradient(mz, spacing=(grid.dy, grid.dx))
        norm = torch.sqrt(gx * gx + gy * gy)
        flat = norm * min(grid.dx, grid.dy) < GRADIENT_FLOOR
        safe = torch.where(flat, torch.ones_like(norm), norm)
        transverse = chirality * torch.sqrt((1 - mz * mz).clamp(min=0.0))
        mx = torch.where(flat, torch.zeros_like(mz), transverse * gx / safe)
        my = torch.where(flat, torch.zeros_like(mz), transverse * gy / safe)
        sign = torch.where(mz < 0, -torch.ones_like(mz), torch.ones_like(mz))
        mz = torch.where(flat, sign, mz)
        m = torch.stack((mx, my, mz), dim=-1)
        m = m / torch.linalg.vector_norm(m, dim=-1, keepdim=True)
    return m.expand(grid.vector_shape).contiguous().cpu().numpy()
