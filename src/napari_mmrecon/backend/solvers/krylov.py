"""The one Krylov solver of the backend: batched conjugate gradients.

Every linear solve of the inverse problems goes through ``conjugate_gradient``: the Newton steps
of a relaxation, the adjoint and tangent solves of the implicit gradients (symmetric positive
definite tangent-space Hessians), and the early-stopped least squares of the image estimate
(``normal_equations``: CG on ``K^T K x = K^T b``, the CGLS recursion).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class KrylovInfo:
    """How a ``conjugate_gradient`` call ended.

    ``iterations`` (operator applications), ``residual`` the largest relative residual
    ``|r| / |b|`` over the systems, ``negative_curvature`` whether a direction with
    ``p . A p <= 0`` stopped a system (the operator is not positive definite there; that
    system's iterate is the last one before it).
    """

    iterations: int
    residual: float
    negative_curvature: bool = False


def _dot(a: torch.Tensor, b: torch.Tensor, dims: int) -> torch.Tensor:
    """Inner products over the last ``dims`` axes, kept as size-1 axes for broadcasting."""
    axes = tuple(range(-dims, 0))
    return (a * b).sum(dim=axes, keepdim=True)


def conjugate_gradient(operator, b: torch.Tensor, project=None, tol: float = 1e-9, max_iter: int = 1000,
                       cancel=None, x0=None, dims: int = 4):
    """Solve ``operator x = b`` for a symmetric positive (semi-)definite operator.

    Parameters
    ----------
    operator : callable
        ``x -> A x`` on tensors of ``b``'s shape (applied to the whole batch at once).
    b : tensor
        One system (its last ``dims`` axes) or a batch of independent systems along the leading
        axes, e.g. ``(nz, ny, nx, 3)`` or ``(B, nz, ny, nx, 3)`` for ``dims = 4``.
    project : callable, optional
        Projection onto the solution space (e.g. the tangent space of the unit sphere), applied
        to the operator's output and to the search directions; ``b`` must already lie in it.
    tol : float
        Each system stops when ``|r| <= tol |b|``.
    max_iter : int
    cancel : threading.Event, optional
        When set, all systems stop at once.
    x0 : tensor, optional
        Starting guess (projected first), e.g. the solution of a nearby system.
    dims : int
        Number of trailing axes of one system.

    Returns
    -------
    (x, KrylovInfo)
        A system that meets a direction of non-positive curvature stops there (its iterate so far
        is kept) and sets ``negative_curvature``.
    """
    project = project or (lambda v: v)
    bb = _dot(b, b, dims)
    if x0 is None:
        x = torch.zeros_like(b)
        r = b.clone()
    else:
        x = project(x0)
        r = b - project(operator(x))
    p = r.clone()
    rr = _dot(r, r, dims)
    target = tol * tol * bb
    active = (bb > 0) & (rr > target)
    iteration = 0
    negative = False
    while bool(active.any()) and iteration < max_iter:
        if cancel is not None and cancel.is_set():
            break
        iteration += 1
        Ap = project(operator(p))
        pAp = _dot(p, Ap, dims)
        curved = pAp > 0
        if bool((active & ~curved).any()):
            negative = True
            active = active & curved
        alpha = torch.where(active, rr / torch.where(curved, pAp, torch.ones_like(pAp)), torch.zeros_like(rr))
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = _dot(r, r, dims)
        beta = torch.where(active, rr_new / torch.where(rr > 0, rr, torch.ones_like(rr)), torch.zeros_like(rr))
        p = project(r + beta * p)  # keeps the search direction in the solution space to round-off
        rr = torch.where(active, rr_new, rr)
        active = active & (rr > target)
    residual = torch.sqrt(rr / torch.where(bb > 0, bb, torch.ones_like(bb)))
    return x, KrylovInfo(iteration, float(residual.max()), negative)


def normal_equations(forward, adjoint, b: torch.Tensor, x_shape, iterations: int):
    """Early-stopped least squares ``min |forward(x) - b|^2`` by ``iterations`` CG steps on the
    normal equations ``adjoint(forward(x)) = adjoint(b)`` from ``x = 0`` (the CGLS iterates;
    early stopping regularizes: the leading singular directions converge first).

    ``forward`` maps ``x`` (shape ``x_shape``) to ``b``'s shape, ``adjoint`` back. Returns ``x``.
    """
    rhs = adjoint(b)
    if not bool((rhs != 0).any()):
        return torch.zeros(x_shape, dtype=b.dtype, device=b.device)
    x, _ = conjugate_gradient(lambda v: adjoint(forward(v)), rhs, tol=0.0, max_iter=iterations, dims=len(x_shape))
    return x
