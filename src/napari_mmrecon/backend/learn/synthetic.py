"""One shard of the synthetic dataset: random films relaxed in one batch, imaged from every view.

``make_shard(recipe, seed, shard_index)`` is deterministic in ``(recipe, seed, shard_index)``
(``rng = np.random.default_rng([seed, shard_index])``, float64 throughout, on the CPU by
default). Per shard it draws one cell size, thickness and set of plane distances; per sample a
material, a DMI sign, a core polarity, a starting texture (``synthetic_textures``) and an applied
field (``recipe.DatasetRecipe`` documents the ranges). The ``shard_size`` samples are relaxed
together (``relax`` with per-state parameters) and imaged by the forward model
(``forward.measurement.simulate_image``) from every view: both sides, each plane distance, H_z
(A/m) and the frequency shift (Hz) of a point-dipole MFM tip.

    shard = make_shard(DatasetRecipe(cells=32, shard_size=4), seed=0, shard_index=3)
    shard["m"].shape, shard["images"].shape       # (4, 32, 32, 3), (4, 8, 32, 32)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..forward.measurement import simulate_image
from ..forward.mfm import Cantilever, MFMMeasurement, PointDipoleTip
from ..forward.stray import StrayFieldMeasurement
from ..physics.grid import MU0, Grid, Material
from ..solvers.relax import RelaxInfo, relax
from .recipe import DatasetRecipe
from .synthetic_textures import starting_texture

SIDES = ("top", "bottom")
QUANTITIES = ("Hz", "mfm")
MFM_TIP = PointDipoleTip()
"""The MFM views' tip: a point dipole of 1e-16 A m^2 along +z (lab frame, either side)."""
CANTILEVER = Cantilever()
"""The MFM views' cantilever: k = 3 N/m, f0 = 75 kHz, Q = 200."""
MATERIAL_COLUMNS = ("Ms", "A", "Ku", "D")
"""The columns of the ``material`` array: A/m, J/m, J/m^3, J/m^2 (D signed)."""
CANDIDATES = 256
"""Materials drawn at once when looking for one whose wall width fits the grid."""
CANDIDATE_ROUNDS = 64
"""Rounds of ``CANDIDATES`` before the recipe is refused as leaving no material for the grid."""


def views(recipe: DatasetRecipe) -> list[dict]:
    """Every view of a sample: ``{"side", "quantity", "height_index"}`` for both sides x the
    ``n_heights`` plane distances x (``"Hz"``, ``"mfm"``), in that nesting order."""
    return [{"side": side, "quantity": quantity, "height_index": index}
            for side in SIDES for index in range(recipe.n_heights) for quantity in QUANTITIES]


def view_measurement(view: dict, height: float):
    """The measurement of ``view`` at plane distance ``height`` (m): H_z, or the MFM frequency shift
    of ``MFM_TIP`` on ``CANTILEVER``."""
    if view["quantity"] == "Hz":
        return StrayFieldMeasurement(height=height, side=view["side"], component="z")
    return MFMMeasurement(lift_height=height, side=view["side"], tip=MFM_TIP, cantilever=CANTILEVER)


@dataclass
class ShardDraw:
    """The random part of a shard, before relaxation (B = ``recipe.shard_size``).

    ``grid``: the film (``cells x cells x 1``, the shard's dx = dy and thickness, float64);
    ``heights (n_heights,)`` m, sorted; ``m0 (B, 1, ny, nx, 3)`` starting unit vectors;
    ``material (B, 4)`` Ms, A, Ku, D (SI); ``external_field (B,)`` H_z in A/m; ``kind (B,)`` int8
    indices into ``recipe.kinds``.
    """

    grid: Grid
    heights: np.ndarray
    m0: np.ndarray
    material: np.ndarray
    external_field: np.ndarray
    kind: np.ndarray

    def materials(self) -> Material:
        """The samples' ``Material``, each parameter a length-B vector."""
        return Material(**{name: self.material[:, i] for i, name in enumerate(MATERIAL_COLUMNS)})

    def fields(self) -> np.ndarray:
        """The applied fields as vectors ``(B, 1, 1, 1, 3)`` (A/m), along z."""
        field = np.zeros((len(self.external_field), 1, 1, 1, 3))
        field[..., 2] = self.external_field[:, None, None, None]
        return field


