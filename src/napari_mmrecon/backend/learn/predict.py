"""The U-Net's prediction of a magnetization from measured images: ``unet_predict``.

Each image of a stack is one view (``network_input``): the network predicts ``m`` from each and the
predictions are averaged (unit vectors summed and normalized). Images whose sides are not a
multiple of the network's ``multiple`` are reflect-padded; images larger than ``TILE`` pixels
on a side are predicted in overlapping tiles blended with a smooth window (the network is fully
convolutional, but each tile is levelled and normalized as the training images were). Pixel size,
height, thickness and the material are compared with the ranges the weights were trained on
(their ``meta["recipe"]``): outside them the prediction is marked as extrapolated.

The shipped weights (``weights/unet.pt`` beside this package's code, with ``unet.json``: the
command, data recipe, seed, commit and held-out metrics that made them) load on first use and
stay loaded; nothing is downloaded.
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..forward.measurement import check_measurement, simulate_image
from ..forward.mfm import MFMMeasurement, PointDipoleTip
from ..forward.stray import StrayFieldMeasurement
from ..physics.grid import MU0, Grid
from ..runtime.arrays import like_input
from .network_input import QUANTITY_CODE, SIDE_SIGN, network_input, predict_m
from .unet import load_checkpoint

TILE = 512
"""Images with a side above this many pixels are predicted in tiles of this size."""
OVERLAP = 64
"""Overlap of neighbouring tiles (pixels), blended by a raised-cosine window."""


class UNetExtrapolationWarning(UserWarning):
    """The images or material lie outside the ranges the U-Net was trained on."""


@dataclass
class UNetPrediction:
    """What ``unet_predict(..., return_info=True)`` says besides ``m``: ``extrapolated`` (one line per
    quantity outside the training range, with the range; empty inside it), ``notes`` (padding,
    tiling, an assumed DMI sign) and ``weights`` (the checkpoint's path)."""

    extrapolated: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    weights: str = ""


def shipped_weights() -> Path:
    """Path of the shipped checkpoint ``napari_mmrecon/weights/unet.pt``."""
    return Path(str(resources.files("napari_mmrecon") / "weights" / "unet.pt"))


_LOADED: dict = {}
_LOCK = threading.Lock()


def load_unet(weights=None, device=None):
    """``(model, meta)`` of a checkpoint (default: the shipped weights), in eval mode on ``device``;
    loaded once per (path, device) and kept. ``ValueError`` naming the file if it is missing or
    not a U-Net checkpoint."""
    path = Path(weights) if weights is not None else shipped_weights()
    key = (str(path.resolve()), str(device or "cpu"))
    with _LOCK:
        if key not in _LOADED:
            if not path.is_file():
                raise ValueError(f"U-Net weights not found: {path}")
            model, meta = load_checkpoint(path)
            _LOADED[key] = (model.to(device or "cpu"), meta)
        return _LOADED[key]


def network_view(measurement) -> tuple[str, float, float]:
    """``(quantity, plane distance (m), sign)`` of a measurement the network takes; ``sign`` turns the
    image into the trained quantity's sign (an MFM phase has the sign opposite to the shift).
    ``ValueError`` for a measurement it does not take (a component other than H_z, an MFM tip
    other than a point dipole along z)."""
    check_measurement(measurement)
    if isinstance(measurement, StrayFieldMeasurement):
        if not np.allclose(measurement.axis, (0.0, 0.0, 1.0)):
            raise ValueError("the U-Net takes H_z images (component 'z'); this measurement is the "
                             f"{measurement.component!r} component")
        return "Hz", float(measurement.height), 1.0
    if not isinstance(measurement.tip, PointDipoleTip):
        raise ValueError("the U-Net takes MFM images of a point-dipole tip; this measurement's tip is a "
                         f"{type(measurement.tip).__name__}")
    if not np.allclose(measurement.tip.axis, (0.0, 0.0, 1.0)):
        raise ValueError("the U-Net takes MFM images of a tip magnetized along z")
    sign = math.copysign(1.0, float(measurement.from_frequency_shift(torch.tensor(1.0))))
    return "mfm", float(measurement.lift_height), sign


def _outside(name: str, value: float, low: float, high: float, unit: str, scale: float) -> list:
    if low * (1 - 1e-9) <= value <= high * (1 + 1e-9):
        return []
    return [f"{name} {value / scale:.3g} {unit} is outside the training range "
            f"{low / scale:.3g}-{high / scale:.3g} {unit}"]


def _extrapolation(recipe: dict, grid: Grid, heights: list, material) -> list:
    """One line per quantity outside the recipe's ranges."""
    out = []
    if not recipe:
        return ["the weights carry no training ranges"]
    if not math.isclose(grid.dx, grid.dy, rel_tol=1e-6):
        out.append(f"pixels of {grid.dx * 1e9:.3g} x {grid.dy * 1e9:.3g} nm are not square (trained on square pixels)")
    out += _outside("pixel size", grid.dx, *recipe["cell_size"], "nm", 1e-9)
    out += _outside("thickness", grid.nz * grid.dz, *recipe["thickness"], "nm", 1e-9)
    for h in heights:
        out += _outside("height", h, *recipe["height_range"], "nm", 1e-9)
    if material is not None:
        Ms, A, Ku, D = (float(np.mean(np.asarray(getattr(material, n), dtype=float))) for n in ("Ms", "A", "Ku", "D"))
        out += _outside("Ms", Ms, *recipe["Ms"], "MA/m", 1e6)
        out += _outside("A", A, *recipe["A"], "pJ/m", 1e-12)
        out += _outside("|D|", abs(D), *recipe["D"], "mJ/m^2", 1e-3)
        out += _outside("quality factor Ku / (mu0 Ms^2 / 2)", Ku / (MU0 * Ms ** 2 / 2), *recipe["quality_factor"], "", 1.0)
    return out


def _window(n: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """Blending weights of a tile along one axis: a raised cosine over ``overlap`` pixels at inner edges."""
    w = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)
    if not first:
        w[:overlap] = ramp
    if not last:
        w[n - overlap:] = ramp[::-1]
    return w


def _starts(n: int, tile: int, overlap: int) -> list:
    """Tile origins along an axis of ``n`` pixels (the last one flush with the end)."""
    if n <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, n - tile, step)) + [n - tile]
    return sorted(set(starts))


