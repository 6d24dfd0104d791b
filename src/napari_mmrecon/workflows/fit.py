"""Material-parameter fit as a job: what the "Physics relaxation / fit" widget and ``mmrecon fit``
run. It only orchestrates ``backend.fit_parameters`` (in a helper thread, through ``jobs.relay``)
and reports in the protocol of ``jobs``; SI units throughout.

    measurement = mm.StrayFieldMeasurement(height=5e-9, side="top", component="z")
    validate(target, grid, measurement, init, FitOptions(fit=("Ku", "D")))   # ValueError if bad
    result = jobs.run(fit(target, grid, measurement, init, FitOptions(fit=("Ku", "D"))))
    result.values, result.uncertainty, result.table()                        # a backend FitResult

While the fit runs the job yields, after every outer iteration, ``Progress(iteration, 0, text)``
(the total number of outer iterations is not known in advance: 0 means "unknown") and
``Partial(FitSnapshot)``. Cancelling (the ``cancel`` event) makes the backend return its best
state so far, which the job returns like any result (``result.cancelled`` is then True).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import numpy as np

from ..backend import Cantilever, Grid, Material, MFMMeasurement, StrayFieldMeasurement, fit_parameters
from ..backend.forward.mfm import tip_from_dict
from ..backend.inverse.parameter_fit import MATERIAL_PARAMETERS, check_physical, check_target, parameter_units
from ..backend.forward.measurement import check_measurement, plane_distance
from .jobs import Job, Progress, relay_snapshots
from .options import OPTIONS, check

COMPONENT_QUANTITIES = {"x": "Hx", "y": "Hy", "z": "Hz"}
"""Stray-field component -> the quantity name of simulated images (``simulation.FIELD_COMPONENTS``)."""


@dataclass(frozen=True)
class FitOptions:
    """How to fit (the arguments of ``backend.fit_parameters`` besides the data).

    ``fit``: names among ``FITTABLE`` (Ms, A, Ku, D, height, offset, gain); ``bias``: one of
    ``BIAS_OPTIONS``; ``bias_strength`` in units of the anisotropy field ``2 Ku / (mu0 Ms)``;
    ``optimizer``: one of ``OPTIMIZERS``; ``max_iter`` outer iterations per stage;
    ``relax_tol`` the torque tolerance ``max |m x H| / Ms`` of every relaxation;
    ``external_field`` a uniform applied field H (A/m, 3-vector) or None. The defaults are the
    declared ones of ``options``.
    """

    fit: tuple = OPTIONS["fit"].default
    bias: str = OPTIONS["bias"].default
    bias_strength: float = OPTIONS["bias_strength"].default
    optimizer: str = OPTIONS["optimizer"].default
    max_iter: int = OPTIONS["max_iter"].default
    relax_tol: float = OPTIONS["relax_tol"].default
    external_field: tuple | None = None


@dataclass
class FitSnapshot:
    """The best state after one outer iteration (the ``Partial`` payload of ``fit``), as numpy.

    ``iteration`` counts outer iterations over all stages; ``loss`` is the normalized misfit;
    ``values`` the parameters (SI) of the state; ``m`` ``(nz, ny, nx, 3)``; ``simulated`` and
    ``residual = simulated - target`` ``(ny, nx)`` in the image's units.
    """

    stage: str
    iteration: int
    loss: float
    values: dict
    m: np.ndarray
    simulated: np.ndarray
    residual: np.ndarray


# ----------------------------------------------------------------------------- measurements


def snapshot_reporter(report, target: np.ndarray):
    """The backend's ``progress`` callback for a fit of ``target`` (``(ny, nx)``, or ``(n, ny, nx)`` for
    a series): each state becomes a numbered ``FitSnapshot`` (numpy copies, taken at once on the
    worker thread, since the backend goes on with its tensors) handed to ``report``."""
    counter = itertools.count(1)

    def progress(state):
        simulated = state.simulated.detach().cpu().numpy().copy()
        report(FitSnapshot(state.stage, next(counter), float(state.loss), dict(state.values),
                           state.m.detach().cpu().numpy().copy(), simulated, simulated - target))

    return progress


def measurement_quantity(measurement) -> str:
    """Quantity name of the measurement's images: ``"Hz"`` (``"Hx"``, ``"Hy"``, ``"H·axis"`` for
    a tilted sensor), ``"frequency_shift"`` or ``"phase"``."""
    if isinstance(measurement, MFMMeasurement):
        return measurement.quantity
    component = measurement.component
    return COMPONENT_QUANTITIES.get(component, "H·axis") if isinstance(component, str) else "H·axis"


def measurement_from_metadata(meta: dict):
    """The measurement that made an image, from its mmrecon layer / TIFF metadata (``quantity``,
    ``side``, ``height``, ``tip``, ``cantilever`` as ``simulation`` writes them), or None when the
    metadata does not say (e.g. ``|H|``, or no height)."""
    quantity, height = meta.get("quantity"), meta.get("height")
    if not isinstance(height, (int, float)) or not height > 0:
        return None
    side = meta.get("side") if meta.get("side") in ("top", "bottom") else "top"
    try:
        if quantity in ("Hx", "Hy", "Hz"):
            return StrayFieldMeasurement(height=float(height), side=side, component=quantity[1])
        if quantity in ("frequency_shift", "phase"):
            return MFMMeasurement(lift_height=float(height), side=side, tip=tip_from_dict(meta.get("tip") or {}),
                                  cantilever=Cantilever.from_dict(meta.get("cantilever") or {}), quantity=quantity)
    except (KeyError, TypeError, ValueError):
        return None
    return None


def measurement_metadata(measurement) -> dict:
    """The metadata entries that describe a measurement (``side``, ``height``; an MFM's ``tip``
    and ``cantilever``), as ``simulation`` writes them and ``measurement_from_metadata`` reads them."""
    entries = {"side": measurement.side, "height": plane_distance(measurement)}
    if isinstance(measurement, MFMMeasurement):
        entries.update(tip=measurement.tip.to_dict(), cantilever=measurement.cantilever.to_dict())
    return entries


def start_values(names, init: Material, measurement) -> dict:
    """Starting value (SI) of each of ``names``: from ``init``, the measurement's height, offset 0, gain 1."""
    values = {key: float(np.asarray(getattr(init, key))) for key in MATERIAL_PARAMETERS}
    values.update(height=plane_distance(measurement), offset=0.0, gain=1.0)
    return {name: values[name] for name in names}


