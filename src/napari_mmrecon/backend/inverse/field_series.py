"""Material parameters (Ms, A, Ku, D; optionally height, offset) from a field series: several images of
one film at different applied fields, fitted jointly.

``fit_field_series`` fits one shared material to ``n`` images, each the image of its own equilibrium
at its own applied field: the loss is the sum of the per-image normalized misfits
``L = sum_i mean((S(m_i*(p)) - target_i)^2) / mean(target_i^2)``, each ``m_i*`` relaxed at the
trial parameters under field ``H_i`` (implicit gradients, as in ``fit_parameters``). A single image
leaves a shallow valley along a common scaling of A, Ku and D (a skyrmion's size barely changes
along it); how the size follows the applied field depends on them in another combination (the
Zeeman energy scales with Ms H, not with A, Ku or D), so a series narrows that valley.

The machinery is ``fit_parameters``'s, its stage loop shared (``staged_fit``): the same parameters
and bounds, skyrmions held where each image has them (each image's centres are its own
parameters), the bias shaped from each image and lowered stage by stage to none,
Levenberg-Marquardt with tangent solves, the stationarity test, and uncertainties from the joint
Gauss-Newton Hessian with the centres marginalized. ``SeriesObjective`` presents the ``n``
single-image objectives to the optimizer and to the stage loop as one. Each image has its own noise;
the covariance is the sandwich ``A^+ (sum_i s_i^2 J_i^T J_i) A^+`` (``A = J^T J`` of the normalized
residual actually minimized, ``s_i`` image i's residual level), which is ``s^2 A^+`` when all images
are alike.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..physics.analysis import topological_charge
from ..physics.grid import Grid, Material
from ..solvers.equilibrium import EquilibriumSettings
from .bias import perpendicular_estimate
from .fit_state import FitState
from .objective import MATERIAL_PARAMETERS, Evaluation, Objective
from .parameter_fit import (DEFAULT_BIAS, DEFAULT_BIAS_STRENGTH, PIN_STIFFNESS, _bias, _check_budget,
                            _check_setup, _check_start_pattern, _explains, _fitted_names, _parameters, _start_values,
                            _starting_state, check_target, image_noise, parameter_table,
                            parameter_units)
from .parameter_set import ParameterSet
from .pinning import SkyrmionPinning, find_skyrmions
from .staged_fit import (MAX_RELAX_ITERATIONS, Staged, StagedRun, assess, relax_first, result_fields, run_stages,
                         schedule, tightened)

SERIES_BIAS_OPTIONS = ("none", "target")
__all__ = ["FieldSeriesResult", "SeriesObjective", "fit_field_series"]


@dataclass
class FieldSeriesResult:
    """Outcome of ``fit_field_series`` (``n`` images).

    Attributes
    ----------
    material : Material
        The shared fitted material (unfitted parameters as given).
    values, uncertainty : dict name -> float
        Fitted values and 1-sigma uncertainties (SI; ``height`` in m, ``offset`` in image units) from
        the joint Gauss-Newton Hessian, the remaining Gauss-Newton step added in quadrature (as
        ``FitResult``); NaN after a cancel.
    correlation : ndarray (k, k)
        Parameter correlation matrix, in the order of ``names``.
    names : tuple of str
    fields : ndarray (n, 3)
        The applied field H of each image (A/m).
    m : ndarray (n, nz, ny, nx, 3)
        The relaxed texture of each image at the fitted material (no bias; skyrmions held at
        ``centers[i]``).
    simulated, residual : ndarray (n, ny, nx)
        Simulated images and ``simulated - target``.
    misfits : ndarray (n,)
        Each image's normalized misfit ``mean(residual_i^2) / mean(target_i^2)``; ``misfit`` their sum
        (the loss).
    loss_history : list of float
        Best loss after each outer iteration (all stages).
    noise_sigma, image_noise : ndarray (n,)
        Each image's noise (image units): from its residual, and from the image alone
        (``parameter_fit.image_noise``).
    radii : list of n ndarrays (k_i,)
        Radii (m, ``sqrt(area / pi)`` of the reversed region, ``pinning.find_skyrmions``) of the
        skyrmions in each relaxed texture.
    centers : list of n ndarrays (k_i, 2)
        Where each image's skyrmions are held, ``(x, y)`` (m).
    measurement : the measurement at the fitted height.
    converged, cancelled : bool
        ``converged``: a stationary point of the unbiased joint problem with every image's misfit
        consistent with its noise.
    stationarity : float
        Fraction of the residual's norm a Gauss-Newton step would still explain.
    message : str
    iterations : int
    timings : dict
        Seconds in ``relax``, ``adjoint``, ``uncertainty``, ``outer``, ``total``.
    """

    material: Material
    values: dict
    uncertainty: dict
    correlation: np.ndarray
    names: tuple
    fields: np.ndarray
    m: np.ndarray
    simulated: np.ndarray
    residual: np.ndarray
    misfits: np.ndarray
    loss_history: list
    noise_sigma: np.ndarray
    image_noise: np.ndarray
    radii: list
    centers: list
    measurement: object
    converged: bool
    cancelled: bool
    iterations: int
    stationarity: float = math.nan
    message: str = ""
    timings: dict = field(default_factory=dict)

    @property
    def misfit(self) -> float:
        return float(np.sum(self.misfits))

    def table(self) -> str:
        """Tab-separated table ``name value uncertainty unit``."""
        return parameter_table(self.names, self.values, self.uncertainty, parameter_units(self.measurement))

    def to_dict(self) -> dict:
        """Record of the result without its arrays ``m``, ``simulated``, ``residual``: ``names``,
        ``values``, ``uncertainty`` (1 sigma) and their ``units``, ``correlation``, ``fields`` (A/m),
        per image ``misfits``, ``noise_sigma``, ``image_noise``, ``radii`` and ``centers`` (m), the
        ``loss_history``, how it ended, ``timings``, and the ``material`` and ``measurement`` records."""
        units = parameter_units(self.measurement)

        def floats(array):
            return np.asarray(array, dtype=float).tolist()

        return {
            "names": list(self.names), "values": {k: float(v) for k, v in self.values.items()},
            "uncertainty": {k: float(v) for k, v in self.uncertainty.items()},
            "units": {name: units[name] for name in self.names}, "correlation": floats(self.correlation),
            "fields": floats(self.fields), "misfits": floats(self.misfits), "misfit": self.misfit,
            "noise_sigma": floats(self.noise_sigma), "image_noise": floats(self.image_noise),
            "radii": [floats(r) for r in self.radii], "centers": [floats(c) for c in self.centers],
            "loss_history": [float(v) for v in self.loss_history], "stationarity": float(self.stationarity),
            "converged": bool(self.converged), "cancelled": bool(self.cancelled), "message": self.message,
            "iterations": int(self.iterations), "timings": {k: float(v) for k, v in self.timings.items()},
            "material": self.material.to_dict(), "measurement": self.measurement.to_dict()}


class SeriesObjective:
    """``n`` single-image ``Objective`` s over one joint ``ParameterSet``, presented to the optimizers
    (``levenberg_marquardt``, ``fit_state``) as one objective.

    The joint parameters are the shared ones (the first ``shared`` elements of ``theta``) followed
    by each image's ``"centers i"``; image ``i``'s objective sees ``theta[index[i]]`` (the shared
    ones, then its own centres, named ``"centers"``). An evaluation's ``m`` is ``(n, nz, ny, nx, 3)``,
    its ``image`` ``(n, ny, nx)``, its ``charge`` an ``(n,)`` array, its loss the sum of the images'.
    """

    def __init__(self, objectives: list, parameters: ParameterSet, shared: int):
        self.objectives = list(objectives)
        self.parameters = parameters
        self.settings = self.objectives[0].settings
        self.index = []
        for i in range(len(self.objectives)):
            own = parameters.slices.get(f"centers {i}")
            extra = [] if own is None else list(range(own.start, own.stop))
            self.index.append(torch.tensor(list(range(shared)) + extra, dtype=torch.long))

    def images(self, evaluation: Evaluation) -> list:
        """Image ``i``'s ``Evaluation`` within a joint one."""
        return [dataclasses.replace(evaluation, theta=evaluation.theta[index], m=evaluation.m[i],
                                    image=evaluation.image[i]) for i, index in enumerate(self.index)]

    def evaluate(self, theta: torch.Tensor, m_start: torch.Tensor, bias_scale: float, relax_tol: float) -> Evaluation:
        """Every image relaxed from its ``m_start[i]`` at the joint ``theta``; raises ``FitCancelled``."""
        parts = [o.evaluate(theta[index], m_start[i], bias_scale, relax_tol)
                 for i, (o, index) in enumerate(zip(self.objectives, self.index))]
        return Evaluation(theta.detach().clone(), bias_scale, torch.stack([e.m for e in parts]),
                          torch.stack([e.image for e in parts]), sum(e.loss for e in parts),
                          sum(e.misfit for e in parts), all(e.converged for e in parts),
                          np.array([e.charge for e in parts]), relax_tol, self.parameters.floats(theta))

    def residual(self, evaluation: Evaluation) -> torch.Tensor:
        """The images' normalized residuals, concatenated ``(n ny nx,)``."""
        return torch.cat([o.residual(e) for o, e in zip(self.objectives, self.images(evaluation))])

    def jacobian(self, evaluation: Evaluation, guess=None, cg_tol: float | None = None,
                 cg_max_iter: int | None = None):
        """``d residual / d theta`` ``(n ny nx, size)`` (each image's block in its rows, its own centres'
        columns zero elsewhere), and the tangent responses ``(n_material, n, nz, ny, nx, 3)``."""
        blocks, tangents = [], []
        for i, (o, e) in enumerate(zip(self.objectives, self.images(evaluation))):
            J, tangent = o.jacobian(e, None if guess is None else guess[:, i], cg_tol, cg_max_iter)
            block = J.new_zeros((J.shape[0], self.parameters.size))
            block[:, self.index[i]] = J
            blocks.append(block)
            tangents.append(tangent)
        return torch.cat(blocks), None if tangents[0] is None else torch.stack(tangents, dim=1)

    def rows(self) -> list:
        """The residual's rows of each image, as slices."""
        sizes = [o.target.numel() for o in self.objectives]
        ends = np.cumsum(sizes)
        return [slice(int(end - size), int(end)) for size, end in zip(sizes, ends)]


