"""The "Physics relaxation / fit" dock widget, driven as a user would: choose layers, set fields,
click Fit or Cancel, wait. Headless: run under ``xvfb-run -a``.

The target is the stray field Hz at 5 nm above a relaxed skyrmion in a 40 x 40 x 1 film of 1 nm
cells (Co/Pt-like material), made by the simulator's job so that its layer carries the
simulator's metadata; short fits start from the true magnetization so each takes seconds.
"""

import time

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication

import napari_mmrecon as mm
from napari_mmrecon.widgets.fit import FitDock, FitWidget
from napari_mmrecon.workflows import jobs, layer_data
from napari_mmrecon.workflows import simulate as simulation

GRID = mm.Grid(nx=40, ny=40, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu")
TRUE = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
TARGET = "Hz top 5 nm"


@pytest.fixture(scope="module")
def truth():
    """The relaxed skyrmion and the simulator's layer tuples of its Hz image at 5 nm."""
    m = mm.relax(mm.textures.skyrmion(GRID, radius=7e-9), GRID, TRUE, tol=1e-10)
    probe = simulation.Probe(heights=(5e-9,), outputs=("Hz",))
    result = jobs.run(simulation.simulate(m, GRID, TRUE, probe))
    return m, layer_data.simulation_layers(result, source="test")




@pytest.fixture
def fitter(make_napari_viewer, truth):
    """A docked fit widget with the target image and the true magnetization in the viewer."""
    m, images = truth
    viewer = make_napari_viewer()
    for data, kwargs, kind in images + layer_data.magnetization_layers(m, GRID, TRUE, name="m (truth)"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = FitWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget


def short_fit(widget):
    """Fit Ms and D from 5 % off, from the true magnetization, without bias: a few seconds."""
    widget.values["Ms"].value = 609.0  # kA/m, true 580
    widget.values["D"].value = 2.85  # mJ/m^2, true 3
    widget.fitted["A"].value = widget.fitted["Ku"].value = False
    widget.bias.value = "none"
    widget.start.value = widget.viewer.layers["m (truth)"]
    widget.max_iter.value = 6


def test_short_fit_end_to_end(fitter, qtbot, notes):
    viewer, widget = fitter
    # the target's metadata filled the measurement and the film
    assert widget.target.value is viewer.layers[TARGET]
    assert (widget.kind.value, widget.component.value, widget.side.value) == ("stray field", "z", "top")
    assert widget.height_nm.value == pytest.approx(5.0) and widget.thickness_nm.value == pytest.approx(1.0)
    short_fit(widget)
    inserted, updates = [], []

    def on_inserted(event):
        inserted.append(event.value.name)
        event.value.events.data.connect(lambda _: updates.append(event.value.name))

    viewer.layers.events.inserted.connect(on_inserted)
    widget.panel.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=60000)
    assert notes.errors() == []
    assert widget.panel.status.value.startswith("done")
    # each layer added once; the simulated image and the residual were updated in place as it went
    assert inserted == [f"{TARGET} simulated", f"{TARGET} residual", f"{TARGET} fitted m",
                        f"{TARGET} fitted m arrows"]
    assert updates.count(f"{TARGET} simulated") >= 2 and updates.count(f"{TARGET} residual") >= 2

    result = widget.result
    assert result.names == ("Ms", "D")
    assert result.values["Ms"] == pytest.approx(TRUE.Ms, rel=1e-3)
    assert result.values["D"] == pytest.approx(TRUE.D, rel=1e-3)
    simulated, residual = viewer.layers[f"{TARGET} simulated"], viewer.layers[f"{TARGET} residual"]
    np.testing.assert_allclose(simulated.data, result.simulated)
    np.testing.assert_allclose(residual.data, simulated.data - viewer.layers[TARGET].data, atol=1e-9)
    for layer in (simulated, residual):
        np.testing.assert_allclose(layer.scale, (1.0, 1.0))
        np.testing.assert_allclose(layer.translate, (0.5, 0.5))
        assert layer.colormap.name == "RdBu_r" and layer.contrast_limits[0] == pytest.approx(-layer.contrast_limits[1])
    meta = simulated.metadata["mmrecon"]
    assert (meta["quantity"], meta["unit"], meta["target"]) == ("Hz", "A/m", TARGET)
    assert residual.metadata["mmrecon"]["quantity"] == "residual"
    record = meta["fit"]
    assert record["values"] == result.values and record["uncertainty"] == result.uncertainty
    assert record["units"] == {"Ms": "A/m", "D": "J/m^2"} and record["converged"] == result.converged
    assert meta["material"]["D"] == pytest.approx(result.values["D"]) and meta["material"]["Ku"] == TRUE.Ku
    m, grid, material = layer_data.read_magnetization(viewer.layers[f"{TARGET} fitted m arrows"])
    np.testing.assert_allclose(m, result.m)
    assert grid == GRID and material["Ms"] == pytest.approx(result.values["Ms"])
    assert viewer.layers[f"{TARGET} fitted m"].metadata["mmrecon"]["fit"]["values"] == result.values
    # the table in display units, and the SI table on the clipboard
    assert widget.table.row_headers == ("Ms", "D")
    row = widget.table.data.to_list()
    assert float(row[0][0]) == pytest.approx(580.0, rel=1e-3) and row[0][2:] == ["kA/m", "609"]
    assert float(row[1][0]) == pytest.approx(3.0, rel=1e-3) and row[1][2:] == ["mJ/m²", "2.85"]
    assert float(row[0][1]) > 0 and result.message in widget.summary.value
    widget.copy_button.native.click()
    assert QApplication.clipboard().text() == result.table() and "Ms\t" in result.table()


def test_cancel_stops_within_a_second_and_keeps_the_best_state(fitter, qtbot, notes):
    viewer, widget = fitter
    for key, factor in (("Ms", 1.3), ("A", 0.7), ("Ku", 1.3), ("D", 0.7)):  # a long four-parameter fit
        widget.values[key].value *= factor
    widget.panel.run_button.native.click()
    qtbot.waitUntil(lambda: f"{TARGET} simulated" in viewer.layers, timeout=60000)
    assert widget.panel.is_running and widget.panel.status.value.startswith("fit, biased stage: iteration")
    start = time.perf_counter()
    widget.panel.cancel_button.native.click()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=5000)
    assert time.perf_counter() - start < 1.0
    assert widget.panel.status.value.startswith("cancelled: kept the result so far")
    assert notes.errors() == []
    result = widget.result
    assert result.cancelled and result.message == "cancelled" and len(result.loss_history) >= 1
    np.testing.assert_allclose(viewer.layers[f"{TARGET} simulated"].data, result.simulated)
    assert viewer.layers[f"{TARGET} simulated"].metadata["mmrecon"]["fit"]["cancelled"] is True
    assert f"{TARGET} fitted m arrows" in viewer.layers and widget.table.row_headers == ("Ms", "A", "Ku", "D")


