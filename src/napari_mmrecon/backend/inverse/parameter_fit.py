"""Material parameters (Ms, A, Ku, D; optionally the height, an image offset and gain) from one image.

``fit_parameters`` minimizes the normalized misfit ``L = mean((S(m*(p), p) - target)^2) / mean(target^2)``
where ``m*(p)`` is the micromagnetic equilibrium at the trial parameters ``p`` (relaxed from the
best state so far, to a tight torque: ``equilibrium``, with implicit gradients) and ``S`` the
measurement's forward operator. The parameters, their bounds and the objective are the inverse
core over named parameters (``parameter_set``, ``fit_objective``, ``fit_state``,
``fit_optimizers``); this module decides what is fitted, in which stages, and what the result says.
The stage loop and the verdict on its result are ``staged_fit``'s, shared with ``fit_field_series``.

The final problem, whose stationary point a converged fit reaches, is the film **without bias
field**, with each skyrmion **held where the image has it** (``pinning``): its centre is a fitted
parameter and a pinning energy acts on its position only, not on its size or profile. Skyrmion
positions are soft modes: in an ideal film they are set by exponentially weak interactions, in a
measured one by defects. Left free, they make the misfit depend on how far each relaxation
followed them, and the fit walks along the nearly flat A-Ku-D direction (on the bundled lattice
image: A 16 % off from a start 30 % off, and 58 % off from a start 2 % off). Held, the pinned
equilibrium of the true material reproduces a true equilibrium exactly (no force where the
skyrmion already sits symmetric about its centre).

Stages (a schedule, ``Stage``): where the start does not hold its configuration without help
(skyrmions collapse or run out at parameters 20-30 % off), a bias field shaped from the image
holds it; the bias is lowered stage by stage (``BIAS_SCHEDULE``, a few Levenberg-Marquardt steps
each) and the final stage has none. Where the first relaxed state does not look like the image (the
bias holds the skyrmions' positions but not their sizes: at a negative wall energy they grow, which
an MFM image, weighing the walls, shows more than Hz), the start is relaxed again under a bias
along the image's estimated domains, background included. The start itself, relaxed without bias,
is a candidate result: a fit never returns anything worse, and a fit started at a stationary point
stays there.

Convergence is a test of the point reached (``fit_optimizers.stationarity``), and the misfit is
compared with the noise estimated from the image alone (``image_noise``). Uncertainties come from
the Gauss-Newton (Laplace) approximation ``Cov = sigma^2 (J^T J)^-1`` with ``sigma`` estimated from
the residual and the centres marginalized, and the remaining Gauss-Newton step added in quadrature
(zero at an optimum), so that they never claim more than is known.

The image's ``gain`` and ``offset`` (``S = gain * S0 + offset``, ``S0`` the measurement's own image)
stand for what a real instrument does not say: the phase scale of an MFM tip whose moment nobody
knows (or a sensor's calibration), and the image's zero. Fitting ``gain`` with the material is
how an effective tip is fitted *jointly with the film* (``forward.tip_calibration`` fits one from
a reference of known magnetization instead). What the image then identifies: it is linear in
``gain * Ms`` (and, for MFM, in the tip's moment or charge) for a given texture, so the image's
amplitude fixes only that product; ``Ms`` alone is identified through the texture's shape, where
it enters the equilibrium through the demagnetizing energy (``mu0 Ms^2 / 2`` against ``Ku``, ``A``,
``D``), which is weak for a thin film. Fit ``gain`` with ``A, Ku, D`` and a known ``Ms`` (or with
``Ms`` and expect a wide, strongly correlated uncertainty: the correlation matrix says so). The
height changes the image's spectrum (``exp(-k h)``), not only its amplitude, so ``gain`` and
``height`` are told apart by the image's shape.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from skimage.restoration import estimate_sigma

from ..physics.analysis import topological_charge
from .bias import bias_from_shape, bias_shape, domain_bias_shape, perpendicular_estimate, texture_from_estimate
from ..solvers.equilibrium import EquilibriumSettings
from .objective import MATERIAL_PARAMETERS, Evaluation, FitCancelled, Objective
from .optimizers import OPTIMIZERS, FitProgress
from .fit_state import FitState
from ..physics.grid import Grid, Material
from ..forward.measurement import check_measurement, measurement_from_dict, plane_distance
from ..runtime.records import SCHEMA_VERSION, from_record
from .parameter_set import Parameter, ParameterSet
from .pinning import SkyrmionPinning, find_skyrmions
from .staged_fit import (MAX_RELAX_ITERATIONS, Stage, Staged, StagedRun, assess, doubled, relax_first, result_fields,
                         run_stages, schedule, tightened)

FITTABLE = MATERIAL_PARAMETERS + ("height", "offset", "gain")
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
MAX_RELATIVE_STEP = 0.2
"""The largest relative change of a parameter in one outer iteration (a trust region: a first
Levenberg-Marquardt step from 30 % off once took A to 3.5 times its value, where every relaxation
ran to its iteration cap); skyrmion centres move by at most a cell."""
MIN_START_CORRELATION = 0.7
PIN_STIFFNESS = 16.0
"""Stiffness of the skyrmion pinning in units of ``2 A t`` (J, ``t`` the film thickness) per cell^2
of displacement: on the bundled lattice the pinned equilibrium of the true state then reproduces
its image to a misfit of 3e-11 (1e-9 at a stiffness of 1), and Newton relaxations take 2-3 steps."""
NOISE_FACTOR = 2.0
NOISE_FLOOR = 1e-4
"""A fit explains the image when the residual's RMS is at most ``NOISE_FACTOR`` times the noise
estimated from the image alone (``image_noise``), or below ``NOISE_FLOOR`` of the image's
standard deviation (a noise-free synthetic image has no noise to compare with)."""
__all__ = ["FitCancelled", "FitProgress", "FitResult", "check_physical", "check_target", "fit_parameters"]


def parameter_units(measurement) -> dict:
    """The unit of every fittable parameter (name -> str): SI for the material and the height, the
    image's units for ``offset``, none for ``gain``."""
    return {**{name: spec[2] for name, spec in PHYSICAL_RANGES.items()}, "offset": measurement.units, "gain": ""}


