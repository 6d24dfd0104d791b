"""The staged optimization of a parameter fit, shared by ``fit_parameters`` (one image) and
``fit_field_series`` (several images, presented as one objective by ``SeriesObjective``).

A start 20-30 % off does not hold its configuration without help (skyrmions collapse or run out),
so a fit runs in stages (``Stage``, ``schedule``): a bias field holds the configuration and is
lowered stage by stage to none. ``relax_first`` enters the first stage, the bias doubled while the
start loses its configuration; ``run_stages`` runs the stages, a bias stage inserted half-way where
lowering the bias loses the configuration, and keeps the start relaxed without bias as a candidate
result (a fit never returns anything worse); ``assess`` tests the chosen state for stationarity and
gives its uncertainties and how the fit ended, in words. What the objective is (one image or
several), how the start is judged and how the covariance is formed are the caller's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..forward.measurement import with_plane_distance
from .fit_state import FitState
from .objective import MATERIAL_PARAMETERS, Evaluation, FitCancelled
from .optimizers import GRADIENT_TOL, StageOutcome, StageRule, gradient_descent, levenberg_marquardt, stationarity
from .parameter_set import ParameterSet

BIAS_SCHEDULE = (1.0, 0.25, 0.0625)
"""Scales of a fixed bias in the successive biased stages (before the unbiased one)."""
BIASED_STAGE_ITERATIONS = 1
BIASED_LOSS_TOL = 1e-2
"""A biased stage only prepares the next one: it ends after this many iterations, or once an
iteration lowers the loss by less than ``BIASED_LOSS_TOL`` (relative), or at a stationary point."""
MAX_BIAS_INSERTIONS = 6
MAX_START_BIAS_SCALE = 4.0
"""Where the start loses its configuration under the image-shaped bias (a skyrmion collapses, appears
or runs out into a stripe at parameters far from the truth), the first stage is retried at twice
the bias (fixed, or the optimized map's start), up to this many times ``bias_strength``."""
MAX_RELAX_ITERATIONS = 5000
"""An inner relaxation that has not converged after this many Barzilai-Borwein iterations (a
texture at an instability) does not count as an equilibrium."""
__all__ = ["ConfigurationLost", "Stage", "Staged", "StagedRun", "Verdict", "assess", "doubled", "relax_first",
           "result_fields", "run_stages", "schedule", "stationarity_test", "tightened", "uncertainties"]


class ConfigurationLost(Exception):
    """A stage's first relaxation changed topology (a skyrmion collapsed or appeared) or found no
    equilibrium."""


@dataclass
class Stage:
    """One stage of a fit's schedule: ``name`` ("biased" or "unbiased"), the fixed bias's
    ``scale``, its iteration cap, and whether it only ``prepares`` the next stage (loose stop)."""

    name: str
    scale: float
    max_iter: int
    prepares: bool = False


def schedule(biased: bool, optimized: bool, final_unbiased: bool, max_iter: int) -> list:
    """The stages of a fit: with a fixed bias, ``BIAS_SCHEDULE`` (``BIASED_STAGE_ITERATIONS``
    each) and then the unbiased stage; with an optimized bias map, one biased stage; without bias,
    the unbiased stage alone. The parameters follow the texture continuously as the bias goes,
    instead of settling deep in a biased optimum (the misfit is nearly flat along a common scaling
    of A, Ku and D, where a strong bias drags the parameters far). ``final_unbiased=False`` keeps
    the bias to the end."""
    if not biased:
        return [Stage("unbiased", 0.0, max_iter)]
    if not final_unbiased:
        return [Stage("biased", 1.0, max_iter)]
    if optimized:
        return [Stage("biased", 1.0, max_iter, prepares=True), Stage("unbiased", 0.0, max_iter)]
    return ([Stage("biased", scale, BIASED_STAGE_ITERATIONS, prepares=True) for scale in BIAS_SCHEDULE]
            + [Stage("unbiased", 0.0, max_iter)])


def doubled(stages: list) -> list:
    """The stages with every biased stage's scale doubled."""
    return [Stage(s.name, s.scale * (2 if s.name == "biased" else 1), s.max_iter, s.prepares) for s in stages]


class StagedRun:
    """One run of a staged fit: the objectives (with the fixed bias, and with an optimized bias map,
    or None), the state, the optimizer, the iteration budget, and the iterations spent."""

    def __init__(self, objective, map_objective, state: FitState, optimizer: str, max_iter: int, progress,
                 adam_lr: float):
        self.objective = objective
        self.map_objective = map_objective
        self.state = state
        self.optimizer = optimizer
        self.budget = max_iter
        self.iterations = 0
        self.progress = progress
        self.adam_lr = adam_lr

    def objective_for(self, stage: Stage):
        return self.map_objective if stage.name == "biased" and self.map_objective is not None else self.objective

    def theta_for(self, objective, theta: torch.Tensor) -> torch.Tensor:
        """``theta`` cut or extended (bias map at its start) to ``objective``'s parameters."""
        size = objective.parameters.size
        if theta.numel() >= size:
            return theta[:size]
        return torch.cat((theta, torch.zeros(size - theta.numel(), dtype=theta.dtype, device=theta.device)))

    def enter(self, stage: Stage, theta: torch.Tensor) -> Evaluation:
        """Relax at the stage's bias from the warm start; ``ConfigurationLost`` if that is no valid state."""
        objective = self.objective_for(stage)
        self.state.new_stage()
        evaluation = objective.evaluate(self.theta_for(objective, theta), self.state.warm, stage.scale,
                                        self.state.tolerance())
        if not self.state.consider(evaluation):
            raise ConfigurationLost
        return evaluation

    def run(self, stage: Stage) -> StageOutcome:
        """Optimize within the stage from ``state.best``."""
        objective = self.objective_for(stage)
        rule = StageRule(max_iter=max(min(stage.max_iter, self.budget - self.iterations), 0),
                         loss_tol=BIASED_LOSS_TOL if stage.prepares else 0.0)
        if rule.max_iter == 0:
            return StageOutcome("max_iter", 0)
        if self.optimizer == "levenberg-marquardt" and objective is self.objective:
            outcome = levenberg_marquardt(objective, self.state, stage.scale, rule, stage.name, self.progress)
        else:
            method = "lbfgs" if self.optimizer == "levenberg-marquardt" else self.optimizer
            outcome = gradient_descent(objective, self.state, stage.scale, rule, stage.name, method, self.progress,
                                       self.adam_lr)
        self.iterations += outcome.iterations
        return outcome


def _lost_start_message(biased: bool, scale: float, strength: float) -> str:
    """Why the fit could not start: the first relaxation changed topology or found no equilibrium."""
    held = (f" even under a bias of {scale * strength:g} times the anisotropy field" if biased else "")
    advice = "start closer to the true values" + ("" if biased else ", or hold the texture with a bias (bias='target')")
    return (f"the starting magnetization, relaxed at the initial parameters{held}, changes topology or reaches "
            f"no equilibrium within {MAX_RELAX_ITERATIONS} iterations (a skyrmion collapses, appears or runs "
            f"out into a stripe): {advice}")


def relax_first(run: StagedRun, stages: list, theta: torch.Tensor, m_start: torch.Tensor, keeps, biased: bool,
                bias_strength: float, boosted=None) -> tuple:
    """The first stage's first relaxation, the bias doubled while the start loses its configuration.

    ``keeps(evaluation)`` (or None) says whether a relaxed state still shows every skyrmion of the
    start; where not, the warm start goes back to ``m_start``. ``boosted(stages, boost)`` returns the
    stages with the first stage's bias at ``boost`` times its own (default: every biased stage
    ``doubled``). Returns ``(first evaluation, stages, boost)``; ``ValueError`` where even
    ``MAX_START_BIAS_SCALE`` times ``bias_strength`` does not hold the start."""
    boost = 1.0
    while True:
        try:
            first = run.enter(stages[0], theta)
            if keeps is not None and not keeps(first):
                run.state.charge, run.state.warm = None, m_start
                raise ConfigurationLost
            return first, stages, boost
        except ConfigurationLost:
            if biased and 2 * boost <= MAX_START_BIAS_SCALE:
                boost *= 2
                stages = doubled(stages) if boosted is None else boosted(stages, boost)
                continue
            raise ValueError(_lost_start_message(biased, boost, bias_strength)) from None


@dataclass
class Staged:
    """Where the stages of a fit ended: the ``start`` relaxed without bias (a candidate result, or
    None), the unbiased stage's best state ``final`` (or None), the best state ``held`` after the
    last stage run, how that stage ended (``outcome``), why the stages stopped early (``message``,
    "" if they did not), whether the fit was ``cancelled``, and ``ends``: stage name ->
    ``(Stage, best state)`` at the end of the first stage of that name."""

    start: Evaluation | None = None
    final: Evaluation | None = None
    held: Evaluation | None = None
    outcome: StageOutcome = field(default_factory=lambda: StageOutcome("max_iter", 0))
    message: str = ""
    cancelled: bool = False
    ends: dict = field(default_factory=dict)

    def chosen(self) -> Evaluation:
        """The result's state: the better unbiased candidate (the start or the final stage's best),
        else the last state held."""
        unbiased = [e for e in (self.final, self.start) if e is not None]
        return min(unbiased, key=lambda e: e.loss) if unbiased else self.held


def run_stages(run: StagedRun, begin, m_start: torch.Tensor, explains, insert_bias: bool,
               final_unbiased: bool = True) -> Staged:
    """Run a fit's stages; a cancel (``FitCancelled``) ends them with the best state so far.

    ``begin()`` enters the first stage (``relax_first`` and whatever the caller checks and holds)
    and returns ``(first evaluation, stages, theta)``; its ``ValueError`` s pass through. The start
    ``m_start`` relaxed without bias is a candidate result (with ``final_unbiased``); where
    ``explains(evaluation)`` says it already explains the image(s), only the unbiased stage runs.
    Where lowering the bias loses the configuration, a stage at half-way is inserted (up to
    ``MAX_BIAS_INSERTIONS``) if ``insert_bias`` (a fixed bias), else the stages stop with a message."""
    state, staged = run.state, Staged()
    try:
        first, stages, theta = begin()
        if stages[0].name == "unbiased":
            staged.start = first
        elif final_unbiased:
            unbiased = run.objective.evaluate(theta, m_start, 0.0, state.tolerance())
            if state.valid(unbiased):
                staged.start = unbiased
        if staged.start is not None and explains(staged.start):
            # the start already explains the image: no bias is needed to hold it
            stages = [stage for stage in stages if stage.name == "unbiased"]
            if stages and first is not staged.start:
                state.new_stage()
                state.consider(staged.start)
        entered, staged.held, inserted = True, first, 0
        while stages:
            stage = stages[0]
            if not entered:
                try:
                    run.enter(stage, theta)
                except ConfigurationLost:
                    if not insert_bias or inserted >= MAX_BIAS_INSERTIONS:
                        staged.message = (f"the texture changes topology (a skyrmion collapses or appears) when "
                                          f"the bias is lowered to {stage.scale:g} of its strength")
                        break
                    stages.insert(0, Stage("biased", (staged.held.bias_scale + stage.scale) / 2,
                                           BIASED_STAGE_ITERATIONS, True))
                    inserted += 1
                    continue
            entered = False
            staged.outcome = run.run(stage)
            stages.pop(0)
            staged.held = state.best
            theta = staged.held.theta[:run.objective.parameters.size]
            staged.ends.setdefault(stage.name, (stage, staged.held))
            if stage.name == "unbiased":
                staged.final = staged.held
    except FitCancelled:
        staged.cancelled = True
        if state.best is not None:  # cancelled inside a stage: its best state so far
            staged.held = state.best
            staged.final = staged.held if staged.held.bias_scale == 0 else staged.final
    return staged


def tightened(objective, state: FitState, evaluation: Evaluation) -> Evaluation:
    """``evaluation`` relaxed again to the fit's final tolerance where it was relaxed to a looser one
    (kept as it is where the tight relaxation is no valid state)."""
    if evaluation.relax_tol <= state.relax_tol:
        return evaluation
    tight = objective.evaluate(evaluation.theta, evaluation.m, evaluation.bias_scale, state.relax_tol)
    return tight if state.valid(tight) else evaluation


def stationarity_test(objective, evaluation: Evaluation):
    """The stationarity test at ``evaluation`` with the objective's Jacobian; returns the
    ``Stationarity`` with its Jacobian attached (``.J``)."""
    J, _ = objective.jacobian(evaluation)
    test = stationarity(J, objective.residual(evaluation), objective.parameters.rate(evaluation.theta))
    test.J = J
    return test


def uncertainties(names, values: dict, parameters: ParameterSet, cov, step) -> tuple:
    """1-sigma uncertainties (SI) and the correlation matrix of the named parameters, with the
    remaining Gauss-Newton ``step`` added in quadrature: far from a stationary point it is how
    little is known, at the step test's floor (``STEP_TOL``) of a noise-free fit it is the distance
    still to go, larger than the covariance there; at a least-squares optimum it vanishes."""
    index = [parameters.slices[name].start for name in names]
    sub = cov[np.ix_(index, index)].cpu().numpy()
    remaining = step[index].cpu().numpy()
    uncertainty = {}
    for k, name in enumerate(names):
        unit = abs(values[name]) if parameters[name].transform == "log" else parameters[name].scale
        uncertainty[name] = float(unit * math.sqrt(max(sub[k, k], 0.0) + remaining[k] ** 2))
    d = np.sqrt(np.clip(np.diag(sub), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = sub / np.outer(d, d)
    return uncertainty, np.where(np.isfinite(correlation), correlation, 0.0)


def _ending(outcome: StageOutcome, max_iter: int) -> str:
    return {"max_iter": f"stopped after max_iter = {max_iter} iterations",
            "stalled": "no step lowered the misfit any further",
            "loss stalled": "the misfit stopped falling",
            "loss change": "the misfit stopped falling"}.get(outcome.status, "stopped")


@dataclass
class Verdict:
    """The chosen state judged: 1-sigma ``uncertainty`` (name -> float, SI), the ``correlation``
    matrix, the ``stationarity`` ratio, whether it ``converged``, and the ``notes`` on how the fit
    ended (NaN, False and ``["cancelled"]`` after a cancel)."""

    uncertainty: dict
    correlation: np.ndarray
    stationarity: float
    converged: bool
    notes: list


def assess(objective, chosen: Evaluation, names: tuple, values: dict, covariance, staged: Staged, budget: int,
           explains: bool, poor: str, at_noise: str, notes: list) -> Verdict:
    """The verdict on ``chosen``, the result of the stages ``staged`` (``budget`` outer iterations).

    ``covariance(test, chosen, objective)`` returns ``(cov, step)`` of the natural steps from the
    stationarity test; ``explains`` says whether the residual is consistent with the noise, ``poor``
    what to say where it is not, ``at_noise`` what a converged fit's misfit is at (``"... with
    {at_noise}"``). Converged: a stationary, unbiased state that explains the image(s), the stages
    not stopped early. The verdict's note goes first in ``notes``."""
    if staged.cancelled:
        return Verdict({name: math.nan for name in names}, np.full((len(names), len(names)), np.nan), math.nan,
                       False, ["cancelled"])
    test = stationarity_test(objective, chosen)
    cov, step = covariance(test, chosen, objective)
    stationary = test.stationary()
    uncertainty, correlation = uncertainties(names, values, objective.parameters, cov, step)
    ratio = test.ratio
    converged = stationary and explains and chosen.bias_scale == 0 and not staged.message
    if not stationary:
        notes.insert(0, f"not converged: {_ending(staged.outcome, budget)} short of a stationary point (a "
                        f"Gauss-Newton step would still explain {ratio:.1%} of the residual); the "
                        "uncertainties include that step")
    elif not explains:
        notes.insert(0, poor)
    elif converged:
        how = (f"would explain only {ratio:.1e} of the residual" if ratio < GRADIENT_TOL else
               f"would change no parameter by more than {test.largest_step:.1e}")
        notes.insert(0, f"converged: a stationary point (a Gauss-Newton step {how}) with {at_noise}")
    return Verdict(uncertainty, correlation, ratio, converged, notes)


def result_fields(run: StagedRun, staged: Staged, verdict: Verdict, init, names: tuple, values: dict, measurement,
                  seconds: tuple, start_time: float) -> dict:
    """The fields every fit's result has: the fitted ``material`` (``init`` with the fitted values),
    ``values`` and ``uncertainty`` of the ``names``, ``correlation``, ``names``, ``loss_history``, the
    ``measurement`` at the fitted height, how the fit ended (``converged``, ``cancelled``,
    ``iterations``, ``stationarity``, ``message``), and ``timings`` (s): ``relax``, ``adjoint`` and
    ``uncertainty`` from ``seconds``, ``outer`` the rest of the ``total`` since ``start_time``."""
    relax, adjoint, uncertainty = seconds
    total = time.perf_counter() - start_time
    return dict(material=init.replace(**{name: values[name] for name in MATERIAL_PARAMETERS}),
                values={name: values[name] for name in names}, uncertainty=verdict.uncertainty,
                correlation=verdict.correlation, names=names, loss_history=list(run.state.history),
                measurement=with_plane_distance(measurement, values["height"]), converged=verdict.converged,
                cancelled=staged.cancelled, iterations=run.iterations, stationarity=verdict.stationarity,
                message="; ".join(verdict.notes),
                timings={"relax": relax, "adjoint": adjoint, "uncertainty": uncertainty,
                         "outer": total - relax - adjoint - uncertainty, "total": total})
