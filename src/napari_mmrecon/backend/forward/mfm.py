"""Magnetic force microscopy: tip and cantilever models, frequency and phase shift.

Physics and sign conventions
----------------------------
``z`` is the lab axis pointing up on both sides of the film (the film occupies
``0 <= z <= nz dz``); a tip's moment direction and a monopole's charge sign are given in that
lab frame, whether the tip scans above (``side="top"``) or below (``side="bottom"``) the film.
The cantilever oscillates along ``z`` and the frequency shift is

    Delta f = -(f0 / 2k) dF_z/dz.

``dF_z/dz`` is the force gradient along the oscillation axis; it does not change if that axis is
reversed (``F_z`` and ``d/dz`` flip together), so the same formula holds below the film. A tip
attracted to the film with a force that grows as it approaches has ``dF_z/dz > 0`` on either
side and therefore a *negative* frequency shift; repulsion gives a positive one.

- Point dipole (moment ``m_t`` in A m^2): ``U = -mu0 m_t . H``, ``F = mu0 (m_t . grad) H`` (H is
  curl-free outside the film), so ``F_z = mu0 m_t . dH/dz`` and ``dF_z/dz = mu0 m_t . d2H/dz2``.
- Point monopole (charge ``q`` in A m): ``F = mu0 q H``, ``dF_z/dz = mu0 q dH_z/dz``.
- Both at one effective point (``PointDipoleMonopoleTip``): the force is linear in the tip, so
  ``dF_z/dz = mu0 (m_t . d2H/dz2 + q dH_z/dz)``, the sum of the two images.

Every tip lists its ``poles``: ``(n, u, s)`` triples with ``dF_z/dz = sum mu0 s u . d^nH/dz^n``.

The z-derivatives come from the analytic derivatives of the stray-field kernel
(``stray.StrayField`` with ``z_derivative``), exact for open and periodic films.

Phase: for small shifts ``Delta phi = -(Q / k) dF_z/dz = 2 Q Delta f / f0`` (radians); the API uses
degrees. An attractive force gradient gives a negative phase shift, like the frequency shift.

All results are linear in the tip moment (or charge): fitting a tip calibration factor can be done
on the output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..runtime.arrays import like_input
from ..physics.grid import MU0, Grid
from ..runtime.records import SCHEMA_VERSION, from_record
from .stray import check_side, length_record, output_kind, parse_heights, plane_field, sensor_axis

QUANTITIES = ("frequency_shift", "phase")


def _finite_number(value, name: str, positive: bool) -> float:
    """``value`` as a float; ``ValueError`` naming ``name`` unless finite (and > 0 / != 0)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or (number <= 0 if positive else number == 0):
        rule = "a positive finite number" if positive else "a non-zero finite number"
        raise ValueError(f"{name} must be {rule}, got {value!r}")
    return number


@dataclass(frozen=True)
class PointDipoleTip:
    """A point-dipole tip.

    Parameters
    ----------
    moment : float
        Magnetic moment (A m^2), > 0.
    direction : 3-sequence
        Moment direction in the lab frame (normalized here; may be tilted). ``(0, 0, 1)`` points
        up, i.e. away from the film for a top-side tip and towards it for a bottom-side tip.
    """

    moment: float = 1e-16
    direction: tuple = (0.0, 0.0, 1.0)

    def __post_init__(self):
        object.__setattr__(self, "moment", _finite_number(self.moment, "PointDipoleTip moment", True))
        object.__setattr__(self, "direction", sensor_axis(self.direction, "PointDipoleTip direction"))

    z_derivative = 2
    """The force gradient needs ``d2H/dz2``."""

    @property
    def axis(self) -> tuple[float, float, float]:
        """Unit vector ``u`` with ``dF_z/dz = mu0 * strength * u . d2H/dz2``."""
        return self.direction

    @property
    def strength(self) -> float:
        """The moment (A m^2)."""
        return self.moment

    @property
    def poles(self) -> tuple:
        """``((z_derivative, axis, strength),)``: the one term of the force gradient (module docstring)."""
        return ((self.z_derivative, self.axis, self.strength),)

    def to_dict(self) -> dict:
        """Record ``{"model": "dipole", "moment" (A m^2), "direction"}`` (``records`` schema)."""
        return {"model": "dipole", "moment": self.moment, "direction": list(self.direction)}

    @classmethod
    def from_dict(cls, values, schema: int = SCHEMA_VERSION) -> "PointDipoleTip":
        """The tip of a ``to_dict`` record of version ``schema`` (defaults for missing fields)."""
        record = from_record("PointDipoleTip", values, (), schema)
        return cls(moment=record.get("moment", cls.moment), direction=tuple(record.get("direction", cls.direction)))


