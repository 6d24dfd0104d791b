"""Starting states: unit vectors, shapes, determinism and geometry."""

import numpy as np
import pytest
from scipy import ndimage

import napari_mmrecon as mm

GRID = mm.Grid(nx=64, ny=48, nz=2, dx=1e-9, dy=1e-9, dz=1e-9)

FACTORIES = {
    "uniform": lambda seed: mm.textures.uniform(GRID, (1, 1, 0)),
    "skyrmion": lambda seed: mm.textures.skyrmion(GRID, radius=8e-9),
    "lattice": lambda seed: mm.textures.skyrmion_lattice(GRID, spacing=20e-9, radius=5e-9),
    "stripes": lambda seed: mm.textures.stripes(GRID, period=16e-9, angle=0.3),
    "labyrinth": lambda seed: mm.textures.labyrinth(GRID, period=16e-9, seed=seed),
    "random": lambda seed: mm.textures.random(GRID, seed=seed),
}


@pytest.mark.parametrize("name", FACTORIES)
def test_unit_vectors_and_determinism(name):
    a, b = FACTORIES[name](3), FACTORIES[name](3)
    assert a.shape == GRID.vector_shape and a.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1.0, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["labyrinth", "random"])
def test_seed_changes_random_states(name):
    assert not np.array_equal(FACTORIES[name](1), FACTORIES[name](2))


def test_skyrmion_radius_and_centre():
    grid = mm.Grid(nx=200, ny=200, nz=1, dx=0.5e-9, dy=0.5e-9, dz=1e-9)
    m = mm.textures.skyrmion(grid, radius=20e-9, center=(40e-9, 60e-9), polarity=-1)
    x, y, _ = grid.cell_centers()
    row = m[0, np.argmin(abs(y - 60e-9)), :, 2]
    assert row[np.argmin(abs(x - 40e-9))] < -0.99 and row[-1] > 0.99
    crossing = np.interp(0.0, row[80:150], x[80:150])  # m_z rises through 0 at x0 + R
    assert crossing == pytest.approx(60e-9, abs=0.05e-9)
    area = ((1 - m[0, :, :, 2]) / 2).sum() * grid.dx * grid.dy
    assert np.sqrt(area / np.pi) == pytest.approx(20e-9, rel=0.05)


def test_lattice_is_hexagonal_with_the_given_spacing():
    grid = mm.Grid(nx=128, ny=128, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
    m = mm.textures.skyrmion_lattice(grid, spacing=30e-9, radius=6e-9)
    labels, count = ndimage.label(m[0, :, :, 2] < 0)
    centers = np.array(ndimage.center_of_mass(np.ones((128, 128)), labels, range(1, count + 1)))
    centers = centers[(centers > 12).all(1) & (centers < 116).all(1)]
    assert len(centers) >= 7
    dist = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    nearest = np.sort(dist, axis=1)[:, 1]
    np.testing.assert_allclose(nearest, 30.0, atol=1.0)


def test_stripes_period():
    grid = mm.Grid(nx=120, ny=4, nz=1)
    m = mm.textures.stripes(grid, period=30e-9)
    spectrum = np.abs(np.fft.rfft(m[0, 0, :, 2]))
    assert np.argmax(spectrum[1:]) + 1 == 4  # 120 nm / 30 nm


def test_stripes_and_lattice_chirality_favoured_by_positive_d():
    grid = mm.Grid(nx=64, ny=64, nz=1)
    mat = mm.Material(Ms=5e5, A=1e-11, D=2e-3)
    for make in (lambda c: mm.textures.stripes(grid, 20e-9, chirality=c),
                 lambda c: mm.textures.skyrmion_lattice(grid, 25e-9, 8e-9, chirality=c),
                 lambda c: mm.textures.labyrinth(grid, 20e-9, chirality=c)):
        assert mm.energy(make(1), grid, mat)["dmi"] < 0 < mm.energy(make(-1), grid, mat)["dmi"]
