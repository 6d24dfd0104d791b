"""Energy minimizer and LLG: invariants, batches, cancellation."""

import threading

import numpy as np
import pytest
import torch

import napari_mmrecon as mm

SKX = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3, alpha=0.5)


@pytest.fixture(scope="module")
def relaxed_skyrmion():
    grid = mm.Grid(nx=48, ny=48, nz=1)
    m, info = mm.relax(mm.textures.skyrmion(grid, radius=7e-9), grid, SKX, return_info=True)
    return grid, m, info


def test_minimizer_converges_and_keeps_unit_length(relaxed_skyrmion):
    grid, m, info = relaxed_skyrmion
    assert info.converged and not info.cancelled
    assert info.max_torque < mm.DEFAULT_TORQUE_TOL
    np.testing.assert_allclose(np.linalg.norm(m, axis=-1), 1.0, rtol=0, atol=1e-12)
    # the reported torque is the real one
    H = mm.effective_field(m, grid, SKX)
    torque = np.linalg.norm(np.cross(m, H), axis=-1).max() / SKX.Ms
    assert torque == pytest.approx(info.max_torque, rel=1e-6)
    assert info.energy == pytest.approx(mm.energy(m, grid, SKX)["total"], rel=1e-12)


def test_minimizer_never_increases_energy(relaxed_skyrmion):
    _, _, info = relaxed_skyrmion
    E = np.array([float(e) for e in info.energy_history])
    assert len(E) == info.iterations + 1
    assert np.all(np.diff(E) <= 1e-12 * abs(E[0]))
    assert E[-1] < E[0]


def test_relaxed_state_is_a_minimum_not_a_saddle(relaxed_skyrmion):
    # Random small perturbations (renormalized) raise the energy.
    grid, m, info = relaxed_skyrmion
    rng = np.random.default_rng(0)
    for _ in range(3):
        p = m + 1e-3 * rng.standard_normal(m.shape)
        p /= np.linalg.norm(p, axis=-1, keepdims=True)
        assert mm.energy(p, grid, SKX)["total"] > info.energy


def test_tighter_tolerance_changes_radius_by_less_than_0p1_percent(relaxed_skyrmion):
    grid, m, _ = relaxed_skyrmion
    tight = mm.relax(m, grid, SKX, tol=1e-7)
    r_default, r_tight = mm.skyrmion_radius(m, grid), mm.skyrmion_radius(tight, grid)
    assert abs(r_default / r_tight - 1) < 1e-3


def test_batch_relaxes_like_each_state_alone():
    grid = mm.Grid(nx=40, ny=40, nz=1)
    Ds = [2.8e-3, 3e-3, 3.2e-3]
    radii = [5e-9, 6e-9, 7e-9]
    m0 = np.stack([mm.textures.skyrmion(grid, radius=r) for r in radii])
    batch_mat = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=Ds)
    mb, info = mm.relax(m0, grid, batch_mat, tol=1e-6, return_info=True)
    assert mb.shape == (3,) + grid.vector_shape and np.all(info.converged)
    for i in range(3):
        single = mm.relax(m0[i], grid, SKX.replace(D=Ds[i]), tol=1e-6)
        np.testing.assert_allclose(mb[i], single, atol=1e-5)
        assert mm.skyrmion_radius(mb[i], grid) == pytest.approx(mm.skyrmion_radius(single, grid), rel=1e-4)


def test_batch_with_per_state_maps_and_fields_relaxes_like_each_state_alone():
    # Per-state Ms maps (vacuum in one state), D and bias fields; converged states leave the batch.
    grid = mm.Grid(nx=16, ny=16, nz=1)
    Ms = np.full((3,) + grid.shape, 5.8e5)
    Ms[1, :, :3] = 0.0
    bias = np.zeros((3,) + grid.vector_shape)
    bias[0, ..., 2] = 2e4
    Ds = [3e-3, 2.5e-3, 2e-3]
    m0 = np.stack([mm.textures.skyrmion(grid, radius=r) for r in (3e-9, 4e-9, 5e-9)])
    mb, info = mm.relax(m0, grid, SKX.replace(Ms=Ms, D=Ds), bias_field=bias, tol=1e-6, return_info=True)
    assert np.all(info.converged)
    for i in range(3):
        single = mm.relax(m0[i], grid, SKX.replace(Ms=Ms[i], D=Ds[i]), bias_field=bias[i], tol=1e-6)
        np.testing.assert_allclose(mb[i], single, atol=1e-5)