# --------------------------------------------------------------------------- input checks


def check_series(targets, fields, grid: Grid, pixel_size=None) -> tuple[np.ndarray, np.ndarray]:
    """The images ``(n, ny, nx)`` (float64) and applied fields ``(n, 3)`` (A/m) of a series;
    ``ValueError`` naming the image or field at fault (as ``check_target``), for a number of fields
    that differs from the number of images, and for fewer than one image."""
    if isinstance(targets, torch.Tensor):
        targets = targets.detach().cpu().numpy()
    if isinstance(targets, np.ndarray) and targets.ndim == 2:
        raise ValueError("targets must be a stack (n, ny, nx) or a list of images; for one image use fit_parameters")
    targets = list(targets)
    if not targets:
        raise ValueError("targets is empty: give at least one image")
    images = []
    for i, target in enumerate(targets):
        try:
            images.append(check_target(target, grid, pixel_size))
        except ValueError as exc:
            raise ValueError(f"image {i}: {exc}") from None
    if isinstance(fields, torch.Tensor):
        fields = fields.detach().cpu().numpy()
    try:
        values = np.asarray(fields, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("fields must be numbers: one H_z (A/m) or one 3-vector H (A/m) per image") from None
    if values.ndim == 1:
        values = np.stack([np.zeros_like(values), np.zeros_like(values), values], axis=-1)
    if values.ndim != 2 or values.shape[1] != 3:
        raise ValueError(f"fields must be n values H_z or an (n, 3) array of H (A/m), got shape {values.shape}")
    if len(values) != len(images):
        raise ValueError(f"{len(values)} fields for {len(images)} images: give one applied field per image")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"fields contain NaN or inf (image {int(np.flatnonzero(~np.isfinite(values).all(1))[0])})")
    return np.stack(images), values


