"""The U-Net's prediction of a magnetization as a job: what the "U-Net reconstruction" widget runs.
It only orchestrates ``backend.learn.predict.unet_predict`` and reports in the protocol of ``jobs``;
SI units throughout.

    measurement = mm.StrayFieldMeasurement(height=10e-9, side="top")
    images = validate(target, grid, measurement, material)        # ValueError if bad
    result = jobs.run(predict(images, grid, measurement, material))
    result.m, result.extrapolated, result.notes                     # UNetResult
    layers = unet_layers(result, "Hz top 10 nm")                    # m_z image + arrows

The prediction is one call of a second or less, so the job yields only before and after it: a
cancel during the call drops its result at the second yield. Beyond the ranges the weights were
trained on the backend warns (``UNetExtrapolationWarning``); here the warning is not printed but
kept in ``result.extrapolated`` (one line per quantity, with its range) for the caller to show.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..backend import Grid, Material
from ..backend.learn.predict import UNetExtrapolationWarning, network_view, shipped_weights, unet_predict
from . import layer_data
from .jobs import Job, Progress
from .reconstruct import as_stack, check_images, material_values


@dataclass
class UNetResult:
    """A U-Net prediction with what it was made from.

    ``m`` ``(nz, ny, nx, 3)`` unit vectors on ``grid``; ``measurements`` one per image;
    ``material`` the one given (None: ``D > 0`` assumed); ``extrapolated`` one line per quantity
    outside the training ranges (empty inside them); ``notes`` padding, tiling, an assumed DMI
    sign; ``weights`` the checkpoint's path; ``seconds`` the prediction's wall time.
    """

    m: np.ndarray
    grid: Grid
    measurements: tuple
    material: Material | None
    weights: str
    seconds: float
    extrapolated: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def message(self) -> str:
        """One line: how long it took and whether it extrapolated."""
        where = "extrapolated beyond the training ranges" if self.extrapolated else "within the training ranges"
        return f"U-Net prediction {where} ({self.seconds:.2f} s)"

    def to_dict(self) -> dict:
        """The ``unet`` metadata entry of the layers (SI): ``method``, ``weights``, ``extrapolated``,
        ``notes``, ``measurements`` (their records), ``material`` (None if not given), ``seconds``."""
        return {"method": "unet", "weights": self.weights, "extrapolated": list(self.extrapolated),
                "notes": list(self.notes), "measurements": [meas.to_dict() for meas in self.measurements],
                "material": None if self.material is None else self.material.to_dict(), "seconds": self.seconds}


def weights_file(weights=None) -> Path:
    """The checkpoint ``weights`` (default: the shipped one); ``ValueError`` naming it if it is not a file."""
    path = Path(weights) if weights is not None else shipped_weights()
    if not path.is_file():
        hint = (" (this installation ships no U-Net weights: choose a checkpoint made by `mmrecon train`)"
                if weights is None else "")
        raise ValueError(f"U-Net weights not found: {path}{hint}")
    return path


def validate(targets, grid: Grid, measurements, material: Material | None = None, pixel_size=None, units=None,
             names=None, weights=None) -> np.ndarray:
    """Check the inputs of a prediction before running it; return the images as float64
    ``(nh, ny, nx)``.

    The images as ``reconstruct.check_images`` checks them (shape, NaN, constant, pixel size,
    unit, height; named by ``names[i]``), the material's values (one number each, within the
    physical ranges), that the network takes each measurement (H_z, a point-dipole MFM image) and
    that ``weights`` (default: the shipped ones) is a file; ``ValueError`` names the problem.
    """
    images = check_images(targets, grid, measurements, pixel_size, units, names)
    for measurement in measurements if isinstance(measurements, (list, tuple)) else [measurements]:
        network_view(measurement)
    if material is not None:
        material_values(material)
    weights_file(weights)
    return images


def predict(targets, grid: Grid, measurements, material: Material | None = None, weights=None) -> Job:
    """Job (see ``jobs``): ``unet_predict`` with progress.

    Parameters
    ----------
    targets : ndarray (ny, nx) or (nh, ny, nx), or a list of images
        The image(s), each in its measurement's units (A/m, Hz or degrees).
    grid : Grid
        The film; ``(ny, nx)`` as the images.
    measurements : StrayFieldMeasurement or MFMMeasurement, or a sequence of them
        One per image: H_z, or point-dipole MFM frequency shift or phase.
    material : Material, optional
        The sign of ``D`` picks the strong side; all values are compared with the training ranges.
    weights : path, optional
        A checkpoint of ``mmrecon train``; default the shipped weights.

    Yields ``Progress`` before and after the prediction; returns a ``UNetResult``. ``ValueError``
    for images or measurements the network does not take, or weights it cannot read.
    """
    images, measurements = as_stack(targets, measurements)
    stack = np.stack([np.asarray(image, dtype=float) for image in images])
    yield Progress(0, 1, f"U-Net: predicting m from {len(stack)} image{'s' if len(stack) > 1 else ''}")
    started = time.perf_counter()
    with warnings.catch_warnings():  # reported in the result instead
        warnings.simplefilter("ignore", UNetExtrapolationWarning)
        m, info = unet_predict(stack, grid, list(measurements), material, weights, return_info=True)
    result = UNetResult(np.asarray(m, dtype=np.float64), grid, tuple(measurements), material, info.weights,
                        time.perf_counter() - started, list(info.extrapolated), list(info.notes))
    yield Progress(1, 1, result.message)
    return result


def unet_layers(result: UNetResult, name: str, source: str = "") -> list[tuple]:
    """Layer data tuples of a prediction: the m_z Image ``"<name> U-Net m"`` and the arrows Vectors
    ``"<name> U-Net m arrows"`` (``layer_data.magnetization_layers``: nm scale, the full ``m``,
    grid and material in metadata), both with the ``unet`` entry ``result.to_dict()`` and
    ``target`` (``name``, the images' layer or file)."""
    state = layer_data.magnetization_layers(result.m, result.grid, result.material, name=f"{name} U-Net m",
                                            source=source)
    record = {**result.to_dict(), "target": name}
    for _, kwargs, _ in state:
        kwargs["metadata"][layer_data.METADATA_KEY]["unet"] = record
    return state
