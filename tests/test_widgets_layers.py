"""The napari-free pieces under the widgets: layer conversions and metadata schema (``layers``),
the job protocol (``jobs``) and the relax-then-measure job (``simulation``)."""

import threading
from types import SimpleNamespace

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.workflows import jobs, layer_data
from napari_mmrecon.workflows.simulate import (
    MAX_CELLS,
    Probe,
    Relaxation,
    Relaxed,
    check_grid_size,
    film_material,
    simulate,
    texture,
)

GRID = mm.Grid(nx=128, ny=96, nz=1, dx=2e-9, dy=2e-9, dz=1e-9, device="cpu")


def test_grid_and_material_survive_the_metadata():
    material = mm.Material(Ms=4e5, A=1e-11, Ku=3e5, D=-1e-3, alpha=0.1)
    assert layer_data.grid_from_dict(layer_data.grid_to_dict(GRID)) == GRID
    back = layer_data.material_from_dict(layer_data.material_to_dict(material))
    assert back.as_dict() == material.as_dict()
    with pytest.raises(ValueError, match="no complete grid"):
        layer_data.grid_from_dict({"nx": 3})


def test_arrows_are_decimated_centred_and_in_nm():
    m = mm.textures.uniform(GRID, direction=(1.0, 0.0, 1.0))
    data, mz, stride, length = layer_data.vector_arrows(m, GRID)
    assert stride == 4 and data.shape == (32 * 24, 2, 2)
    assert length == pytest.approx(0.9 * 4 * 2.0)
    centre = data[:, 0] + data[:, 1] / 2
    np.testing.assert_allclose(centre[0], ((2 + 0.5) * 2.0, (2 + 0.5) * 2.0))
    np.testing.assert_allclose(data[:, 1], [[0.0, length / np.sqrt(2)]] * len(data))  # (y, x): along +x
    np.testing.assert_allclose(mz, np.sqrt(0.5))
    stripes = mm.textures.stripes(GRID, period=40e-9)
    data, mz, _, _ = layer_data.vector_arrows(stripes, GRID)
    assert 0 < len(data) < 32 * 24  # the domains, nearly along z, have no arrows
    np.testing.assert_allclose(np.hypot(*data[:, 1].T), length * np.sqrt(1 - mz**2), atol=1e-9)
    assert np.all(np.sqrt(1 - mz**2) >= layer_data.MIN_IN_PLANE - 1e-12)


def test_thick_films_give_3d_layers():
    grid = mm.Grid(nx=8, ny=6, nz=3, dx=1e-9, dy=2e-9, dz=3e-9, device="cpu")
    (mz, image, _), (arrows, vectors, kind) = layer_data.magnetization_layers(mm.textures.uniform(grid), grid)
    assert mz.shape == (3, 6, 8) and image["scale"] == (3.0, 2.0, 1.0) and image["translate"] == (1.5, 1.0, 0.5)
    assert kind == "vectors" and arrows.shape == (3 * 6 * 8, 2, 3) and vectors["units"] == ("nm",) * 3
    np.testing.assert_allclose(arrows[:, 1], [[0.9, 0.0, 0.0]] * 144)  # +z, 0.9 of the 1 nm spacing


def test_pixel_size_from_units_metadata_scale_or_fallback():
    layer = SimpleNamespace(name="a", scale=(5.0, 4.0), units=("micrometer", "micrometer"), metadata={})
    assert layer_data.pixel_size(layer) == (5e-6, 4e-6)
    layer.units = ("pixel", "pixel")
    assert layer_data.pixel_size(layer) == pytest.approx((5e-9, 4e-9))  # a scale without unit is nm
    layer.scale = (1.0, 1.0)
    layer.metadata = {"mmrecon": {"pixel_size": [3e-9, 2e-9]}}
    assert layer_data.pixel_size(layer) == (3e-9, 2e-9)
    layer.metadata = {}
    assert layer_data.pixel_size(layer, fallback=1e-9) == (1e-9, 1e-9)
    with pytest.raises(ValueError, match="layer 'a' has no physical pixel size"):
        layer_data.pixel_size(layer)