@dataclass(frozen=True)
class PointMonopoleTip:
    """A point-monopole tip of magnetic charge ``charge`` (A m), any non-zero sign.

    A positive charge is a north pole: it is pushed along ``H``.
    """

    charge: float = 1e-9

    def __post_init__(self):
        object.__setattr__(self, "charge", _finite_number(self.charge, "PointMonopoleTip charge", False))

    z_derivative = 1
    """The force gradient needs ``dH_z/dz``."""

    @property
    def axis(self) -> tuple[float, float, float]:
        """Unit vector ``u`` with ``dF_z/dz = mu0 * strength * u . dH/dz``: the z axis."""
        return (0.0, 0.0, 1.0)

    @property
    def strength(self) -> float:
        """The charge (A m)."""
        return self.charge

    @property
    def poles(self) -> tuple:
        """``((z_derivative, axis, strength),)``: the one term of the force gradient (module docstring)."""
        return ((self.z_derivative, self.axis, self.strength),)

    def to_dict(self) -> dict:
        """Record ``{"model": "monopole", "charge" (A m)}`` (``records`` schema)."""
        return {"model": "monopole", "charge": self.charge}

    @classmethod
    def from_dict(cls, values, schema: int = SCHEMA_VERSION) -> "PointMonopoleTip":
        """The tip of a ``to_dict`` record of version ``schema`` (default charge if missing)."""
        return cls(charge=from_record("PointMonopoleTip", values, (), schema).get("charge", cls.charge))


@dataclass(frozen=True)
class PointDipoleMonopoleTip:
    """A point tip with a dipole moment and a magnetic charge at the same effective point: the first
    two terms of a real tip's multipole expansion, as ``calibrate_tip(model="both")`` fits them.

    The force gradient is linear in the tip, so the image is the dipole's image plus the monopole's.

    Parameters
    ----------
    dipole : PointDipoleTip
        The moment (A m^2) and its direction.
    monopole : PointMonopoleTip
        The charge (A m).
    """

    dipole: PointDipoleTip = field(default_factory=PointDipoleTip)
    monopole: PointMonopoleTip = field(default_factory=PointMonopoleTip)

    def __post_init__(self):
        if not isinstance(self.dipole, PointDipoleTip):
            raise ValueError(f"PointDipoleMonopoleTip dipole must be a PointDipoleTip, got {type(self.dipole).__name__}")
        if not isinstance(self.monopole, PointMonopoleTip):
            raise ValueError("PointDipoleMonopoleTip monopole must be a PointMonopoleTip, got "
                             f"{type(self.monopole).__name__}")

    @property
    def poles(self) -> tuple:
        """The dipole's term (``d2H/dz2``) and the monopole's (``dH_z/dz``) of the force gradient."""
        return self.dipole.poles + self.monopole.poles

    def to_dict(self) -> dict:
        """Record ``{"model": "both", "dipole": ..., "monopole": ...}`` (``records`` schema; the two
        tips as their records)."""
        return {"model": "both", "dipole": self.dipole.to_dict(), "monopole": self.monopole.to_dict()}

    @classmethod
    def from_dict(cls, values, schema: int = SCHEMA_VERSION) -> "PointDipoleMonopoleTip":
        """The tip of a ``to_dict`` record of version ``schema``; ``ValueError`` without both poles."""
        record = from_record("PointDipoleMonopoleTip", values, ("dipole", "monopole"), schema)
        return cls(dipole=PointDipoleTip.from_dict(record["dipole"], schema),
                   monopole=PointMonopoleTip.from_dict(record["monopole"], schema))


