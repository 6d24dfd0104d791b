"""Texture reconstruction as a job: what the "Texture reconstruction" widget and ``mmrecon
reconstruct`` run. It only orchestrates ``backend.reconstruct_texture`` (in a helper thread, through
``jobs.relay``) and reports in the protocol of ``jobs``; SI units throughout.

    measurement = mm.StrayFieldMeasurement(height=10e-9, side="top")
    options = ReconstructOptions(max_iter=20)
    images = validate(target, grid, measurement, material, options)       # ValueError if bad
    result = jobs.run(reconstruct(images, grid, measurement, material, options))
    result.m, result.bias_field, result.simulated, result.residual, result.message   # ReconstructionResult

A stack of images of one film (several heights, both sides) is a ``(nh, ny, nx)`` target with a
sequence of ``nh`` measurements; its ``simulated`` and ``residual`` are stacks too.

While the reconstruction runs the job yields, after every outer iteration, ``Progress(iteration,
most, text)`` (``most``: the outer iterations it may take, ``max_iter``, twice that with a joint
material fit) and ``Partial(ReconstructionSnapshot)`` (the best state so far: m, its images, the
residual and the bias field). Cancelling (the ``cancel`` event) makes the backend return its best
state so far, which the job returns like any result (``result.cancelled`` is then True); cancelled
before any state exists, it raises the backend's ``FitCancelled``.
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass

import numpy as np

from ..backend import Grid, Material, reconstruct_texture
from ..backend.forward.measurement import check_measurement, plane_distance
from ..backend.inverse.held_equilibrium import HOLD_ITERATIONS, REPORT_EVERY
from ..backend.inverse.parameter_fit import MATERIAL_PARAMETERS, check_physical, check_target
from .fit import check_start, check_unit
from .jobs import Job, Progress, relay_snapshots
from .options import OPTIONS, check


@dataclass(frozen=True)
class ReconstructOptions:
    """How to reconstruct (the arguments of ``backend.reconstruct_texture`` besides the data).

    ``method``: "bias", "energy", "energy-relaxed" or "fourier"; ``init``: "estimate" or "uniform" (a given starting
    magnetization, the ``m0`` of ``reconstruct``, replaces it); ``fit``: material parameters (and
    "height") fitted jointly, none by default; ``bias_strength``: the start bias in units of the
    anisotropy field ``2 Ku / (mu0 Ms)``; ``noise``: the images' noise level in their units, None
    to estimate it from each image; ``discrepancy``: stop once the residual RMS is at most this
    times the noise; ``max_iter``: outer iterations over all stages; ``external_field``: a uniform
    applied field H (A/m, 3-vector) or None; ``row_offsets``: an unknown offset per image row,
    profiled out (energy methods). The defaults are the declared ones of ``options``.
    """

    method: str = OPTIONS["method"].default
    init: str = OPTIONS["init"].default
    fit: tuple = ()
    bias_strength: float = OPTIONS["bias_strength"].default
    noise: float | None = OPTIONS["noise"].default
    discrepancy: float = OPTIONS["discrepancy"].default
    max_iter: int = OPTIONS["reconstruct_max_iter"].default
    external_field: tuple | None = None
    row_offsets: bool = OPTIONS["row_offsets"].default

    def to_dict(self) -> dict:
        """The options as plain values (the ``options`` entry of ``reconstruction_record``)."""
        return {"method": self.method, "init": self.init, "fit": list(self.fit), "bias_strength": self.bias_strength,
                "noise": self.noise, "discrepancy": self.discrepancy, "max_iter": self.max_iter,
                "external_field": None if self.external_field is None else list(self.external_field),
                "row_offsets": self.row_offsets}

    @property
    def most_iterations(self) -> int:
        """Progress reports the reconstruction may make: ``max_iter`` outer iterations per texture stage
        of a joint fit, and for ``"energy-relaxed"`` one more per ``REPORT_EVERY`` relaxation iterations."""
        relaxation = HOLD_ITERATIONS // REPORT_EVERY if self.method == "energy-relaxed" else 0
        return self.max_iter * (2 if self.fit else 1) + relaxation


@dataclass
class ReconstructionSnapshot:
    """The best state after one outer iteration (the ``Partial`` payload of ``reconstruct``), as numpy.

    ``iteration`` counts outer iterations over all stages; ``misfit`` is the normalized misfit
    (``mean(residual^2) / mean(target^2)``, averaged over the images) and ``loss`` adds the
    penalty; ``m`` ``(nz, ny, nx, 3)``; ``simulated`` and ``residual = simulated - target``
    ``(ny, nx)`` (a stack ``(nh, ny, nx)`` for several images) in the images' units;
    ``bias_field`` ``(nz, ny, nx, 3)`` in A/m or None.
    """

    stage: str
    iteration: int
    loss: float
    misfit: float
    m: np.ndarray
    simulated: np.ndarray
    residual: np.ndarray
    bias_field: np.ndarray | None

    def record(self) -> dict:
        """The ``reconstruction`` metadata entry of the layers while it runs."""
        return {"running": True, "stage": self.stage, "iteration": self.iteration, "loss": self.loss,
                "misfit": self.misfit}


# ----------------------------------------------------------------------------- checks


def as_stack(targets, measurements) -> tuple[list, tuple]:
    """``(images, measurements)``: a list of 2-D images and a tuple of as many measurements, from one
    image (or a one-image stack) with one measurement, or a stack / list of images with a sequence."""
    measurements = tuple(measurements) if isinstance(measurements, (list, tuple)) else (measurements,)
    if isinstance(targets, (list, tuple)):
        images = list(targets)
    else:
        array = np.asarray(targets)
        images = list(array) if array.ndim == 3 else [array]
    if len(images) != len(measurements):
        raise ValueError(f"{len(images)} images need {len(images)} measurements (one per image), got "
                         f"{len(measurements)}")
    if not images:
        raise ValueError("give at least one target image")
    return images, measurements


def validate(targets, grid: Grid, measurements, material: Material, options: ReconstructOptions, m0=None,
             pixel_size=None, units=None, m0_grid: Grid | None = None, names=None) -> np.ndarray:
    """Check the inputs of a reconstruction before running it; return the images as float64
    ``(nh, ny, nx)``.

    ``targets``: an image ``(ny, nx)`` with one measurement, or a stack ``(nh, ny, nx)`` (or a
    list of images) with a sequence of ``nh`` measurements. ``ValueError`` names the problem (and
    the image, by ``names[i]`` when given): an image of the wrong shape, with NaN, constant, or of
    a ``pixel_size`` ``(dy, dx)`` (m) other than the grid's; a known unit (``units[i]``, "" if
    unknown) other than its measurement's; a height outside the physical range; material values
    outside theirs or ``Ku <= 0``; ``options`` outside the ranges of ``options.OPTIONS`` or a
    joint fit that is not of one image by the bias method; an ``m0`` ``(nz, ny, nx, 3)`` of
    another grid (its shape, and the cell sizes of ``m0_grid`` if given).
    """
    checked = check_images(targets, grid, measurements, pixel_size, units, names)
    values = material_values(material)
    if not values["Ku"] > 0:
        raise ValueError(f"Ku = {values['Ku']:g} J/m^3: the reconstruction needs Ku > 0 (a perpendicular film; its "
                         "bias is in units of the anisotropy field 2 Ku / (mu0 Ms))")
    check("method", options.method)
    check("init", options.init)
    fitted = check("reconstruct_fit", tuple(options.fit) or None) or ()
    if len(set(fitted)) != len(fitted):
        raise ValueError(f"fit names a parameter twice: {' '.join(fitted)}")
    if fitted and (len(checked) > 1 or options.method != "bias"):
        raise ValueError("a joint fit of the material takes one image and the bias method")
    if options.row_offsets and options.method not in ("energy", "energy-relaxed"):
        raise ValueError(f"an offset per scan line (row offsets) takes method 'energy' or 'energy-relaxed', "
                         f"not {options.method!r}")
    for key, name in (("bias_strength", "bias_strength"), ("noise", "noise"), ("discrepancy", "discrepancy"),
                      ("max_iter", "reconstruct_max_iter")):
        check(name, getattr(options, key))
    check_start(m0, grid, m0_grid)
    return checked


def check_images(targets, grid: Grid, measurements, pixel_size=None, units=None, names=None) -> np.ndarray:
    """The images of ``validate``, checked with their measurements, as float64 ``(nh, ny, nx)``.

    ``ValueError`` names the image (``names[i]``, else "target" / "image i") and its problem: a
    measurement that is not one or a height outside the physical range, a wrong shape, NaN, a
    constant image, a ``pixel_size`` ``(dy, dx)`` (m) other than the grid's, a known unit
    (``units[i]``, "" if unknown) other than its measurement's."""
    images, measurements = as_stack(targets, measurements)
    names = list(names) if names is not None else [f"image {i + 1}" if len(images) > 1 else "target"
                                                   for i in range(len(images))]
    units = list(units) if units is not None else [""] * len(images)
    checked = []
    for image, measurement, name, unit in zip(images, measurements, names, units):
        try:
            check_measurement(measurement)
            check_physical({"height": plane_distance(measurement)})
            checked.append(check_target(image, grid, pixel_size))
            check_unit(unit, measurement, "the image")
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return np.stack(checked)


