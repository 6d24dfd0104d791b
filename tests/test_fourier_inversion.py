"""Fourier inversion baseline (``backend.inverse.fourier_inversion``): exact transfer function,
forward-then-inverse consistency, the bundled Neel skyrmion on its strong and weak sides (stray
field and MFM), the Neel texture built on the estimate, and input checks."""

import numpy as np
import pytest
import torch

import napari_mmrecon as nm
from napari_mmrecon._sample_data import load_state
from napari_mmrecon.backend.forward.measurement import simulate_image
from napari_mmrecon.backend.inverse.fourier_inversion import (
    CUTOFF_FACTOR,
    default_cutoff,
    fourier_mz,
    fourier_texture,
    transfer_function,
)
from napari_mmrecon.backend.physics.grid import Grid


def correlation(a, b) -> float:
    """Pearson correlation of two maps."""
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.fixture(scope="module")
def skyrmion():
    """The bundled relaxed Neel skyrmion (64 x 64 x 1, 1 nm cells, D > 0): ``(m, grid, Ms)``."""
    m, grid, material = load_state("single_skyrmion")
    return m, grid, float(material.Ms)


def stray_image(skyrmion, height, side):
    m, grid, Ms = skyrmion
    return nm.stray_field(m, grid, Ms, height=height, side=side)[..., 2]


def perpendicular(grid, mz):
    """``m = (0, 0, mz)`` in every layer (not unit), float64 numpy."""
    m = np.zeros(grid.vector_shape)
    m[..., 2] = mz
    return m


def test_transfer_function_is_the_forward_operator():
    """The 2x-padded transfer function reproduces the package's operator on an arbitrary m_z
    (several layers, unequal cells, a tilted sensor and an MFM tip) to rounding."""
    grid = Grid(nx=13, ny=10, nz=2, dx=1.5e-9, dy=1e-9, dz=2e-9, device="cpu")
    mz = np.random.default_rng(1).uniform(-1, 1, (grid.ny, grid.nx))
    measurements = (nm.StrayFieldMeasurement(height=3e-9, side="bottom", component=(0.3, -0.2, 1.0)),
                    nm.MFMMeasurement(lift_height=4e-9, side="top", quantity="phase"))
    for measurement in measurements:
        T = transfer_function(grid, measurement, 4e5)
        assert T.shape == (2 * grid.ny, 2 * grid.nx)
        padded = torch.zeros(T.shape, dtype=torch.float64)
        padded[:grid.ny, :grid.nx] = torch.as_tensor(mz)
        by_fft = torch.fft.ifft2(T * torch.fft.fft2(padded)).real[:grid.ny, :grid.nx].numpy()
        direct = simulate_image(measurement, torch.as_tensor(perpendicular(grid, mz)), grid, 4e5).numpy()
        np.testing.assert_allclose(by_fft, direct, rtol=0, atol=1e-11 * np.abs(direct).max())


def test_smooth_texture_is_recovered_nearly_exactly(skyrmion):
    """A wide Gaussian dip of m_z on a +1 background, no in-plane part: band-limited far below the
    cut-off, so the inversion of its image returns it to within a few percent."""
    _, grid, Ms = skyrmion
    x, y, _ = grid.cell_centers()
    X, Y = np.meshgrid(x, y)
    mz = 1 - 0.8 * np.exp(-((X - 32e-9) ** 2 + (Y - 29e-9) ** 2) / (2 * (8e-9) ** 2))
    measurement = nm.StrayFieldMeasurement(height=2e-9, side="top")
    image = simulate_image(measurement, torch.as_tensor(perpendicular(grid, mz)), grid, Ms)
    estimate = fourier_mz(image, grid, measurement, Ms)
    rms = np.sqrt(np.mean((estimate - mz) ** 2))
    assert rms < 0.03 * np.sqrt(np.mean((mz - 1) ** 2))  # measured: 2.3 % of the dip's RMS
    assert abs(np.median(estimate) - 1) < 0.01  # the background level comes out right


def test_periodic_film_is_recovered_with_a_wide_cutoff():
    """Periodic films: no padding, T from the circular operator; a balanced smooth pattern comes
    back to within 0.5 % with a cut-off far above its wave number."""
    grid = Grid(nx=32, ny=24, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, pbc=True, device="cpu")
    x, y, _ = grid.cell_centers()
    X, Y = np.meshgrid(x, y)
    mz = 0.9 * np.sin(2 * np.pi * X / 32e-9) * np.cos(2 * np.pi * Y / 24e-9)
    measurement = nm.StrayFieldMeasurement(height=3e-9)
    image = simulate_image(measurement, torch.as_tensor(perpendicular(grid, mz)), grid, 5e5)
    estimate = fourier_mz(image, grid, measurement, 5e5, cutoff=1e10)
    assert np.sqrt(np.mean((estimate - mz) ** 2)) < 0.005  # measured 0.0012


def test_strong_side_skyrmion_with_the_default_cutoff(skyrmion):
    """Top is the strong side of this Neel skyrmion; there the default cut-off recovers m_z
    (measured 0.978 at 5 nm, 0.979 at 10 nm), far better than on the weak side (0.293 at 10 nm)."""
    m, grid, Ms = skyrmion
    truth = m[0, ..., 2]
    top, bottom = (stray_image(skyrmion, 10e-9, side) for side in ("top", "bottom"))
    assert np.ptp(top) > 3 * np.ptp(bottom)  # the strong side really is the top one
    measurement = nm.StrayFieldMeasurement(height=5e-9, side="top", component="z")
    assert default_cutoff(grid, measurement) == pytest.approx(CUTOFF_FACTOR / 5.5e-9)
    image = stray_image(skyrmion, 5e-9, "top")
    strong5 = correlation(fourier_mz(image, grid, measurement, Ms), truth)
    assert strong5 >= 0.9
    # the cut-off argument is used: a much lower one blurs the core away
    assert correlation(fourier_mz(image, grid, measurement, Ms, cutoff=2 / 5.5e-9), truth) < strong5 - 0.03
    strong10 = correlation(fourier_mz(top, grid, nm.StrayFieldMeasurement(height=10e-9, side="top"), Ms), truth)
    weak10 = correlation(fourier_mz(bottom, grid, nm.StrayFieldMeasurement(height=10e-9, side="bottom"), Ms), truth)
    assert strong10 >= 0.9
    assert weak10 < strong10 - 0.3


