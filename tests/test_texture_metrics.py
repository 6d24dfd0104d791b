"""Texture metrics: the Helmholtz split against analytic gradient and curl fields, the helicity of
Neel and Bloch skyrmions, and the metrics of known pairs of textures (identical, shifted, resized,
Neel against Bloch, a skyrmion missing, vacuum cells, bad input)."""

import math

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.inverse import texture_metrics as metrics_module
from napari_mmrecon.backend.inverse.pinning import Skyrmions, find_skyrmions
from napari_mmrecon.backend.inverse.texture_metrics import (
    TextureMetrics,
    helmholtz_parts,
    texture_metrics,
)

GRID = mm.Grid(nx=64, ny=64, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu")
RADIUS = 10e-9
CENTER = (32e-9, 32e-9)


def gaussian_fields(grid, sigma=5e-9):
    """The gradient of a Gaussian ``exp(-r^2 / (2 sigma^2))`` centred in the film, and ``z^ x`` it,
    written out analytically, ``(ny, nx, 2)`` (1/m); about 1e-9 of its peak at the edges."""
    x, y, _ = grid.cell_centers()
    X, Y = np.meshgrid(x - grid.size[0] / 2, y - grid.size[1] / 2)  # (ny, nx)
    g = np.exp(-(X * X + Y * Y) / (2 * sigma * sigma))
    gradient = np.stack((-X / sigma**2 * g, -Y / sigma**2 * g), axis=-1)
    curl = np.stack((Y / sigma**2 * g, -X / sigma**2 * g), axis=-1)  # z^ x grad g = (-d_y g, d_x g)
    return gradient, curl


def bloch(m):
    """``m`` with its in-plane part turned by 90 degrees about z (Neel -> Bloch)."""
    out = m.copy()
    out[..., 0], out[..., 1] = -m[..., 1], m[..., 0]
    return out


def relative(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("kind", ["gradient", "curl"])
def test_helmholtz_parts_of_analytic_fields(kind):
    gradient, curl = gaussian_fields(GRID)
    field = gradient if kind == "gradient" else curl
    cf, df = helmholtz_parts(field, GRID)
    assert cf.shape == df.shape == field.shape
    kept, dropped = (cf, df) if kind == "gradient" else (df, cf)
    assert np.linalg.norm(dropped) < 1e-6 * np.linalg.norm(field)
    assert relative(kept, field) < 1e-6


def test_helmholtz_parts_sum_to_the_mean_free_field_and_take_tensors_and_layers():
    rng = np.random.default_rng(0)
    field = rng.normal(size=(2, GRID.ny, GRID.nx, 2)) + np.array([0.3, -0.7])
    cf, df = helmholtz_parts(torch.as_tensor(field), GRID)
    assert isinstance(cf, np.ndarray) and cf.shape == field.shape
    np.testing.assert_allclose(cf + df, field - field.mean(axis=(1, 2), keepdims=True), rtol=0, atol=1e-12)
    # layers are independent: each equals the 2-D split of that layer alone
    for layer in range(2):
        cf1, df1 = helmholtz_parts(field[layer], GRID)
        np.testing.assert_allclose(cf[layer], cf1, rtol=0, atol=1e-13)
        np.testing.assert_allclose(df[layer], df1, rtol=0, atol=1e-13)
    # a random field is neither: both parts carry a good share of it
    assert np.linalg.norm(cf) > 0.3 * np.linalg.norm(field - field.mean(axis=(1, 2), keepdims=True))
    assert np.linalg.norm(df) > 0.3 * np.linalg.norm(field - field.mean(axis=(1, 2), keepdims=True))


def test_helmholtz_parts_of_a_periodic_field_on_a_periodic_grid_are_exact():
    grid = GRID.with_(pbc=True, nx=32, ny=24, dy=1.5e-9)
    x, y, _ = grid.cell_centers()
    X, Y = np.meshgrid(x, y)
    a, b = 2 * np.pi / grid.size[0], 2 * 2 * np.pi / grid.size[1]
    # phi = sin(a x) cos(b y), psi = cos(a x) cos(b y): grad phi and z^ x grad psi analytically
    grad_phi = np.stack((a * np.cos(a * X) * np.cos(b * Y), -b * np.sin(a * X) * np.sin(b * Y)), axis=-1)
    curl_psi = np.stack((b * np.cos(a * X) * np.sin(b * Y), -a * np.sin(a * X) * np.cos(b * Y)), axis=-1)
    cf, df = helmholtz_parts(grad_phi + curl_psi, grid)
    np.testing.assert_allclose(cf, grad_phi, rtol=0, atol=1e-9 * a)
    np.testing.assert_allclose(df, curl_psi, rtol=0, atol=1e-9 * a)


def test_helmholtz_parts_rejects_bad_fields():
    with pytest.raises(ValueError, match="shape"):
        helmholtz_parts(np.zeros((GRID.ny, GRID.nx, 3)), GRID)
    with pytest.raises(ValueError, match="shape"):
        helmholtz_parts(np.zeros((GRID.ny + 1, GRID.nx, 2)), GRID)
    field = np.zeros((GRID.ny, GRID.nx, 2))
    field[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        helmholtz_parts(field, GRID)


def test_helicity_of_neel_and_bloch_skyrmions():
    neel = mm.textures.skyrmion(GRID, radius=RADIUS)
    result = texture_metrics(neel, bloch(neel), GRID)
    assert result.helicity < 0.05
    assert result.helicity_true > 0.95
    # the opposite chirality is Neel as well
    other = mm.textures.skyrmion(GRID, radius=RADIUS, chirality=-1)
    assert texture_metrics(other, other, GRID).helicity < 0.05


def test_a_texture_against_itself():
    m = mm.textures.skyrmion(GRID, radius=RADIUS)
    result = texture_metrics(m, torch.as_tensor(m), GRID)
    assert isinstance(result, TextureMetrics)
    assert result.angle_error == 0 and result.angle_error_max == 0
    assert result.mz_correlation == pytest.approx(1, abs=1e-12)
    assert result.mz_rmse == 0 and result.curl_free_error == 0 and result.div_free_error == 0
    assert result.helicity == result.helicity_true
    assert result.charge == result.charge_true == pytest.approx(-1, abs=1e-3)
    assert result.skyrmions == result.skyrmions_true == result.matched == 1
    assert result.position_error == 0 and result.radius_error == 0


def test_shifted_skyrmion_gives_the_shift_and_a_larger_one_the_radius_difference():
    m_true = mm.textures.skyrmion(GRID, radius=RADIUS, center=CENTER)
    shifted = mm.textures.skyrmion(GRID, radius=RADIUS, center=(CENTER[0] + 2e-9, CENTER[1]))
    result = texture_metrics(shifted, m_true, GRID)
    assert result.matched == 1
    assert abs(result.position_error - 2e-9) < 0.2e-9
    assert result.radius_error == pytest.approx(0, abs=1e-12)
    assert result.angle_error > 1  # degrees: the textures do differ

    larger = mm.textures.skyrmion(GRID, radius=RADIUS + 2e-9, center=CENTER)
    result = texture_metrics(larger, m_true, GRID)
    measured = find_skyrmions(larger, GRID).radii[0] - find_skyrmions(m_true, GRID).radii[0]
    assert result.matched == 1
    assert result.radius_error == pytest.approx(measured, rel=1e-12)
    assert abs(result.radius_error - 2e-9) < 0.5e-9
    assert result.position_error < 0.05e-9
    assert result.mz_correlation < 0.99 and result.mz_rmse > 0.05


def test_bloch_against_neel():
    neel = mm.textures.skyrmion(GRID, radius=RADIUS)
    result = texture_metrics(bloch(neel), neel, GRID)
    assert result.mz_correlation == pytest.approx(1, abs=1e-12)
    assert result.mz_rmse == 0
    assert result.curl_free_error == pytest.approx(1, abs=0.02)
    assert result.div_free_error == pytest.approx(1, abs=0.02)
    assert result.charge == pytest.approx(result.charge_true, abs=1e-6)
    assert result.matched == 1 and result.position_error == 0
    # a wrong size of the right helicity leaves the divergence-free part nearly right
    larger = texture_metrics(mm.textures.skyrmion(GRID, radius=RADIUS + 2e-9), neel, GRID)
    assert larger.div_free_error < 0.05 and larger.curl_free_error > 0.1


def test_missing_skyrmion():
    centers = np.array([[16e-9, 16e-9], [48e-9, 18e-9], [30e-9, 48e-9]])
    radii = np.array([5e-9, 6e-9, 7e-9])
    m_true = mm.textures.skyrmions(GRID, centers, radii)
    m = mm.textures.skyrmions(GRID, centers[[0, 2]], radii[[0, 2]])
    result = texture_metrics(m, m_true, GRID)
    assert (result.skyrmions, result.skyrmions_true, result.matched) == (2, 3, 2)
    assert result.position_error < 0.1e-9 and result.radius_error < 0.1e-9
    assert result.charge == pytest.approx(-2, abs=0.05) and result.charge_true == pytest.approx(-3, abs=0.05)
    # nothing to match: NaN errors
    none = texture_metrics(mm.textures.uniform(GRID), m_true, GRID)
    assert (none.skyrmions, none.matched) == (0, 0)
    assert math.isnan(none.position_error) and math.isnan(none.radius_error)


@pytest.mark.parametrize(
    "radius, shift, matched",
    [
        (4e-9, 3e-9, 1),  # within the true radius
        (4e-9, 4.5e-9, 0),  # beyond it
        (4e-9, 20e-9, 0),
        (1.5e-9, 1.5e-9, 1),  # within 2 cells of a skyrmion smaller than 2 cells
        (1.5e-9, 2.5e-9, 0),
    ],
)
def test_matching_distance_is_the_larger_of_two_cells_and_the_true_radius(radius, shift, matched):
    m_true = mm.textures.skyrmion(GRID, radius=radius, center=(30e-9, 32e-9))
    m = mm.textures.skyrmion(GRID, radius=radius, center=(30e-9 + shift, 32e-9))
    result = texture_metrics(m, m_true, GRID)
    assert (result.skyrmions, result.skyrmions_true, result.matched) == (1, 1, matched)
    if matched:
        assert abs(result.position_error - shift) < 0.1e-9
    else:
        assert math.isnan(result.position_error) and math.isnan(result.radius_error)


def test_matching_pairs_as_many_as_it_can(monkeypatch):
    # true P, Q (radius 6 nm: matched within 6 nm); found A next to P and B within reach of P only.
    # The smallest total distance (A-P + B-Q = 6.2 nm) pairs B with Q, 6.1 nm away, out of reach:
    # one match. The one-to-one match keeps both in reach: A-Q and B-P.
    P, Q = np.array([20e-9, 20e-9]), np.array([25e-9, 20e-9])
    A = P + [0.1e-9, 0.0]
    x = (25 + 25 - 6.1**2) / 10  # |B - P| = 5 nm, |B - Q| = 6.1 nm
    B = P + np.array([x, math.sqrt(25 - x * x)]) * 1e-9
    assert np.linalg.norm(B - Q) > 6e-9 and np.linalg.norm(A - Q) < 6e-9 and np.linalg.norm(B - P) < 6e-9
    m_true, m = mm.textures.uniform(GRID), mm.textures.uniform(GRID, (0, 0, -1))
    fake = {1.0: Skyrmions(np.array([P, Q]), np.array([6e-9, 6e-9]), 1.0),  # told apart by their m_z
            -1.0: Skyrmions(np.array([A, B]), np.array([5e-9, 7e-9]), -1.0)}
    monkeypatch.setattr(metrics_module, "find_skyrmions", lambda value, grid: fake[float(value[0, 0, 0, 2])])
    result = texture_metrics(m, m_true, GRID)
    assert (result.skyrmions, result.skyrmions_true, result.matched) == (2, 2, 2)
    expected = (np.linalg.norm(A - Q) + np.linalg.norm(B - P)) / 2
    assert result.position_error == pytest.approx(expected, rel=1e-12)
    assert result.radius_error == pytest.approx(1e-9, rel=1e-12)


def test_vacuum_cells_are_left_out():
    m_true = mm.textures.skyrmion(GRID, radius=RADIUS)
    m = m_true.copy()
    m_true[:, :, :8] = 0.0  # a vacuum strip
    m[:, :, :8] = (1.0, 0.0, 0.0)  # anything there
    result = texture_metrics(m, m_true, GRID)
    assert result.angle_error == 0 and result.mz_rmse == 0
    assert result.mz_correlation == pytest.approx(1, abs=1e-12)
    # a cell where m is 0 but m_true is magnetic is 90 degrees off
    m[0, 40, 40] = 0.0
    result = texture_metrics(m, m_true, GRID)
    assert result.angle_error_max == 90
    assert result.angle_error == pytest.approx(90 / (GRID.nx * GRID.ny - 8 * GRID.ny), rel=1e-12)


def test_to_dict_and_table():
    m = mm.textures.skyrmion(GRID, radius=RADIUS)
    result = texture_metrics(mm.textures.uniform(GRID), m, GRID)
    d = result.to_dict()
    assert list(d) == [
        "angle_error", "angle_error_max", "mz_correlation", "mz_rmse", "curl_free_error", "div_free_error",
        "helicity", "helicity_true", "charge", "charge_true", "skyrmions", "skyrmions_true", "matched",
        "position_error", "radius_error",
    ]
    assert all(type(v) is int for k, v in d.items() if k in ("skyrmions", "skyrmions_true", "matched"))
    assert all(type(v) is float for k, v in d.items() if k not in ("skyrmions", "skyrmions_true", "matched"))
    assert math.isnan(d["position_error"]) and math.isnan(d["mz_correlation"])  # uniform m_z: no correlation
    assert math.isnan(d["helicity"])  # no in-plane part
    lines = result.table().splitlines()
    assert len(lines) == len(d)
    assert lines[0].split()[0] == "angle_error" and lines[0].endswith("deg")
    assert lines[-1].split()[:2] == ["radius_error", "nan"] and lines[-1].endswith(" m")


def test_several_layers():
    grid = GRID.with_(nz=2)
    m_true = mm.textures.skyrmion(grid, radius=RADIUS)
    m = m_true.copy()
    m[1] = bloch(m_true)[1]  # one layer Bloch
    result = texture_metrics(m, m_true, grid)
    assert 0.4 < result.helicity < 0.6 and result.helicity_true < 0.05
    assert result.curl_free_error == pytest.approx(1 / math.sqrt(2), abs=0.02)
    assert result.skyrmions == result.matched == 1


@pytest.mark.parametrize(
    "m, m_true, match",
    [
        (np.zeros((1, 64, 63, 3)), np.zeros((1, 64, 64, 3)), "same shape"),
        (np.zeros((1, 32, 32, 3)), np.zeros((1, 32, 32, 3)), "shape"),
        (np.zeros((64, 64, 3)), np.zeros((64, 64, 3)), "shape"),
    ],
)
def test_bad_shapes(m, m_true, match):
    with pytest.raises(ValueError, match=match):
        texture_metrics(m, m_true, GRID)


@pytest.mark.parametrize("which", ["m", "m_true"])
def test_nan_input(which):
    m = mm.textures.skyrmion(GRID, radius=RADIUS)
    bad = m.copy()
    bad[0, 5, 5, 2] = np.nan
    args = (bad, m) if which == "m" else (m, bad)
    with pytest.raises(ValueError, match=f"{which} contains NaN"):
        texture_metrics(*args, GRID)
    with pytest.raises(ValueError, match="no magnetic cell"):
        texture_metrics(m, np.zeros_like(m), GRID)
