"""Newton steps finish a relaxation where Barzilai-Borwein steps stall, and the one Krylov solver
reports negative curvature."""

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.physics.energy import EnergyModel
from napari_mmrecon.backend.solvers.krylov import conjugate_gradient, normal_equations
from napari_mmrecon.backend.solvers.newton import newton_relax
from napari_mmrecon.backend.solvers.relax import minimize

GRID = mm.Grid(nx=48, ny=48, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
MATERIAL = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)


def test_newton_reaches_a_tight_torque_from_a_coarse_state_with_unit_vectors():
    model = EnergyModel(GRID, MATERIAL)
    start = GRID.tensor(mm.textures.skyrmions(GRID, [[15e-9, 16e-9], [33e-9, 31e-9]], (5e-9, 7e-9)))
    coarse, _ = minimize(model, start, tol=1e-3)
    m, info = newton_relax(model, coarse, tol=1e-10)
    assert info.converged and info.max_torque < 1e-10 and info.steps < 20
    assert float((torch.linalg.vector_norm(m, dim=-1) - 1).abs().max()) < 1e-12
    energies = [float(model.energies(x)["total"]) for x in (coarse, m)]
    assert energies[1] <= energies[0]
    # the same minimum as a long Barzilai-Borwein relaxation
    reference, bb = minimize(model, coarse, tol=1e-8, max_iter=200000)
    assert bb.converged and bb.iterations > 10 * info.steps
    np.testing.assert_allclose(m.numpy(), reference.numpy(), atol=1e-5)


def test_conjugate_gradient_stops_at_negative_curvature():
    A = torch.diag(torch.tensor([2.0, 1.0, -1.0], dtype=torch.float64))
    b = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    x, info = conjugate_gradient(lambda v: A @ v, b, tol=1e-12, max_iter=10, dims=1)
    # the first direction b has b.Ab = 2 > 0; the second meets the negative eigenvalue
    assert info.negative_curvature and info.iterations == 2
    assert torch.allclose(x, 1.5 * b)  # the iterate before it: the first step, (b.b / b.Ab) b
    x, info = conjugate_gradient(lambda v: A[:2, :2] @ v, b[:2], tol=1e-12, max_iter=10, dims=1)
    assert not info.negative_curvature and torch.allclose(x, torch.tensor([0.5, 1.0], dtype=torch.float64))


def test_normal_equations_is_least_squares():
    rng = np.random.default_rng(0)
    K = torch.tensor(rng.standard_normal((30, 5)))
    b = torch.tensor(rng.standard_normal(30))
    x = normal_equations(lambda v: K @ v, lambda r: K.T @ r, b, (5,), iterations=5)
    expected = torch.linalg.lstsq(K, b.reshape(-1, 1)).solution.reshape(-1)
    assert torch.allclose(x, expected, atol=1e-8)
    assert pytest.approx(0.0) == float(normal_equations(lambda v: K @ v, lambda r: K.T @ r, 0 * b, (5,), 3).abs().sum())
