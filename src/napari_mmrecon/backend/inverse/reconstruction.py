"""The magnetization texture behind a stray-field or MFM image (``reconstruct_texture``).

Four methods, one API (``method=``):

- ``"bias"`` (the default): the spatially varying bias field ``H_b = H_K beta(x, y) z^``
  (``H_K = 2 Ku / (mu0 Ms)``) is the optimized handle, and the texture is always the micromagnetic
  equilibrium under it, ``m = equilibrium(H_b, material)``. L-BFGS minimizes the image misfit plus
  ``w (mean(beta^2) + mean(|grad beta|^2))`` (cell differences), with gradients through the
  equilibrium by implicit differentiation (memory flat in the relaxation's length). The bias
  starts from the image-shaped field of the parameter fit (``bias.bias_shape``, ``bias_strength``
  times ``H_K``), which holds the start's skyrmions where the image has them: without it a film's
  skyrmions drift along their soft modes during the first relaxation (on a 128 x 128 film with 14
  skyrmions: minutes, and an m_z correlation of 0.12 with the truth).
- ``"energy"``: unit vectors optimized directly for the misfit plus ``w`` times the micromagnetic
  energy (``energy_reconstruction``), the approach of differentiable-micromagnetics work on NV data.
- ``"energy-relaxed"``: the ``"energy"`` texture relaxed at the material under a bias along its own
  smoothed ``m_z`` (``held_equilibrium``): the walls take their equilibrium profile and chirality,
  the skyrmions stay where and as large as the image put them. One relaxation more than
  ``"energy"``; at 512 x 512 a texture within 2 deg of the truth where the ``"bias"`` method takes
  minutes per outer iteration (docs/measured-data.md).
- ``"fourier"``: Fourier inversion of the image for ``m_z`` with a height-tied low-pass filter and
  a Neel in-plane part (``fourier_inversion``), the standard of NV magnetometry codes.

The penalty weight follows the discrepancy principle (Morozov): the weights ``PENALTY_WEIGHTS``
are tried from the largest down, each stage warm-started from the last, and the reconstruction
stops at the first (largest) weight whose residual RMS reaches ``discrepancy`` times the noise of
each image (estimated from the image alone by ``parameter_fit.image_noise``, or given), but not
below ``MISFIT_FLOOR`` of the image's RMS (a noise-free synthetic image has no noise to reach).
The largest weight consistent with the data keeps the bias as small and smooth as the image allows.

Material parameters (and the height, and the image's gain) are fitted jointly (``fit=``) by
alternating: the texture at the start material; the material with that texture held
(``fit_parameters``, skyrmions pinned where the reconstruction has them, no bias at its end); the
texture again at the fitted material, height and gain (the image modelled as ``gain * S``). The
image's additive offset is not fitted here: the reconstruction's bias map would absorb it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..forward.measurement import check_measurement, plane_distance, simulate_image
from ..physics.grid import Grid, Material
from ..runtime.records import SCHEMA_VERSION
from ..solvers.equilibrium import EquilibriumSettings
from .bias import bias_shape, perpendicular_estimate, texture_bias_shape, texture_from_estimate
from .energy_reconstruction import energy_reconstruction, with_row_offsets
from .fit_state import FitState
from .held_equilibrium import held_equilibrium
from .objective import MATERIAL_PARAMETERS, FitCancelled, Objective
from .optimizers import StageRule, gradient_descent
from .parameter_fit import (DEFAULT_BIAS_STRENGTH, FITTABLE, FitResult, check_physical, check_target,
                            fit_parameters, image_noise)
from .parameter_set import Parameter, ParameterSet

METHODS = ("bias", "energy", "energy-relaxed", "fourier")
INITS = ("uniform", "estimate", "unet")
PENALTY_WEIGHTS = (1e-2, 1e-3, 1e-4, 1e-5)
"""Penalty weights of the discrepancy principle, tried from the largest down."""
DISCREPANCY = 1.1
"""Morozov's factor: stop once the residual RMS is at most this times the noise. A fit as good as the
model allows leaves a residual about the noise itself (on the test skyrmion with 10 % noise:
1.001 times the noise, reached after 5 iterations, the texture within 0.15 deg), so a factor of 1
asks for more than the data hold and the weight is driven to the smallest value, fitting noise."""
MISFIT_FLOOR = 1e-2
"""The residual RMS goal is never below this fraction of each image's RMS. On the 128 x 128 film
of ``docs/reconstruction.md`` (strong side, 10 nm) a residual of 1 % of the image's RMS leaves a
mean angle error of 0.4 deg."""
RELAX_TOL = 1e-6
"""Torque tolerance (``max |m x H| / Ms``) of the inner relaxations."""
ADJOINT_TOL = 1e-6
"""Relative residual of the adjoint solves (conjugate gradients): the L-BFGS direction needs no
more. On the 128^2 benchmark film it takes a third fewer CG iterations than the equilibrium's
default 1e-9 and ends on the same texture (angle error 0.32656 deg either way)."""
MAX_RELAX_ITERATIONS = 5000
__all__ = ["ReconstructionProgress", "ReconstructionResult", "reconstruct_texture"]


@dataclass
class ReconstructionProgress:
    """A snapshot after every outer iteration: ``stage`` (the method and penalty weight),
    ``iteration`` (over all stages), the best ``loss`` and ``misfit`` (normalized) so far, its
    magnetization ``m`` (tensor ``(nz, ny, nx, 3)``), image ``simulated`` (tensor ``(ny, nx)`` or
    ``(nh, ny, nx)``) and ``bias_field`` (tensor ``(nz, ny, nx, 3)``, A/m, or None)."""

    stage: str
    iteration: int
    loss: float
    misfit: float
    m: torch.Tensor
    simulated: torch.Tensor
    bias_field: torch.Tensor | None


@dataclass
class ReconstructionResult:
    """Outcome of ``reconstruct_texture``.

    Attributes
    ----------
    m : ndarray (nz, ny, nx, 3)
        The reconstructed magnetization (unit vectors).
    bias_field : ndarray (nz, ny, nx, 3) or None
        The bias field H (A/m) whose equilibrium ``m`` is (``method="bias"``); None otherwise.
    material : Material
        The material used (fitted where ``fit`` named parameters).
    simulated, residual : ndarray (ny, nx) or (nh, ny, nx)
        The image(s) of ``m`` (times the fitted gain where ``fit`` named it) and ``simulated - target``.
    loss_history : list of float
        Best loss after each outer iteration (normalized misfit plus penalty).
    message : str
        How the reconstruction ended, in words.
    method, init : str
        What was run (``init`` "array" for a given start).
    measurements : tuple
        One measurement per image (at the fitted height where it was fitted).
    misfit : float
        Normalized misfit: the mean over images of ``mean(residual^2) / mean(target^2)``.
    noise : tuple of float
        Noise level of each image (image units), estimated from the image or given.
    misfit_goal : float
        The normalized misfit the discrepancy principle aimed at.
    penalty_weight : float
        The weight at which the reconstruction stopped (NaN for ``"fourier"``).
    converged, cancelled : bool
        ``converged``: the misfit reached its goal.
    iterations : int
        Outer iterations over all stages.
    timings : dict
        Seconds: ``relax``, ``adjoint``, ``material fit``, ``total``, and work counts.
    fit : FitResult or None
        The material fit of a joint reconstruction (values and 1-sigma uncertainties).
    offset : float
        The image's additive level in the image's units (fitted where ``fit`` names ``"offset"``,
        else 0); ``simulated`` includes it.
    """

    m: np.ndarray
    bias_field: np.ndarray | None
    material: Material
    simulated: np.ndarray
    residual: np.ndarray
    loss_history: list
    message: str
    method: str
    init: str
    measurements: tuple
    misfit: float
    noise: tuple
    misfit_goal: float
    penalty_weight: float
    converged: bool
    cancelled: bool
    iterations: int
    timings: dict = field(default_factory=dict)
    fit: FitResult | None = None
    offset: float = 0.0

    def to_dict(self) -> dict:
        """Record (``records`` schema) without the arrays (``m``, ``bias_field``, ``simulated``,
        ``residual`` go to OVF / TIFF files)."""
        return {"method": self.method, "init": self.init, "message": self.message, "misfit": float(self.misfit),
                "misfit_goal": float(self.misfit_goal), "noise": [float(v) for v in self.noise],
                "penalty_weight": float(self.penalty_weight), "converged": bool(self.converged),
                "cancelled": bool(self.cancelled), "iterations": int(self.iterations),
                "loss_history": [float(v) for v in self.loss_history],
                "timings": {k: float(v) for k, v in self.timings.items()}, "material": self.material.to_dict(),
                "measurements": [meas.to_dict() for meas in self.measurements],
                "fit": None if self.fit is None else self.fit.to_dict(), "offset": float(self.offset),
                "schema": SCHEMA_VERSION}


# --------------------------------------------------------------------------- input checks


def check_targets(target, grid: Grid, measurement, pixel_size=None) -> tuple[np.ndarray, tuple]:
    """``(images (nh, ny, nx), measurements)``: a 2-D target with one measurement, or a stack
    ``(nh, ny, nx)`` with a sequence of ``nh`` measurements; every image checked like a fit's target."""
    if isinstance(target, torch.Tensor):
        target = target.detach().cpu().numpy()
    stacked = isinstance(measurement, (list, tuple))
    ndim = np.ndim(target)
    if ndim == 3 and not stacked:
        raise ValueError(f"a stack of {np.shape(target)[0]} images needs one measurement per image (a list), "
                         "got a single measurement")
    if ndim == 2 and stacked:
        if len(measurement) != 1:
            raise ValueError(f"one image (ny, nx) takes one measurement, got {len(measurement)}")
        target = np.asarray(target)[None]
    elif ndim == 2:
        target, measurement = np.asarray(target)[None], (measurement,)
    elif ndim != 3:
        raise ValueError(f"target must be an image (ny, nx) or a stack (nh, ny, nx), got shape {np.shape(target)}")
    if len(measurement) != len(target):
        raise ValueError(f"{len(target)} images need {len(target)} measurements, got {len(measurement)}")
    for meas in measurement:
        check_measurement(meas)
        check_physical({"height": plane_distance(meas)})
    images = np.stack([check_target(image, grid, pixel_size) for image in target])
    return images, tuple(measurement)


