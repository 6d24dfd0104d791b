"""The simulator dock widget and its job runner, driven as a user would: set fields, click, wait.

Headless: run under ``xvfb-run -a``. Grids are tiny so that the whole module takes seconds.
"""

import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from magicgui.widgets import CheckBox, FloatSpinBox, LineEdit, SpinBox
from napari.utils.notifications import NotificationSeverity

import napari_mmrecon as mm
from napari_mmrecon.widgets.dock import MIN_FORM_HEIGHT
from napari_mmrecon.widgets.fields import field_for, shown, si
from napari_mmrecon.widgets.runner import JobPanel, Task
from napari_mmrecon.widgets.section import Section
from napari_mmrecon.widgets.simulator import SimulatorWidget
from napari_mmrecon.workflows import layer_data
from napari_mmrecon.workflows.jobs import Partial, Progress
from napari_mmrecon.workflows.options import OPTIONS


@pytest.fixture
def simulator(make_napari_viewer):
    """A docked simulator on a small, fast texture: a 24 x 24 x 1 film of 1 nm cells."""
    viewer = make_napari_viewer()
    widget = SimulatorWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.nx.value = widget.ny.value = 24
    widget.radius_nm.value = 5.0
    widget.tol.value = "3e-3"
    return viewer, widget


def click_and_wait(qtbot, panel, timeout=60.0):
    panel.run_button.native.click()
    qtbot.waitUntil(lambda: not panel.is_running, timeout=int(timeout * 1000))