def uniform_images(measurements, grid: Grid) -> torch.Tensor:
    """``(V, ny, nx)`` float32: the image of the uniform film ``m = +z`` (``Ms = 1 A/m``) in each
    measurement, on the grid's device (the ``uniform`` input of ``network_input``)."""
    up = torch.zeros(grid.vector_shape, dtype=grid.dtype, device=grid.device)
    up[..., 2] = 1.0
    with torch.no_grad():
        return torch.stack([simulate_image(meas, up, grid, 1.0).reshape(grid.ny, grid.nx)
                            for meas in measurements]).to(torch.float32)


def _predict_views(model, images: torch.Tensor, uniform: torch.Tensor, grid: Grid, heights, sides, quantities,
                   D_sign: float) -> torch.Tensor:
    """Sum over views of the predicted unit vectors, ``(ny, nx, 3)``; ``images, uniform (V, ny, nx)``."""
    v = images.shape[0]
    inputs = network_input(images, [grid.dx] * v, [grid.nz * grid.dz] * v, heights, sides, quantities, [D_sign] * v,
                           uniform)
    return predict_m(model, inputs.to(next(model.parameters()).device), [D_sign] * v).sum(dim=0)


def unet_predict(images, grid: Grid, measurement, material=None, weights=None, return_info: bool = False):
    """The magnetization a U-Net predicts from stray-field or MFM images.

    Parameters
    ----------
    images : array or tensor (ny, nx) or (nh, ny, nx)
        The image(s) on the grid's cells, in each measurement's units (any gain: each image is
        levelled and normalized by its RMS). H_z or a point-dipole MFM frequency shift or phase.
    grid : Grid
        Pixel size ``dx = dy`` (m) and film thickness ``nz * dz`` (m); ``ny, nx`` the images' shape.
    measurement : StrayFieldMeasurement or MFMMeasurement, or a sequence (one per image)
        Side and plane distance of each image.
    material : Material, optional
        Only the sign of ``D`` is used (which side shows the Neel charges strongly), and the
        ranges are checked; without it ``D > 0`` is assumed (and said in the notes).
    weights : path, optional
        A checkpoint of ``mmrecon train``; default the shipped weights.
    return_info : bool
        Also return a ``UNetPrediction``.

    Returns
    -------
    m : (nz, ny, nx, 3), unit vectors, the same in every layer; the kind (numpy/torch) of ``images``.
    info : UNetPrediction, with ``return_info``.

    Extrapolation beyond the training ranges warns (``UNetExtrapolationWarning``) and is listed in
    ``info.extrapolated``; NaN or infinite pixels, a measurement the network does not take, or an
    image shape other than the grid's raise ``ValueError``.
    """
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a napari_mmrecon Grid, got {type(grid).__name__}")
    data = images.detach() if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images, dtype=float))
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or tuple(data.shape[1:]) != (grid.ny, grid.nx):
        raise ValueError(f"images have shape {tuple(images.shape)}; expected (ny, nx) or (nh, ny, nx) with "
                         f"(ny, nx) = {(grid.ny, grid.nx)} of the grid")
    if not bool(torch.isfinite(data).all()):
        raise ValueError("the images contain NaN or infinite pixels: mask or fill them first")
    measurements = list(measurement) if isinstance(measurement, (list, tuple)) else [measurement] * data.shape[0]
    if len(measurements) != data.shape[0]:
        raise ValueError(f"{data.shape[0]} image(s) but {len(measurements)} measurement(s): give one per image")
    views = [network_view(meas) for meas in measurements]
    heights = [h for _, h, _ in views]
    info = UNetPrediction()
    D_sign = 1.0
    if material is None:
        info.notes.append("no material given: D > 0 assumed (it decides which side is the strong one)")
    else:
        D_sign = -1.0 if float(np.mean(np.asarray(material.D, dtype=float))) < 0 else 1.0
    model, meta = load_unet(weights, grid.device)
    info.weights = str(Path(weights) if weights is not None else shipped_weights())
    info.extrapolated = _extrapolation(meta.get("recipe") or {}, grid, heights, material)
    if info.extrapolated:
        warnings.warn("U-Net prediction extrapolated: " + "; ".join(info.extrapolated), UNetExtrapolationWarning,
                      stacklevel=2)
    signed = data.to(device=grid.device, dtype=torch.float32) * torch.tensor(
        [s for _, _, s in views], dtype=torch.float32, device=grid.device).reshape(-1, 1, 1)
    sides = [SIDE_SIGN[meas.side] for meas in measurements]
    quantities = [QUANTITY_CODE[q] for q, _, _ in views]
    uniform = uniform_images(measurements, grid)
    multiple = model.multiple
    if grid.ny % multiple or grid.nx % multiple:
        info.notes.append(f"images reflect-padded to a multiple of {multiple} pixels and cropped back")
    ny, nx = grid.ny, grid.nx
    total = torch.zeros((ny, nx, 3), dtype=torch.float32, device=grid.device)
    with torch.no_grad():
        ys, xs = _starts(ny, TILE, OVERLAP), _starts(nx, TILE, OVERLAP)
        if len(ys) * len(xs) > 1:
            info.notes.append(f"predicted in {len(ys) * len(xs)} overlapping tiles of {TILE} x {TILE} pixels")
        for i, y0 in enumerate(ys):
            wy = _window(min(TILE, ny), OVERLAP, i == 0, i == len(ys) - 1)
            for j, x0 in enumerate(xs):
                wx = _window(min(TILE, nx), OVERLAP, j == 0, j == len(xs) - 1)
                part = signed[:, y0:y0 + TILE, x0:x0 + TILE]
                pred = _predict_views(model, part, uniform[:, y0:y0 + TILE, x0:x0 + TILE], grid, heights, sides,
                                      quantities, D_sign)
                weight = torch.as_tensor(np.outer(wy, wx), dtype=torch.float32, device=grid.device)
                total[y0:y0 + TILE, x0:x0 + TILE] += weight[..., None] * pred
    m = torch.nn.functional.normalize(total.to(grid.dtype), dim=-1, eps=1e-12)
    m = m.expand(grid.vector_shape).clone()
    out = like_input(m, images)
    return (out, info) if return_info else out