def test_numpy_and_torch_images_give_the_same_estimate(skyrmion):
    _, grid, Ms = skyrmion
    measurement = nm.StrayFieldMeasurement(height=10e-9)
    image = stray_image(skyrmion, 10e-9, "top")
    from_numpy = fourier_mz(image, grid, measurement, Ms)
    from_torch = fourier_mz(torch.as_tensor(image, dtype=torch.float32), grid, measurement, Ms)
    assert from_numpy.shape == (grid.ny, grid.nx) and from_numpy.dtype == np.float64
    assert from_numpy.min() >= -1 and from_numpy.max() <= 1
    np.testing.assert_allclose(from_torch, from_numpy, atol=1e-4)


def test_mfm_strong_side(skyrmion):
    """Dipole-tip MFM frequency shift at 10 nm lift on the strong side (measured 0.989)."""
    m, grid, Ms = skyrmion
    measurement = nm.MFMMeasurement(lift_height=10e-9, side="top", tip=nm.PointDipoleTip(moment=1e-16),
                                    cantilever=nm.Cantilever(k=3.0, f0=75e3, Q=200), quantity="frequency_shift")
    image = measurement.simulate(m, grid, Ms)
    assert correlation(fourier_mz(image, grid, measurement, Ms), m[0, ..., 2]) >= 0.85


def test_texture_has_the_neel_sense_of_the_truth(skyrmion):
    """Unit vectors, m_z from the inversion, in-plane part along the truth's (D > 0, chirality +1);
    the opposite chirality points the other way."""
    m, grid, Ms = skyrmion
    measurement = nm.StrayFieldMeasurement(height=5e-9, side="top")
    image = stray_image(skyrmion, 5e-9, "top")
    texture = fourier_texture(image, grid, measurement, Ms)
    assert texture.shape == grid.vector_shape
    np.testing.assert_allclose(np.linalg.norm(texture, axis=-1), 1.0, atol=1e-12)
    estimate, truth = texture[0, ..., :2], m[0, ..., :2]
    norm_e, norm_t = np.linalg.norm(estimate, axis=-1), np.linalg.norm(truth, axis=-1)
    tilted = norm_e > 0
    np.testing.assert_allclose(texture[0, ..., 2][tilted], fourier_mz(image, grid, measurement, Ms)[tilted],
                               atol=1e-12)
    both = (norm_e > 0.3) & (norm_t > 0.3)
    assert both.sum() > 50
    cosine = (estimate * truth).sum(-1)[both] / (norm_e * norm_t)[both]
    assert cosine.mean() > 0.8  # measured 0.9997
    flipped = fourier_texture(image, grid, measurement, Ms, chirality=-1)[0, ..., :2]
    assert ((flipped * truth).sum(-1)[both] / (norm_e * norm_t)[both]).mean() < -0.8


def test_texture_where_m_z_is_flat_is_perpendicular():
    """A zero image has no gradient anywhere: the texture is (0, 0, +1) in every layer."""
    grid = Grid(nx=8, ny=6, nz=2, device="cpu")
    texture = fourier_texture(np.zeros((6, 8)), grid, nm.StrayFieldMeasurement(height=2e-9), 5e5)
    np.testing.assert_array_equal(texture, np.broadcast_to([0.0, 0.0, 1.0], grid.vector_shape))


@pytest.mark.parametrize("change, message", [
    ({"target": np.zeros((6, 7))}, "shape"),
    ({"target": np.zeros((2, 6, 8))}, "shape"),
    ({"target": np.where(np.eye(6, 8) > 0, np.nan, 0.0)}, "NaN"),
    ({"target": torch.full((6, 8), float("inf"))}, "NaN or inf"),
    ({"target": "image"}, "numeric"),
    ({"Ms": -1.0}, "Ms"),
    ({"Ms": np.full((1, 6, 8), 5e5)}, "Ms"),
    ({"cutoff": 0.0}, "cutoff"),
    ({"cutoff": float("nan")}, "cutoff"),
    ({"measurement": "top"}, "measurement"),
    ({"grid": (8, 6)}, "Grid"),
])
def test_bad_input_raises_value_error(change, message):
    grid = Grid(nx=8, ny=6, device="cpu")
    args = {"target": np.zeros((6, 8)), "grid": grid, "measurement": nm.StrayFieldMeasurement(height=2e-9),
            "Ms": 5e5, "cutoff": None}
    args.update(change)
    for function in (fourier_mz, fourier_texture):
        with pytest.raises(ValueError, match=message):
            function(**args)


@pytest.mark.parametrize("chirality", [0, 2, True, "+1"])
def test_bad_chirality_raises_value_error(chirality):
    grid = Grid(nx=8, ny=6, device="cpu")
    with pytest.raises(ValueError, match="chirality"):
        fourier_texture(np.zeros((6, 8)), grid, nm.StrayFieldMeasurement(height=2e-9), 5e5, chirality=chirality)
