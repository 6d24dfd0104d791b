"""Random starting textures of the synthetic dataset, drawn from a numpy ``Generator``.

``starting_texture(kind, grid, rng, wall, helix_period, polarity, chirality)`` returns unit
vectors ``(nz, ny, nx, 3)`` float64 built from ``physics.textures``; every random choice comes from
``rng``, so a texture is fixed by the generator's state. Lengths are in metres. The texture's length
scales follow the material's: skyrmion radii from ``1.5 wall`` (and two cells) up, stripe and
labyrinth periods around the helix period ``4 pi A / |D|``, walls of the width ``wall``, so that the
relaxation starts near an equilibrium of the film.

Kinds (``KINDS``):

- ``"skyrmion"``: one to three isolated skyrmions of different radii, four largest radii apart;
- ``"skyrmions"``: a random film of many skyrmions of similar radius, three radii apart;
- ``"lattice"``: a hexagonal skyrmion lattice of random spacing, orientation and offset;
- ``"stripes"``: straight stripe domains of random period, direction and phase;
- ``"labyrinth"``: a random labyrinth of domains;
- ``"mixture"``: a skyrmion texture in one part of the film and stripes or a labyrinth in the
  other, split along a smooth random boundary.

``polarity`` (+1 or -1) is the sign of ``m_z`` in skyrmion cores (the background has the other
sign); stripes and labyrinths are multiplied by it. ``chirality`` (+1 or -1) is the Neel sense,
+1 favoured by ``D > 0`` (``physics.textures``).
"""

from __future__ import annotations

import math

import numpy as np

from ..physics import textures
from ..physics.grid import Grid

SKYRMION_KINDS = ("skyrmion", "skyrmions", "lattice")
DOMAIN_KINDS = ("stripes", "labyrinth")
KINDS = SKYRMION_KINDS + DOMAIN_KINDS + ("mixture",)
PLACEMENT_TRIES = 2000
"""Random positions tried per skyrmion count before placing one skyrmion fewer."""


def starting_texture(kind: str, grid: Grid, rng: np.random.Generator, wall: float, helix_period: float,
                     polarity: int, chirality: int) -> np.ndarray:
    """A random texture of ``kind`` on ``grid``: unit vectors ``(nz, ny, nx, 3)`` float64.

    Parameters
    ----------
    kind : one of ``KINDS``
    rng : numpy Generator
        Source of every random choice.
    wall : float
        Domain-wall width ``sqrt(A / Keff)`` (m).
    helix_period : float
        ``4 pi A / |D|`` (m), around which stripe and labyrinth periods are drawn.
    polarity, chirality : +1 or -1
    """
    if kind not in KINDS:
        raise ValueError(f"unknown texture kind {kind!r}: expected one of {', '.join(KINDS)}")
    scales = _Scales(grid, wall, helix_period)
    if kind == "mixture":
        skyrmions = SKYRMION_KINDS[int(rng.integers(len(SKYRMION_KINDS)))]
        domains = DOMAIN_KINDS[int(rng.integers(len(DOMAIN_KINDS)))]
        first = _MAKERS[skyrmions](grid, rng, scales, polarity, chirality)
        second = _MAKERS[domains](grid, rng, scales, polarity, chirality)
        return np.where(_smooth_mask(grid, rng)[None, :, :, None], first, second)
    return _MAKERS[kind](grid, rng, scales, polarity, chirality)


class _Scales:
    """The length scales (m) a texture is drawn with: the wall width, the side ``L`` of the film,
    the range of skyrmion radii and the helix period."""

    def __init__(self, grid: Grid, wall: float, helix_period: float):
        self.wall = wall
        self.side = min(grid.nx * grid.dx, grid.ny * grid.dy)
        self.cell = max(grid.dx, grid.dy)
        self.radius_low = max(1.5 * wall, 2 * self.cell)
        self.helix_period = helix_period

    def radius_high(self, fraction: float) -> float:
        """The largest radius drawn: ``fraction`` of the film's side, at least ``1.5`` smallest radii."""
        return max(fraction * self.side, 1.5 * self.radius_low)

    def period(self, rng: np.random.Generator) -> float:
        """A stripe or labyrinth period: 0.8-1.6 helix periods, at least ``2 pi`` walls and six
        cells, at most half the film."""
        low, high = max(2 * math.pi * self.wall, 6 * self.cell), 0.5 * self.side
        return min(max(self.helix_period * rng.uniform(0.8, 1.6), low), high)