def test_bad_input_gives_a_notification_and_no_layer(fitter, qtbot, notes):
    viewer, widget = fitter
    holey = np.ones((40, 40))
    holey[3, 4] = np.nan
    viewer.add_image(holey, name="holey", scale=(1, 1), units=("nm", "nm"))
    viewer.add_image(np.random.default_rng(0).standard_normal((40, 40)), name="no scale")
    small = mm.Grid(nx=20, ny=20, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu")
    for data, kwargs, kind in layer_data.magnetization_layers(mm.textures.skyrmion(small, radius=5e-9), small,
                                                              name="small m"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    cases = [
        (widget.target, viewer.layers["holey"], "target 'holey': target contains 1 NaN or inf pixels"),
        (widget.target, viewer.layers["no scale"], "layer 'no scale' has no physical pixel size"),
        (widget.start, viewer.layers["small m"],
         "the starting magnetization has 20 x 20 x 1 cells (x, y, z) but the target's film needs 40 x 40 x 1"),
        (widget.values["Ms"], 2e4, "Ms = 20000000.0 A/m is outside the physical range"),
        (widget.values["A"], 1e5, "A = 1e-07 J/m is outside the physical range"),
        (widget.height_nm, 0.0, "height"),
        (widget.kind, "MFM", "the target is in A/m but an MFM frequency_shift is in Hz"),
        (widget.relax_tol, "zero", "relaxation stop (torque) must be a number, got 'zero'"),
        (widget.thickness_nm, 0.0, "film thickness must be > 0 nm"),
        (widget.fitted["Ms"], False, "choose at least one parameter to fit"),  # with the others unchecked
    ]
    for box in ("A", "Ku", "D"):
        widget.fitted[box].value = False
    before = [layer.name for layer in viewer.layers]
    for field, value, message in cases:
        good = field.value
        field.value = value
        notes.clear()
        assert not widget.panel.run()
        assert [layer.name for layer in viewer.layers] == before
        assert len(notes.errors()) == 1 and message in notes.errors()[0], (message, notes.errors())
        assert notes.errors()[0].startswith("Physics relaxation / fit: ")
        assert widget.panel.status.value.startswith("failed") and widget.result is None
        field.value = good


def test_no_target_is_a_message(make_napari_viewer, notes):
    widget = FitWidget(make_napari_viewer())
    assert not widget.panel.run()
    assert "no target image" in notes.errors()[0]


def test_mfm_target_fills_tip_and_cantilever(make_napari_viewer, truth):
    m, _ = truth
    probe = simulation.Probe(heights=(12e-9,), sides=("bottom",), outputs=("phase",),
                             tip=mm.PointMonopoleTip(charge=-2e-9), cantilever=mm.Cantilever(k=2.0, f0=60e3, Q=150))
    viewer = make_napari_viewer()
    for data, kwargs, kind in layer_data.simulation_layers(jobs.run(simulation.simulate(m, GRID, TRUE, probe))):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = FitWidget(viewer)
    assert (widget.kind.value, widget.quantity.value, widget.side.value) == ("MFM", "phase", "bottom")
    assert (widget.tip.value, widget.tip_charge.value) == ("point monopole", "-2e-09")
    assert (widget.k.value, widget.f0_kHz.value, widget.Q.value) == (2.0, 60.0, 150.0)
    assert widget.height_nm.value == pytest.approx(12.0)
    shown = [w.native.isVisibleTo(widget.native) for w in (widget.component, widget.tip_charge, widget.tip_moment)]
    assert shown == [False, True, False]


def test_plugin_menu_docks_the_fit_widget(make_napari_viewer, truth):
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-mmrecon", "Physics relaxation / fit")
    assert isinstance(dock, FitDock) and isinstance(dock.form, FitWidget)
    m, images = truth
    for data, kwargs, kind in images + layer_data.magnetization_layers(m, GRID, TRUE, name="m"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    assert [c.name for c in dock.form.target.choices] == [TARGET]
    assert dock.form.start.choices == (None, viewer.layers["m"], viewer.layers["m arrows"])
