"""Effective fields are the exact energy gradients; parameter gradients match finite differences."""

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.physics.energy import EnergyModel


def varying_material(grid, rng):
    """Spatially varying Ms, A, Ku, D with a few vacuum cells."""
    shape = grid.shape
    Ms = 5e5 * (1 + 0.3 * rng.random(shape))
    Ms[..., 0, 0] = 0.0
    Ms[..., grid.ny // 2, grid.nx // 2] = 0.0
    return mm.Material(
        Ms=Ms,
        A=1e-11 * (1 + 0.5 * rng.random(shape)),
        Ku=3e5 * (1 + rng.random(shape)),
        D=2e-3 * (0.5 + rng.random(shape)),
        Ku_axis=(0.2, -0.1, 1.0),
    )


GRIDS = {
    "film": dict(nx=12, ny=10, nz=1, dx=1e-9, dy=1.5e-9, dz=1e-9),
    "multilayer": dict(nx=9, ny=8, nz=3, dx=2e-9, dy=1e-9, dz=0.7e-9),
    "periodic": dict(nx=10, ny=12, nz=2, dx=1e-9, dy=1e-9, dz=1e-9, pbc=True, pbc_images=2),
}


@pytest.mark.parametrize("grid_name", GRIDS)
def test_field_is_minus_energy_gradient_for_every_term(grid_name):
    rng = np.random.default_rng(0)
    grid = mm.Grid(**GRIDS[grid_name])
    mat = varying_material(grid, rng)
    bias = rng.standard_normal(grid.vector_shape) * 1e5
    model = EnergyModel(grid, mat, external_field=[1e4, 2e4, -3e4], bias_field=bias)
    assert [t.name for t in model.terms] == ["exchange", "dmi", "anisotropy", "zeeman", "demag"]
    m = torch.tensor(mm.textures.random(grid, seed=1), requires_grad=True)
    Ms = model.Ms.unsqueeze(-1)
    magnetic = (Ms > 0).expand(grid.vector_shape)
    for term in model.terms:
        (grad,) = torch.autograd.grad(term.energy(m), m)
        H = term.field(m).detach()
        expected = -grad / (mm.MU0 * Ms * grid.cell_volume)
        scale = H[magnetic].abs().max()
        assert scale > 0
        torch.testing.assert_close(H[magnetic], expected[magnetic], rtol=1e-9, atol=1e-10 * scale)
        assert torch.all(H[~magnetic] == 0), term.name


def test_total_field_and_energy_sum_terms():
    grid = mm.Grid(**GRIDS["film"])
    mat = varying_material(grid, np.random.default_rng(2))
    model = EnergyModel(grid, mat, external_field=[0, 0, 1e5])
    m = torch.tensor(mm.textures.random(grid, seed=3))
    total = sum(t.field(m) for t in model.terms)
    torch.testing.assert_close(model.field(m), total)
    E = model.energies(m)
    assert float(E["total"]) == pytest.approx(sum(float(E[k]) for k in mm.TERM_NAMES), rel=1e-14)


def central_difference(f, x0, h):
    return (f(x0 + h) - f(x0 - h)) / (2 * h)


@pytest.mark.parametrize("name, value", [("Ms", 5.8e5), ("A", 1.5e-11), ("Ku", 8e5), ("D", 3e-3)])
def test_energy_gradient_wrt_parameters_matches_finite_differences(name, value):
    grid = mm.Grid(nx=16, ny=14, nz=2, dx=1e-9, dy=1e-9, dz=1e-9)
    m = torch.tensor(mm.textures.skyrmion(grid, radius=4e-9))
    base = dict(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)

    def total(v):
        params = dict(base, **{name: v})
        return EnergyModel(grid, mm.Material(**params), external_field=[0, 0, 2e4]).energies(m)["total"]

    p = torch.tensor(value, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(total(p), p)
    fd = central_difference(lambda v: float(total(torch.tensor(v, dtype=torch.float64))), value, 1e-4 * value)
    assert float(grad) == pytest.approx(fd, rel=1e-7)


def test_energy_gradient_wrt_parameter_maps_and_bias_field():
    rng = np.random.default_rng(5)
    grid = mm.Grid(nx=10, ny=9, nz=1)
    mat = varying_material(grid, rng)
    m = torch.tensor(mm.textures.random(grid, seed=6))
    maps = {k: torch.tensor(np.asarray(getattr(mat, k)), requires_grad=True) for k in ("Ms", "A", "Ku", "D")}
    bias = torch.tensor(rng.standard_normal(grid.vector_shape) * 1e5, requires_grad=True)

    def total(params, b):
        return EnergyModel(grid, mat.replace(**params), bias_field=b).energies(m)["total"]

    grads = torch.autograd.grad(total(maps, bias), list(maps.values()) + [bias])
    cell = (0, 4, 3)
    for (name, tensor), grad in zip(maps.items(), grads):
        value = float(tensor.detach()[cell])
        h = 1e-5 * abs(value)

        def shifted(v, name=name):
            t = tensor.detach().clone()
            t[cell] = v
            return float(total(dict({k: x.detach() for k, x in maps.items()}, **{name: t}), bias.detach()))

        assert float(grad[cell]) == pytest.approx(central_difference(shifted, value, h), rel=1e-6), name
    gb = grads[-1][cell + (2,)]

    def shifted_bias(v):
        b = bias.detach().clone()
        b[cell + (2,)] = v
        return float(total({k: x.detach() for k, x in maps.items()}, b))

    assert float(gb) == pytest.approx(central_difference(shifted_bias, float(bias.detach()[cell + (2,)]), 10.0), rel=1e-8)


def test_batch_matches_single_states_with_per_state_parameters():
    grid = mm.Grid(nx=20, ny=18, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
    Ds = [1e-3, 2e-3, 3.5e-3]
    Kus = [5e5, 6e5, 8e5]
    m = np.stack([mm.textures.skyrmion(grid, radius=r) for r in (3e-9, 4e-9, 5e-9)])
    batch = EnergyModel(grid, mm.Material(Ms=5.8e5, A=1.5e-11, Ku=Kus, D=Ds), batch=3)
    Hb = batch.field(torch.tensor(m))
    Eb = batch.energies(torch.tensor(m))["total"]
    for i in range(3):
        single = EnergyModel(grid, mm.Material(Ms=5.8e5, A=1.5e-11, Ku=Kus[i], D=Ds[i]))
        torch.testing.assert_close(Hb[i], single.field(torch.tensor(m[i])), rtol=1e-12, atol=1e-6)
        assert float(Eb[i]) == pytest.approx(float(single.energies(torch.tensor(m[i]))["total"]), rel=1e-12)


def test_numpy_in_numpy_out_tensor_in_tensor_out():
    grid = mm.Grid(nx=6, ny=5, nz=1)
    m = mm.textures.random(grid)
    mat = mm.Material(Ms=5e5, A=1e-11, D=1e-3)
    H = mm.effective_field(m, grid, mat)
    assert isinstance(H, np.ndarray) and H.shape == grid.vector_shape
    Ht = mm.effective_field(torch.tensor(m), grid, mat)
    assert isinstance(Ht, torch.Tensor)
    np.testing.assert_array_equal(Ht.numpy(), H)
    assert isinstance(mm.energy(m, grid, mat)["total"], float)


@pytest.mark.parametrize("pbc", [False, True])
def test_fused_uniform_film_equals_sum_of_terms_with_parameter_gradients(pbc):
    grid = mm.Grid(nx=21, ny=14, nz=1, dx=1e-9, dy=1.5e-9, dz=1e-9, pbc=pbc, pbc_images=2)
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
              for k, v in dict(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3).items()}
    model = EnergyModel(grid, mm.Material(**params, Ku_axis=(0.3, 0.2, 1.0)), external_field=[1e4, 0, 2e4])
    assert model.fused is not None
    m = torch.tensor(mm.textures.random(grid, seed=7))
    weights = torch.tensor(np.random.default_rng(8).standard_normal(grid.vector_shape))
    fused = model.field(m)
    separate = sum(t.field(m) for t in model.terms)
    torch.testing.assert_close(fused, separate, rtol=0, atol=1e-14 * float(separate.abs().max()))
    g_fused = torch.autograd.grad((fused * weights).sum(), list(params.values()))
    g_sep = torch.autograd.grad((separate * weights).sum(), list(params.values()))
    for a, b in zip(g_fused, g_sep):
        assert float(a) == pytest.approx(float(b), rel=1e-10)


@pytest.mark.parametrize("pbc", [False, True])
def test_fused_multilayer_and_per_state_batch_equal_sum_of_terms(pbc):
    # Uniform multilayers and batches with per-state D and Ku take the fused path too; the work
    # buffers it reuses between calls must not leak one call's data into the next.
    grid = mm.Grid(nx=13, ny=10, nz=3, dx=1e-9, dy=1.5e-9, dz=0.8e-9, pbc=pbc, pbc_images=2)
    cases = [(mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3, Ku_axis=(0.3, 0.2, 1.0)), None),
             (mm.Material(Ms=5.8e5, A=1.5e-11, Ku=[8e5, 2e5], D=[3e-3, -1e-3]), 2)]
    for mat, batch in cases:
        model = EnergyModel(grid, mat, external_field=[1e4, 0, 2e4], batch=batch)
        assert model.fused is not None
        for seed in (1, 2):
            states = [mm.textures.random(grid, seed=seed + 10 * i) for i in range(batch or 1)]
            m = torch.tensor(np.stack(states) if batch else states[0])
            fused = model.field(m)
            separate = sum(t.field(m) for t in model.terms)
            torch.testing.assert_close(fused, separate, rtol=0, atol=1e-14 * float(separate.abs().max()))