def material_values(material: Material) -> dict:
    """``{"Ms", "A", "Ku", "D"}`` of ``material`` as floats (SI); ``ValueError`` for a map (one number
    each here) or a value outside the physical range."""
    values = {}
    for key in MATERIAL_PARAMETERS:
        value = np.asarray(getattr(material, key), dtype=float)
        if value.ndim != 0:
            raise ValueError(f"{key} must be one number here, got a map of shape {value.shape}")
        values[key] = float(value)
    check_physical(values)
    return values


# ----------------------------------------------------------------------------- records


def reconstruction_record(result, options: ReconstructOptions | None = None) -> dict:
    """The ``reconstruction`` metadata entry and the body of ``report.json``: ``result.to_dict()``
    (method, start, message, misfit and its goal, noise, penalty weight, converged, cancelled,
    iterations, loss history, timings, the material and the measurements, a joint fit's values;
    SI) and the options."""
    record = result.to_dict()
    if options is not None:
        record["options"] = options.to_dict()
    return record


def _describe(snapshot: ReconstructionSnapshot, most: int) -> str:
    return (f"reconstruction, {snapshot.stage}: iteration {snapshot.iteration} of at most {most}, residual "
            f"{math.sqrt(max(snapshot.misfit, 0.0)):.2%} of the image RMS")


