"""Multilayers ``[spacer / magnetic / spacer] x N``: an effective single layer, or the full stack.

A stack of ``N = repeats`` periods ``P = t_m + t_s`` (magnetic layer ``t_m``, nonmagnetic spacer
``t_s``, SI units) is modelled in one of two ways:

- ``effective_layer``: one homogeneous film of thickness ``N P`` whose parameters are the stack's
  averaged over a period (below);
- ``stack_grid``: the full stack on a grid whose spacer cells are vacuum (``Ms = 0``).

Effective medium (magnetic fraction ``f = t_m / P``). Ms, A and D scale with ``f``, which keeps
the moment, the in-plane exchange and the DMI energy of a texture uniform through the thickness
equal in the two models (the DMI constant ``D`` is the magnetic layer's own, in J/m^2, i.e. the
interfacial ``D_s / t_m``); damping is per moment and not scaled::

    Ms_eff = f Ms,   A_eff = f A,   D_eff = f D,   alpha_eff = alpha,
    Ku_eff = f Ku - mu0 Ms^2 f (1 - f) / 2.

``Ku`` is the magnetic layer's uniaxial (magnetocrystalline plus interface) anisotropy *without*
its shape part: the demagnetizing field is computed by the model (``terms.DemagTerm``) in both
ways. It gives a uniformly magnetized, laterally infinite stack the shape anisotropy
``f mu0 Ms^2 / 2`` per volume (each magnetic layer ``mu0 Ms^2 / 2``; outside an infinite sheet
there is no field, so the layers do not couple), but the effective layer only
``mu0 Ms_eff^2 / 2 = f^2 mu0 Ms^2 / 2``. The term ``-mu0 Ms^2 f (1 - f) / 2`` moves the
difference into ``Ku_eff``, so that both ways have the same effective perpendicular anisotropy
``K_eff = f (Ku - mu0 Ms^2 / 2)`` (tested: the energy of the uniform up state minus the in-plane
state agrees). This is the effective-medium scaling of Lemesh & Beach, Phys. Rev. B 95, 174423
(2017); Woo et al., Nat. Mater. 15, 501 (2016), Supplementary, scale Ms, A and D by ``f`` the
same way. The effective medium assumes m uniform across a period; with several cells along z,
``A_eff`` also couples the effective layer's cells, whereas the stack's magnetic layers couple
only through their stray fields.

Full stack. Each period, from its bottom: ``floor(n_s / 2)`` spacer cells, ``n_m`` magnetic cells,
``ceil(n_s / 2)`` spacer cells (``n_m = cells_per_layer``, ``n_s = t_s / dz``): the magnetic
layer sits in the middle of its period (Ir(1)/Fe/Co/Pt(1)), so that the stack's moment is centred
like the effective layer's. Spacer cells have ``Ms = A = Ku = D = 0``: the exchange towards vacuum
is zero (``terms.interface_mean``), so no exchange crosses a spacer, and the in-plane DMI lives in
each magnetic layer. The film's surface, from which stray-field and MFM heights are measured, is
the top of the last period (half a spacer above the last magnetic layer) in both ways; a cap or
seed layer outside the stack adds to the lift height.

Stray field and MFM: ``forward.stray`` integrates every cell over its volume (the closed-form
field of a uniformly magnetized cuboid), so a thick effective layer of one cell, the same layer in
``N`` cells, and the stack's thin magnetic cells are each exact for m uniform in a cell. Per
in-plane Fourier mode ``k`` the stack's field (and every z-derivative) is the effective layer's
times ``R(k) = e^{-k s} (1 - e^{-k t_m}) / (f (1 - e^{-k P}))`` (``s``: spacer above each
magnetic layer), ``R = 1 - (k P)^2 (1 - f^2) / 24 + O(k^3)`` for the centred layout: the two ways
differ by ``~(P / lift)^2 (1 - f^2) / 24`` relative, tested in ``tests/test_multilayer.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from ..runtime.records import SCHEMA_VERSION, from_record
from .grid import MU0, Grid, Material

RELATIVE_CELL_TOLERANCE = 1e-6
"""How far (relative) the spacer may be from a whole number of cells of the magnetic layer's size."""
MAX_SUGGESTED_CELLS = 64
"""Largest ``cells_per_layer`` a message suggests when the spacer is not a whole number of cells."""


