"""Relaxation to equilibrium: a Barzilai-Borwein energy minimizer and LLG dynamics.

Both keep ``|m| = 1`` by renormalizing after every update, accept a leading batch axis (B
states, each with its own parameters, step sizes and convergence), can be cancelled from another
thread, and report progress through a hook ``progress(iteration, max_torque, energy)``.

Torque is measured as ``max |m x H_eff| / Ms`` (dimensionless, the largest over magnetic cells).
"""

from __future__ import annotations

import math
import numbers
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from ..physics.energy import EnergyModel, prepare
from ..physics.grid import MU0, Grid, Material
from ..runtime.arrays import like_input
from ..runtime.threads import threads_for

GAMMA = 1.7595e11 * MU0
"""Gyromagnetic ratio times mu0, ``gamma mu0`` in m/(A s) (mumax3's 1.7595e11 rad/(T s))."""

DEFAULT_TORQUE_TOL = 1e-4
"""Default stop of ``relax``: max ``|m x H|/Ms``; skyrmion radii are then converged to ~0.02 %."""


SWITCH_TORQUE = 3e-2
"""Max torque ``|m x H|/Ms`` below which ``minimize`` changes its step rule from alternating
Barzilai-Borwein lengths to ABBmin (see ``minimize``)."""

ABB_RATIO = 0.5
"""ABBmin: take the smallest recent short step while ``short / long`` is below this ratio."""

ABB_MEMORY = 5
"""ABBmin: number of recent short steps it takes the smallest of."""

SHRINK = 0.75
"""A batch is compacted (converged states no longer evaluated) once at most this fraction of the
states being evaluated is still relaxing."""


def _spatial_sum(t: torch.Tensor) -> torch.Tensor:
    return t.sum((-4, -3, -2, -1))


def _normalize(m: torch.Tensor) -> torch.Tensor:
    """Unit vectors; zero vectors (vacuum cells) stay zero."""
    norm = torch.linalg.vector_norm(m, dim=-1, keepdim=True)
    return m / norm.clamp_min(torch.finfo(m.dtype).tiny)