TIPS = (PointDipoleTip, PointMonopoleTip, PointDipoleMonopoleTip)
"""The point-tip models ``MFMMeasurement`` takes."""


@dataclass(frozen=True)
class Cantilever:
    """Cantilever spring constant ``k`` (N/m), resonance ``f0`` (Hz) and quality factor ``Q``."""

    k: float = 3.0
    f0: float = 75e3
    Q: float = 200.0

    def __post_init__(self):
        for name, unit in (("k", "N/m"), ("f0", "Hz"), ("Q", "")):
            value = _finite_number(getattr(self, name), f"Cantilever {name}" + (f" ({unit})" if unit else ""),
                                   True)
            object.__setattr__(self, name, value)

    def frequency_shift(self, force_gradient):
        """``Delta f = -(f0 / 2k) dF_z/dz`` (Hz) for a force gradient in N/m."""
        return -(self.f0 / (2 * self.k)) * force_gradient

    def to_dict(self) -> dict:
        """Record ``{"k" (N/m), "f0" (Hz), "Q"}`` (``records`` schema)."""
        return {"k": self.k, "f0": self.f0, "Q": self.Q}

    @classmethod
    def from_dict(cls, values, schema: int = SCHEMA_VERSION) -> "Cantilever":
        """The cantilever of a ``to_dict`` record of version ``schema`` (defaults for missing fields)."""
        record = from_record("Cantilever", values, (), schema)
        return cls(**{name: record[name] for name in ("k", "f0", "Q") if name in record})


def tip_from_dict(values, schema: int = SCHEMA_VERSION):
    """A ``PointDipoleTip``, ``PointMonopoleTip`` or ``PointDipoleMonopoleTip`` from its record (told
    apart by ``model``: "dipole", the default, "monopole" or "both")."""
    model = from_record("tip", values, (), schema).get("model")
    tip = {"monopole": PointMonopoleTip, "both": PointDipoleMonopoleTip}.get(model, PointDipoleTip)
    return tip.from_dict(values, schema)


def check_tip(tip):
    """``tip`` if it is one of ``TIPS``, else ``ValueError``."""
    if not isinstance(tip, TIPS):
        raise ValueError("tip must be a PointDipoleTip, a PointMonopoleTip or a PointDipoleMonopoleTip, got "
                         f"{type(tip).__name__}")
    return tip


def _check_cantilever(cantilever):
    if not isinstance(cantilever, Cantilever):
        raise ValueError(f"cantilever must be a Cantilever, got {type(cantilever).__name__}")
    return cantilever