def validate(target, grid: Grid, measurement, init: Material, options: FitOptions, m0=None, pixel_size=None,
             unit: str = "", m0_grid: Grid | None = None) -> np.ndarray:
    """Check the inputs of a fit before running it; return the target as float64 ``(ny, nx)``.

    ``ValueError`` names the problem: a target of the wrong shape, with NaN, constant, or of a
    ``pixel_size`` ``(dy, dx)`` (m) other than the grid's; a known target ``unit`` other than the
    measurement's (an A/m image fitted as MFM); starting values outside the physical ranges; no
    parameter to fit; ``options`` outside the ranges of ``options.OPTIONS`` (e.g. a relaxation
    tolerance <= 0); an ``m0`` ``(nz, ny, nx, 3)`` of another grid (its shape, and the cell sizes
    of ``m0_grid`` if given).
    """
    check_measurement(measurement)
    image = check_target(target, grid, pixel_size)
    check_unit(unit, measurement)
    values = {}
    for name in MATERIAL_PARAMETERS:
        value = np.asarray(getattr(init, name), dtype=float)
        if value.ndim != 0:
            raise ValueError(f"the starting {name} must be one number, got a map of shape {value.shape}")
        values[name] = float(value)
    check_physical({**values, "height": plane_distance(measurement)})
    if not options.fit:
        raise ValueError("choose at least one parameter to fit")
    for name in ("fit", "bias", "bias_strength", "optimizer", "max_iter", "relax_tol"):
        check(name, getattr(options, name))
    check_start(m0, grid, m0_grid)
    return image