def _given_starts(m0, n: int, grid: Grid):
    """The starting textures ``(n, nz, ny, nx, 3)`` from ``m0`` (one texture for all images, or one
    per image), checked and normalized; None for ``m0 = None``."""
    if m0 is None:
        return None
    given = list(m0) if isinstance(m0, (list, tuple)) else None
    if given is None:
        array = m0.detach().cpu().numpy() if isinstance(m0, torch.Tensor) else np.asarray(m0, dtype=float)
        given = list(array) if array.ndim == 5 else [array] * n
    if len(given) != n:
        raise ValueError(f"m0 holds {len(given)} textures for {n} images: give one texture, or one per image")
    out = []
    for i, m in enumerate(given):
        try:
            out.append(_starting_state(m, None, grid))
        except ValueError as exc:
            raise ValueError(f"m0 of image {i}: {exc}") from None
    return torch.stack(out)


# --------------------------------------------------------------------------- the fit


def fit_field_series(targets, grid: Grid, measurement, fields, init: Material, fit=MATERIAL_PARAMETERS, m0=None,
                     bias=DEFAULT_BIAS, bias_strength: float = DEFAULT_BIAS_STRENGTH, max_iter: int = 100,
                     relax_tol: float = 1e-8, pixel_size=None, pin_skyrmions: bool = True, progress=None,
                     cancel=None) -> FieldSeriesResult:
    """Fit one material to several images of one film, each taken at its own applied field.

    Parameters
    ----------
    targets : array (n, ny, nx) or a list of n arrays (ny, nx)
        The images on the grid's cells, in the measurement's units (A/m, Hz or degrees).
    grid : Grid
    measurement : StrayFieldMeasurement or MFMMeasurement
        What each image is (the same for all: component or tip, side, height).
    fields : n numbers or array (n, 3)
        The applied field of each image (A/m): a number is the perpendicular field H_z, a 3-vector
        is H.
    init : Material
        Starting values (scalars for the fitted parameters), shared by all images.
    fit : tuple of str
        Shared parameters among ``"Ms", "A", "Ku", "D", "height", "offset", "gain"`` (gain: the images' common
        unknown scale, as in ``fit_parameters``).
    m0 : array (nz, ny, nx, 3), array (n, nz, ny, nx, 3) or list, optional
        Starting texture(s) in each image's configuration; default: each shaped from its image
        (``bias.texture_from_estimate``), as ``fit_parameters``.
    bias : "none" or "target"
        "target": each image holds its configuration under a bias shaped from it
        (``bias_strength`` times the anisotropy field of ``init``), lowered stage by stage to none.
    max_iter : int
        Outer Levenberg-Marquardt iterations over all stages (a hard cap).
    relax_tol : float
        Torque tolerance of the final relaxations (``max |m x H| / Ms``).
    pixel_size : (dy, dx), optional
        The images' pixel size (m), checked against the grid.
    pin_skyrmions : bool
        Hold each image's skyrmions where the image has them (their centres fitted).
    progress : callable(FitProgress), optional
        Called after every outer iteration; its ``m`` is ``(n, nz, ny, nx, 3)``, ``simulated``
        ``(n, ny, nx)``.
    cancel : threading.Event or callable, optional
        Stops the fit; the best state so far is returned (``cancelled`` set).

    Returns
    -------
    FieldSeriesResult
    """
    start_time = time.perf_counter()
    _check_setup(grid, init, measurement)
    images, applied = check_series(targets, fields, grid, pixel_size)
    names = _fitted_names(fit)
    if not (isinstance(bias, str) and bias in SERIES_BIAS_OPTIONS):
        raise ValueError(f"bias must be one of {SERIES_BIAS_OPTIONS} for a field series, got {bias!r}")
    _check_budget(max_iter, relax_tol)
    start = _start_values(init, measurement, names)
    n = len(images)
    settings = EquilibriumSettings(tol=relax_tol, max_iter=MAX_RELAX_ITERATIONS, Ku_axis=init.Ku_axis, cancel=cancel)
    image_settings = [dataclasses.replace(settings, external_field=tuple(float(v) for v in h)) for h in applied]
    m_start = _given_starts(m0, n, grid)
    estimates = [None] * n
    if bias != "none" or m0 is None:
        estimates = [perpendicular_estimate(image, grid, measurement, start["Ms"]) for image in images]
    if m_start is None:
        m_start = torch.stack([_starting_state(None, estimate, grid) for estimate in estimates])
    shapes = [_bias(bias, estimate, grid, start, bias_strength)[0] for estimate in estimates]
    targets_t = grid.tensor(images)
    offset_scale = float(np.std(images))
    objective = None

    def hold(m) -> None:
        """Pin each image's skyrmions where ``m[i]`` has them (none for ``m = None``); set the objective."""
        nonlocal objective
        pinnings = []
        for i in range(n):
            found = find_skyrmions(m[i], grid) if m is not None and pin_skyrmions else None
            pinnings.append(SkyrmionPinning(grid, found, PIN_STIFFNESS * 2 * start["A"] * grid.nz * grid.dz)
                            .centered_on(m[i]) if found is not None and len(found) else None)
        shared = _parameters(start, names, grid, offset_scale, None)
        subs = [_parameters(start, names, grid, offset_scale, p) for p in pinnings]
        extra = [dataclasses.replace(sub["centers"], name=f"centers {i}") for i, sub in enumerate(subs)
                 if "centers" in sub]
        joint = ParameterSet(shared.parameters + tuple(extra), shared.fixed)
        parts = [Objective(grid, measurement, targets_t[i], subs[i], image_settings[i], pinnings[i], shapes[i],
                           True) for i in range(n)]
        objective = SeriesObjective(parts, joint, shared.size)
        run.objective = objective

    state = FitState(warm=m_start, charge=np.array([topological_charge(m) for m in m_start]) if m0 is not None
                     else None, relax_tol=relax_tol)
    run = StagedRun(None, None, state, "levenberg-marquardt", max_iter, progress, 0.0)
    hold(m_start if m0 is not None else None)
    biased = shapes[0] is not None
    theta = objective.parameters.zeros(targets_t)
    expected = [len(find_skyrmions(m, grid)) for m in m_start] if m0 is None else None

    def keeps(first: Evaluation) -> bool:
        return all(len(find_skyrmions(m, grid)) >= k for m, k in zip(first.m, expected))

    def begin() -> tuple:
        """The first stage entered, each image's start checked against it and its skyrmions held."""
        nonlocal theta
        first, stages, _ = relax_first(run, schedule(biased, False, True, max_iter), theta, m_start,
                                       None if expected is None else keeps, biased, bias_strength)
        for i in range(n):
            try:
                _check_start_pattern(dataclasses.replace(first, image=first.image[i]), targets_t[i])
            except ValueError as exc:
                raise ValueError(f"image {i} (field {applied[i].tolist()} A/m): {exc}") from None
        if m0 is None and pin_skyrmions:
            hold(first.m)
            theta = objective.parameters.zeros(targets_t)
            first = run.enter(stages[0], theta)
        return first, stages, theta

    staged = run_stages(run, begin, m_start, lambda e: _all_explained(e, run.objective, images), biased)
    return _result(run, images, applied, init, staged, start_time)


