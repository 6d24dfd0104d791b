"""Demagnetization against Aharoni's analytic demag factors of rectangular prisms."""

import math

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.physics.demag import DemagField


def aharoni_nz(a, b, c):
    """Aharoni (J. Appl. Phys. 83, 3432 (1998)), eq. (1): demag factor along c of a prism 2a x 2b x 2c."""
    r = math.sqrt(a * a + b * b + c * c)
    rab, rbc, rac = math.hypot(a, b), math.hypot(b, c), math.hypot(a, c)
    pi_d = (
        (b * b - c * c) / (2 * b * c) * math.log((r - a) / (r + a))
        + (a * a - c * c) / (2 * a * c) * math.log((r - b) / (r + b))
        + b / (2 * c) * math.log((rab + a) / (rab - a))
        + a / (2 * c) * math.log((rab + b) / (rab - b))
        + c / (2 * a) * math.log((rbc - b) / (rbc + b))
        + c / (2 * b) * math.log((rac - a) / (rac + a))
        + 2 * math.atan(a * b / (c * r))
        + (a**3 + b**3 - 2 * c**3) / (3 * a * b * c)
        + (a * a + b * b - 2 * c * c) / (3 * a * b * c) * r
        + c / (a * b) * (rac + rbc)
        - (rab**3 + rbc**3 + rac**3) / (3 * a * b * c)
    )
    return pi_d / math.pi


def aharoni_factors(lx, ly, lz):
    a, b, c = lx / 2, ly / 2, lz / 2
    return np.array([aharoni_nz(b, c, a), aharoni_nz(c, a, b), aharoni_nz(a, b, c)])


def test_aharoni_reference_values():
    # Independent sanity of the transcription: a cube is 1/3 each, and the factors sum to 1.
    assert np.allclose(aharoni_factors(1, 1, 1), 1 / 3, rtol=1e-12)
    n = aharoni_factors(3.0, 1.7, 0.4)
    assert n.sum() == pytest.approx(1.0, rel=1e-12)
    # A very thin plate tends to Nzz = 1.
    assert aharoni_factors(1.0, 1.0, 1e-5)[2] == pytest.approx(1.0, abs=1e-4)


PRISMS = {
    "cube": (8, 8, 8, 1e-9, 1e-9, 1e-9),
    "thin film": (100, 100, 1, 2e-9, 2e-9, 1e-9),
    "needle": (1, 1, 120, 1e-9, 1e-9, 2e-9),
    "general prism": (11, 7, 5, 1.5e-9, 2.5e-9, 1e-9),
}

DIRECTIONS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1), (1, -2, 0.5)]


@pytest.mark.parametrize("name", PRISMS)
def test_average_demag_field_equals_aharoni(name):
    nx, ny, nz, dx, dy, dz = PRISMS[name]
    grid = mm.Grid(nx=nx, ny=ny, nz=nz, dx=dx, dy=dy, dz=dz)
    expected = aharoni_factors(nx * dx, ny * dy, nz * dz)
    Ms = 8e5
    for direction in DIRECTIONS:
        m = mm.textures.uniform(grid, direction)
        H = mm.effective_field(m, grid, mm.Material(Ms=Ms, A=0.0))
        h_mean = H.reshape(-1, 3).mean(0)
        m_dir = m[0, 0, 0]
        np.testing.assert_allclose(h_mean, -expected * Ms * m_dir, rtol=1e-5, atol=1e-5 * Ms * 1e-3)


