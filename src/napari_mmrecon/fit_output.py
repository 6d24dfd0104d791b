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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import layers as layer_data
from .backend import Grid, Material
from .fitting_job import FitOptions, fit_record, measurement_quantity, parameter_units, start_values
from .io import write_ovf, write_tiff

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


def table_text(fitted: FittedImage) -> str:
    """Plain-text table: parameter, start, fitted, 1 sigma, unit, and true value with the error
    when known."""
    result, truth = fitted.result, fitted.truth
    units = parameter_units(result.measurement)
    header = f"{'parameter':<10}{'start':>11}{'fitted':>13}{'1 sigma':>10}  {'unit':<6}"
    header += f"{'true':>11}{'rel. error':>12}" if any(name in truth for name in result.names) else ""
    lines = [header]
    for name, start in fitted.start_values().items():
        value = result.values[name]
        line = f"{name:<10}{start:>11.4g}{value:>13.6g}{result.uncertainty[name]:>10.2g}  {units[name]:<6}"
        if name in truth:
            error = (value - truth[name]) / truth[name] if truth[name] else value - truth[name]
            line += f"{truth[name]:>11.4g}{error:>+12.1e}"
        lines.append(line.rstrip())
    return "\n".join(lines)


def write_fit(folder, fitted: FittedImage, source: str = "") -> list[str]:
    """Write ``FILES`` into ``folder`` (created if needed); return their names."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    result, grid = fitted.result, fitted.grid
    record = fit_record(result, fitted.options)
    material = layer_data.material_to_dict(result.material)
    summary = {**record, "start": fitted.start_values(), "true": dict(fitted.truth), "target": fitted.name,
               "grid": layer_data.grid_to_dict(grid), "material": material}
    (out / "fit.json").write_text(json.dumps(layer_data.json_metadata(summary), indent=2))
    (out / "fit_table.tsv").write_text(result.table() + "\n")
    write_ovf(out / "m_fitted.ovf", result.m, grid, title="m",
              desc=[f"mmrecon fit of {fitted.name}: {result.message}"] + layer_data.ovf_description(material))
    images = layer_data.fit_layers(result.simulated, result.residual, grid, fitted.name,
                                   measurement_quantity(result.measurement), result.measurement.units,
                                   result.material, record, source=source)
    for stem, (data, kwargs, _) in zip(("simulated", "residual"), images):
        meta = layer_data.json_metadata(kwargs["metadata"][layer_data.METADATA_KEY])
        write_tiff(out / f"{stem}.tif", data, (grid.dy, grid.dx), metadata={**meta, "name": kwargs["name"]})
    figure(out / "figure.png", fitted)
    return list(FILES)


def figure(path, fitted: FittedImage) -> None:
    """PNG: target, simulated, residual (common units, centred diverging colours), m_z, the loss
    history on a log scale, and the parameter table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result, grid = fitted.result, fitted.grid
    unit = result.measurement.units
    extent = (0, grid.nx * grid.dx * 1e9, 0, grid.ny * grid.dy * 1e9)
    limit = float(np.abs(fitted.target).max()) or 1.0
    residual_limit = float(np.abs(result.residual).max()) or limit
    panels = [("target", fitted.target, unit, limit), ("simulated (fitted)", result.simulated, unit, limit),
              ("residual (simulated - target)", result.residual, unit, residual_limit),
              ("fitted m_z", result.m[0, :, :, 2], "", 1.0)]
    fig, axes = plt.subplots(2, 3, figsize=(14, 8), constrained_layout=True)
    for ax, (title, image, label, vmax) in zip(axes.flat, panels):
        shown = ax.imshow(image, origin="lower", extent=extent, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(title)
        ax.set_xlabel("x (nm)")
        ax.set_ylabel("y (nm)")
        fig.colorbar(shown, ax=ax, label=label, shrink=0.85)
    ax = axes.flat[4]
    ax.semilogy(np.arange(1, len(result.loss_history) + 1), np.maximum(result.loss_history, 1e-300), "o-")
    ax.set_xlabel("outer iteration (all stages)")
    ax.set_ylabel("normalized misfit")
    ax.set_title("loss history")
    axes.flat[5].axis("off")  # the table, wider than a panel, goes there in figure coordinates
    fig.text(0.62, 0.45, f"{table_text(fitted)}\n\n{result.message}", family="monospace", fontsize=7, va="top")
    fig.suptitle(f"fit of {fitted.name}")
    fig.savefig(path, dpi=80)
    plt.close(fig)
