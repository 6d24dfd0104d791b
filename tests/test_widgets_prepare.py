"""The "Measured-image preparation" dock widget, driven as a user would: choose a layer and steps,
click Prepare, wait. Headless: run under ``xvfb-run -a``."""

import numpy as np
import pytest

from napari_mmrecon.backend.measured.preparation import prepare_image
from napari_mmrecon.widgets.prepare import PrepareDock, PrepareWidget
from napari_mmrecon.workflows import layer_data

PIXEL = (4e-9, 5e-9)


def phase_layer(name: str = "scan") -> tuple:
    """A 40 x 48 'MFM phase' (deg) with scan-line jumps and a glitch, as an image layer with metadata."""
    rng = np.random.default_rng(2)
    image = rng.normal(size=(40, 48)) + rng.uniform(-4, 4, 40)[:, None] + 0.02 * np.arange(48)[None, :]
    image[10, 12] += 80.0
    return layer_data.image_layer(image, PIXEL, name, "phase", "deg", source="test.gwy", height=20e-9,
                                  cantilever={"k": 2.8, "f0": 70e3, "Q": 250.0})


@pytest.fixture
def preparer(make_napari_viewer):
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-mmrecon", "Measured-image preparation")
    assert isinstance(dock, PrepareDock) and isinstance(dock.form, PrepareWidget)
    data, kwargs, _ = phase_layer()
    viewer.add_image(data, **kwargs)
    return viewer, dock.form


def click(widget, qtbot) -> None:
    widget.panel.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=20000)


def test_prepare_adds_a_new_layer_with_scale_and_the_replayable_record(preparer, qtbot, notes):
    viewer, widget = preparer
    source = viewer.layers["scan"]
    before = np.array(source.data)
    assert widget.image.value is source and widget.quantity.value == "phase"  # filled in from the metadata
    assert widget.cantilever["f0"].value == pytest.approx(70.0)  # kHz
    widget.align_rows.value = "median"
    widget.outliers.value = 6.0
    widget.level.value = "poly:2"
    widget.crop.value = "given"
    widget.crop_nm.value = "8, 10, 120, 200"
    widget.convert.value = "frequency_shift"
    widget.resample_nm.value = 8.0
    click(widget, qtbot)
    assert not notes.errors(), notes.errors()
    assert [layer.name for layer in viewer.layers] == ["scan", "scan prepared"]
    np.testing.assert_array_equal(source.data, before)  # the input layer is untouched
    layer = viewer.layers["scan prepared"]
    assert widget.new_layer.name == layer.name  # (napari hands the widget a proxy of the viewer, and of its layers)
    assert tuple(layer.scale) == pytest.approx((8.0, 8.0)), layer.scale
    meta = layer_data.mmrecon_metadata(layer)
    assert (meta["kind"], meta["quantity"], meta["unit"], meta["height"]) == ("image", "frequency_shift", "Hz", 20e-9)
    assert meta["pixel_size"] == [8e-9, 8e-9] and layer_data.pixel_size(layer) == pytest.approx((8e-9, 8e-9))
    steps = meta["preparation"]["steps"]
    assert [step["step"] for step in steps] == ["crop", "align_rows", "remove_outliers", "polynomial", "convert",
                                                "resample"]
    assert steps[0] == {"step": "crop", "origin": [8e-9, 10e-9], "size": [120e-9, 200e-9]}
    assert steps[2]["replaced"] == 1 and steps[4]["cantilever"] == {"f0": 70e3, "Q": 250.0}
    assert meta["preparation"]["input_pixel_size"] == list(PIXEL) and meta["preparation"]["input_quantity"] == "phase"
    replayed = prepare_image(before, PIXEL, steps, "phase", "deg")
    np.testing.assert_array_equal(layer.data, replayed.image)
    assert "remove_outliers (1 pixels)" in widget.summary.value


def test_crop_to_the_current_view_and_bad_input_are_notifications(preparer, qtbot, notes):
    viewer, widget = preparer
    assert widget.cantilever["k"].value == pytest.approx(2.8)
    viewer.add_image(np.zeros((8, 8)), name="bare")  # no metadata: the fields fall back to the defaults
    widget.image.value = viewer.layers["bare"]
    assert widget.quantity.value is None and widget.cantilever["k"].value == pytest.approx(3.0)
    widget.image.value = viewer.layers["scan"]
    widget.crop.value = "view"
    # a zoomed view, as the canvas sets it on a draw (none headless): rows 5 to 24, columns 10 to 33 in view
    viewer.layers["scan"].corner_pixels = np.array([[5, 10], [24, 33]])
    click(widget, qtbot)
    assert not notes.errors(), notes.errors()
    layer = viewer.layers["scan prepared"]
    np.testing.assert_array_equal(layer.data, viewer.layers["scan"].data[5:25, 10:34])
    steps = layer_data.mmrecon_metadata(layer)["preparation"]["steps"]
    assert steps == [{"step": "crop", "origin": [5 * PIXEL[0], 10 * PIXEL[1]], "size": [20 * PIXEL[0], 24 * PIXEL[1]]}]
    widget.crop.value = "given"
    widget.crop_nm.value = "0, 0, 500, 100"  # taller than the image
    click(widget, qtbot)
    widget.crop.value = None
    click(widget, qtbot)  # no step chosen
    widget.convert.value = "phase"
    widget.quantity.value = "frequency_shift"  # but the layer's unit is deg
    click(widget, qtbot)
    errors = notes.errors()
    assert len(errors) == 3 and all(error.startswith("Measured-image preparation: ") for error in errors)
    assert "step 1 (crop): crop rectangle rows 0:125" in errors[0] and "outside the image (40, 48)" in errors[0]
    assert "nothing to do: choose a levelling" in errors[1]
    assert "step 1 (convert): a frequency_shift in Hz is converted, but the image is in 'deg'" in errors[2]
    assert [layer.name for layer in viewer.layers] == ["scan", "bare", "scan prepared"]  # nothing more added
