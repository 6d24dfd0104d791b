"""The "Texture reconstruction" dock widget, driven as a user would: choose layers, set fields,
click Reconstruct or Cancel, wait. Headless: run under ``xvfb-run -a``.

The targets are the layers of the bundled single-skyrmion sample (File > Open Sample): Hz at 10
and 20 nm above and below a relaxed skyrmion in a 64 x 64 x 1 film of 1 nm cells, with the true
magnetization "m (truth)". From the top image at 10 nm the bias method converges in 3 outer
iterations, a few seconds each: time to cancel it after the first.
"""

import time

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon._sample_data import sample_layers
from napari_mmrecon.widgets.reconstruct import STARTS, ReconstructDock, ReconstructWidget
from napari_mmrecon.widgets.target_fields import SEVERAL
from napari_mmrecon.workflows import layer_data

TOP, BOTTOM = "Hz top 10 nm", "Hz bottom 10 nm"
RESULTS = ("reconstruction simulated", "reconstruction residual", "reconstruction bias z", "reconstructed m",
           "reconstructed m arrows")


@pytest.fixture(scope="module")
def sample():
    return sample_layers("single_skyrmion")


@pytest.fixture
def reconstructor(make_napari_viewer, sample):
    """A docked reconstruction widget with the single-skyrmion sample's layers in the viewer."""
    viewer = make_napari_viewer()
    for data, kwargs, kind in sample:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget


