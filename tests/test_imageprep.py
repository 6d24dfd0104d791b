"""Levelling, background removal and resampling of measured images."""

import numpy as np
import pytest

from napari_mmrecon.backend.measured import imageprep as ip

RNG = np.random.default_rng(3)
SIGNAL = RNG.standard_normal((40, 50))


def test_plane_level_removes_a_tilted_plane_exactly():
    y, x = np.mgrid[0:40, 0:50]
    levelled = ip.plane_level(SIGNAL + 3.0 + 0.2 * x - 0.7 * y)
    np.testing.assert_allclose(levelled, ip.plane_level(SIGNAL), atol=1e-12)
    assert abs(levelled.mean()) < 1e-12


def test_plane_level_on_masked_background():
    y, x = np.mgrid[0:40, 0:50]
    image = np.where((x > 20) & (x < 30), 5.0, 0.0) + 0.1 * x + 2.0
    levelled = ip.plane_level(image, mask=~((x > 20) & (x < 30)))
    np.testing.assert_allclose(levelled, np.where((x > 20) & (x < 30), 5.0, 0.0), atol=1e-12)


@pytest.mark.parametrize("order", [0, 1])
def test_line_level_removes_per_line_offsets_and_slopes(order):
    offsets = RNG.standard_normal((40, 1)) * 10
    slopes = RNG.standard_normal((40, 1)) * (order == 1)
    x = np.arange(50)[None, :]
    clean = ip.line_level(SIGNAL, order)
    np.testing.assert_allclose(ip.line_level(SIGNAL + offsets + slopes * x, order), clean, atol=1e-10)
    np.testing.assert_allclose(ip.line_level((SIGNAL + offsets).T, order, axis=0).T, ip.line_level(SIGNAL, order),
                               atol=1e-10)


def test_remove_background_keeps_small_features():
    y, x = np.mgrid[0:128, 0:128] * 1e-9
    bump = np.exp(-((x - 64e-9) ** 2 + (y - 64e-9) ** 2) / (2 * (2e-9) ** 2))
    background = 3 + np.sin(x / 40e-9) * np.cos(y / 60e-9)
    out = ip.remove_background(bump + background, 1e-9, length=6e-9)
    # the bump keeps 1 - 2^2 / (2^2 + 6^2) of its height; the background leaves < 2 % inside
    assert out[64, 64] == pytest.approx(0.9, abs=0.02)
    assert np.abs(out[30:100, 90:100]).max() < 0.02


def test_resample_smooth_function_to_coarser_pixels():
    dy = dx = 1e-9
    y, x = (np.mgrid[0:64, 0:64] + 0.5) * 1e-9
    image = np.sin(2 * np.pi * x / 64e-9) * np.cos(2 * np.pi * y / 64e-9)
    out = ip.resample(image, (dy, dx), 2e-9)
    assert out.shape == (32, 32)
    yc, xc = (np.mgrid[0:32, 0:32] + 0.5) * 2e-9
    np.testing.assert_allclose(out, np.sin(2 * np.pi * xc / 64e-9) * np.cos(2 * np.pi * yc / 64e-9), atol=0.03)


@pytest.mark.parametrize("new_pixel", [1e-9, (1.25e-9, 1.2e-9), 7e-9, (6e-9, 4.5e-9), (6e-9, 1e-9)])
def test_resample_samples_the_image_at_the_new_pixel_centres(new_pixel):
    """f = sin(kx x) cos(ky y) on 2 x 1.5 nm pixels resampled up, down (by non-integer ratios too),
    and differently along y and x. Shrinking by s first low-passes with a Gaussian of (s - 1) / 2
    input pixels (here >= 1 pixel, where the sampled Gaussian acts like the continuous one), which
    scales a sinusoid by exp(-(k sigma)^2 / 2); the rest is the linear-interpolation error, at most
    (dy^2 ky^2 + dx^2 kx^2) / 8 for this f. Checked at the new pixel centres ((i + 1/2) dy', ...)."""
    dy, dx, ny, nx = 2e-9, 1.5e-9, 48, 64
    ky, kx = 2 * np.pi / 48e-9, 2 * np.pi / 64e-9
    y, x = (np.arange(ny)[:, None] + 0.5) * dy, (np.arange(nx)[None, :] + 0.5) * dx
    out = ip.resample(np.sin(kx * x) * np.cos(ky * y), (dy, dx), new_pixel)
    ndy, ndx = np.broadcast_to(new_pixel, (2,))
    assert out.shape == (round(ny * dy / ndy), round(nx * dx / ndx))
    sigma_y, sigma_x = max(0.0, (ndy / dy - 1) / 2) * dy, max(0.0, (ndx / dx - 1) / 2) * dx
    damping = np.exp(-((ky * sigma_y) ** 2 + (kx * sigma_x) ** 2) / 2)
    yc, xc = (np.arange(out.shape[0])[:, None] + 0.5) * ndy, (np.arange(out.shape[1])[None, :] + 0.5) * ndx
    expected = damping * np.sin(kx * xc) * np.cos(ky * yc)
    margin_y, margin_x = 4 * sigma_y + 2 * dy, 4 * sigma_x + 2 * dx  # filter and interpolation edges
    interior = ((yc > margin_y) & (yc < ny * dy - margin_y)) & ((xc > margin_x) & (xc < nx * dx - margin_x))
    bound = ((dy * ky) ** 2 + (dx * kx) ** 2) / 8
    assert np.abs(out - expected)[interior].max() < bound + 2e-4


def test_crop_and_errors():
    assert ip.crop(SIGNAL, (5e-9, 10e-9), (10e-9, 20e-9), 1e-9).shape == (10, 20)
    with pytest.raises(ValueError, match="outside the image"):
        ip.crop(SIGNAL, (35e-9, 0), (10e-9, 10e-9), 1e-9)
    with pytest.raises(ValueError, match="pixel_size is missing"):
        ip.remove_background(SIGNAL, None, 1e-9)
    with pytest.raises(ValueError, match="image contains NaN"):
        ip.plane_level(np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match=r"image must be a 2-D array"):
        ip.line_level(np.zeros(5))
    with pytest.raises(ValueError, match="shape must be two positive integers"):
        ip.resample(SIGNAL, 1e-9, 2e-9, shape=(0, 5))