def _cancelled(cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


@dataclass
class RelaxInfo:
    """What a relaxation did. ``iterations`` counts minimizer iterations, one field evaluation
    each (steps rejected by the energy safeguard included); for a batch it is that of the slowest
    state, and ``max_torque``, ``energy`` and ``converged`` are arrays ``(B,)``."""

    iterations: int
    max_torque: float | np.ndarray
    energy: float | np.ndarray
    converged: bool | np.ndarray
    wall_time: float
    cancelled: bool = False
    field_evaluations: int = 0
    energy_history: list = field(default_factory=list, repr=False)


class _State:
    """Field, energy and torque of a magnetization, evaluated together."""

    def __init__(self, model: EnergyModel):
        self.model = model
        Ms = model.Ms
        self.Ms = Ms if Ms.ndim == 0 else Ms.unsqueeze(-1)
        self.inv_Ms = torch.where(Ms > 0, 1.0 / torch.where(Ms > 0, Ms, torch.ones_like(Ms)), torch.zeros_like(Ms))
        self.energy_scale = -0.5 * MU0 * model.grid.cell_volume
        # per-cell sums over the 3 components as a product with a ones column: torch's reduction
        # over a trailing axis of size 3 is 5x slower
        self.ones = torch.ones((3, 1), dtype=model.grid.dtype, device=model.grid.device)
        self.evaluations = 0

    def evaluate(self, m: torch.Tensor):
        """Return ``(H, d, E, torque)`` for ``m (..., nz, ny, nx, 3)``: the field and the descent
        direction ``d = H - (m.H) m`` (A/m), the energy (J) and the max torque ``|m x H|/Ms``,
        per state."""
        self.evaluations += 1
        H = self.model.field(m)
        mh = torch.matmul(m * H, self.ones)
        d = torch.addcmul(H, mh, m, value=-1.0)
        constant = self.model.constant_field
        if constant is not None:  # linear energy terms: counted twice in E = -mu0 V/2 sum Ms m.(H + H_constant)
            mh = mh + torch.matmul(m * constant, self.ones)
        E = self.energy_scale * _spatial_sum(mh * self.Ms)
        norm = torch.linalg.vector_norm(d, dim=-1)
        if self.inv_Ms.ndim == 0:
            torque = norm.amax((-3, -2, -1)) * self.inv_Ms
        else:
            torque = (norm * self.inv_Ms).amax((-3, -2, -1))
        return H, d, E, torque

    def energy_change(self, s: torch.Tensor, H: torch.Tensor, H_new: torch.Tensor) -> torch.Tensor:
        """``E(m + s) - E(m)`` (J) per state of ``(B, nz, ny, nx, 3)`` tensors, from the fields
        at both ends: ``-mu0 V / 2 sum Ms s . (H + H_new)``, exact for the quadratic energy plus
        the linear Zeeman term. Its round-off scales with the step, not with the energy, so a
        step that lowers the energy by less than the energy's own round-off is still seen as
        lowering it (a float32 minimizer stalled at max torque 0.02 comparing energies)."""
        both = H + H_new
        if self.Ms.ndim == 0:
            return (self.energy_scale * self.Ms) * _dot(s, both)
        return self.energy_scale * _dot(s, both * self.Ms)


def _prepare(m0, grid: Grid, material: Material, external_field, bias_field, terms):
    """``(normalized m0, model, batch)`` for the one-call functions (``energy.prepare``: the
    model's grid and material part is cached between calls)."""
    mt, model, batch = prepare(m0, grid, material, external_field, bias_field, terms, "m0")
    return _normalize(mt.detach()), model, batch


@contextmanager
def _buffers_released(model: EnergyModel):
    """Free the model's convolution buffers when the block ends: a one-call function's model
    stays cached (``energy.cached_linear_terms``), but a whole batch's work buffers need not."""
    try:
        yield
    finally:
        model.linear.release_buffers()


def _positive(value, name: str, meaning: str) -> float:
    """``value`` as a float if it is a real number, finite and > 0, else ``ValueError`` (``meaning``
    says what it is, with its unit)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0 ({meaning}), got {value!r}")
    return float(value)


def _count(value, name: str, least: int) -> int:
    """``value`` as an int if it is a whole number >= ``least``, else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")
    return int(value)


def check_stop(tol, max_iter, progress_every: int = 1) -> tuple[float, int, int]:
    """``(tol, max_iter, progress_every)`` of ``minimize`` checked: ``tol > 0`` (a torque of 0 is
    never reached), ``max_iter >= 0``, ``progress_every >= 1``; else ``ValueError``."""
    tol = _positive(tol, "tol", "the stop on max |m x H| / Ms, dimensionless; 0 is never reached")
    return tol, _count(max_iter, "max_iter", 0), _count(progress_every, "progress_every", 1)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-state inner products of ``(B, ...)`` tensors, ``(B,)``, without a temporary."""
    B = a.shape[0]
    return torch.bmm(a.reshape(B, 1, -1), b.reshape(B, -1, 1)).reshape(B)


class _StepRule:
    """Step lengths ``tau`` (1/(A/m)) per state, kept on the host.

    Far from a minimum (max torque above ``SWITCH_TORQUE``) it alternates the two
    Barzilai-Borwein lengths ``long = s.s / s.y`` and ``short = s.y / y.y`` (Exl et al.,
    J. Appl. Phys. 115, 17D118 (2014)); closer it uses ABBmin (Frassoldati, Zanni, Zanghirati,
    J. Ind. Manag. Optim. 4, 299 (2008)): the smallest of the last ``ABB_MEMORY`` short lengths
    while ``short / long < ABB_RATIO``, else the long one. Measured on skyrmions, standard problem
    4 and a trilayer: 35 % fewer field evaluations than alternating throughout; from random
    starts ABBmin alone stalls in metastable states, hence the switch. A rejected step (the
    energy would rise) halves ``tau``.
    """

    def __init__(self, tau: np.ndarray):
        self.tau = tau
        self.steps = np.zeros(tau.shape, dtype=int)
        self.shorts = np.full((ABB_MEMORY,) + tau.shape, np.inf)

    def select(self, index: np.ndarray):
        """Keep only the states ``index``."""
        self.tau, self.steps, self.shorts = self.tau[index], self.steps[index], self.shorts[:, index]

    def update(self, sy, ss, yy, torque, accepted, rejected):
        """New lengths: from ``s.y, s.s, y.y`` of the accepted steps, halved for rejected ones."""
        with np.errstate(divide="ignore", invalid="ignore"):
            long, short = ss / sy, sy / yy
        valid = np.isfinite(long) & np.isfinite(short) & (sy > 0)
        self.steps = self.steps + accepted
        shorts = np.roll(self.shorts, 1, axis=0)
        shorts[0] = np.where(valid, short, np.inf)
        self.shorts = np.where(accepted, shorts, self.shorts)
        alternate = np.where(self.steps % 2 == 1, long, short)
        abbmin = np.where(short < ABB_RATIO * long, self.shorts.min(axis=0), long)
        new = np.where(valid, np.where(torque > SWITCH_TORQUE, alternate, abbmin), 2 * self.tau)
        self.tau = np.where(accepted, new, np.where(rejected, 0.5 * self.tau, self.tau))


def minimize(model: EnergyModel, m0: torch.Tensor, tol: float = DEFAULT_TORQUE_TOL, max_iter: int = 50000,
             progress=None, cancel=None, progress_every: int = 10) -> tuple[torch.Tensor, RelaxInfo]:
    """Barzilai-Borwein steepest descent on the unit sphere with a monotone energy safeguard.

    The descent direction is the projected field ``d = H - (m.H) m``; a step is
    ``m <- normalize(m + tau d)`` with ``tau`` from ``_StepRule``. A step that would raise a
    state's energy beyond round-off is rejected: that state stays where it was and retries with
    half the step in the next iteration (while the other states of a batch go on), so the energy
    never increases and every iteration costs one field evaluation of the whole batch. The
    per-state scalars (energy, torque, the step rule's inner products) reach the host once per
    iteration; everything else stays on the device.

    Parameters
    ----------
    model : EnergyModel
        Its terms are the energy minimized (``EnergyModel(..., terms=...)`` chooses them).
    m0 : tensor ``(..., nz, ny, nx, 3)``, unit vectors (detached)
    tol : float
        Stop when ``max |m x H| / Ms < tol`` (per state); finite and > 0.
    max_iter : int
        Maximum number of iterations (field evaluations after the first), >= 0.
    progress : callable ``(iteration, max_torque, energy)``, optional
        Called every ``progress_every`` iterations (floats; the worst state of a batch).
    cancel : threading.Event or callable returning bool, optional
        Checked every iteration; when set the state reached so far is returned.

    Returns
    -------
    (m, RelaxInfo)
    """
    start = time.perf_counter()
    tol, max_iter, progress_every = check_stop(tol, max_iter, progress_every)
    state = _State(model)
    shape = m0.shape
    with torch.no_grad(), threads_for(m0.numel() // 3):
        m = m0.reshape((-1,) + shape[-4:])
        H, d, E_t, torque_t = state.evaluate(m)
        # first step: rotate the most strongly driven cell by about 0.01 rad
        E, torque, d_max = _to_host(E_t, torque_t, torch.linalg.vector_norm(d, dim=-1).amax((-3, -2, -1)))
        rule = _StepRule(1e-2 / np.maximum(d_max, 1e-300))
        order = np.arange(m.shape[0])  # the states being evaluated, in the whole batch
        result = torch.empty_like(m)
        history = [E.copy()]
        converged = torque < tol
        iteration = 0
        cancelled = False
        while not converged.all() and iteration < max_iter:
            if _cancelled(cancel):
                cancelled = True
                break
            iteration += 1
            if len(order) > 1 and np.count_nonzero(~converged[order]) <= SHRINK * len(order):
                state, (m, H, d), order = _compact(state, (m, H, d), rule, order, ~converged[order], result)
            active = ~converged[order]
            new, E_new, dE, torque_new, sy, ss, yy = _trial_step(state, m, H, d, rule.tau)
            accepted = active & (dE <= 1e-12 * np.abs(E[order]) + 1e-30)
            rule.update(sy, ss, yy, torque_new, accepted, active & ~accepted)
            if not accepted.all():  # rejected and converged states stay where they were
                keep = torch.as_tensor(~accepted, device=m.device).reshape((-1, 1, 1, 1, 1))
                new = [torch.where(keep, old, t) for old, t in zip((m, H, d), new)]
            m, H, d = new
            E[order] = np.where(accepted, E_new, E[order])
            torque[order] = np.where(accepted, torque_new, torque[order])
            converged = converged | (torque < tol)
            history.append(E.copy())
            if progress is not None and iteration % progress_every == 0:
                progress(iteration, float(torque.max()), float(E.sum()))
        if progress is not None:
            progress(iteration, float(torque.max()), float(E.sum()))
        result[torch.as_tensor(order, device=m.device)] = m
    unbatched = len(shape) == 4
    info = RelaxInfo(
        iterations=iteration,
        max_torque=torque[0].item() if unbatched else torque,
        energy=E[0].item() if unbatched else E,
        converged=bool(converged[0]) if unbatched else converged,
        wall_time=time.perf_counter() - start,
        cancelled=cancelled,
        field_evaluations=state.evaluations,
        energy_history=[e[0] for e in history] if unbatched else history,
    )
    return result.reshape(shape), info


def _compact(state: _State, tensors: tuple, rule: _StepRule, order: np.ndarray, keep: np.ndarray,
             result: torch.Tensor):
    """Stop evaluating the states not in ``keep``: write their ``m`` (the first of ``tensors``,
    all ``(B, ...)``) to ``result`` (the whole batch) and return the state, ``tensors`` and
    ``order`` of the rest (``rule`` is narrowed in place)."""
    m = tensors[0]
    done, kept = np.flatnonzero(~keep), np.flatnonzero(keep)
    result[torch.as_tensor(order[done], device=m.device)] = m[torch.as_tensor(done, device=m.device)]
    rows = torch.as_tensor(kept, device=m.device)
    narrowed = _State(state.model.select(kept))
    narrowed.evaluations = state.evaluations
    rule.select(kept)
    return narrowed, tuple(t[rows] for t in tensors), order[kept]


def _to_host(*tensors) -> list:
    """float64 numpy arrays (at least 1-d) of several tensors, in one transfer."""
    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors]).cpu().numpy()
    return np.split(flat, np.cumsum([t.numel() for t in tensors])[:-1])


def _trial_step(state: _State, m, H, d, tau: np.ndarray):
    """The step ``m (B, nz, ny, nx, 3) -> normalize(m + tau d)`` and its evaluation: the new
    ``(m, H, d)`` (device) and per state (host) the energy, its change, the torque and the inner
    products ``s.y, s.s, y.y`` of ``s = dm`` and ``y = -d(grad E)`` (up to a constant factor)."""
    tau_t = torch.as_tensor(tau, dtype=m.dtype, device=m.device).reshape((-1, 1, 1, 1, 1))
    m_new = _normalize(torch.addcmul(m, tau_t, d))
    H_new, d_new, E_t, torque_t = state.evaluate(m_new)
    s, y = m_new - m, d - d_new
    stats = _to_host(E_t, state.energy_change(s, H, H_new), torque_t, _dot(s, y), _dot(s, s), _dot(y, y))
    return (m_new, H_new, d_new), *stats


def _scalar_or_array(t: torch.Tensor):
    a = t.detach().cpu().numpy()
    return a.item() if a.ndim == 0 else a


def relax(m0, grid: Grid, material: Material, external_field=None, bias_field=None, tol: float = DEFAULT_TORQUE_TOL,
          max_iter: int = 50000, return_info: bool = False, progress=None, cancel=None, terms=None):
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
        Stop when ``max |m x H_eff| / Ms`` is below ``tol`` (default ``DEFAULT_TORQUE_TOL``);
        finite and > 0.
    max_iter : int
        At most this many iterations (>= 0; 0 only evaluates the start).
    return_info : bool
        Also return a ``RelaxInfo``.
    progress : callable ``(iteration, max_torque, energy)``, optional
    cancel : threading.Event or callable, optional
        Stops the relaxation; the state reached is returned (``info.cancelled``).
    terms : sequence of str, optional
        The energy terms, a subset of ``TERM_NAMES`` (default ``None``: all), e.g. without
        ``"demag"`` for a problem defined without it.

    Returns
    -------
    m (same kind and shape as ``m0``), or ``(m, info)``.
    """
    check_stop(tol, max_iter)
    m, model, _ = _prepare(m0, grid, material, external_field, bias_field, terms)
    with _buffers_released(model):
        m, info = minimize(model, m, tol=tol, max_iter=max_iter, progress=progress, cancel=cancel)
    m = like_input(m, m0)
    return (m, info) if return_info else m


# Dormand-Prince 5(4) tableau (the field does not depend on time, so the nodes c_i are not needed)
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
        progress=None, cancel=None, terms=None):
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
    terms : sequence of str, optional
        The energy terms, a subset of ``TERM_NAMES`` (default ``None``: all).

    Returns
    -------
    LLGResult
    """
    start = time.perf_counter()
    t_end = _positive(t_end, "t_end", "the end time in seconds")
    if save_every is not None:
        save_every = _positive(save_every, "save_every", "the interval of the saved series in seconds")
    rtol = _positive(rtol, "rtol", "the error tolerance per step on m, dimensionless")
    dt0 = _positive(dt0, "dt0", "the first trial step in seconds")
    if stop_torque is not None:
        stop_torque = _positive(stop_torque, "stop_torque", "max |m x H| / Ms, dimensionless")
    m, model, _ = _prepare(m0, grid, material, external_field, bias_field, terms)
    alpha = model.alpha.unsqueeze(-1) if model.alpha.ndim else model.alpha
    state = _State(model)
    magnetic = (model.Ms > 0).to(grid.dtype).expand(m.shape[:-1]).unsqueeze(-1)
    count = magnetic.sum((-4, -3, -2))

    def record(m_now):
        _, _, E, torque = state.evaluate(m_now)
        series_t.append(t)
        series_m.append(((m_now * magnetic).sum((-4, -3, -2)) / count).cpu().numpy())
        series_E.append(E.cpu().numpy())
        return torque

    series_t, series_m, series_E = [], [], []
    t = 0.0
    dt = dt0
    steps = rejected = 0
    cancelled = False
    with torch.no_grad(), threads_for(m.numel() // 3), _buffers_released(model):
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