def _log_uniform(rng: np.random.Generator, bounds, size=None):
    low, high = bounds
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def _check_index(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return int(value)


def _material(rng: np.random.Generator, recipe: DatasetRecipe, dx: float) -> tuple[float, ...]:
    """``(Ms, A, Q, |D|, wall)`` (SI) of the first candidate whose wall width ``sqrt(A / Keff)`` lies
    between ``min_wall_cells`` cells of ``dx`` (m) and ``max_wall_fraction`` of the film's side and
    whose ``|D| / Dc`` lies in ``recipe.dmi_ratio`` (``recipe.DatasetRecipe``)."""
    low, high = recipe.min_wall_cells * dx, recipe.max_wall_fraction * recipe.cells * dx
    for _ in range(CANDIDATE_ROUNDS):
        Ms, A, Q, D = (rng.uniform(*bounds, CANDIDATES)
                       for bounds in (recipe.Ms, recipe.A, recipe.quality_factor, recipe.D))
        Keff = (Q - 1) * MU0 * Ms**2 / 2
        wall, ratio = np.sqrt(A / Keff), D / (4 * np.sqrt(A * Keff) / np.pi)
        fits = np.flatnonzero((wall >= low) & (wall <= high) & (ratio >= recipe.dmi_ratio[0])
                              & (ratio <= recipe.dmi_ratio[1]))
        if fits.size:
            i = fits[0]
            return float(Ms[i]), float(A[i]), float(Q[i]), float(D[i]), float(wall[i])
    raise ValueError(f"the recipe's materials have no wall width sqrt(A / Keff) between {low * 1e9:.3g} and "
                     f"{high * 1e9:.3g} nm (min_wall_cells {recipe.min_wall_cells:g} cells of {dx * 1e9:.3g} nm, "
                     f"max_wall_fraction {recipe.max_wall_fraction:g} of {recipe.cells} cells) with |D| / Dc in "
                     f"{recipe.dmi_ratio[0]:g}-{recipe.dmi_ratio[1]:g}: widen the Ms, A, D or quality_factor "
                     "ranges, dmi_ratio or the cell sizes")


def draw_shard(recipe: DatasetRecipe, seed: int, shard_index: int, device="cpu") -> ShardDraw:
    """The starting states, materials, fields and geometry of shard ``shard_index`` of the
    dataset of ``seed`` (both whole numbers >= 0), on ``device``."""
    rng = np.random.default_rng([_check_index(seed, "seed"), _check_index(shard_index, "shard_index")])
    dx = float(_log_uniform(rng, recipe.cell_size))
    thickness = float(_log_uniform(rng, recipe.thickness))
    heights = np.sort(_log_uniform(rng, recipe.height_range, recipe.n_heights))
    grid = Grid(nx=recipe.cells, ny=recipe.cells, nz=1, dx=dx, dy=dx, dz=thickness, device=device)
    weights = np.asarray(recipe.kind_weights) / sum(recipe.kind_weights)
    B = recipe.shard_size
    m0 = np.empty((B,) + grid.vector_shape)
    material, field, kind = np.empty((B, 4)), np.empty(B), np.empty(B, dtype=np.int8)
    for i in range(B):
        Ms, A, Q, D, wall = _material(rng, recipe, dx)
        sign, polarity = (int(s) for s in rng.choice([-1, 1], 2))
        kind[i] = rng.choice(len(weights), p=weights)
        low, high = recipe.field
        cap = recipe.field_anisotropy_fraction * (Q - 1) * Ms
        field[i] = -polarity * rng.uniform(low, high) * (min(1.0, cap / high) if high > 0 else 0.0)
        material[i] = (Ms, A, Q * MU0 * Ms**2 / 2, sign * D)
        m0[i] = starting_texture(recipe.kinds[kind[i]], grid, rng, wall, 4 * np.pi * A / D, polarity, sign)
    return ShardDraw(grid, heights, m0, material, field, kind)


def relax_shard(draw: ShardDraw, recipe: DatasetRecipe, cancel=None) -> tuple[np.ndarray, RelaxInfo]:
    """``(m (B, 1, ny, nx, 3), info)``: the batch relaxed to ``recipe.tol`` in at most
    ``recipe.max_iter`` iterations (``info.converged (B,)``); ``cancel`` stops it early."""
    return relax(draw.m0, draw.grid, draw.materials(), external_field=draw.fields(), tol=recipe.tol,
                 max_iter=recipe.max_iter, return_info=True, cancel=cancel)


def view_images(grid: Grid, heights: np.ndarray, view_list: list[dict], m: np.ndarray, Ms: np.ndarray) -> np.ndarray:
    """Images ``(B, V, ny, nx)`` float64 of ``m (B, 1, ny, nx, 3)`` with ``Ms (B,)`` (A/m) from
    each of the ``V`` views (``views``), at ``heights[view["height_index"]]`` (m): A/m or Hz."""
    with torch.no_grad():
        mt = grid.tensor(m)
        Ms_t = grid.tensor(Ms).reshape(-1, 1, 1, 1, 1)
        images = [simulate_image(view_measurement(view, float(heights[view["height_index"]])), mt, grid, Ms_t)
                  for view in view_list]
        return torch.stack(images, dim=1).cpu().numpy()


def make_shard(recipe: DatasetRecipe, seed: int, shard_index: int, device="cpu", cancel=None) -> dict | None:
    """The arrays of one shard (B = ``recipe.shard_size`` samples, V views, ``cells`` pixels a side):

    ``m (B, ny, nx, 3)`` float32 unit vectors; ``images (B, V, ny, nx)`` float32 (A/m for H_z, Hz
    for MFM); ``heights (B, V)`` m; ``material (B, 4)`` Ms, A, Ku, D (SI); ``external_field (B,)``
    A/m; ``dx``, ``thickness (B,)`` m; ``kind (B,)`` int8 (into ``recipe.kinds``); ``converged
    (B,)`` bool. Computed in float64 on ``device``; ``None`` if ``cancel`` (a ``threading.Event``
    or a callable) stopped the relaxation.
    """
    draw = draw_shard(recipe, seed, shard_index, device)
    m, info = relax_shard(draw, recipe, cancel)
    if info.cancelled:
        return None
    view_list = views(recipe)
    B = recipe.shard_size
    index = [view["height_index"] for view in view_list]
    return {
        "m": m[:, 0].astype(np.float32),
        "images": view_images(draw.grid, draw.heights, view_list, m, draw.material[:, 0]).astype(np.float32),
        "heights": np.tile(draw.heights[index], (B, 1)),
        "material": draw.material,
        "external_field": draw.external_field,
        "dx": np.full(B, draw.grid.dx),
        "thickness": np.full(B, draw.grid.dz),
        "kind": draw.kind,
        "converged": np.asarray(info.converged, dtype=bool).reshape(B),
    }
