"""Relaxation to equilibrium: a Barzilai-Borwein energy minimizer and LLG dynamics.

Both keep ``|m| = 1`` by renormalizing after every update, accept a leading batch axis (B
states, each with its own parameters, step sizes and convergence), can be cancelled from another
thread, and report progress through a hook ``progress(iteration, max_torque, energy)``.

Torque is measured as ``max |m x H_eff| / Ms`` (dimensionless, the largest over magnetic cells).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .arrays import batch_size, check_magnetization, like_input, to_tensor
from .energy import EnergyModel
from .grid import MU0, Grid, Material

GAMMA = 1.7595e11 * MU0
"""Gyromagnetic ratio times mu0, ``gamma mu0`` in m/(A s) (mumax3's 1.7595e11 rad/(T s))."""

DEFAULT_TORQUE_TOL = 1e-4
"""Default stop of ``relax``: max ``|m x H|/Ms``; skyrmion radii are then converged to ~0.02 %."""


def _spatial_sum(t: torch.Tensor) -> torch.Tensor:
    return t.sum((-4, -3, -2, -1))


def _per_state(t: torch.Tensor, value) -> torch.Tensor:
    """Reshape a per-state quantity ``(B,)`` (or 0-d) to broadcast against ``(B, nz, ny, nx, 3)``."""
    return value.reshape(value.shape + (1, 1, 1, 1)) if value.ndim else value


def _normalize(m: torch.Tensor) -> torch.Tensor:
    """Unit vectors; zero vectors (vacuum cells) stay zero."""
    norm = torch.linalg.vector_norm(m, dim=-1, keepdim=True)
    return m / torch.where(norm > 0, norm, torch.ones_like(norm))


def _cancelled(cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


@dataclass
class RelaxInfo:
    """What a relaxation did. For a batch, ``max_torque``, ``energy`` and ``converged`` are
    arrays ``(B,)`` and ``iterations`` counts the iterations of the slowest state."""

    iterations: int
    max_torque: float | np.ndarray
    energy: float | np.ndarray
    converged: bool | np.ndarray
    wall_time: float
    cancelled: bool = False
    field_evaluations: int = 0
    energy_history: list = field(default_factory=list, repr=False)


class _State:
    """Field, energy and torque of the current magnetization, evaluated together."""

    def __init__(self, model: EnergyModel):
        self.model = model
        zeeman = [t for t in model.terms if t.name == "zeeman"]
        self.zeeman = zeeman[0] if zeeman else None
        Ms = model.Ms
        self.inv_Ms = torch.where(Ms > 0, 1.0 / torch.where(Ms > 0, Ms, torch.ones_like(Ms)), torch.zeros_like(Ms))
        self.energy_scale = -0.5 * MU0 * model.grid.cell_volume
        self.evaluations = 0

    def evaluate(self, m: torch.Tensor):
        """Return ``(H, E, d, torque)``: field (A/m), energy (J per state), descent direction
        ``H - (m.H) m`` (A/m), and max torque per state."""
        self.evaluations += 1
        H = self.model.field(m)
        h_energy = H if self.zeeman is None else H + self.zeeman.h
        E = self.energy_scale * _spatial_sum(m * h_energy * self.model.Ms.unsqueeze(-1))
        d = H - (m * H).sum(-1, keepdim=True) * m
        torque = (torch.linalg.vector_norm(d, dim=-1) * self.inv_Ms).amax((-3, -2, -1))
        return H, E, d, torque


def _prepare(m0, grid: Grid, material: Material, external_field, bias_field):
    mt = to_tensor(m0, grid, "m0")
    batch = batch_size(mt, grid, "m0")
    model = EnergyModel(grid, material, external_field, bias_field, batch=batch)
    check_magnetization(mt, grid, model.Ms, "m0")
    return _normalize(mt.detach()), model, batch


def minimize(model: EnergyModel, m0: torch.Tensor, tol: float = DEFAULT_TORQUE_TOL, max_iter: int = 50000,
             progress=None, cancel=None, progress_every: int = 10) -> tuple[torch.Tensor, RelaxInfo]:
    """Barzilai-Borwein steepest descent on the unit sphere with a monotone energy safeguard.

    The descent direction is the projected field ``d = H - (m.H) m``; a step is
    ``m <- normalize(m + tau d)``. ``tau`` alternates the two Barzilai-Borwein lengths
    (Exl et al., J. Appl. Phys. 115, 17D118 (2014)); a step that would raise the energy beyond
    round-off is halved until it does not, so the energy never increases.

    Parameters
    ----------
    model : EnergyModel
    m0 : tensor ``(..., nz, ny, nx, 3)``, unit vectors (detached)
    tol : float
        Stop when ``max |m x H| / Ms < tol`` (per state).
    max_iter : int
    progress : callable ``(iteration, max_torque, energy)``, optional
        Called every ``progress_every`` iterations (floats; the worst state of a batch).
    cancel : threading.Event or callable returning bool, optional
        Checked every iteration; when set the state reached so far is returned.

    Returns
    -------
    (m, RelaxInfo)
    """
    start = time.perf_counter()
    state = _State(model)
    with torch.no_grad():
        m = m0
        _, E, d, torque = state.evaluate(m)
        history = [E.detach().clone()]
        # first step: rotate the most strongly driven cell by about 0.01 rad
        tau = 1e-2 / torch.linalg.vector_norm(d, dim=-1).amax((-3, -2, -1)).clamp_min(1e-300)
        converged = torque < tol
        iteration = 0
        cancelled = False
        while not bool(converged.all()) and iteration < max_iter:
            if _cancelled(cancel):
                cancelled = True
                break
            iteration += 1
            active = _per_state(m, ~converged)
            m_new = _normalize(m + _per_state(m, tau) * d)
            m_new = torch.where(active, m_new, m)
            _, E_new, d_new, torque_new = state.evaluate(m_new)
            slack = 1e-12 * E.abs() + 1e-30
            for _ in range(60):  # backtracking: never accept an energy increase
                bad = (E_new > E + slack) & ~converged
                if not bool(bad.any()):
                    break
                tau = torch.where(bad, tau * 0.5, tau)
                trial = _normalize(m + _per_state(m, tau) * d)
                bad_b = _per_state(m, bad)
                m_new = torch.where(bad_b, trial, m_new)
                _, E_t, d_t, torque_t = state.evaluate(m_new)
                d_new = torch.where(bad_b, d_t, d_new)
                E_new = torch.where(bad, E_t, E_new)
                torque_new = torch.where(bad, torque_t, torque_new)
            s = m_new - m
            y = d - d_new  # gradient difference (the gradient is -d)
            sy = _spatial_sum(s * y)
            if iteration % 2:
                tau_bb = _spatial_sum(s * s) / sy
            else:
                tau_bb = sy / _spatial_sum(y * y)
            good = torch.isfinite(tau_bb) & (tau_bb > 0)
            tau = torch.where(good & ~converged, tau_bb, torch.where(converged, tau, tau * 2.0))
            m, d = m_new, d_new
            E = torch.where(converged, E, E_new)
            torque = torch.where(converged, torque, torque_new)
            converged = converged | (torque < tol)
            history.append(E.detach().clone())
            if progress is not None and iteration % progress_every == 0:
                progress(iteration, float(torque.max()), float(E.sum()))
        if progress is not None:
            progress(iteration, float(torque.max()), float(E.sum()))
    info = RelaxInfo(
        iterations=iteration,
        max_torque=_scalar_or_array(torque),
        energy=_scalar_or_array(E),
        converged=_scalar_or_array(converged),
        wall_time=time.perf_counter() - start,
        cancelled=cancelled,
        field_evaluations=state.evaluations,
        energy_history=history,
    )
    return m, info


def _scalar_or_array(t: torch.Tensor):
    a = t.detach().cpu().numpy()
    return a.item() if a.ndim == 0 else a


def relax(m0, grid: Grid, material: Material, external_field=None, bias_field=None, tol: float = DEFAULT_TORQUE_TOL,
          max_iter: int = 50000, return_info: bool = False, progress=None, cancel=None):
    """Relax a magnetization to the nearest energy minimum.

    Parameters
    ----------
    m0 : array or tensor ``(nz, ny, nx, 3)`` or ``(B, nz, ny, nx, 3)``
        Starting state (normalized here).
    grid, material : Grid, Material
        Material parameters may be per state for a batch (length-B vectors or maps).
    external_field, bias_field : optional
        H in A/m, a 3-vector or a ``(nz, ny, nx, 3)`` map.
    tol : float
        Stop when ``max |m x H_eff| / Ms`` is below ``tol`` (default ``DEFAULT_TORQUE_TOL``).
    max_iter : int
    return_info : bool
        Also return a ``RelaxInfo``.
    progress : callable ``(iteration, max_torque, energy)``, optional
    cancel : threading.Event or callable, optional
        Stops the relaxation; the state reached is returned (``info.cancelled``).

    Returns
    -------
    m (same kind and shape as ``m0``), or ``(m, info)``.
    """
    m, model, _ = _prepare(m0, grid, material, external_field, bias_field)
    m, info = minimize(model, m, tol=tol, max_iter=max_iter, progress=progress, cancel=cancel)
    m = like_input(m, m0)
    return (m, info) if return_info else m


# Dormand-Prince 5(4) tableau
_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_DP_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_DP_E = tuple(b5 - b4 for b5, b4 in zip(_DP_B5, _DP_B4))


@dataclass
class LLGResult:
    """Time series of an LLG run.

    ``t (nt,)`` s; ``m_mean (nt, 3)`` (``(nt, B, 3)`` for a batch) mean over magnetic cells;
    ``energy (nt,)`` J (``(nt, B)``); ``m`` the final state; ``steps`` accepted steps;
    ``rejected`` rejected steps; ``cancelled``; ``max_torque`` at the end.
    """

    t: np.ndarray
    m_mean: np.ndarray
    energy: np.ndarray
    m: object
    steps: int
    rejected: int
    cancelled: bool
    max_torque: float | np.ndarray
    wall_time: float


def llg_rhs(model: EnergyModel, m: torch.Tensor, alpha: torch.Tensor):
    """``dm/dt = -gamma mu0 / (1 + alpha^2) [m x H + alpha m x (m x H)]`` (1/s) and the field."""
    H = model.field(m)
    mxh = torch.linalg.cross(m, H, dim=-1)
    mxmxh = torch.linalg.cross(m, mxh, dim=-1)
    pref = -GAMMA / (1 + alpha * alpha)
    return pref * (mxh + alpha * mxmxh), H


def llg(m0, grid: Grid, material: Material, t_end: float, external_field=None, bias_field=None,
        save_every: float | None = None, rtol: float = 1e-6, dt0: float = 1e-14, stop_torque: float | None = None,
        progress=None, cancel=None):
    """Integrate the Landau-Lifshitz-Gilbert equation with adaptive Dormand-Prince 5(4).

    The error of a step is the maximum over cells of ``|m5 - m4|`` (a max-norm control, which
    does not stall at small cells as an RMS control can); a step is accepted when it is below
    ``rtol`` and the next step is scaled by ``0.9 (rtol/err)^(1/5)`` (within 0.2x - 5x).
    ``m`` is renormalized after every accepted step.

    Parameters
    ----------
    m0 : array or tensor ``(nz, ny, nx, 3)`` or ``(B, nz, ny, nx, 3)``
    grid, material : Grid, Material (``material.alpha`` is the damping, scalar or map)
    t_end : float
        End time (s).
    external_field, bias_field : optional, H in A/m
    save_every : float, optional
        Interval (s) of the saved series; steps are shortened to land on these times.
        Default: only the start and the end.
    rtol : float
        Error tolerance per step (dimensionless, on m).
    dt0 : float
        First trial step (s).
    stop_torque : float, optional
        Stop early once ``max |m x H|/Ms`` falls below this (relaxation by dynamics).
    progress : callable ``(time, max_torque, energy)``, optional
    cancel : threading.Event or callable, optional

    Returns
    -------
    LLGResult
    """
    start = time.perf_counter()
    m, model, batch = _prepare(m0, grid, material, external_field, bias_field)
    if not (t_end > 0 and math.isfinite(t_end)):
        raise ValueError(f"t_end must be a positive time in seconds, got {t_end!r}")
    if save_every is not None and not (save_every > 0):
        raise ValueError(f"save_every must be a positive time in seconds, got {save_every!r}")
    alpha = model.alpha.unsqueeze(-1) if model.alpha.ndim else model.alpha
    state = _State(model)
    magnetic = (model.Ms > 0).to(grid.dtype).expand(m.shape[:-1]).unsqueeze(-1)
    count = magnetic.sum((-4, -3, -2))

    def record(m_now):
        _, E, _, torque = state.evaluate(m_now)
        series_t.append(t)
        series_m.append(((m_now * magnetic).sum((-4, -3, -2)) / count).cpu().numpy())
        series_E.append(E.cpu().numpy())
        return torque

    series_t, series_m, series_E = [], [], []
    t = 0.0
    dt = dt0
    steps = rejected = 0
    cancelled = False
    with torch.no_grad():
        torque = record(m)
        next_save = save_every if save_every is not None else t_end
        k1, _ = llg_rhs(model, m, alpha)
        while t < t_end * (1 - 1e-12):
            if _cancelled(cancel):
                cancelled = True
                break
            target = min(next_save, t_end)
            h = min(dt, target - t)
            ks = [k1]
            for i in range(1, 7):
                stage = m + h * sum(a * k for a, k in zip(_DP_A[i], ks) if a != 0.0)
                k, _ = llg_rhs(model, stage, alpha)
                ks.append(k)
            m5 = m + h * sum(b * k for b, k in zip(_DP_B5, ks) if b != 0.0)
            err = float((h * sum(e * k for e, k in zip(_DP_E, ks) if e != 0.0)).abs().max())
            if not math.isfinite(err):
                raise FloatingPointError("LLG step produced non-finite values; check the parameters")
            factor = 0.9 * (rtol / err) ** 0.2 if err > 0 else 5.0
            if err <= rtol:
                t += h
                m = _normalize(m5)
                k1, _ = llg_rhs(model, m, alpha)
                steps += 1
                if t >= target * (1 - 1e-12):
                    torque = record(m)
                    next_save = target + (save_every if save_every is not None else t_end)
                    if progress is not None:
                        progress(t, float(torque.max()), float(series_E[-1].sum()))
                    if stop_torque is not None and float(torque.max()) < stop_torque:
                        break
                if h == dt or factor < 1:
                    dt = h * min(5.0, max(0.2, factor))
            else:
                rejected += 1
                dt = h * max(0.2, factor)
        if not series_t or series_t[-1] != t:
            torque = record(m)
    return LLGResult(
        t=np.array(series_t),
        m_mean=np.array(series_m),
        energy=np.array(series_E),
        m=like_input(m, m0),
        steps=steps,
        rejected=rejected,
        cancelled=cancelled,
        max_torque=_scalar_or_array(torque),
        wall_time=time.perf_counter() - start,
    )
