"""How well an image determines the parameters: loss scans and repeated noisy fits.

``sensitivity`` scans the normalized misfit along each parameter (re-relaxing at every point) and
over pairs of parameters; ``noise_study`` repeats ``fit_parameters`` over noise levels and seeds
and tabulates errors, reported uncertainties and whether the 1-sigma intervals cover the truth.
Independent tasks run in parallel: in local processes (``workers``), or on a Dask cluster when a
``dask.distributed.Client`` (anything with ``submit`` and ``gather``) is passed as ``client``.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

import numpy as np
import torch

from ..physics.energy import EnergyModel
from .parameter_fit import MATERIAL_PARAMETERS, check_target, fit_parameters
from ..physics.grid import Grid, Material
from ..forward.measurement import simulate_image
from ..forward.mfm import add_noise
from ..solvers.relax import minimize


# --------------------------------------------------------------------------- parallel map


def parallel_map(function, tasks: list, workers: int | None = None, client=None, progress=None) -> list:
    """``[function(task) for task in tasks]``, in parallel, in the order of ``tasks``.

    Parameters
    ----------
    function : picklable top-level callable
    tasks : list of picklable arguments
    workers : int, optional
        Local processes (default: the number of CPU cores, at most the number of tasks); each
        gets ``cores // workers`` torch threads. ``1`` runs in this process.
    client : dask.distributed.Client, optional
        Submit the tasks to this Dask cluster instead (``client.submit`` / ``client.gather``).
    progress : callable(done, total), optional
    """
    total = len(tasks)
    if client is not None:
        futures = [client.submit(function, task, pure=False) for task in tasks]
        results = client.gather(futures)
        if progress is not None:
            progress(total, total)
        return list(results)
    cores = os.cpu_count() or 1
    workers = max(1, min(workers or cores, total))
    if workers == 1:
        results = []
        for i, task in enumerate(tasks):
            results.append(function(task))
            if progress is not None:
                progress(i + 1, total)
        return results
    threads = max(1, cores // workers)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=torch.set_num_threads,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(function, task) for task in tasks]
        results = []
        for i, future in enumerate(futures):
            results.append(future.result())
            if progress is not None:
                progress(i + 1, total)
    return results


# --------------------------------------------------------------------------- loss scans


@dataclass
class Sensitivity:
    """Loss scans around a parameter set.

    ``offsets`` (k,) are relative changes; ``scans[name]`` the normalized misfit (k,) along one
    parameter; ``maps[(a, b)]`` the misfit (k, k) over two (first index: ``a``); ``center`` the
    parameters (SI) at offset 0.
    """

    offsets: np.ndarray
    center: dict
    scans: dict = field(default_factory=dict)
    maps: dict = field(default_factory=dict)

    def curvature(self) -> dict:
        """Second derivative of the misfit w.r.t. the relative change of each parameter at the
        centre (from the three central points): larger means the image pins it better."""
        k = len(self.offsets) // 2
        h = self.offsets[k + 1] - self.offsets[k]
        return {name: float((s[k + 1] - 2 * s[k] + s[k - 1]) / h ** 2) for name, s in self.scans.items()}


def _scan_task(task: dict) -> np.ndarray:
    """Misfit at each parameter set of ``task["points"]`` (list of dicts), relaxing each from the
    previous equilibrium (the points form a path)."""
    grid, measurement, target = task["grid"], task["measurement"], task["target"]
    target_t = grid.tensor(target)
    power = float((target_t ** 2).mean())
    m = grid.tensor(task["m0"])
    out = []
    for values in task["points"]:
        material = Material(**{k: values[k] for k in MATERIAL_PARAMETERS}, Ku_axis=task["Ku_axis"])
        model = EnergyModel(grid, material, external_field=task["external_field"], bias_field=task["bias"])
        m, _ = minimize(model, m, tol=task["tol"])
        image = simulate_image(measurement, m, grid, values["Ms"])
        out.append(float(((image - target_t) ** 2).mean()) / power)
    return np.array(out)


def sensitivity(target, grid: Grid, measurement, material: Material, m0, names=MATERIAL_PARAMETERS, pairs=(),
                span: float = 0.1, points: int = 11, tol: float = 1e-7, bias=None, external_field=None,
                workers: int | None = None, client=None, progress=None) -> Sensitivity:
    """Normalized misfit ``mean((S(m*(p)) - target)^2) / mean(target^2)`` along each parameter and pair.

    Parameters
    ----------
    target : array (ny, nx)
    grid : Grid
    measurement : StrayFieldMeasurement or MFMMeasurement
    material : Material
        The centre of the scans (e.g. a fit result's ``material``); scalar parameters.
    m0 : array (nz, ny, nx, 3)
        The equilibrium at the centre (e.g. ``FitResult.m``); each scan relaxes from it.
    names : tuple of str
        Parameters scanned one at a time.
    pairs : sequence of (str, str)
        Pairs scanned on a ``points x points`` grid (rows: first name).
    span : float
        Relative half-width of every scan: offsets ``linspace(-span, span, points)``.
    tol : float
        Relaxation tolerance (``max |m x H| / Ms``).
    bias, external_field : optional
        Fields H (A/m) held fixed during the scans.
    workers, client, progress
        See ``parallel_map``. Every scan line walks outwards from the centre in both directions
        (two tasks), relaxing each point from the previous one, so a texture is followed
        continuously until it collapses; the rows of a 2-D scan start from ``m0``.

    Returns
    -------
    Sensitivity
    """
    image = check_target(target, grid)
    if points < 3 or points % 2 == 0:
        raise ValueError(f"points must be an odd number >= 3, got {points!r}")
    if not 0 < span < 1:
        raise ValueError(f"span must be between 0 and 1 (relative), got {span!r}")
    center = {name: float(getattr(material, name)) for name in MATERIAL_PARAMETERS}
    offsets = np.linspace(-span, span, points)
    common = dict(grid=grid, measurement=measurement, target=image, Ku_axis=material.Ku_axis, tol=tol,
                  bias=bias, external_field=external_field)

    def path(changes):
        return [dict(center, **{n: center[n] * (1 + o) for n, o in change.items()}) for change in changes]

    # each path starts at the centre and walks outwards on both sides: two tasks per scan
    tasks, keys = [], []
    k = points // 2
    for name in names:
        for direction in (range(k, points), range(k, -1, -1)):
            tasks.append(dict(common, m0=m0, points=path([{name: offsets[i]} for i in direction])))
            keys.append(("scan", name, tuple(direction)))
    for a, b in pairs:
        for i in range(points):
            for direction in (range(k, points), range(k, -1, -1)):
                tasks.append(dict(common, m0=m0, points=path([{a: offsets[i], b: offsets[j]} for j in direction])))
                keys.append(("map", (a, b), (i, tuple(direction))))
    results = parallel_map(_scan_task, tasks, workers, client, progress)
    out = Sensitivity(offsets=offsets, center=center)
    for key, values in zip(keys, results):
        if key[0] == "scan":
            out.scans.setdefault(key[1], np.zeros(points))[list(key[2])] = values
        else:
            row, direction = key[2]
            out.maps.setdefault(key[1], np.zeros((points, points)))[row, list(direction)] = values
    return out


# --------------------------------------------------------------------------- noise study


def _noise_task(task: dict) -> dict:
    """One noisy fit; returns a table row."""
    clean = task["clean"]
    noisy = add_noise(torch.as_tensor(clean), {"sigma": task["noise"] * float(np.std(clean))}, task["seed"]).numpy()
    result = fit_parameters(noisy, task["grid"], task["measurement"], task["init"], **task["fit_kwargs"])
    row = {"noise": task["noise"], "seed": task["seed"], "converged": result.converged,
           "iterations": result.iterations, "time": result.timings["total"], "noise_sigma": result.noise_sigma}
    for name in result.names:
        true = task["truth"][name]
        error = result.values[name] - true
        row[name] = result.values[name]
        row[f"{name}_sigma"] = result.uncertainty[name]
        row[f"{name}_error"] = error / true
        row[f"{name}_covered"] = bool(abs(error) <= result.uncertainty[name])
    return row


def noise_study(clean, grid: Grid, measurement, truth: dict, init: Material, noise_levels=(0.05, 0.1, 0.2),
                seeds=range(5), workers: int | None = None, client=None, progress=None, **fit_kwargs) -> list:
    """Repeat ``fit_parameters`` on ``clean`` plus Gaussian noise over noise levels and seeds.

    Parameters
    ----------
    clean : array (ny, nx)
        Noise-free image (e.g. simulated at ``truth``).
    grid, measurement, init
        As for ``fit_parameters``.
    truth : dict name -> float
        The true values (SI) of the fitted parameters.
    noise_levels : sequence of float
        Noise standard deviation as a fraction of the clean image's standard deviation.
    seeds : iterable of int
        Noise seeds (``mfm.add_noise``).
    workers, client, progress
        See ``parallel_map``; one task per fit.
    **fit_kwargs
        Passed to ``fit_parameters`` (e.g. ``fit``, ``m0``, ``bias``).

    Returns
    -------
    list of dict rows: ``noise, seed, converged, iterations, time, noise_sigma`` and per fitted name
    its value, ``<name>_sigma`` (1-sigma uncertainty), ``<name>_error`` (relative) and
    ``<name>_covered`` (the truth within 1 sigma).
    """
    image = check_target(clean, grid)
    fit_names = fit_kwargs.get("fit", MATERIAL_PARAMETERS)
    missing = [n for n in fit_names if n not in truth]
    if missing:
        raise ValueError(f"truth lacks the fitted parameters {missing}")
    tasks = [dict(clean=image, grid=grid, measurement=measurement, init=init, truth=dict(truth), noise=float(level),
                  seed=int(seed), fit_kwargs=fit_kwargs) for level in noise_levels for seed in seeds]
    return parallel_map(_noise_task, tasks, workers, client, progress)


def coverage_table(rows: list, names) -> list:
    """Per noise level: mean |relative error|, RMS relative error, mean relative uncertainty and the
    fraction of seeds whose 1-sigma interval covers the truth, per parameter (list of dicts)."""
    table = []
    for level in sorted({row["noise"] for row in rows}):
        group = [row for row in rows if row["noise"] == level]
        entry = {"noise": level, "fits": len(group)}
        for name in names:
            errors = np.array([row[f"{name}_error"] for row in group])
            sigmas = np.array([row[f"{name}_sigma"] / abs(row[name]) if row[name] else math.nan for row in group])
            entry[f"{name}_mean_abs_error"] = float(np.mean(np.abs(errors)))
            entry[f"{name}_rms_error"] = float(np.sqrt(np.mean(errors ** 2)))
            entry[f"{name}_relative_sigma"] = float(np.mean(sigmas))
            entry[f"{name}_coverage"] = float(np.mean([row[f"{name}_covered"] for row in group]))
        table.append(entry)
    return table
