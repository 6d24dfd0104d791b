"""Material parameters recovered from synthetic stray-field and MFM images made at known parameters.

The targets are relaxed states of the project's own forward model at the true parameters; every
fit starts 30 % off in every fitted parameter, from a texture shaped from the image itself.
"""

import threading
import time

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.inverse.objective import Objective
from napari_mmrecon.backend.inverse.parameter_fit import check_physical, fit_parameters
from napari_mmrecon.backend.inverse.parameter_set import Parameter, ParameterSet
from napari_mmrecon.backend.solvers.equilibrium import EquilibriumSettings

GRID = mm.Grid(nx=48, ny=48, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
TRUE = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
NAMES = ("Ms", "A", "Ku", "D")
STRAY = mm.StrayFieldMeasurement(height=4e-9, side="top", component="z")
MFM = mm.MFMMeasurement(lift_height=6e-9, side="top", tip=mm.PointDipoleTip(moment=1e-16),
                        cantilever=mm.Cantilever(k=3.0, f0=75e3, Q=200))


@pytest.fixture(scope="module")
def skyrmion():
    return mm.relax(mm.textures.skyrmion(GRID, radius=7e-9), GRID, TRUE, tol=1e-10)


def start_material(factors):
    return TRUE.replace(**{n: getattr(TRUE, n) * f for n, f in zip(NAMES, factors)})


def assert_recovered(result, rtol, names=NAMES):
    for name in names:
        true = getattr(TRUE, name)
        assert result.values[name] == pytest.approx(true, rel=rtol), (name, result.values[name], true)


def test_isolated_skyrmion_from_stray_field(skyrmion):
    target = STRAY.simulate(skyrmion, GRID, TRUE.Ms)
    seen = []
    result = fit_parameters(target, GRID, STRAY, start_material((1.3, 0.7, 1.3, 0.7)), progress=seen.append)
    assert result.converged and not result.cancelled
    assert_recovered(result, 1e-2)
    # the fit ends in a zero-bias equilibrium of the fitted material that reproduces the image
    relaxed = mm.relax(result.m, GRID, result.material, tol=1e-8)
    np.testing.assert_allclose(relaxed, result.m, atol=1e-4)
    assert np.abs(result.residual).max() < 1e-3 * np.abs(target).max()
    assert result.loss_history[-1] < 1e-8 and result.loss_history[-1] <= min(result.loss_history)
    assert set(result.bias_shift) == set(NAMES) and result.bias_field.shape == GRID.vector_shape
    assert [p.stage for p in seen][-1] == "unbiased" and "biased" in {p.stage for p in seen}
    assert result.correlation.shape == (4, 4) and np.allclose(np.diag(result.correlation), 1)
    for key in ("relax", "adjoint", "uncertainty", "outer", "total"):
        assert result.timings[key] >= 0, key
    assert "Ms\t" in result.table()


def test_isolated_skyrmion_from_mfm(skyrmion):
    target = MFM.simulate(skyrmion, GRID, TRUE.Ms)
    result = fit_parameters(target, GRID, MFM, start_material((0.7, 1.3, 0.7, 1.3)))
    assert_recovered(result, 1e-2)


def test_height_fitted_with_the_material(skyrmion):
    target = STRAY.simulate(skyrmion, GRID, TRUE.Ms)
    start = mm.StrayFieldMeasurement(height=STRAY.height * 1.3, side="top", component="z")
    result = fit_parameters(target, GRID, start, start_material((1.3, 1.3, 0.7, 1.3)),
                            fit=NAMES + ("height",))
    assert_recovered(result, 2e-2)
    assert result.values["height"] == pytest.approx(STRAY.height, rel=2e-2)
    assert result.measurement.height == pytest.approx(result.values["height"])


def test_uncertainty_covers_the_truth_with_noise(skyrmion):
    """With 10 % noise the 1-sigma intervals are honest: the truth lies within 3 sigma, the noise
    level is recovered from the residual, and a noise-free fit reports far smaller errors."""
    clean = STRAY.simulate(skyrmion, GRID, TRUE.Ms)
    sigma = 0.1 * clean.std()
    noisy = clean + sigma * np.random.default_rng(4).standard_normal(clean.shape)
    result = fit_parameters(noisy, GRID, STRAY, start_material((1.1, 0.9, 1.1, 0.9)))
    assert result.noise_sigma == pytest.approx(sigma, rel=0.1)
    for name in NAMES:
        error = abs(result.values[name] - getattr(TRUE, name))
        assert 0 < result.uncertainty[name] and error < 3 * result.uncertainty[name], name


def objective_over(start, names, target, settings):
    """The objective over ``names`` (log-scaled; the offset linear with 1e3 per unit)."""
    params = [Parameter(n, torch.tensor(start[n], dtype=torch.float64), "linear" if n == "offset" else "log",
                        1e3 if n == "offset" else 1.0) for n in names]
    return Objective(GRID, STRAY, GRID.tensor(target), ParameterSet(params), settings)


def test_objective_gradient_with_height_and_offset_matches_finite_differences(skyrmion):
    target = STRAY.simulate(skyrmion, GRID, TRUE.Ms) + 3e3
    start = dict(Ms=6e5, A=1.4e-11, Ku=8.2e5, D=2.9e-3, height=4.4e-9, offset=1e3)
    names = NAMES + ("height", "offset")
    settings = EquilibriumSettings(tol=1e-11, cg_tol=1e-12)
    objective = objective_over(start, names, target, settings)

    def loss(theta):
        return objective.evaluate(theta, GRID.tensor(skyrmion), 0.0, settings.tol, graph=True)[1]

    theta = torch.tensor([0.01, -0.02, 0.03, 0.01, -0.05, 0.2], dtype=torch.float64, requires_grad=True)
    loss(theta).backward()
    with torch.no_grad():
        for i, name in enumerate(names):
            step = torch.zeros(6, dtype=torch.float64)
            step[i] = 1e-5
            fd = (loss(theta + step) - loss(theta - step)) / 2e-5
            assert float(theta.grad[i]) == pytest.approx(float(fd), rel=1e-4, abs=1e-9), name


def test_jacobian_through_the_equilibrium_matches_finite_differences(skyrmion):
    """Each column of ``Objective.jacobian`` (tangent solves for Ms, A, Ku, D; the analytic height
    derivative; the offset) against central differences of the relaxed state's image."""
    target = STRAY.simulate(skyrmion, GRID, TRUE.Ms)
    start = dict(Ms=6e5, A=1.4e-11, Ku=8.2e5, D=2.9e-3, height=4.4e-9, offset=1e3)
    names = NAMES + ("height", "offset")
    settings = EquilibriumSettings(tol=1e-11, cg_tol=1e-12)
    objective = objective_over(start, names, target, settings)
    evaluation = objective.evaluate(torch.zeros(6, dtype=torch.float64), GRID.tensor(skyrmion), 0.0, settings.tol)
    J = objective.jacobian(evaluation)[0] * objective.norm  # d image / d (relative change; offset / 1e3)
    base = {k: v.detach() for k, v in objective.parameters.values(evaluation.theta).items()}

    def image(name, eps):
        values = dict(base)
        values[name] = base[name] + eps * 1e3 if name == "offset" else base[name] * (1 + eps)
        with torch.no_grad():
            return objective.image(objective.relaxed(values, evaluation.m, 0.0, settings.tol), values).reshape(-1)

    h = 1e-4
    for j, name in enumerate(names):
        fd = (image(name, h) - image(name, -h)) / (2 * h)
        assert float((J[:, j] - fd).norm() / fd.norm()) < 1e-5, name


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_gradient_optimizers_lower_the_misfit(skyrmion, optimizer):
    target = STRAY.simulate(skyrmion, GRID, TRUE.Ms)
    result = fit_parameters(target, GRID, STRAY, TRUE.replace(Ku=TRUE.Ku * 1.1, D=TRUE.D * 0.9), fit=("Ku", "D"),
                            m0=skyrmion, bias="none", optimizer=optimizer, max_iter=25)
    assert result.loss_history[-1] < 0.05 * result.loss_history[0]
    start_error = 0.1
    for name in ("Ku", "D"):
        assert abs(result.values[name] / getattr(TRUE, name) - 1) < start_error / 2, name


def test_cancel_keeps_the_best_state(skyrmion):
    target = STRAY.simulate(skyrmion, GRID, TRUE.Ms)
    cancel = threading.Event()
    seen = []

    cancelled_at = []

    def progress(snapshot):
        seen.append(snapshot.loss)
        cancel.set()
        cancelled_at.append(time.perf_counter())

    result = fit_parameters(target, GRID, STRAY, start_material((1.3, 0.7, 1.3, 0.7)), progress=progress,
                            cancel=cancel)
    assert time.perf_counter() - cancelled_at[0] < 1.0
    assert result.cancelled and not result.converged and len(seen) == 1 and result.message == "cancelled"
    assert all(np.isnan(v) for v in result.uncertainty.values())
    assert result.loss_history == seen
    assert result.m.shape == GRID.vector_shape and np.all(np.isfinite(result.simulated))


def test_bias_options_and_fixed_bias_array(skyrmion):
    target = STRAY.simulate(skyrmion, GRID, TRUE.Ms)
    init = TRUE.replace(Ku=TRUE.Ku * 1.05)
    for bias in ("none", np.zeros(3)):
        result = fit_parameters(target, GRID, STRAY, init, fit=("Ku",), m0=skyrmion, bias=bias)
        assert result.values["Ku"] == pytest.approx(TRUE.Ku, rel=1e-3)
    result = fit_parameters(target, GRID, STRAY, init, fit=("Ku",), bias="target", final_unbiased=False)
    assert result.bias_shift == {} and np.abs(result.bias_field).max() > 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(target=np.full((48, 48), np.nan)), "NaN"),
    (dict(target=np.ones((30, 48))), "shape"),
    (dict(target=np.ones((48, 48))), "constant"),
    (dict(pixel_size=(2e-9, 2e-9)), "pixel size"),
    (dict(init=TRUE.replace(Ms=5.8e9)), "Ms"),
    (dict(init=TRUE.replace(A=1.5e-5)), "A"),
    (dict(init=TRUE.replace(D=3.0)), "D"),
    (dict(measurement=mm.StrayFieldMeasurement(height=1.0)), "height"),
    (dict(fit=("Ms", "K")), "fit"),
    (dict(fit=("Ku",), init=TRUE.replace(Ku=0.0)), "Ku"),
    (dict(optimizer="newton"), "optimizer"),
    (dict(bias="strong"), "bias"),
    (dict(m0=np.zeros(GRID.vector_shape)), "m0"),
    (dict(measurement="Hz"), "measurement"),
])
def test_bad_input_is_a_clear_value_error(kwargs, match):
    args = dict(target=np.random.default_rng(0).standard_normal((48, 48)), grid=GRID, measurement=STRAY, init=TRUE)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fit_parameters(**args)