def check_unit(unit: str, measurement, what: str = "the target") -> None:
    """``ValueError`` when an image's known ``unit`` ("" if unknown) is not the measurement's (an
    A/m image taken for an MFM image)."""
    if unit and unit != measurement.units:
        kind = "a stray field" if isinstance(measurement, StrayFieldMeasurement) else f"an MFM {measurement.quantity}"
        raise ValueError(f"{what} is in {unit} but {kind} is in {measurement.units}: choose the measurement "
                         "that made the image")


def check_start(m0, grid: Grid, m0_grid: Grid | None = None) -> None:
    """``ValueError`` for a starting magnetization ``m0`` ``(nz, ny, nx, 3)`` (None: none given)
    that is not of the target's film ``grid``: its shape, and the cell sizes of ``m0_grid`` if given."""
    if m0 is not None and np.shape(m0) != grid.vector_shape:
        nz, ny, nx, _ = np.shape(m0) if np.ndim(m0) == 4 else (0, 0, 0, 0)
        raise ValueError(f"the starting magnetization has {nx} x {ny} x {nz} cells (x, y, z) but the target's "
                         f"film needs {grid.nx} x {grid.ny} x {grid.nz}")
    if m0_grid is not None and not np.allclose(m0_grid.cell_size, grid.cell_size, rtol=1e-6, atol=0):
        raise ValueError(f"the starting magnetization has cells of {_nm(m0_grid.cell_size)} nm (x, y, z) but the "
                         f"target's film has {_nm(grid.cell_size)} nm")


def _nm(cell) -> str:
    return " x ".join(f"{c * 1e9:g}" for c in cell)


def fit_record(result, options: FitOptions | None = None) -> dict:
    """The ``fit`` metadata entry and the body of ``fit.json``: ``result.to_dict()`` (values, 1-sigma
    uncertainties, units, correlations, loss history, how it ended, timings, the material and the
    measurement; SI) and the options."""
    record = result.to_dict()
    if options is not None:
        record["options"] = {"fit": list(options.fit), "bias": options.bias, "bias_strength": options.bias_strength,
                             "optimizer": options.optimizer, "max_iter": options.max_iter,
                             "relax_tol": options.relax_tol, "external_field": options.external_field}
    return record


def _describe(snapshot: FitSnapshot) -> str:
    return f"fit, {snapshot.stage} stage: iteration {snapshot.iteration}, loss {snapshot.loss:.3e}"


# ----------------------------------------------------------------------------- the job


def fit(target, grid: Grid, measurement, init: Material, options: FitOptions = FitOptions(), m0=None,
        pixel_size=None, cancel: threading.Event | None = None) -> Job:
    """Job (see ``jobs``): ``backend.fit_parameters`` with progress and snapshots.

    Parameters
    ----------
    target : ndarray (ny, nx)
        The image, in the measurement's units (A/m, Hz or degrees).
    grid : Grid
        The film; ``(ny, nx)`` as the target.
    measurement : StrayFieldMeasurement or MFMMeasurement
    init : Material
        Starting values (SI); the parameters not in ``options.fit`` stay fixed.
    options : FitOptions
    m0 : ndarray (nz, ny, nx, 3), optional
        Starting magnetization; default a texture shaped from the target.
    pixel_size : (dy, dx) in m, optional
        The target's pixel size, checked against the grid.
    cancel : threading.Event, optional
        Stops the fit, which then returns its best state so far (``result.cancelled``).

    Yields ``Progress`` and ``Partial(FitSnapshot)`` after every outer iteration; returns the
    backend's ``FitResult``.
    """
    cancel = threading.Event() if cancel is None else cancel
    image = np.asarray(target, dtype=float)

    def call(report):
        return fit_parameters(image, grid, measurement, init, fit=options.fit, m0=m0, bias=options.bias,
                              bias_strength=options.bias_strength, optimizer=options.optimizer,
                              max_iter=options.max_iter, relax_tol=options.relax_tol,
                              external_field=options.external_field, pixel_size=pixel_size,
                              progress=snapshot_reporter(report, image), cancel=cancel)

    yield Progress(0, 0, "fit: relaxing the starting state")
    result = yield from relay_snapshots(call, cancel, lambda snapshot: Progress(snapshot.iteration, 0, _describe(snapshot)))
    yield Progress(1, 1, f"fit: {result.message} (misfit {result.misfit:.3e})")
    return result
