"""The "Tip calibration" dock widget, driven as a user would: choose the reference image and its
magnetization, click Calibrate, wait, save the calibration and load it in another dock. Headless:
run under ``xvfb-run -a``.

The reference: the MFM frequency shift of a skyrmion texture in a 32 x 32 film of 2 nm cells, made
by the simulator's job with a point dipole of known moment sitting a known height above the nominal
lift height, plus an image offset and Gaussian noise of known level. The calibration must find the
moment and the height offset within 3 of its stated standard deviations, which must be small.
"""

import json

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.backend.inverse.tip_calibration import TipCalibration
from napari_mmrecon.widgets import file_dialogs
from napari_mmrecon.widgets.fit import FitWidget
from napari_mmrecon.widgets.simulator import SimulatorWidget
from napari_mmrecon.widgets.tip_calibration import TipCalibrationDock, TipCalibrationWidget
from napari_mmrecon.workflows import jobs, layer_data
from napari_mmrecon.workflows import simulate as simulation

GRID = mm.Grid(nx=32, ny=32, nz=1, dx=2e-9, dy=2e-9, dz=1e-9, device="cpu")
MATERIAL = mm.Material(Ms=5e5)
MOMENT = 3e-16
LIFT = 10e-9
OFFSET = 3e-9
"""The tip sits this far above the nominal lift height."""
CANTILEVER = mm.Cantilever(k=2.0, f0=60e3, Q=150.0)
NOISE = 0.01
"""Noise standard deviation, relative to the image's."""


@pytest.fixture(scope="module")
def reference():
    """The known magnetization and the simulator's layer tuple of its noisy MFM image."""
    m = mm.textures.skyrmion(GRID, radius=12e-9)
    probe = simulation.Probe(heights=(LIFT,), outputs=("frequency_shift",), tip=mm.PointDipoleTip(MOMENT),
                             cantilever=CANTILEVER, tip_height_offset=OFFSET)
    ((image, kwargs, kind),) = layer_data.simulation_layers(jobs.run(simulation.simulate(m, GRID, MATERIAL, probe)))
    noisy = image + 0.2 * image.std() + NOISE * image.std() * np.random.default_rng(3).standard_normal(image.shape)
    return m, (noisy, {**kwargs, "name": "reference"}, kind)


@pytest.fixture
def calibrator(make_napari_viewer, reference):
    m, (image, kwargs, _) = reference
    viewer = make_napari_viewer()
    viewer.add_image(image, **kwargs)
    for data, layer_kwargs, kind in layer_data.magnetization_layers(m, GRID, MATERIAL, name="m"):
        getattr(viewer, f"add_{kind}")(data, **layer_kwargs)
    _, dock = viewer.window.add_plugin_dock_widget("napari-mmrecon", "Tip calibration")
    assert isinstance(dock, TipCalibrationDock) and isinstance(dock.form, TipCalibrationWidget)
    return viewer, dock.form


def click(widget, qtbot) -> None:
    widget.panel.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=30000)


