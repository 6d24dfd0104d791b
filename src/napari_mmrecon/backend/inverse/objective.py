"""The misfit of a fit over named parameters: relaxed image, residual, gradient and Jacobian at a point.

An ``Objective`` holds no state that changes during a fit: ``evaluate(theta, m_start, ...)``
relaxes from the given start and returns an ``Evaluation``; ``jacobian(evaluation)`` returns
``dS/dtheta`` there. What changes (the best state, the warm start, the topology guard, the
timings) lives in a ``fit_state.FitState``.

The parameters (``parameter_set.ParameterSet``) may include the material (``Ms, A, Ku, D``:
scalars, or per-cell maps for gradient methods), the plane distance (``height``), an image
``offset`` and ``gain`` (``S = gain * S0 + offset``), the skyrmion ``centers`` where a
``pinning.SkyrmionPinning`` holds them, and a z
``bias`` map in units of the start's anisotropy field (gradient methods).

The misfit is ``L = mean((S(m*(p), p) - target)^2) / mean(target^2)`` (plus the bias map's
penalty) with ``m*(p)`` the equilibrium at ``p`` under the bias field of the stage (a fixed
shape times ``bias_scale``, or the optimized map), and ``S`` the measurement's forward operator.
A stack of images ``(nh, ny, nx)`` (several heights, both sides, MFM passes) takes one measurement
per image; each image is normalized by its own power and the misfit is their mean, so that a
weak image (far away, the weak side) counts as much as a strong one.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import torch

from ..physics.analysis import topological_charge
from ..solvers.equilibrium import (EquilibriumSettings, TangentHessian, build_model, conjugate_gradient, energy_gradient,
                          equilibrium, unrolled_equilibrium)
from ..physics.grid import MU0, Grid
from ..forward.measurement import height_derivative, simulate_image
from .parameter_set import ParameterSet

MATERIAL_PARAMETERS = ("Ms", "A", "Ku", "D")
IMAGE_PARAMETERS = ("offset", "gain")
"""The image's own additive constant and multiplicative scale: ``S = gain * S0 + offset``."""


class FitCancelled(Exception):
    """Raised inside the objective when the user cancels; the fit keeps its best state."""


def is_cancelled(cancel) -> bool:
    """Whether a ``threading.Event`` is set or a callable returns True (``None``: never)."""
    if cancel is None:
        return False
    return cancel.is_set() if hasattr(cancel, "is_set") else bool(cancel())


@dataclass
class Evaluation:
    """The objective at one point.

    ``theta`` (detached), ``bias_scale`` of the fixed bias shape, the relaxed ``m``
    ``(nz, ny, nx, 3)``, its ``image`` ``(ny, nx)``, ``loss`` (misfit plus penalty) and ``misfit``
    (normalized), whether the relaxation ``converged`` to ``relax_tol``, the skyrmion number
    ``charge`` (of a field series: one per image, ``field_series``), and ``values`` (name -> float of the scalar parameters).
    """

    theta: torch.Tensor
    bias_scale: float
    m: torch.Tensor
    image: torch.Tensor
    loss: float
    misfit: float
    converged: bool
    charge: float
    relax_tol: float
    values: dict


