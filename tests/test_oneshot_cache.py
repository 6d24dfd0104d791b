"""The one-call functions: their cached models (never stale), their choice of terms, and the
process-wide state they leave alone (torch's thread count, malloc's settings)."""

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.physics import energy as energy_module
from napari_mmrecon.backend.physics.energy import TERM_NAMES, EnergyModel
from napari_mmrecon.backend.solvers.relax import minimize

GRID = mm.Grid(nx=20, ny=16, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
MAT = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
NO_DEMAG = ("exchange", "dmi", "anisotropy", "zeeman")


@pytest.fixture
def builds(monkeypatch):
    """How many models the one-call functions built since the test started (from an empty cache)."""
    cache = energy_module._LINEAR_TERMS
    cache.clear()
    count = [0]
    original = cache.get

    def counting_get(values, build):
        def counted(*args):
            count[0] += 1
            return build(*args)

        return original(values, counted)

    monkeypatch.setattr(cache, "get", counting_get)
    yield count
    cache.clear()


def skyrmion(grid=GRID):
    return mm.textures.skyrmion(grid, radius=5e-9)


def test_one_shot_field_equals_the_model_and_builds_once(builds):
    m = skyrmion()
    expected = EnergyModel(GRID, MAT).field(GRID.tensor(m)).numpy()
    for _ in range(3):
        np.testing.assert_array_equal(mm.effective_field(m, GRID, MAT), expected)
    mm.energy(m, GRID, mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3))  # equal values, another object
    mm.relax(m, GRID, MAT, max_iter=2)
    assert builds[0] == 1


def test_applied_field_is_not_part_of_the_cached_model(builds):
    m = skyrmion()
    for hz in (1e4, 2e4, 3e4):
        H = mm.effective_field(m, GRID, MAT, external_field=[0.0, 0.0, hz])
        expected = EnergyModel(GRID, MAT, external_field=[0.0, 0.0, hz]).field(GRID.tensor(m)).numpy()
        np.testing.assert_allclose(H, expected, rtol=0, atol=1e-9 * np.abs(expected).max())
    assert builds[0] == 1


def test_material_map_changed_in_place_is_never_served_stale(builds):
    m = skyrmion()
    Ms = np.full(GRID.shape, 5.8e5)
    mat = MAT.replace(Ms=Ms)
    first = mm.effective_field(m, GRID, mat)
    Ms[0, 4:8, 4:8] = 4e5  # the same array object, changed in place
    changed = mm.effective_field(m, GRID, mat)
    expected = EnergyModel(GRID, MAT.replace(Ms=Ms.copy())).field(GRID.tensor(m)).numpy()
    np.testing.assert_array_equal(changed, expected)
    assert not np.allclose(changed, first)
    Ms[0, 4:8, 4:8] = 5.8e5  # back: the first model serves again, built from a copy
    np.testing.assert_array_equal(mm.effective_field(m, GRID, mat), first)
    assert builds[0] == 2


def test_tensor_map_changed_behind_autograd_is_never_served_stale(builds):
    m = skyrmion()
    D = torch.full(GRID.shape, 3e-3, dtype=torch.float64)
    mat = MAT.replace(D=D)
    first = mm.effective_field(m, GRID, mat)
    D.numpy()[0, :, :10] = -3e-3  # through a numpy view: the tensor's version counter does not move
    changed = mm.effective_field(m, GRID, mat)
    expected = EnergyModel(GRID, MAT.replace(D=D.clone())).field(GRID.tensor(m)).numpy()
    np.testing.assert_array_equal(changed, expected)
    assert not np.allclose(changed, first)
    mat.Ku = 5e5  # an attribute replaced
    np.testing.assert_array_equal(mm.effective_field(m, GRID, mat),
                                  EnergyModel(GRID, mat.replace(D=D.clone())).field(GRID.tensor(m)).numpy())
    assert builds[0] == 3


def test_parameters_that_require_grad_are_not_cached(builds):
    m = GRID.tensor(skyrmion())
    Ku = torch.tensor(8e5, dtype=torch.float64, requires_grad=True)
    for _ in range(2):  # a cached graph could not be backpropagated twice
        (grad,) = torch.autograd.grad(mm.energy(m, GRID, MAT.replace(Ku=Ku))["total"], Ku)
        assert float(grad) < 0  # the anisotropy energy -Ku V sum (m.u)^2 falls as Ku grows
    assert builds[0] == 2


def test_each_thread_has_its_own_models(builds):
    m = skyrmion()
    mm.effective_field(m, GRID, MAT)
    results = []
    worker = threading.Thread(target=lambda: results.append(mm.effective_field(m, GRID, MAT)))
    worker.start()
    worker.join()
    np.testing.assert_array_equal(results[0], mm.effective_field(m, GRID, MAT))
    assert builds[0] == 2


