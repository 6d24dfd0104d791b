"""The misfit of a parameter fit: parameterization, relaxed image, loss and its Jacobian.

Parameters are handled in unconstrained coordinates ``theta`` (bounds by reparameterization,
never clipping): ``p = p0 exp(B tanh(theta / B))`` with ``B = ln 10`` for Ms, A, Ku, D and the
height, so each stays within a factor of 10 of its start and keeps its sign (for D, the
chirality); ``offset = offset0 + theta * std(target)``.

The misfit is ``L = mean((S(m*(p), p) - target)^2) / mean(target^2)`` with ``m*(p)`` the equilibrium
at ``p`` under the bias field, relaxed from the best state found so far (warm start), and ``S``
the measurement's forward operator (``measurement.simulate_image``).
"""

from __future__ import annotations

import math
import time

import torch

from .equilibrium import (
    EquilibriumSettings,
    TangentHessian,
    build_model,
    conjugate_gradient,
    energy_gradient,
    equilibrium,
    unrolled_equilibrium,
)
from .analysis import topological_charge
from .grid import MU0, Grid
from .measurement import height_derivative, simulate_image

LOG_RANGE = math.log(10.0)
"""Fitted parameters stay within ``exp(+-LOG_RANGE)`` of their start."""
LOG_SCALED = ("Ms", "A", "Ku", "D", "height")
RELAX_TOL_CEILING = 1e-4
RELAX_TOL_FACTOR = 1e-3
"""Inner relaxations stop at ``max(relax_tol, min(RELAX_TOL_CEILING, RELAX_TOL_FACTOR sqrt(L_best)))``:
far from the optimum a coarse equilibrium steers the outer step as well as a tight one, and the
image error it leaves stays below the current residual ``~ sqrt(L_best)``. Soft modes (the
positions of interacting skyrmions) make that error much larger than ``torque * Ms / H_eff``: with
a factor of 1e-2 a 128 x 128 film of four skyrmions had a loss noisy at 1e-5 and stalled at
2e-6 with A, Ku, D 14 % off; with 1e-3 it reaches 1e-13 and 2e-7 relative errors."""


class FitCancelled(Exception):
    """Raised inside the objective when the user cancels; the fit keeps its best state."""


class ConfigurationLost(Exception):
    """The relaxed texture changed topology (a skyrmion collapsed or appeared) at a stage's start."""


CHARGE_TOLERANCE = 0.5
"""A relaxed state whose skyrmion number differs from the fit's first one by more than this is a
different configuration (a collapsed or created skyrmion); it never becomes the best state."""


def is_cancelled(cancel) -> bool:
    """Whether a ``threading.Event`` is set or a callable returns True (``None``: never)."""
    if cancel is None:
        return False
    return cancel.is_set() if hasattr(cancel, "is_set") else bool(cancel())


class Parameterization:
    """Maps unconstrained ``theta (n,)`` to parameter values (see the module docstring).

    Parameters
    ----------
    start : dict name -> float
        Starting values of ``Ms, A, Ku, D, height, offset`` (SI).
    names : tuple of str
        The fitted names, in the order of ``theta``.
    offset_scale : float
        Image units per unit of ``theta`` for the offset.
    """

    def __init__(self, start: dict, names: tuple, offset_scale: float):
        self.start = dict(start)
        self.names = tuple(names)
        self.offset_scale = offset_scale
        for name in self.names:
            if name in LOG_SCALED and self.start[name] == 0:
                raise ValueError(f"{name} must start from a non-zero value to be fitted (it is fitted on a log "
                                 "scale)")

    def values(self, theta: torch.Tensor) -> dict:
        """Name -> 0-d tensor (fitted ones carry the graph to ``theta``)."""
        out = {name: torch.tensor(value, dtype=theta.dtype, device=theta.device) for name, value in self.start.items()}
        for i, name in enumerate(self.names):
            if name == "offset":
                out[name] = out[name] + theta[i] * self.offset_scale
            else:
                out[name] = out[name] * torch.exp(LOG_RANGE * torch.tanh(theta[i] / LOG_RANGE))
        return out

    def floats(self, theta: torch.Tensor) -> dict:
        """Name -> float."""
        return {name: float(value.detach()) for name, value in self.values(theta.detach()).items()}

    def relative_rate(self, theta: torch.Tensor) -> torch.Tensor:
        """``(dp/dtheta) / p`` per fitted name (``(n,)``); for the offset ``(d offset/dtheta) / offset_scale = 1``."""
        rates = [torch.ones((), dtype=theta.dtype, device=theta.device) if name == "offset"
                 else 1 / torch.cosh(theta[i].detach() / LOG_RANGE) ** 2 for i, name in enumerate(self.names)]
        return torch.stack(rates)


