"""Outer optimizers of a fit: Levenberg-Marquardt, L-BFGS and Adam, and the stationarity test.

All minimize an ``fit_objective.Objective`` from the best state of a ``fit_state.FitState`` and
report a ``FitProgress`` after every iteration. Levenberg-Marquardt (the default for material
parameters) uses the Jacobian through the equilibrium and so handles the narrow valleys of this
problem (the near invariance of a skyrmion under a common scaling of A, Ku and D) in few
iterations; L-BFGS and Adam use only the implicit gradient and also optimize a bias-field map.

A stage ends ``"stationary"`` only on a test of the point reached, never on a stalled loss:
``stationarity`` measures the part of the residual that the parameters could still explain (the
Gauss-Newton step's predicted reduction), and the Gauss-Newton step itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .objective import IMAGE_PARAMETERS, MATERIAL_PARAMETERS, FitCancelled, Objective, is_cancelled
from .fit_state import FitState

OPTIMIZERS = ("levenberg-marquardt", "lbfgs", "adam")
STEP_CG_TOL = 1e-6
STEP_CG_MAX_ITER = 1000
"""Relative residual and iteration cap of the tangent solves behind a Levenberg-Marquardt step (a
step needs only an approximate Jacobian; the stationarity test at the end solves to the
settings' tolerance)."""
MAX_REJECTIONS = 8
"""Levenberg-Marquardt gives up (``"stalled"``) when this many damped steps in a row fail."""
GRADIENT_TOL = 1e-3
"""Stationary when the Gauss-Newton step would explain less than this fraction of the residual's
norm (its predicted loss reduction is below ``GRADIENT_TOL^2`` of the loss)."""
STEP_TOL = 1e-4
"""... or when it would move no parameter by more than this (relative; centres in cells): the
floor of a noise-free fit, where the misfit is the inner relaxations' round-off (about 1e-11 on
the bundled lattice) and the ratio above is noise."""
GRADIENT_LOSS_TOL = 1e-3
PATIENCE = 2
ADAM_PATIENCE = 20
"""L-BFGS and Adam end a stage when the best loss improves by less than ``GRADIENT_LOSS_TOL``
(relative) in ``PATIENCE`` (Adam: ``ADAM_PATIENCE``) iterations in a row."""
MAX_PREDICTED_ROTATION = 0.3
"""The tangent prediction of the next state is used as the relaxation's start only where it
rotates no cell by more than this (rad)."""


@dataclass
class FitProgress:
    """A snapshot passed to the ``progress`` callback after every outer iteration.

    ``stage`` is ``"biased"`` or ``"unbiased"``; ``loss`` the normalized misfit of the best state so
    far; ``values`` the parameters (SI) of that state; ``m`` its magnetization (tensor
    ``(nz, ny, nx, 3)``) and ``simulated`` its image (tensor ``(ny, nx)``).
    """

    stage: str
    iteration: int
    loss: float
    values: dict
    m: torch.Tensor
    simulated: torch.Tensor


@dataclass
class StageRule:
    """When a stage ends: ``max_iter`` outer iterations; stationary (``gradient_tol``,
    ``step_tol``, see ``stationarity``); or, for a stage that only prepares the next one, once the
    loss changes by less than ``loss_tol`` (relative) in an iteration (0: never); or (gradient
    optimizers) once the best state's misfit is at most ``misfit_goal`` (0: never; the
    discrepancy principle of a texture reconstruction)."""

    max_iter: int
    gradient_tol: float = GRADIENT_TOL
    step_tol: float = STEP_TOL
    loss_tol: float = 0.0
    misfit_goal: float = 0.0


@dataclass
class StageOutcome:
    """How a stage ended: ``status`` ("stationary", "loss change", "max_iter", "stalled", or for
    the gradient optimizers "loss stalled"), its ``iterations``, and the last ``stationarity``
    ratio (NaN where not computed)."""

    status: str
    iterations: int
    stationarity: float = math.nan


@dataclass
class Stationarity:
    """The Gauss-Newton step ``delta`` (in ``theta``) at a point, the fraction ``ratio`` of the
    residual's norm it would explain, and its largest natural step ``largest_step`` (relative
    change; cells for centres)."""

    ratio: float
    delta: torch.Tensor
    largest_step: float

    def stationary(self, gradient_tol: float = GRADIENT_TOL, step_tol: float = STEP_TOL) -> bool:
        return self.ratio < gradient_tol or self.largest_step < step_tol


def stationarity(J: torch.Tensor, r: torch.Tensor, rate: torch.Tensor) -> Stationarity:
    """The stationarity test at a point with Jacobian ``J (N, n)`` (w.r.t. ``theta``), residual
    ``r (N,)`` and ``rate = d eps / d theta``: ``ratio = |J delta| / |r|`` with the Gauss-Newton
    step ``delta = -J^+ r`` (pseudo-inverse: flat directions add nothing). At a least-squares
    optimum ``J^T r = 0`` and the ratio is 0, whatever the noise."""
    delta = -torch.linalg.lstsq(J, r.reshape(-1, 1), rcond=None, driver="gelsd").solution.reshape(-1)
    norm = float(r.norm())
    ratio = float((J @ delta).norm()) / norm if norm > 0 else 0.0
    largest = float((delta * rate).abs().max()) if delta.numel() else 0.0
    return Stationarity(ratio, delta, largest)


def _report(state: FitState, stage: str, iteration: int, progress):
    state.history.append(state.best.loss)
    if progress is not None:
        best = state.best
        progress(FitProgress(stage, iteration, best.loss, dict(best.values), best.m, best.image))


def _predicted_start(objective: Objective, state: FitState, step: torch.Tensor) -> torch.Tensor:
    """The first-order prediction of the state after ``step`` from the last tangent responses
    (material parameters only), or the best state where that would rotate a cell too far."""
    params = objective.parameters
    material = [p for p in params.parameters if p.name in MATERIAL_PARAMETERS + IMAGE_PARAMETERS]
    if state.tangent is None or len(material) != state.tangent.shape[0]:
        return state.warm
    rate = params.rate(state.best.theta)
    eps = torch.stack([(step * rate)[params.slices[p.name]].reshape(()) for p in material])
    dm = (state.tangent * eps.reshape((-1,) + (1,) * (state.tangent.ndim - 1))).sum(0)
    if float(torch.linalg.vector_norm(dm, dim=-1).max()) > MAX_PREDICTED_ROTATION:
        return state.warm
    m = state.warm + dm
    return m / torch.linalg.vector_norm(m, dim=-1, keepdim=True).clamp_min(torch.finfo(m.dtype).tiny)


def _damped_step(A: torch.Tensor, g: torch.Tensor, mu: float) -> torch.Tensor:
    """``-(A + mu diag(A))^-1 g``."""
    return -torch.linalg.solve(A + mu * torch.diag(torch.diagonal(A).clamp_min(1e-30)), g)


def levenberg_marquardt(objective: Objective, state: FitState, bias_scale: float, rule: StageRule, stage: str,
                        progress=None) -> StageOutcome:
    """Levenberg-Marquardt from ``state.best`` on the normalized residual.

    Steps solve ``(J^T J + mu diag(J^T J)) d = -J^T r``; ``mu`` follows the gain ratio of actual to
    predicted loss reduction (Nielsen's rule) and grows four-fold after a rejected step (one that
    does not lower the loss, does not relax, or changes the skyrmion number). Each trial relaxes
    from the tangent prediction of its state; ``mu`` is raised before any relaxation until no
    parameter moves beyond its ``max_step`` (a trust region). Before each step the point is tested
    (``stationarity``); the stage ends there, or after ``rule.max_iter`` iterations, or
    ``"stalled"`` after ``MAX_REJECTIONS`` rejected steps in a row.
    """
    mu = 1e-3
    params = objective.parameters
    limits = params.max_steps(state.best.theta)
    for iteration in range(1, rule.max_iter + 1):
        if is_cancelled(objective.settings.cancel):
            raise FitCancelled
        best = state.best
        J, state.tangent = objective.jacobian(best, state.tangent, STEP_CG_TOL, STEP_CG_MAX_ITER)
        r = objective.residual(best)
        rate = params.rate(best.theta)
        test = stationarity(J, r, rate)
        if test.stationary(rule.gradient_tol, rule.step_tol):
            return StageOutcome("stationary", iteration - 1, test.ratio)
        A, g = J.T @ J, J.T @ r
        loss = float(r @ r)
        accepted = False
        for _ in range(MAX_REJECTIONS):
            step = _damped_step(A, g, mu)
            while bool(((step * rate).abs() > limits).any()):  # the trust region, before any relaxation
                mu *= 4
                step = _damped_step(A, g, mu)
            predicted = loss - float(((r + J @ step) ** 2).sum())
            trial = objective.evaluate(best.theta + step, _predicted_start(objective, state, step), bias_scale,
                                       state.tolerance())
            if state.consider(trial):
                gain = (best.loss - trial.loss) / predicted if predicted > 0 else 0.0
                mu = max(mu * max(1 / 3, 1 - (2 * gain - 1) ** 3), 1e-12)
                accepted = True
                break
            mu *= 4
        _report(state, stage, iteration, progress)
        if not accepted:
            return StageOutcome("stalled", iteration, test.ratio)
        if rule.loss_tol and (best.loss - state.best.loss) < rule.loss_tol * best.loss:
            return StageOutcome("loss change", iteration, test.ratio)
    return StageOutcome("max_iter", rule.max_iter)


def gradient_descent(objective: Objective, state: FitState, bias_scale: float, rule: StageRule, stage: str,
                     optimizer: str, progress=None, adam_lr: float = 0.02) -> StageOutcome:
    """L-BFGS (strong Wolfe line search) or Adam on ``theta`` from ``state.best``, with implicit
    gradients. The stage ends after ``rule.max_iter`` iterations, once the best misfit reaches
    ``rule.misfit_goal`` (``"misfit goal"``), or once the best loss improves by less than
    ``GRADIENT_LOSS_TOL`` for a few iterations (``"loss stalled"``: not a test of stationarity;
    ``fitting`` tests the point afterwards)."""
    theta = state.best.theta.clone().requires_grad_(True)
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=1, max_eval=12, history_size=20,
                                tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    else:
        opt = torch.optim.Adam([theta], lr=adam_lr)
    cache = {}

    def closure():
        key = theta.detach().cpu().numpy().tobytes()
        if key in cache:  # L-BFGS evaluates the accepted point again at the start of each step
            loss, grad = cache[key]
            theta.grad = grad.clone()
            return loss
        opt.zero_grad()
        evaluation, loss = objective.evaluate(theta, state.warm, bias_scale, state.tolerance(), graph=True)
        loss.backward()
        state.consider(evaluation)
        cache.clear()
        cache[key] = (loss.detach(), theta.grad.detach().clone())
        return loss.detach()

    reference, stalled = state.best.loss, 0
    patience = PATIENCE if optimizer == "lbfgs" else ADAM_PATIENCE  # Adam oscillates
    for iteration in range(1, rule.max_iter + 1):
        opt.step(closure)
        _report(state, stage, iteration, progress)
        if state.best.misfit <= rule.misfit_goal:
            return StageOutcome("misfit goal", iteration)
        if state.best.loss < (1 - GRADIENT_LOSS_TOL) * reference:
            reference, stalled = state.best.loss, 0
        else:
            stalled += 1
        if stalled >= patience or state.best.loss == 0.0:
            return StageOutcome("loss stalled", iteration)
    return StageOutcome("max_iter", rule.max_iter)