def test_texture_relaxed_then_measured_on_both_sides(simulator, qtbot, notes):
    viewer, widget = simulator
    widget.heights.value = "10, 20"
    widget.side.value = "both"
    widget.outputs["|H|"].value = True
    widget.outputs["phase"].value = True
    click_and_wait(qtbot, widget.panel)
    assert notes.errors() == []
    assert widget.panel.status.value.startswith("done")
    names = [layer.name for layer in viewer.layers]
    assert names[:2] == ["skyrmion relaxed", "skyrmion relaxed arrows"]
    expected = {f"{q} {s} {h} nm" for q in ("Hz", "|H|", "MFM df", "MFM phase") for s in ("top", "bottom")
                for h in (10, 20)}
    assert set(names[2:]) == expected

    m, grid, material = layer_data.read_magnetization(viewer.layers["skyrmion relaxed arrows"])
    assert grid == mm.Grid(nx=24, ny=24, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu")
    assert material["Ms"] == pytest.approx(5.8e5) and material["D"] == pytest.approx(3e-3)
    assert material["A"] == pytest.approx(1.5e-11) and material["Ku"] == pytest.approx(8e5)
    relax = viewer.layers["skyrmion relaxed"].metadata["mmrecon"]["relax"]
    assert relax["converged"] and relax["max_torque"] < 3e-3

    hz = viewer.layers["Hz bottom 20 nm"]
    np.testing.assert_allclose(hz.scale, (1.0, 1.0))
    np.testing.assert_allclose(hz.translate, (0.5, 0.5))
    assert [str(u) for u in hz.units] == ["nanometer", "nanometer"]
    assert hz.colormap.name == "RdBu_r" and hz.contrast_limits[0] == pytest.approx(-hz.contrast_limits[1])
    meta = hz.metadata["mmrecon"]
    assert (meta["quantity"], meta["unit"], meta["side"], meta["height"]) == ("Hz", "A/m", "bottom", 20e-9)
    assert meta["material"]["Ms"] == pytest.approx(5.8e5) and meta["relaxed"] is True
    assert meta["cantilever"] == {"k": 3.0, "f0": 75e3, "Q": 200.0} and meta["tip"]["moment"] == 1e-16
    np.testing.assert_allclose(hz.data, mm.stray_field(m, grid, 5.8e5, 20e-9, side="bottom")[..., 2], rtol=1e-10,
                               atol=1e-12)
    df = viewer.layers["MFM df top 10 nm"]
    assert df.metadata["mmrecon"]["unit"] == "Hz"
    np.testing.assert_allclose(df.data, mm.mfm_frequency_shift(m, grid, 5.8e5, 10e-9), rtol=1e-10, atol=1e-12)
    assert viewer.layers["|H| top 10 nm"].colormap.name == "magma"
    assert viewer.layers["MFM phase top 10 nm"].metadata["mmrecon"]["unit"] == "deg"


def test_magnetization_layer_gives_grid_and_material(simulator, qtbot, notes):
    viewer, widget = simulator
    grid = mm.Grid(nx=24, ny=20, nz=1, dx=2e-9, dy=2e-9, dz=1.5e-9, device="cpu")
    m = mm.textures.skyrmion(grid, radius=8e-9)
    material = mm.Material(Ms=4e5, A=1e-11, Ku=6e5, D=2e-3)
    for data, kwargs, kind in layer_data.magnetization_layers(m, grid, material, name="state"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    viewer.add_image(np.zeros((4, 4)), name="plain")  # offered after the magnetization layers
    assert [c.name for c in widget.layer.choices] == ["state", "state arrows", "plain"]
    widget.source.value = "layer"  # picks the first magnetization layer and its material
    assert widget.layer.value is viewer.layers["state"]
    assert widget.material["Ms"].value == pytest.approx(400.0)  # kA/m
    widget.layer.value = viewer.layers["state arrows"]
    assert widget.material["Ku"].value == pytest.approx(0.6)  # MJ/m^3
    widget.relax.value = False
    widget.heights.value = "15"
    click_and_wait(qtbot, widget.panel)
    assert notes.errors() == []
    assert [layer.name for layer in viewer.layers] == ["state", "state arrows", "plain", "Hz top 15 nm",
                                                       "MFM df top 15 nm"]
    hz = viewer.layers["Hz top 15 nm"]
    np.testing.assert_allclose(hz.scale, (2.0, 2.0))
    np.testing.assert_allclose(hz.translate, (1.0, 1.0))
    assert hz.metadata["mmrecon"]["grid"]["dz"] == 1.5e-9 and hz.metadata["mmrecon"]["relaxed"] is False
    np.testing.assert_allclose(hz.data, mm.stray_field(m, grid, 4e5, 15e-9)[..., 2], rtol=1e-10, atol=1e-12)


def test_mz_image_without_scale_needs_a_pixel_size(simulator, qtbot, notes):
    viewer, widget = simulator
    mz = np.where(np.hypot(*np.mgrid[-8:8, -8:8]) < 4, -1.0, 1.0)
    viewer.add_image(mz, name="domains")
    widget.source.value = "layer"
    widget.layer.value = viewer.layers["domains"]
    widget.relax.value = False
    widget.outputs["frequency_shift"].value = False
    click_and_wait(qtbot, widget.panel)
    assert len(viewer.layers) == 1
    assert any("'domains' has no physical pixel size" in message for message in notes.errors())
    widget.pixel_nm.value = 2.0
    click_and_wait(qtbot, widget.panel)
    assert [layer.name for layer in viewer.layers] == ["domains", "Hz top 10 nm", "Hz top 20 nm"]
    np.testing.assert_allclose(viewer.layers["Hz top 10 nm"].scale, (2.0, 2.0))


def test_nan_image_is_refused(simulator, qtbot, notes):
    viewer, widget = simulator
    mz = np.ones((8, 8))
    mz[3, 4] = np.nan
    viewer.add_image(mz, name="holey", scale=(2, 2))
    widget.source.value = "layer"
    widget.layer.value = viewer.layers["holey"]
    click_and_wait(qtbot, widget.panel)
    assert len(viewer.layers) == 1
    assert notes.errors() == ["Stray field / MFM simulator: layer 'holey' contains 1 NaN or inf values"]


BAD_FIELDS = [
    ("Ms", -100.0, "Material Ms must be >= 0"),
    ("Ms", 0.0, "Ms must be > 0 A/m"),
    ("heights", "10, 0", "heights (nm) must be a positive finite number, got '0'"),
    ("heights", "ten", "heights (nm) must be a number, got 'ten'"),
    ("nx", 100_000, "too large"),
    ("cell_nm", 0.0, "cell size and film thickness must be > 0 nm"),
    ("tip_moment", "-1e-16", "tip moment (A·m²) must be a positive finite number"),
    ("k", -3.0, "Cantilever k (N/m) must be a positive finite number"),
    ("tol", "0", "stop at max torque must be a positive finite number"),
]


def test_absurd_parameters_give_a_message_and_no_layer(simulator, qtbot, notes):
    viewer, widget = simulator
    for field, value, message in BAD_FIELDS:
        target = widget.material[field] if field in widget.material else getattr(widget, field)
        good = target.value
        target.value = value
        notes.clear()
        click_and_wait(qtbot, widget.panel)
        assert len(viewer.layers) == 0
        assert len(notes.errors()) == 1 and message in notes.errors()[0], (field, notes.errors())
        assert not widget.panel.is_running and widget.panel.status.value.startswith("failed")
        target.value = good
    notes.clear()
    widget.source.value = "layer"  # with no layer in the viewer
    click_and_wait(qtbot, widget.panel)
    assert len(viewer.layers) == 0 and "no layer to simulate" in notes.errors()[0]


def test_corrupt_ovf_file_is_named(simulator, qtbot, notes, tmp_path):
    viewer, widget = simulator
    bad = tmp_path / "broken.ovf"
    bad.write_text("# OOMMF OVF 2.0\n# Segment count: 1\n# Begin: Segment\n")
    widget.source.value = "OVF file"
    widget.ovf_path.value = bad  # choosing it already reports the problem
    click_and_wait(qtbot, widget.panel)
    assert len(viewer.layers) == 0
    assert len(notes.errors()) == 2 and all("broken.ovf" in message for message in notes.errors())


def test_ovf_file_fills_material_and_is_simulated(simulator, qtbot, notes, tmp_path):
    viewer, widget = simulator
    grid = mm.Grid(nx=16, ny=16, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
    m = mm.textures.skyrmion(grid, radius=4e-9)
    path = tmp_path / "omf_style.ovf"
    mm.write_ovf(path, 7e5 * m, grid, title="M", value_units="A/m")  # OOMMF writes M in A/m
    widget.source.value = "OVF file"
    widget.ovf_path.value = path
    assert widget.material["Ms"].value == pytest.approx(700.0)
    widget.relax.value = False
    widget.outputs["frequency_shift"].value = False
    click_and_wait(qtbot, widget.panel)
    assert notes.errors() == []
    assert [layer.name for layer in viewer.layers] == ["omf_style", "omf_style arrows", "Hz top 10 nm",
                                                       "Hz top 20 nm"]
    np.testing.assert_allclose(viewer.layers["Hz top 10 nm"].data, mm.stray_field(m, grid, 7e5, 10e-9)[..., 2],
                               rtol=1e-10, atol=1e-12)


def long_relaxation(widget):
    """A relaxation that would run for minutes: a random state, an unreachable tolerance."""
    widget.texture.value = "random"
    widget.nx.value = widget.ny.value = 48
    widget.tol.value = "1e-14"


def test_cancel_stops_a_long_run_within_a_second(simulator, qtbot, notes):
    viewer, widget = simulator
    long_relaxation(widget)
    widget.panel.run_button.native.click()
    qtbot.waitUntil(lambda: widget.panel.status.value.startswith("relaxing: iteration"), timeout=30000)
    qtbot.wait(300)
    assert widget.panel.is_running
    start = time.perf_counter()
    widget.panel.cancel_button.native.click()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=5000)
    assert time.perf_counter() - start < 1.0
    assert widget.panel.status.value == "cancelled"
    assert len(viewer.layers) == 0 and notes.errors() == []
    # the widget is ready again
    widget.texture.value = "uniform"
    widget.tol.value = "1e-3"
    click_and_wait(qtbot, widget.panel)
    assert len(viewer.layers) == 6


def test_second_click_while_running_is_refused(simulator, qtbot, notes):
    viewer, widget = simulator
    long_relaxation(widget)
    widget.panel.run_button.native.click()
    assert widget.panel.is_running
    widget.panel.run_button.native.click()
    warnings = [n.message for n in notes if n.severity == NotificationSeverity.WARNING]
    assert warnings == ["Stray field / MFM simulator is already running: wait for it to finish or press Cancel"]
    widget.panel.cancel()
    qtbot.waitUntil(lambda: not widget.panel.is_running, timeout=5000)


def test_fields_follow_the_source_and_the_tip(simulator):
    _, widget = simulator

    def shown(*fields):
        return [field.native.isVisibleTo(widget.native) for field in fields]

    assert shown(widget.texture, widget.nx, widget.layer) == [True, True, False]
    widget.source.value = "layer"
    assert shown(widget.layer, widget.pixel_nm, widget.nx) == [True, True, False]
    widget.source.value = "OVF file"
    assert shown(widget.ovf_path, widget.thickness_nm) == [True, False]
    widget.tip.value = "point monopole"
    assert shown(widget.tip_charge, widget.tip_moment) == [True, False]


def test_layer_choices_follow_the_viewer(simulator):
    viewer, widget = simulator
    viewer.add_image(np.zeros((4, 4)), name="first")
    viewer.add_points([[1, 1]], name="points")  # not a magnetization
    assert [c.name for c in widget.layer.choices] == ["first"]
    viewer.layers.remove("first")
    assert widget.layer.choices == ()


def test_plugin_menu_docks_the_simulator_in_a_scroll_area(make_napari_viewer):
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-mmrecon", "Stray field / MFM simulator")
    assert isinstance(dock.form, SimulatorWidget) and dock.widget() is dock.form.native
    assert dock.minimumSizeHint().width() > dock.form.native.minimumSizeHint().width()
    viewer.add_image(np.zeros((4, 4)), name="later")  # napari refreshes the layer list through the dock
    assert [c.name for c in dock.form.layer.choices] == ["later"]


def add_magnetization(viewer, name, grid=None, material=None):
    """Add the mz Image and arrows of a skyrmion state called ``name``."""
    grid = grid or mm.Grid(nx=16, ny=16, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu")
    for data, kwargs, kind in layer_data.magnetization_layers(mm.textures.skyrmion(grid, radius=4e-9), grid,
                                                              material, name=name):
        getattr(viewer, f"add_{kind}")(data, **kwargs)


def test_source_starts_on_and_follows_magnetization_layers(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    add_magnetization(viewer, "opened", material=mm.Material(Ms=4e5))
    widget = SimulatorWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert (widget.source.value, widget.layer.value) == ("layer", viewer.layers["opened"])
    assert widget.material["Ms"].value == pytest.approx(400.0)  # kA/m, from the layer
    assert not widget.pixel_nm.native.isVisibleTo(widget.native)  # the layer knows its grid
    add_magnetization(viewer, "sample")  # a later file or sample: its mz Image, not its arrows
    assert widget.layer.value is viewer.layers["sample"]

    viewer = make_napari_viewer()
    fresh = SimulatorWidget(viewer)
    viewer.window.add_dock_widget(fresh)
    assert fresh.source.value == "texture"
    add_magnetization(viewer, "later")
    assert (fresh.source.value, fresh.layer.value) == ("layer", viewer.layers["later"])
    fresh.source.value = "texture"  # the user's pick stays
    add_magnetization(viewer, "ignored")
    assert fresh.source.value == "texture"


def test_a_run_keeps_the_source(simulator, qtbot, notes):
    viewer, widget = simulator
    widget.relax.value = False
    widget.outputs["frequency_shift"].value = False
    click_and_wait(qtbot, widget.panel)  # adds the texture's magnetization layers
    assert layer_data.is_magnetization_layer(viewer.layers["skyrmion"]) and notes.errors() == []
    assert widget.source.value == "texture"


@pytest.mark.parametrize("size", [(1089, 633), (1700, 1050)])
def test_both_docks_are_usable_in_a_small_window(make_napari_viewer, qtbot, size):
    """Run buttons always in view, every field reachable by scrolling, titles whole."""
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-mmrecon", "single_skyrmion")
    _, simulator = viewer.window.add_plugin_dock_widget("napari-mmrecon", "Stray field / MFM simulator")
    _, fit = viewer.window.add_plugin_dock_widget("napari-mmrecon", "Physics relaxation / fit")
    window = viewer.window._qt_window
    window.resize(*size)
    qtbot.waitUntil(lambda: window.size().height() == size[1], timeout=5000)
    qtbot.wait(50)
    for dock, d_field in ((simulator, simulator.form.material["D"]), (fit, fit.form.values["D"])):
        run = dock.form.panel.run_button.native
        assert run.isVisible() and run.visibleRegion().boundingRect().height() == run.height()
        assert dock.viewport().height() >= MIN_FORM_HEIGHT
        dock.ensureWidgetVisible(d_field.native)
        qtbot.wait(10)
        assert not d_field.native.visibleRegion().isEmpty()
        title = dock.parent().titleBarWidget()
        assert title.width() >= title.layout().sizeHint().width()
    assert simulator.form.source.value == "layer"  # the sample's magnetization


def test_sections_fold_away(simulator):
    _, widget = simulator
    material = next(s for s in widget if isinstance(s, Section) and s.header.text() == "Material")
    assert material.expanded and widget.material["D"].native.isVisibleTo(widget.native)
    material.header.click()
    assert not material.expanded and not widget.material["D"].native.isVisibleTo(widget.native)


def test_fields_are_built_from_the_option_declarations(make_napari_viewer, monkeypatch):
    ms, f0 = OPTIONS["Ms"], OPTIONS["f0"]
    field = field_for(ms, "Ms")
    assert isinstance(field, FloatSpinBox) and field.label == "Ms (kA/m)" and field.value == 580.0
    assert field.tooltip == "saturation magnetization; 1 to 10000 kA/m"
    assert si(OPTIONS["Ku"], 0.8) == 8e5 and shown(f0, 75e3) == 75.0
    assert field_for(OPTIONS["heights"], "heights").value == "10, 20"
    assert field_for(OPTIONS["tip_moment"], "tip moment").label == "tip moment (A·m²)"
    assert isinstance(field_for(OPTIONS["tol"], "tol"), LineEdit)  # 1e-4: typed, not spun
    assert isinstance(field_for(OPTIONS["relax"], "relax"), CheckBox)
    assert field_for(OPTIONS["optimizer"], "optimizer").choices == OPTIONS["optimizer"].choices
    spin = field_for(OPTIONS["nz"], "nz")
    assert isinstance(spin, SpinBox) and spin.min == 1
    # a declaration changed in one place changes the forms
    monkeypatch.setitem(OPTIONS, "Ms", replace(ms, default=4e5))
    monkeypatch.setitem(OPTIONS, "f0", replace(f0, default=60e3, help="resonance"))
    widget = SimulatorWidget(make_napari_viewer())
    assert widget.material["Ms"].value == 400.0 and widget.f0_kHz.value == 60.0
    assert widget.f0_kHz.tooltip.startswith("resonance;") and widget.tip_fields.read()[1].f0 == 60e3


# ----------------------------------------------------------------------------- the runner alone


class Recorder:
    """A JobPanel whose Run starts ``self.work``; results and threads recorded."""

    def __init__(self, qtbot):
        self.work, self.keep_on_cancel = None, False
        self.result, self.partials, self.threads = None, [], []
        self.panel = JobPanel("Test job", prepare=self.prepare)
        qtbot.addWidget(self.panel.native)

    def prepare(self):
        return Task(work=self.work, on_result=self.on_result, on_partial=self.on_partial,
                    keep_on_cancel=self.keep_on_cancel)

    def on_result(self, value):
        self.threads.append(threading.get_ident())
        self.result = value

    def on_partial(self, value):
        self.threads.append(threading.get_ident())
        self.partials.append(value)


def test_runner_delivers_progress_partials_and_result_on_the_gui_thread(qtbot, notes):
    recorder = Recorder(qtbot)
    worker_threads = []

    def work(cancel):
        worker_threads.append(threading.get_ident())
        for i in range(3):
            yield Progress(i, 3, f"step {i}")
            yield Partial(i)
        return "finished"

    recorder.work = work
    click_and_wait(qtbot, recorder.panel)
    assert recorder.partials == [0, 1, 2] and recorder.result == "finished"
    assert worker_threads[0] != threading.get_ident()
    assert set(recorder.threads) == {threading.get_ident()}
    assert recorder.panel.status.value.startswith("done") and notes == []


@pytest.mark.parametrize("error, message", [
    (ValueError("height must be > 0"), "Test job: height must be > 0"),
    (RuntimeError("solver diverged"), "Test job: RuntimeError: solver diverged"),
])
def test_runner_turns_exceptions_into_notifications(qtbot, notes, error, message):
    recorder = Recorder(qtbot)

    def work(cancel):
        yield Progress(1, 2, "half way")
        raise error

    recorder.work = work
    click_and_wait(qtbot, recorder.panel)
    assert notes.errors() == [message] and recorder.result is None
    assert recorder.panel.status.value.startswith("failed")


def test_runner_reports_a_failing_result_callback(qtbot, notes):
    recorder = Recorder(qtbot)

    def work(cancel):
        yield Progress(1, 1, "done")
        return 1

    def broken(_):
        raise ValueError("layer data is inconsistent")

    recorder.work, recorder.on_result = work, broken
    click_and_wait(qtbot, recorder.panel)
    assert notes.errors() == ["Test job: layer data is inconsistent"]


def test_runner_cancel_sets_the_event_and_skips_the_result(qtbot, notes):
    recorder = Recorder(qtbot)
    seen = {}

    def work(cancel):
        seen["event"] = cancel
        while not cancel.wait(0.01):
            yield Progress(0, 0, "waiting")
        yield Progress(1, 1, "after cancel")
        return "should not arrive"

    recorder.work = work
    assert recorder.panel.run()
    qtbot.waitUntil(lambda: recorder.panel.status.value == "waiting", timeout=5000)
    recorder.panel.cancel()
    qtbot.waitUntil(lambda: not recorder.panel.is_running, timeout=2000)
    assert seen["event"].is_set() and recorder.result is None and notes == []
    assert recorder.panel.status.value == "cancelled"


def test_runner_keep_on_cancel_delivers_what_the_job_returns(qtbot, notes):
    recorder = Recorder(qtbot)

    def work(cancel):  # stops by itself once cancelled and returns what it has
        steps = 0
        while not cancel.wait(0.01):
            steps += 1
            yield Progress(steps, 0, "working")
            yield Partial(steps)
        yield Progress(steps, 0, "after cancel")  # not shown
        return f"best after {steps} steps"

    recorder.work, recorder.keep_on_cancel = work, True
    assert recorder.panel.run()
    qtbot.waitUntil(lambda: len(recorder.partials) >= 2, timeout=5000)
    recorder.panel.cancel()
    qtbot.waitUntil(lambda: not recorder.panel.is_running, timeout=2000)
    assert recorder.result.startswith("best after") and notes == []
    assert recorder.panel.status.value.startswith("cancelled: kept the result so far")
