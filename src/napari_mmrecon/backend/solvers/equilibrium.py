"""The relaxed state as a differentiable function of the material parameters and the bias field.

``equilibrium(m_start, grid, parameters)`` relaxes ``m_start`` with the energy minimizer (no
autograd graph; Barzilai-Borwein steps, then Newton steps to a tight torque) and returns ``m*``.
``parameters`` maps names to tensors: ``Ms, A, Ku, D`` (scalars or per-cell maps) and optionally
``bias`` (a field map, A/m); any of them may require grad. Its backward pass differentiates the equilibrium
condition implicitly instead of backpropagating through the minimizer steps, so the memory of a
gradient does not grow with the number of relaxation iterations.

Implicit differentiation on the unit sphere
-------------------------------------------
At a minimum the projected energy gradient vanishes, ``P_m grad_m E(m*, p) = 0`` with
``P_m = 1 - m m^T`` per cell. Differentiating along ``p`` gives ``Hess dm*/dp = -P d_p grad_m E``
with the Riemannian Hessian of the energy on the product of spheres, for tangent ``v``:

    Hess v = P (grad_m^2 E) v - (m . grad_m E) v.

For a film ``grad_m E = -mu0 V Ms H_eff(m)``, where every term but Zeeman is linear in ``m``, so
``grad_m^2 E v = -mu0 V Ms H_lin(v)`` is one field evaluation (``H_lin`` the field without the
Zeeman part) and

    Hess v = mu0 V Ms [ (m . H_eff) v - P H_lin(v) ],

symmetric and positive definite at a stable minimum. For a loss ``L(m*, p)`` the adjoint
``Hess lam = P dL/dm`` is solved by conjugate gradients in the tangent space, and

    dL/dp = dL/dp|_m - d/dp [ lam . grad_m E(m*, p) ]   (lam fixed),

one more field evaluation with autograd. Vacuum cells (``Ms = 0``) take no part.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..physics.energy import EnergyModel
from .hessian import TangentHessian, linear_field  # noqa: F401  (linear_field: re-exported)
from .krylov import conjugate_gradient
from ..physics.grid import MU0, Grid, Material
from .newton import SWITCH_TORQUE, newton_relax
from .relax import DEFAULT_TORQUE_TOL, RelaxInfo, minimize


@dataclass
class EquilibriumStats:
    """Work done by ``equilibrium`` calls (accumulated; reset by the caller).

    ``relax_time`` and ``adjoint_time`` are seconds; ``relax_iterations`` minimizer iterations;
    ``newton_steps`` and ``newton_cg_iterations`` the Newton finish's steps and their CG
    iterations; ``cg_iterations`` conjugate-gradient iterations of the adjoint and tangent solves;
    ``last_info`` the ``RelaxInfo`` of the last relaxation; ``cg_residuals`` the final relative
    residual of each adjoint solve.
    """

    relax_time: float = 0.0
    adjoint_time: float = 0.0
    relax_iterations: int = 0
    relaxations: int = 0
    newton_steps: int = 0
    newton_cg_iterations: int = 0
    cg_iterations: int = 0
    adjoint_solves: int = 0
    last_info: object = None
    cg_residuals: list = field(default_factory=list)


@dataclass
class EquilibriumSettings:
    """How ``equilibrium`` relaxes and solves the adjoint.

    Parameters
    ----------
    tol : float
        Relaxation stop, ``max |m x H| / Ms`` (dimensionless).
    max_iter : int
        Relaxation iteration limit (Barzilai-Borwein iterations).
    newton : bool
        Finish relaxations below ``newton.SWITCH_TORQUE`` with Newton steps (default); without,
        Barzilai-Borwein steps all the way, which stall on soft modes at tight tolerances.
    cg_tol : float
        Adjoint stop: ``|r| <= cg_tol |b|`` (relative residual).
    cg_max_iter : int
    external_field : 3-vector or ``(nz, ny, nx, 3)`` map, optional
        Uniform/applied field H (A/m), held fixed.
    Ku_axis : 3-sequence
    cancel : threading.Event or callable, optional
        Passed to the minimizer.
    stats : EquilibriumStats
    """

    tol: float = DEFAULT_TORQUE_TOL
    max_iter: int = 50000
    newton: bool = True
    cg_tol: float = 1e-9
    cg_max_iter: int = 5000
    external_field: object = None
    Ku_axis: tuple = (0.0, 0.0, 1.0)
    cancel: object = None
    stats: EquilibriumStats = field(default_factory=EquilibriumStats)


PARAMETER_NAMES = ("Ms", "A", "Ku", "D", "bias")
"""The names an equilibrium depends on (``bias`` optional)."""


def build_model(grid: Grid, parameters: dict, settings: EquilibriumSettings, pinning=None,
                fuse: bool = True) -> EnergyModel:
    """Energy model of ``parameters`` (name -> tensor: ``Ms, A, Ku, D`` and optionally ``bias``);
    ``fuse=False`` for a model that is differentiated w.r.t. its parameters once (``EnergyModel``)."""
    material = Material(Ms=parameters["Ms"], A=parameters["A"], Ku=parameters["Ku"], D=parameters["D"],
                        Ku_axis=settings.Ku_axis)
    return EnergyModel(grid, material, external_field=settings.external_field, bias_field=parameters.get("bias"),
                       pinning=pinning, fuse=fuse)


NEWTON_ROUNDS = 4
"""Newton phases of one tight relaxation (``relax_tight``) before it ends with gradient steps alone."""


def relax_tight(model: EnergyModel, m_start: torch.Tensor, settings: EquilibriumSettings):
    """Relax one state to ``settings.tol``: Barzilai-Borwein steps to ``SWITCH_TORQUE``, then (with
    ``settings.newton``) Newton steps; where those stop short (not yet near a minimum), more
    Barzilai-Borwein steps to a tenth of the torque reached and Newton again, up to
    ``NEWTON_ROUNDS`` times, and Barzilai-Borwein steps to the end.

    Returns ``(m, RelaxInfo)``; ``iterations`` counts the Barzilai-Borwein iterations, the Newton
    work goes to ``settings.stats``.
    """
    stats = settings.stats
    polish = settings.newton and settings.tol < SWITCH_TORQUE and m_start.ndim == 4
    m, info = minimize(model, m_start, tol=SWITCH_TORQUE if polish else settings.tol, max_iter=settings.max_iter,
                       cancel=settings.cancel)
    if not polish or not info.converged or info.cancelled:
        return m, info
    iterations = info.iterations
    for _ in range(NEWTON_ROUNDS):
        m, newton = newton_relax(model, m, settings.tol, cancel=settings.cancel)
        stats.newton_steps += newton.steps
        stats.newton_cg_iterations += newton.cg_iterations
        if newton.reason == "cancelled":
            return m, RelaxInfo(iterations, newton.max_torque, info.energy, False, info.wall_time, cancelled=True)
        if newton.converged:
            return m, RelaxInfo(iterations, newton.max_torque, info.energy, True, info.wall_time,
                                field_evaluations=info.field_evaluations)
        rest = max(settings.max_iter - iterations, 1)
        m, info = minimize(model, m, tol=max(settings.tol, 0.1 * newton.max_torque), max_iter=rest,
                           cancel=settings.cancel)
        iterations += info.iterations
        if info.cancelled or not info.converged or info.max_torque < settings.tol:
            info.iterations = iterations
            return m, info
    m, info = minimize(model, m, tol=settings.tol, max_iter=max(settings.max_iter - iterations, 1),
                       cancel=settings.cancel)
    info.iterations += iterations
    return m, info


def adjoint(model: EnergyModel, m: torch.Tensor, grad_m: torch.Tensor, settings: EquilibriumSettings):
    """``lam`` with ``Hess lam = P grad_m`` (the ``mu0 V`` factor included); tangent, ``m``'s shape."""
    with torch.no_grad():
        hessian = TangentHessian(model, m)
        rhs = hessian.project(grad_m)
        x, info = conjugate_gradient(hessian, rhs, hessian.project, settings.cg_tol, settings.cg_max_iter)
    settings.stats.cg_iterations += info.iterations
    settings.stats.adjoint_solves += 1
    settings.stats.cg_residuals.append(info.residual)
    return x / (MU0 * model.grid.cell_volume)


