"""The ``"energy"`` baseline of texture reconstruction: unit vectors fitted to the image directly.

The texture is ``m = v / |v|`` over free vectors ``v (nz, ny, nx, 3)``, and L-BFGS minimizes

    L(m) = misfit(m) + w E(m) / (Kd V),   Kd = mu0 Ms^2 / 2,  V the film's volume,

the normalized image misfit plus ``w`` times the micromagnetic energy (all terms, with the applied
field) as a dimensionless density. This is the approach of recent differentiable-micromagnetics
reconstructions of NV-magnetometry images: the energy is a regularizer, and the result is an
equilibrium only in the limit of a large weight (where it no longer fits the image). The weight
follows the same discrepancy principle as the bias method (``reconstruction``): the largest of
the weights whose misfit reaches the goal.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..forward.measurement import simulate_image
from ..physics.energy import EnergyModel
from ..physics.grid import MU0, Grid, Material
from ..solvers.equilibrium import energy_gradient
from .objective import FitCancelled, is_cancelled
from .optimizers import GRADIENT_LOSS_TOL, PATIENCE


@dataclass
class EnergyOutcome:
    """The best texture ``m`` (tensor ``(nz, ny, nx, 3)``), the weight ``w`` it was found at, the
    L-BFGS iterations, whether it was cancelled, and how the last stage ended (``status``)."""

    m: torch.Tensor
    weight: float
    iterations: int
    cancelled: bool
    status: str


def with_row_offsets(simulated, target):
    """``simulated`` plus each row's mean of ``target - simulated`` (arrays or tensors ``(..., ny, nx)``):
    the model image with every scan line's unknown offset profiled out, so that
    ``with_row_offsets(S, T) - T`` is ``S - T`` with each row's mean removed."""
    difference = target - simulated
    if isinstance(difference, torch.Tensor):
        return simulated + difference.mean(dim=-1, keepdim=True)
    return simulated + difference.mean(axis=-1, keepdims=True)


def energy_reconstruction(images, measurements, grid: Grid, values: dict, m_start: torch.Tensor, goal: float,
                          weights, max_iter: int, external_field, Ku_axis, cancel, progress, history: list,
                          row_offsets: bool = False):
    """Minimize misfit + ``w`` energy over unit vectors for each ``w`` of ``weights`` (largest first)
    until the normalized misfit reaches ``goal``.

    Parameters
    ----------
    images : ndarray (nh, ny, nx)
    measurements : sequence of measurements, one per image
    grid : Grid
    values : dict name -> tensor
        ``Ms, A, Ku, D`` (scalars or maps).
    m_start : tensor (nz, ny, nx, 3)
    goal : float
        Normalized misfit at which to stop.
    weights : sequence of float
    max_iter : int
        L-BFGS iterations over all stages.
    external_field, Ku_axis
        As for the energy model.
    cancel : threading.Event or callable, optional
    progress : callable(ReconstructionProgress), optional
    history : list
        The best loss after each iteration is appended.
    row_offsets : bool
        Every image row has its own unknown offset (``with_row_offsets``); the misfit is normalized
        by the power of the images with their row means removed.

    Returns
    -------
    EnergyOutcome
    """
    from .reconstruction import ReconstructionProgress

    material = Material(Ms=values["Ms"], A=values["A"], Ku=values["Ku"], D=values["D"], Ku_axis=Ku_axis)
    model = EnergyModel(grid, material, external_field=external_field)
    targets = grid.tensor(images)
    signal = targets - targets.mean(dim=-1, keepdim=True) if row_offsets else targets
    scale = (signal ** 2).mean(dim=(-2, -1), keepdim=True) ** -0.5 / (targets[0].numel() * len(images)) ** 0.5
    Ms = values["Ms"]
    density = MU0 * float((Ms ** 2).mean()) / 2 * grid.nx * grid.ny * grid.nz * grid.cell_volume

    def simulate(m):
        images = torch.stack([simulate_image(meas, m, grid, Ms) for meas in measurements])
        return with_row_offsets(images, targets) if row_offsets else images

    def misfit_of(m):
        return (((simulate(m) - targets) * scale) ** 2).sum()

    v = m_start.detach().clone().requires_grad_(True)
    best = {"loss": float("inf"), "m": m_start.detach(), "misfit": float("inf")}
    done, status, weight = 0, "max_iter", weights[0]
    try:
        for weight in weights:
            optimizer = torch.optim.LBFGS([v], lr=1.0, max_iter=1, max_eval=12, history_size=20, tolerance_grad=0.0,
                                          tolerance_change=0.0, line_search_fn="strong_wolfe")
            best["loss"] = float("inf")

            def closure(weight=weight):
                if is_cancelled(cancel):
                    raise FitCancelled
                optimizer.zero_grad()
                m = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)
                misfit = misfit_of(m)
                with torch.no_grad():
                    plain = m.detach()
                    energy = model.energies(plain)["total"]
                    gradient = energy_gradient(model, plain)
                # value E(m), gradient dE/dm: the energy's gradient is the effective field's
                surrogate = energy + (gradient * (m - plain)).sum()
                loss = misfit + weight * surrogate / density
                loss.backward()
                value = float(loss.detach())
                if value < best["loss"]:
                    best.update(loss=value, m=plain.clone(), misfit=float(misfit.detach()))
                return loss.detach()

            reference, stalled = float("inf"), 0
            while done < max_iter:
                optimizer.step(closure)
                done += 1
                history.append(best["loss"])
                if progress is not None:
                    with torch.no_grad():
                        image = simulate(best["m"])
                    progress(ReconstructionProgress(f"energy, weight {weight:g}", done, best["loss"], best["misfit"],
                                                    best["m"], image if len(images) > 1 else image[0], None))
                if best["misfit"] <= goal:
                    return EnergyOutcome(best["m"], weight, done, False, "misfit goal")
                if best["loss"] < (1 - GRADIENT_LOSS_TOL) * reference:
                    reference, stalled = best["loss"], 0
                else:
                    stalled += 1
                if stalled >= PATIENCE:
                    status = "loss stalled"
                    break
            if done >= max_iter:
                status = "max_iter"
                break
    except FitCancelled:
        return EnergyOutcome(best["m"], weight, done, True, "cancelled")
    return EnergyOutcome(best["m"], weight, done, False, status)
