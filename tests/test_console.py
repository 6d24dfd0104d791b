"""napari's console as a face: layers -> API objects -> layers (``napari_mmrecon.console``), and the
README's console session run as it is written. Headless: run under ``xvfb-run -a``."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon import console as mmc
from napari_mmrecon.workflows import layer_data

README = Path(__file__).resolve().parents[1] / "README.md"
GRID = mm.Grid(nx=20, ny=16, nz=1, dx=2e-9, dy=2e-9, dz=1e-9, device="cpu")
MATERIAL = mm.Material(Ms=4e5, A=1e-11, Ku=6e5, D=2e-3)


def readme_console_session() -> str:
    """The code block of the README's "## napari" section that uses the console module."""
    section = README.read_text().split("\n## napari\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return next(block for block in blocks if "console as mmc" in block)


@pytest.fixture
def viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    for data, kwargs, kind in layer_data.magnetization_layers(mm.textures.skyrmion(GRID, radius=6e-9), GRID,
                                                              MATERIAL, name="m"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    return viewer


def test_the_readme_session_runs_in_a_viewer(make_napari_viewer, notes):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-mmrecon", "single_skyrmion")
    truth = viewer.layers["m (truth)"].data.copy()
    code = readme_console_session()
    assert len(code.strip().splitlines()) == 5
    exec(code, {"viewer": viewer})
    assert notes.errors() == []
    state, hz = viewer.layers["m at 100 mT"], viewer.layers["Hz 10 nm"]
    assert viewer.layers["m at 100 mT arrows"].metadata["mmrecon"]["kind"] == "magnetization"
    assert np.sum(state.data < 0) < np.sum(truth < 0)  # the field along +z shrinks the skyrmion
    for layer in (state, hz):
        np.testing.assert_allclose(layer.scale, (1.0, 1.0))  # nm: cells of 1 nm
        assert [str(u) for u in layer.units] == ["nanometer", "nanometer"]
    m, grid, material = mmc.from_layer(state)
    assert material.D == pytest.approx(3e-3) and grid.nx == 64
    meta = hz.metadata["mmrecon"]
    assert (meta["quantity"], meta["unit"], meta["grid"]["nx"]) == ("Hz", "A/m", 64)
    np.testing.assert_allclose(hz.data, mm.stray_field(m, grid, material.Ms, 10e-9)[..., 2])


def test_from_layer_gives_the_state_of_either_layer(viewer):
    m, grid, material = mmc.from_layer(viewer.layers["m"])
    assert grid == GRID and material.as_dict() == MATERIAL.as_dict()
    np.testing.assert_array_equal(mmc.from_layer(viewer.layers["m arrows"]).m, m)
    viewer.add_image(np.zeros((4, 4)), name="plain")
    with pytest.raises(ValueError, match="'plain' is not a magnetization layer .* image_from_layer"):
        mmc.from_layer(viewer.layers["plain"])


def test_from_layer_reads_an_edited_mz(viewer):
    layer = viewer.layers["m"]
    before = mmc.from_layer(layer).m
    layer.data = np.where(np.arange(GRID.nx) < 5, -1.0, layer.data)  # a reversed stripe on the left
    m = mmc.from_layer(layer).m
    np.testing.assert_allclose(m[0, :, :5], np.broadcast_to([0.0, 0.0, -1.0], (16, 5, 3)), atol=1e-12)
    np.testing.assert_array_equal(m[0, :, 5:], before[0, :, 5:])
    with pytest.raises(ValueError, match="arrows of 'm arrows' were edited"):
        arrows = viewer.layers["m arrows"]
        arrows.data = arrows.data * 2
        mmc.from_layer(arrows)


def test_image_from_layer_gives_film_and_measurement(viewer):
    measurement = mm.StrayFieldMeasurement(height=12e-9, side="bottom")
    m, grid, material = mmc.from_layer(viewer.layers["m"])
    hz = mm.stray_field(m, grid, material.Ms, 12e-9, side="bottom")[..., 2]
    (layer,) = mmc.add_layers(viewer, hz, grid, material, name="Hz", measurement=measurement)
    np.testing.assert_allclose(layer.scale, (2.0, 2.0))
    data, film, read = mmc.image_from_layer(layer)
    np.testing.assert_array_equal(data, hz)
    assert film == grid and read == measurement

    viewer.add_image(np.ones((8, 6)), name="scan", scale=(5.0, 4.0))  # a foreign image: scale in nm
    with pytest.raises(ValueError, match="give thickness="):
        mmc.image_from_layer(viewer.layers["scan"])
    data, film, read = mmc.image_from_layer(viewer.layers["scan"], thickness=2e-9)
    assert (film.nx, film.ny, film.dx, film.dy, film.dz) == (6, 8, 4e-9, 5e-9, 2e-9) and read is None


def test_add_layers_refuses_other_shapes(viewer):
    with pytest.raises(ValueError, match=r"neither a magnetization \(1, 16, 20, 3\) nor an image \(16, 20\)"):
        mmc.add_layers(viewer, np.zeros((16, 21)), GRID)
    assert len(viewer.layers) == 2


def test_console_does_not_import_napari():
    code = "import sys, napari_mmrecon.console; assert 'napari' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