def energy_gradient(model: EnergyModel, m: torch.Tensor) -> torch.Tensor:
    """``grad_m E = -mu0 V Ms H_eff(m)`` (J per unit of m), ``m``'s shape."""
    return -(MU0 * model.grid.cell_volume) * model.Ms.unsqueeze(-1) * model.field(m)


class _Equilibrium(torch.autograd.Function):
    """``(m_start, *values) -> m*`` with the implicit backward pass; ``names`` label ``values``."""

    @staticmethod
    def forward(ctx, grid, settings, pinning, names, m_start, *values):
        model = build_model(grid, dict(zip(names, values)), settings, pinning)
        start = time.perf_counter()
        m, info = relax_tight(model, m_start.detach(), settings)
        stats = settings.stats
        stats.relax_time += time.perf_counter() - start
        stats.relax_iterations += info.iterations
        stats.relaxations += 1
        stats.last_info = info
        ctx.grid, ctx.settings, ctx.pinning, ctx.names = grid, settings, pinning, names
        ctx.save_for_backward(m, *values)
        return m

    @staticmethod
    def backward(ctx, grad_m):
        m, *values = ctx.saved_tensors
        settings = ctx.settings
        start = time.perf_counter()
        with torch.enable_grad():
            leaves = [v.detach().requires_grad_(ctx.needs_input_grad[5 + i]) for i, v in enumerate(values)]
            model = build_model(ctx.grid, dict(zip(ctx.names, leaves)), settings, ctx.pinning, fuse=False)
            detached = build_model(ctx.grid, dict(zip(ctx.names, values)), settings, ctx.pinning)
            lam = adjoint(detached, m, grad_m, settings)
            wanted = [p for p in leaves if p.requires_grad]
            grads = {}
            if wanted:
                s = (lam * energy_gradient(model, m)).sum()
                found = torch.autograd.grad(s, wanted, allow_unused=True)
                grads = {id(p): g for p, g in zip(wanted, found)}
        settings.stats.adjoint_time += time.perf_counter() - start
        out = [None if grads.get(id(p)) is None else -grads[id(p)] for p in leaves]
        return (None, None, None, None, None, *out)