def _number(value, name: str, rule: str) -> float:
    """``value`` as a finite float satisfying ``rule`` ("> 0", ">= 0" or "any"), else ``ValueError``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    bad = not math.isfinite(number) or (rule == "> 0" and number <= 0) or (rule == ">= 0" and number < 0)
    if bad:
        expected = {"> 0": "a positive finite number", ">= 0": "a finite number >= 0", "any": "a finite number"}[rule]
        raise ValueError(f"Multilayer {name} must be {expected}, got {value!r}")
    return number


@dataclass(frozen=True)
class Multilayer:
    """A periodic stack ``[magnetic / spacer] x repeats`` of one magnetic material (SI units).

    Parameters
    ----------
    magnetic_thickness : float
        Thickness ``t_m`` of each magnetic layer (m), > 0 (Fe(0.3)/Co(0.6): 0.9e-9).
    spacer_thickness : float
        Thickness ``t_s`` of the nonmagnetic spacer of each period (m), >= 0 (Ir(1) + Pt(1): 2e-9).
    repeats : int
        Number of periods ``N``, >= 1.
    Ms : float
        Saturation magnetization of the magnetic layer (A/m), > 0.
    A : float
        Its exchange stiffness (J/m), >= 0.
    Ku : float
        Its uniaxial anisotropy along z (J/m^3), >= 0, without the shape anisotropy (see the
        module docstring).
    D : float
        Its interfacial DMI constant (J/m^2, mumax3 ``Dind`` sign), any sign.
    alpha : float
        Gilbert damping, >= 0.
    """

    magnetic_thickness: float
    spacer_thickness: float
    repeats: int
    Ms: float
    A: float
    Ku: float
    D: float
    alpha: float = 0.5

    def __post_init__(self):
        rules = {"magnetic_thickness": "> 0", "spacer_thickness": ">= 0", "Ms": "> 0", "A": ">= 0", "Ku": ">= 0",
                 "D": "any", "alpha": ">= 0"}
        for name, rule in rules.items():
            object.__setattr__(self, name, _number(getattr(self, name), name, rule))
        n = self.repeats
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"Multilayer repeats must be a whole number >= 1, got {n!r}")
        object.__setattr__(self, "repeats", int(n))

    @property
    def period(self) -> float:
        """``P = t_m + t_s`` (m)."""
        return self.magnetic_thickness + self.spacer_thickness

    @property
    def magnetic_fraction(self) -> float:
        """``f = t_m / P``."""
        return self.magnetic_thickness / self.period

    @property
    def thickness(self) -> float:
        """Total thickness ``N P`` (m)."""
        return self.repeats * self.period

    def to_dict(self) -> dict:
        """Record ``{"magnetic_thickness" (m), "spacer_thickness" (m), "repeats", "Ms" (A/m), "A" (J/m),
        "Ku" (J/m^3), "D" (J/m^2), "alpha"}`` (``records`` schema)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, values, schema: int = SCHEMA_VERSION) -> "Multilayer":
        """The stack of a ``to_dict`` record of version ``schema``; ``ValueError`` if incomplete or
        invalid (``alpha`` may be missing)."""
        names = [f.name for f in fields(cls)]
        record = from_record("Multilayer", values, tuple(n for n in names if n != "alpha"), schema)
        return cls(**{name: record[name] for name in names if name in record})


def _check_stack(stack) -> Multilayer:
    if not isinstance(stack, Multilayer):
        raise ValueError(f"stack must be a Multilayer, got {type(stack).__name__}")
    return stack


