"""An instrument file from drag-in to texture in napari, driven as a user would: open the .gwy scan
with the plugin's reader, convert its phase to a frequency shift in the preparation dock, then fit
the image's unknown gain and offset in the fit dock and reconstruct the texture with the offset free
in the reconstruction dock. Headless: run under ``xvfb-run -a``.

The scan (``instrument_scan``): the bundled single skyrmion's MFM phase at 5 nm lift plus a constant
phase offset, as a Gwyddion file states it: no lift height, no cantilever.
"""

import numpy as np
import pytest

import napari_mmrecon as mm
from instrument_scan import LIFT, write_skyrmion_scan
from napari_mmrecon.widgets.fit import FitWidget
from napari_mmrecon.widgets.prepare import PrepareDock
from napari_mmrecon.widgets.reconstruct import ReconstructWidget
from napari_mmrecon.workflows import layer_data

OFFSET_DEG = 40.0
"""The phase offset the scan carries (the image's standard deviation is about 300 deg)."""


def run(widget, qtbot, timeout_ms: int) -> None:
    widget.panel.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=timeout_ms)


def measured_as_mfm(fields) -> None:
    """What the user types for a file without them: an MFM frequency shift at the lift height."""
    fields.kind.value = "MFM"
    fields.quantity.value = "frequency_shift"
    fields.height_nm.value = LIFT * 1e9
    fields.side.value = "top"


def test_drag_in_prepare_fit_and_reconstruct(make_napari_viewer, qtbot, notes, tmp_path):
    path = tmp_path / "skyrmion.gwy"
    m_true, grid, material, phase = write_skyrmion_scan(path, OFFSET_DEG)
    viewer = make_napari_viewer()
    layers = viewer.open(path, plugin="napari-mmrecon")
    assert [layer.name for layer in layers] == ["skyrmion MFM phase", "skyrmion Height"]
    scan = viewer.layers["skyrmion MFM phase"]
    # preparation: the phase (deg) to a frequency shift (Hz) with the declared cantilever
    _, dock = viewer.window.add_plugin_dock_widget("napari-mmrecon", "Measured-image preparation")
    assert isinstance(dock, PrepareDock)
    prepare = dock.form
    prepare.image.value = scan
    prepare.convert.value = "frequency_shift"
    run(prepare, qtbot, 20000)
    assert notes.errors() == []
    prepared = viewer.layers["skyrmion MFM phase prepared"]
    meta = layer_data.mmrecon_metadata(prepared)
    assert (meta["quantity"], meta["unit"]) == ("frequency_shift", "Hz")
    assert [step["step"] for step in meta["preparation"]["steps"]] == ["convert"]
    cantilever = mm.Cantilever()
    offset_hz = float(mm.frequency_shift_from_phase(np.float64(OFFSET_DEG), cantilever))
    expected = np.asarray(mm.frequency_shift_from_phase(phase, cantilever)) + offset_hz
    np.testing.assert_allclose(prepared.data, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    # fit dock: the image's gain and offset at the known material
    fit = FitWidget(viewer)
    viewer.window.add_dock_widget(fit)
    fit.target.value = prepared
    measured_as_mfm(fit.measurement_fields)
    fit.material_fields.show(material.to_dict())
    for name, box in fit.fitted.items():
        box.value = name in ("gain", "offset")
    run(fit, qtbot, 120000)
    assert notes.errors() == []
    assert fit.result.values["gain"] == pytest.approx(1.0, abs=2e-3)
    assert fit.result.values["offset"] == pytest.approx(offset_hz, rel=2e-3)
    # reconstruction dock: the texture, the offset free
    rec = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(rec)
    rec.targets.value = [prepared]
    measured_as_mfm(rec.measurement_fields)
    rec.material_fields.show(material.to_dict())
    rec.fitted["offset"].value = True
    rec.max_iter.value = 12
    run(rec, qtbot, 180000)
    assert notes.errors() == []
    result = rec.result
    # the offset is known as well as the image is explained: to the residual's goal (1 % of its RMS)
    assert result.converged and abs(result.offset - offset_hz) < np.sqrt(result.misfit_goal * np.mean(expected ** 2))
    metrics = mm.texture_metrics(result.m, m_true, grid)
    assert metrics.angle_error < 1.0 and metrics.mz_correlation > 0.999
    arrows = viewer.layers["skyrmion MFM phase prepared reconstructed m arrows"]
    assert arrows.scale[-1] == pytest.approx(1.0) and "image offset" in rec.summary.value
