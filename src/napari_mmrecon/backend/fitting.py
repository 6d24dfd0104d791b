"""Material parameters (Ms, A, Ku, D; optionally the height and an image offset) from one image.

``fit_parameters`` minimizes the normalized misfit ``L = mean((S(m*(p), p) - target)^2) / mean(target^2)``
where ``m*(p)`` is the micromagnetic equilibrium at the trial parameters ``p``, relaxed under a
bias field from the previous equilibrium (``equilibrium.equilibrium``: implicit gradients, memory
independent of the relaxation length), and ``S`` is the measurement's forward operator.

Parameters are optimized in bounded coordinates (``fit_objective``): each stays within a factor
of 10 of its start and keeps its sign. The outer optimizer (``fit_optimizers``) is
Levenberg-Marquardt by default, or L-BFGS / Adam on the implicit gradient.

The bias field (DESIGN.md section 5) keeps the simulated texture in the measured configuration
while the parameters change. The biased stages fit under the bias, lowered step by step; the last
stage removes it and continues from their parameters and state, so the result is a zero-bias
equilibrium; ``bias_shift`` reports how far each parameter moved from the full-bias stage.

Uncertainties come from the Gauss-Newton (Laplace) approximation at the optimum: with the
Jacobian ``J = dS/dp`` (through the equilibrium, by implicit tangent solves) and the noise level
``sigma^2 = |r|^2 / (N - n)`` estimated from the residual, ``Cov = sigma^2 (J^T J)^-1``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .bias import bias_from_shape, bias_shape, perpendicular_estimate, texture_from_estimate
from .equilibrium import EquilibriumSettings
from .fit_objective import ConfigurationLost, FitCancelled, Objective, Parameterization
from .fit_optimizers import (GRADIENT_LOSS_TOL, LM_LOSS_TOL, OPTIMIZERS, FitProgress, StopRule, gradient_descent,
                             levenberg_marquardt)
from .analysis import topological_charge
from .grid import Grid, Material
from .measurement import check_measurement, plane_distance, with_plane_distance

MATERIAL_PARAMETERS = ("Ms", "A", "Ku", "D")
FITTABLE = MATERIAL_PARAMETERS + ("height", "offset")
PHYSICAL_RANGES = {
    "Ms": (1e3, 1e7, "A/m"),
    "A": (1e-14, 1e-9, "J/m"),
    "Ku": (0.0, 1e8, "J/m^3"),
    "D": (-0.1, 0.1, "J/m^2"),
    "height": (1e-10, 1e-5, "m"),
}
"""Accepted ranges ``(low, high, unit)``: far beyond any known magnetic film, to catch unit slips."""
BIAS_OPTIONS = ("none", "target", "optimize")
DEFAULT_BIAS = "target"
DEFAULT_BIAS_STRENGTH = 0.2
BIAS_SCHEDULE = (1.0, 0.25, 0.0625)
"""Scales of a fixed bias in the successive biased stages."""
BIASED_STAGE_ITERATIONS = 1
MAX_BIAS_INSERTIONS = 6
MAX_START_BIAS_SCALE = 4.0
"""Where the start loses its configuration under the image-shaped bias (a skyrmion collapses, appears
or runs out into a stripe at parameters far from the truth), the first stage is retried at twice
the bias (fixed, or the optimized map's start), up to this many times ``bias_strength``."""
MAX_RELAX_ITERATIONS = 5000
"""An inner relaxation that has not converged after this many iterations (a texture at an
instability) does not count as an equilibrium."""
MIN_START_CORRELATION = 0.7
POOR_MISFIT = 0.5
"""A normalized misfit above this means the simulated texture does not explain the image (a noise
level of 50 % of the image's power would be needed): the start is refused, the end reported."""
__all__ = ["FitCancelled", "FitProgress", "FitResult", "check_physical", "check_target", "fit_parameters"]


@dataclass
class FitResult:
    """Outcome of ``fit_parameters``.

    Attributes
    ----------
    material : Material
        Fitted material (unfitted parameters as given).
    values, uncertainty : dict name -> float
        Fitted values and 1-sigma uncertainties in SI units (``height`` in m, ``offset`` in the
        image's units); the uncertainties are NaN after a cancel (not computed).
    correlation : ndarray (n, n)
        Parameter correlation matrix, in the order of ``names``.
    m : ndarray (nz, ny, nx, 3)
        The relaxed magnetization at the fitted parameters.
    simulated, residual : ndarray (ny, nx)
        Simulated image and ``simulated - target``.
    loss_history : list of float
        Best normalized misfit after each outer iteration (both stages).
    noise_sigma : float
        Noise level estimated from the residual (image units).
    bias_field : ndarray (nz, ny, nx, 3) or None
        The full-strength bias field (A/m) of the first stage.
    bias_shift : dict name -> float
        Relative change of each fitted value from the full-strength biased stage to the unbiased one.
    measurement : the measurement at the fitted height.
    converged, cancelled : bool
    message : str
        How the fit ended, in words (e.g. why it did not converge).
    iterations : int
        Outer iterations over both stages.
    timings : dict
        Seconds spent in ``relax``, ``adjoint`` (implicit-gradient and tangent solves: gradients and
        Jacobians through the equilibrium), ``uncertainty``,
        ``outer`` (the rest: forward images, optimizer) and ``total``.
    """

    material: Material
    values: dict
    uncertainty: dict
    correlation: np.ndarray
    names: tuple
    m: np.ndarray
    simulated: np.ndarray
    residual: np.ndarray
    loss_history: list
    noise_sigma: float
    bias_field: np.ndarray | None
    bias_shift: dict
    measurement: object
    converged: bool
    cancelled: bool
    iterations: int
    timings: dict = field(default_factory=dict)
    message: str = ""

    def table(self) -> str:
        """Tab-separated table ``name value uncertainty unit`` (copyable into a spreadsheet)."""
        units = {name: spec[2] for name, spec in PHYSICAL_RANGES.items()}
        units["offset"] = self.measurement.units
        lines = ["parameter\tvalue\tuncertainty (1 sigma)\tunit"]
        for name in self.names:
            lines.append(f"{name}\t{self.values[name]:.6g}\t{self.uncertainty[name]:.3g}\t{units[name]}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- input checks


def check_physical(values: dict) -> None:
    """``ValueError`` naming the first parameter outside ``PHYSICAL_RANGES`` (Ms, height > 0)."""
    for name, value in values.items():
        if name not in PHYSICAL_RANGES:
            continue
        low, high, unit = PHYSICAL_RANGES[name]
        magnitude = abs(value) if name == "D" else value
        if not math.isfinite(value) or not (low <= magnitude <= high) or (name in ("Ms", "height") and value <= 0):
            span = f"|D| <= {high:g}" if name == "D" else f"{low:g} to {high:g}"
            raise ValueError(f"{name} = {value!r} {unit} is outside the physical range ({span} {unit})")


def check_target(target, grid: Grid, pixel_size=None) -> np.ndarray:
    """The target image as a float64 array ``(ny, nx)``; ``ValueError`` for a wrong shape, NaN/inf,
    a constant image, or a ``pixel_size (dy, dx)`` (m) that differs from the grid's cells."""
    if isinstance(target, torch.Tensor):
        target = target.detach().cpu().numpy()
    try:
        image = np.asarray(target, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("target must be a 2-D array of numbers (ny, nx)") from None
    if image.shape != (grid.ny, grid.nx):
        raise ValueError(f"target has shape {image.shape}; expected (ny, nx) = {(grid.ny, grid.nx)} of the grid "
                         "(crop or resample the image to the grid first)")
    if not np.all(np.isfinite(image)):
        raise ValueError(f"target contains {int(np.size(image) - np.isfinite(image).sum())} NaN or inf pixels")
    if not np.std(image) > 0:
        raise ValueError("target is constant: there is nothing to fit")
    if pixel_size is not None:
        dy, dx = (float(v) for v in pixel_size)
        if not np.allclose((dy, dx), (grid.dy, grid.dx), rtol=1e-6, atol=0):
            raise ValueError(f"target pixel size {dy:g} x {dx:g} m differs from the grid cells {grid.dy:g} x "
                             f"{grid.dx:g} m")
    return image


def _scalar_material(init: Material) -> dict:
    values = {}
    for name in MATERIAL_PARAMETERS:
        value = getattr(init, name)
        array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=float)
        if array.ndim != 0:
            raise ValueError(f"init {name} must be a scalar to be fitted, got an array of shape {array.shape}")
        values[name] = float(array)
    return values


# --------------------------------------------------------------------------- uncertainty


def gauss_newton_covariance(objective: Objective) -> tuple[np.ndarray, float]:
    """Covariance (SI units, order of the fitted names) and the noise level estimated from the
    residual: ``Cov = sigma^2 (J^T J)^-1``, ``sigma^2 = |r|^2 / (N - n)``, ``J = dS/dp``."""
    param = objective.param
    J = objective.jacobian().cpu().numpy()  # w.r.t. relative changes
    r = (objective.best_image - objective.target).reshape(-1).cpu().numpy()
    dof = max(r.size - len(param.names), 1)
    sigma = float(np.sqrt((r @ r) / dof))
    cov_relative = sigma ** 2 * np.linalg.pinv(J.T @ J)
    values = param.floats(objective.best_theta)
    scale = np.array([param.offset_scale if name == "offset" else values[name] for name in param.names])
    return cov_relative * np.outer(scale, scale), sigma


def _correlation(cov: np.ndarray) -> np.ndarray:
    d = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(d, d)
    return np.where(np.isfinite(corr) | np.isnan(cov), corr, 0.0)  # NaN stays NaN (not computed)


# --------------------------------------------------------------------------- public entry point


def fit_parameters(target, grid: Grid, measurement, init: Material, fit=MATERIAL_PARAMETERS, m0=None,
                   bias=DEFAULT_BIAS, bias_strength: float = DEFAULT_BIAS_STRENGTH,
                   bias_penalty: tuple = (1e-4, 1e-3), final_unbiased: bool = True,
                   optimizer: str = "levenberg-marquardt", max_iter: int = 100, loss_tol: float | None = None,
                   relax_tol: float = 1e-8, adam_lr: float = 0.02, external_field=None, pixel_size=None,
                   gradient: str = "implicit", unrolled_steps: int = 200, progress=None,
                   cancel=None) -> FitResult:
    """Fit material parameters so that the relaxed state reproduces a stray-field or MFM image.

    Parameters
    ----------
    target : array (ny, nx)
        The measured image on the grid's cells, in the measurement's units (A/m, Hz or degrees).
    grid : Grid
        Film geometry; its ``(ny, nx)`` must equal the target's shape.
    measurement : StrayFieldMeasurement or MFMMeasurement
        What the image is (component or tip, side, height / lift height).
    init : Material
        Starting values (scalars for the fitted parameters); the unfitted ones stay fixed.
    fit : tuple of str
        Any of ``"Ms", "A", "Ku", "D", "height", "offset"`` (height: the measurement's height or
        lift height; offset: an additive constant of the image).
    m0 : array (nz, ny, nx, 3), optional
        Starting magnetization in the measured configuration (e.g. a reconstruction). Default: a
        texture shaped from the target (``bias.texture_from_estimate``).
    bias : "none", "target", "optimize", or array
        "target": ``H_b = bias_strength * H_K * b(x, y) z^`` shaped from the image
        (``bias.bias_shape``); "optimize": a z bias map optimized jointly with L-BFGS (started from
        "target", penalized by ``bias_penalty = (w_size, w_smooth)``); an array: a fixed bias field
        H (A/m), 3-vector or ``(nz, ny, nx, 3)``. With any bias, a second stage without it follows
        when ``final_unbiased`` (the default), so the result is a zero-bias equilibrium.
    bias_strength : float
        In units of the anisotropy field ``2 Ku / (mu0 Ms)`` of ``init``.
    optimizer : "levenberg-marquardt", "lbfgs" or "adam"
    max_iter : int
        Outer iterations per stage.
    loss_tol : float, optional
        Stop when the best loss improves by less than this (relative) in two iterations in a row
        (``fit_optimizers.StopRule``). Default: ``LM_LOSS_TOL`` (1e-6) for Levenberg-Marquardt, which
        also ends when no parameter moves by more than 1e-6 (relative) in a step, and
        ``GRADIENT_LOSS_TOL`` (1e-3) for L-BFGS and Adam (also the optimized-bias stage), whose
        progress along flat valleys is too slow to follow. A noisy image's loss is dominated by the
        noise, so a loose tolerance there stops near the start along the flat A-Ku-D direction.
    relax_tol : float
        Torque tolerance of every inner relaxation (``max |m x H| / Ms``).
    external_field : optional
        Applied field H (A/m), fixed.
    pixel_size : (dy, dx), optional
        The image's pixel size (m), checked against the grid.
    gradient : "implicit" or "unrolled"
        Gradients for L-BFGS / Adam: implicit differentiation at the equilibrium (default), or
        backpropagation through ``unrolled_steps`` descent steps (checks only).
    progress : callable(FitProgress), optional
        Called after every outer iteration.
    cancel : threading.Event or callable, optional
        Stops the fit; the best state so far is returned (``cancelled`` set).

    Returns
    -------
    FitResult
    """
    start_time = time.perf_counter()
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a napari_mmrecon Grid, got {type(grid).__name__}")
    if not isinstance(init, Material):
        raise ValueError(f"init must be a napari_mmrecon Material, got {type(init).__name__}")
    check_measurement(measurement)
    image = check_target(target, grid, pixel_size)
    names = tuple(fit)
    if not names or any(n not in FITTABLE for n in names) or len(set(names)) != len(names):
        raise ValueError(f"fit must name distinct parameters among {FITTABLE}, got {fit!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if gradient not in ("implicit", "unrolled"):
        raise ValueError(f"gradient must be 'implicit' or 'unrolled', got {gradient!r}")
    if isinstance(bias, str) and bias not in BIAS_OPTIONS:
        raise ValueError(f"bias must be one of {BIAS_OPTIONS} or a field array, got {bias!r}")
    start = _scalar_material(init)
    start["height"] = plane_distance(measurement)
    start["offset"] = 0.0
    check_physical(start)
    param = Parameterization(start, names, offset_scale=float(np.std(image)))
    settings = EquilibriumSettings(tol=relax_tol, max_iter=MAX_RELAX_ITERATIONS, external_field=external_field,
                                   Ku_axis=init.Ku_axis, cancel=cancel)

    estimate = None
    if (isinstance(bias, str) and bias != "none") or m0 is None:
        estimate = perpendicular_estimate(image, grid, measurement, start["Ms"])
    m_start = _starting_state(m0, estimate, grid)
    fixed_bias, beta = _bias(bias, estimate, grid, start, bias_strength)
    objective = Objective(grid, measurement, grid.tensor(image), param, settings, m_start, fixed_bias, gradient,
                          unrolled_steps)
    objective.bias_weights = tuple(bias_penalty)
    objective.follow_anisotropy = isinstance(bias, str)  # shaped from the image, not a user's field in A/m
    if m0 is not None:  # the given texture defines the configuration to keep
        objective.charge = topological_charge(m_start)

    lm_rule = StopRule(max_iter=max_iter, loss_tol=LM_LOSS_TOL if loss_tol is None else loss_tol)
    gradient_rule = StopRule(max_iter=max_iter, loss_tol=GRADIENT_LOSS_TOL if loss_tol is None else loss_tol)
    history: list = []
    theta = torch.zeros(len(names), dtype=grid.dtype, device=grid.device)
    iterations, converged, cancelled, message = 0, False, False, ""
    stage_values, used_bias = {}, None
    schedule = _stages(fixed_bias, beta, final_unbiased, max_iter)
    held_scale, inserted = None, 0  # the last bias scale at which the configuration held
    start_boost = 1.0  # factor on an optimized bias map's start (see MAX_START_BIAS_SCALE)
    while schedule:
        stage, scale, stage_iterations = schedule[0]
        objective.bias = None if fixed_bias is None else scale * fixed_bias
        if stage == "unbiased":
            beta = None
        objective.reset_best()
        lm_rule.max_iter = gradient_rule.max_iter = stage_iterations
        try:
            _enter_stage(objective, theta, beta)
            if held_scale is None:
                _check_start_pattern(objective)
            if beta is not None or optimizer != "levenberg-marquardt":
                method = "lbfgs" if optimizer == "levenberg-marquardt" else optimizer
                variables = [theta] + ([beta] if beta is not None else [])
                n, converged = gradient_descent(objective, variables, method, gradient_rule, stage, history,
                                                progress, adam_lr)
            else:
                n, converged = levenberg_marquardt(objective, theta, lm_rule, stage, history, progress)
            iterations += n
        except FitCancelled:
            cancelled = True
        except ConfigurationLost:
            if held_scale is None:
                if fixed_bias is not None and 2 * scale <= MAX_START_BIAS_SCALE:
                    schedule[0] = ("biased", 2 * scale, BIASED_STAGE_ITERATIONS)  # hold the start harder
                    continue
                if beta is not None and 2 * start_boost <= MAX_START_BIAS_SCALE:
                    beta, start_boost = 2 * beta, 2 * start_boost  # the optimized map, started stronger
                    continue
                raise ValueError(_lost_start_message(fixed_bias is not None or beta is not None,
                                                     max(scale, start_boost), bias_strength)) from None
            if fixed_bias is None or inserted >= MAX_BIAS_INSERTIONS:
                message = (f"the texture changes topology (a skyrmion collapses or appears) when the bias is lowered "
                           f"to {scale:g} of its strength; the result is the fit at {held_scale:g} of the bias")
                converged = False
                break
            schedule.insert(0, ("biased", (held_scale + scale) / 2, BIASED_STAGE_ITERATIONS))
            inserted += 1
            continue
        schedule.pop(0)
        held_scale = scale
        if objective.best_theta is None:  # cancelled before the first evaluation: report the start
            with torch.no_grad():
                objective.best_theta = theta
                objective.best_image = objective.image(objective.m_best, param.values(theta))
        theta = objective.best_theta
        if stage not in stage_values:  # the first (full-strength) biased stage, and the unbiased one
            stage_values[stage] = param.floats(theta)
            if stage == "biased":
                field = objective.bias_field(objective.best_theta_bias, param.values(theta))
                used_bias = field.detach().cpu().numpy()
        if cancelled:
            break
    if objective.best_theta is None:  # the last stage lost the configuration: restore the held state
        objective.bias = None if fixed_bias is None else held_scale * fixed_bias
        objective.reset_best()
        with torch.no_grad():
            objective(theta)
    result = _result(objective, init, stage_values, used_bias, history, converged, cancelled, iterations,
                     start_time)
    if result.converged and result.loss_history and result.loss_history[-1] > POOR_MISFIT:
        result.converged = False
        message = (f"ended at a poor fit: {result.loss_history[-1]:.0%} of the image unexplained (the texture or "
                   "the measurement settings do not match the image)")
    result.message = message or ("cancelled" if cancelled else "converged" if result.converged else
                                 f"stopped after {max_iter} iterations without converging")
    return result


def _lost_start_message(biased: bool, scale: float, strength: float) -> str:
    """Why the fit could not start: the first relaxation changed topology or found no equilibrium."""
    held = (f" even under a bias of {scale * strength:g} times the anisotropy field" if biased else "")
    advice = "start closer to the true values" + ("" if biased else ", or hold the texture with a bias (bias='target')")
    return (f"the starting magnetization, relaxed at the initial parameters{held}, changes topology or reaches "
            f"no equilibrium within {MAX_RELAX_ITERATIONS} iterations (a skyrmion collapses, appears or runs "
            f"out into a stripe): {advice}")


def _check_start_pattern(objective: Objective) -> None:
    """``ValueError`` unless the first relaxed state's image correlates with the target (after removing
    both means) better than ``MIN_START_CORRELATION``: amplitude errors (Ms, height 30 % off) are
    fine, a collapsed texture or an inverted image (side, sign, component) is not."""
    simulated = objective.best_image - objective.best_image.mean()
    target = objective.target - objective.target.mean()
    correlation = float((simulated * target).sum() / (simulated.norm() * target.norm()).clamp_min(1e-300))
    if correlation < MIN_START_CORRELATION:
        raise ValueError(
            f"the starting texture, relaxed at the initial parameters, does not look like the image (correlation "
            f"{correlation:+.2f}): check the measurement (height, side, component, the image's units and sign) "
            "or give a starting magnetization (m0) in the measured configuration")


def _enter_stage(objective: Objective, theta: torch.Tensor, beta) -> None:
    """Relax at the stage's bias from the best state; ``ConfigurationLost`` if its topology changed."""
    with torch.no_grad():
        objective(theta, beta)
    if objective.best_theta is None:
        raise ConfigurationLost


def _stages(fixed_bias, beta, final_unbiased: bool, max_iter: int) -> list:
    """``(name, bias scale, iterations)`` of each stage.

    A fixed bias is lowered step by step (``BIAS_SCHEDULE``, ``BIASED_STAGE_ITERATIONS`` each) before
    the unbiased stage: the parameters follow the texture continuously as the bias goes, instead of
    settling deep in a biased optimum (the misfit is nearly flat along a common scaling of A, Ku
    and D, where a strong bias drags the parameters far). Where lowering the bias collapses the
    texture, ``fit_parameters`` inserts a stage halfway (at most ``MAX_BIAS_INSERTIONS``). An
    optimized bias map is one stage.
    """
    if fixed_bias is None and beta is None:
        return [("unbiased", 0.0, max_iter)]
    if not final_unbiased:
        return [("biased", 1.0, max_iter)]
    if beta is not None:
        return [("biased", 1.0, max_iter), ("unbiased", 0.0, max_iter)]
    return [("biased", scale, BIASED_STAGE_ITERATIONS) for scale in BIAS_SCHEDULE] + [("unbiased", 0.0, max_iter)]


def _starting_state(m0, estimate, grid: Grid) -> torch.Tensor:
    """``m0`` checked and normalized, or the texture shaped from the image's estimate."""
    if m0 is None:
        m0 = texture_from_estimate(estimate, grid)
    m = grid.tensor(m0)
    if tuple(m.shape) != grid.vector_shape or not bool(torch.isfinite(m).all()):
        raise ValueError(f"m0 must be a finite (nz, ny, nx, 3) = {grid.vector_shape} array, got shape "
                         f"{tuple(m.shape)}")
    norm = torch.linalg.vector_norm(m, dim=-1, keepdim=True)
    if bool((norm == 0).any()):
        raise ValueError("m0 has zero vectors; expected unit vectors in every cell")
    return m / norm


def _bias(bias, estimate, grid: Grid, start: dict, strength: float):
    """``(fixed bias tensor or None, optimized map beta or None)`` for the ``bias`` option."""
    if isinstance(bias, str):
        if bias == "none":
            return None, None
        if not (strength >= 0 and math.isfinite(strength)):
            raise ValueError(f"bias_strength must be a finite number >= 0, got {strength!r}")
        if start["Ku"] <= 0:
            raise ValueError(f"bias='{bias}' needs Ku > 0 (its strength is in units of the anisotropy field)")
        shape = bias_shape(estimate)
        if bias == "target":
            return grid.tensor(bias_from_shape(shape, grid, strength, start["Ms"], start["Ku"])), None
        return None, grid.tensor(np.broadcast_to(strength * shape, grid.shape).copy())
    field = grid.tensor(bias)
    if tuple(field.shape) not in ((3,), grid.vector_shape) or not bool(torch.isfinite(field).all()):
        raise ValueError(f"a bias array must be a finite 3-vector or {grid.vector_shape} field in A/m")
    return field, None


def _result(objective: Objective, init: Material, stage_values: dict, used_bias, history: list, converged: bool,
            cancelled: bool, iterations: int, start_time: float) -> FitResult:
    param = objective.param
    names = param.names
    values = param.floats(objective.best_theta)
    stats = objective.settings.stats
    adjoint_before = stats.adjoint_time  # the uncertainty's own solves are counted apart
    t_unc = time.perf_counter()
    if cancelled:  # answer at once: no Jacobian solves after a cancel
        cov = np.full((len(names), len(names)), np.nan)
        r = (objective.best_image - objective.target).reshape(-1)
        sigma = float(torch.sqrt((r * r).sum() / max(r.numel() - len(names), 1)))
    else:
        cov, sigma = gauss_newton_covariance(objective)
    t_unc = time.perf_counter() - t_unc
    stats.adjoint_time = adjoint_before
    bias_shift = {}
    if len(stage_values) == 2:
        for name in names:
            before, after = stage_values["biased"][name], stage_values["unbiased"][name]
            bias_shift[name] = (after - before) / before if before != 0 else after - before
    total = time.perf_counter() - start_time
    timings = {"relax": stats.relax_time, "adjoint": stats.adjoint_time, "uncertainty": t_unc,
               "outer": total - stats.relax_time - stats.adjoint_time - t_unc, "total": total,
               "relax_iterations": stats.relax_iterations, "cg_iterations": stats.cg_iterations,
               "evaluations": objective.evaluations}
    return FitResult(
        material=init.replace(**{name: values[name] for name in MATERIAL_PARAMETERS}),
        values={name: values[name] for name in names},
        uncertainty={name: float(np.sqrt(cov[i, i])) if cov[i, i] >= 0 else math.nan for i, name in enumerate(names)},
        correlation=_correlation(cov),
        names=names,
        m=objective.m_best.cpu().numpy(),
        simulated=objective.best_image.cpu().numpy(),
        residual=(objective.best_image - objective.target).cpu().numpy(),
        loss_history=history,
        noise_sigma=sigma,
        bias_field=used_bias,
        bias_shift=bias_shift,
        measurement=with_plane_distance(objective.measurement, values["height"]),
        converged=converged and not cancelled,
        cancelled=cancelled,
        iterations=iterations,
        timings=timings,
    )
