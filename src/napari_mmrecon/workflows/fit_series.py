"""A field-series fit as a job, and its files: what ``mmrecon fit IMG1 IMG2 ... --fields ...`` runs.

It orchestrates ``backend.fit_field_series`` (in a helper thread, through ``jobs.relay``) in the
protocol of ``jobs``, as ``fit.fit`` does for one image; SI units throughout. ``write_series(folder,
...)`` writes

``fit.json``            ``FieldSeriesResult.to_dict()`` (shared values, 1-sigma uncertainties, units,
                        correlations, fields, per-image misfits, noise and skyrmion radii, loss
                        history, how it ended) with the options, the start values, the known true
                        values, the grid and the targets' names
``fit_table.tsv``       ``FieldSeriesResult.table()``
``m_fitted_<i>.ovf``    image i's relaxed magnetization at the fitted material
``simulated.tif``       the fitted images ``(n, ny, nx)`` and ``residual.tif`` = simulated - targets
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np

from ..backend import Grid, Material, fit_field_series
from . import layer_data
from .fit import FitOptions, FitSnapshot, measurement_quantity, start_values
from .jobs import Job, Progress, relay_snapshots
from .output_files import write_image, write_json, write_state, write_text

FILES = ("fit.json", "fit_table.tsv", "simulated.tif", "residual.tif")
"""The files of every series fit; ``m_fitted_<i>.ovf`` (one per image) come with them (``files``)."""


def files(n: int) -> list[str]:
    """The names of the files a series of ``n`` images writes."""
    return list(FILES) + [f"m_fitted_{i}.ovf" for i in range(n)]


def fit_series(targets, grid: Grid, measurement, fields, init: Material, options: FitOptions = FitOptions(),
               m0=None, pixel_size=None, cancel: threading.Event | None = None) -> Job:
    """Job (see ``jobs``): ``backend.fit_field_series`` with progress and snapshots.

    ``targets`` ``(n, ny, nx)`` in the measurement's units; ``fields`` n values H_z or ``(n, 3)``
    (A/m); ``options`` as for ``fit.fit`` (its ``optimizer`` and ``external_field`` are not used: a
    series is fitted by Levenberg-Marquardt, each image at its own field). Yields ``Progress`` and
    ``Partial(FitSnapshot)`` (``m`` ``(n, nz, ny, nx, 3)``, images ``(n, ny, nx)``) after every
    outer iteration; returns the ``FieldSeriesResult``.
    """
    cancel = threading.Event() if cancel is None else cancel
    images = np.asarray(targets, dtype=float)
    counter = itertools.count(1)

    def call(report):
        def progress(state):  # helper thread: copy now, the backend goes on with its tensors
            simulated = state.simulated.detach().cpu().numpy().copy()
            report(FitSnapshot(state.stage, next(counter), float(state.loss), dict(state.values),
                               state.m.detach().cpu().numpy().copy(), simulated, simulated - images))

        return fit_field_series(images, grid, measurement, fields, init, fit=options.fit, m0=m0, bias=options.bias,
                                bias_strength=options.bias_strength, max_iter=options.max_iter,
                                relax_tol=options.relax_tol, pixel_size=pixel_size, progress=progress, cancel=cancel)

    def describe(snapshot):
        return f"field series, {snapshot.stage} stage: iteration {snapshot.iteration}, loss {snapshot.loss:.3e}"

    yield Progress(0, 0, f"field series: relaxing the {len(images)} starting states")
    result = yield from relay_snapshots(call, cancel, describe)
    yield Progress(1, 1, f"field series: {result.message} (misfit {result.misfit:.3e})")
    return result


def write_series(folder, result, targets: np.ndarray, grid: Grid, names: list, start: Material, measurement,
                 options: FitOptions, truth: dict, source: str = "") -> list[str]:
    """Write ``files(n)`` into ``folder`` (created if needed); return their names."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    record = result.to_dict()
    record["options"] = {"fit": list(options.fit), "bias": options.bias, "bias_strength": options.bias_strength,
                         "max_iter": options.max_iter, "relax_tol": options.relax_tol}
    summary = {"schema": layer_data.SCHEMA_VERSION, **record, "start": start_values(result.names, start, measurement),
               "true": dict(truth), "targets": list(names), "grid": grid.to_dict()}
    write_json(out / "fit.json", summary)
    write_text(out / "fit_table.tsv", result.table() + "\n")
    for i, (m, name, field) in enumerate(zip(result.m, names, result.fields)):
        write_state(out / f"m_fitted_{i}.ovf", m, grid, result.material,
                    f"mmrecon field-series fit of {name} at H = {np.asarray(field).tolist()} A/m: {result.message}")
    for stem, data, quantity in (("simulated", result.simulated, measurement_quantity(result.measurement)),
                                 ("residual", result.residual, "residual")):
        meta = layer_data.image_metadata((grid.dy, grid.dx), quantity, result.measurement.units, grid,
                                         result.material, source, targets=list(names),
                                         fields=np.asarray(result.fields).tolist())
        write_image(out / f"{stem}.tif", data, grid, meta, f"field series {stem}")
    return files(len(names))