def test_reconstruct_the_top_image_end_to_end(reconstructor, qtbot, notes):
    viewer, widget = reconstructor
    # the first image is chosen, its metadata filled the measurement and the film
    assert widget.targets.value == [viewer.layers[TOP]]
    fields = widget.measurement_fields
    assert (fields.kind.value, fields.component.value, fields.side.value) == ("stray field", "z", "top")
    assert fields.height_nm.value == pytest.approx(10.0) and widget.film.thickness_nm.value == pytest.approx(1.0)
    assert not widget.several.native.isVisibleTo(widget.native)
    widget.max_iter.value = 5
    inserted, updates = [], []

    def on_inserted(event):
        inserted.append(event.value.name)
        event.value.events.data.connect(lambda _: updates.append(event.value.name))

    viewer.layers.events.inserted.connect(on_inserted)
    widget.panel.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=120000)
    assert notes.errors() == []
    assert widget.panel.status.value.startswith("done")
    # each layer added once, in order, and updated in place as it went
    assert inserted == [f"{TOP} {part}" for part in RESULTS]
    assert updates.count(f"{TOP} reconstruction simulated") >= 2 and updates.count(f"{TOP} reconstructed m") >= 2
    result = widget.result
    assert result.converged and result.message in widget.summary.value
    truth = viewer.layers["m (truth)"].metadata["mmrecon"]["m"]
    grid = mm.Grid(nx=64, ny=64, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
    metrics = mm.texture_metrics(result.m, truth, grid)
    assert metrics.angle_error < 1.0 and metrics.mz_correlation > 0.99
    simulated, residual = (viewer.layers[f"{TOP} reconstruction {part}"] for part in ("simulated", "residual"))
    np.testing.assert_allclose(simulated.data, result.simulated)
    np.testing.assert_allclose(residual.data, simulated.data - viewer.layers[TOP].data, atol=1e-6)
    bias = viewer.layers[f"{TOP} reconstruction bias z"]
    np.testing.assert_allclose(bias.data, result.bias_field[0, :, :, 2])
    for layer in (simulated, residual, bias, viewer.layers[f"{TOP} reconstructed m"]):
        np.testing.assert_allclose(layer.scale, (1.0, 1.0))
        np.testing.assert_allclose(layer.translate, (0.5, 0.5))
        assert layer.colormap.name == "RdBu_r" and layer.contrast_limits[0] == pytest.approx(-layer.contrast_limits[1])
    meta = simulated.metadata["mmrecon"]
    assert (meta["quantity"], meta["unit"], meta["target"], meta["side"], meta["height"]) == ("Hz", "A/m", TOP, "top",
                                                                                              1e-8)
    assert meta["reconstruction"]["converged"] is True and meta["reconstruction"]["options"]["max_iter"] == 5
    assert bias.metadata["mmrecon"]["quantity"] == "H_bias_z" and bias.metadata["mmrecon"]["unit"] == "A/m"
    m, m_grid, material = layer_data.read_magnetization(viewer.layers[f"{TOP} reconstructed m arrows"])
    np.testing.assert_allclose(m, result.m)
    assert m_grid == grid and material["Ku"] == 8e5
    assert viewer.layers[f"{TOP} reconstructed m"].metadata["mmrecon"]["reconstruction"]["iterations"] <= 5


def test_cancel_keeps_the_best_state_and_replace_updates_the_layers(reconstructor, qtbot, notes):
    viewer, widget = reconstructor
    widget.targets.value = [viewer.layers[BOTTOM]]
    assert widget.measurement_fields.side.value == "bottom"
    widget.targets.value = [viewer.layers[TOP]]  # converges in 3 iterations: cancelled after the first
    assert widget.measurement_fields.side.value == "top"
    widget.panel.run_button.native.click()
    qtbot.waitUntil(lambda: f"{TOP} reconstructed m" in viewer.layers, timeout=120000)
    assert widget.panel.is_running and widget.panel.status.value.startswith("reconstruction, bias")
    start = time.perf_counter()
    widget.panel.cancel_button.native.click()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=10000)
    assert time.perf_counter() - start < 1.0
    assert widget.panel.status.value.startswith("cancelled: kept the result so far") and notes.errors() == []
    result = widget.result
    assert result.cancelled and not result.converged and len(result.loss_history) >= 1
    np.testing.assert_allclose(viewer.layers[f"{TOP} reconstructed m"].data, result.m[0, :, :, 2])
    assert viewer.layers[f"{TOP} reconstruction simulated"].metadata["mmrecon"]["reconstruction"]["cancelled"]
    # run again, replacing the layers of the cancelled run: no new layer
    names = [layer.name for layer in viewer.layers]
    widget.replace.value = True
    widget.method.value = "fourier"
    widget.panel.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=60000)
    assert notes.errors() == [] and widget.result.method == "fourier"
    names.remove(f"{TOP} reconstruction bias z")  # the Fourier inversion makes none
    assert [layer.name for layer in viewer.layers] == names
    meta = viewer.layers[f"{TOP} reconstructed m"].metadata["mmrecon"]
    assert meta["reconstruction"]["method"] == "fourier"
    np.testing.assert_allclose(viewer.layers[f"{TOP} reconstructed m arrows"].metadata["mmrecon"]["m"],
                               widget.result.m)


