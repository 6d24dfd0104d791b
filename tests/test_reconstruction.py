"""Texture reconstruction (``reconstruct_texture``): the bias-field method on the strong side of an
isolated skyrmion, the baselines, image stacks, the discrepancy rule, gradients against finite
differences, cancel and bad input.

The targets are images of the bundled single-skyrmion sample, a state relaxed from a textbook
profile by the plain minimizer (``_sample_data``), not by the reconstruction.
"""

import threading
import time

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon._sample_data import load_state
from napari_mmrecon.backend.inverse.objective import Objective
from napari_mmrecon.backend.inverse.parameter_set import Parameter, ParameterSet
from napari_mmrecon.backend.inverse.reconstruction import DISCREPANCY, MISFIT_FLOOR
from napari_mmrecon.backend.solvers.equilibrium import EquilibriumSettings

M_TRUE, GRID, MATERIAL = load_state("single_skyrmion")


def image(height, side, m=M_TRUE):
    measurement = mm.StrayFieldMeasurement(height=height, side=side, component="z")
    return mm.stray_field(m, GRID, MATERIAL.Ms, height=height, side=side)[..., 2], measurement


@pytest.fixture(scope="module")
def strong():
    target, measurement = image(10e-9, "top")
    return target, measurement, mm.reconstruct_texture(target, GRID, MATERIAL, measurement)


def test_strong_side_isolated_skyrmion_within_3_degrees(strong):
    target, measurement, rec = strong
    q = mm.texture_metrics(rec.m, M_TRUE, GRID)
    assert rec.converged and rec.message.startswith("reconstructed"), rec.message
    assert q.angle_error <= 3.0 and q.mz_correlation >= 0.995
    assert q.skyrmions == q.matched == 1 and abs(q.charge - q.charge_true) < 0.1
    assert q.position_error < GRID.dx and q.radius_error < GRID.dx
    # the result is what it says: an equilibrium under its bias field, and its own image
    assert rec.m.shape == GRID.vector_shape and np.allclose(np.linalg.norm(rec.m, axis=-1), 1)
    relaxed = mm.relax(rec.m, GRID, MATERIAL, bias_field=rec.bias_field, tol=1e-6)
    assert np.degrees(np.arccos(np.clip((relaxed * rec.m).sum(-1), -1, 1))).max() < 0.5
    simulated = mm.stray_field(rec.m, GRID, MATERIAL.Ms, height=10e-9, side="top")[..., 2]
    assert np.allclose(rec.simulated, simulated) and np.allclose(rec.residual, simulated - target)
    assert rec.misfit <= MISFIT_FLOOR ** 2 and len(rec.loss_history) == rec.iterations
    assert rec.to_dict()["measurements"][0]["height"] == 10e-9


def test_weak_side_image_is_ten_times_weaker_than_the_strong_side():
    """Which side is weak: the in-plane charges of this Neel skyrmion (D > 0, core down) nearly
    cancel m_z's on the bottom (the premise of the weak-side study in docs/reconstruction.md)."""
    top, _ = image(10e-9, "top")
    bottom, _ = image(10e-9, "bottom")
    assert np.ptp(bottom) < 0.2 * np.ptp(top)


def test_baselines_return_unit_textures_and_fourier_finds_the_strong_side_core(strong):
    target, measurement, _ = strong
    fourier = mm.reconstruct_texture(target, GRID, MATERIAL, measurement, method="fourier")
    assert fourier.bias_field is None and np.allclose(np.linalg.norm(fourier.m, axis=-1), 1)
    assert mm.texture_metrics(fourier.m, M_TRUE, GRID).mz_correlation > 0.95
    energy = mm.reconstruct_texture(target, GRID, MATERIAL, measurement, method="energy")
    assert energy.converged and np.allclose(np.linalg.norm(energy.m, axis=-1), 1)
    assert mm.texture_metrics(energy.m, M_TRUE, GRID).mz_correlation > 0.99


def test_stack_of_two_heights_is_fitted_together():
    near, far = image(5e-9, "top"), image(15e-9, "top")
    stack = np.stack((near[0], far[0]))
    rec = mm.reconstruct_texture(stack, GRID, MATERIAL, [near[1], far[1]])
    assert rec.simulated.shape == stack.shape and len(rec.measurements) == 2
    assert rec.converged, rec.message
    # each image counts: both residuals are small against their own image
    for k in range(2):
        assert np.sqrt((rec.residual[k] ** 2).mean() / (stack[k] ** 2).mean()) < 1.5 * MISFIT_FLOOR
    assert mm.texture_metrics(rec.m, M_TRUE, GRID).angle_error < 3.0


def test_noise_sets_the_goal_by_the_discrepancy_principle(strong):
    target, measurement, _ = strong
    sigma = 0.1 * target.std()
    noisy = target + sigma * np.random.default_rng(3).standard_normal(target.shape)
    rec = mm.reconstruct_texture(noisy, GRID, MATERIAL, measurement, noise=sigma)
    assert rec.misfit_goal == pytest.approx((DISCREPANCY * sigma / np.sqrt((noisy ** 2).mean())) ** 2)
    assert rec.converged
    # the noise is not fitted: the residual is about the noise, not below it
    assert np.sqrt((rec.residual ** 2).mean()) > 0.7 * sigma
    q = mm.texture_metrics(rec.m, M_TRUE, GRID)
    assert q.mz_correlation > 0.995 and q.angle_error < 3.0


