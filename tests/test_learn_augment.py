"""Training augmentation: every rotation / mirror of a sample is a physical sample of the same film
(the image of the transformed m is the transformed image, the energy is unchanged), and the scan
artefacts are what their docstring says."""

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.learn.augment import Augmentation, dihedral, random_dihedral, scan_artefacts
from napari_mmrecon.backend.learn.network_input import level, normalized_image

GRID = mm.Grid(nx=16, ny=16, nz=1, dx=1.5e-9, dy=1.5e-9, dz=1e-9, device="cpu")
MATERIAL = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
MEASUREMENTS = [mm.StrayFieldMeasurement(height=3e-9, side="top", component="z"),
                mm.MFMMeasurement(lift_height=4e-9, side="bottom", tip=mm.PointDipoleTip(1e-16),
                                  cantilever=mm.Cantilever(3.0, 75e3))]


def asymmetric_texture() -> torch.Tensor:
    """An off-centre skyrmion with a smooth random tilt: no symmetry of its own, ``(ny, nx, 3)``."""
    m = mm.textures.skyrmion(GRID, radius=4e-9, center=(9e-9, 14e-9))[0]
    rng = np.random.default_rng(0)
    m = m + 0.3 * rng.standard_normal(m.shape).cumsum(0).cumsum(1) / 16
    return torch.from_numpy(m / np.linalg.norm(m, axis=-1, keepdims=True))


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize("mirror", [False, True])
def test_transformed_sample_is_physical(k, mirror):
    m = asymmetric_texture()
    images = torch.stack([torch.as_tensor(meas.simulate(m[None], GRID, MATERIAL.Ms)) for meas in MEASUREMENTS])
    images_t, m_t = dihedral(images, m, k, mirror)
    simulated = torch.stack([torch.as_tensor(meas.simulate(m_t[None], GRID, MATERIAL.Ms)) for meas in MEASUREMENTS])
    for image, expected in zip(simulated, images_t):
        assert float((image - expected).abs().max()) < 1e-10 * float(expected.abs().max())
    before, after = mm.energy(m[None], GRID, MATERIAL), mm.energy(m_t[None], GRID, MATERIAL)
    for term in ("exchange", "dmi", "anisotropy", "demag", "total"):
        assert abs(float(after[term]) - float(before[term])) <= 1e-10 * abs(float(before["total"])), term


def test_the_x_mirror_keeps_the_chirality_of_a_neel_skyrmion():
    m = torch.from_numpy(mm.textures.skyrmion(GRID, radius=4e-9)[0])
    _, mirrored = dihedral(torch.zeros(16, 16), m, 0, True)
    torch.testing.assert_close(mirrored, m, rtol=0, atol=1e-12)


def test_random_symmetries_turn_each_sample_on_its_own():
    m = asymmetric_texture().expand(6, 16, 16, 3)
    images = torch.arange(256.0).reshape(16, 16).expand(6, 16, 16)
    generator = torch.Generator().manual_seed(0)
    images_t, m_t = random_dihedral(images, m, generator)
    assert images_t.shape == images.shape and m_t.shape == m.shape
    assert len({tuple(image.flatten()[:3].tolist()) for image in images_t}) > 1
    torch.testing.assert_close(m_t.norm(dim=-1), torch.ones(6, 16, 16, dtype=m.dtype))


def test_scan_artefacts_scale_with_the_image_and_the_plane_is_levelled_away():
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(4, 32, 32, generator=generator, dtype=torch.float64) * 1e4
    plane_only = scan_artefacts(images, generator, Augmentation(noise=0.0, line_offsets=0.0))
    torch.testing.assert_close(normalized_image(plane_only), normalized_image(images))
    assert float((plane_only - images).abs().max()) > 1e3
    noisy = scan_artefacts(images, generator, Augmentation(noise=0.2, offset=0.0, tilt=0.0, line_offsets=0.0))
    ratio = level(noisy - images).square().mean(dim=(-2, -1)).sqrt() / images.square().mean(dim=(-2, -1)).sqrt()
    assert float(ratio.max()) <= 0.2 * 1.2 and float(ratio.min()) >= 0
    lines = scan_artefacts(images, generator, Augmentation(noise=0.0, offset=0.0, tilt=0.0, line_offsets=0.1))
    difference = lines - images
    torch.testing.assert_close(difference, difference[..., :1].expand_as(difference))