def test_physical_ranges():
    check_physical(dict(Ms=1e6, A=2e-11, Ku=1e6, D=-4e-3, height=1e-8))
    with pytest.raises(ValueError, match="Ku"):
        check_physical(dict(Ku=-1.0))


def test_max_iter_is_a_hard_cap_and_an_unfinished_fit_says_so(skyrmion):
    target = STRAY.simulate(skyrmion, GRID, TRUE.Ms)
    result = fit_parameters(target, GRID, STRAY, start_material((1.3, 0.7, 1.3, 0.7)), max_iter=2)
    assert result.iterations <= 2 and len(result.loss_history) <= 2
    assert not result.converged and result.message.startswith("not converged") and "max_iter" in result.message
    # short of a stationary point the uncertainties cover at least the remaining Gauss-Newton step
    for name in NAMES:
        error = abs(result.values[name] - getattr(TRUE, name))
        assert result.uncertainty[name] > 0.1 * error, name


def test_a_misfit_far_above_the_noise_is_a_poor_fit(skyrmion):
    """The image was taken at 6 nm, the fit is told 4 nm and may only change D: it ends at a
    stationary point that explains the image badly, and says so."""
    target = mm.StrayFieldMeasurement(height=6e-9).simulate(skyrmion, GRID, TRUE.Ms)
    result = fit_parameters(target, GRID, STRAY, TRUE, fit=("D",), m0=skyrmion, bias="none")
    assert not result.converged and result.message.startswith("poor fit"), result.message
    assert result.misfit > 1e-3