def _all_explained(evaluation: Evaluation, objective: SeriesObjective, images: np.ndarray) -> bool:
    """Whether every image's residual is consistent with its noise (``parameter_fit._explains``)."""
    residual = (evaluation.image - objective.objectives[0].target.new_tensor(images)).cpu().numpy()
    return all(_explains(float(np.sqrt(np.mean(r ** 2))), image_noise(image), float(np.std(image)))
               for r, image in zip(residual, images))


def _series_covariance(test, evaluation: Evaluation, objective: SeriesObjective):
    """Covariance of the natural steps: the sandwich ``A^+ (sum_i s_i^2 J_i^T J_i) A^+`` with
    ``A = J^T J`` and ``s_i^2`` image i's residual power per degree of freedom (each image keeps its
    share ``N_i / N`` of the fitted parameters); and the remaining Gauss-Newton step."""
    rate = objective.parameters.rate(evaluation.theta)
    J = test.J / rate
    r = objective.residual(evaluation)
    A_plus = torch.linalg.pinv(J.T @ J, hermitian=True)
    middle = torch.zeros_like(A_plus)
    total, size = r.numel(), J.shape[1]
    for rows in objective.rows():
        r_i, J_i = r[rows], J[rows]
        dof = max(r_i.numel() * (1 - size / total), 1.0)
        middle += (float(r_i @ r_i) / dof) * (J_i.T @ J_i)
    return A_plus @ middle @ A_plus, test.delta * rate


