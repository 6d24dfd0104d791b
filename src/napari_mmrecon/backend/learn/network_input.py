"""What the U-Net sees and what it returns: one image view in, one magnetization out.

Input channels (``CHANNELS = 7``), all ``(B, 7, ny, nx)`` float32:

0. the image, levelled (least-squares plane ``a + b x + c y`` removed) and divided by its RMS, so
   that gain, offset, tilt and units do not matter;
1. ``log(h / dx)`` (plane distance over pixel size), constant;
2. ``log(t / dx)`` (film thickness over pixel size), constant;
3. the effective side: +1 top, -1 bottom, *after* canonicalization to ``D > 0``;
4. the quantity: 0 for ``"Hz"``, 1 for ``"mfm"``;
5. the texture's own image: the levelled image minus the least-squares multiple of the levelled
   image of the *uniform* film (``m = +z``, same grid and view: ``uniform``), divided by its RMS;
6. the share of the levelled image that uniform film does not explain, ``rms(channel 5 before
   its division) / rms(levelled image)`` in 0 .. 1, constant.

Why 5 and 6. A finite film's uniform background has a stray field of its own, strongest at the
film's edges. On the strong side of a Neel texture it is small beside the texture's; on the weak
side, where the surface and volume charges of the walls nearly cancel, it dominates the image, and
the RMS normalization of channel 0 hides the texture under it (a skyrmion 6 times fainter from
below than from above is a shallow dip between bright edges). Subtracting the uniform film brings
the texture back to the fore, and channel 6 says how faint it was. The fit of the multiple keeps
both channels free of gain and units like channel 0.

Canonicalization. The mirror ``z -> -z`` maps a film with DMI ``D`` to one with ``-D``,
``m -> (-m_x, -m_y, m_z)`` (``canonical_m``), and its top-side image at height ``h`` to the
bottom-side image at ``h`` (H_z and point-dipole MFM frequency shift). A sample with ``D < 0``
is therefore shown to the network as the mirrored sample with ``D > 0`` seen from the other side
(channel 3 flipped); its prediction is mirrored back (``predict_m``). ``D = 0`` counts as ``D > 0``.

Output: 3 channels -> ``m = out / |out|``, ``(B, 3, ny, nx) -> (B, ny, nx, 3)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

CHANNELS = 7
SIDE_SIGN = {"top": 1.0, "bottom": -1.0}
"""Channel 3 before canonicalization, by side."""
QUANTITY_CODE = {"Hz": 0.0, "mfm": 1.0}
"""Channel 4, by view quantity."""
MIRROR = (-1.0, -1.0, 1.0)
"""Factors of ``(m_x, m_y, m_z)`` under the mirror ``z -> -z``."""


def d_sign(D) -> torch.Tensor:
    """``(B,)`` float: -1 where the DMI constant ``D`` (J/m^2, ``(B,)``) is negative, else +1."""
    D = torch.as_tensor(D)
    return torch.where(D < 0, -1.0, 1.0).to(torch.float32)


def level(images: torch.Tensor) -> torch.Tensor:
    """``images (B, ny, nx)`` minus each one's least-squares plane ``a + b x + c y`` (pixel units).

    On the regular pixel grid the centred coordinates and the constant are orthogonal, so the
    plane's coefficients are three projections (exact least squares, differentiable).
    """
    ny, nx = images.shape[-2:]
    y = torch.arange(ny, dtype=images.dtype, device=images.device) - (ny - 1) / 2
    x = torch.arange(nx, dtype=images.dtype, device=images.device) - (nx - 1) / 2
    y, x = y[:, None].expand(ny, nx), x[None, :].expand(ny, nx)
    out = images - images.mean(dim=(-2, -1), keepdim=True)
    for basis in (x, y):
        norm = (basis * basis).sum()
        if norm > 0:
            out = out - (out * basis).sum(dim=(-2, -1), keepdim=True) / norm * basis
    return out


def rms(images: torch.Tensor) -> torch.Tensor:
    """Root mean square of each image ``(B, ny, nx) -> (B, 1, 1)``, at least the dtype's ``tiny``
    (a constant image then normalizes to zeros, never NaN)."""
    value = images.square().mean(dim=(-2, -1), keepdim=True).sqrt()
    return value.clamp_min(torch.finfo(images.dtype).tiny)


def normalized_image(images: torch.Tensor) -> torch.Tensor:
    """Channel 0: ``images (B, ny, nx)`` levelled and divided by their RMS (dimensionless)."""
    levelled = level(images)
    return levelled / rms(levelled)


def uniform_residual(images: torch.Tensor, uniform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Channels 5 and 6: ``(residual (B, ny, nx), share (B,))`` of ``images (B, ny, nx)`` against
    the images ``uniform (B, ny, nx)`` of the uniform film (any units, any scale).

    ``residual`` is ``level(images) - a level(uniform)``, ``a`` by least squares, divided by its RMS;
    ``share`` its RMS before that division over the RMS of ``level(images)`` (1 where ``uniform``
    levels to zeros, e.g. a periodic film). Differentiable.
    """
    levelled = level(images)
    template = level(uniform)
    template = template / rms(template)
    scale = (levelled * template).sum(dim=(-2, -1), keepdim=True) / template.square().sum(
        dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(images.dtype).tiny)
    residual = levelled - scale * template
    share = (rms(residual) / rms(levelled)).clamp(0.0, 1.0)
    return residual / rms(residual), share.reshape(-1)


