"""Tip calibration: an effective MFM tip fitted to a reference image of a known magnetization.

A real tip's moment (or charge) and the height at which it effectively sits are rarely known.
Two calibrations from a reference sample whose magnetization ``m_reference`` is known (a
simulated or independently measured texture):

- ``calibrate_tip``: an effective point tip (dipole moment and/or monopole charge) and an
  effective height offset. The image is linear in the tip's strengths, so for a trial height
  ``h`` they come from one linear least-squares solve (with the image's additive offset); the
  height is the one-dimensional minimum of that solve's residual (variable projection: a
  log-spaced scan, then Brent's method). The 1-sigma uncertainties are Gauss-Newton ones,
  ``Cov = s^2 (J^T J)^-1`` with ``s^2`` the residual variance, over the strengths, the offset
  and the height (its column by autograd through the stray-field kernel).
- ``tip_transfer_function``: a tip transfer function (TF) by regularized (Wiener / Tikhonov)
  deconvolution, as Gwyddion's "transfer function guess": ``image = TF * field`` with ``field`` a
  map of the known sample's stray field (``H_z`` or ``dH_z/dz`` at the lift height), solved in
  Fourier space as ``TF = I F^* / (|F|^2 + lambda max|F|^2)``; ``apply_transfer_function`` is its
  forward model on another field map.

This is an inverse problem over the forward model (``forward.mfm``, ``forward.measurement``), so
it lives here, beside the parameter fit, and imports only from the forward rooms. Fitting the tip
*jointly with the film* instead of from a reference is the parameter fit with the image's
``gain`` (and ``height``) among the fitted names (``fit_parameters(fit=(..., "gain", "height"))``):
for MFM the gain scales the tip's strength.

``TipCalibration.measurement(...)`` is an ``MFMMeasurement`` with the calibrated tip at the
nominal lift height plus the fitted offset: it goes into ``fit_parameters``, ``reconstruct_texture``
and the simulator unchanged. ``save`` / ``load_tip_calibration`` keep it as JSON in the records
schema (``runtime.records``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from ..forward.measurement import simulate_image
from ..forward.mfm import Cantilever, MFMMeasurement, PointDipoleMonopoleTip, PointDipoleTip, PointMonopoleTip
from ..forward.stray import check_side, saturation_magnetization
from ..physics.grid import Grid
from ..runtime.arrays import check_magnetization, to_tensor
from ..runtime.records import SCHEMA_VERSION, check_schema, from_record
from .parameter_fit import check_target

MODELS = ("dipole", "monopole", "both")
HEIGHT_RANGE = (0.5, 50.0)
"""The effective height is searched within these factors of the nominal lift height (plus
``HEIGHT_SPAN`` above it; a real tip's effective dipole sits well above its apex), and not below
one pixel: nearer, the cell-sampled image has spurious minima (a tip at a tenth of a pixel above a
skyrmion fits it better than one a pixel too high)."""
HEIGHT_SPAN = 200e-9
HEIGHT_SCAN = 12
"""Log-spaced trial heights of the scan that brackets the residual's minimum before Brent's method."""
HEIGHT_XTOL = 1e-7
"""Brent's tolerance on ``log h`` (relative height)."""
__all__ = ["TipCalibration", "TipTransferFunction", "apply_transfer_function", "calibrate_tip",
           "load_tip_calibration", "tip_transfer_function"]


# --------------------------------------------------------------------------- the point-tip calibration


@dataclass(frozen=True)
class TipCalibration:
    """An effective point tip fitted to a reference image (``calibrate_tip``).

    Attributes
    ----------
    model : {"dipole", "monopole", "both"}
    dipole : PointDipoleTip or None
        The fitted moment (A m^2) along the reference measurement's dipole direction (reversed
        where the fitted moment came out negative); None for ``model="monopole"``.
    monopole : PointMonopoleTip or None
        The fitted charge (A m); None for ``model="dipole"``.
    height_offset : float
        Effective tip height minus the nominal lift height of the reference (m; 0 unless fitted).
    lift_height : float
        The nominal lift height of the reference measurement (m).
    side, quantity : str
        Of the reference measurement.
    cantilever : Cantilever
        Of the reference measurement (the strengths are physical given it).
    image_offset : float
        The reference image's additive constant (image units), fitted with the strengths.
    uncertainty : dict
        1-sigma uncertainties of ``moment`` (A m^2), ``charge`` (A m), ``height_offset`` (m) and
        ``image_offset`` (image units), those that were fitted.
    residual_rms : float
        RMS of the reference image's residual (image units).
    """

    model: str
    dipole: PointDipoleTip | None
    monopole: PointMonopoleTip | None
    height_offset: float
    lift_height: float
    side: str = "top"
    quantity: str = "frequency_shift"
    cantilever: Cantilever = field(default_factory=Cantilever)
    image_offset: float = 0.0
    uncertainty: dict = field(default_factory=dict)
    residual_rms: float = math.nan

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        needs = {"dipole": (True, False), "monopole": (False, True), "both": (True, True)}[self.model]
        for tip, needed, kind in ((self.dipole, needs[0], PointDipoleTip), (self.monopole, needs[1], PointMonopoleTip)):
            if needed != (tip is not None) or (tip is not None and not isinstance(tip, kind)):
                raise ValueError(f"a {self.model!r} calibration needs " + " and ".join(
                    name for name, n in (("a PointDipoleTip", needs[0]), ("a PointMonopoleTip", needs[1])) if n))

    @property
    def tip(self):
        """The calibrated tip: the ``PointDipoleTip``, the ``PointMonopoleTip``, or for ``"both"`` the
        ``PointDipoleMonopoleTip`` of the two."""
        if self.model == "both":
            return PointDipoleMonopoleTip(self.dipole, self.monopole)
        return self.dipole if self.model == "dipole" else self.monopole

    def measurement(self, lift_height=None, side: str | None = None, cantilever: Cantilever | None = None,
                    quantity: str | None = None) -> MFMMeasurement:
        """An ``MFMMeasurement`` with the calibrated tip at ``lift_height + height_offset``.

        Parameters
        ----------
        lift_height : float, optional
            The nominal lift height (m) of the measurement to model; default the reference's.
        side, cantilever, quantity : optional
            Default the reference's.
        """
        nominal = self.lift_height if lift_height is None else float(lift_height)
        height = nominal + self.height_offset
        if not (math.isfinite(height) and height > 0):
            raise ValueError(f"the lift height {nominal:g} m plus the calibrated offset {self.height_offset:g} m is "
                             f"{height:g} m, not above the film")
        return MFMMeasurement(lift_height=height, side=self.side if side is None else side, tip=self.tip,
                              cantilever=self.cantilever if cantilever is None else cantilever,
                              quantity=self.quantity if quantity is None else quantity)

    def to_dict(self) -> dict:
        """Record (``records`` schema): ``kind`` "tip calibration", ``model``, ``dipole`` and
        ``monopole`` (tip records or None), ``height_offset`` and ``lift_height`` (m), ``side``,
        ``quantity``, ``cantilever``, ``image_offset``, ``uncertainty``, ``residual_rms``."""
        return {"kind": "tip calibration", "model": self.model,
                "dipole": None if self.dipole is None else self.dipole.to_dict(),
                "monopole": None if self.monopole is None else self.monopole.to_dict(),
                "height_offset": float(self.height_offset), "lift_height": float(self.lift_height), "side": self.side,
                "quantity": self.quantity, "cantilever": self.cantilever.to_dict(),
                "image_offset": float(self.image_offset),
                "uncertainty": {k: float(v) for k, v in self.uncertainty.items()},
                "residual_rms": float(self.residual_rms)}

    @classmethod
    def from_dict(cls, values, schema: int = SCHEMA_VERSION) -> "TipCalibration":
        """The calibration of a ``to_dict`` record of version ``schema``; ``ValueError`` if
        incomplete or invalid."""
        record = from_record("TipCalibration", values, ("model", "height_offset", "lift_height"), schema)
        if record.get("kind", "tip calibration") != "tip calibration":
            raise ValueError(f"not a tip calibration record (kind {record.get('kind')!r})")
        dipole, monopole = record.get("dipole"), record.get("monopole")
        return cls(model=record["model"], dipole=None if dipole is None else PointDipoleTip.from_dict(dipole, schema),
                   monopole=None if monopole is None else PointMonopoleTip.from_dict(monopole, schema),
                   height_offset=float(record["height_offset"]), lift_height=float(record["lift_height"]),
                   side=check_side(record.get("side", "top")), quantity=record.get("quantity", "frequency_shift"),
                   cantilever=Cantilever.from_dict(record.get("cantilever") or {}, schema),
                   image_offset=float(record.get("image_offset", 0.0)),
                   uncertainty={k: float(v) for k, v in (record.get("uncertainty") or {}).items()},
                   residual_rms=float(record.get("residual_rms", math.nan)))

    def save(self, path) -> Path:
        """Write the calibration as JSON (``{"schema": SCHEMA_VERSION, **to_dict()}``) to ``path``,
        replacing it (through a temporary file, so a failed write leaves no half file); returns
        the path."""
        path = Path(path)
        text = json.dumps({"schema": SCHEMA_VERSION, **self.to_dict()}, indent=2)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as file:
                file.write(text + "\n")
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path


def load_tip_calibration(path) -> TipCalibration:
    """The ``TipCalibration`` that ``TipCalibration.save`` wrote to ``path``; ``ValueError`` naming
    the file for one that is not such a JSON record (or of a newer schema)."""
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable tip calibration JSON file ({err})") from None
    try:
        if not isinstance(values, dict):
            raise ValueError("the file holds no JSON object")
        return TipCalibration.from_dict(values, check_schema(values.get("schema", SCHEMA_VERSION)))
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: {err}") from None


def _check_reference(reference_image, m_reference, grid: Grid, Ms, measurement):
    """``(image float64 (ny, nx), m tensor, Ms tensor)`` checked; ``ValueError`` naming the problem."""
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a napari_mmrecon Grid, got {type(grid).__name__}")
    if not isinstance(measurement, MFMMeasurement):
        raise ValueError(f"tip calibration needs an MFMMeasurement (the reference is an MFM image), got "
                         f"{type(measurement).__name__}")
    try:
        image = check_target(reference_image, grid)
    except ValueError as err:
        raise ValueError(str(err).replace("target", "reference_image", 1)) from None
    m = to_tensor(m_reference, grid, "m_reference")
    if tuple(m.shape) != grid.vector_shape:
        raise ValueError(f"m_reference has shape {tuple(m.shape)}; expected (nz, ny, nx, 3) = {grid.vector_shape}")
    Ms_t = saturation_magnetization(Ms, grid, None)
    check_magnetization(m, grid, Ms_t, "m_reference")
    return image, m, Ms_t


def _unit_images(measurement: MFMMeasurement, model: str, m: torch.Tensor, grid: Grid, Ms, height):
    """Images per unit strength ``{"moment": ..., "charge": ...}`` ``(ny, nx)`` of the model's tips at
    ``height`` (float or tensor), and the dipole's direction."""
    tip = measurement.tip.dipole if isinstance(measurement.tip, PointDipoleMonopoleTip) else measurement.tip
    direction = tip.direction if isinstance(tip, PointDipoleTip) else (0.0, 0.0, 1.0)
    tips = {"moment": PointDipoleTip(1.0, direction), "charge": PointMonopoleTip(1.0)}
    names = {"dipole": ("moment",), "monopole": ("charge",), "both": ("moment", "charge")}[model]
    return {name: simulate_image(dataclasses.replace(measurement, tip=tips[name]), m, grid, Ms, height)
            for name in names}, direction


def _linear_fit(basis: dict, target: torch.Tensor):
    """Least squares ``target ~ sum_j c_j basis_j + offset``: ``(coefficients, offset, residual)``."""
    columns = [b.reshape(-1) for b in basis.values()] + [torch.ones_like(target).reshape(-1)]
    A = torch.stack(columns, dim=1)
    scale = A.norm(dim=0).clamp_min(1e-300)
    solution = torch.linalg.lstsq(A / scale, target.reshape(-1, 1), driver="gelsd").solution.reshape(-1) / scale
    residual = A @ solution - target.reshape(-1)
    return dict(zip(basis, solution[:-1].tolist())), float(solution[-1]), residual


def _best_height(evaluate, lift: float, pixel: float) -> float:
    """The height minimizing ``evaluate(h)`` (the residual's norm): a log-spaced scan over
    ``HEIGHT_RANGE`` (not below ``pixel``) brackets it, Brent's method finds it on ``log h``."""
    low, high = max(lift * HEIGHT_RANGE[0], pixel), lift * HEIGHT_RANGE[1] + HEIGHT_SPAN
    trials = np.geomspace(low, high, HEIGHT_SCAN)
    costs = [evaluate(h) for h in trials]
    best = int(np.argmin(costs))
    lo, hi = trials[max(best - 1, 0)], trials[min(best + 1, len(trials) - 1)]
    found = minimize_scalar(lambda t: evaluate(math.exp(t)), bounds=(math.log(lo), math.log(hi)), method="bounded",
                            options={"xatol": HEIGHT_XTOL})
    return float(math.exp(found.x)) if found.fun <= costs[best] else float(trials[best])


def calibrate_tip(reference_image, m_reference, grid: Grid, Ms, measurement: MFMMeasurement, model: str = "dipole",
                  fit_height: bool = True) -> TipCalibration:
    """Fit an effective point tip (and height offset) to an MFM image of a known magnetization.

    The model image is ``S = moment * S_d(h) + charge * S_m(h) + offset`` (``S_d``, ``S_m`` the
    images of a unit dipole along the measurement's dipole direction and of a unit charge,
    ``forward.mfm``), with ``h = lift_height + height_offset``. Least squares: the strengths and
    the offset by a linear solve at each trial ``h``, ``h`` by a one-dimensional search (see the
    module's description). For ``model="both"`` the dipole and the monopole are told apart only
    by their different decay with height and their different spectra; expect correlated
    uncertainties.

    Parameters
    ----------
    reference_image : array (ny, nx)
        The reference MFM image in the measurement's units (Hz or degrees), on the grid's cells.
    m_reference : array (nz, ny, nx, 3)
        The reference sample's known unit magnetization.
    grid : Grid
    Ms : float or (nz, ny, nx) map
        The reference sample's saturation magnetization (A/m).
    measurement : MFMMeasurement
        The reference measurement: nominal lift height, side, cantilever, quantity; a dipole tip's
        direction is kept (its moment is what is fitted).
    model : {"dipole", "monopole", "both"}
    fit_height : bool
        Fit the effective height offset (else it is 0).

    Returns
    -------
    TipCalibration
        With 1-sigma uncertainties (Gauss-Newton, ``s^2 (J^T J)^-1`` with ``s`` the residual's
        standard deviation) and the residual's RMS.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    image, m, Ms_t = _check_reference(reference_image, m_reference, grid, Ms, measurement)
    target = grid.tensor(image)
    lift = float(measurement.lift_height)

    def fit_at(height):
        with torch.no_grad():
            basis, _ = _unit_images(measurement, model, m, grid, Ms_t, height)
        return _linear_fit(basis, target)

    height = _best_height(lambda h: float(fit_at(h)[2].norm()), lift, max(grid.dx, grid.dy)) if fit_height else lift
    strengths, offset, residual = fit_at(height)
    # Gauss-Newton covariance over the strengths, the offset and the height
    h = torch.tensor(height, dtype=grid.dtype, device=grid.device)
    basis, direction = _unit_images(measurement, model, m, grid, Ms_t, h)
    columns = [b.detach().reshape(-1) for b in basis.values()] + [torch.ones_like(target).reshape(-1)]
    names = list(basis) + ["image_offset"]
    if fit_height:
        def model_image(distance):
            images, _ = _unit_images(measurement, model, m, grid, Ms_t, distance)
            return sum(strengths[name] * images[name] for name in images)

        _, dS = torch.autograd.functional.jvp(model_image, h, torch.ones_like(h))
        columns.append(dS.reshape(-1))
        names.append("height_offset")
    J = torch.stack(columns, dim=1)
    scale = J.norm(dim=0).clamp_min(1e-300)  # columns of very different units: solve on unit columns
    dof = max(J.shape[0] - J.shape[1], 1)
    variance = float(residual @ residual) / dof
    Js = J / scale
    cov = variance * torch.linalg.pinv(Js.T @ Js, hermitian=True) / torch.outer(scale, scale)
    uncertainty = {name: math.sqrt(max(float(cov[i, i]), 0.0)) for i, name in enumerate(names)}
    dipole = monopole = None
    if "moment" in strengths:
        moment = strengths["moment"]
        if moment == 0:
            raise ValueError("the fitted dipole moment is zero: the reference image does not show this tip")
        dipole = PointDipoleTip(abs(moment), tuple(math.copysign(1.0, moment) * c for c in direction))
    if "charge" in strengths:
        if strengths["charge"] == 0:
            raise ValueError("the fitted monopole charge is zero: the reference image does not show this tip")
        monopole = PointMonopoleTip(strengths["charge"])
    return TipCalibration(model=model, dipole=dipole, monopole=monopole, height_offset=height - lift,
                          lift_height=lift, side=measurement.side, quantity=measurement.quantity,
                          cantilever=measurement.cantilever, image_offset=offset, uncertainty=uncertainty,
                          residual_rms=float(residual.norm()) / math.sqrt(residual.numel()))


# --------------------------------------------------------------------------- the transfer function


@dataclass(frozen=True)
class TipTransferFunction:
    """A tip transfer function (``tip_transfer_function``): ``image = TF * field`` (circular).

    Attributes
    ----------
    fourier : ndarray (ny, nx) complex
        The TF in Fourier space (numpy's FFT order, ``fft2`` of the real-space kernel).
    regularization : float
        The relative Tikhonov weight it was made with.
    """

    fourier: np.ndarray
    regularization: float

    @property
    def kernel(self) -> np.ndarray:
        """The TF as a real-space kernel ``(ny, nx)``, centred at pixel ``(ny // 2, nx // 2)``
        (image units per field unit, per pixel)."""
        return np.fft.fftshift(np.real(np.fft.ifft2(self.fourier)))


def _real_map(value, name: str, shape=None) -> np.ndarray:
    """A finite real 2-D array (of ``shape`` if given); ``ValueError`` naming ``name``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if np.iscomplexobj(value):
        raise ValueError(f"{name} must be real, got complex values")
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 2-D array of numbers (ny, nx)") from None
    if array.ndim != 2 or (shape is not None and array.shape != tuple(shape)):
        raise ValueError(f"{name} has shape {array.shape}; expected " + (f"{tuple(shape)}" if shape is not None
                                                                           else "a 2-D image (ny, nx)"))
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains {int(array.size - np.isfinite(array).sum())} NaN or inf values")
    return array


def tip_transfer_function(reference_image, reference_field, regularization: float = 1e-6) -> TipTransferFunction:
    """The tip transfer function by regularized deconvolution (Gwyddion's "transfer function guess").

    Solves ``image = TF * field`` (circular convolution) in Fourier space by Tikhonov / Wiener
    regularization, ``TF = I F^* / (|F|^2 + regularization max|F|^2)``. Where the reference field
    has no power (frequencies the reference texture lacks, the mean of a periodic film) the TF is
    damped to zero: choose a reference with a broad spectrum (a labyrinth or random domains). An
    additive image offset is not part of the TF.

    Parameters
    ----------
    reference_image : array (ny, nx)
        The reference MFM image (Hz or degrees).
    reference_field : array (ny, nx)
        The known sample's field map at the lift height that the TF acts on, e.g. ``H_z`` (A/m) or
        ``dH_z/dz`` (A/m^2) from ``stray_field_projection(m, grid, Ms, lift, "z", z_derivative=...)``.
    regularization : float
        Relative Tikhonov weight, > 0 (a noise-to-signal power ratio).

    Returns
    -------
    TipTransferFunction
    """
    image = _real_map(reference_image, "reference_image")
    field_ = _real_map(reference_field, "reference_field", image.shape)
    if not (isinstance(regularization, (int, float)) and math.isfinite(regularization) and regularization > 0):
        raise ValueError(f"regularization must be a finite number > 0, got {regularization!r}")
    F = np.fft.fft2(field_)
    power = np.abs(F) ** 2
    if not power.max() > 0:
        raise ValueError("reference_field is zero: there is nothing to deconvolve")
    TF = np.fft.fft2(image) * np.conj(F) / (power + regularization * power.max())
    return TipTransferFunction(TF, float(regularization))


def apply_transfer_function(transfer: TipTransferFunction, field_map) -> np.ndarray:
    """The image ``TF * field_map`` ``(ny, nx)`` (circular convolution) of a field map of the kind
    and units the TF was made from (``tip_transfer_function``)."""
    if not isinstance(transfer, TipTransferFunction):
        raise ValueError(f"transfer must be a TipTransferFunction, got {type(transfer).__name__}")
    values = _real_map(field_map, "field_map", transfer.fourier.shape)
    return np.real(np.fft.ifft2(transfer.fourier * np.fft.fft2(values)))