def test_mz_map_becomes_a_neel_state_of_the_dmi_sense():
    grid = mm.Grid(nx=40, ny=40, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu")
    reference = mm.textures.skyrmion(grid, radius=8e-9)
    m = layer_data.magnetization_from_mz(reference[..., 2])
    np.testing.assert_allclose(np.linalg.norm(m, axis=-1), 1.0, atol=1e-12)
    wall = np.abs(reference[..., 2]) < 0.5
    assert np.all(np.sum(m[wall, :2] * reference[wall, :2], axis=-1) > 0.5)
    flat = layer_data.magnetization_from_mz(np.zeros((1, 3, 3)))
    np.testing.assert_allclose(flat[..., 0], 1.0)


@pytest.mark.parametrize("values, thickness, message", [
    (np.full((4, 4), np.nan), 1e-9, "contains 16 NaN or inf values"),
    (np.full((4, 4), 3.0), 1e-9, "values span 3 .. 3, expected -1 .. 1"),
    (np.ones((4, 4)), 0.0, "film thickness must be > 0 nm"),
    (np.ones(4), 1e-9, "an m_z map is (ny, nx) or (nz, ny, nx)"),
])
def test_bad_mz_images_are_named(values, thickness, message):
    layer = SimpleNamespace(name="img", data=values, scale=(2.0, 2.0), units=None, metadata={}, rgb=False)
    with pytest.raises(ValueError) as error:
        layer_data.image_as_magnetization(layer, thickness)
    assert message in str(error.value)


def test_ovf_vector_fields_as_unit_m_or_m_in_a_per_m():
    m = mm.textures.skyrmion(GRID, radius=10e-9)
    same, known = layer_data.magnetization_from_field(m.copy())
    np.testing.assert_allclose(same, m)
    assert known == {}
    m[0, 0, 0] = 0.0
    scaled, known = layer_data.magnetization_from_field(6e5 * m)
    np.testing.assert_allclose(scaled, m, atol=1e-12)
    assert known == {"Ms": pytest.approx(6e5)}
    graded = m * np.linspace(1e5, 2e5, GRID.nx)[None, None, :, None]
    _, known = layer_data.magnetization_from_field(graded)
    assert known["Ms"].shape == GRID.shape and known["Ms"][0, 0, 0] == 0.0
    header = {"desc": layer_data.ovf_description({"Ms": 1e5, "D": 2e-3, "map": "ignored"})}
    assert layer_data.magnetization_from_field(m, header)[1] == {"Ms": 1e5, "D": 2e-3}
    with pytest.raises(ValueError, match="zero everywhere"):
        layer_data.magnetization_from_field(np.zeros((1, 2, 2, 3)))


def test_json_metadata_drops_the_state_and_maps():
    meta = {"m": np.zeros((1, 2, 2, 3)), "material": {"Ms": np.ones((1, 2, 2)), "A": 1e-11, "Ku_axis": [0, 0, 1]},
            "height": np.float64(2e-8), "tip": {"direction": (0.0, 0.0, 1.0)}}
    assert layer_data.json_metadata(meta) == {"material": {"Ms": "map(1, 2, 2)", "A": 1e-11, "Ku_axis": [0, 0, 1]},
                                              "height": 2e-8, "tip": {"direction": [0.0, 0.0, 1.0]}}


def test_display_follows_the_quantity():
    signed = layer_data.display_kwargs(np.array([-1.0, 3.0]), "Hz")
    assert signed == {"colormap": "RdBu_r", "contrast_limits": (-3.0, 3.0)}
    assert layer_data.display_kwargs(np.array([0.0, 2.0]), "|H|")["colormap"] == "magma"
    assert layer_data.display_kwargs(np.array([1.0, 2.0]), "")["colormap"] == "gray"


# ----------------------------------------------------------------------------- jobs


def test_relay_passes_reports_and_the_result():
    cancel = threading.Event()

    def call(report):
        for i in range(3):
            report(i)
        return "ok"

    job = jobs.relay(call, lambda i: jobs.Progress(i, 2, f"step {i}"), cancel)
    seen = []
    assert jobs.run(job, seen.append) == "ok"
    assert seen[-1] == jobs.Progress(2, 2, "step 2") and not cancel.is_set()


def test_relay_raises_the_calls_error_and_stops_it_when_closed():
    def failing(report):
        raise ValueError("bad parameter")

    with pytest.raises(ValueError, match="bad parameter"):
        jobs.run(jobs.relay(failing, jobs.Progress, threading.Event()))

    cancel = threading.Event()

    def endless(report):
        while not cancel.wait(0.005):
            report(1, 1, "tick")
        return None

    job = jobs.relay(endless, jobs.Progress, cancel)
    assert isinstance(next(job), jobs.Progress)
    job.close()  # the driver stopped: the helper thread is told to stop and joined
    assert cancel.is_set()


# ----------------------------------------------------------------------------- simulation


def test_simulation_checks_its_inputs():
    with pytest.raises(ValueError, match="heights must be one or more finite lengths > 0 m"):
        Probe(heights=(1e-8, -1e-9))
    with pytest.raises(ValueError, match="outputs must be one or more of"):
        Probe(heights=1e-8, outputs=("Bz",))
    with pytest.raises(ValueError, match="sides must be 'top' and/or 'bottom'"):
        Probe(heights=1e-8, sides=("left",))
    with pytest.raises(ValueError, match="texture must be one of"):
        texture("vortex", GRID)
    with pytest.raises(ValueError, match="too large"):
        check_grid_size(mm.Grid(nx=MAX_CELLS, ny=2, device="cpu"))
    m = mm.textures.uniform(GRID)
    with pytest.raises(ValueError, match="Ms must be > 0 A/m"):
        film_material(m, mm.Material(Ms=0.0))
    m[0, :3] = 0.0
    Ms = film_material(m, mm.Material(Ms=5e5)).Ms
    assert Ms.shape == GRID.shape and Ms[0, 0, 0] == 0 and Ms[0, 5, 5] == 5e5


def test_simulate_relaxes_then_measures_and_can_be_cancelled():
    grid = mm.Grid(nx=20, ny=20, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu")
    material = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
    m0 = texture("skyrmion", grid, radius=4e-9)
    probe = Probe(heights=(5e-9,), sides=("top", "bottom"), outputs=("Hx", "|H|", "phase"))
    partials = []
    result = jobs.run(simulate(m0, grid, material, probe, Relaxation(tol=1e-2)), on_partial=partials.append)
    assert isinstance(partials[0], Relaxed) and partials[0].info.converged
    np.testing.assert_array_equal(result.m, partials[0].m)
    assert [i.name for i in result.images] == ["Hx top 5 nm", "|H| top 5 nm", "MFM phase top 5 nm",
                                               "Hx bottom 5 nm", "|H| bottom 5 nm", "MFM phase bottom 5 nm"]
    H = mm.stray_field(result.m, grid, 5.8e5, 5e-9, side="bottom")
    np.testing.assert_allclose(result.images[4].data, np.linalg.norm(H, axis=-1), rtol=1e-12)
    assert result.images[2].unit == "deg" and result.images[2].file_stem == "mfm_phase_top_5nm"

    cancel = threading.Event()

    def stop_when_relaxing(progress):
        if progress.text.startswith("relaxing: iteration"):
            cancel.set()

    job = simulate(texture("random", grid), grid, material, probe, Relaxation(tol=1e-14), cancel)
    assert jobs.run(job, stop_when_relaxing) is None
