"""The OVF writer saves what a magnetization layer holds now: an edited mz image saves its edit,
edited arrows are refused. Through napari's own ``layer.save``; headless under ``xvfb-run -a``."""

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.workflows import layer_data

PLUGIN = "napari-mmrecon"


def add_state(viewer, m, grid, name="m"):
    for data, kwargs, kind in layer_data.magnetization_layers(m, grid, mm.Material(Ms=5e5, D=2e-3), name=name):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    return viewer.layers[name]


def saved(layer, path):
    assert layer.save(str(path), plugin=PLUGIN) == [str(path)]
    return mm.read_ovf(path)[0]


def test_an_edited_mz_image_saves_its_edit(make_napari_viewer, tmp_path, notes):
    grid = mm.Grid(nx=24, ny=20, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu")
    m = mm.textures.skyrmion(grid, radius=5e-9)
    layer = add_state(make_napari_viewer(), m, grid)
    edited = layer.data.copy()
    edited[2:6, 3:9] = -1.0  # a second reversed domain
    wall = (8, 12)  # a cell of the skyrmion wall: in-plane part, changed to mz = 0.3
    edited[wall] = 0.3
    layer.data = edited
    m_file = saved(layer, tmp_path / "edited.ovf")
    assert notes.errors() == []
    np.testing.assert_allclose(m_file[0, ..., 2], edited, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(m_file, axis=-1), 1.0, atol=1e-12)
    kept = np.ones(grid.shape[1:], bool)
    kept[2:6, 3:9] = kept[wall] = False
    np.testing.assert_array_equal(m_file[0][kept], m[0][kept])  # unedited cells exactly as they were
    before, after = m[0][wall][:2], m_file[0][wall][:2]
    assert before[0] * after[1] - before[1] * after[0] == pytest.approx(0.0, abs=1e-12)  # same direction
    assert before @ after > 0


def test_an_edit_of_a_cell_along_z_takes_the_gradient_direction(make_napari_viewer, tmp_path):
    grid = mm.Grid(nx=12, ny=12, nz=2, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu")
    layer = add_state(make_napari_viewer(), mm.textures.uniform(grid), grid)  # 3-D layer (nz, ny, nx)
    edited = layer.data.copy()
    edited[:, :, 6:] = 0.6  # m_z falls towards +x
    layer.data = edited
    m_file = saved(layer, tmp_path / "tilted.ovf")
    np.testing.assert_allclose(m_file[..., 2], edited, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(m_file, axis=-1), 1.0, atol=1e-12)
    assert np.all(m_file[:, :, 6, 0] < 0)  # along grad m_z, the Neel sense of D > 0


@pytest.mark.parametrize("edit, message", [
    (lambda layers: setattr(layers["m arrows"], "data", layers["m arrows"].data * 1.5),
     "the arrows of 'm arrows' were edited; they show a few cells only"),
    (lambda layers: setattr(layers["m"], "data", np.full((16, 16), 1.5)),
     "the mz image of 'm' spans 1.5 .. 1.5; m_z lies in -1 .. 1"),
    (lambda layers: setattr(layers["m"], "data", np.zeros((3, 3))),
     "the mz image of 'm' has shape (3, 3); its grid needs (16, 16)"),
])
def test_edits_that_are_no_magnetization_are_refused(make_napari_viewer, tmp_path, notes, edit, message):
    grid = mm.Grid(nx=16, ny=16, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu")
    viewer = make_napari_viewer()
    add_state(viewer, mm.textures.skyrmion(grid, radius=4e-9), grid)
    edit(viewer.layers)
    name = "m arrows" if "arrows" in message else "m"
    with pytest.warns(UserWarning, match="did not return any written paths"):
        assert viewer.layers[name].save(str(tmp_path / "bad.ovf"), plugin=PLUGIN) == []
    assert list(tmp_path.iterdir()) == []
    assert len(notes.errors()) == 1 and message in notes.errors()[0], notes.errors()