class Objective:
    """The misfit of the relaxed image over a ``ParameterSet``.

    Parameters
    ----------
    grid : Grid
    measurement : StrayFieldMeasurement or MFMMeasurement, or a sequence of them
        One per image of a stack.
    target : tensor (ny, nx), or (nh, ny, nx) with a sequence of ``nh`` measurements
    parameters : ParameterSet
        Optimized and fixed values; the fixed ones must include every one of ``Ms, A, Ku, D``
        that is not optimized, ``height`` and ``offset`` (``gain``, if absent, is 1).
    settings : EquilibriumSettings
        How to relax; ``tol`` is replaced per call by ``evaluate``'s ``relax_tol``.
    pinning : SkyrmionPinning, optional
        Holds the skyrmions (at the ``centers`` parameter when that is optimized).
    bias_shape : tensor (nz, ny, nx, 3), optional
        The fixed bias field (A/m) at scale 1.
    follow_anisotropy : bool
        Scale the bias with ``H_K / H_K0`` at the trial parameters (see ``bias_field``).
    bias_weights : (w_size, w_smooth)
        Penalty of an optimized bias map.
    gradient : "implicit" or "unrolled"
    unrolled_steps : int
    """

    def __init__(self, grid: Grid, measurement, target: torch.Tensor, parameters: ParameterSet,
                 settings: EquilibriumSettings, pinning=None, bias_shape=None, follow_anisotropy: bool = False,
                 bias_weights=(0.0, 0.0), gradient: str = "implicit", unrolled_steps: int = 200):
        self.grid = grid
        self.measurement = measurement
        self.target = target
        self.stacked = isinstance(measurement, (list, tuple))
        if self.stacked and (target.ndim != 3 or len(measurement) != target.shape[0]):
            raise ValueError(f"a stack of {len(measurement)} measurements needs a target (nh, ny, nx) with "
                             f"nh = {len(measurement)}, got shape {tuple(target.shape)}")
        if self.stacked and "height" in parameters:
            raise ValueError("the height is fitted for one image, not for a stack")
        self.power = float((target * target).mean())
        self.norm = math.sqrt(target.numel() * self.power)
        power = (target * target).mean(dim=(-2, -1), keepdim=True) if self.stacked else self.power
        self.scale = power ** -0.5 / math.sqrt(target.numel())
        """Per image ``1 / sqrt(N power_i)`` (a float for one image): ``residual = (S - target) scale``."""
        self.parameters = parameters
        self.settings = settings
        self.pinning = pinning
        self.bias_shape = bias_shape
        self.follow_anisotropy = follow_anisotropy
        self.bias_weights = tuple(bias_weights)
        self.gradient = gradient
        self.unrolled_steps = unrolled_steps
        start = parameters.values(parameters.zeros(target))
        self.start = {k: float(v) for k, v in start.items() if isinstance(v, torch.Tensor) and v.numel() == 1}
        Ms0, Ku0 = float(start["Ms"].mean()), float(start["Ku"].mean())
        self.anisotropy_field0 = 2 * Ku0 / (MU0 * Ms0) if Ms0 else 0.0
        self.anisotropy_ratio0 = Ku0 / Ms0 if Ms0 else 0.0

    # ------------------------------------------------------------------ the model at a point

    def bias_field(self, values: dict, bias_scale: float):
        """The bias field H (A/m) or None: the optimized map ``H_K0 beta z^`` (``values["bias"]``,
        ``beta (nz, ny, nx)``; ``bias_scale`` 0 drops it), or ``bias_scale`` times the fixed shape.

        With ``follow_anisotropy`` (a bias shaped from the image) it is scaled by ``H_K / H_K0`` at
        the trial values: the misfit is nearly flat along a common scaling of A, Ku and D, and a
        bias fixed in A/m would let the fit escape its hold just by scaling them up.
        """
        if bias_scale == 0:
            return None
        if "bias" in values:
            beta = values["bias"]
            zeros = torch.zeros_like(beta)
            field = torch.stack((zeros, zeros, self.anisotropy_field0 * beta), dim=-1)
        elif self.bias_shape is not None:
            field = bias_scale * self.bias_shape
        else:
            return None
        if not self.follow_anisotropy:
            return field
        return field * ((values["Ku"] / values["Ms"]).mean() / self.anisotropy_ratio0)

    def pinning_at(self, values: dict):
        """The pinning at the trial centres (or the fixed one), or None."""
        if self.pinning is None or "centers" not in values:
            return self.pinning
        return self.pinning.moved_to(values["centers"].reshape(-1, 2))

    def physics(self, values: dict, bias_scale: float) -> dict:
        """The equilibrium's parameters (``Ms, A, Ku, D, bias``) at ``values``."""
        out = {name: values[name] for name in MATERIAL_PARAMETERS}
        out["bias"] = self.bias_field(values, bias_scale)
        return out

    def image(self, m: torch.Tensor, values: dict) -> torch.Tensor:
        """Simulated image ``(ny, nx)`` (a stack: ``(nh, ny, nx)``) of ``m`` at ``values`` (the height if
        fitted): ``gain * S(m) + offset``."""
        if self.stacked:
            image = torch.stack([simulate_image(measurement, m, self.grid, values["Ms"]) for measurement
                                 in self.measurement])
        else:
            distance = values["height"] if "height" in self.parameters else None
            image = simulate_image(self.measurement, m, self.grid, values["Ms"], distance)
        if "gain" in values:
            image = values["gain"] * image
        return image + values["offset"]

    def penalty(self, values: dict):
        """``w_size mean(beta^2) + w_smooth mean(|grad beta|^2)`` (cell differences) of a bias map."""
        if "bias" not in values:
            return 0.0
        beta = values["bias"]
        w_size, w_smooth = self.bias_weights
        gx = beta[..., :, 1:] - beta[..., :, :-1]
        gy = beta[..., 1:, :] - beta[..., :-1, :]
        return w_size * (beta ** 2).mean() + w_smooth * ((gx ** 2).mean() + (gy ** 2).mean())

    def relaxed(self, values: dict, m_start: torch.Tensor, bias_scale: float, relax_tol: float) -> torch.Tensor:
        """The equilibrium at ``values`` from ``m_start`` (differentiable w.r.t. the values)."""
        settings = dataclasses.replace(self.settings, tol=relax_tol)
        physics = self.physics(values, bias_scale)
        pinning = self.pinning_at(values)
        if self.gradient == "unrolled":
            return unrolled_equilibrium(m_start, self.grid, physics, settings, self.unrolled_steps, pinning)
        return equilibrium(m_start, self.grid, physics, settings, pinning)

    # ------------------------------------------------------------------ residual, gradient, Jacobian

    def evaluate(self, theta: torch.Tensor, m_start: torch.Tensor, bias_scale: float, relax_tol: float,
                 graph: bool = False):
        """The objective at ``theta``, relaxed from ``m_start`` to ``relax_tol``.

        Returns an ``Evaluation``; with ``graph`` also the loss as a tensor carrying the graph to
        ``theta`` (implicit gradients through the equilibrium), as ``(Evaluation, loss)``. Raises
        ``FitCancelled`` when the settings' ``cancel`` is set.
        """
        if is_cancelled(self.settings.cancel):
            raise FitCancelled
        with torch.set_grad_enabled(graph):
            values = self.parameters.values(theta)
            m = self.relaxed(values, m_start, bias_scale, relax_tol)
            info = self.settings.stats.last_info
            if info is not None and info.cancelled:
                raise FitCancelled
            image = self.image(m, values)
            misfit = (((image - self.target) * self.scale) ** 2).sum()
            loss = misfit + self.penalty(values)
        converged = self.gradient == "unrolled" or bool(info is not None and info.converged)
        evaluation = Evaluation(theta.detach().clone(), bias_scale, m.detach(), image.detach(), float(loss.detach()),
                                float(misfit.detach()), converged, topological_charge(m.detach()), relax_tol,
                                self.parameters.floats(theta))
        return (evaluation, loss) if graph else evaluation

    def residual(self, evaluation: Evaluation) -> torch.Tensor:
        """Normalized residual ``(S - target) / sqrt(N mean(target^2))`` (per image of a stack), flat
        ``(N,)``: its square sum is the misfit."""
        return ((evaluation.image - self.target) * self.scale).reshape(-1)

    def jacobian(self, evaluation: Evaluation, guess=None, cg_tol: float | None = None,
                 cg_max_iter: int | None = None):
        """``d residual / d theta`` ``(N, n)`` at an evaluation, and the tangent responses.

        Material columns (``Ms, A, Ku, D`` scalars): the equilibrium's tangent response
        ``Hess dm = -P d_eps grad_m E`` (one batched CG solve to ``cg_tol``, started from
        ``guess``), then the image's directional derivative along ``(dm, e_j)``. The height
        column: the image's derivative along the height alone (``measurement.height_derivative``
        times the gain, or autograd through the kernel). The offset and the gain: the image's
        derivative along them (a constant column, the gain-free image; no tangent solve when
        they are all that is fitted). The centres: the images
        of the held skyrmions translated (``SkyrmionPinning.translation_images``). Returns
        ``(J, dm)`` with ``dm`` ``(n_material, nz, ny, nx, 3)`` (None without material columns),
        the response to natural steps, usable as the next call's ``guess``.
        """
        started = time.perf_counter()
        grid, settings, params = self.grid, self.settings, self.parameters
        for p in params.parameters:
            if p.size != 1 and p.name != "centers":
                raise ValueError(f"a Jacobian needs scalar parameters; {p.name} is a map (use a gradient optimizer)")
        base = {k: v.detach() for k, v in params.values(evaluation.theta).items()}
        m, scale = evaluation.m, evaluation.bias_scale
        material = [name for name in params.names if name in MATERIAL_PARAMETERS + IMAGE_PARAMETERS]
        columns = {}
        tangent = None

        def values_of(eps):
            out = dict(base)
            for i, name in enumerate(material):
                out[name] = params[name].natural(base[name], eps[i])
            return out

        def energy_grad(eps):
            v = values_of(eps)
            model = build_model(grid, self.physics(v, scale), settings, self.pinning_at(base), fuse=False)
            return energy_gradient(model, m)

        def image(m_, eps):
            return self.image(m_, values_of(eps))

        if material:
            eps0 = torch.zeros(len(material), dtype=grid.dtype, device=grid.device)
            directions = torch.eye(len(material), dtype=grid.dtype, device=grid.device)
            if any(name in MATERIAL_PARAMETERS for name in material):
                model = build_model(grid, self.physics(base, scale), settings, self.pinning_at(base))
                hessian = TangentHessian(model, m)
                b = torch.stack([torch.autograd.functional.jvp(energy_grad, eps0, e)[1] for e in directions])
                rhs = -hessian.project(b) / (MU0 * grid.cell_volume)
                cancel = settings.cancel if hasattr(settings.cancel, "is_set") else None
                if guess is not None and guess.shape != rhs.shape:
                    guess = None
                tangent, info = conjugate_gradient(hessian, rhs, hessian.project, cg_tol or settings.cg_tol,
                                                   cg_max_iter or settings.cg_max_iter, cancel, x0=guess)
                settings.stats.cg_iterations += info.iterations
                if is_cancelled(settings.cancel):
                    raise FitCancelled
            else:  # the image's offset and gain alone: the equilibrium does not respond
                tangent = torch.zeros((len(material),) + tuple(m.shape), dtype=m.dtype, device=m.device)
            for j, (name, e) in enumerate(zip(material, directions)):
                columns[name] = torch.autograd.functional.jvp(image, (m, eps0), (tangent[j], e))[1].reshape(-1, 1)
        if "height" in params:
            h = base["height"]
            dS = height_derivative(self.measurement, m, grid, base["Ms"], float(h))
            if dS is not None:
                dS = base.get("gain", 1.0) * dS
            else:
                _, dS = torch.autograd.functional.jvp(lambda d: self.image(m, dict(base, height=d)), h,
                                                      torch.ones_like(h))
            columns["height"] = (h * dS).reshape(-1, 1)
        if "centers" in params:
            pinning = self.pinning_at(base)
            with torch.no_grad():
                moved = pinning.translation_images(m, lambda dm: simulate_image(self.measurement, dm, grid,
                                                                                base["Ms"], base.get("height")))
            columns["centers"] = base.get("gain", 1.0) * params["centers"].scale * moved.reshape(moved.shape[0], -1).T
        settings.stats.adjoint_time += time.perf_counter() - started
        J = torch.cat([columns[name] for name in params.names], dim=1)
        J = J * self.scale.expand_as(self.target).reshape(-1, 1) if self.stacked else J / self.norm
        return J * params.rate(evaluation.theta), tangent
