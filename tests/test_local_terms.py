"""Exchange, DMI and anisotropy on spin spirals against their discrete closed forms."""

import math

import numpy as np
import pytest

import napari_mmrecon as mm

A, D, KU = 1.3e-11, 2.5e-3, 4e5


def spiral(grid, k, along="x", chirality=1):
    """m = (s sin(k u), cos(k u)) rotating in the plane of the propagation direction u and z."""
    x, y, _ = grid.cell_centers()
    u = x[None, None, :] if along == "x" else y[None, :, None]
    angle = np.broadcast_to(k * u, grid.shape)
    m = np.zeros(grid.vector_shape)
    m[..., 0 if along == "x" else 1] = chirality * np.sin(angle)
    m[..., 2] = np.cos(angle)
    return m


@pytest.mark.parametrize("along", ["x", "y"])
@pytest.mark.parametrize("k", [2e7, 1.3e8, -7e8, 1.9e9])
@pytest.mark.parametrize("pbc", [False, True])
def test_spin_spiral_energies(along, k, pbc):
    grid = mm.Grid(nx=40, ny=36, nz=2, dx=1e-9, dy=1.5e-9, dz=0.8e-9, pbc=pbc)
    n, d = (grid.nx, grid.dx) if along == "x" else (grid.ny, grid.dy)
    if pbc:  # commensurate wave vector: the wrap-around pair is a regular pair
        k = 2 * math.pi * round(k * n * d / (2 * math.pi)) / (n * d)
    pairs = (n if pbc else n - 1) * grid.nx * grid.ny * grid.nz // n
    V = grid.cell_volume
    m = spiral(grid, k, along)
    E = mm.energy(m, grid, mm.Material(Ms=5e5, A=A, Ku=KU, D=D))
    assert E["exchange"] == pytest.approx(pairs * A * (2 - 2 * math.cos(k * d)) / d**2 * V, rel=1e-12, abs=1e-40)
    assert E["dmi"] == pytest.approx(pairs * D * math.sin(k * d) / d * V, rel=1e-12, abs=1e-40)
    assert E["anisotropy"] == pytest.approx(-KU * V * (m[..., 2] ** 2).sum(), rel=1e-12)
    m_mirror = spiral(grid, k, along, chirality=-1)
    assert mm.energy(m_mirror, grid, mm.Material(Ms=5e5, A=A, Ku=KU, D=D))["dmi"] == pytest.approx(-E["dmi"], rel=1e-12, abs=1e-40)


def test_continuum_limit_of_spiral_energy_density():
    # Small k dx: exchange density A k^2 and DMI density D k (the continuum forms).
    grid = mm.Grid(nx=400, ny=1, nz=1, dx=0.25e-9, pbc=True)
    k = 2 * math.pi * 3 / (grid.nx * grid.dx)
    E = mm.energy(spiral(grid, k), grid, mm.Material(Ms=5e5, A=A, D=D))
    vol = grid.nx * grid.cell_volume
    discretization = (k * grid.dx) ** 2 / 6  # leading relative error is (k dx)^2 / 12
    assert E["exchange"] / vol == pytest.approx(A * k * k, rel=discretization)
    assert E["dmi"] / vol == pytest.approx(D * k, rel=discretization)


def test_anisotropy_axis_and_tilted_state():
    grid = mm.Grid(nx=3, ny=2, nz=1)
    axis = np.array([1.0, 2.0, -0.5]) / np.linalg.norm([1.0, 2.0, -0.5])
    m = mm.textures.random(grid, seed=4)
    E = mm.energy(m, grid, mm.Material(Ms=5e5, A=0.0, Ku=KU, Ku_axis=(1.0, 2.0, -0.5)))
    assert E["anisotropy"] == pytest.approx(-KU * grid.cell_volume * ((m @ axis) ** 2).sum(), rel=1e-12)


def test_zeeman_energy_of_uniform_state():
    grid = mm.Grid(nx=4, ny=5, nz=2)
    Ms, H = 7e5, np.array([1e4, -2e4, 3e4])
    m = mm.textures.uniform(grid, (0.0, 0.6, 0.8))
    bias = np.zeros(grid.vector_shape)
    bias[0, 0, 0] = (0.0, 0.0, 5e5)
    E = mm.energy(m, grid, mm.Material(Ms=Ms, A=0.0), external_field=H, bias_field=bias)
    expected = -mm.MU0 * Ms * grid.cell_volume * (40 * (m[0, 0, 0] @ H) + 0.8 * 5e5)
    assert E["zeeman"] == pytest.approx(expected, rel=1e-12)


def test_uniform_state_has_no_exchange_or_dmi():
    grid = mm.Grid(nx=16, ny=16, nz=2)
    m = mm.textures.uniform(grid, (0.3, 0.1, 1.0))
    E = mm.energy(m, grid, mm.Material(Ms=5e5, A=A, D=D))
    assert abs(E["exchange"]) < 1e-35 and abs(E["dmi"]) < 1e-24 * 1e-9


def test_neel_skyrmion_chirality_favoured_by_positive_d():
    grid = mm.Grid(nx=48, ny=48, nz=1)
    mat = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
    for polarity in (-1, 1):
        e_plus = mm.energy(mm.textures.skyrmion(grid, 8e-9, polarity=polarity, chirality=1), grid, mat)["dmi"]
        e_minus = mm.energy(mm.textures.skyrmion(grid, 8e-9, polarity=polarity, chirality=-1), grid, mat)["dmi"]
        assert e_plus < 0 < e_minus
