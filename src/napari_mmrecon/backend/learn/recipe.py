"""What a synthetic dataset draws from: the ranges of every random quantity, in SI units.

A ``DatasetRecipe`` and a seed fix a dataset (``synthetic.make_shard``); the recipe is stored in
the dataset's manifest (``to_dict``) and read back (``from_dict``) to refuse adding samples of
another recipe to it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from .synthetic_textures import KINDS

_RANGES = ("Ms", "A", "D", "quality_factor", "thickness", "cell_size", "height_range", "field", "dmi_ratio")
"""The fields that are ``(low, high)`` ranges."""
_COUNTS = {"cells": 8, "n_heights": 1, "shard_size": 1, "max_iter": 1}
"""The whole-number fields and their least values."""


@dataclass(frozen=True)
class DatasetRecipe:
    """Ranges of a synthetic dataset of relaxed textures and their stray-field and MFM images.

    Per sample (uniform in each range unless stated):

    - ``Ms`` (A/m), default 0.3-1.5 MA/m: from thin Co/Pt-like multilayers (~0.5 MA/m) and CoFeB
      (~1.1 MA/m) to Co (1.4 MA/m), the films where skyrmions are imaged.
    - ``A`` (J/m), default 5-25 pJ/m: ultrathin Co (~10 pJ/m) to bulk Co (~30 pJ/m).
    - ``D`` (J/m^2), default 0.5-4 mJ/m^2: the magnitude of the interfacial DMI (Pt/Co ~1-3 mJ/m^2,
      Ir/Co/Pt up to ~2, W/CoFeB ~0.5); its sign is + or - with equal chance.
    - ``quality_factor`` ``Q = Ku / (mu0 Ms^2 / 2)``, default 1.05-4: ``Ku = Q mu0 Ms^2 / 2``, so the
      film is always perpendicular (``Q > 1``) with an effective anisotropy
      ``Keff = (Q - 1) mu0 Ms^2 / 2`` from just above the reorientation (where skyrmions are large
      and soft) to strongly perpendicular films.
    - ``field`` (A/m), default 0-80 kA/m (0-100 mT): the magnitude of the applied field along z,
      along the texture's background (it stabilizes skyrmions, as in imaging experiments), drawn as
      ``u min(field[1], field_anisotropy_fraction (Q - 1) Ms)`` with ``u`` uniform in the range over
      ``field[1]``: at most ``field_anisotropy_fraction`` of the effective anisotropy field
      ``H_K,eff = 2 Keff / (mu0 Ms) = (Q - 1) Ms``, so the field never saturates a soft film.
    - the starting texture: one of ``kinds`` with probabilities ``kind_weights`` (normalized), of
      random core polarity, Neel chirality favoured by the sign of D (``synthetic_textures``). The
      default weights favour sparse small skyrmions (isolated ones, random films and lattices 70 %,
      stripes and labyrinths 15 %, mixtures 15 %): their weak side, up to 30 times fainter than the
      strong one, is where physics alone fails and the network must see enough examples.

    A material is redrawn until its wall width ``delta = sqrt(A / Keff)`` is at least
    ``min_wall_cells`` cells (a resolved wall: cells finer than the exchange length), at most
    ``max_wall_fraction`` of the film's side (several walls fit on the film), and its DMI ratio
    ``|D| / Dc``, ``Dc = 4 sqrt(A Keff) / pi`` (where a domain wall's energy vanishes), lies in
    ``dmi_ratio``, default 0.5-1.5: below it skyrmions and stripes collapse to a uniform film (half
    of the candidates would), above it every texture unwinds into spirals that fill the film. The
    ranges above are thus those of the candidates, not exactly of the kept samples.

    Per shard (one batched relaxation of ``shard_size`` samples on one grid):

    - ``cell_size`` dx = dy (m), log-uniform, default 1-4 nm: the pixel sizes of MFM and NV scans of
      skyrmions, resolved by ``cells`` (default 64) per side (films of 64-256 nm).
    - ``thickness`` (m), log-uniform, default 0.6-3 nm: one magnetic layer (a single Co layer to a
      thin CoFeB film), one cell across (nz = 1).
    - ``n_heights`` plane distances (m), log-uniform in ``height_range`` and sorted, default 2 in
      3-30 nm: NV and MFM lift heights; every sample is imaged at each, on both sides, as H_z and as
      an MFM frequency shift.

    Relaxation: stop at ``max |m x H_eff| / Ms < tol`` (default 1e-3, ten times
    ``relax.DEFAULT_TORQUE_TOL``: a texture indistinguishable in its images from the fully converged
    one), at most ``max_iter`` (default 1000) minimizer iterations; a state not converged by then is
    kept and flagged.
    """

    Ms: tuple = (0.3e6, 1.5e6)
    A: tuple = (5e-12, 25e-12)
    D: tuple = (0.5e-3, 4e-3)
    quality_factor: tuple = (1.05, 4.0)
    thickness: tuple = (0.6e-9, 3e-9)
    cell_size: tuple = (1e-9, 4e-9)
    cells: int = 64
    n_heights: int = 2
    height_range: tuple = (3e-9, 30e-9)
    shard_size: int = 16
    field: tuple = (0.0, 80e3)
    field_anisotropy_fraction: float = 0.3
    dmi_ratio: tuple = (0.5, 1.5)
    min_wall_cells: float = 1.0
    max_wall_fraction: float = 0.1
    kinds: tuple = KINDS
    kind_weights: tuple = (0.3, 0.2, 0.2, 0.05, 0.1, 0.15)
    tol: float = 1e-3
    max_iter: int = 1000

    def __post_init__(self):
        for name in _RANGES:
            object.__setattr__(self, name, _range(name, getattr(self, name), allow_zero=name == "field"))
        for name, least in _COUNTS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"recipe {name} must be a whole number >= {least}, got {value!r}")
        for name in ("field_anisotropy_fraction", "min_wall_cells", "max_wall_fraction", "tol"):
            _positive(name, getattr(self, name))
        if self.quality_factor[0] <= 1:
            raise ValueError(f"recipe quality_factor must stay above 1 (a perpendicular film), got "
                             f"{self.quality_factor!r}")
        kinds, weights = tuple(self.kinds), tuple(float(w) for w in self.kind_weights)
        unknown = [kind for kind in kinds if kind not in KINDS]
        if not kinds or unknown or len(set(kinds)) != len(kinds):
            raise ValueError(f"recipe kinds must be distinct names among {', '.join(KINDS)}, got {kinds!r}")
        if len(weights) != len(kinds) or not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"recipe kind_weights must be {len(kinds)} numbers >= 0, not all 0 (one per kind), "
                             f"got {self.kind_weights!r}")
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "kind_weights", weights)

    def replace(self, **changes) -> "DatasetRecipe":
        """A copy with some fields changed (checked again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Every field as plain JSON values (ranges and kinds as lists), SI units."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values) -> "DatasetRecipe":
        """The recipe of a ``to_dict`` record; fields it lacks take their defaults; ``ValueError``
        for an unknown field or an invalid value."""
        if not isinstance(values, dict):
            raise ValueError(f"a dataset recipe must be a dict, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown dataset recipe field(s): {', '.join(unknown)}")
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"recipe {name} must be a finite number > 0, got {value!r}")
    return float(value)


def _range(name: str, value, allow_zero: bool) -> tuple[float, float]:
    """``value`` as ``(low, high)`` floats, finite, ``0 < low <= high`` (``0 <= low`` for ``allow_zero``)."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"recipe {name} must be a range (low, high), got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and (low >= 0 if allow_zero else low > 0) and low <= high):
        bound = "0 <= low" if allow_zero else "0 < low"
        raise ValueError(f"recipe {name} must be a finite range with {bound} <= high, got {value!r}")
    return (low, high)
