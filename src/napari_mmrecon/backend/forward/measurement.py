"""What an image is: the forward operator of a stray-field or MFM measurement, as used by fits.

``image_operator(measurement, grid, height)`` returns the linear map ``M (A/m) -> image`` of a
``StrayFieldMeasurement`` (a field component / sensor axis, A/m) or an ``MFMMeasurement``
(frequency shift in Hz or phase in degrees), without input checks, so that inverse solvers can
apply it to any (not necessarily unit) magnetization and differentiate it. The plane distance
(``height`` / ``lift_height``) may be a tensor that requires grad.
"""

from __future__ import annotations

import dataclasses

import torch

from ..physics.grid import MU0, Grid
from ..runtime.records import SCHEMA_VERSION, from_record
from .mfm import MFMMeasurement
from .stray import MAX_Z_DERIVATIVE, StrayField, StrayFieldMeasurement

MEASUREMENTS = (StrayFieldMeasurement, MFMMeasurement)


def check_measurement(measurement):
    """``measurement`` if it is a ``StrayFieldMeasurement`` or ``MFMMeasurement``, else ``ValueError``."""
    if not isinstance(measurement, MEASUREMENTS):
        raise ValueError("measurement must be a StrayFieldMeasurement or an MFMMeasurement, got "
                         f"{type(measurement).__name__}")
    return measurement


def measurement_from_dict(values, schema: int = SCHEMA_VERSION):
    """A ``StrayFieldMeasurement`` or ``MFMMeasurement`` from its ``to_dict`` record (told apart by
    ``kind``), of version ``schema``."""
    kind = from_record("measurement", values, ("kind",), schema)["kind"]
    kinds = {"stray field": StrayFieldMeasurement, "MFM": MFMMeasurement}
    if kind not in kinds:
        raise ValueError(f"unknown measurement kind {kind!r}: expected 'stray field' or 'MFM'")
    return kinds[kind].from_dict(values, schema)


def plane_distance(measurement) -> float:
    """The measurement's ``height`` (stray field) or ``lift_height`` (MFM) in metres, as a float."""
    value = measurement.height if isinstance(measurement, StrayFieldMeasurement) else measurement.lift_height
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def with_plane_distance(measurement, distance):
    """A copy of ``measurement`` at another height / lift height (m, float or tensor)."""
    name = "height" if isinstance(measurement, StrayFieldMeasurement) else "lift_height"
    return dataclasses.replace(measurement, **{name: distance})


def image_operator(measurement, grid: Grid, distance=None):
    """Linear map ``M -> image`` of a measurement.

    Parameters
    ----------
    measurement : StrayFieldMeasurement or MFMMeasurement
    grid : Grid
    distance : float or 0-d tensor, optional
        Height / lift height (m) replacing the measurement's own (e.g. a fitted one).

    Returns
    -------
    callable taking ``M (..., nz, ny, nx, 3)`` in A/m and returning the image ``(..., ny, nx)`` in the
    measurement's units (A/m, Hz or degrees).
    """
    check_measurement(measurement)
    distance = plane_distance(measurement) if distance is None else distance
    if isinstance(distance, torch.Tensor):
        distance = distance.reshape(())
    if isinstance(measurement, StrayFieldMeasurement):
        return StrayField(grid, distance, measurement.side, 0, axis=measurement.axis)
    cantilever = measurement.cantilever
    poles = [(MU0 * strength, StrayField(grid, distance, measurement.side, order, axis=axis, name="lift_height"))
             for order, axis, strength in measurement.tip.poles]

    def mfm(M: torch.Tensor) -> torch.Tensor:
        return measurement.from_frequency_shift(cantilever.frequency_shift(sum(c * field(M) for c, field in poles)))

    return mfm


def simulate_image(measurement, m: torch.Tensor, grid: Grid, Ms, distance=None) -> torch.Tensor:
    """Image ``(..., ny, nx)`` of ``m (..., nz, ny, nx, 3)`` with ``Ms`` (A/m, tensor or number)."""
    Ms_t = Ms if isinstance(Ms, torch.Tensor) else grid.tensor(Ms)
    if Ms_t.ndim == 3:
        Ms_t = Ms_t.unsqueeze(-1)
    return image_operator(measurement, grid, distance)(Ms_t * m)


def height_derivative(measurement, m: torch.Tensor, grid: Grid, Ms, distance: float):
    """``dS/dh`` (image units per m, ``(..., ny, nx)``): the image's derivative w.r.t. the plane distance.

    The plane sits at ``z = nz dz + h`` (top) or ``z = -h`` (bottom), so ``dS/dh = +-dS/dz``, taken from
    the analytic kernel of one more z-derivative where it exists (stray field, monopole MFM tip);
    ``None`` for an MFM tip with a dipole (its image already uses the highest derivative available),
    which callers differentiate by autograd instead.
    """
    sign = 1.0 if measurement.side == "top" else -1.0
    Ms_t = Ms if isinstance(Ms, torch.Tensor) else grid.tensor(Ms)
    M = (Ms_t.unsqueeze(-1) if Ms_t.ndim == 3 else Ms_t) * m
    if isinstance(measurement, StrayFieldMeasurement):
        return sign * StrayField(grid, distance, measurement.side, 1, axis=measurement.axis)(M)
    poles = measurement.tip.poles
    if any(order + 1 > MAX_Z_DERIVATIVE for order, _, _ in poles):
        return None
    force_gradient = sum(MU0 * strength * sign * StrayField(grid, distance, measurement.side, order + 1, axis=axis,
                                                            name="lift_height")(M)
                         for order, axis, strength in poles)
    return measurement.from_frequency_shift(measurement.cantilever.frequency_shift(force_gradient))
