"""The relaxed state as a differentiable function of the material parameters and the bias field.

``equilibrium(m_start, grid, Ms, A, Ku, D, bias)`` relaxes ``m_start`` with the energy minimizer
(no autograd graph) and returns ``m*``. Its backward pass differentiates the equilibrium
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

from .energy import EnergyModel
from .grid import MU0, Grid, Material
from .relax import DEFAULT_TORQUE_TOL, minimize


@dataclass
class EquilibriumStats:
    """Work done by ``equilibrium`` calls (accumulated; reset by the caller).

    ``relax_time`` and ``adjoint_time`` are seconds; ``relax_iterations`` minimizer iterations;
    ``cg_iterations`` conjugate-gradient iterations of the adjoint solves; ``last_info`` the
    ``RelaxInfo`` of the last relaxation; ``cg_residuals`` the final relative residual of each
    adjoint solve.
    """

    relax_time: float = 0.0
    adjoint_time: float = 0.0
    relax_iterations: int = 0
    relaxations: int = 0
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
        Relaxation iteration limit.
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
    cg_tol: float = 1e-9
    cg_max_iter: int = 5000
    external_field: object = None
    Ku_axis: tuple = (0.0, 0.0, 1.0)
    cancel: object = None
    stats: EquilibriumStats = field(default_factory=EquilibriumStats)


def build_model(grid: Grid, params: tuple, settings: EquilibriumSettings) -> EnergyModel:
    """Energy model of ``params = (Ms, A, Ku, D, bias)`` (tensors; ``bias`` may be ``None``)."""
    Ms, A, Ku, D, bias = params
    material = Material(Ms=Ms, A=A, Ku=Ku, D=D, Ku_axis=settings.Ku_axis)
    return EnergyModel(grid, material, external_field=settings.external_field, bias_field=bias)


def linear_field(model: EnergyModel, v: torch.Tensor) -> torch.Tensor:
    """``H_lin(v)`` (A/m): the effective field of ``v`` without the (constant) Zeeman part."""
    h = model.field(v)
    return h if model.zeeman is None else h - model.zeeman.h


class TangentHessian:
    """The operator ``v -> Ms [(m . H_eff) v - P H_lin(v)]`` on tangent vectors at ``m``.

    It is ``Hess / (mu0 V)`` (see the module docstring); ``m`` is an equilibrium ``(nz, ny, nx, 3)``.
    Vacuum cells map to 0 and are projected out.
    """

    def __init__(self, model: EnergyModel, m: torch.Tensor):
        self.model = model
        self.m = m
        Ms = model.Ms.expand(m.shape[:-1])
        self.Ms = Ms.unsqueeze(-1)
        self.magnetic = (Ms > 0).unsqueeze(-1).to(m.dtype)
        h = model.field(m)
        self.mh = (m * h).sum(-1, keepdim=True)

    def project(self, v: torch.Tensor) -> torch.Tensor:
        """Tangent projection ``(1 - m m^T) v`` in the magnetic cells, 0 in vacuum."""
        return (v - (self.m * v).sum(-1, keepdim=True) * self.m) * self.magnetic

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return self.Ms * (self.mh * v - self.project(linear_field(self.model, v)))


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Inner product over ``(nz, ny, nx, 3)``, kept as ``(..., 1, 1, 1, 1)`` for broadcasting."""
    return (a * b).sum(dim=(-4, -3, -2, -1), keepdim=True)


def conjugate_gradient(operator, b: torch.Tensor, project, tol: float, max_iter: int, cancel=None, x0=None):
    """Solve ``operator x = b`` for a symmetric positive definite operator on tangent vectors.

    ``b`` is ``(nz, ny, nx, 3)`` or a batch ``(B, nz, ny, nx, 3)`` of independent right-hand sides
    (solved together: one batched operator call per iteration), already tangent. ``x0`` (``b``'s
    shape, optional) is a starting guess, projected to the tangent space first (e.g. the solution
    of a nearby system). Each system stops when ``|r| <= tol |b|``; a set ``cancel``
    (``threading.Event``) stops all at once. Returns ``(x, iterations, largest relative residual)``.
    """
    bb = _dot(b, b)
    if x0 is None:
        x = torch.zeros_like(b)
        r = b.clone()
    else:
        x = project(x0)
        r = b - project(operator(x))
    p = r.clone()
    rr = _dot(r, r)
    target = tol * tol * bb
    active = bb > 0
    iteration = 0
    while bool(active.any()) and iteration < max_iter:
        if cancel is not None and cancel.is_set():
            break
        iteration += 1
        Ap = project(operator(p))
        pAp = _dot(p, Ap)
        alpha = torch.where(active, rr / torch.where(active, pAp, torch.ones_like(pAp)), torch.zeros_like(rr))
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = _dot(r, r)
        beta = torch.where(active, rr_new / torch.where(active, rr, torch.ones_like(rr)), torch.zeros_like(rr))
        p = project(r + beta * p)  # keeps the search direction tangent to round-off
        rr = torch.where(active, rr_new, rr)
        active = active & (rr > target)
    residual = torch.sqrt(rr / torch.where(bb > 0, bb, torch.ones_like(bb)))
    return x, iteration, float(residual.max())


