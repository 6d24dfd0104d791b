"""A field series (one film imaged at several applied fields) fitted jointly narrows the A-Ku-D valley.

The targets are the stray fields of one isolated skyrmion relaxed by the project's own model at the
true parameters under three perpendicular fields (its radius changes by about a fifth), with the
same Gaussian noise on each image. The series is fitted jointly and the zero-field image alone
(``fit_parameters``), both from the same start 5 % off.
"""

import threading

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.backend.inverse.field_series import fit_field_series
from napari_mmrecon.backend.inverse.parameter_fit import fit_parameters
from napari_mmrecon.backend.physics.analysis import skyrmion_radius

GRID = mm.Grid(nx=40, ny=40, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
TRUE = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
NAMES = ("Ms", "A", "Ku", "D")
STRAY = mm.StrayFieldMeasurement(height=4e-9, side="top", component="z")
FIELDS = (-60e3, 0.0, 60e3)
"""Applied H_z (A/m); the skyrmion's core points down, so a negative field grows it."""
NOISE = 0.1
"""Noise RMS as a fraction of the zero-field image's standard deviation, the same on every image."""
IMAGE = np.random.default_rng(0).standard_normal((40, 40))


@pytest.fixture(scope="module")
def series():
    """The true textures and the noisy images ``(3, ny, nx)``."""
    m = mm.relax(mm.textures.skyrmion(GRID, radius=7e-9), GRID, TRUE, tol=1e-10)
    states = [mm.relax(m, GRID, TRUE, external_field=(0.0, 0.0, h), tol=1e-10) for h in FIELDS]
    clean = np.stack([STRAY.simulate(s, GRID, TRUE.Ms) for s in states])
    sigma = NOISE * clean[1].std()
    return states, clean + sigma * np.random.default_rng(4).standard_normal(clean.shape), sigma


def test_series_narrows_the_a_ku_d_valley(series):
    states, images, sigma = series
    radii = [skyrmion_radius(s, GRID) for s in states]
    assert radii[0] > 1.1 * radii[1] and radii[1] > 1.1 * radii[2]  # the field changes the size clearly
    init = TRUE.replace(**{n: getattr(TRUE, n) * f for n, f in zip(NAMES, (1.05, 0.95, 1.05, 0.95))})
    m0 = mm.textures.skyrmion(GRID, radius=5e-9)  # a generic start, not the true texture
    single = fit_parameters(images[1], GRID, STRAY, init, m0=m0, bias="none")
    seen = []
    joint = fit_field_series(images, GRID, STRAY, FIELDS, init, m0=m0, bias="none", progress=seen.append)
    assert single.converged and joint.converged, (single.message, joint.message)
    assert joint.m.shape == (3,) + GRID.vector_shape and joint.simulated.shape == images.shape
    np.testing.assert_allclose(joint.fields[:, 2], FIELDS)
    assert [p.loss for p in seen] == joint.loss_history and seen[-1].m.shape == joint.m.shape
    np.testing.assert_allclose(joint.noise_sigma, sigma, rtol=0.1)  # each image's noise from its residual
    for name in NAMES:
        error = abs(joint.values[name] - getattr(TRUE, name))
        assert 0 < joint.uncertainty[name] and error < 3 * joint.uncertainty[name], name
        assert abs(single.values[name] - getattr(TRUE, name)) < 3 * single.uncertainty[name], name
    for name in ("A", "Ku", "D"):
        assert joint.uncertainty[name] < 0.5 * single.uncertainty[name], name
    # a single image leaves A, Ku and D almost fully correlated (the valley); the series does not
    assert single.correlation[1:, 1:].min() > 0.95 > np.abs(joint.correlation[1:, 1:] - np.eye(3)).max()
    sizes = [float(r.max()) for r in joint.radii]
    assert all(len(r) == 1 for r in joint.radii) and sizes[0] > sizes[1] > sizes[2]


def test_cancel_keeps_the_best_state(series):
    _, images, _ = series
    cancel = threading.Event()
    seen = []

    def progress(snapshot):
        seen.append(snapshot.loss)
        cancel.set()

    result = fit_field_series(images, GRID, STRAY, FIELDS, TRUE.replace(Ku=1.05 * TRUE.Ku), fit=("Ku",),
                              m0=mm.textures.skyrmion(GRID, radius=5e-9), bias="none", progress=progress,
                              cancel=cancel)
    assert result.cancelled and not result.converged and result.message == "cancelled" and len(seen) == 1
    assert np.isnan(result.uncertainty["Ku"]) and result.loss_history == seen
    assert result.m.shape == (3,) + GRID.vector_shape and np.all(np.isfinite(result.simulated))


@pytest.mark.parametrize("kwargs, match", [
    (dict(fields=(0.0, 1e4)), "2 fields for 3 images"),
    (dict(fields=np.zeros((3, 2))), "fields"),
    (dict(fields=(0.0, np.nan, 1e4)), "NaN"),
    (dict(targets=[IMAGE, np.full((40, 40), np.nan), IMAGE]), "image 1.*NaN"),
    (dict(targets=[IMAGE, IMAGE, np.ones((30, 40))]), "image 2.*shape"),
    (dict(targets=np.ones((40, 40))), "stack"),
    (dict(m0=np.ones((2,) + GRID.vector_shape)), "m0 holds 2 textures for 3 images"),
    (dict(bias="optimize"), "bias"),
    (dict(fit=("Ms", "K")), "fit"),
])
def test_bad_input_is_a_clear_value_error(kwargs, match):
    args = dict(targets=np.random.default_rng(0).standard_normal((3, 40, 40)), grid=GRID, measurement=STRAY,
                fields=FIELDS, init=TRUE)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fit_field_series(**args)


def test_a_common_image_gain_is_fitted_with_the_material(series):
    """The images 20 % stronger than the model (an unknown tip or sensor scale): the series fits one
    gain for all of them, within its stated uncertainty of 1.2, with Ku."""
    states, images, sigma = series
    joint = fit_field_series(1.2 * images, GRID, STRAY, FIELDS, TRUE, fit=("Ku", "gain"), m0=np.stack(states),
                             bias="none")
    assert joint.converged, joint.message
    for name, true in (("gain", 1.2), ("Ku", TRUE.Ku)):
        assert 0 < joint.uncertainty[name] and abs(joint.values[name] - true) < 3 * joint.uncertainty[name], name
    assert "gain" in joint.table() and joint.to_dict()["units"]["gain"] == ""