class Objective:
    """Misfit of the equilibrium image, keeping the best state found (warm start for the next call).

    Parameters
    ----------
    grid : Grid
    measurement : StrayFieldMeasurement or MFMMeasurement
    target : tensor (ny, nx)
    param : Parameterization
    settings : EquilibriumSettings
    m_start : tensor (nz, ny, nx, 3)
    bias : tensor or None
        Fixed bias field H (A/m), or None.

    ``settings.tol`` is the tightest relaxation tolerance; see ``RELAX_TOL_FACTOR``.
    gradient : "implicit" or "unrolled"
    unrolled_steps : int
    """

    def __init__(self, grid: Grid, measurement, target: torch.Tensor, param: Parameterization,
                 settings: EquilibriumSettings, m_start: torch.Tensor, bias, gradient: str = "implicit",
                 unrolled_steps: int = 200, adaptive_tol: bool = True):
        self.grid = grid
        self.measurement = measurement
        self.target = target
        self.power = float((target * target).mean())
        self.param = param
        self.settings = settings
        self.bias = bias
        self.follow_anisotropy = False
        self.anisotropy_field0 = 2 * param.start["Ku"] / (MU0 * param.start["Ms"]) if param.start["Ms"] else 0.0
        self.bias_weights = (0.0, 0.0)
        self.gradient = gradient
        self.unrolled_steps = unrolled_steps
        self.m_best = m_start
        self.evaluations = 0
        self.lost_evaluations = 0
        self.tangent_response = None  # the last Jacobian's dm (its CG solves start the next one)
        self.charge = None
        self.relax_tol = settings.tol
        self.adaptive_tol = adaptive_tol
        self.reset_best()

    def reset_best(self):
        """Forget the best loss (the bias changed); the best state stays the warm start."""
        self.best = math.inf
        self.best_theta = None
        self.best_theta_bias = None
        self.best_image = None

    def bias_field(self, theta_bias: torch.Tensor | None, values: dict | None = None):
        """The bias field (A/m): the fixed one, or ``H_K0 * beta`` along z for an optimized map ``beta``
        (``H_K0 = 2 Ku0 / (mu0 Ms0)`` at the start).

        With ``follow_anisotropy`` (a bias shaped from the image) it is scaled by ``H_K / H_K0`` at the
        parameter ``values``: the misfit is nearly flat along a common scaling of A, Ku and D, and a
        bias fixed in A/m would let the fit escape its hold (and drift far along that valley) just
        by scaling them up; scaled with ``H_K``, its relative strength stays put.
        """
        if theta_bias is None:
            field = self.bias
        else:
            zeros = torch.zeros_like(theta_bias)
            field = torch.stack((zeros, zeros, self.anisotropy_field0 * theta_bias), dim=-1)
        if field is None or not self.follow_anisotropy or values is None:
            return field
        start = self.param.start
        return field * ((values["Ku"] / values["Ms"]) / (start["Ku"] / start["Ms"]))

    def penalty(self, theta_bias: torch.Tensor | None):
        """``w_size mean(beta^2) + w_smooth mean(|grad beta|^2)`` (cell differences) of an optimized bias."""
        if theta_bias is None:
            return 0.0
        w_size, w_smooth = self.bias_weights
        gx = theta_bias[..., :, 1:] - theta_bias[..., :, :-1]
        gy = theta_bias[..., 1:, :] - theta_bias[..., :-1, :]
        return w_size * (theta_bias ** 2).mean() + w_smooth * ((gx ** 2).mean() + (gy ** 2).mean())

    def image(self, m: torch.Tensor, values: dict) -> torch.Tensor:
        """Simulated image ``(ny, nx)`` of ``m`` at the parameter ``values`` (offset included)."""
        distance = values["height"] if "height" in self.param.names else None
        return simulate_image(self.measurement, m, self.grid, values["Ms"], distance) + values["offset"]

    def _relaxed(self, v: dict, bias) -> torch.Tensor:
        if self.gradient == "unrolled":
            return unrolled_equilibrium(self.m_best, self.grid, v["Ms"], v["A"], v["Ku"], v["D"], bias,
                                        self.settings, self.unrolled_steps)
        return equilibrium(self.m_best, self.grid, v["Ms"], v["A"], v["Ku"], v["D"], bias, self.settings)

    def __call__(self, theta: torch.Tensor, theta_bias: torch.Tensor | None = None) -> torch.Tensor:
        """Loss (0-d tensor with the graph to ``theta`` and ``theta_bias``); raises ``FitCancelled``.

        The best state is updated only by converged relaxations of the first state's topology
        (``CHARGE_TOLERANCE``).
        """
        if is_cancelled(self.settings.cancel):
            raise FitCancelled
        self.evaluations += 1
        if self.adaptive_tol:
            coarse = RELAX_TOL_FACTOR * math.sqrt(self.best) if math.isfinite(self.best) else RELAX_TOL_CEILING
            self.settings.tol = max(self.relax_tol, min(RELAX_TOL_CEILING, coarse))
        v = self.param.values(theta)
        m = self._relaxed(v, self.bias_field(theta_bias, v))
        info = self.settings.stats.last_info
        if info is not None and info.cancelled:
            raise FitCancelled
        if self.gradient == "implicit" and not info.converged:
            self.lost_evaluations += 1  # no equilibrium within the iteration cap: never the best state
            return ((self.image(m, v) - self.target) ** 2).mean() / self.power
        image = self.image(m, v)
        loss = ((image - self.target) ** 2).mean() / self.power + self.penalty(theta_bias)
        value = float(loss.detach())
        charge = topological_charge(m.detach())
        if self.charge is None:
            self.charge = charge
        if abs(charge - self.charge) > CHARGE_TOLERANCE:
            self.lost_evaluations += 1
            return loss
        if math.isfinite(value) and value < self.best:
            self.best = value
            self.best_theta = theta.detach().clone()
            self.best_theta_bias = None if theta_bias is None else theta_bias.detach().clone()
            self.m_best = m.detach()
            self.best_image = image.detach()
        return loss

    def jacobian(self, cg_tol: float | None = None, cg_max_iter: int | None = None) -> torch.Tensor:
        """``dS/deps (N, n)`` at the best state, for relative changes ``p = p (1 + eps)`` of each
        fitted value (offset: ``+ eps * offset_scale``), through the equilibrium.

        Material columns: the equilibrium's tangent response ``Hess dm = -P d_eps grad_m E``
        (conjugate gradients to ``cg_tol`` or ``cg_max_iter`` iterations, defaults from ``settings``;
        all columns solved as one batch, started from the previous Jacobian's ``dm``), then the
        image's directional derivative along ``(dm, e_j)``, with the plane's kernel held fixed
        (cached). The height column (the energy does not depend on it) is the image's
        derivative along the height alone: ``measurement.height_derivative`` (analytic kernel), or
        autograd through the kernel where that has no analytic form.
        """
        started = time.perf_counter()
        grid, settings, names = self.grid, self.settings, self.param.names
        base = {k: v.detach() for k, v in self.param.values(self.best_theta).items()}
        beta = None if self.best_theta_bias is None else self.best_theta_bias.detach()
        m = self.m_best
        others = [name for name in names if name != "height"]

        def values_of(eps):
            out = dict(base)
            for i, name in enumerate(others):
                if name == "offset":
                    out[name] = base[name] + eps[i] * self.param.offset_scale
                else:
                    out[name] = base[name] * (1 + eps[i])
            return out

        def energy_grad(eps):
            v = values_of(eps)
            bias = self.bias_field(beta, v)
            return energy_gradient(build_model(grid, (v["Ms"], v["A"], v["Ku"], v["D"], bias), settings), m)

        def image(m_, eps):
            return self.image(m_, values_of(eps))

        def image_at_height(height):
            return self.image(m, dict(base, height=height))

        columns = {}
        if others:
            bias = self.bias_field(beta, base)
            hessian = TangentHessian(build_model(grid, (base["Ms"], base["A"], base["Ku"], base["D"], bias),
                                                 settings), m)
            eps0 = torch.zeros(len(others), dtype=grid.dtype, device=grid.device)
            directions = torch.eye(len(others), dtype=grid.dtype, device=grid.device)
            b = torch.stack([torch.autograd.functional.jvp(energy_grad, eps0, e)[1] for e in directions])
            rhs = -hessian.project(b) / (MU0 * grid.cell_volume)
            cancel = settings.cancel if hasattr(settings.cancel, "is_set") else None
            guess = self.tangent_response
            if guess is not None and guess.shape != rhs.shape:
                guess = None
            dm, iterations, _ = conjugate_gradient(hessian, rhs, hessian.project, cg_tol or settings.cg_tol,
                                                   cg_max_iter or settings.cg_max_iter, cancel, x0=guess)
            self.tangent_response = dm
            settings.stats.cg_iterations += iterations
            if is_cancelled(settings.cancel):
                raise FitCancelled
            for j, (name, e) in enumerate(zip(others, directions)):
                columns[name] = torch.autograd.functional.jvp(image, (m, eps0), (dm[j], e))[1].reshape(-1)
        if "height" in names:
            h = base["height"]
            dS = height_derivative(self.measurement, m, grid, base["Ms"], float(h))
            if dS is None:
                _, dS = torch.autograd.functional.jvp(image_at_height, h, torch.ones_like(h))
            columns["height"] = (h * dS).reshape(-1)
        settings.stats.adjoint_time += time.perf_counter() - started
        return torch.stack([columns[name] for name in names], dim=1)