def effective_layer(stack: Multilayer) -> tuple[Material, float]:
    """The effective single layer of a stack: ``(Material, thickness in m)``.

    ``Ms_eff = f Ms``, ``A_eff = f A``, ``D_eff = f D``, ``Ku_eff = f Ku - mu0 Ms^2 f (1 - f) / 2``
    (easy axis z), ``alpha`` unchanged, thickness ``N P`` (module docstring: why, and the
    references). Image it on a grid of that thickness, e.g. ``Grid(nx, ny, nz=1, dz=thickness)``
    or ``nz=repeats, dz=period``. ``ValueError`` if ``Ku_eff < 0`` (an easy-plane film, which a
    ``Material``'s easy-axis ``Ku >= 0`` cannot hold).
    """
    s = _check_stack(stack)
    f = s.magnetic_fraction
    Ku_eff = f * s.Ku - 0.5 * MU0 * s.Ms ** 2 * f * (1 - f)
    if Ku_eff < 0:
        raise ValueError(f"the effective layer's Ku_eff = f Ku - mu0 Ms^2 f (1 - f) / 2 = {Ku_eff:.4g} J/m^3 is "
                         f"negative (f = {f:.4g}): the stack's easy axis is not z beyond what a Material (Ku >= 0) "
                         "holds; use stack_grid for the full stack")
    material = Material(Ms=f * s.Ms, A=f * s.A, Ku=Ku_eff, D=f * s.D, alpha=s.alpha)
    return material, s.thickness


def _spacer_cells(stack: Multilayer, cells_per_layer: int) -> int:
    """Spacer cells per period for magnetic cells of ``t_m / cells_per_layer``, else ``ValueError``."""
    def cells(n: int) -> float:
        return stack.spacer_thickness * n / stack.magnetic_thickness

    count = cells(cells_per_layer)
    if abs(count - round(count)) <= RELATIVE_CELL_TOLERANCE * max(1.0, count):
        return round(count)
    fits = [n for n in range(1, MAX_SUGGESTED_CELLS + 1) if abs(cells(n) - round(cells(n))) <= RELATIVE_CELL_TOLERANCE
            * max(1.0, cells(n))]
    hint = (f"cells_per_layer={fits[0]} gives whole spacer cells" if fits else
            f"no cells_per_layer up to {MAX_SUGGESTED_CELLS} does; use effective_layer")
    raise ValueError(f"the spacer ({stack.spacer_thickness:.4g} m) is {count:.6g} cells of "
                     f"t_m / cells_per_layer = {stack.magnetic_thickness / cells_per_layer:.4g} m, not a whole "
                     f"number (the grid has one dz); {hint}")


def stack_grid(stack: Multilayer, nx: int, ny: int, dx: float, dy: float, cells_per_layer: int = 1,
               pbc: bool = False, device=None, dtype: torch.dtype = torch.float64) -> tuple[Grid, Material]:
    """The full stack on a grid, spacers as vacuum cells: ``(Grid, Material)``.

    Parameters
    ----------
    stack : Multilayer
    nx, ny : int
        In-plane cells.
    dx, dy : float
        In-plane cell size (m).
    cells_per_layer : int
        Cells across each magnetic layer (>= 1); ``dz = t_m / cells_per_layer``, and the spacer
        must be a whole number ``n_s`` of such cells (``ValueError`` naming a value that works).
    pbc, device, dtype
        As in ``Grid``.

    Returns
    -------
    grid : Grid with ``nz = repeats (cells_per_layer + n_s)``, ``dz = t_m / cells_per_layer``.
    material : Material whose ``Ms``, ``A``, ``Ku``, ``D`` are ``(nz, ny, nx)`` maps: the stack's
        values in the magnetic cells, 0 in the spacer cells (layout in the module docstring);
        ``alpha`` a scalar. Any texture ``(nz, ny, nx, 3)`` of unit vectors goes with it (the
        spacer cells' vectors carry no moment).
    """
    s = _check_stack(stack)
    n_m = cells_per_layer
    if isinstance(n_m, bool) or not isinstance(n_m, (int, np.integer)) or n_m < 1:
        raise ValueError(f"cells_per_layer must be a whole number >= 1, got {n_m!r}")
    n_s = _spacer_cells(s, int(n_m))
    dz = s.magnetic_thickness / n_m
    below = n_s // 2
    period = np.zeros(n_m + n_s, dtype=bool)
    period[below : below + n_m] = True
    magnetic = np.tile(period, s.repeats)
    grid = Grid(nx=nx, ny=ny, nz=magnetic.size, dx=dx, dy=dy, dz=dz, pbc=pbc, device=device, dtype=dtype)

    def layered(value: float) -> np.ndarray:
        return np.broadcast_to(np.where(magnetic, value, 0.0)[:, None, None], grid.shape).copy()

    material = Material(Ms=layered(s.Ms), A=layered(s.A), Ku=layered(s.Ku), D=layered(s.D), alpha=s.alpha)
    return grid, material
