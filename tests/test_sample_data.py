"""Sample data through napari's own API, and the bundled files against the forward model."""

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon import _sample_data
from napari_mmrecon.workflows import layer_data


def test_lattice_sample_opens_with_fields_mfm_and_ground_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-mmrecon", "skyrmion_lattice")
    assert [layer.name for layer in viewer.layers] == [
        "Hz top 10 nm", "Hz top 20 nm", "Hz bottom 10 nm", "Hz bottom 20 nm", "MFM df top 20 nm",
        "m (truth)", "m (truth) arrows"]
    m, grid, material = layer_data.read_magnetization(viewer.layers["m (truth)"])
    assert m.shape == (1, 128, 128, 3) and grid.dx == 2e-9 and material["D"] == 3e-3
    assert mm.skyrmion_radius(m, grid) > 5e-9  # a closed skyrmion survives relaxation
    for layer in viewer.layers[:5]:
        np.testing.assert_allclose(layer.scale, (2.0, 2.0))
        np.testing.assert_allclose(layer.translate, (1.0, 1.0))
        meta = layer.metadata["mmrecon"]
        assert meta["kind"] == "image" and meta["material"]["Ms"] == 5.8e5 and meta["grid"]["nx"] == 128
        assert layer.contrast_limits[0] == pytest.approx(-layer.contrast_limits[1])
    top, bottom = viewer.layers["Hz top 10 nm"].data, viewer.layers["Hz bottom 10 nm"].data
    # Neel walls carry volume charges that add to the surface charges on one side and subtract on
    # the other: the two sides differ, which is why the sample has both
    assert np.abs(top - bottom).max() > 0.1 * np.abs(top).max()
    assert viewer.layers["MFM df top 20 nm"].metadata["mmrecon"]["unit"] == "Hz"


def test_single_skyrmion_images_are_the_forward_model_of_the_bundled_state(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-mmrecon", "single_skyrmion")
    m, grid, known = layer_data.read_magnetization(viewer.layers["m (truth) arrows"])
    material = mm.Material(**known)
    fresh = _sample_data.simulate_probes(m, grid, material)
    shown = {layer.name: layer.data for layer in viewer.layers if layer.metadata["mmrecon"]["kind"] == "image"}
    images = [image for result in fresh for image in result.images]
    assert [image.name for image in images] == list(shown)
    for image in images:
        np.testing.assert_allclose(shown[image.name], image.data, rtol=1e-7, atol=1e-7 * np.abs(image.data).max())


def test_bundled_single_skyrmion_is_an_equilibrium_of_its_material():
    m, grid, material = _sample_data.load_state("single_skyrmion")
    _, info = mm.relax(m, grid, material, return_info=True)
    assert info.iterations == 0 and info.converged
    assert 6e-9 < mm.skyrmion_radius(m, grid) < 8e-9
    sample = _sample_data.SAMPLES["single_skyrmion"]
    assert (sample.grid, material) == (grid, _sample_data.MATERIAL)


def test_bundled_files_are_small():
    total = sum(path.stat().st_size for path in _sample_data.DATA.iterdir())
    assert total < 5e6
