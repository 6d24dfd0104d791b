"""Newton steps that finish a relaxation to a tight torque.

The Barzilai-Borwein minimizer (``relax.minimize``) gets a film to a torque of about 1e-3 in a few
hundred field evaluations, but the soft modes (skyrmion positions and breathing in a film of
many) then converge slowly: on the bundled 43-skyrmion lattice at parameters 2 % off it needs
16,559 iterations (58 s) to reach 1e-9 and does not reach 1e-10 within 200,000. Newton steps on
the unit sphere, ``Hess d = -P grad E`` solved inexactly by conjugate gradients (``krylov``) with
the tangent-space Hessian (``hessian``), reach 1e-10 from 1e-3 in 7-9 steps there (about 2,500
Hessian products, 9 s), and each step is checked to lower the energy.

An implicit-gradient fit needs its equilibria to a tight torque: the image error that a
relaxation leaves is the soft modes' amplitude, far larger than ``torque * Ms / H_eff``, and it
makes the misfit noisy along the nearly flat directions of a fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..physics.energy import EnergyModel
from ..physics.grid import MU0
from .hessian import TangentHessian
from .krylov import conjugate_gradient

SWITCH_TORQUE = 1e-3
"""Max torque ``|m x H| / Ms`` below which a tight relaxation hands over from Barzilai-Borwein
steps to Newton steps."""
FORCING = 1e-2
"""Largest relative residual of a Newton step's CG solve (tightened to ``sqrt(torque)`` near the
solution, which keeps the convergence superlinear)."""
MAX_ROTATION = 0.5
"""Largest rotation (rad, about) of any cell in one Newton step; longer steps are shortened."""
MAX_HALVINGS = 10
SLOW_RATIO = 0.5
SLOW_STEPS = 2
"""Newton hands back to gradient steps when ``SLOW_STEPS`` steps in a row each lower the torque by
less than ``1 / SLOW_RATIO``: the state is not yet near a minimum (a skyrmion still shrinking or
moving), where each step is cut to ``MAX_ROTATION`` and costs a CG solve. On the 128 x 128
four-skyrmion fit benchmark one such relaxation took 50 Newton steps (1,689 CG iterations)."""


@dataclass
class NewtonInfo:
    """What ``newton_relax`` did: Newton ``steps``, conjugate-gradient ``cg_iterations``, the final
    ``max_torque``, whether it ``converged`` (torque below the tolerance) and, if not, why
    (``reason``: "negative curvature", "no descent", "slow", "step limit", "cancelled")."""

    steps: int
    cg_iterations: int
    max_torque: float
    converged: bool
    reason: str = ""


def _torque(m: torch.Tensor, h: torch.Tensor, inv_Ms: torch.Tensor) -> torch.Tensor:
    d = h - (m * h).sum(-1, keepdim=True) * m
    return torch.linalg.vector_norm(d, dim=-1).mul(inv_Ms).amax()


def newton_relax(model: EnergyModel, m: torch.Tensor, tol: float, max_steps: int = 50, cg_max_iter: int = 3000,
                 cancel=None) -> tuple[torch.Tensor, NewtonInfo]:
    """Newton steps from ``m`` (one state, ``(nz, ny, nx, 3)``, near a minimum) until the max torque
    ``|m x H| / Ms`` is below ``tol``.

    Each step solves ``Hess d = Ms P H`` (the Newton system of ``TangentHessian``) to a relative
    residual ``min(FORCING, sqrt(torque))``, limits the largest cell rotation to ``MAX_ROTATION``,
    and halves the step until the energy, computed exactly from the fields at both ends (the
    energy is quadratic plus linear in ``m``), does not rise. It stops without converging where
    the Hessian has negative curvature (not near a minimum), no step lowers the energy, or the
    torque falls slowly (``SLOW_RATIO``); the caller then continues with gradient steps. Returns
    ``(m, NewtonInfo)``.
    """
    Ms = model.Ms.expand(m.shape[:-1])
    inv_Ms = torch.where(Ms > 0, 1 / torch.where(Ms > 0, Ms, torch.ones_like(Ms)), torch.zeros_like(Ms))
    scale = -0.5 * MU0 * model.grid.cell_volume
    h = model.field(m)
    torque = float(_torque(m, h, inv_Ms))
    cg_total, slow = 0, 0
    for step in range(max_steps):
        if torque < tol:
            return m, NewtonInfo(step, cg_total, torque, True)
        if cancel is not None and (cancel.is_set() if hasattr(cancel, "is_set") else cancel()):
            return m, NewtonInfo(step, cg_total, torque, False, "cancelled")
        hessian = TangentHessian(model, m, h)
        rhs = hessian.Ms * hessian.project(h)
        d, info = conjugate_gradient(hessian, rhs, hessian.project, min(FORCING, math.sqrt(torque)), cg_max_iter,
                                     cancel)
        cg_total += info.iterations
        if info.negative_curvature and info.iterations <= 1:
            return m, NewtonInfo(step, cg_total, torque, False, "negative curvature")
        largest = float(torch.linalg.vector_norm(d, dim=-1).amax())
        t = min(1.0, MAX_ROTATION / largest) if largest > 0 else 1.0
        total = h if model.constant_field is None else h + model.constant_field
        energy = scale * float(((m * total).sum(-1) * Ms).sum())
        for _ in range(MAX_HALVINGS):
            trial = m + t * d
            trial = trial / torch.linalg.vector_norm(trial, dim=-1, keepdim=True).clamp_min(torch.finfo(m.dtype).tiny)
            trial = trial * hessian.magnetic + m * (1 - hessian.magnetic)
            h_trial = model.field(trial)
            total_trial = h_trial if model.constant_field is None else h_trial + model.constant_field
            change = scale * float((((trial - m) * (total + total_trial)).sum(-1) * Ms).sum())
            if change <= 1e-12 * abs(energy) + 1e-300:
                break
            t *= 0.5
        else:
            return m, NewtonInfo(step, cg_total, torque, False, "no descent")
        m, h = trial, h_trial
        previous, torque = torque, float(_torque(m, h, inv_Ms))
        slow = slow + 1 if torque > SLOW_RATIO * previous else 0
        if slow >= SLOW_STEPS and torque >= tol:
            return m, NewtonInfo(step + 1, cg_total, torque, False, "slow")
    converged = torque < tol
    return m, NewtonInfo(max_steps, cg_total, torque, converged, "" if converged else "step limit")
