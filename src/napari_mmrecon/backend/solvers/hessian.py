"""The energy's Hessian on the tangent space of the unit sphere (per cell).

For a film ``grad_m E = -mu0 V Ms H_eff(m)`` with ``H_eff = H_lin(m) + H_0``: every term but the
constant part ``H_0`` (Zeeman, the pinning's constant) is linear in ``m``. The Riemannian Hessian
on the product of spheres is, for tangent ``v``,

    Hess v = P (grad_m^2 E) v - (m . grad_m E) v = mu0 V Ms [ (m . H_eff) v - P H_lin(v) ],

one field evaluation per product; it is symmetric, and positive definite at a stable minimum.
Newton steps of the relaxation (``newton``) and the implicit gradients through an equilibrium
(``equilibrium``) solve systems with it by conjugate gradients (``krylov``).
"""

from __future__ import annotations

import torch

from ..physics.energy import EnergyModel


def linear_field(model: EnergyModel, v: torch.Tensor) -> torch.Tensor:
    """``H_lin(v)`` (A/m): the effective field of ``v`` without its constant part."""
    h = model.field(v)
    return h if model.constant_field is None else h - model.constant_field


class TangentHessian:
    """The operator ``v -> Ms [(m . H_eff) v - P H_lin(v)]`` on tangent vectors at ``m``.

    It is ``Hess / (mu0 V)`` (see the module docstring); ``m`` is ``(nz, ny, nx, 3)``, and the
    formula holds at any ``m``, not only at an equilibrium. Vacuum cells map to 0 and are projected
    out. ``field``, the effective field at ``m`` if already known, saves one evaluation.
    """

    def __init__(self, model: EnergyModel, m: torch.Tensor, field: torch.Tensor | None = None):
        self.model = model
        self.m = m
        Ms = model.Ms.expand(m.shape[:-1])
        self.Ms = Ms.unsqueeze(-1)
        self.magnetic = (Ms > 0).unsqueeze(-1).to(m.dtype)
        h = model.field(m) if field is None else field
        self.mh = (m * h).sum(-1, keepdim=True)

    def project(self, v: torch.Tensor) -> torch.Tensor:
        """Tangent projection ``(1 - m m^T) v`` in the magnetic cells, 0 in vacuum."""
        return (v - (self.m * v).sum(-1, keepdim=True) * self.m) * self.magnetic

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return self.Ms * (self.mh * v - self.project(linear_field(self.model, v)))