def test_tensor_in_tensor_out_and_vacuum_cells():
    grid = mm.Grid(nx=24, ny=24, nz=1)
    Ms = np.full(grid.shape, 5.8e5)
    Ms[:, :4, :] = 0.0
    m0 = torch.tensor(mm.textures.random(grid, seed=2))
    m0[:, :4, :] = 0.0  # vacuum may hold zero vectors
    m = mm.relax(m0, grid, SKX.replace(Ms=Ms), tol=1e-3, max_iter=3000)
    assert isinstance(m, torch.Tensor)
    assert torch.all(m[:, :4] == 0)
    torch.testing.assert_close(torch.linalg.vector_norm(m[:, 4:], dim=-1), torch.ones(1, 20, 24, dtype=torch.float64))


def test_cancel_from_another_thread_returns_state_reached():
    grid = mm.Grid(nx=64, ny=64, nz=1)
    stop = threading.Event()
    calls = []

    def progress(iteration, torque, energy):
        calls.append((iteration, torque, energy))
        if iteration >= 20:
            stop.set()

    m, info = mm.relax(mm.textures.random(grid, seed=1), grid, SKX, tol=1e-12, return_info=True,
                       progress=progress, cancel=stop)
    assert info.cancelled and not info.converged
    assert 20 <= info.iterations <= 21
    assert calls and calls[0][0] == 10
    np.testing.assert_allclose(np.linalg.norm(m, axis=-1), 1.0, atol=1e-12)


def test_llg_without_damping_conserves_energy_and_norm():
    grid = mm.Grid(nx=24, ny=24, nz=1, dx=2e-9, dy=2e-9, dz=2e-9)
    mat = mm.Material(Ms=8e5, A=1.3e-11, Ku=2e5, D=1e-3, alpha=0.0)
    m0 = mm.textures.skyrmion(grid, radius=10e-9, wall_width=4e-9)
    m0 = m0 + 0.2 * mm.textures.uniform(grid, (1, 0, 0))
    res = mm.llg(m0, grid, mat, t_end=5e-11, save_every=5e-12, rtol=1e-7)
    assert res.t[0] == 0 and res.t[-1] == pytest.approx(5e-11) and len(res.t) == 11
    drift = np.abs(res.energy - res.energy[0]).max() / abs(res.energy[0])
    assert drift < 1e-5
    np.testing.assert_allclose(np.linalg.norm(res.m, axis=-1), 1.0, atol=1e-12)
    assert np.abs(res.m_mean - res.m_mean[0]).max() > 1e-3  # it did move


def test_llg_with_damping_reaches_the_minimizer_equilibrium():
    # A film in a tilted field: damped dynamics end where the minimizer ends, energy decreasing.
    grid = mm.Grid(nx=16, ny=8, nz=1, dx=4e-9, dy=4e-9, dz=2e-9)
    mat = mm.Material(Ms=8e5, A=1.3e-11, Ku=1e5, alpha=1.0)
    field = [3e5, 1e5, 0.0]
    m0 = mm.textures.uniform(grid, (0.1, 0.0, 1.0))
    res = mm.llg(m0, grid, mat, t_end=2e-9, external_field=field, save_every=1e-11, stop_torque=1e-4)
    assert res.max_torque < 1e-4 and res.t[-1] < 2e-9
    assert np.all(np.diff(res.energy) <= 1e-12 * abs(res.energy[0]))
    ref = mm.relax(m0, grid, mat, external_field=field, tol=1e-8)
    np.testing.assert_allclose(res.m, ref, atol=1e-3)
