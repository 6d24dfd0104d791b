"""The measurement operators used by fits: the same images as the public functions, and the
analytic height derivative equal to autograd through the kernel's construction."""

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.forward.measurement import (
    height_derivative,
    simulate_image,
    with_plane_distance,
)

GRID = mm.Grid(nx=24, ny=20, nz=2, dx=1e-9, dy=1.5e-9, dz=1e-9)
MEASUREMENTS = [
    mm.StrayFieldMeasurement(height=5e-9, side="top", component=(0.3, 0.2, 1.0)),
    mm.StrayFieldMeasurement(height=3e-9, side="bottom", component="x"),
    mm.MFMMeasurement(lift_height=5e-9, side="bottom", tip=mm.PointMonopoleTip(1e-9), quantity="phase"),
    mm.MFMMeasurement(lift_height=4e-9, side="top", tip=mm.PointDipoleTip(1e-16, direction=(0.2, 0, 1))),
]


@pytest.mark.parametrize("measurement", MEASUREMENTS)
def test_simulate_image_equals_the_measurement(measurement):
    m = mm.textures.random(GRID, seed=2)
    expected = measurement.simulate(m, GRID, 5e5)
    got = simulate_image(measurement, GRID.tensor(m), GRID, 5e5).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    moved = with_plane_distance(measurement, 7e-9)
    np.testing.assert_allclose(simulate_image(moved, GRID.tensor(m), GRID, 5e5).numpy(),
                               moved.simulate(m, GRID, 5e5), rtol=1e-12, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("measurement", MEASUREMENTS)
def test_height_derivative_is_the_autograd_derivative(measurement):
    m = GRID.tensor(mm.textures.random(GRID, seed=3))
    h = torch.tensor(5e-9, dtype=torch.float64)
    _, expected = torch.autograd.functional.jvp(lambda hh: simulate_image(measurement, m, GRID, 5e5, hh), h,
                                                torch.ones_like(h))
    got = height_derivative(measurement, m, GRID, 5e5, 5e-9)
    if isinstance(getattr(measurement, "tip", None), mm.PointDipoleTip):
        assert got is None  # would need a third z-derivative of the kernel; callers use autograd
        return
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12 * float(expected.abs().max()))
