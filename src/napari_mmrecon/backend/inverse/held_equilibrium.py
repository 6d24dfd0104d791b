"""The micromagnetic equilibrium nearest a reconstructed texture, its domains held in place.

The ``"energy-relaxed"`` reconstruction (``reconstruction``): the ``"energy"`` method's texture
fits the image but is no equilibrium, and where the image says little (the in-plane part, the
weak side) it is often unphysical: on a 512 x 512 film of 120 Neel skyrmions it held about half
of their topological charge. Relaxing it at the material under the bias

    H_b = hold * H_K * smooth(m_z) z^,   H_K = 2 Ku / (mu0 Ms),

(``smooth``: a Gaussian of one cell) gives the walls their equilibrium profile and chirality while
the bias keeps every domain and skyrmion where, and about as large as, the image put it; the
relaxation cannot wander along the film's soft modes (skyrmion drift, breathing) in the few hundred
iterations it gets. Unlike the ``"bias"`` method, nothing is fitted through the equilibrium, so the
cost is one relaxation: about 20 s at 512 x 512 on 2 cores, against minutes per outer iteration.
"""

from __future__ import annotations

import math

import torch

from ..physics.grid import MU0, Grid, Material
from ..solvers.relax import relax

HOLD_STRENGTH = 0.1
"""The bias's strength in units of the anisotropy field. On the 512 x 512 film of
``docs/measured-data.md`` (nominal material, A 25 % and D 15 % low) 0.1 ends 1.9 deg from the truth
with radii within 0.7 nm; a bias along ``m_z - median(m_z)`` alone (the core held, not the
background) let the skyrmions swell by 12 nm."""
HOLD_TOL = 1e-3
"""Torque tolerance ``max |m x H| / Ms`` of the relaxation."""
HOLD_ITERATIONS = 300
"""Relaxation iterations at most."""
REPORT_EVERY = 50
"""Iterations between progress reports (the relaxation runs in chunks of this many)."""


def smoothed_mz(m: torch.Tensor) -> torch.Tensor:
    """The layer-mean ``m_z`` of ``m (nz, ny, nx, 3)`` smoothed by a Gaussian of one cell (edges
    replicated); tensor ``(ny, nx)`` on ``m``'s device."""
    mz = m[..., 2].mean(dim=0)
    offsets = torch.arange(-3, 4, dtype=m.dtype, device=m.device)
    kernel = torch.exp(-offsets ** 2 / 2)
    kernel = kernel / kernel.sum()
    image = mz[None, None]
    pad = len(offsets) // 2
    image = torch.nn.functional.pad(image, (pad, pad, 0, 0), mode="replicate")
    image = torch.nn.functional.conv2d(image, kernel.view(1, 1, 1, -1))
    image = torch.nn.functional.pad(image, (0, 0, pad, pad), mode="replicate")
    image = torch.nn.functional.conv2d(image, kernel.view(1, 1, -1, 1))
    return image[0, 0]


def holding_bias(m: torch.Tensor, grid: Grid, material: Material, hold: float = HOLD_STRENGTH) -> torch.Tensor:
    """The bias field ``hold * 2 Ku / (mu0 Ms) * smoothed_mz(m)`` along z; tensor ``(nz, ny, nx, 3)``
    in A/m (``Ms`` and ``Ku`` the film's means)."""
    Ms = float(torch.as_tensor(material.Ms, dtype=torch.float64).mean())
    Ku = float(torch.as_tensor(material.Ku, dtype=torch.float64).mean())
    bias = torch.zeros(grid.vector_shape, dtype=m.dtype, device=m.device)
    bias[..., 2] = hold * 2 * Ku / (MU0 * Ms) * smoothed_mz(m)
    return bias


def held_equilibrium(m: torch.Tensor, grid: Grid, material: Material, hold: float = HOLD_STRENGTH,
                     external_field=None, tol: float = HOLD_TOL, max_iter: int = HOLD_ITERATIONS, progress=None,
                     cancel=None):
    """Relax ``m`` at ``material`` under ``holding_bias(m)`` (see the module's description).

    Parameters
    ----------
    m : tensor (nz, ny, nx, 3)
        The texture to relax (unit vectors), on the grid's device.
    grid : Grid
    material : Material
    hold : float
        The bias's strength in units of the anisotropy field (>= 0; 0: a free relaxation).
    external_field : optional
        Applied field H (A/m), a 3-vector or ``(nz, ny, nx, 3)``.
    tol : float
        Torque tolerance ``max |m x H| / Ms``.
    max_iter : int
        Iterations at most.
    progress : callable(iteration, m, bias), optional
        Called every ``REPORT_EVERY`` iterations with the texture so far (tensor) and the bias (A/m).
    cancel : threading.Event or callable, optional
        Stops the relaxation; the texture reached is returned.

    Returns
    -------
    (m tensor (nz, ny, nx, 3), bias tensor (nz, ny, nx, 3) in A/m, iterations, converged, cancelled)
    """
    if not (math.isfinite(hold) and hold >= 0):
        raise ValueError(f"hold must be a finite number >= 0 (units of the anisotropy field), got {hold!r}")
    bias = holding_bias(m, grid, material, hold)
    done, converged, cancelled = 0, False, False
    while done < max_iter and not (converged or cancelled):
        m, info = relax(m, grid, material, external_field=external_field, bias_field=bias, tol=tol,
                        max_iter=min(REPORT_EVERY, max_iter - done), return_info=True, cancel=cancel)
        done += info.iterations
        converged, cancelled = bool(info.converged), bool(info.cancelled)
        if info.iterations == 0:
            break
        if progress is not None:
            progress(done, m, bias)
    return m, bias, done, converged, cancelled
