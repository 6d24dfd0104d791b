"""The mirror z -> -z that the dataset and the U-Net use to canonicalize the DMI sign: it maps a film
with D to one with -D and m -> (-m_x, -m_y, m_z), and the top-side image at height h to the
bottom-side image at h. Checked numerically on a small relaxed Neel skyrmion in float64: the energy
of every term, the relaxation itself, H_z and the point-dipole MFM frequency shift."""

import numpy as np
import pytest

import napari_mmrecon as mm

GRID = mm.Grid(nx=24, ny=24, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu")
MATERIAL = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
FIELD = (0.0, 0.0, 2e4)
MIRROR = np.array([-1.0, -1.0, 1.0])
TOL = 1e-10
"""Relative tolerance of every comparison (float64)."""


@pytest.fixture(scope="module")
def skyrmion():
    m0 = mm.textures.skyrmion(GRID, radius=5e-9)
    m, info = mm.relax(m0, GRID, MATERIAL, external_field=FIELD, tol=1e-6, return_info=True)
    assert info.converged
    return m0, m


def test_energy_of_the_mirrored_texture_with_opposite_dmi_is_the_same(skyrmion):
    _, m = skyrmion
    energy = mm.energy(m, GRID, MATERIAL, external_field=FIELD)
    mirrored = mm.energy(m * MIRROR, GRID, MATERIAL.replace(D=-MATERIAL.D), external_field=FIELD)
    for term, value in energy.items():
        assert abs(mirrored[term] - value) <= TOL * abs(energy["total"]), term
    same_dmi = mm.energy(m * MIRROR, GRID, MATERIAL, external_field=FIELD)  # the mirror alone flips the DMI energy
    assert same_dmi["dmi"] == pytest.approx(-energy["dmi"], rel=TOL) and energy["dmi"] < 0


def test_relaxing_the_mirrored_start_with_opposite_dmi_gives_the_mirrored_state(skyrmion):
    m0, m = skyrmion
    mirrored = mm.relax(m0 * MIRROR, GRID, MATERIAL.replace(D=-MATERIAL.D), external_field=FIELD, tol=1e-6)
    assert np.abs(mirrored - m * MIRROR).max() <= TOL


@pytest.mark.parametrize("measurement", [
    lambda side: mm.StrayFieldMeasurement(height=4e-9, side=side, component="z"),
    lambda side: mm.MFMMeasurement(lift_height=4e-9, side=side, tip=mm.PointDipoleTip(moment=1e-16),
                                   cantilever=mm.Cantilever(k=3.0, f0=75e3)),
], ids=["Hz", "mfm"])
def test_the_top_image_is_the_bottom_image_of_the_mirrored_texture(skyrmion, measurement):
    _, m = skyrmion
    top = np.asarray(measurement("top").simulate(m, GRID, MATERIAL.Ms))
    mirrored_bottom = np.asarray(measurement("bottom").simulate(m * MIRROR, GRID, MATERIAL.Ms))
    scale = np.abs(top).max()
    assert np.abs(mirrored_bottom - top).max() <= TOL * scale
    bottom = np.asarray(measurement("bottom").simulate(m, GRID, MATERIAL.Ms))
    assert np.abs(bottom - top).max() > 0.1 * scale  # a Neel skyrmion has a strong and a weak side