def test_energy_relaxed_with_an_offset_per_scan_line(reconstructor, qtbot, notes):
    """The top image with scan-line jumps: the "offset per scan line" box (shown for the energy
    methods only) profiles them out, and the layers show the texture and its holding bias."""
    viewer, widget = reconstructor
    assert not widget.row_offsets.native.isVisibleTo(widget.native)
    widget.method.value = "energy-relaxed"
    assert widget.row_offsets.native.isVisibleTo(widget.native)
    image = viewer.layers[TOP].data
    jumps = np.cumsum(np.where(np.random.default_rng(2).random(image.shape[0]) < 0.15, 0.3 * image.std(), 0.0))
    viewer.layers[TOP].data = image + jumps[:, None]
    widget.row_offsets.value = True
    widget.max_iter.value = 20
    widget.panel.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=120000)
    assert notes.errors() == [] and widget.result.method == "energy-relaxed"
    meta = viewer.layers[f"{TOP} reconstructed m"].metadata["mmrecon"]["reconstruction"]
    assert meta["options"]["row_offsets"] is True
    assert f"{TOP} reconstruction bias z" in viewer.layers
    m_true = viewer.layers["m (truth)"].metadata["mmrecon"]["m"]
    grid = mm.Grid(nx=64, ny=64, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
    assert mm.texture_metrics(widget.result.m, m_true, grid).angle_error < 5.0


def test_bad_input_gives_a_notification_and_no_layer(reconstructor, notes):
    viewer, widget = reconstructor
    holey = np.ones((64, 64))
    holey[3, 4] = np.nan
    viewer.add_image(holey, name="holey", scale=(1, 1), units=("nm", "nm"))
    viewer.add_image(np.random.default_rng(0).standard_normal((64, 64)), name="no scale")
    viewer.add_image(np.random.default_rng(0).standard_normal((64, 64)), name="coarse", scale=(2, 2),
                     units=("nm", "nm"))
    small = mm.Grid(nx=20, ny=20, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu")
    for data, kwargs, kind in layer_data.magnetization_layers(mm.textures.skyrmion(small, radius=5e-9), small,
                                                              name="small m"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    layers = viewer.layers
    cases = [
        (widget.targets, [], "no target image"),
        (widget.targets, [layers["holey"]], "target 'holey': target contains 1 NaN or inf pixels"),
        (widget.targets, [layers["no scale"]], "layer 'no scale' has no physical pixel size"),
        (widget.targets, [layers[TOP], layers["holey"]], "target 'holey' does not say how it was measured"),
        (widget.targets, [layers[TOP], layers["coarse"]], "target 'coarse' has pixels of 2 x 2 nm but 'Hz top 10 nm'"),
        (widget.start, layers["small m"],
         "the starting magnetization has 20 x 20 x 1 cells (x, y, z) but the target's film needs 64 x 64 x 1"),
        (widget.values["Ku"], 0.0, "the reconstruction needs Ku > 0"),
        (widget.values["Ms"], 2e4, "Ms = 20000000.0 A/m is outside the physical range"),
        (widget.measurement_fields.height_nm, 0.0, "height"),
        (widget.measurement_fields.kind, "MFM", "the image is in A/m but an MFM frequency_shift is in Hz"),
        (widget.film.thickness_nm, 0.0, "film thickness must be > 0 nm"),
        (widget.noise, -1.0, "noise = -1.0 is outside the range (>= 0)"),
        (widget.method, "energy", "a joint fit of the material takes one image and the bias method"),  # Ku ticked
    ]
    widget.fitted["Ku"].value = True
    widget.method.value = "bias"
    before = [layer.name for layer in layers]
    for field, value, message in cases:
        good = field.value
        field.value = value
        notes.clear()
        assert not widget.panel.run()
        assert [layer.name for layer in layers] == before
        assert len(notes.errors()) == 1 and message in notes.errors()[0], (message, notes.errors())
        assert notes.errors()[0].startswith("Texture reconstruction: ")
        assert widget.panel.status.value.startswith("failed") and widget.result is None
        field.value = good


def test_several_targets_material_from_a_layer_and_the_plugin_menu(make_napari_viewer, sample):
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-mmrecon", "Texture reconstruction")
    assert isinstance(dock, ReconstructDock) and isinstance(dock.form, ReconstructWidget)
    for data, kwargs, kind in sample:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = dock.form
    assert widget.targets.value == [viewer.layers[TOP]]  # the first image, once there is one
    assert [c.name for c in widget.targets.choices] == [layer.name for layer in viewer.layers
                                                        if layer.name.startswith(("Hz", "MFM"))]
    assert widget.start.choices[len(STARTS):] == (viewer.layers["m (truth)"], viewer.layers["m (truth) arrows"])
    widget.targets.value = [viewer.layers[TOP], viewer.layers[BOTTOM]]
    assert widget.several.value == SEVERAL and widget.several.native.isVisibleTo(widget.native)
    assert not widget.measurement_fields.height_nm.native.isVisibleTo(widget.native)
    # the material from a layer's metadata fills the fields
    widget.values["Ms"].value, widget.values["D"].value = 700.0, 1.0
    widget.material_from.value = viewer.layers["m (truth)"]
    assert (widget.values["Ms"].value, widget.values["D"].value) == pytest.approx((580.0, 3.0))
    assert widget.material_fields.read() == mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