def network_input(images, dx, thickness, heights, sides, quantities, D_sign, uniform) -> torch.Tensor:
    """The U-Net input ``(B, 7, ny, nx)`` float32 of ``B`` image views.

    Parameters
    ----------
    images : tensor (B, ny, nx)
        The images in any units (A/m for H_z, Hz for MFM).
    uniform : tensor (B, ny, nx)
        The image of each view of the uniform film ``m = +z`` on the same grid (any ``Ms``:
        ``ForwardModel.uniform_images`` or ``measurement.simulate_image``); zeros where the film has
        no edges in view.
    dx, thickness, heights : (B,) tensors or sequences
        Pixel size dx = dy, film thickness, plane distance (height / lift height), all in m.
    sides : (B,) tensor or sequence
        +1 for a top-side view, -1 for a bottom-side one (``SIDE_SIGN``).
    quantities : (B,) tensor or sequence
        ``QUANTITY_CODE``: 0 for H_z, 1 for MFM.
    D_sign : (B,) tensor or sequence
        ``d_sign(D)``: -1 for a film with ``D < 0`` (its side is flipped here), else +1.
    """
    images = torch.as_tensor(images)
    if images.ndim != 3:
        raise ValueError(f"images must be a (B, ny, nx) batch, got shape {tuple(images.shape)}")
    b, ny, nx = images.shape
    device = images.device

    def column(values) -> torch.Tensor:
        values = torch.as_tensor(values, dtype=torch.float64, device=device).reshape(-1)
        if values.shape[0] != b:
            raise ValueError(f"expected {b} values (one per image), got {values.shape[0]}")
        return values

    uniform = torch.as_tensor(uniform, device=device)
    if uniform.shape != images.shape:
        raise ValueError(f"uniform has shape {tuple(uniform.shape)}; expected {tuple(images.shape)} like the images")
    dx, thickness, heights = column(dx), column(thickness), column(heights)
    constants = torch.stack([torch.log(heights / dx), torch.log(thickness / dx),
                             column(sides) * column(D_sign), column(quantities)], dim=1).to(torch.float32)
    images = images.to(torch.float64)  # levelled in double: offsets of 1e5 RMS leave no round-off
    image = normalized_image(images).to(torch.float32)
    residual, share = (x.to(torch.float32) for x in uniform_residual(images, uniform.to(torch.float64)))
    return torch.cat([image[:, None], constants[:, :, None, None].expand(b, 4, ny, nx), residual[:, None],
                      share[:, None, None, None].expand(b, 1, ny, nx)], dim=1)


def canonical_m(m: torch.Tensor, D_sign) -> torch.Tensor:
    """``m (B, ny, nx, 3)`` mirrored (``(-m_x, -m_y, m_z)``) where ``D_sign (B,)`` is -1; its own inverse."""
    sign = torch.as_tensor(D_sign, dtype=m.dtype, device=m.device).reshape(-1, 1, 1, 1)
    factors = torch.tensor(MIRROR, dtype=m.dtype, device=m.device)
    return torch.where(sign < 0, m * factors, m)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Reflect-pad ``x (B, C, ny, nx)`` so that ``ny`` and ``nx`` become multiples of ``multiple``.

    Returns the padded tensor and the padding ``(left, right, top, bottom)`` in pixels (split
    evenly, the odd pixel after) for ``crop``. ``ValueError`` for an image too small to reflect
    (a side of fewer than ``multiple / 2 + 1`` pixels).
    """
    ny, nx = x.shape[-2:]
    extra_y, extra_x = -ny % multiple, -nx % multiple
    padding = (extra_x // 2, extra_x - extra_x // 2, extra_y // 2, extra_y - extra_y // 2)
    if max(padding[:2]) >= nx or max(padding[2:]) >= ny:
        raise ValueError(f"an image of {ny} x {nx} pixels is too small for the network: give at least "
                         f"{math.ceil(multiple / 2) + 1} pixels per side")
    if not any(padding):
        return x, padding
    return nn.functional.pad(x, padding, mode="reflect"), padding


def crop(x: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """Undo ``pad_to_multiple``: ``x (..., ny + top + bottom, nx + left + right)`` -> ``(..., ny, nx)``."""
    left, right, top, bottom = padding
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]


def unit_vectors(out: torch.Tensor) -> torch.Tensor:
    """Network output ``(B, 3, ny, nx)`` -> unit vectors ``(B, ny, nx, 3)``."""
    return nn.functional.normalize(out, dim=1, eps=1e-12).permute(0, 2, 3, 1)


def predict_m(model, inputs: torch.Tensor, D_sign) -> torch.Tensor:
    """``m (B, ny, nx, 3)``, ``|m| = 1``, in the sample's own frame, from ``network_input`` ``(B, 5, ny, nx)``.

    Pads to the network's ``multiple``, runs it, crops, normalizes and mirrors the prediction
    back for films with ``D < 0`` (``D_sign``). Differentiable; ``model`` may be wrapped (DDP).
    """
    multiple = getattr(model, "module", model).multiple
    padded, padding = pad_to_multiple(inputs, multiple)
    return canonical_m(unit_vectors(crop(model(padded), padding)), D_sign)