def test_the_cache_keeps_a_few_models():
    energy_module.clear_model_cache()
    materials = [MAT.replace(D=d) for d in np.linspace(1e-3, 3e-3, energy_module.MODEL_CACHE_SIZE + 1)]
    linear = [energy_module.cached_linear_terms(GRID, mat, None, TERM_NAMES) for mat in materials]
    assert energy_module.cached_linear_terms(GRID, materials[-1], None, TERM_NAMES) is linear[-1]
    assert energy_module.cached_linear_terms(GRID, materials[0], None, TERM_NAMES) is not linear[0]
    energy_module.clear_model_cache()


def test_terms_choose_the_energy_of_every_one_call_function():
    m = skyrmion()
    expected = EnergyModel(GRID, MAT, terms=NO_DEMAG).field(GRID.tensor(m)).numpy()
    np.testing.assert_array_equal(mm.effective_field(m, GRID, MAT, terms=NO_DEMAG), expected)
    assert not np.allclose(mm.effective_field(m, GRID, MAT), expected)
    E = mm.energy(m, GRID, MAT, terms=NO_DEMAG)
    full = mm.energy(m, GRID, MAT)
    assert E["demag"] == 0 and full["demag"] > 0
    assert E["total"] == pytest.approx(full["total"] - full["demag"], rel=1e-12)
    assert mm.energy(m, GRID, MAT, terms=None)["total"] == pytest.approx(full["total"], rel=1e-15)
    result = mm.llg(m, GRID, MAT, t_end=2e-13, terms=("exchange",))
    assert result.energy[-1] == pytest.approx(mm.energy(result.m, GRID, MAT, terms=("exchange",))["total"], rel=1e-9)


def test_relax_without_demag_equals_the_lower_level_api():
    # the DMI standard problem's 1D case is defined without demag (Cortes-Ortuno et al. 2018)
    grid = mm.Grid(nx=50, ny=1, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
    mat = mm.Material(Ms=8.6e5, A=1.3e-11, Ku=0.4e6, D=3e-3, Ku_axis=(0.0, 0.0, 1.0))
    m0 = mm.textures.uniform(grid, (0.0, 0.0, 1.0))
    terms = ("exchange", "dmi", "anisotropy")
    m, info = mm.relax(m0, grid, mat, tol=1e-6, terms=terms, return_info=True)
    reference, ref_info = minimize(EnergyModel(grid, mat, terms=terms), grid.tensor(m0), tol=1e-6)
    assert info.converged and info.iterations == ref_info.iterations
    np.testing.assert_array_equal(m, reference.numpy())
    assert info.energy == pytest.approx(mm.energy(m, grid, mat, terms=terms)["total"], rel=1e-12)
    with_demag = mm.relax(m0, grid, mat, tol=1e-6)
    assert np.abs(with_demag - m).max() > 1e-3  # the choice of terms mattered


def _run(code: str, env: dict | None = None) -> str:
    """Run ``code`` in a fresh interpreter (the package importable as here); its stdout."""
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), **(env or {}))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environment, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_and_calls_leave_torch_threads_and_malloc_alone():
    out = _run("""
        import ctypes
        called = []
        class Recording(ctypes.CDLL):
            def __getattr__(self, name):
                if name == "mallopt":
                    called.append(name)
                return super().__getattr__(name)
        ctypes.CDLL = Recording
        import torch
        before = torch.get_num_threads()
        import napari_mmrecon as mm
        after_import = torch.get_num_threads()
        grid = mm.Grid(nx=16, ny=16, nz=1, device="cpu")
        mat = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
        m = mm.relax(mm.textures.skyrmion(grid, radius=4e-9), grid, mat, max_iter=20)
        mm.effective_field(m, grid, mat)
        print(before, after_import, torch.get_num_threads(), called)
    """, {"OMP_NUM_THREADS": "2"})
    before, after_import, after_call, called = out.split(maxsplit=3)
    assert before == after_import == after_call == "2"
    assert called.strip() == "[]"


@pytest.mark.parametrize("explicit", [False, True])
def test_a_small_relaxation_in_a_worker_changes_no_other_threads_setting(explicit):
    # While a worker relaxes a small film (on one thread), a thread making its first torch call
    # and the main thread still see the process's thread count.
    out = _run(f"""
        import threading
        import torch
        if {explicit}:
            torch.set_num_threads(2)
        import napari_mmrecon as mm
        grid = mm.Grid(nx=16, ny=16, nz=1, device="cpu")
        mat = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
        seen = []
        inside, release = threading.Event(), threading.Event()

        def progress(iteration, torque, energy):
            if not inside.is_set():
                fresh = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
                fresh.start()
                fresh.join()
                inside.set()
                release.wait()

        worker = threading.Thread(target=lambda: mm.relax(mm.textures.skyrmion(grid, radius=4e-9), grid, mat,
                                                          max_iter=30, progress=progress))
        worker.start()
        inside.wait()
        seen.append(torch.get_num_threads())
        release.set()
        worker.join()
        print(*seen, torch.get_num_threads())
    """, {"OMP_NUM_THREADS": "2"})
    assert [int(v) for v in out.split()] == [2, 2, 2]  # the new thread, main during and after