def test_thin_film_nzz_tends_to_one():
    values = []
    for n in (16, 64, 256):
        grid = mm.Grid(nx=n, ny=n, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
        m = mm.textures.uniform(grid, (0, 0, 1))
        H = mm.effective_field(m, grid, mm.Material(Ms=1.0, A=0.0))
        values.append(-H[..., 2].mean())
    assert values[0] < values[1] < values[2] < 1.0
    assert 1.0 - values[2] < 0.01
    expected = [aharoni_factors(n * 2e-9, n * 2e-9, 1e-9)[2] for n in (16, 64, 256)]
    np.testing.assert_allclose(values, expected, rtol=1e-5)


def test_periodic_uniform_film_is_infinite_film():
    # An in-plane periodic film magnetized along z has Nzz = 1, and Nxx = Nyy = 0 in-plane.
    grid = mm.Grid(nx=32, ny=24, nz=1, dx=2e-9, dy=3e-9, dz=1e-9, pbc=True)
    for direction, expected in (((0, 0, 1), (0, 0, -1)), ((1, 0, 0), (0, 0, 0)), ((0, 1, 0), (0, 0, 0))):
        m = mm.textures.uniform(grid, direction)
        H = mm.effective_field(m, grid, mm.Material(Ms=1.0, A=0.0))
        np.testing.assert_allclose(H.reshape(-1, 3), np.broadcast_to(expected, (32 * 24, 3)), atol=2e-5)


@pytest.mark.parametrize("nz", [1, 2])
def test_open_and_periodic_agree_on_padded_island(nz):
    # A magnetic island far from the periodic images: both boundary conditions give its own field.
    n, k = 192, 24
    Ms = np.zeros((nz, n, n))
    Ms[:, n // 2 - k // 2 : n // 2 + k // 2, n // 2 - k // 2 : n // 2 + k // 2] = 6e5
    island = Ms > 0
    fields = []
    for pbc in (False, True):
        grid = mm.Grid(nx=n, ny=n, nz=nz, dx=2e-9, dy=2e-9, dz=1.5e-9, pbc=pbc)
        m = mm.textures.skyrmion(grid, radius=10e-9, wall_width=3e-9)
        H = mm.effective_field(m, grid, mm.Material(Ms=Ms, A=0.0))
        fields.append(H[island])
    scale = np.abs(fields[0]).max()
    np.testing.assert_allclose(fields[1], fields[0], atol=1e-4 * scale)


def test_demag_matches_direct_summation():
    # FFT convolution equals the direct sum over the tensor of every cell pair (small 3-layer grid).
    from napari_mmrecon.backend.physics.newell import demag_tensor

    grid = mm.Grid(nx=5, ny=4, nz=3, dx=1e-9, dy=2e-9, dz=1.5e-9)
    M = np.random.default_rng(1).standard_normal(grid.vector_shape)
    H = DemagField(grid).field_from_M(torch.tensor(M)).numpy()
    z, y, x = np.meshgrid(np.arange(3), np.arange(4), np.arange(5), indexing="ij")
    idx = np.stack([z.ravel(), y.ravel(), x.ravel()], 1)
    d = idx[:, None, :] - idx[None, :, :]
    N = demag_tensor(d[..., 0], d[..., 1], d[..., 2], (grid.dz, grid.dy, grid.dx))
    full = np.empty(d.shape[:2] + (3, 3))
    for name, v in N.items():
        a, b = "xyz".index(name[0]), "xyz".index(name[1])
        full[..., a, b] = v
        full[..., b, a] = v
    expected = -np.einsum("ijab,jb->ia", full, M.reshape(-1, 3)).reshape(grid.vector_shape)
    np.testing.assert_allclose(H, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())


def test_float32_close_to_float64():
    grid64 = mm.Grid(nx=64, ny=48, nz=2, dx=2e-9, dy=2e-9, dz=1e-9)
    grid32 = grid64.with_(dtype=torch.float32)
    m = mm.textures.skyrmion(grid64, radius=12e-9)
    H64 = DemagField(grid64).field_from_M(torch.tensor(m) * 5e5)
    H32 = DemagField(grid32).field_from_M(torch.tensor(m, dtype=torch.float32) * 5e5)
    assert H32.dtype == torch.float32
    np.testing.assert_allclose(H32.double().numpy(), H64.numpy(), atol=1e-5 * 5e5)
