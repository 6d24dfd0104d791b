"""Tip calibration as a job: what the "Tip calibration" dock runs. It checks the inputs
(``validate``), runs ``backend.calibrate_tip`` in the protocol of ``jobs`` (``calibrate``) and
lists the result's values with their 1-sigma uncertainties (``calibration_values``); SI units::

    image = validate(reference, m, grid, Ms, measurement, pixel_size=(dy, dx), unit="Hz")
    calibration = jobs.run(calibrate(image, m, grid, Ms, measurement, model="dipole"))
    calibration.save("tip.json")            # TipCalibration.save; load_tip_calibration reads it back

The calibration is one linear solve per trial height and a one-dimensional height search
(``backend.inverse.tip_calibration``): seconds even for a 512 x 512 image, so the job reports no
progress within it and a Cancel takes effect when it ends.
"""

from __future__ import annotations

import threading

import numpy as np

from ..backend import Grid, MFMMeasurement, calibrate_tip
from ..backend.inverse.parameter_fit import check_target
from .fit import check_unit
from .jobs import Job, Progress
from .options import check


def validate(reference, m, grid: Grid, Ms, measurement: MFMMeasurement, pixel_size=None, unit: str = "",
             name: str = "the reference") -> np.ndarray:
    """Check a calibration's inputs before running it; return the reference image as float64 ``(ny, nx)``.

    Parameters
    ----------
    reference : array (ny, nx)
        The reference MFM image, in the measurement's units (Hz or degrees).
    m : array (nz, ny, nx, 3)
        The reference sample's known magnetization, on ``grid``.
    grid : Grid
        The film of ``m``.
    Ms : float
        Its saturation magnetization (A/m).
    measurement : MFMMeasurement
        The reference measurement (nominal lift height, side, cantilever, quantity).
    pixel_size : (dy, dx) in m, optional
        The reference image's pixel size.
    unit : str
        The reference image's known unit ("" if unknown).
    name : str
        Names the reference image in messages.

    ``ValueError`` names the problem: an image of another size or pixel size than ``m``'s grid,
    NaN or inf pixels, a constant image, an image in other units than the measurement's, an Ms
    or a lift height outside its physical range, an ``m`` of the wrong shape.
    """
    if not isinstance(measurement, MFMMeasurement):
        raise ValueError(f"tip calibration needs an MFM measurement, got {type(measurement).__name__}")
    image = np.asarray(reference, dtype=float)
    ny, nx = image.shape[-2:] if image.ndim >= 2 else (0, 0)
    dy, dx = pixel_size if pixel_size is not None else (grid.dy, grid.dx)
    if image.ndim != 2 or (ny, nx) != (grid.ny, grid.nx) or not np.allclose((dy, dx), (grid.dy, grid.dx), rtol=1e-6,
                                                                            atol=0):
        raise ValueError(f"{name} has {nx} x {ny} pixels of {dx * 1e9:g} x {dy * 1e9:g} nm but the reference "
                         f"magnetization has {grid.nx} x {grid.ny} cells of {grid.dx * 1e9:g} x {grid.dy * 1e9:g} nm: "
                         "the reference image and its magnetization must be on one grid")
    if np.shape(m) != grid.vector_shape:
        raise ValueError(f"the reference magnetization has shape {np.shape(m)}; its grid needs {grid.vector_shape}")
    try:
        image = check_target(image, grid)
    except ValueError as exc:
        raise ValueError(f"{name}: {str(exc).removeprefix('target ')}") from None
    check_unit(unit, measurement, name)
    check("Ms", Ms)
    check("lift", measurement.lift_height)
    return image


def calibrate(reference, m, grid: Grid, Ms, measurement: MFMMeasurement, model: str = "dipole",
              fit_height: bool = True, cancel: threading.Event | None = None) -> Job:
    """Job (see ``jobs``): ``backend.calibrate_tip`` of the arguments (as ``validate`` checks them;
    ``model`` one of ``"dipole"``, ``"monopole"``, ``"both"``; ``fit_height`` fits the tip's height
    offset). Yields ``Progress`` before and after it; returns the ``TipCalibration``."""
    yield Progress(0, 0, f"tip calibration: fitting a point {model} tip"
                         + (" and its height offset" if fit_height else ""))
    calibration = calibrate_tip(reference, m, grid, Ms, measurement, model=model, fit_height=fit_height)
    yield Progress(1, 1, f"tip calibration: residual RMS {calibration.residual_rms:.3g} {measurement.units}")
    return calibration


def calibration_values(calibration) -> dict:
    """``{name: (value, uncertainty)}`` (SI, 1 sigma; NaN uncertainty where not fitted) of a
    ``TipCalibration``: ``tip_moment`` (A m^2) and / or ``tip_charge`` (A m) as the model has
    them, ``tip_height_offset`` (m) and ``offset``, the reference image's additive constant (its
    units)."""
    sigma = calibration.uncertainty
    values = {}
    if calibration.dipole is not None:
        values["tip_moment"] = (calibration.dipole.moment, sigma["moment"])
    if calibration.monopole is not None:
        values["tip_charge"] = (calibration.monopole.charge, sigma["charge"])
    values["tip_height_offset"] = (calibration.height_offset, sigma.get("height_offset", np.nan))
    values["offset"] = (calibration.image_offset, sigma["image_offset"])
    return values