def _result(run: StagedRun, images: np.ndarray, applied: np.ndarray, init: Material, staged: Staged,
            start_time: float) -> FieldSeriesResult:
    """The best unbiased candidate (else the last biased state), tested, with uncertainties."""
    objective, state = run.objective, run.state
    settings = objective.settings
    chosen = staged.chosen()
    notes = [staged.message] if staged.message else []
    names = tuple(p.name for p in objective.parameters.parameters if not p.name.startswith("centers"))
    if not staged.cancelled:
        chosen = tightened(objective, state, chosen)
    values = objective.parameters.floats(chosen.theta)
    stats = settings.stats
    relax_time, adjoint_time = stats.relax_time, stats.adjoint_time
    t_unc = time.perf_counter()
    target = objective.objectives[0].target.new_tensor(images)
    residual = (chosen.image - target).cpu().numpy()
    rms = np.sqrt(np.mean(residual ** 2, axis=(1, 2)))
    noise = np.array([image_noise(image) for image in images])
    explains = all(_explains(r, s, float(np.std(image))) for r, s, image in zip(rms, noise, images))
    worst = int(np.argmax(rms / np.maximum(noise, 1e-300)))
    poor = (f"poor fit: image {worst}'s residual (RMS {rms[worst]:.3g}) is "
            f"{rms[worst] / max(noise[worst], 1e-300):.3g} times its noise ({noise[worst]:.3g})")
    if chosen.bias_scale != 0:
        notes.insert(0, f"the result still carries the bias ({chosen.bias_scale:g} of its strength)")
    verdict = assess(objective, chosen, names, values, _series_covariance, staged, run.budget, explains, poor,
                     "every image's misfit at its noise level", notes)
    t_unc = time.perf_counter() - t_unc
    power = np.mean(images ** 2, axis=(1, 2))
    dof = max(1 - objective.parameters.size / residual.size, 1e-12)
    m = chosen.m.cpu().numpy()
    pinnings = [o.pinning_at(o.parameters.values(e.theta)) for o, e in zip(objective.objectives,
                                                                            objective.images(chosen))]
    return FieldSeriesResult(
        **result_fields(run, staged, verdict, init, names, values, objective.objectives[0].measurement,
                        (relax_time, adjoint_time, t_unc), start_time),
        fields=applied,
        m=m,
        simulated=chosen.image.cpu().numpy(),
        residual=residual,
        misfits=np.mean(residual ** 2, axis=(1, 2)) / power,
        noise_sigma=rms / math.sqrt(dof),
        image_noise=noise,
        radii=[np.asarray(find_skyrmions(m_i, run.objective.objectives[0].grid).radii) for m_i in m],
        centers=[np.zeros((0, 2)) if p is None else p.centers.cpu().numpy() for p in pinnings],
    )
