"""Starting magnetization states on a grid.

Every function returns unit vectors as a float64 numpy array ``(nz, ny, nx, 3)`` (the same in
every layer unless stated), deterministic for a given ``seed``. Positions and lengths are in
metres, measured from the grid origin (cell centres at ``(i + 1/2) d``).

Neel skyrmion convention: ``polarity`` is the sign of ``m_z`` in the core (the background has
the opposite sign); ``chirality = +1`` is the sense favoured by ``D > 0`` in the mumax3 ``Dind``
convention used here (for a core-down skyrmion the in-plane part points radially outwards).
"""

from __future__ import annotations

import math

import numpy as np

from .grid import Grid


def _normalized(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _plane_coordinates(grid: Grid):
    x, y, _ = grid.cell_centers()
    return np.meshgrid(y, x, indexing="ij")[::-1]  # X (ny, nx), Y (ny, nx)


def _layers(grid: Grid, m2d: np.ndarray) -> np.ndarray:
    return np.broadcast_to(m2d, grid.vector_shape).copy()


def uniform(grid: Grid, direction=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Uniform state along ``direction`` (any non-zero 3-vector)."""
    d = np.asarray(direction, dtype=float)
    if d.shape != (3,) or not np.all(np.isfinite(d)) or np.linalg.norm(d) == 0:
        raise ValueError(f"direction must be a non-zero 3-vector, got {direction!r}")
    return _layers(grid, d / np.linalg.norm(d))


def skyrmion_profile(r: np.ndarray, radius: float, wall_width: float) -> np.ndarray:
    """Polar angle from the core axis, ``Theta(r) = 2 atan(sinh(R / w) / sinh(r / w))``.

    ``Theta = pi`` at the centre, ``pi/2`` at ``r = radius`` (the ``m_z = 0`` contour), 0 far out.
    """
    with np.errstate(divide="ignore", over="ignore"):
        return 2.0 * np.arctan2(np.sinh(radius / wall_width), np.sinh(r / wall_width))


def _skyrmion_field(X, Y, center, radius, wall_width, polarity, chirality):
    dx, dy = X - center[0], Y - center[1]
    r = np.hypot(dx, dy)
    theta = skyrmion_profile(r, radius, wall_width)  # pi in the core
    phi = np.arctan2(dy, dx)
    # background m_z = -polarity; core m_z = polarity
    mz = -polarity * np.cos(theta)
    mr = -polarity * chirality * np.sin(theta)
    return np.stack((mr * np.cos(phi), mr * np.sin(phi), mz), axis=-1)


def _check_skyrmion_args(radius, wall_width, polarity, chirality):
    if not (radius > 0 and math.isfinite(radius)):
        raise ValueError(f"radius must be a positive length in metres, got {radius!r}")
    if not (wall_width > 0 and math.isfinite(wall_width)):
        raise ValueError(f"wall_width must be a positive length in metres, got {wall_width!r}")
    if polarity not in (1, -1):
        raise ValueError(f"polarity must be +1 or -1, got {polarity!r}")
    if chirality not in (1, -1):
        raise ValueError(f"chirality must be +1 or -1, got {chirality!r}")


def skyrmion(grid: Grid, radius: float, center=None, polarity: int = -1, chirality: int = 1,
             wall_width: float | None = None) -> np.ndarray:
    """A single Neel skyrmion.

    Parameters
    ----------
    grid : Grid
    radius : float
        Radius of the ``m_z = 0`` contour (m).
    center : (x, y), optional
        Centre in metres; default the middle of the grid.
    polarity : +1 or -1
        Sign of ``m_z`` in the core (default -1: core down in an up background).
    chirality : +1 or -1
        +1 is the Neel sense favoured by ``D > 0`` (mumax3 ``Dind`` sign).
    wall_width : float, optional
        Domain-wall width parameter ``w`` (m); default ``radius / 3``.

    Returns
    -------
    ndarray ``(nz, ny, nx, 3)``, unit vectors.
    """
    wall_width = radius / 3 if wall_width is None else wall_width
    _check_skyrmion_args(radius, wall_width, polarity, chirality)
    lx, ly, _ = grid.size
    center = (lx / 2, ly / 2) if center is None else center
    X, Y = _plane_coordinates(grid)
    return _layers(grid, _normalized(_skyrmion_field(X, Y, center, radius, wall_width, polarity, chirality)))


def skyrmions(grid: Grid, centers, radius, polarity: int = -1, chirality: int = 1,
              wall_width: float | None = None) -> np.ndarray:
    """Neel skyrmions at the given centres, each cell taking the profile of its nearest centre.

    Parameters
    ----------
    centers : array-like (n, 2)
        Skyrmion centres ``(x, y)`` in metres (n >= 1).
    radius : float or array-like (n,)
        Radius (m) of all skyrmions, or of each.
    polarity, chirality, wall_width
        As for ``skyrmion`` (the same for all; the wall width defaults to a third of each radius).

    Returns
    -------
    ndarray ``(nz, ny, nx, 3)``, unit vectors.
    """
    centers = np.asarray(centers, dtype=float)
    if centers.ndim != 2 or centers.shape[1] != 2 or len(centers) == 0 or not np.all(np.isfinite(centers)):
        raise ValueError(f"centers must be a non-empty (n, 2) array of (x, y) in metres, got shape {centers.shape}")
    radii = np.broadcast_to(np.asarray(radius, dtype=float), (len(centers),)) if np.ndim(radius) <= 1 else None
    if radii is None or np.ndim(radius) == 1 and np.size(radius) != len(centers):
        raise ValueError(f"radius must be one length or one per centre ({len(centers)}), got shape {np.shape(radius)}")
    walls = radii / 3 if wall_width is None else np.full(len(centers), float(wall_width))
    for r, w in zip(radii, walls):
        _check_skyrmion_args(float(r), float(w), polarity, chirality)
    X, Y = _plane_coordinates(grid)
    d = np.hypot(X[..., None] - centers[:, 0], Y[..., None] - centers[:, 1])  # (ny, nx, n)
    nearest = np.argmin(d, axis=-1)
    m = _skyrmion_field(X, Y, (centers[nearest, 0], centers[nearest, 1]), radii[nearest], walls[nearest], polarity,
                        chirality)
    return _layers(grid, _normalized(m))


def random_skyrmion_centers(grid: Grid, count: int, min_distance: float, margin: float = 0.0,
                            seed: int = 0, max_tries: int = 100000) -> np.ndarray:
    """``count`` random centres ``(x, y)`` (m), at least ``min_distance`` apart and ``margin`` from the
    edges, drawn uniformly by rejection from ``seed``; ``ValueError`` if they do not fit."""
    rng = np.random.default_rng(seed)
    lx, ly, _ = grid.size
    if not (0 <= 2 * margin < min(lx, ly)):
        raise ValueError(f"margin ({margin!r} m) leaves no room in a {lx:g} x {ly:g} m film")
    centers = []
    for _ in range(max_tries):
        p = rng.uniform((margin, margin), (lx - margin, ly - margin))
        if all(math.hypot(*(p - q)) >= min_distance for q in centers):
            centers.append(p)
            if len(centers) == count:
                return np.array(centers)
    raise ValueError(f"could not place {count} skyrmions {min_distance:g} m apart in a {lx:g} x {ly:g} m film")


def random_skyrmions(grid: Grid, count: int, radius: float, min_distance: float | None = None,
                     margin: float | None = None, seed: int = 0, polarity: int = -1, chirality: int = 1,
                     wall_width: float | None = None) -> np.ndarray:
    """``count`` Neel skyrmions at random positions (deterministic from ``seed``).

    ``min_distance`` between centres defaults to ``4 radius``, ``margin`` from the edges to
    ``2 radius``. Returns ``(nz, ny, nx, 3)`` unit vectors.
    """
    min_distance = 4 * radius if min_distance is None else min_distance
    margin = 2 * radius if margin is None else margin
    centers = random_skyrmion_centers(grid, count, min_distance, margin, seed)
    return skyrmions(grid, centers, radius, polarity, chirality, wall_width)


def skyrmion_lattice(grid: Grid, spacing: float, radius: float, polarity: int = -1, chirality: int = 1,
                     wall_width: float | None = None, offset=(0.0, 0.0), angle: float = 0.0) -> np.ndarray:
    """A hexagonal lattice of Neel skyrmions.

    Parameters
    ----------
    spacing : float
        Nearest-neighbour distance (m).
    radius, polarity, chirality, wall_width
        As for ``skyrmion``; ``radius`` must be below ``spacing / 2``.
    offset : (x, y)
        Shift of the lattice from the grid centre (m).
    angle : float
        Rotation of the lattice (rad).

    Returns
    -------
    ndarray ``(nz, ny, nx, 3)``: each cell takes the profile of its nearest lattice site.
    """
    wall_width = radius / 3 if wall_width is None else wall_width
    _check_skyrmion_args(radius, wall_width, polarity, chirality)
    if not (spacing > 2 * radius):
        raise ValueError(f"spacing ({spacing!r} m) must exceed twice the radius ({radius!r} m)")
    X, Y = _plane_coordinates(grid)
    lx, ly, _ = grid.size
    a1 = spacing * np.array([math.cos(angle), math.sin(angle)])
    a2 = spacing * np.array([math.cos(angle + math.pi / 3), math.sin(angle + math.pi / 3)])
    origin = np.array([lx / 2 + offset[0], ly / 2 + offset[1]])
    reach = int(math.ceil(math.hypot(lx, ly) / spacing)) + 1
    best = np.full(X.shape, np.inf)
    cx = np.zeros_like(X)
    cy = np.zeros_like(Y)
    for i in range(-reach, reach + 1):
        for j in range(-reach, reach + 1):
            site = origin + i * a1 + j * a2
            d = np.hypot(X - site[0], Y - site[1])
            closer = d < best
            best = np.where(closer, d, best)
            cx = np.where(closer, site[0], cx)
            cy = np.where(closer, site[1], cy)
    m = _skyrmion_field(X, Y, (cx, cy), radius, wall_width, polarity, chirality)
    return _layers(grid, _normalized(m))


def stripes(grid: Grid, period: float, angle: float = 0.0, chirality: int = 1, wall_width: float | None = None,
            phase: float = 0.0) -> np.ndarray:
    """Up/down stripe domains separated by Neel walls.

    Parameters
    ----------
    period : float
        Spatial period (m): one up and one down domain.
    angle : float
        Direction of the modulation wave vector (rad, from +x).
    chirality : +1 or -1
        +1 is the wall sense favoured by ``D > 0``.
    wall_width : float, optional
        Wall width parameter (m); default ``period / 12``.
    phase : float
        Shift of the pattern along the wave vector (m).
    """
    wall_width = period / 12 if wall_width is None else wall_width
    if not (period > 0 and wall_width > 0):
        raise ValueError(f"period and wall_width must be positive lengths in metres, got {period!r}, {wall_width!r}")
    if chirality not in (1, -1):
        raise ValueError(f"chirality must be +1 or -1, got {chirality!r}")
    X, Y = _plane_coordinates(grid)
    k = np.array([math.cos(angle), math.sin(angle)])
    s = X * k[0] + Y * k[1] - phase
    # a smoothed square wave of polar angle: 0 (up) and pi (down) domains
    u = np.mod(s, period) / period
    dist_up_down = (u - 0.25) * period  # 0 at the up->down wall centre
    dist_down_up = (u - 0.75) * period
    theta = np.where(
        u < 0.5,
        2 * np.arctan(np.exp(dist_up_down / wall_width)),
        math.pi - 2 * np.arctan(np.exp(dist_down_up / wall_width)),
    )
    sign = np.where(u < 0.5, 1.0, -1.0)
    ms = -chirality * sign * np.sin(theta)
    m = np.stack((ms * k[0], ms * k[1], np.cos(theta)), axis=-1)
    return _layers(grid, _normalized(m))


def labyrinth(grid: Grid, period: float, seed: int = 0, chirality: int = 1,
              wall_width: float | None = None) -> np.ndarray:
    """A random labyrinth of up/down domains with typical period ``period`` (m).

    Band-limited noise around the wave number ``2 pi / period`` sets the domain pattern; the
    polar angle follows ``m_z = tanh(noise / width)`` so walls have a finite width, and the
    in-plane part lies along the pattern's gradient in the Neel sense set by ``chirality``
    (+1 favoured by ``D > 0``).
    """
    if chirality not in (1, -1):
        raise ValueError(f"chirality must be +1 or -1, got {chirality!r}")
    if not period > 0:
        raise ValueError(f"period must be a positive length in metres, got {period!r}")
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((grid.ny, grid.nx))
    ky = np.fft.fftfreq(grid.ny, d=grid.dy)[:, None]
    kx = np.fft.fftfreq(grid.nx, d=grid.dx)[None, :]
    k = np.hypot(kx, ky)
    k0 = 1.0 / period
    band = np.exp(-((k - k0) ** 2) / (2 * (0.15 * k0) ** 2))
    field = np.fft.ifft2(np.fft.fft2(noise) * band).real
    field /= field.std() + 1e-300
    wall = 0.3 if wall_width is None else wall_width / (period / 4)
    mz = np.tanh(field / wall)
    gy, gx = np.gradient(field)
    gnorm = np.hypot(gx, gy) + 1e-300
    mperp = chirality * np.sqrt(np.clip(1 - mz**2, 0, 1))
    m = np.stack((mperp * gx / gnorm, mperp * gy / gnorm, mz), axis=-1)
    return _layers(grid, _normalized(m))


def random(grid: Grid, seed: int = 0) -> np.ndarray:
    """Independent random unit vectors, uniform on the sphere, in every cell."""
    rng = np.random.default_rng(seed)
    return _normalized(rng.standard_normal(grid.vector_shape))