def _check_material(material: Material, grid: Grid) -> dict:
    """Name -> tensor of ``Ms, A, Ku, D`` on the grid (scalars or ``(nz, ny, nx)`` maps), checked."""
    if not isinstance(material, Material):
        raise ValueError(f"material must be a napari_mmrecon Material, got {type(material).__name__}")
    values = {}
    for name in MATERIAL_PARAMETERS:
        value = grid.tensor(np.asarray(getattr(material, name).detach().cpu() if isinstance(
            getattr(material, name), torch.Tensor) else getattr(material, name), dtype=float))
        if value.ndim not in (0, 3) or (value.ndim == 3 and tuple(value.shape) != grid.shape):
            raise ValueError(f"material {name} must be a scalar or a {grid.shape} map, got shape {tuple(value.shape)}")
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"material {name} contains NaN or inf")
        check_physical({name: float(value.mean())})
        values[name] = value
    if not float(values["Ku"].mean()) > 0:
        raise ValueError("Ku must be > 0: the reconstruction holds textures of a perpendicular film "
                         "(the bias is measured in units of the anisotropy field 2 Ku / (mu0 Ms))")
    return values


def _start_texture(init, estimate, grid: Grid) -> tuple[torch.Tensor, str]:
    """The starting magnetization (tensor ``(nz, ny, nx, 3)``) and the start's name."""
    if isinstance(init, str):
        if init == "uniform":
            m = np.zeros(grid.vector_shape)
            m[..., 2] = 1.0 if estimate.background >= 0 else -1.0
            return grid.tensor(m), init
        return grid.tensor(texture_from_estimate(estimate, grid)), init
    m = init.detach().cpu().numpy() if isinstance(init, torch.Tensor) else np.asarray(init, dtype=float)
    if m.shape != grid.vector_shape:
        raise ValueError(f"init has shape {m.shape}; expected (nz, ny, nx, 3) = {grid.vector_shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("init contains NaN or inf")
    norm = np.linalg.norm(m, axis=-1, keepdims=True)
    if not np.all(norm > 0):
        raise ValueError("init has cells with |m| = 0: every cell needs a direction")
    return grid.tensor(m / norm), "array"


def _goal(images: np.ndarray, noise, discrepancy: float) -> tuple[tuple, float]:
    """Each image's noise (given, or estimated from the image) and the normalized misfit goal
    ``mean_i (max(discrepancy noise_i, MISFIT_FLOOR rms_i)^2 / rms_i^2)``."""
    if noise is None:
        levels = tuple(image_noise(image) for image in images)
    else:
        levels = tuple(float(v) for v in np.broadcast_to(np.asarray(noise, dtype=float), (len(images),)))
        if not all(math.isfinite(v) and v >= 0 for v in levels):
            raise ValueError(f"noise must be finite levels >= 0 in the image's units, got {noise!r}")
    rms = np.sqrt((images ** 2).mean(axis=(1, 2)))
    ratios = [max(discrepancy * level, MISFIT_FLOOR * r) / r for level, r in zip(levels, rms)]
    return levels, float(np.mean(np.square(ratios)))


# --------------------------------------------------------------------------- the bias method


class _Stop(Exception):
    """The outer iteration budget is spent."""


def _bias_reconstruction(images, measurements, grid: Grid, values: dict, m_start: torch.Tensor, beta0: torch.Tensor,
                         goal: float, max_iter: int, settings: EquilibriumSettings, progress, history: list,
                         gain: float = 1.0, offset: float | None = None):
    """L-BFGS over the bias map through the discrepancy stages (the image modelled as
    ``gain * S + offset``; the offset fitted with the bias from the given start, 0 when None);
    returns ``(state, objective, weight, iterations, cancelled, status)`` with the best state in
    ``state.best``."""
    stacked = len(measurements) > 1
    target = grid.tensor(images if stacked else images[0])
    fixed = {**values, "height": grid.tensor(plane_distance(measurements[0])), "gain": grid.tensor(gain)}
    optimized = [Parameter("bias", beta0, "linear", 1.0, max_step=math.inf)]
    if offset is None:
        fixed["offset"] = grid.tensor(0.0)
    else:
        optimized.append(Parameter("offset", grid.tensor(offset), "linear", float(np.std(images[0])), max_step=math.inf))
    params = ParameterSet(optimized, fixed=fixed)
    state = FitState(warm=m_start, relax_tol=RELAX_TOL, keep_topology=False)
    measurement = measurements if stacked else measurements[0]
    done, cancelled, status, weight, objective = 0, False, "max_iter", PENALTY_WEIGHTS[0], None
    try:
        for weight in PENALTY_WEIGHTS:
            objective = Objective(grid, measurement, target, params, settings, bias_weights=(weight, weight))
            theta = params.zeros(target) if state.best is None else state.best.theta
            state.new_stage()
            first = objective.evaluate(theta, state.warm, 1.0, RELAX_TOL)
            if not state.consider(first):
                raise ValueError("the start found no equilibrium under its bias field (its relaxation did not "
                                 f"converge in {MAX_RELAX_ITERATIONS} iterations): check the material and the start")
            if first.misfit <= goal:
                status = "misfit goal"
                break
            if done >= max_iter:
                break

            def report(snapshot, weight=weight, offset=done, objective=objective):
                if progress is not None:
                    best = state.best
                    progress(ReconstructionProgress(f"bias, weight {weight:g}", offset + snapshot.iteration, best.loss,
                                                    best.misfit, best.m, best.image,
                                                    objective.bias_field(objective.parameters.values(best.theta), 1.0)))

            outcome = gradient_descent(objective, state, 1.0, StageRule(max_iter=max_iter - done, misfit_goal=goal),
                                       f"bias {weight:g}", "lbfgs", report)
            done += outcome.iterations
            status = outcome.status
            if status == "misfit goal":
                break
    except FitCancelled:
        cancelled, done = True, len(state.history)
    history.extend(state.history)
    return state, objective, weight, done, cancelled, status


def _relaxed(m, images, measurements, grid: Grid, values: dict, material: Material, external_field, done: int,
             status: str, row_offsets: bool, progress, cancel):
    """The ``"energy-relaxed"`` step: ``held_equilibrium`` of the energy texture ``m``, reported as
    stage "relaxed, domains held"; ``(m, bias, cancelled, status)``."""
    targets = grid.tensor(images)
    signal = targets - targets.mean(dim=-1, keepdim=True) if row_offsets else targets
    power = (signal ** 2).mean(dim=(1, 2))

    def report(iteration, m_now, bias):
        if progress is not None:
            with torch.no_grad():
                simulated = torch.stack([simulate_image(meas, m_now, grid, values["Ms"]) for meas in measurements])
                if row_offsets:
                    simulated = with_row_offsets(simulated, targets)
                misfit = float((((simulated - targets) ** 2).mean(dim=(1, 2)) / power).mean())
            progress(ReconstructionProgress("relaxed, domains held", done + iteration, misfit, misfit, m_now,
                                            simulated[0] if len(images) == 1 else simulated, bias))

    m, bias, iterations, converged, cancelled = held_equilibrium(
        m, grid, _material_of(values, material), external_field=external_field, progress=report, cancel=cancel)
    ending = "torque converged" if converged else "iteration budget spent"
    return m, bias, cancelled, f"energy fit {status}; relaxed with its domains held, {iterations} iterations ({ending})"


def _material_of(values: dict, material: Material) -> Material:
    """``material`` with the values (tensors) of ``Ms, A, Ku, D`` as numbers or numpy maps."""
    out = {}
    for name in MATERIAL_PARAMETERS:
        v = values[name].detach().cpu()
        out[name] = float(v) if v.ndim == 0 else v.numpy()
    return material.replace(**out)


def reconstruct_texture(target, grid: Grid, material: Material, measurement, init="estimate", method: str = "bias",
                        fit=(), bias_strength: float = DEFAULT_BIAS_STRENGTH, noise=None, discrepancy: float = DISCREPANCY,
                        max_iter: int = 100, external_field=None, pixel_size=None, cutoff: float | None = None,
                        row_offsets: bool = False, progress=None, cancel=None) -> ReconstructionResult:
    """Reconstruct the magnetization texture behind a stray-field or MFM image.

    Parameters
    ----------
    target : array (ny, nx) or (nh, ny, nx)
        The image, or a stack of images of one film (several heights, both sides, MFM passes), in
        each measurement's units (A/m, Hz or degrees) on the grid's cells.
    grid : Grid
    material : Material
        Known material (``Ms, A, Ku, D`` scalars or ``(nz, ny, nx)`` maps), or the start of a joint
        fit (scalars).
    measurement : StrayFieldMeasurement or MFMMeasurement, or a sequence of them
        One per image of a stack.
    init : "estimate", "uniform", "unet" or array (nz, ny, nx, 3)
        The start: the image's perpendicular estimate (``bias.texture_from_estimate``), a uniform
        film along the image's background, the U-Net's prediction (``learn.predict.unet_predict``,
        the hybrid: its start bias is shaped from the predicted ``m_z``), or a given texture (e.g.
        a magnetization layer).
    method : "bias", "energy", "energy-relaxed" or "fourier"
        See the module's description.
    fit : tuple of str
        Parameters fitted jointly with the texture, among ``"Ms", "A", "Ku", "D", "height",
        "gain", "offset"`` (one image only; ``gain``: the image's unknown scale, e.g. an MFM tip's,
        see ``fit_parameters`` for what it leaves identifiable; ``offset``: the image's unknown
        additive level, as a measured image has after levelling: fitted with the bias map, and with
        the material where that is fitted too).
    bias_strength : float
        The start bias ``bias_strength * H_K * shape`` (``H_K = 2 Ku / (mu0 Ms)``), shape from the image.
    noise : float or sequence, optional
        The noise level of each image (image units); default: estimated from the image.
    discrepancy : float
        Stop once the residual RMS is at most this times the noise (the discrepancy principle;
        ``DISCREPANCY``).
    max_iter : int
        Outer (L-BFGS) iterations over all stages.
    external_field : optional
        Applied field H (A/m), 3-vector or ``(nz, ny, nx, 3)``, fixed.
    pixel_size : (dy, dx), optional
        The image's pixel size (m), checked against the grid.
    cutoff : float, optional
        The ``"fourier"`` method's low-pass cut-off (rad/m); default tied to the height.
    row_offsets : bool
        Every image row (scan line) carries its own unknown offset, as a measured image does around
        its scan-line jumps, before and after row alignment (which shifts each row by its own median,
        a level that depends on what the row crosses). The offsets are profiled out exactly: model
        and image are compared with each row's mean residual removed, the misfit normalized by the
        image's power without its row means, and ``simulated`` includes the fitted offsets
        (``energy_reconstruction.with_row_offsets``). Methods ``"energy"`` and ``"energy-relaxed"``.
    progress : callable(ReconstructionProgress), optional
        Called after every outer iteration.
    cancel : threading.Event or callable, optional
        Stops the reconstruction; the best state so far is returned (``cancelled`` set).

    Returns
    -------
    ReconstructionResult
    """
    started = time.perf_counter()
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a napari_mmrecon Grid, got {type(grid).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    images, measurements = check_targets(target, grid, measurement, pixel_size)
    values = _check_material(material, grid)
    names = tuple(fit)
    if any(n not in FITTABLE for n in names) or len(set(names)) != len(names):
        raise ValueError(f"fit must name distinct parameters among {FITTABLE}, got {fit!r}")
    offset = 0.0 if "offset" in names else None
    joint = tuple(n for n in names if n != "offset")
    if names and (len(images) > 1 or method != "bias"):
        raise ValueError("a joint fit of the material takes one image and method='bias'")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a whole number >= 1, got {max_iter!r}")
    if isinstance(init, str) and init not in INITS:
        raise ValueError(f"init must be one of {INITS} or an array (nz, ny, nx, 3), got {init!r}")
    if not (math.isfinite(bias_strength) and bias_strength >= 0):
        raise ValueError(f"bias_strength must be a finite number >= 0, got {bias_strength!r}")
    if not (math.isfinite(discrepancy) and discrepancy > 0):
        raise ValueError(f"discrepancy must be a finite number > 0, got {discrepancy!r}")
    if row_offsets not in (True, False):
        raise ValueError(f"row_offsets must be True or False, got {row_offsets!r}")
    if row_offsets and method not in ("energy", "energy-relaxed"):
        raise ValueError(f"row_offsets (an offset per scan line) takes method 'energy' or 'energy-relaxed', "
                         f"got {method!r}")
    signal = images - images.mean(axis=-1, keepdims=True) if row_offsets else images
    levels, goal = _goal(signal, noise, discrepancy)
    Ms = float(values["Ms"].mean())
    if method == "fourier":
        from .fourier_inversion import fourier_texture
        chirality = 1 if float(values["D"].mean()) >= 0 else -1
        m = grid.tensor(fourier_texture(images[0], grid, measurements[0], Ms, chirality=chirality, cutoff=cutoff))
        return _finish(grid, m, None, material, images, measurements, values, [], "fourier", "image", levels, goal,
                       math.nan, 0, False, "m_z by Fourier inversion of the first image, Neel in-plane part",
                       {"total": time.perf_counter() - started})
    if isinstance(init, str) and init == "unet":
        from ..learn.predict import unet_predict
        m_start, init_name = grid.tensor(unet_predict(images, grid, list(measurements), material)), "unet"
        shape = grid.tensor(texture_bias_shape(m_start.cpu().numpy())).expand(grid.shape).clone()
    else:
        estimate = perpendicular_estimate(images[0], grid, measurements[0], Ms)
        m_start, init_name = _start_texture(init, estimate, grid)
        shape = grid.tensor(bias_shape(estimate)).expand(grid.shape).clone()
    settings = EquilibriumSettings(tol=RELAX_TOL, max_iter=MAX_RELAX_ITERATIONS, cg_tol=ADJOINT_TOL,
                                   external_field=external_field, Ku_axis=material.Ku_axis, cancel=cancel)
    history: list = []
    if method in ("energy", "energy-relaxed"):
        outcome = energy_reconstruction(images, measurements, grid, values, m_start, goal, PENALTY_WEIGHTS, max_iter,
                                        external_field, material.Ku_axis, cancel, progress, history, row_offsets)
        m, bias, cancelled, status = outcome.m, None, outcome.cancelled, outcome.status
        timings = {"energy": time.perf_counter() - started}
        if method == "energy-relaxed" and not cancelled:
            m, bias, cancelled, status = _relaxed(m.detach(), images, measurements, grid, values, material, external_field,
                                                  outcome.iterations, status, row_offsets, progress, cancel)
            timings["relax"] = time.perf_counter() - started - timings["energy"]
        return _finish(grid, m, bias, material, images, measurements, values, history, method, init_name, levels,
                       goal, outcome.weight, outcome.iterations, cancelled, status,
                       {**timings, "total": time.perf_counter() - started}, row_offsets=row_offsets)
    fit_result = None
    timings = {}
    gain = 1.0
    if joint:
        state, objective, weight, done, cancelled, status = _bias_reconstruction(
            images, measurements, grid, values, m_start, bias_strength * shape, goal, max_iter, settings, progress,
            history, offset=offset)
        if not cancelled and state.best is not None:
            fit_started = time.perf_counter()
            fit_result = fit_parameters(images[0], grid, measurements[0], _material_of(values, material), fit=names,
                                        m0=state.best.m.detach(), max_iter=max_iter, external_field=external_field,
                                        cancel=cancel)
            timings["material fit"] = time.perf_counter() - fit_started
            values = _check_material(fit_result.material, grid)
            measurements = (fit_result.measurement,)
            gain = fit_result.values.get("gain", 1.0)
            offset = None if offset is None else fit_result.values["offset"]
            m_start = grid.tensor(fit_result.m)
            cancelled = fit_result.cancelled
        if cancelled:
            return _bias_result(state, objective, material, images, measurements, history, init_name, levels, goal,
                                weight, done, True, status, settings, timings, started, fit_result)
    state, objective, weight, done, cancelled, status = _bias_reconstruction(
        images, measurements, grid, values, m_start, bias_strength * shape, goal, max_iter, settings, progress,
        history, gain, offset)
    return _bias_result(state, objective, material, images, measurements, history, init_name, levels, goal, weight,
                        done, cancelled, status, settings, timings, started, fit_result)


def _bias_result(state, objective, material, images, measurements, history, init_name, levels, goal, weight, done,
                 cancelled, status, settings, timings, started, fit_result):
    best = state.best
    if best is None:
        raise FitCancelled
    values = objective.parameters.values(best.theta)
    bias = objective.bias_field(values, 1.0)
    stats = settings.stats
    timings = {**timings, "relax": stats.relax_time, "adjoint": stats.adjoint_time, "relaxations": stats.relaxations,
               "total": time.perf_counter() - started}
    return _finish(objective.grid, best.m, bias, material, images, measurements, values, history, "bias", init_name, levels, goal,
                   weight, done, cancelled, status, timings, fit_result, float(values.get("gain", 1.0)),
                   float(values["offset"]))


def _finish(grid, m, bias, material, images, measurements, values, history, method, init_name, levels, goal, weight, done,
            cancelled, status, timings, fit_result=None, gain: float = 1.0, offset: float = 0.0,
            row_offsets: bool = False) -> ReconstructionResult:
    """The result: images simulated afresh from ``m`` (so they are those of the returned texture,
    times the fitted ``gain``, plus the fitted ``offset`` or, with ``row_offsets``, each row's), the
    misfit against its goal, and the message."""
    grid_images = []
    with torch.no_grad():
        for meas in measurements:
            grid_images.append(gain * simulate_image(meas, m.detach(), grid, values["Ms"]) + offset)
    simulated = torch.stack(grid_images).cpu().numpy()
    signal = images
    if row_offsets:
        simulated = with_row_offsets(simulated, images)
        signal = images - images.mean(axis=-1, keepdims=True)
    residual = simulated - images
    power = (signal ** 2).mean(axis=(1, 2))
    misfit = float(np.mean((residual ** 2).mean(axis=(1, 2)) / power))
    converged = misfit <= goal * (1 + 1e-9) and not cancelled
    rms = math.sqrt(misfit)
    if cancelled:
        message = f"cancelled: the best texture so far (residual {rms:.2%} of the image RMS)"
    elif converged:
        message = (f"reconstructed: residual {rms:.2%} of the image RMS, within the goal of "
                   f"{math.sqrt(goal):.2%} (noise or floor)")
    else:
        message = (f"not converged ({status}): residual {rms:.2%} of the image RMS, short of the goal of "
                   f"{math.sqrt(goal):.2%}")
    if method == "fourier":
        message = f"{status}: residual {rms:.2%} of the image RMS"
        converged = False
    used = _material_of(values, material)
    squeeze = len(images) == 1
    return ReconstructionResult(
        m=m.detach().cpu().numpy(), bias_field=None if bias is None else bias.detach().cpu().numpy(), material=used,
        simulated=simulated[0] if squeeze else simulated, residual=residual[0] if squeeze else residual,
        loss_history=list(history), message=message, method=method, init=init_name, measurements=tuple(measurements),
        misfit=misfit, noise=tuple(levels), misfit_goal=goal, penalty_weight=weight, converged=converged,
        cancelled=cancelled, iterations=done, timings=timings, fit=fit_result, offset=offset)