def _centers(grid: Grid, rng: np.random.Generator, count: int, min_distance: float, margin: float) -> np.ndarray:
    """Up to ``count`` random centres ``(n, 2)`` (m), ``min_distance`` apart, ``margin`` from the
    edges: as many as ``textures.random_skyrmion_centers`` places, one fewer after each failure."""
    for n in range(count, 0, -1):
        try:
            return textures.random_skyrmion_centers(grid, n, min_distance, margin, seed=int(rng.integers(2**32)),
                                                    max_tries=PLACEMENT_TRIES)
        except ValueError:
            continue
    lx, ly, _ = grid.size
    return np.array([[lx / 2, ly / 2]])


def _isolated(grid, rng, scales: _Scales, polarity, chirality) -> np.ndarray:
    radii = rng.uniform(scales.radius_low, scales.radius_high(1 / 8), int(rng.integers(1, 4)))
    largest = radii.max()
    centers = _centers(grid, rng, len(radii), 4 * largest, min(1.2 * largest, 0.4 * scales.side))
    return textures.skyrmions(grid, centers, radii[: len(centers)], polarity, chirality, wall_width=scales.wall)


def _film(grid, rng, scales: _Scales, polarity, chirality) -> np.ndarray:
    radius = rng.uniform(scales.radius_low, scales.radius_high(1 / 10))
    margin = min(radius, 0.4 * scales.side)
    distance = 3 * 1.2 * radius
    fits = int(0.4 * (scales.side - 2 * margin) ** 2 / (math.pi * (distance / 2) ** 2))
    radii = radius * rng.uniform(0.8, 1.2, int(rng.integers(2, max(3, fits) + 1)))
    centers = _centers(grid, rng, len(radii), distance, margin)
    return textures.skyrmions(grid, centers, radii[: len(centers)], polarity, chirality, wall_width=scales.wall)


def _lattice(grid, rng, scales: _Scales, polarity, chirality) -> np.ndarray:
    radius = rng.uniform(scales.radius_low, scales.radius_high(1 / 10))
    spacing = radius * rng.uniform(2.5, 4.0)
    angle = rng.uniform(0, math.pi / 3)
    offset = tuple(rng.uniform(-spacing / 2, spacing / 2, 2))
    return textures.skyrmion_lattice(grid, spacing, radius, polarity, chirality, wall_width=scales.wall,
                                     offset=offset, angle=angle)


def _stripes(grid, rng, scales: _Scales, polarity, chirality) -> np.ndarray:
    period = scales.period(rng)
    m = textures.stripes(grid, period, angle=rng.uniform(0, math.pi), chirality=chirality,
                         wall_width=scales.wall, phase=rng.uniform(0, period))
    return polarity * m


def _labyrinth(grid, rng, scales: _Scales, polarity, chirality) -> np.ndarray:
    m = textures.labyrinth(grid, scales.period(rng), seed=int(rng.integers(2**32)), chirality=chirality,
                           wall_width=scales.wall)
    return polarity * m


_MAKERS = {"skyrmion": _isolated, "skyrmions": _film, "lattice": _lattice, "stripes": _stripes,
           "labyrinth": _labyrinth}


def _smooth_mask(grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """A boolean ``(ny, nx)`` map splitting the film along a smooth random boundary (white noise
    low-passed to about half the film's side), 30-70 % of the cells True."""
    noise = rng.standard_normal((grid.ny, grid.nx))
    k = np.hypot(np.fft.fftfreq(grid.ny, d=grid.dy)[:, None], np.fft.fftfreq(grid.nx, d=grid.dx)[None, :])
    side = min(grid.nx * grid.dx, grid.ny * grid.dy)
    smooth = np.fft.ifft2(np.fft.fft2(noise) * np.exp(-((k * side / 2) ** 2))).real
    return smooth > np.quantile(smooth, rng.uniform(0.3, 0.7))
