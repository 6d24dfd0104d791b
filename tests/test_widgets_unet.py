"""The "U-Net reconstruction" dock widget, driven as a user would: choose layers, set fields, click
Predict, Refine with physics or Cancel, wait. Headless: run under ``xvfb-run -a``.

The network is a random-init U-Net saved as a checkpoint here (the shipped weights are trained
elsewhere): what is checked is the plumbing (layers, scale, metadata, notifications, the
hand-over to the reconstruction), not the quality of the prediction. The target is the H_z image
10 nm above a Neel skyrmion in a 32 x 32 x 1 film of 2 nm cells, with the metadata the simulator
writes: inside the training ranges of ``DatasetRecipe``, unlike the same film with 8 nm pixels.
"""

import threading

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.learn.recipe import DatasetRecipe
from napari_mmrecon.backend.learn.unet import UNet, checkpoint
from napari_mmrecon.widgets.unet import UNetDock, UNetWidget
from napari_mmrecon.workflows import layer_data
from napari_mmrecon.workflows import unet as unet_workflow
from napari_mmrecon.workflows.fit import measurement_metadata

TOP, COARSE = "Hz top 10 nm", "Hz top 10 nm, 8 nm pixels"
MATERIAL = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
MEASUREMENT = mm.StrayFieldMeasurement(height=10e-9, side="top")


def target(name: str, cell: float) -> tuple:
    """The H_z layer of a skyrmion of a third of a 32 x 32 film of ``cell`` pixels, as the simulator makes it."""
    grid = mm.Grid(nx=32, ny=32, nz=1, dx=cell, dy=cell, dz=1e-9, device="cpu")
    image = MEASUREMENT.simulate(mm.textures.skyrmion(grid, radius=5 * cell), grid, MATERIAL.Ms)
    return layer_data.image_layer(image, (cell, cell), name, "Hz", "A/m", grid=grid, material=MATERIAL,
                                  source="test", relaxed=False, **measurement_metadata(MEASUREMENT))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("unet") / "unet.pt"
    torch.save(checkpoint(UNet(), {"recipe": DatasetRecipe().to_dict()}), path)
    return path


@pytest.fixture
def predictor(make_napari_viewer, weights):
    """The dock from the plugin menu, with the two targets in the viewer and the test's weights."""
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-mmrecon", "U-Net reconstruction")
    assert isinstance(dock, UNetDock) and isinstance(dock.form, UNetWidget)
    for name, cell in ((TOP, 2e-9), (COARSE, 8e-9)):
        data, kwargs, kind = target(name, cell)
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = dock.form
    widget.weights.value = weights
    return viewer, widget


def predict(widget, qtbot) -> None:
    widget.panel.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=30000)


def warnings_of(notes) -> list:
    from napari.utils.notifications import NotificationSeverity

    return [n.message for n in notes if n.severity == NotificationSeverity.WARNING]