def _checked(parameters: dict) -> tuple:
    unknown = set(parameters) - set(PARAMETER_NAMES)
    missing = {"Ms", "A", "Ku", "D"} - set(parameters)
    if unknown or missing:
        raise ValueError(f"parameters must name Ms, A, Ku, D and optionally bias; unknown {sorted(unknown)}, "
                         f"missing {sorted(missing)}")
    names = tuple(name for name in PARAMETER_NAMES if parameters.get(name) is not None)
    return names, tuple(parameters[name] for name in names)


def equilibrium(m_start: torch.Tensor, grid: Grid, parameters: dict, settings: EquilibriumSettings | None = None,
                pinning=None) -> torch.Tensor:
    """Relaxed state ``m*`` (``(nz, ny, nx, 3)`` tensor), differentiable w.r.t. the parameters.

    Parameters
    ----------
    m_start : tensor (nz, ny, nx, 3)
        Starting state (unit vectors; no gradient flows to it).
    grid : Grid
    parameters : dict name -> tensor
        ``Ms, A, Ku, D`` (0-d or ``(nz, ny, nx)`` maps; A/m, J/m, J/m^3, J/m^2) and optionally
        ``bias`` (``(nz, ny, nx, 3)`` or a 3-vector, H in A/m); any may require grad.
    settings : EquilibriumSettings, optional
    pinning : pinning.SkyrmionPinning, optional
        Holds skyrmions at given centres (not differentiated).

    Returns
    -------
    m* : tensor (nz, ny, nx, 3). Its gradient w.r.t. the parameters is the implicit one.
    """
    settings = settings or EquilibriumSettings()
    names, values = _checked(parameters)
    return _Equilibrium.apply(grid, settings, pinning, names, m_start, *values)


def unrolled_equilibrium(m_start: torch.Tensor, grid: Grid, parameters: dict,
                         settings: EquilibriumSettings | None = None, steps: int = 200, pinning=None) -> torch.Tensor:
    """``steps`` projected steepest-descent steps kept in the autograd graph (backpropagation
    through the relaxation).

    The step lengths are Barzilai-Borwein lengths computed on detached values, so the graph holds
    only the updates ``m <- normalize(m + tau H_perp)``. Memory grows linearly with ``steps``;
    this exists to check ``equilibrium``'s implicit gradients and to measure that difference.
    Arguments as for ``equilibrium``; returns ``(nz, ny, nx, 3)``.
    """
    settings = settings or EquilibriumSettings()
    _checked(parameters)
    model = build_model(grid, parameters, settings, pinning)
    start = time.perf_counter()
    m = m_start.detach()
    previous = None
    tau = None
    for _ in range(steps):
        h = model.field(m)
        d = h - (m * h).sum(-1, keepdim=True) * m
        d_plain = d.detach()
        if previous is None:
            tau = 1e-2 / float(torch.linalg.vector_norm(d_plain, dim=-1).max().clamp_min(1e-300))
        else:
            s, y = m.detach() - previous[0], previous[1] - d_plain
            sy = float((s * y).sum())
            if sy > 0:
                tau = sy / float((y * y).sum())
        previous = (m.detach(), d_plain)
        m = m + tau * d
        m = m / torch.linalg.vector_norm(m, dim=-1, keepdim=True)
    settings.stats.relax_time += time.perf_counter() - start
    settings.stats.relax_iterations += steps
    settings.stats.relaxations += 1
    return m