def test_calibrate_save_and_load_in_the_fit_dock(calibrator, qtbot, notes, tmp_path, monkeypatch):
    viewer, widget = calibrator
    # the reference's metadata and the magnetization's material filled the fields
    assert widget.reference.value is viewer.layers["reference"] and widget.magnetization.value is viewer.layers["m"]
    assert (widget.lift_nm.value, widget.quantity.value, widget.side.value) == (pytest.approx(10.0),
                                                                                 "frequency_shift", "top")
    assert [box.value for box in widget.cantilever.values()] == [2.0, 60.0, 150.0]
    assert widget.Ms.value == 500.0 and widget.save_button.enabled is False
    click(widget, qtbot)
    assert notes.errors() == [] and widget.panel.status.value.startswith("done")
    calibration = widget.result
    sigma = calibration.uncertainty
    for value, true, error in ((calibration.dipole.moment, MOMENT, sigma["moment"]),
                               (calibration.height_offset, OFFSET, sigma["height_offset"])):
        assert 0 < error < 1e-2 * true and abs(value - true) < 3 * error, (value, true, error)
    table = widget.table.value
    assert list(table["index"]) == ["dipole moment", "height offset", "image offset"]
    assert table["data"][0][2] == "A·m²" and table["data"][1][2] == "nm" and table["data"][2][2] == "Hz"
    assert float(table["data"][1][0]) == pytest.approx(calibration.height_offset * 1e9, rel=1e-4)
    assert "residual RMS" in widget.summary.value
    # Save calibration...: the dialog's path is written; an existing file is replaced only through the dialog
    path = tmp_path / "tip.json"
    monkeypatch.setattr(file_dialogs, "save_path", lambda *args: path)
    widget.save_button.native.click()
    assert widget.saved == path and mm.load_tip_calibration(path) == calibration
    before = path.read_text()
    assert widget.save(path) is False and path.read_text() == before
    assert widget.save(tmp_path / "tip.txt") is False and not (tmp_path / "tip.txt").exists()
    refused = notes.errors()
    assert len(refused) == 2 and "tip.json exists: not replaced" in refused[0] and "ending in .json" in refused[1]
    # the fit dock loads it: tip, height offset and cantilever; its MFM tip sits at lift + offset
    fit = FitWidget(viewer)
    viewer.window.add_dock_widget(fit)
    # the simulated reference says where its tip was: the nominal lift and the offset
    assert (fit.kind.value, fit.height_nm.value) == ("MFM", pytest.approx(LIFT * 1e9))
    assert fit.tip_fields.height_offset_nm.value == pytest.approx(OFFSET * 1e9)
    assert fit.measurement_fields.read().lift_height == pytest.approx(LIFT + OFFSET)
    fit.tip_moment.value, fit.tip_fields.height_offset_nm.value, fit.k.value = "1e-16", 0.0, 3.0
    monkeypatch.setattr(file_dialogs, "open_path", lambda *args: path)
    fit.tip_fields.load_button.native.click()
    assert fit.tip_fields.height_offset_nm.value == pytest.approx(calibration.height_offset * 1e9, abs=5e-4)
    assert (fit.k.value, fit.f0_kHz.value, fit.Q.value) == (2.0, 60.0, 150.0)
    measurement = fit.measurement_fields.read()
    assert measurement.tip.moment == pytest.approx(calibration.dipole.moment, rel=1e-5)
    assert measurement.lift_height == pytest.approx(fit.height_nm.value * 1e-9 + calibration.height_offset, abs=5e-13)
    # and the simulator: its MFM images are made with the tip at each height plus the offset
    simulator = SimulatorWidget(viewer)
    simulator.tip_fields.load_button.native.click()
    probe = simulator._probe()
    assert probe.tip.moment == pytest.approx(calibration.dipole.moment, rel=1e-5)
    assert probe.tip_height_offset == pytest.approx(calibration.height_offset, abs=5e-13)


def test_bad_input_is_one_message_in_the_dock(calibrator, notes, tmp_path, monkeypatch):
    viewer, widget = calibrator
    layer = viewer.layers["reference"]
    viewer.layers.remove("m")
    viewer.layers.remove("m arrows")
    assert widget.magnetization.value is None
    widget.panel.run_button.native.click()
    assert widget.panel.status.value.startswith("failed: no reference magnetization") and not widget.panel.is_running
    m, _ = layer_data.magnetization_layers(np.asarray(mm.textures.uniform(GRID)), GRID, MATERIAL, name="m2")
    viewer.add_image(m[0], **m[1])
    widget.magnetization.value = viewer.layers["m2"]
    data = layer.data.copy()
    data[3, 4] = np.nan
    layer.data = data
    widget.panel.run_button.native.click()
    assert widget.panel.status.value == "failed: reference 'reference': contains 1 NaN or inf pixels"
    layer.data = data[:, :16]
    widget.panel.run_button.native.click()
    assert "reference 'reference' has 16 x 32 pixels of 2 x 2 nm but the reference magnetization has 32 x 32 cells" \
        in widget.panel.status.value
    assert len(notes.errors()) == 3 and widget.result is None and widget.save(tmp_path / "x.json") is False
    # a calibration of a dipole and a monopole fills both fields and reads back as the combined tip
    both = TipCalibration(model="both", dipole=mm.PointDipoleTip(1e-16), monopole=mm.PointMonopoleTip(1e-9),
                          height_offset=1e-9, lift_height=LIFT)
    path = both.save(tmp_path / "both.json")
    assert json.loads(path.read_text())["model"] == "both"
    fit = FitWidget(viewer)
    monkeypatch.setattr(file_dialogs, "open_path", lambda *args: path)
    fit.tip_fields.load_button.native.click()
    assert len(notes.errors()) == 4 and fit.tip.value == "point dipole + monopole"
    tip, _ = fit.tip_fields.read()
    assert isinstance(tip, mm.PointDipoleMonopoleTip)
    assert tip.dipole.moment == 1e-16 and tip.monopole.charge == 1e-9 and fit.tip_fields.height_offset() == 1e-9