def test_objective_gradient_of_a_stack_matches_finite_differences():
    """The reconstruction's loss (a two-image misfit plus the bias penalty) through the equilibrium:
    its implicit gradient along a random bias-map direction and along each material parameter
    against central differences of fully re-relaxed states."""
    grid = mm.Grid(nx=24, ny=24, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
    true = {"Ms": 5.8e5, "A": 1.5e-11, "Ku": 8e5, "D": 3e-3}
    m_start = grid.tensor(mm.relax(mm.textures.skyrmion(grid, radius=6e-9), grid, mm.Material(**true), tol=1e-11))
    measurements = [mm.StrayFieldMeasurement(height=h, side=s, component="z") for h, s in ((3e-9, "top"),
                                                                                            (6e-9, "bottom"))]
    rng = np.random.default_rng(0)
    target = grid.tensor(np.stack([m.simulate(mm.textures.skyrmion(grid, radius=5e-9), grid, true["Ms"])
                                   for m in measurements]))
    beta0 = torch.tensor(0.05 * rng.standard_normal((1, 24, 24)))
    settings = EquilibriumSettings(tol=1e-11, cg_tol=1e-12)
    scalars = {k: grid.tensor(v) for k, v in true.items()}
    params = ParameterSet([Parameter("bias", beta0, "linear", 1.0), Parameter("Ku", scalars["Ku"]),
                           Parameter("D", scalars["D"])],
                          fixed={"Ms": scalars["Ms"], "A": scalars["A"], "height": grid.tensor(3e-9),
                                 "offset": grid.tensor(0.0)})
    objective = Objective(grid, measurements, target, params, settings, bias_weights=(1e-2, 1e-2))

    def loss(theta):
        return objective.evaluate(theta, m_start, 1.0, 1e-11).loss

    theta = params.zeros(target).requires_grad_(True)
    _, value = objective.evaluate(theta, m_start, 1.0, 1e-11, graph=True)
    (gradient,) = torch.autograd.grad(value, theta)
    directions = {"bias": torch.cat((torch.tensor(rng.standard_normal(24 * 24)), torch.zeros(2, dtype=torch.float64))),
                  "Ku": torch.cat((torch.zeros(24 * 24, dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64))),
                  "D": torch.cat((torch.zeros(24 * 24, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)))}
    with torch.no_grad():
        for name, direction in directions.items():
            h = 1e-4
            fd = (loss(theta.detach() + h * direction) - loss(theta.detach() - h * direction)) / (2 * h)
            assert float(gradient @ direction) == pytest.approx(fd, rel=1e-4), name


def test_progress_and_cancel_within_a_second_keep_the_best_state():
    target, measurement = image(5e-9, "top")
    cancel = threading.Event()
    seen, set_at = [], []

    def progress(snapshot):
        seen.append(snapshot)
        if not cancel.is_set():
            set_at.append(time.perf_counter())
            cancel.set()

    rec = mm.reconstruct_texture(target, GRID, MATERIAL, measurement, progress=progress, cancel=cancel)
    assert time.perf_counter() - set_at[0] < 1.0
    assert rec.cancelled and not rec.converged and rec.message.startswith("cancelled")
    assert seen[0].m.shape == GRID.vector_shape and seen[0].bias_field.shape == GRID.vector_shape
    assert rec.misfit <= seen[0].misfit * (1 + 1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"target": np.zeros((3, 5))}, "shape"),
    ({"target": np.full((64, 64), np.nan)}, "NaN"),
    ({"method": "magic"}, "method"),
    ({"init": "unet", "measurement": mm.StrayFieldMeasurement(height=10e-9, side="top", component="x")},
     "the U-Net takes H_z images"),
    ({"init": np.zeros((1, 64, 64, 3))}, "direction"),
    ({"target": np.zeros((2, 64, 64)) + np.arange(64)}, "one measurement per image"),
    ({"fit": ("Ms", "Ms")}, "distinct"),
    ({"noise": -1.0}, "noise"),
    ({"material": MATERIAL.replace(Ku=0.0)}, "Ku"),
    ({"max_iter": 0}, "max_iter"),
])
def test_bad_input_names_the_problem(kwargs, match):
    target, measurement = image(10e-9, "top")
    args = {"target": target, "grid": GRID, "material": MATERIAL, "measurement": measurement, **kwargs}
    with pytest.raises(ValueError, match=match):
        mm.reconstruct_texture(**args)


def test_texture_and_material_together_from_20_percent_off():
    """Texture with Ku and D from one noise-free image of the bundled skyrmion, 20 % off (all four of
    Ms, A, Ku, D from the 12-skyrmion film of magnum.np are in docs/reconstruction.md: minutes, too
    slow for CI)."""
    target, measurement = image(10e-9, "top")
    names = ("Ku", "D")
    start = MATERIAL.replace(Ku=MATERIAL.Ku * 1.2, D=MATERIAL.D * 0.8)
    rec = mm.reconstruct_texture(target, GRID, start, measurement, fit=names)
    assert rec.converged and rec.fit.converged, (rec.message, rec.fit.message)
    for name in names:
        assert getattr(rec.material, name) == pytest.approx(getattr(MATERIAL, name), rel=2e-2), name
        assert rec.fit.uncertainty[name] > 0
    assert mm.texture_metrics(rec.m, M_TRUE, GRID).angle_error < 1.0
    assert rec.to_dict()["fit"]["names"] == list(names)
