"""The skyrmion pinning energy: its field is minus its gradient, it leaves a skyrmion that sits on its
centre alone and pulls a displaced one back, and it fixes the soft modes of a film of many."""

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon._sample_data import load_state
from napari_mmrecon.backend.inverse.pinning import SkyrmionPinning, find_skyrmions
from napari_mmrecon.backend.physics.energy import EnergyModel
from napari_mmrecon.backend.physics.grid import MU0
from napari_mmrecon.backend.solvers.equilibrium import (
    EquilibriumSettings,
    build_model,
    relax_tight,
)

GRID = mm.Grid(nx=40, ny=40, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
MATERIAL = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
STIFFNESS = 16 * 2 * MATERIAL.A * GRID.dz


@pytest.fixture(scope="module")
def skyrmion():
    return mm.relax(mm.textures.skyrmion(GRID, radius=6e-9), GRID, MATERIAL, tol=1e-9)


def test_find_skyrmions_gives_centres_and_radii_and_skips_edge_regions():
    centers = np.array([[12e-9, 13e-9], [28.5e-9, 27e-9]])
    m = mm.textures.skyrmions(GRID, centers, (4e-9, 6e-9))
    m[0, :3, :3, 2] = -1  # a reversed corner: an edge region, not a skyrmion
    found = find_skyrmions(m, GRID)
    assert len(found) == 2 and found.background == 1.0
    np.testing.assert_allclose(found.centers, centers, atol=0.3e-9)
    assert found.radii[0] == pytest.approx(4e-9, rel=0.15) and found.radii[1] == pytest.approx(6e-9, rel=0.15)


def test_pinning_field_is_minus_the_energy_gradient(skyrmion):
    pinning = SkyrmionPinning(GRID, find_skyrmions(skyrmion, GRID), STIFFNESS)
    pinning = pinning.moved_to(pinning.centers + GRID.tensor([0.7e-9, -0.4e-9]))  # a force on it
    m = GRID.tensor(skyrmion).requires_grad_(True)
    (gradient,) = torch.autograd.grad(pinning.energy(m), m)
    Ms = GRID.tensor(MATERIAL.Ms)
    field = pinning.linear_field(m.detach(), Ms) + pinning.constant_field(Ms, GRID.vector_shape)
    expected = -gradient / (MU0 * MATERIAL.Ms * GRID.cell_volume)
    assert float(expected.abs().max()) > 0
    torch.testing.assert_close(field, expected, rtol=1e-9, atol=1e-9 * float(expected.abs().max()))


def test_a_skyrmion_on_its_centre_feels_nothing_and_a_displaced_one_moves_to_it(skyrmion):
    pinning = SkyrmionPinning(GRID, find_skyrmions(skyrmion, GRID), STIFFNESS).centered_on(GRID.tensor(skyrmion))
    assert float(pinning.moment(GRID.tensor(skyrmion)).abs().max()) < 1e-6
    pinned = mm.relax(skyrmion, GRID, MATERIAL, tol=1e-9)  # the pinned model, relaxed from the equilibrium
    model = EnergyModel(GRID, MATERIAL, pinning=pinning)
    m, info = relax_tight(model, GRID.tensor(skyrmion), EquilibriumSettings(tol=1e-9))
    assert info.converged
    np.testing.assert_allclose(m.numpy(), pinned, atol=1e-6)  # neither moved nor resized
    # held 2 nm to the right: the skyrmion follows its centre, its radius stays
    moved = pinning.moved_to(pinning.centers + GRID.tensor([2e-9, 0.0]))
    m, info = relax_tight(EnergyModel(GRID, MATERIAL, pinning=moved), GRID.tensor(skyrmion),
                          EquilibriumSettings(tol=1e-8))
    now = find_skyrmions(m, GRID)
    assert info.converged and now.centers[0, 0] - pinning.centers[0, 0].item() == pytest.approx(2e-9, abs=0.2e-9)
    assert mm.skyrmion_radius(m, GRID) == pytest.approx(mm.skyrmion_radius(skyrmion, GRID), rel=2e-2)


def test_pinning_makes_a_loose_lattice_equilibrium_exact():
    """The bundled lattice is relaxed to a torque of 1e-4: relaxed further without pinning its
    skyrmions drift (the Hz image changes by a misfit of 1e-3); held at their own centres the
    tight equilibrium reproduces the image to 1e-9."""
    m, grid, material = load_state("skyrmion_lattice")
    measurement = mm.StrayFieldMeasurement(height=10e-9)
    target = measurement.simulate(m, grid, material.Ms)
    parameters = {name: grid.tensor(getattr(material, name)) for name in ("Ms", "A", "Ku", "D")}

    def misfit(pinning):
        settings = EquilibriumSettings(tol=1e-9)
        relaxed, info = relax_tight(build_model(grid, parameters, settings, pinning), grid.tensor(m), settings)
        assert info.converged
        image = measurement.simulate(relaxed.numpy(), grid, material.Ms)
        return float(((image - target) ** 2).mean() / (target ** 2).mean())

    found = find_skyrmions(m, grid)
    assert len(found) == 39
    pinning = SkyrmionPinning(grid, found, 16 * 2 * material.A * grid.dz).centered_on(grid.tensor(m))
    assert misfit(None) > 1e-4 and misfit(pinning) < 1e-9