def parameter_table(names, values: dict, uncertainty: dict, units: dict) -> str:
    """Tab-separated table ``name value uncertainty unit`` of the fitted ``names`` (copyable into a
    spreadsheet)."""
    lines = ["parameter\tvalue\tuncertainty (1 sigma)\tunit"]
    for name in names:
        lines.append(f"{name}\t{values[name]:.6g}\t{uncertainty[name]:.3g}\t{units[name]}")
    return "\n".join(lines)


@dataclass
class FitResult:
    """Outcome of ``fit_parameters``.

    Attributes
    ----------
    material : Material
        Fitted material (unfitted parameters as given).
    values, uncertainty : dict name -> float
        Fitted values and 1-sigma uncertainties in SI units (``height`` in m, ``offset`` in the
        image's units, ``gain`` dimensionless): the Gauss-Newton uncertainties with the remaining
        Gauss-Newton step added in quadrature (zero at an optimum, the distance still to go short
        of one); NaN after a cancel.
    correlation : ndarray (n, n)
        Parameter correlation matrix, in the order of ``names``.
    m : ndarray (nz, ny, nx, 3)
        The relaxed magnetization at the fitted parameters (no bias; skyrmions held at
        ``centers``).
    simulated, residual : ndarray (ny, nx)
        Simulated image and ``simulated - target``.
    loss_history : list of float
        Best normalized misfit after each outer iteration (all stages).
    noise_sigma : float
        Noise level estimated from the residual (image units).
    image_noise : float
        Noise level estimated from the target image alone (wavelet median absolute deviation,
        image units); the misfit is judged against it.
    bias_field : ndarray (nz, ny, nx, 3) or None
        The full-strength bias field (A/m) of the first stage.
    bias_shift : dict name -> float
        Relative change of each fitted value from the full-strength biased stage to the result.
    centers : ndarray (N, 2)
        Centres ``(x, y)`` (m) where the result holds its skyrmions (empty: none held).
    measurement : the measurement at the fitted height.
    converged, cancelled : bool
        ``converged``: a stationary point of the final problem was reached and the misfit is
        consistent with the image's noise.
    stationarity : float
        The fraction of the residual's norm that a Gauss-Newton step would still explain (0 at a
        least-squares optimum; NaN if not computed).
    misfit : float
        The result's normalized misfit ``mean(residual^2) / mean(target^2)``.
    message : str
        How the fit ended, in words.
    iterations : int
        Outer iterations over all stages.
    timings : dict
        Seconds spent in ``relax``, ``adjoint`` (implicit-gradient and tangent solves),
        ``uncertainty``, ``outer`` (the rest) and ``total``, and work counts.
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
    image_noise: float = math.nan
    stationarity: float = math.nan
    centers: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    misfit: float = math.nan

    def table(self) -> str:
        """Tab-separated table ``name value uncertainty unit`` (copyable into a spreadsheet)."""
        return parameter_table(self.names, self.values, self.uncertainty, parameter_units(self.measurement))

    def to_dict(self) -> dict:
        """Record (``records`` schema) of the result without its arrays (``m``, ``simulated``, ``residual``,
        ``bias_field`` go to OVF / TIFF files): ``names``, ``values`` and ``uncertainty`` (1 sigma) in
        SI with their ``units``, ``correlation``, ``misfit``, ``stationarity``, ``image_noise``,
        ``noise_sigma``, ``centers`` (m), ``loss_history``, ``bias_shift``, how it ended
        (``converged``, ``cancelled``, ``message``, ``iterations``), ``timings``, and the
        ``material`` and ``measurement`` records."""
        units = parameter_units(self.measurement)
        return {
            "names": list(self.names), "values": {k: float(v) for k, v in self.values.items()},
            "uncertainty": {k: float(v) for k, v in self.uncertainty.items()},
            "units": {name: units[name] for name in self.names},
            "correlation": np.asarray(self.correlation, dtype=float).tolist(), "misfit": float(self.misfit),
            "stationarity": float(self.stationarity), "image_noise": float(self.image_noise),
            "noise_sigma": float(self.noise_sigma), "centers": np.asarray(self.centers, dtype=float).tolist(),
            "loss_history": [float(v) for v in self.loss_history],
            "bias_shift": {k: float(v) for k, v in self.bias_shift.items()}, "converged": bool(self.converged),
            "cancelled": bool(self.cancelled), "message": self.message, "iterations": int(self.iterations),
            "timings": {k: float(v) for k, v in self.timings.items()}, "material": self.material.to_dict(),
            "measurement": self.measurement.to_dict()}

    @classmethod
    def from_dict(cls, values, schema: int = SCHEMA_VERSION, m=None, simulated=None, residual=None,
                  bias_field=None) -> "FitResult":
        """The result of a ``to_dict`` record of version ``schema``, with its arrays given separately
        (e.g. read from the fit's OVF and TIFF files; empty arrays where not given)."""
        record = from_record("FitResult", values, ("names", "values", "material", "measurement"), schema)
        empty = np.zeros((0, 0))
        return cls(material=Material.from_dict(record["material"], schema), values=dict(record["values"]),
                   uncertainty=dict(record.get("uncertainty", {})),
                   correlation=np.asarray(record.get("correlation", []), dtype=float), names=tuple(record["names"]),
                   m=empty if m is None else m, simulated=empty if simulated is None else simulated,
                   residual=empty if residual is None else residual, loss_history=list(record.get("loss_history", [])),
                   noise_sigma=float(record.get("noise_sigma", math.nan)), bias_field=bias_field,
                   bias_shift=dict(record.get("bias_shift", {})),
                   measurement=measurement_from_dict(record["measurement"], schema),
                   converged=bool(record.get("converged", False)), cancelled=bool(record.get("cancelled", False)),
                   iterations=int(record.get("iterations", 0)), timings=dict(record.get("timings", {})),
                   message=record.get("message", ""), image_noise=float(record.get("image_noise", math.nan)),
                   stationarity=float(record.get("stationarity", math.nan)),
                   centers=np.asarray(record.get("centers", []), dtype=float).reshape(-1, 2),
                   misfit=float(record.get("misfit", math.nan)))


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
    """The target image as a float64 array ``(ny, nx)``; ``ValueError`` for complex values, a wrong
    shape, NaN/inf, a constant image, or a ``pixel_size (dy, dx)`` (m) that differs from the grid's
    cells."""
    if isinstance(target, torch.Tensor):
        target = target.detach().cpu().numpy()
    if np.iscomplexobj(target):
        raise ValueError("target must be a real image, got complex values (pass its real part or its magnitude)")
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


def _check_setup(grid: Grid, init: Material, measurement) -> None:
    """``ValueError`` unless ``grid`` is a Grid, ``init`` a Material and ``measurement`` a measurement."""
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a napari_mmrecon Grid, got {type(grid).__name__}")
    if not isinstance(init, Material):
        raise ValueError(f"init must be a napari_mmrecon Material, got {type(init).__name__}")
    check_measurement(measurement)


def _fitted_names(fit) -> tuple:
    """The fitted parameters' names; ``ValueError`` unless they are distinct names among ``FITTABLE``."""
    names = tuple(fit)
    if not names or any(n not in FITTABLE for n in names) or len(set(names)) != len(names):
        raise ValueError(f"fit must name distinct parameters among {FITTABLE}, got {fit!r}")
    return names


def _check_budget(max_iter, relax_tol) -> None:
    """``ValueError`` unless ``max_iter`` is a whole number >= 1 and ``relax_tol`` a finite number > 0."""
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a whole number >= 1, got {max_iter!r}")
    if not (math.isfinite(relax_tol) and relax_tol > 0):
        raise ValueError(f"relax_tol must be a finite number > 0, got {relax_tol!r}")


def _start_values(init: Material, measurement, names: tuple) -> dict:
    """The start: name -> float (SI) of the material, the measurement's ``height``, an ``offset`` of 0 and
    a ``gain`` of 1, checked (``check_physical``; a parameter fitted on a log scale must not start at 0)."""
    start = _scalar_material(init)
    start["height"] = plane_distance(measurement)
    start["offset"] = 0.0
    check_physical(start)
    start["gain"] = 1.0
    for name in names:
        if name in ("Ms", "A", "Ku", "D", "height") and start[name] == 0:
            raise ValueError(f"{name} must start from a non-zero value to be fitted (it is fitted on a log scale)")
    return start


def image_noise(image: np.ndarray) -> float:
    """The noise level of an image (its units) estimated from the image alone: the median absolute
    deviation of its finest wavelet coefficients (``skimage.restoration.estimate_sigma``)."""
    return float(estimate_sigma(np.asarray(image, dtype=float)))


def _start_correlation(evaluation: Evaluation, target: torch.Tensor) -> float:
    """Pearson correlation of an evaluation's image with the target (both means removed)."""
    simulated = evaluation.image - evaluation.image.mean()
    centred = target - target.mean()
    return float((simulated * centred).sum() / (simulated.norm() * centred.norm()).clamp_min(1e-300))


def _check_start_pattern(evaluation: Evaluation, target: torch.Tensor) -> None:
    """``ValueError`` unless the first relaxed state's image correlates with the target (after removing
    both means) better than ``MIN_START_CORRELATION``: amplitude errors (Ms, height 30 % off) are
    fine, a collapsed texture or an image of another measurement (side, component) is not. An
    image-shaped start is checked once more under ``bias.domain_bias_shape`` before it is refused."""
    correlation = _start_correlation(evaluation, target)
    if correlation < MIN_START_CORRELATION:
        raise ValueError(
            f"the starting texture, relaxed at the initial parameters, does not look like the image (correlation "
            f"{correlation:+.2f}): check the measurement (height, side, component, the image's units and sign) "
            "or give a starting magnetization (m0) in the measured configuration")


def _starting_state(m0, estimate, grid: Grid) -> torch.Tensor:
    """``m0`` checked and normalized, or the texture shaped from the image's estimate."""
    if m0 is None:
        m0 = texture_from_estimate(estimate, grid)
    m = grid.tensor(m0)
    if tuple(m.shape) != grid.vector_shape:
        raise ValueError(f"m0 must be a (nz, ny, nx, 3) = {grid.vector_shape} array, got shape {tuple(m.shape)}")
    if not bool(torch.isfinite(m).all()):
        raise ValueError(f"m0 contains {int((~torch.isfinite(m)).sum())} NaN or inf values")
    norm = torch.linalg.vector_norm(m, dim=-1, keepdim=True)
    if bool((norm == 0).any()):
        raise ValueError("m0 has zero vectors; expected unit vectors in every cell")
    return m / norm


def _bias(bias, estimate, grid: Grid, start: dict, strength: float, shape_of=bias_shape):
    """``(fixed bias tensor or None, optimized map's start beta (nz, ny, nx) or None)`` for ``bias``; an
    image-shaped one has the shape ``shape_of(estimate)``."""
    if isinstance(bias, str):
        if bias == "none":
            return None, None
        if not (strength >= 0 and math.isfinite(strength)):
            raise ValueError(f"bias_strength must be a finite number >= 0, got {strength!r}")
        if start["Ku"] <= 0:
            raise ValueError(f"bias='{bias}' needs Ku > 0 (its strength is in units of the anisotropy field)")
        shape = shape_of(estimate)
        if bias == "target":
            return grid.tensor(bias_from_shape(shape, grid, strength, start["Ms"], start["Ku"])), None
        return None, grid.tensor(np.broadcast_to(strength * shape, grid.shape).copy())
    field_ = grid.tensor(bias)
    if tuple(field_.shape) not in ((3,), grid.vector_shape) or not bool(torch.isfinite(field_).all()):
        raise ValueError(f"a bias array must be a finite 3-vector or {grid.vector_shape} field in A/m")
    return field_.expand(grid.vector_shape).clone(), None


def _parameters(start: dict, names: tuple, grid: Grid, offset_scale: float, pinning) -> ParameterSet:
    """The fitted parameters (log for Ms, A, Ku, D, height, gain; linear offset and centres) and the fixed rest.

    The gain is on the log scale like the material: it is a positive factor whose size is known
    only roughly, so its natural step is relative (a linear scale would need one guessed in
    advance), and a sign flip (the wrong side or tip orientation) is a configuration error that
    the start's correlation test reports rather than something to fit. It stays within a factor
    ``exp(LOG_RANGE)`` = 10 of 1: give the tip's moment within that factor."""
    tensor = grid.tensor
    specs = [Parameter(name, tensor(start[name]), "linear" if name == "offset" else "log",
                       offset_scale if name == "offset" else 1.0, MAX_RELATIVE_STEP) for name in names]
    if pinning is not None:  # in cells
        specs.append(Parameter("centers", pinning.centers.reshape(-1), "linear", min(grid.dx, grid.dy), 1.0))
    fixed = {name: tensor(value) for name, value in start.items() if name not in names}
    return ParameterSet(specs, fixed)


def _with_map(parameters: ParameterSet, beta: torch.Tensor) -> ParameterSet:
    """``parameters`` plus an optimized z bias map ``beta`` (in units of the start's H_K), last."""
    return ParameterSet(parameters.parameters + (Parameter("bias", beta, "linear", 1.0),), parameters.fixed)


def _explains(misfit_rms: float, noise: float, image_std: float) -> bool:
    """Whether a residual RMS is consistent with the image's noise (see ``NOISE_FACTOR``)."""
    return misfit_rms <= max(NOISE_FACTOR * noise, NOISE_FLOOR * image_std)


def fit_parameters(target, grid: Grid, measurement, init: Material, fit=MATERIAL_PARAMETERS, m0=None,
                   bias=DEFAULT_BIAS, bias_strength: float = DEFAULT_BIAS_STRENGTH,
                   bias_penalty: tuple = (1e-4, 1e-3), final_unbiased: bool = True,
                   optimizer: str = "levenberg-marquardt", max_iter: int = 100, relax_tol: float = 1e-8,
                   adam_lr: float = 0.02, external_field=None, pixel_size=None, gradient: str = "implicit",
                   unrolled_steps: int = 200, pin_skyrmions: bool = True, progress=None,
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
        Any of ``"Ms", "A", "Ku", "D", "height", "offset", "gain"`` (height: the measurement's
        height or lift height; offset: an additive constant of the image, in its units; gain: a
        multiplicative scale of the image, starting at 1, e.g. an MFM tip's unknown phase scale).
        The image identifies ``gain * Ms`` (see the module's description): fit ``gain`` with a
        known ``Ms``, or expect ``Ms`` and ``gain`` strongly correlated.
    m0 : array (nz, ny, nx, 3), optional
        Starting magnetization in the measured configuration (e.g. a reconstruction); its skyrmion
        number is the one the fit keeps. Default: a texture shaped from the target
        (``bias.texture_from_estimate``).
    bias : "none", "target", "optimize", or array
        "target": ``H_b = bias_strength * H_K * b(x, y) z^`` shaped from the image
        (``bias.bias_shape``) holds the configuration while the parameters are far off; "optimize":
        a z bias map optimized jointly with L-BFGS (started from "target", penalized by
        ``bias_penalty = (w_size, w_smooth)``); an array: a fixed bias field H (A/m), 3-vector or
        ``(nz, ny, nx, 3)``. With any bias, the last stage has none when ``final_unbiased`` (the
        default), so the result is a zero-bias equilibrium. Where an image-shaped bias does not hold
        the start so that it looks like the image, the start is relaxed again under the bias along
        the estimated domains, background included (``bias.domain_bias_shape``).
    bias_strength : float
        In units of the anisotropy field ``2 Ku / (mu0 Ms)`` of ``init``.
    optimizer : "levenberg-marquardt", "lbfgs" or "adam"
    max_iter : int
        Outer iterations in all, over all stages (a hard cap).
    relax_tol : float
        Torque tolerance of the final inner relaxations (``max |m x H| / Ms``).
    external_field : optional
        Applied field H (A/m), fixed.
    pixel_size : (dy, dx), optional
        The image's pixel size (m), checked against the grid.
    gradient : "implicit" or "unrolled"
        Gradients for L-BFGS / Adam: implicit differentiation at the equilibrium (default), or
        backpropagation through ``unrolled_steps`` descent steps (checks only).
    pin_skyrmions : bool
        Hold each skyrmion of the start where the image has it (``pinning``; its centre fitted
        with Levenberg-Marquardt). Without, skyrmion positions relax freely (an ideal film).
    progress : callable(FitProgress), optional
        Called after every outer iteration.
    cancel : threading.Event or callable, optional
        Stops the fit; the best state so far is returned (``cancelled`` set).

    Returns
    -------
    FitResult
        ``converged`` only at a stationary point of the final problem with a misfit consistent with
        the image's noise; ``message`` says in words how the fit ended.
    """
    start_time = time.perf_counter()
    _check_setup(grid, init, measurement)
    image = check_target(target, grid, pixel_size)
    names = _fitted_names(fit)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if gradient not in ("implicit", "unrolled"):
        raise ValueError(f"gradient must be 'implicit' or 'unrolled', got {gradient!r}")
    if isinstance(bias, str) and bias not in BIAS_OPTIONS:
        raise ValueError(f"bias must be one of {BIAS_OPTIONS} or a field array, got {bias!r}")
    _check_budget(max_iter, relax_tol)
    start = _start_values(init, measurement, names)
    settings = EquilibriumSettings(tol=relax_tol, max_iter=MAX_RELAX_ITERATIONS, external_field=external_field,
                                   Ku_axis=init.Ku_axis, cancel=cancel)
    estimate = None
    if (isinstance(bias, str) and bias != "none") or m0 is None:
        estimate = perpendicular_estimate(image, grid, measurement, start["Ms"])
    m_start = _starting_state(m0, estimate, grid)
    fixed_bias, beta = _bias(bias, estimate, grid, start, bias_strength)
    target_t = grid.tensor(image)
    follow = isinstance(bias, str)  # shaped from the image, not a user's field in A/m
    pinning = None

    def objective_with(params, shape):
        return Objective(grid, measurement, target_t, params, settings, pinning, shape, follow, bias_penalty,
                         gradient, unrolled_steps)

    start_charge = topological_charge(m_start) if m0 is not None else None
    state = FitState(warm=m_start, charge=start_charge, relax_tol=relax_tol)
    run = StagedRun(None, None, state, optimizer, max_iter, progress, adam_lr)
    boost = 1.0  # the first stage's bias factor (doubled while the start loses its configuration)

    pins = pin_skyrmions and optimizer == "levenberg-marquardt"  # centres are fitted by their Jacobian

    def hold(m) -> ParameterSet:
        """Pin the skyrmions of ``m`` where they are (none for ``m = None``), and set the objectives."""
        nonlocal pinning
        found = find_skyrmions(m, grid) if m is not None and pins else None
        if found is not None and len(found):
            pinning = SkyrmionPinning(grid, found, PIN_STIFFNESS * 2 * start["A"] * grid.nz * grid.dz).centered_on(m)
        params = _parameters(start, names, grid, float(np.std(image)), pinning)
        run.objective = objective_with(params, fixed_bias)
        run.map_objective = None if beta is None else objective_with(_with_map(params, boost * beta), None)
        return params

    # a given texture defines the configuration: its skyrmions are held from the start; a texture
    # shaped from the image is relaxed first (under the bias) and its skyrmions held where they settle
    parameters = hold(m_start if m0 is not None else None)
    biased = fixed_bias is not None or beta is not None
    theta = parameters.zeros(target_t)
    # a start shaped from the image has no reliable skyrmion number yet: its first relaxation must
    # keep every skyrmion the image shows
    expected = len(find_skyrmions(m_start, grid)) if m0 is None else None

    def keeps(first: Evaluation) -> bool:
        return len(find_skyrmions(first.m, grid)) >= expected

    def boosted(stages: list, factor: float) -> list:
        """The first stage's bias at ``factor`` times its own: the optimized map's start, or every
        biased stage of the fixed bias."""
        if beta is None:
            return doubled(stages)
        run.map_objective = objective_with(_with_map(parameters, factor * beta), None)
        return stages

    def first_relaxation() -> tuple:
        """``(first evaluation, stages, bias factor)`` of the schedule of the current bias."""
        return relax_first(run, schedule(biased, beta is not None, final_unbiased, max_iter), theta, m_start,
                           None if expected is None else keeps, biased, bias_strength, boosted)

    def begin() -> tuple:
        """The first stage entered, its start checked against the image and its skyrmions held."""
        nonlocal fixed_bias, beta, boost, parameters, theta
        first, stages, boost = first_relaxation()
        if isinstance(bias, str) and biased and _start_correlation(first, target_t) < MIN_START_CORRELATION:
            # the image-shaped bias held the domains where they are but not their size (their walls
            # ran out or in): start again under a bias along the estimated domains, background included
            fixed_bias, beta = _bias(bias, estimate, grid, start, bias_strength, domain_bias_shape)
            state.charge, state.warm, boost = start_charge, m_start, 1.0
            parameters = hold(m_start if m0 is not None else None)
            unheld = first
            try:
                first, stages, boost = first_relaxation()
            except ValueError:  # not even held there: refused for what the first start showed
                _check_start_pattern(unheld, target_t)
                raise
        _check_start_pattern(first, target_t)
        if m0 is None and pins:
            parameters = hold(first.m)
            theta = parameters.zeros(target_t)
            first = run.enter(stages[0], theta)
        return first, stages, theta

    # a fixed bias (an array, or "target" shaped either way) can be lowered in smaller steps
    staged = run_stages(run, begin, m_start, lambda e: _explains(*_rms_and_noise(e, run.objective, image)),
                        fixed_bias is not None, final_unbiased)
    return _result(run, image, init, staged, start_time)


def _rms_and_noise(evaluation: Evaluation, objective: Objective, image: np.ndarray) -> tuple:
    """``(residual RMS, image noise, image std)`` in image units."""
    rms = math.sqrt(max(evaluation.misfit, 0.0) * objective.power)
    return rms, image_noise(image), float(np.std(image))


def _covariance(test, evaluation: Evaluation, objective: Objective):
    """Covariance of the natural steps (relative for log parameters, ``scale`` units for linear)
    from ``sigma^2 (J^T J)^+`` with ``sigma`` from the residual."""
    rate = objective.parameters.rate(evaluation.theta)
    J = test.J / rate
    r = objective.residual(evaluation)
    dof = max(r.numel() - J.shape[1], 1)
    return (float(r @ r) / dof) * torch.linalg.pinv(J.T @ J, hermitian=True), test.delta * rate


def _bias_field(run: StagedRun, scale: float, theta: torch.Tensor):
    """The bias field (A/m, ``(nz, ny, nx, 3)`` tensor, or None) of a biased stage at ``scale``: the
    fixed bias, or the optimized map at ``theta``."""
    objective = run.objective_for(Stage("biased", scale, 0))
    return objective.bias_field(objective.parameters.values(theta), scale)


def _result(run: StagedRun, image: np.ndarray, init: Material, staged: Staged, start_time: float) -> FitResult:
    """The result: the best unbiased candidate (the start or the final stage's best; else the last
    biased state), tested for stationarity, with uncertainties and the message."""
    objective, state = run.objective, run.state
    settings = objective.settings
    chosen, start_candidate, final = staged.chosen(), staged.start, staged.final
    notes = [staged.message] if staged.message else []
    if final is not None and start_candidate is not None and chosen is start_candidate and final is not chosen:
        notes.append(f"the fit ended at a higher misfit ({final.misfit:.3g}) than its start "
                     f"({start_candidate.misfit:.3g}); the result is the start")
    names = tuple(n for n in objective.parameters.names if n != "centers")
    if chosen.bias_scale != 0 and not staged.cancelled:  # a biased result: its uncertainty at its bias
        field_ = _bias_field(run, chosen.bias_scale, chosen.theta)
        objective = Objective(objective.grid, objective.measurement, objective.target, objective.parameters,
                              settings, objective.pinning, field_.detach(), False)
        chosen = objective.evaluate(chosen.theta[:objective.parameters.size], chosen.m, 1.0, chosen.relax_tol)
    elif not staged.cancelled:
        chosen = tightened(objective, state, chosen)
    rms, noise, spread = _rms_and_noise(chosen, objective, image)
    values = objective.parameters.floats(chosen.theta)
    stats = settings.stats
    relax_time, adjoint_time = stats.relax_time, stats.adjoint_time  # the uncertainty's own work is apart
    t_unc = time.perf_counter()
    poor = (f"poor fit: the residual (RMS {rms:.3g}) is {rms / max(noise, 1e-300):.3g} times the noise estimated from "
            f"the image ({noise:.3g}); the fitted texture does not explain the image (check the measurement "
            "settings, the starting texture and the material model)")
    verdict = assess(objective, chosen, names, values, _covariance, staged, run.budget, _explains(rms, noise, spread),
                     poor, f"the misfit at the noise level (residual RMS {rms:.3g}, image noise {noise:.3g})", notes)
    t_unc = time.perf_counter() - t_unc
    residual = (chosen.image - objective.target).reshape(-1)
    sigma = float(torch.sqrt((residual @ residual) / max(residual.numel() - objective.parameters.size, 1)))
    stage_values = {name: dict(evaluation.values) for name, (_, evaluation) in staged.ends.items()}
    bias_shift = {}
    if "biased" in stage_values and "unbiased" in stage_values:
        for name in names:
            before, after = stage_values["biased"][name], values[name]
            bias_shift[name] = (after - before) / before if before != 0 else after - before
    used_bias = None
    if "biased" in staged.ends:  # the first biased stage's field
        stage, evaluation = staged.ends["biased"]
        field_ = _bias_field(run, stage.scale, evaluation.theta)
        used_bias = None if field_ is None else field_.detach().cpu().numpy()
    fields = result_fields(run, staged, verdict, init, names, values, objective.measurement,
                           (relax_time, adjoint_time, t_unc), start_time)
    fields["timings"].update(relax_iterations=stats.relax_iterations, newton_steps=stats.newton_steps,
                             cg_iterations=stats.cg_iterations + stats.newton_cg_iterations,
                             evaluations=state.evaluations)
    pinning = objective.pinning_at(objective.parameters.values(chosen.theta))
    return FitResult(
        **fields,
        m=chosen.m.cpu().numpy(),
        simulated=chosen.image.cpu().numpy(),
        residual=(chosen.image - objective.target).cpu().numpy(),
        noise_sigma=sigma,
        bias_field=used_bias,
        bias_shift=bias_shift,
        image_noise=noise,
        centers=np.zeros((0, 2)) if pinning is None else pinning.centers.cpu().numpy(),
        misfit=chosen.misfit,
    )
