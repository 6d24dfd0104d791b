"""Reader and writer contributions, through napari's own API (viewer.open, layer.save)."""

from pathlib import Path

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.workflows import layer_data

PLUGIN = "napari-mmrecon"
ROOT = Path(__file__).resolve().parents[1]



@pytest.fixture
def state():
    grid = mm.Grid(nx=20, ny=12, nz=1, dx=2e-9, dy=3e-9, dz=1e-9, device="cpu")
    return mm.textures.skyrmion(grid, radius=6e-9), grid


def test_manifest_is_valid_and_packaged_copy_is_the_same():
    from npe2 import PluginManifest

    top = ROOT / "napari.yaml"
    packaged = ROOT / "src" / "napari_mmrecon" / "napari.yaml"
    assert top.read_text() == packaged.read_text()
    manifest = PluginManifest.from_file(top)
    manifest.validate_imports()
    assert manifest.name == PLUGIN
    assert {w.display_name for w in manifest.contributions.widgets} == {"Stray field / MFM simulator",
                                                                       "Physics relaxation / fit",
                                                                       "Texture reconstruction",
                                                                       "U-Net reconstruction",
                                                                       "Measured-image preparation",
                                                                       "Tip calibration"}
    assert {s.key for s in manifest.contributions.sample_data} == {"skyrmion_lattice", "single_skyrmion"}
    # the installed plugin is the one in this checkout
    installed = PluginManifest.from_distribution(PLUGIN)
    assert installed.contributions == manifest.contributions


def test_ovf_opens_as_magnetization_layers(make_napari_viewer, state, tmp_path):
    m, grid = state
    path = tmp_path / "state.ovf"
    mm.write_ovf(path, m, grid)
    viewer = make_napari_viewer()
    layers = viewer.open(path, plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["state", "state arrows"]
    mz, arrows = layers
    assert mz.data.shape == (12, 20) and arrows.data.shape[1:] == (2, 2)
    np.testing.assert_allclose(mz.scale, (3.0, 2.0))
    np.testing.assert_allclose(mz.translate, (1.5, 1.0))
    np.testing.assert_allclose(mz.data, m[0, :, :, 2])
    m_read, grid_read, material = layer_data.read_magnetization(arrows)
    np.testing.assert_allclose(m_read, m)
    assert grid_read == grid and material == {}


def test_magnetization_saves_as_ovf2_and_comes_back_with_its_material(make_napari_viewer, state, tmp_path):
    m, grid = state
    material = mm.Material(Ms=4.2e5, A=1.1e-11, Ku=5e5, D=-2e-3)
    viewer = make_napari_viewer()
    for data, kwargs, kind in layer_data.magnetization_layers(m, grid, material, name="mine"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    for layer, name in ((viewer.layers["mine"], "from_image.ovf"), (viewer.layers["mine arrows"], "from_arrows.ovf")):
        layer.save(str(tmp_path / name), plugin=PLUGIN)
        m_file, grid_file, header = mm.read_ovf(tmp_path / name, return_header=True)
        assert header["version"] == 2 and header["format"] == "binary8"
        np.testing.assert_array_equal(m_file, m)
        assert grid_file == grid
    reopened = viewer.open(tmp_path / "from_arrows.ovf", plugin=PLUGIN)
    _, _, known = layer_data.read_magnetization(reopened[0])
    assert known["Ms"] == 4.2e5 and known["D"] == -2e-3 and known["Ku"] == 5e5


def test_oommf_magnetization_in_a_per_m_gives_ms(make_napari_viewer, state, tmp_path):
    m, grid = state
    m[0, 0, :3] = 0.0  # vacuum cells
    path = tmp_path / "disk.omf"
    mm.write_ovf(path, 8e5 * m, grid, title="Magnetization", value_units="A/m")
    layers = make_napari_viewer().open(path, plugin=PLUGIN)
    m_read, _, known = layer_data.read_magnetization(layers[0])
    assert known["Ms"] == pytest.approx(8e5)
    np.testing.assert_allclose(m_read, m, atol=1e-12)


def test_field_ovf_opens_as_images(make_napari_viewer, state, tmp_path):
    m, grid = state
    path = tmp_path / "B_demag.ovf"
    mm.write_ovf(path, 0.1 * m, grid, title="B_demag", value_units="T")
    layers = make_napari_viewer().open(path, plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["B_demag B_demag_x", "B_demag B_demag_y", "B_demag B_demag_z"]
    assert layers[2].metadata["mmrecon"]["unit"] == "T"
    np.testing.assert_allclose(layers[2].data, 0.1 * m[0, :, :, 2])


def test_image_saves_as_tiff_with_pixel_size_and_metadata(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    image = np.linspace(-3, 5, 35).reshape(5, 7)
    data, kwargs, _ = layer_data.image_layer(image, (4e-9, 2.5e-9), "Hz top 20 nm", quantity="Hz", unit="A/m",
                                             side="top", height=20e-9)
    layer = viewer.add_image(data, **kwargs)
    path = tmp_path / "hz.tif"
    layer.save(str(path), plugin=PLUGIN)
    read, pixel, meta = mm.read_tiff(path)
    np.testing.assert_allclose(read, image, rtol=1e-6)
    np.testing.assert_allclose(pixel, (4e-9, 2.5e-9), rtol=1e-6)
    assert meta["quantity"] == "Hz" and meta["unit"] == "A/m" and meta["height"] == 20e-9
    back = viewer.open(path, plugin=PLUGIN)[0]
    assert back.name == "Hz top 20 nm [1]"
    np.testing.assert_allclose(back.scale, (4.0, 2.5), rtol=1e-6)
    np.testing.assert_allclose(back.translate, (2.0, 1.25), rtol=1e-6)
    assert back.metadata["mmrecon"]["side"] == "top" and back.colormap.name == "RdBu_r"


def test_layers_that_cannot_be_written_give_a_notification(make_napari_viewer, notes, tmp_path):
    layer = make_napari_viewer().add_image(np.zeros((4, 4)), name="plain")
    with pytest.warns(UserWarning, match="did not return any written paths"):
        assert layer.save(str(tmp_path / "plain.tif"), plugin=PLUGIN) == []
        assert layer.save(str(tmp_path / "plain.ovf"), plugin=PLUGIN) == []
    assert list(tmp_path.iterdir()) == []
    messages = notes.errors()
    assert "'plain' has no physical pixel size" in messages[0]
    assert "'plain' is not a magnetization layer of napari-mmrecon" in messages[1]


def test_foreign_tiff_without_pixel_size_opens_in_pixels(make_napari_viewer, tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "scan.tif", np.arange(12, dtype=np.float32).reshape(3, 4))
    layer = make_napari_viewer().open(tmp_path / "scan.tif", plugin=PLUGIN)[0]
    np.testing.assert_allclose(layer.scale, (1.0, 1.0))
    with pytest.raises(ValueError, match="no physical pixel size"):
        layer_data.pixel_size(layer)


@pytest.mark.parametrize("name, content", [
    ("truncated.ovf", b"# OOMMF OVF 2.0\n# Segment count: 1\n# Begin: Segment\n# Begin: Header\n"),
    ("noise.tif", b"II*\x00garbage that is not a tiff"),
])
def test_corrupt_file_gives_a_notification_and_no_layer(make_napari_viewer, notes, tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    viewer = make_napari_viewer()
    assert viewer.open(tmp_path / name, plugin=PLUGIN) == []
    assert len(viewer.layers) == 0
    messages = notes.errors()
    assert len(messages) == 1 and messages[0].startswith(f"napari-mmrecon cannot open {name}: ")
