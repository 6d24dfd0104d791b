"""A field-series fit as a job, and its files: what ``mmrecon fit IMG1 IMG2 ... --fields ...`` and the
fit dock's field-series mode run.

``validate_series`` checks the inputs; ``fit_series`` orchestrates ``backend.fit_field_series`` (in
a helper thread, through ``jobs.relay``) in the protocol of ``jobs``, as ``fit.fit`` does for one
image; SI units throughout. ``write_series(folder, ...)`` writes

``fit.json``            ``FieldSeriesResult.to_dict()`` (shared values, 1-sigma uncertainties, units,
                        correlations, fields, per-image misfits, noise and skyrmion radii, loss
                        history, how it ended) with the options, the start values, the known true
                        values, the grid and the targets' names
``fit_table.tsv``       ``FieldSeriesResult.table()``
``m_fitted_<i>.ovf``    image i's relaxed magnetization at the fitted material
``simulated.tif``       the fitted images ``(n, ny, nx)`` and ``residual.tif`` = simulated - targets
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..backend import Grid, Material, fit_field_series
from ..backend.inverse.field_series import SERIES_BIAS_OPTIONS
from ..backend.inverse.parameter_fit import check_target
from . import layer_data
from .fit import FitOptions, check_unit, measurement_quantity, snapshot_reporter, start_values, validate
from .jobs import Job, Progress, relay_snapshots
from .options import check
from .output_files import write_image, write_json, write_state, write_text

FILES = ("fit.json", "fit_table.tsv", "simulated.tif", "residual.tif")
"""The files of every series fit; ``m_fitted_<i>.ovf`` (one per image) come with them (``files``)."""


def files(n: int) -> list[str]:
    """The names of the files a series of ``n`` images writes."""
    return list(FILES) + [f"m_fitted_{i}.ovf" for i in range(n)]


def validate_series(targets, grid: Grid, measurement, fields, init: Material, options: FitOptions = FitOptions(),
                    m0=None, pixel_sizes=None, units=None, m0_grid: Grid | None = None,
                    names=None) -> tuple[np.ndarray, tuple]:
    """Check the inputs of a field-series fit before running it; return the images float64 ``(n,
    ny, nx)`` and the applied fields H_z (A/m, a tuple of n).

    ``targets``: n >= 2 images ``(ny, nx)``; ``fields``: one H_z (A/m) per image; ``pixel_sizes`` and
    ``units``: one per image (or None); ``names``: what messages call the images (default "image
    i"). The images are checked as ``fit.validate`` checks one, and so are the material, the options
    and ``m0``; ``ValueError`` names the image or the field at fault, and a bias other than none or
    target.
    """
    n = len(targets)
    names = [f"image {i}" for i in range(n)] if names is None else list(names)
    if n < 2:
        raise ValueError(f"a field series is two or more images of one film at different applied fields; got {n}")
    fields = check("fields", tuple(fields))
    if len(fields) != n:
        raise ValueError(f"{len(fields)} applied field{'s' if len(fields) != 1 else ''} for {n} images: give one "
                         "per image, in their order")
    if options.bias not in SERIES_BIAS_OPTIONS:
        raise ValueError(f"bias {options.bias!r}: a field series takes bias {' or '.join(SERIES_BIAS_OPTIONS)}")
    pixel_sizes = [None] * n if pixel_sizes is None else list(pixel_sizes)
    units = [""] * n if units is None else list(units)
    images = []
    for target, pixel, unit, name in zip(targets, pixel_sizes, units, names):
        try:
            images.append(check_target(target, grid, pixel))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        check_unit(unit, measurement, name)
    validate(images[0], grid, measurement, init, options, m0, m0_grid=m0_grid)  # the material, options and m0
    return np.stack(images), fields


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

    def call(report):
        return fit_field_series(images, grid, measurement, fields, init, fit=options.fit, m0=m0, bias=options.bias,
                                bias_strength=options.bias_strength, max_iter=options.max_iter,
                                relax_tol=options.relax_tol, pixel_size=pixel_size,
                                progress=snapshot_reporter(report, images), cancel=cancel)

    def describe(snapshot):
        return Progress(snapshot.iteration, 0, f"field series, {snapshot.stage} stage: iteration {snapshot.iteration}, "
                                               f"loss {snapshot.loss:.3e}")

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
