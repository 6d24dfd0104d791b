"""The training loss of the U-Net: angle to the true texture plus the image misfit of the prediction.

    loss = mean(1 - m_pred . m_true) + image_weight * mean_b( mean((K_b m_pred - S_b)^2) / P_b )

The first term is the mean of ``1 - cos(angle)`` over pixels and samples (0 for a perfect
prediction, 1 for an unrelated one, 2 for the reversed texture). In the second, ``K_b`` is the
forward operator of sample ``b``'s view (``measurement.simulate_image`` on the sample's film:
``Grid(nx, ny, 1, dx, dx, thickness)`` and its ``Ms``), ``S_b`` its noise-free stored image, and
``P_b`` the power of the texture's own image: the mean square of ``S_b`` levelled and less the
least-squares multiple of the uniform film's image (``network_input.uniform_residual``), at least
``TEXTURE_POWER_FLOOR`` of the levelled image's mean square. The term is dimensionless, of order 1
for a guess that misses the texture and 0 for the true texture, and differentiable with respect to
the prediction. Divided by the whole image's power instead, a weak-side image (where the film's
edge field is most of it) would let the network miss a skyrmion for a hundredth of the cost.

``DEFAULT_IMAGE_WEIGHT = 0.1``: the angle term leads (one image does not determine m, least of all
from the weak side, where many textures give nearly the same image), and the image term, a tenth
of it at equal size, pulls the prediction towards textures that reproduce the measurement.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch

from ..forward.measurement import image_operator
from ..forward.mfm import Cantilever, MFMMeasurement, tip_from_dict
from ..forward.stray import StrayFieldMeasurement
from ..physics.grid import Grid
from ..runtime.threads import threads_for
from .network_input import level, uniform_residual

DEFAULT_IMAGE_WEIGHT = 0.1
TEXTURE_POWER_FLOOR = 0.01
"""Least texture power ``P_b`` as a fraction of the levelled image's (a film whose texture
collapsed shows only its edges: its misfit is not blown up by a near-zero texture power)."""
CACHED_OPERATORS = 2048
"""Forward operators kept (least recently used dropped): one per shard geometry and view; a 64 x 64
one keeps some 0.2 MB of transformed kernel in float32."""


def angle_term(m_pred: torch.Tensor, m_true: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - m_pred . m_true`` over all pixels of unit fields ``(B, ny, nx, 3)`` (a 0-d tensor)."""
    return (1 - (m_pred * m_true).sum(-1)).mean()


def angle_degrees(m_pred: torch.Tensor, m_true: torch.Tensor) -> torch.Tensor:
    """Mean angle (degrees) between unit fields ``(B, ny, nx, 3)``, per sample ``(B,)``."""
    cos = (m_pred * m_true).sum(-1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos)).mean(dim=(-2, -1))