def test_predict_gives_unit_m_layers_with_scale_and_metadata(predictor, qtbot, notes):
    viewer, widget = predictor
    # the first image is chosen and its metadata filled the measurement and the film
    assert widget.targets.value == [viewer.layers[TOP]]
    fields = widget.measurement_fields
    assert (fields.kind.value, fields.component.value, fields.side.value) == ("stray field", "z", "top")
    assert fields.height_nm.value == pytest.approx(10.0) and widget.film.thickness_nm.value == pytest.approx(1.0)
    assert not widget.refine_button.enabled
    assert not widget.material_fields.fitted["D"].native.isVisibleTo(widget.native)  # nothing is fitted
    widget.material_from.value = viewer.layers[TOP]
    assert widget.material_fields.read() == MATERIAL
    predict(widget, qtbot)
    assert notes.errors() == [] and warnings_of(notes) == []
    assert widget.panel.status.value.startswith("done") and "within the training ranges" in widget.summary.value
    mz, arrows = viewer.layers[f"{TOP} U-Net m"], viewer.layers[f"{TOP} U-Net m arrows"]
    assert list(widget.layers) == [mz.name, arrows.name] and widget.refine_button.enabled
    assert mz.data.shape == (32, 32) and arrows.data.shape[1:] == (2, 2)
    np.testing.assert_allclose(mz.scale, (2.0, 2.0))
    np.testing.assert_allclose(mz.translate, (1.0, 1.0))
    assert tuple(str(u) for u in mz.units) == ("nanometer", "nanometer")
    m, grid, material = layer_data.read_magnetization(arrows)
    assert m.shape == (1, 32, 32, 3) and grid == mm.Grid(nx=32, ny=32, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
    np.testing.assert_allclose(np.linalg.norm(m, axis=-1), 1.0, atol=1e-9)
    np.testing.assert_allclose(mz.data, m[0, :, :, 2])
    np.testing.assert_allclose(m, widget.result.m)
    assert material["D"] == 3e-3
    record = mz.metadata["mmrecon"]["unet"]
    assert record["extrapolated"] == [] and record["target"] == TOP and record["weights"] == str(widget.weights.value)
    assert record["measurements"] == [MEASUREMENT.to_dict()]


def test_extrapolated_prediction_warns_with_the_range_and_still_gives_layers(predictor, qtbot, notes):
    viewer, widget = predictor
    widget.targets.value = [viewer.layers[COARSE]]
    predict(widget, qtbot)
    assert notes.errors() == []
    warned = warnings_of(notes)
    assert len(warned) == 1 and warned[0].startswith("U-Net reconstruction: the prediction is extrapolated: ")
    assert "pixel size 8 nm is outside the training range 1-4 nm" in warned[0]
    layer = viewer.layers[f"{COARSE} U-Net m"]
    np.testing.assert_allclose(layer.scale, (8.0, 8.0))
    assert layer.metadata["mmrecon"]["unet"]["extrapolated"] == ["pixel size 8 nm is outside the training range "
                                                                 "1-4 nm"]
    assert "outside the training range" in widget.summary.value


def test_bad_input_gives_a_notification_and_no_layer(predictor, qtbot, notes, tmp_path):
    viewer, widget = predictor
    holey = np.array(viewer.layers[TOP].data)
    holey[3, 4] = np.nan
    viewer.add_image(holey, name="holey", scale=(2, 2), units=("nm", "nm"))
    viewer.add_image(np.random.default_rng(0).standard_normal((32, 32)), name="no scale")
    missing = tmp_path / "missing.pt"
    layers = viewer.layers
    before = [layer.name for layer in layers]
    cases = [  # refused before anything runs
        (widget.targets, [layers["holey"]], "target 'holey': target contains 1 NaN or inf pixels"),
        (widget.targets, [layers["no scale"]], "layer 'no scale' has no physical pixel size"),
        (widget.weights, missing, f"U-Net weights not found: {missing}"),
        (widget.values["Ms"], 2e4, "Ms = 20000000.0 A/m is outside the physical range"),
    ]
    for field, value, message in cases:
        good = field.value
        field.value = value
        notes.clear()
        assert not widget.panel.run()
        assert [layer.name for layer in layers] == before
        assert len(notes.errors()) == 1 and message in notes.errors()[0], (message, notes.errors())
        assert notes.errors()[0].startswith("U-Net reconstruction: ")
        assert widget.panel.status.value.startswith("failed") and widget.result is None
        field.value = good
    # a measurement the network does not take: refused by the job
    notes.clear()
    widget.measurement_fields.component.value = "x"
    predict(widget, qtbot)
    assert len(notes.errors()) == 1 and "the U-Net takes H_z images" in notes.errors()[0]
    assert [layer.name for layer in layers] == before and widget.result is None
    # nothing to refine yet
    notes.clear()
    assert not widget.refine() and "predict first" in notes.errors()[0]


def test_refine_with_physics_shows_the_reconstruction_layers_live(predictor, qtbot, notes):
    viewer, widget = predictor
    widget.material_from.value = viewer.layers[TOP]
    predict(widget, qtbot)
    widget.max_iter.value = 3
    widget.refine_button.native.click()
    assert widget.panel.is_running
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=60000)
    assert notes.errors() == [] and widget.panel.status.value.startswith("done")
    result = widget.refined
    assert result.init == "array" and 1 <= result.iterations <= 3
    assert result.message in widget.summary.value
    assert set(widget.refined_layers) == {f"{TOP} reconstruction {part}" for part in ("simulated", "residual", "bias z")
                                          } | {f"{TOP} reconstructed m", f"{TOP} reconstructed m arrows"}
    m, _, _ = layer_data.read_magnetization(viewer.layers[f"{TOP} reconstructed m arrows"])
    np.testing.assert_allclose(m, result.m)
    assert viewer.layers[f"{TOP} reconstructed m"].metadata["mmrecon"]["reconstruction"]["options"]["max_iter"] == 3


def test_cancel_drops_the_prediction_and_keeps_the_refinement_so_far(predictor, qtbot, notes, monkeypatch):
    viewer, widget = predictor
    release = threading.Event()
    original = unet_workflow.unet_predict

    def held(*args, **kwargs):
        release.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(unet_workflow, "unet_predict", held)
    names = [layer.name for layer in viewer.layers]
    assert widget.panel.run()
    qtbot.waitUntil(lambda: widget.panel.status.value.startswith("U-Net: predicting"), timeout=10000)
    widget.panel.cancel_button.native.click()
    release.set()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=10000)
    assert widget.panel.status.value == "cancelled" and notes.errors() == []
    assert [layer.name for layer in viewer.layers] == names and widget.result is None
    # the refinement keeps its best state so far, as the texture reconstruction does
    release.set()
    predict(widget, qtbot)
    widget.max_iter.value = 100
    assert widget.refine()
    qtbot.waitUntil(lambda: f"{TOP} reconstructed m" in viewer.layers, timeout=30000)
    widget.panel.cancel_button.native.click()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=10000)
    assert widget.panel.status.value.startswith("cancelled: kept the result so far") and notes.errors() == []
    assert widget.refined.cancelled
    np.testing.assert_allclose(viewer.layers[f"{TOP} reconstructed m"].data, widget.refined.m[0, :, :, 2])