# ----------------------------------------------------------------------------- the job


def reconstruct(targets, grid: Grid, measurements, material: Material,
                options: ReconstructOptions = ReconstructOptions(), m0=None, pixel_size=None,
                cancel: threading.Event | None = None) -> Job:
    """Job (see ``jobs``): ``backend.reconstruct_texture`` with progress and snapshots.

    Parameters
    ----------
    targets : ndarray (ny, nx) or (nh, ny, nx), or a list of images
        The image(s), each in its measurement's units (A/m, Hz or degrees).
    grid : Grid
        The film; ``(ny, nx)`` as the images.
    measurements : StrayFieldMeasurement or MFMMeasurement, or a sequence of them
        One per image.
    material : Material
        The film's material (the start of a joint fit of ``options.fit``).
    options : ReconstructOptions
    m0 : ndarray (nz, ny, nx, 3), optional
        Starting magnetization, instead of ``options.init``.
    pixel_size : (dy, dx) in m, optional
        The images' pixel size, checked against the grid.
    cancel : threading.Event, optional
        Stops the reconstruction, which then returns its best state so far (``result.cancelled``).

    Yields ``Progress`` and ``Partial(ReconstructionSnapshot)`` after every outer iteration;
    returns the backend's ``ReconstructionResult`` (``simulated``, ``residual`` ``(ny, nx)`` for
    one image, ``(nh, ny, nx)`` for several).
    """
    cancel = threading.Event() if cancel is None else cancel
    images, measurements = as_stack(targets, measurements)
    stack = np.stack([np.asarray(image, dtype=float) for image in images])
    target, measurement = (stack[0], measurements[0]) if len(stack) == 1 else (stack, list(measurements))
    most = options.most_iterations
    counter = itertools.count(1)

    def call(report):
        def progress(state):  # helper thread: copy now, the backend goes on with its tensors
            simulated = state.simulated.detach().cpu().numpy().copy()
            bias = None if state.bias_field is None else state.bias_field.detach().cpu().numpy().copy()
            report(ReconstructionSnapshot(state.stage, next(counter), float(state.loss), float(state.misfit),
                                          state.m.detach().cpu().numpy().copy(), simulated, simulated - target,
                                          bias))

        return reconstruct_texture(target, grid, material, measurement,
                                   init=options.init if m0 is None else np.asarray(m0, dtype=float),
                                   method=options.method, fit=tuple(options.fit), bias_strength=options.bias_strength,
                                   noise=options.noise, discrepancy=options.discrepancy, max_iter=options.max_iter,
                                   external_field=options.external_field, pixel_size=pixel_size,
                                   row_offsets=options.row_offsets, progress=progress, cancel=cancel)

    start = {"bias": "relaxing the start under its bias field", "energy": "starting from the image",
             "energy-relaxed": "starting from the image", "fourier": "Fourier inversion"}[options.method]
    yield Progress(0, most, f"reconstruction: {start}")
    result = yield from relay_snapshots(call, cancel, lambda snapshot: Progress(min(snapshot.iteration, most), most, _describe(snapshot, most)))
    yield Progress(most, most, f"reconstruction: {result.message}")
    return result