def _noise_sigma(noise, image: torch.Tensor):
    """Noise standard deviation (Hz) from the ``noise`` specification (see ``mfm_frequency_shift``)."""
    expected = "noise must be None, a number >= 0 (relative) or a dict {'relative': r} or {'sigma': Hz}"
    if isinstance(noise, dict):
        if len(noise) != 1 or next(iter(noise)) not in ("relative", "sigma"):
            raise ValueError(f"{expected}, got {noise!r}")
        kind, value = next(iter(noise.items()))
    else:
        kind, value = "relative", noise
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{expected}, got {noise!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{expected}, got {noise!r}")
    if kind == "sigma":
        return value
    return value * image.detach().std(dim=(-2, -1), correction=0, keepdim=True)


def add_noise(image: torch.Tensor, noise, seed: int = 0) -> torch.Tensor:
    """``image`` plus Gaussian noise drawn from ``seed`` on the image's device.

    Parameters
    ----------
    image : tensor (..., ny, nx)
    noise : None, float, or dict
        ``None``: no noise. A number ``r`` or ``{"relative": r}``: standard deviation ``r`` times the
        standard deviation of each noise-free ``(ny, nx)`` image (``r = 0.1`` is a signal-to-noise
        ratio of 10). ``{"sigma": s}``: standard deviation ``s`` in the image's units.
    seed : int
    """
    if noise is None:
        return image
    sigma = _noise_sigma(noise, image)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    generator = torch.Generator(device=image.device).manual_seed(int(seed))
    draw = torch.randn(image.shape, generator=generator, dtype=image.dtype, device=image.device)
    return image + sigma * draw


def mfm_frequency_shift(m, grid: Grid, Ms, lift_height, side: str = "top", tip=PointDipoleTip(),
                        cantilever=Cantilever(), noise=None, seed: int = 0):
    """MFM frequency shift ``Delta f = -(f0 / 2k) dF_z/dz`` (Hz) on planes above or below the film.

    Parameters
    ----------
    m : array or tensor (nz, ny, nx, 3) or (B, nz, ny, nx, 3)
        Unit magnetization.
    grid : Grid
    Ms : float, (nz, ny, nx) map, or per-batch vector/map (A/m); a tensor may require grad.
    lift_height : float, 1-d sequence or tensor
        Tip distance(s) from the film surface (m, > 0): the tip sits at ``z = nz dz + lift_height``
        (top) or ``z = -lift_height`` (bottom). A tensor may require grad.
    side : {"top", "bottom"}
    tip : PointDipoleTip, PointMonopoleTip or PointDipoleMonopoleTip
    cantilever : Cantilever
    noise : None, float or dict
        Additive Gaussian noise, see ``add_noise`` (relative noise uses each image's standard
        deviation; ``{"sigma": s}`` is in Hz).
    seed : int
        Seed of the noise generator.

    Returns
    -------
    (ny, nx) for one lift height, (nh, ny, nx) for a list; a leading ``B`` for a batch (Hz).
    Negative where the tip is attracted (see the module docstring). Same kind (numpy/torch) as
    the inputs: a tensor if any of ``m``, ``Ms``, ``lift_height`` is one.
    """
    tip = check_tip(tip)
    cantilever = _check_cantilever(cantilever)
    force_gradient = sum(MU0 * strength * plane_field(m, grid, Ms, lift_height, side, order, axis=axis,
                                                      name="lift_height")
                         for order, axis, strength in tip.poles)
    df = cantilever.frequency_shift(force_gradient)
    return like_input(add_noise(df, noise, seed), output_kind(m, Ms, lift_height))


def _scaled(value, factor: float):
    """``value * factor`` keeping torch tensors; numbers and arrays become numpy (floats stay floats)."""
    if isinstance(value, torch.Tensor):
        return value * factor
    result = np.asarray(value, dtype=float) * factor
    return float(result) if result.ndim == 0 else result


def phase_from_frequency_shift(df, cantilever: Cantilever):
    """Phase shift (degrees) ``Delta phi = 2 Q Delta f / f0`` (radians, converted) from ``df`` (Hz).

    Same sign as the frequency shift: negative for an attractive force gradient.
    """
    c = _check_cantilever(cantilever)
    return _scaled(df, math.degrees(2 * c.Q / c.f0))


def frequency_shift_from_phase(phase_deg, cantilever: Cantilever):
    """Frequency shift (Hz) ``Delta f = f0 Delta phi / (2 Q)`` from a phase shift in degrees."""
    c = _check_cantilever(cantilever)
    return _scaled(phase_deg, math.radians(1.0) * c.f0 / (2 * c.Q))


def force_gradient_from_phase(phase_deg, cantilever: Cantilever):
    """Force gradient ``dF_z/dz = -(k / Q) Delta phi`` (N/m) from a phase shift in degrees (``Delta phi``
    in radians in the formula): positive (attractive) where the phase shift is negative."""
    c = _check_cantilever(cantilever)
    return _scaled(phase_deg, -math.radians(1.0) * c.k / c.Q)


def phase_from_force_gradient(force_gradient, cantilever: Cantilever):
    """Phase shift (degrees) ``Delta phi = -(Q / k) dF_z/dz`` (radians, converted) from a force
    gradient in N/m."""
    c = _check_cantilever(cantilever)
    return _scaled(force_gradient, -math.degrees(c.Q / c.k))


def force_gradient_from_frequency_shift(df, cantilever: Cantilever):
    """Force gradient ``dF_z/dz = -(2k / f0) Delta f`` (N/m) from a frequency shift in Hz."""
    c = _check_cantilever(cantilever)
    return _scaled(df, -2 * c.k / c.f0)


def frequency_shift_from_force_gradient(force_gradient, cantilever: Cantilever):
    """Frequency shift (Hz) ``Delta f = -(f0 / 2k) dF_z/dz`` from a force gradient in N/m
    (``Cantilever.frequency_shift``, for numbers, arrays and tensors alike)."""
    c = _check_cantilever(cantilever)
    return _scaled(force_gradient, -c.f0 / (2 * c.k))


@dataclass
class MFMMeasurement:
    """An MFM image: frequency or phase shift of a tip on one side of the film.

    Parameters
    ----------
    lift_height : float or tensor
        Tip distance from the film surface (m).
    side : {"top", "bottom"}
    tip : PointDipoleTip, PointMonopoleTip or PointDipoleMonopoleTip
    cantilever : Cantilever
    quantity : {"frequency_shift", "phase"}
        Image in Hz or in degrees.
    """

    lift_height: object
    side: str = "top"
    tip: object = field(default_factory=PointDipoleTip)
    cantilever: Cantilever = field(default_factory=Cantilever)
    quantity: str = "frequency_shift"

    def __post_init__(self):
        parse_heights(self.lift_height, "lift_height")
        check_side(self.side)
        check_tip(self.tip)
        _check_cantilever(self.cantilever)
        if self.quantity not in QUANTITIES:
            raise ValueError(f"quantity must be 'frequency_shift' or 'phase', got {self.quantity!r}")

    @property
    def units(self) -> str:
        """``"Hz"`` or ``"deg"``."""
        return "Hz" if self.quantity == "frequency_shift" else "deg"

    def simulate(self, m, grid: Grid, Ms):
        """Simulated image ``(ny, nx)`` (``(B, ny, nx)`` for a batch) in ``units``."""
        return self.from_frequency_shift(mfm_frequency_shift(m, grid, Ms, self.lift_height, self.side, self.tip,
                                                             self.cantilever))

    def from_frequency_shift(self, df):
        """This measurement's image of a frequency shift ``df`` (Hz, any shape): ``df`` itself, or
        the phase (degrees) for ``quantity == "phase"``."""
        return phase_from_frequency_shift(df, self.cantilever) if self.quantity == "phase" else df

    def to_dict(self) -> dict:
        """Record ``{"kind": "MFM", "height" (the lift height, m), "side", "quantity", "tip",
        "cantilever"}`` (``records`` schema; tip and cantilever as their records)."""
        return {"kind": "MFM", "height": length_record(self.lift_height), "side": self.side,
                "quantity": self.quantity, "tip": self.tip.to_dict(), "cantilever": self.cantilever.to_dict()}

    @classmethod
    def from_dict(cls, values, schema: int = SCHEMA_VERSION) -> "MFMMeasurement":
        """The measurement of a ``to_dict`` record of version ``schema``; ``ValueError`` if
        incomplete or invalid."""
        record = from_record("MFMMeasurement", values, ("height",), schema)
        return cls(lift_height=record["height"], side=record.get("side", "top"),
                   tip=tip_from_dict(record.get("tip") or {}, schema),
                   cantilever=Cantilever.from_dict(record.get("cantilever") or {}, schema),
                   quantity=record.get("quantity", "frequency_shift"))
