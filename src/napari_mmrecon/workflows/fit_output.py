"""The files and the printed table of a material-parameter fit (``mmrecon fit`` and ``mmrecon demo``).

``write_fit(folder, fitted, ...)`` writes

``fit.json``          ``fitting_job.fit_record`` (values, 1-sigma uncertainties, units, correlations,
                      loss history, how it ended, timings, measurement, options) with the start
                      values, the known true values (if any), the grid and the target's name; SI
``fit_table.tsv``     ``FitResult.table()``: parameter, value, uncertainty, unit (tab-separated)
``m_fitted.ovf``      the relaxed magnetization at the fitted parameters (material in a Desc line)
``simulated.tif``     the fitted image and ``residual.tif`` = simulated - target, with pixel size and
                      metadata (``layers.fit_layers``), in the target's units
``figure.png``        target, simulated, residual and m_z maps, the loss history and the table
                      (``figures.fit_figure``)

Every file replaces its namesake only once it is complete (``output_files``); which files a caller
may replace is the caller's decision (``mmrecon fit`` checks before it runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import layer_data
from ..backend import Grid, Material
from .figures import fit_figure
from .fit import FitOptions, fit_record, measurement_quantity, parameter_units, start_values
from .output_files import write_image, write_json, write_state, write_text

FILES = ("fit.json", "fit_table.tsv", "m_fitted.ovf", "simulated.tif", "residual.tif", "figure.png")


@dataclass
class FittedImage:
    """A finished fit with what it was fitted to: ``target`` ``(ny, nx)`` (named ``name``) on
    ``grid``, from the material ``start`` and the measurement ``start_measurement`` (its height
    is the start of a fitted height) with ``options``; ``truth`` holds known true values (SI) of
    some parameters, e.g. when the target was simulated."""

    result: object
    target: np.ndarray
    grid: Grid
    name: str
    start: Material
    start_measurement: object
    options: FitOptions
    truth: dict

    def start_values(self) -> dict:
        """Starting value (SI) of every fitted parameter."""
        return start_values(self.result.names, self.start, self.start_measurement)


def table_rows(fitted: FittedImage) -> tuple[list, list]:
    """``(header, rows)`` of strings: parameter, start, fitted, 1 sigma, unit, and the true value
    with the relative error when some are known."""
    result, truth = fitted.result, fitted.truth
    units = parameter_units(result.measurement)
    known = any(name in truth for name in result.names)
    header = ["parameter", "start", "fitted", "1 sigma", "unit"] + (["true", "rel. error"] if known else [])
    rows = []
    for name, start in fitted.start_values().items():
        value = result.values[name]
        row = [name, f"{start:.4g}", f"{value:.6g}", f"{result.uncertainty[name]:.2g}", units[name]]
        if name in truth:
            error = (value - truth[name]) / truth[name] if truth[name] else value - truth[name]
            row += [f"{truth[name]:.4g}", f"{error:+.1e}"]
        rows.append(row + [""] * (len(header) - len(row)))
    return header, rows


def table_text(fitted: FittedImage) -> str:
    """``table_rows`` as plain text in aligned columns (names and units left, numbers right)."""
    header, rows = table_rows(fitted)
    widths = [max(len(line[column]) for line in [header] + rows) for column in range(len(header))]
    left = {0, header.index("unit")}

    def line(cells):
        return "  ".join(cell.ljust(width) if column in left else cell.rjust(width)
                         for column, (cell, width) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join(line(cells) for cells in [header] + rows)


def write_fit(folder, fitted: FittedImage, source: str = "") -> list[str]:
    """Write ``FILES`` into ``folder`` (created if needed); return their names."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    result, grid = fitted.result, fitted.grid
    record = fit_record(result, fitted.options)
    summary = {"schema": layer_data.SCHEMA_VERSION, **record, "start": fitted.start_values(),
               "true": dict(fitted.truth), "target": fitted.name, "grid": grid.to_dict()}
    write_json(out / "fit.json", summary)
    write_text(out / "fit_table.tsv", result.table() + "\n")
    write_state(out / "m_fitted.ovf", result.m, grid, result.material,
                f"mmrecon fit of {fitted.name}: {result.message}")
    for stem, data, quantity in (("simulated", result.simulated, measurement_quantity(result.measurement)),
                                 ("residual", result.residual, "residual")):
        meta = layer_data.image_metadata((grid.dy, grid.dx), quantity, result.measurement.units, grid,
                                         result.material, source, target=fitted.name, fit=record)
        write_image(out / f"{stem}.tif", data, grid, meta, f"{fitted.name} {stem}")
    figure(out / "figure.png", fitted)
    return list(FILES)


def figure(path, fitted: FittedImage) -> None:
    """PNG (``figures.fit_figure``): target, simulated and residual in the image's units (target
    and simulated on one scale), the fitted m_z, the loss history and the parameter table."""
    result = fitted.result
    unit = result.measurement.units
    limit = float(np.abs(fitted.target).max()) or 1.0
    maps = [("target", fitted.target, unit, limit), ("simulated (fitted)", result.simulated, unit, limit),
            ("residual (simulated - target)", result.residual, unit, None),
            ("fitted m_z", result.m[0, :, :, 2], "", 1.0)]
    fit_figure(path, maps, fitted.grid, result.loss_history, table_rows(fitted), result.message,
               f"fit of {fitted.name}")
