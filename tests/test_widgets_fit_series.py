"""The fit dock's field-series mode, driven as a user would: tick "field series", choose the images,
type their applied fields, click Fit, wait. Headless: run under ``xvfb-run -a``.

The series: Hz 5 nm above a skyrmion in a 32 x 32 x 1 film of 1 nm cells relaxed at 0 and at
30 kA/m, made by the simulator's job so that the layers carry its metadata. The fit starts Ku 5 %
off from the zero-field state; noise-free images are explained by the true Ku alone.
"""

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.backend.physics.grid import MU0
from napari_mmrecon.widgets.fit import FitWidget
from napari_mmrecon.workflows import jobs, layer_data
from napari_mmrecon.workflows import simulate as simulation

GRID = mm.Grid(nx=32, ny=32, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu")
TRUE = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
FIELDS = (0.0, 30e3)
"""The applied fields H_z (A/m) of the two images."""


@pytest.fixture(scope="module")
def series():
    """The zero-field state and the simulator's layer tuples ``"hz <i>"`` of the two images."""
    m = mm.relax(mm.textures.skyrmion(GRID, radius=7e-9), GRID, TRUE, tol=1e-10)
    probe = simulation.Probe(heights=(5e-9,), outputs=("Hz",))
    images = []
    for i, h in enumerate(FIELDS):
        state = mm.relax(m, GRID, TRUE, external_field=(0.0, 0.0, h), tol=1e-10)
        ((data, kwargs, kind),) = layer_data.simulation_layers(jobs.run(simulation.simulate(state, GRID, TRUE, probe)))
        images.append((data, {**kwargs, "name": f"hz {i}"}, kind))
    return m, images


@pytest.fixture
def fitter(make_napari_viewer, series):
    m, images = series
    viewer = make_napari_viewer()
    for data, kwargs, kind in images + layer_data.magnetization_layers(m, GRID, TRUE, name="m (zero field)"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = FitWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.series.value = True
    return viewer, widget


def fields_text(fields) -> str:
    """The fields as typed: mu0 H in mT."""
    return ", ".join(f"{MU0 * h * 1e3:.12g}" for h in fields)


def test_field_series_fit_shows_values_and_per_image_layers(fitter, qtbot, notes):
    viewer, widget = fitter
    shown = [w.native.isVisibleTo(widget.native) for w in (widget.target, widget.series_targets, widget.fields_mT,
                                                           widget.optimizer)]
    assert shown == [False, True, True, False]
    widget.series_targets.value = [viewer.layers["hz 1"], viewer.layers["hz 0"]]
    assert widget.series_order.value == "fields in the order hz 0, hz 1"  # the layer list's order
    assert (widget.kind.value, widget.component.value, widget.height_nm.value) == ("stray field", "z",
                                                                                    pytest.approx(5.0))
    widget.fields_mT.value = fields_text(FIELDS)
    widget.values["Ku"].value = 0.84  # MJ/m^3, true 0.8
    for name, box in widget.fitted.items():
        box.value = name == "Ku"
    widget.bias.value = "none"
    widget.start.value = viewer.layers["m (zero field)"]
    widget.max_iter.value = 6
    widget.panel.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=60000)
    assert notes.errors() == [] and widget.panel.status.value.startswith("done")
    result = widget.result
    assert result.values["Ku"] == pytest.approx(TRUE.Ku, rel=1e-4)
    assert list(widget.table.value["index"]) == ["Ku"] and float(widget.table.value["data"][0][0]) == \
        pytest.approx(result.values["Ku"] * 1e-6, rel=1e-4)
    assert "'hz 0' at 0 mT: misfit" in widget.summary.value and "'hz 1' at 37.7 mT" in widget.summary.value
    for i, h in enumerate(FIELDS):
        simulated = viewer.layers[f"hz {i} series simulated"]
        target = viewer.layers[f"hz {i}"].data
        np.testing.assert_allclose(simulated.data, target, atol=1e-3 * np.abs(target).max())
        assert tuple(simulated.scale) == pytest.approx((1.0, 1.0))  # nm
        record = layer_data.mmrecon_metadata(simulated)["fit"]
        assert record["applied_field"] == [0.0, 0.0, pytest.approx(h)] and record["values"]["Ku"] == result.values["Ku"]
        m, grid, _ = layer_data.read_magnetization(viewer.layers[f"hz {i} series fitted m"])
        assert grid.shape == GRID.shape and np.allclose(m, result.m[i])
        assert f"hz {i} series residual" in viewer.layers


def test_series_input_errors_are_messages(fitter, notes):
    viewer, widget = fitter
    widget.series_targets.value = []
    widget.panel.run_button.native.click()
    assert widget.panel.status.value.startswith("failed: no series images")
    widget.series_targets.value = [viewer.layers["hz 0"], viewer.layers["hz 1"]]
    widget.fields_mT.value = "0"
    widget.panel.run_button.native.click()
    assert widget.panel.status.value == "failed: 1 applied field for 2 images: give one per image, in their order"
    widget.fields_mT.value = fields_text(FIELDS)
    widget.bias.value = "optimize"
    widget.panel.run_button.native.click()
    assert widget.panel.status.value == "failed: bias 'optimize': a field series takes bias none or target"
    widget.bias.value = "none"
    layer = viewer.layers["hz 1"]
    data = layer.data.copy()
    data[0, 0] = np.nan
    layer.data = data
    widget.panel.run_button.native.click()
    assert widget.panel.status.value == "failed: image 'hz 1': target contains 1 NaN or inf pixels"
    assert len(notes.errors()) == 4 and not widget.panel.is_running and widget.result is None