class ForwardModel:
    """The measurement of every view of a dataset as a differentiable map ``m -> image``.

    Parameters
    ----------
    views : list of dict
        The dataset's views (``{"side", "quantity": "Hz" | "mfm", "height_index"}``).
    mfm_tip, cantilever : dict or None
        The manifest's MFM tip and cantilever records (needed only for ``"mfm"`` views).
    cache_size : int
        Operators kept (``CACHED_OPERATORS``).
    """

    def __init__(self, views: list, mfm_tip: dict | None = None, cantilever: dict | None = None,
                 cache_size: int = CACHED_OPERATORS):
        self.views = list(views)
        self.tip = tip_from_dict(mfm_tip) if mfm_tip is not None else None
        self.cantilever = Cantilever.from_dict(cantilever) if cantilever is not None else None
        self.cache_size = cache_size
        self._operators: OrderedDict = OrderedDict()
        self._uniform: OrderedDict = OrderedDict()

    def measurement(self, view: int, height: float):
        """The ``StrayFieldMeasurement`` (H_z) or frequency-shift ``MFMMeasurement`` of view
        ``view`` at plane distance ``height`` (m)."""
        side, quantity = self.views[view]["side"], self.views[view]["quantity"]
        if quantity == "Hz":
            return StrayFieldMeasurement(height=height, side=side, component="z")
        if quantity != "mfm":
            raise ValueError(f"unknown view quantity {quantity!r}: expected 'Hz' or 'mfm'")
        if self.tip is None or self.cantilever is None:
            raise ValueError("an 'mfm' view needs the dataset manifest's mfm_tip and cantilever")
        return MFMMeasurement(lift_height=height, side=side, tip=self.tip, cantilever=self.cantilever,
                              quantity="frequency_shift")

    def operator(self, view: int, height: float, dx: float, thickness: float, shape: tuple, dtype, device):
        """``image_operator`` of the view on the film ``Grid(nx, ny, 1, dx, dx, thickness)``
        (``shape = (ny, nx)``), cached: ``M (1, ny, nx, 3)`` (A/m) -> image ``(ny, nx)``."""
        key = (view, height, dx, thickness, shape, dtype, str(device))
        operator = self._operators.pop(key, None)
        if operator is None:
            grid = Grid(nx=shape[1], ny=shape[0], nz=1, dx=dx, dy=dx, dz=thickness, device=device, dtype=dtype)
            operator = image_operator(self.measurement(view, height), grid)
        self._operators[key] = operator
        while len(self._operators) > self.cache_size:
            self._operators.popitem(last=False)
        return operator

    def images(self, m: torch.Tensor, Ms, dx, thickness, heights, views) -> torch.Tensor:
        """Images ``(B, ny, nx)`` (A/m for H_z, Hz for MFM) of ``m (B, ny, nx, 3)``.

        ``Ms`` (A/m), ``dx``, ``thickness``, ``heights`` (m) and ``views`` (indices) are ``(B,)``
        sequences or tensors; equal to ``simulate_image(measurement, m[b][None], grid, Ms[b])``
        per sample, differentiable with respect to ``m``.
        """
        shape = tuple(m.shape[1:3])
        columns = [torch.as_tensor(v).reshape(-1).tolist() for v in (Ms, dx, thickness, heights, views)]
        out = []
        with threads_for(math.prod(shape)):
            for b, (ms, d, t, h, v) in enumerate(zip(*columns)):
                operator = self.operator(int(v), float(h), float(d), float(t), shape, m.dtype, m.device)
                out.append(operator(float(ms) * m[b][None]))
        return torch.stack(out)


    def uniform_images(self, dx, thickness, heights, views, shape: tuple, dtype, device) -> torch.Tensor:
        """Images ``(B, ny, nx)`` of the uniform film ``m = +z`` with ``Ms = 1 A/m`` in each item's
        view and geometry (``(B,)`` columns as in ``images``; ``shape = (ny, nx)``): the
        ``uniform`` input of ``network_input``. Cached per geometry and view (no gradient)."""
        columns = [torch.as_tensor(v).reshape(-1).tolist() for v in (dx, thickness, heights, views)]
        out = []
        with torch.no_grad(), threads_for(math.prod(shape)):
            for d, t, h, v in zip(*columns):
                key = (int(v), float(h), float(d), float(t), tuple(shape), dtype, str(device))
                image = self._uniform.pop(key, None)
                if image is None:
                    operator = self.operator(int(v), float(h), float(d), float(t), tuple(shape), dtype, device)
                    up = torch.zeros((1, *shape, 3), dtype=dtype, device=device)
                    up[..., 2] = 1.0
                    image = operator(up)
                self._uniform[key] = image
                while len(self._uniform) > self.cache_size:
                    self._uniform.popitem(last=False)
                out.append(image)
        return torch.stack(out)


def texture_power(target: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """``P_b (B,)``: the mean square of each ``target (B, ny, nx)`` levelled and less its
    least-squares multiple of ``uniform (B, ny, nx)`` (the uniform film's image), at least
    ``TEXTURE_POWER_FLOOR`` of the levelled target's mean square (no gradient)."""
    with torch.no_grad():
        levelled = level(target).square().mean(dim=(-2, -1))
        _, share = uniform_residual(target, uniform)
        return levelled * share.square().clamp_min(TEXTURE_POWER_FLOOR)


def image_misfit(simulated: torch.Tensor, target: torch.Tensor, power: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over samples of ``mean((simulated - target)^2) / power``, images ``(B, ny, nx)``;
    ``power (B,)`` defaults to each target's mean square (a zero power counts as 1 in the image's
    units)."""
    scale = target.square().mean(dim=(-2, -1)) if power is None else power
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return ((simulated - target).square().mean(dim=(-2, -1)) / scale).mean()


@dataclass
class LossTerms:
    """``total = angle + image_weight * image`` (0-d tensors; ``total`` carries the graph)."""

    total: torch.Tensor
    angle: torch.Tensor
    image: torch.Tensor


def training_loss(m_pred: torch.Tensor, m_true: torch.Tensor, target_images: torch.Tensor, forward: ForwardModel,
                  Ms, dx, thickness, heights, views, image_weight: float = DEFAULT_IMAGE_WEIGHT,
                  uniform: torch.Tensor | None = None) -> LossTerms:
    """The loss of predictions ``m_pred (B, ny, nx, 3)`` against ``m_true`` and the noise-free
    images ``target_images (B, ny, nx)`` of each sample's view (see the module docstring).

    ``Ms`` (A/m), ``dx``, ``thickness``, ``heights`` (m), ``views`` (view indices): ``(B,)``;
    ``uniform (B, ny, nx)``: the items' ``forward.uniform_images`` when the caller has them already.
    The image term is computed in ``target_images``' dtype; with ``image_weight == 0`` it is skipped
    (reported as 0).
    """
    angle = angle_term(m_pred, m_true)
    if image_weight == 0:
        return LossTerms(angle, angle, torch.zeros_like(angle))
    simulated = forward.images(m_pred.to(target_images.dtype), Ms, dx, thickness, heights, views)
    if uniform is None:
        uniform = forward.uniform_images(dx, thickness, heights, views, tuple(target_images.shape[-2:]),
                                         target_images.dtype, target_images.device)
    power = texture_power(target_images, uniform)
    image = image_misfit(simulated, target_images, power).to(angle.dtype)
    return LossTerms(angle + image_weight * image, angle, image)
