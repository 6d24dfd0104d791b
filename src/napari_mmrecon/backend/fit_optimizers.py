"""Outer optimizers of a parameter fit: Levenberg-Marquardt, L-BFGS and Adam.

All minimize an ``fit_objective.Objective`` over ``theta`` and report a ``FitProgress`` after
every iteration. Levenberg-Marquardt (the default for material parameters) uses the Jacobian
through the equilibrium and so handles the narrow valleys of this problem (e.g. the near
invariance of a thin-film texture under a common scaling of A, Ku and D) in a few iterations;
L-BFGS and Adam use only the implicit gradient and also optimize a bias-field map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .fit_objective import FitCancelled, Objective, is_cancelled

OPTIMIZERS = ("levenberg-marquardt", "lbfgs", "adam")
STEP_CG_TOL = 1e-6
STEP_CG_MAX_ITER = 300
"""Relative residual and iteration cap of the tangent solves behind a Levenberg-Marquardt step: a
step needs only an approximate Jacobian, and far from the optimum the state is relaxed coarsely,
where the tangent Hessian of a many-skyrmion film has near-zero (translation) modes that stall
conjugate gradients. The uncertainty estimate at the end solves to the settings' tolerances."""
MAX_REJECTIONS = 6
"""Levenberg-Marquardt ends when this many damped steps in a row fail to lower the loss."""
LM_LOSS_TOL = 1e-6
GRADIENT_LOSS_TOL = 1e-3
"""Default relative loss change that ends a stage (see ``fitting.fit_parameters``'s ``loss_tol``)."""
PATIENCE = 2
ADAM_PATIENCE = 20
"""Iterations in a row without a relative improvement above ``loss_tol`` that end a stage."""


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
class StopRule:
    """Stop when the best loss has changed by less than ``loss_tol`` (relative) in each of the last
    ``PATIENCE`` iterations (``ADAM_PATIENCE`` for Adam), the largest gradient component (w.r.t.
    ``theta``) is below ``grad_tol``, the largest step below ``step_tol`` (``theta`` is
    log-scaled, so this is the relative change of every parameter: a noise-free fit approaches
    round-off by ever smaller steps whose loss still falls by a few % each), or after ``max_iter``
    iterations."""

    max_iter: int = 100
    loss_tol: float = 1e-3
    grad_tol: float = 1e-12
    step_tol: float = 1e-6


def _report(objective: Objective, stage: str, iteration: int, history: list, progress):
    history.append(objective.best)
    if progress is not None:
        values = objective.param.floats(objective.best_theta)
        progress(FitProgress(stage, iteration, objective.best, values, objective.m_best, objective.best_image))


def _relative_change(previous: float, current: float) -> float:
    if not math.isfinite(previous):
        return math.inf
    return abs(previous - current) / max(abs(previous), 1e-300)


def levenberg_marquardt(objective: Objective, theta: torch.Tensor, rule: StopRule, stage: str, history: list,
                        progress=None) -> tuple[int, bool]:
    """Levenberg-Marquardt on the residual ``(S - target) / sqrt(N mean(target^2))``.

    Steps solve ``(J^T J + mu diag(J^T J)) d = -J^T r`` with ``J = dS/dtheta`` from
    ``Objective.jacobian``; ``mu`` shrinks after an accepted step and grows after a rejected one
    (a step into another topology counts as rejected). Returns ``(iterations, converged)``; the best
    state is in ``objective``.
    """
    if objective.best_theta is None:
        with torch.no_grad():
            objective(theta)
    norm = math.sqrt(objective.target.numel() * objective.power)
    mu = 1e-3
    iteration = slow = 0
    for iteration in range(1, rule.max_iter + 1):
        if is_cancelled(objective.settings.cancel):
            raise FitCancelled
        theta = objective.best_theta
        J = objective.jacobian(STEP_CG_TOL, STEP_CG_MAX_ITER) * objective.param.relative_rate(theta) / norm
        r = (objective.best_image - objective.target).reshape(-1) / norm
        A = J.T @ J
        g = J.T @ r
        previous = objective.best
        step = None
        for _ in range(MAX_REJECTIONS):
            damped = A + mu * torch.diag(torch.diagonal(A).clamp_min(1e-30))
            step = -torch.linalg.solve(damped, g)
            with torch.no_grad():
                objective(theta + step)
            if objective.best < previous:
                mu = max(mu / 3, 1e-12)
                break
            mu *= 4
        _report(objective, stage, iteration, history, progress)
        if objective.best >= previous:
            return iteration, True  # no downhill step even with strong damping: a minimum to round-off
        slow = slow + 1 if _relative_change(previous, objective.best) < rule.loss_tol else 0
        if slow >= PATIENCE or float(step.abs().max()) < rule.step_tol or float(g.abs().max()) < rule.grad_tol:
            return iteration, True
    return iteration, False


def gradient_descent(objective: Objective, variables: list, optimizer: str, rule: StopRule, stage: str,
                     history: list, progress=None, adam_lr: float = 0.02) -> tuple[int, bool]:
    """L-BFGS (strong Wolfe line search) or Adam on ``objective(*variables)`` with implicit gradients.

    ``variables`` are ``[theta]`` or ``[theta, beta]`` (an optimized bias map). Returns
    ``(iterations, converged)``; the best state is in ``objective``.
    """
    variables = [v.detach().clone().requires_grad_(True) for v in variables]
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(variables, lr=1.0, max_iter=1, max_eval=12, history_size=20,
                                tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    else:
        opt = torch.optim.Adam(variables, lr=adam_lr)
    cache = {}

    def closure():
        key = tuple(v.detach().cpu().numpy().tobytes() for v in variables)
        if key in cache:  # L-BFGS evaluates the accepted point again at the start of each step
            loss, grads = cache[key]
            for v, g in zip(variables, grads):
                v.grad = g.clone()
            return loss
        opt.zero_grad()
        loss = objective(*variables)
        loss.backward()
        cache.clear()
        cache[key] = (loss.detach(), [v.grad.detach().clone() for v in variables])
        return loss.detach()

    reference = objective.best  # best loss at the last significant improvement
    stalled = 0
    iteration = 0
    for iteration in range(1, rule.max_iter + 1):
        opt.step(closure)
        grad_max = max(float(v.grad.abs().max()) for v in variables if v.grad is not None)
        _report(objective, stage, iteration, history, progress)
        if _relative_change(reference, objective.best) < rule.loss_tol:
            stalled += 1
        else:
            reference, stalled = objective.best, 0
        patience = PATIENCE if optimizer == "lbfgs" else ADAM_PATIENCE  # Adam oscillates
        if grad_max < rule.grad_tol or (iteration > 1 and stalled >= patience) or objective.best == 0.0:
            return iteration, True
    return iteration, False