def adjoint(model: EnergyModel, m: torch.Tensor, grad_m: torch.Tensor, settings: EquilibriumSettings):
    """``lam`` with ``Hess lam = P grad_m`` (the ``mu0 V`` factor included); tangent, ``m``'s shape."""
    with torch.no_grad():
        hessian = TangentHessian(model, m)
        rhs = hessian.project(grad_m)
        x, iterations, residual = conjugate_gradient(hessian, rhs, hessian.project, settings.cg_tol,
                                                     settings.cg_max_iter)
    settings.stats.cg_iterations += iterations
    settings.stats.adjoint_solves += 1
    settings.stats.cg_residuals.append(residual)
    return x / (MU0 * model.grid.cell_volume)


def energy_gradient(model: EnergyModel, m: torch.Tensor) -> torch.Tensor:
    """``grad_m E = -mu0 V Ms H_eff(m)`` (J per unit of m), ``m``'s shape."""
    return -(MU0 * model.grid.cell_volume) * model.Ms.unsqueeze(-1) * model.field(m)


class _Equilibrium(torch.autograd.Function):
    """``(m_start, Ms, A, Ku, D, bias) -> m*`` with the implicit backward pass."""

    @staticmethod
    def forward(ctx, grid, settings, m_start, Ms, A, Ku, D, bias):
        params = (Ms, A, Ku, D, bias)
        model = build_model(grid, params, settings)
        start = time.perf_counter()
        m, info = minimize(model, m_start.detach(), tol=settings.tol, max_iter=settings.max_iter,
                           cancel=settings.cancel)
        stats = settings.stats
        stats.relax_time += time.perf_counter() - start
        stats.relax_iterations += info.iterations
        stats.relaxations += 1
        stats.last_info = info
        ctx.grid, ctx.settings = grid, settings
        ctx.none_bias = bias is None
        ctx.save_for_backward(m, Ms, A, Ku, D, bias if bias is not None else torch.zeros(()))
        return m

    @staticmethod
    def backward(ctx, grad_m):
        m, *params = ctx.saved_tensors
        if ctx.none_bias:
            params[-1] = None
        settings = ctx.settings
        start = time.perf_counter()
        with torch.enable_grad():
            leaves = [p.detach().requires_grad_(ctx.needs_input_grad[3 + i]) if p is not None else None
                      for i, p in enumerate(params)]
            model = build_model(ctx.grid, tuple(leaves), settings)
            lam = adjoint(_detached_model(ctx.grid, leaves, settings), m, grad_m, settings)
            wanted = [p for p in leaves if p is not None and p.requires_grad]
            grads = {}
            if wanted:
                s = (lam * energy_gradient(model, m)).sum()
                found = torch.autograd.grad(s, wanted, allow_unused=True)
                grads = {id(p): g for p, g in zip(wanted, found)}
        settings.stats.adjoint_time += time.perf_counter() - start
        out = []
        for p in leaves:
            g = grads.get(id(p)) if p is not None else None
            out.append(None if g is None else -g)
        return (None, None, None, *out)


def _detached_model(grid: Grid, leaves, settings: EquilibriumSettings) -> EnergyModel:
    """The model with every parameter detached (for the Hessian, which needs no parameter graph)."""
    return build_model(grid, tuple(p.detach() if p is not None else None for p in leaves), settings)


def equilibrium(m_start: torch.Tensor, grid: Grid, Ms, A, Ku, D, bias=None,
                settings: EquilibriumSettings | None = None) -> torch.Tensor:
    """Relaxed state ``m*`` (``(nz, ny, nx, 3)`` tensor), differentiable w.r.t. the parameters.

    Parameters
    ----------
    m_start : tensor (nz, ny, nx, 3)
        Starting state (unit vectors; no gradient flows to it).
    grid : Grid
    Ms, A, Ku, D : tensors (0-d or (nz, ny, nx) maps)
        A/m, J/m, J/m^3, J/m^2; any may require grad.
    bias : tensor (nz, ny, nx, 3) or 3-vector, optional
        Bias field H (A/m); may require grad.
    settings : EquilibriumSettings, optional

    Returns
    -------
    m* : tensor (nz, ny, nx, 3). Its gradient w.r.t. the parameters is the implicit one.
    """
    settings = settings or EquilibriumSettings()
    return _Equilibrium.apply(grid, settings, m_start, Ms, A, Ku, D, bias)


def unrolled_equilibrium(m_start: torch.Tensor, grid: Grid, Ms, A, Ku, D, bias=None,
                         settings: EquilibriumSettings | None = None, steps: int = 200) -> torch.Tensor:
    """``steps`` projected steepest-descent steps kept in the autograd graph (backpropagation
    through the relaxation).

    The step lengths are Barzilai-Borwein lengths computed on detached values, so the graph holds
    only the updates ``m <- normalize(m + tau H_perp)``. Memory grows linearly with ``steps``;
    this exists to check ``equilibrium``'s implicit gradients and to measure that difference.
    Arguments as for ``equilibrium``; returns ``(nz, ny, nx, 3)``.
    """
    settings = settings or EquilibriumSettings()
    model = build_model(grid, (Ms, A, Ku, D, bias), settings)
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
