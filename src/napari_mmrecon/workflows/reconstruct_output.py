"""The files of a texture reconstruction (``mmrecon reconstruct`` and ``mmrecon demo``).

``write_reconstruction(folder, reconstructed, ...)`` writes

``m.ovf``               the reconstructed magnetization (the material in a Desc line)
``bias_field.ovf``      the bias field H (A/m) whose equilibrium ``m`` is (the bias method: the
                        fitted one; energy-relaxed: the bias that held the domains)
``simulated.tif``       the image(s) of ``m`` and ``residual.tif`` = simulated - target, with pixel
                        size and metadata (``layer_data.reconstruction_layers``'s), in the targets'
                        units; a stack ``(nh, ny, nx)`` for several targets
``reconstruction.png``  per target: target, simulated, residual; then m_z, the bias field's z
                        component and the loss history (``figures.reconstruction_figure``)
``report.json``         ``reconstruct.reconstruction_record`` (how it ended, misfit and goal, noise,
                        iterations, loss history, timings, material, measurements, options) with
                        the targets' names, the grid and, when the true texture is known, the
                        ``texture_metrics`` against it; SI

Every file replaces its namesake only once it is complete (``output_files``); which files a caller
may replace is the caller's decision (``mmrecon reconstruct`` checks before it runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import layer_data
from ..backend import Grid
from .figures import reconstruction_figure
from .fit import measurement_metadata, measurement_quantity
from .output_files import write_image, write_json, write_state
from .reconstruct import ReconstructOptions, reconstruction_record

FILES = ("m.ovf", "bias_field.ovf", "simulated.tif", "residual.tif", "reconstruction.png", "report.json")


def output_files(method: str) -> tuple:
    """The names of the files ``write_reconstruction`` writes for ``method`` (a bias field for the
    methods whose texture is an equilibrium under one: bias, energy-relaxed)."""
    return tuple(name for name in FILES if method in ("bias", "energy-relaxed") or name != "bias_field.ovf")


@dataclass
class ReconstructedImages:
    """A finished reconstruction with what it was made from: the ``targets`` ``(nh, ny, nx)``
    (named ``names``) on ``grid`` with ``options``; ``metrics`` the ``TextureMetrics`` against the
    true texture when it is known (e.g. a bundled sample)."""

    result: object
    targets: np.ndarray
    grid: Grid
    names: tuple
    options: ReconstructOptions
    metrics: object = None

    @property
    def name(self) -> str:
        """The targets' names joined: ``"a"`` or ``"a + b"``."""
        return " + ".join(self.names)


def image_kind(measurements) -> tuple[str, str]:
    """``(quantity, unit)`` of the images of ``measurements`` when they agree, else ``("", "")``
    for those that differ (a stack of a stray field and an MFM image)."""
    quantities = {measurement_quantity(m) for m in measurements}
    units = {m.units for m in measurements}
    return (quantities.pop() if len(quantities) == 1 else "", units.pop() if len(units) == 1 else "")


def image_entries(measurements) -> dict:
    """Metadata entries of the simulated image that describe its measurement (one image only), so
    that the file reads back as a target."""
    return measurement_metadata(measurements[0]) if len(measurements) == 1 else {}


def write_reconstruction(folder, reconstructed: ReconstructedImages, source: str = "") -> list[str]:
    """Write ``output_files(method)`` into ``folder`` (created if needed); return their names."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    result, grid, name = reconstructed.result, reconstructed.grid, reconstructed.name
    record = reconstruction_record(result, reconstructed.options)
    summary = {"schema": layer_data.SCHEMA_VERSION, **record, "targets": list(reconstructed.names),
               "grid": grid.to_dict(),
               "metrics": None if reconstructed.metrics is None else reconstructed.metrics.to_dict()}
    line = f"mmrecon reconstruction ({result.method}) of {name}: {result.message}"
    write_state(out / "m.ovf", result.m, grid, result.material, line)
    if result.bias_field is not None:
        write_state(out / "bias_field.ovf", result.bias_field, grid, result.material, line, title="H_bias",
                    value_units="A/m")
    quantity, unit = image_kind(result.measurements)
    for stem, data, what, extra in (("simulated", result.simulated, quantity, image_entries(result.measurements)),
                                    ("residual", result.residual, "residual", {})):
        meta = layer_data.image_metadata((grid.dy, grid.dx), what, unit, grid, result.material, source, target=name,
                                         reconstruction=record, **extra)
        write_image(out / f"{stem}.tif", data, grid, meta, f"{name} reconstruction {stem}")
    figure(out / "reconstruction.png", reconstructed)
    write_json(out / "report.json", summary)
    return list(output_files(result.method))


def figure(path, reconstructed: ReconstructedImages) -> None:
    """PNG (``figures.reconstruction_figure``): per target its image, the simulated one (both on
    one scale) and the residual, then m_z, the bias field's z component and the loss history."""
    result = reconstructed.result
    stack = len(reconstructed.targets) > 1
    simulated = result.simulated if stack else result.simulated[None]
    residual = result.residual if stack else result.residual[None]
    rows = []
    for target, image, rest, name, measurement in zip(reconstructed.targets, simulated, residual,
                                                       reconstructed.names, result.measurements):
        unit, limit = measurement.units, float(np.abs(target).max()) or 1.0
        rows.append([(name, target, unit, limit), ("simulated (reconstructed)", image, unit, limit),
                     ("residual (simulated - target)", rest, unit, None)])
    maps = [("reconstructed m_z", result.m[0, :, :, 2], "", 1.0)]
    if result.bias_field is not None:
        maps.append(("bias field H_z", result.bias_field[0, :, :, 2], "A/m", None))
    note = f"{result.message}; {result.iterations} iterations"
    if reconstructed.metrics is not None:
        q = reconstructed.metrics
        note += (f"; against the truth: mean angle error {q.angle_error:.3g} deg, m_z correlation "
                 f"{q.mz_correlation:.3f}, charge {q.charge:.2f} (true {q.charge_true:.2f})")
    reconstruction_figure(path, rows, maps, reconstructed.grid, result.loss_history, note,
                          f"{result.method} reconstruction of {reconstructed.name}")
