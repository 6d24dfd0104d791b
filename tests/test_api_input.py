"""Arguments of the Python API that used to be accepted silently, hang or fail deep inside: each
is refused up front with a ValueError that names it and its value."""

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.physics.energy import EnergyModel
from napari_mmrecon.cli import main

GRID = mm.Grid(nx=16, ny=16, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
MAT = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
M0 = mm.textures.skyrmion(GRID, radius=4e-9)
STRAY = mm.StrayFieldMeasurement(height=10e-9)


def test_a_grid_too_large_for_memory_is_refused_with_its_cell_count():
    with pytest.raises(ValueError, match=r"Grid of 1000000 x 1000000 x 1 = 1000000000000 cells is too large: "
                                         r"at most 268435456 \(2\*\*28\) cells .* takes 2.4e\+04 GB"):
        mm.Grid(10**6, 10**6)


@pytest.mark.parametrize("images", [1000, -1, 2.5, True])
def test_pbc_images_are_bounded(images):
    with pytest.raises(ValueError, match=rf"Grid pbc_images must be a whole number from 0 to 32, got {images!r}"):
        mm.Grid(8, 8, pbc=True, pbc_images=images)


@pytest.mark.parametrize("height, message", [
    (1e150, r"height must be at most 1 m, got 1e\+150 m"),
    (10.0, r"got 10 m; heights are in metres: did you mean 10 nm = 1e-08 m\?"),
    ([10e-9, 2.5], r"height must be at most 1 m, got 2.5 m"),
    (float("nan"), r"height must be a positive length in metres .* \(finite and > 0\), got nan"),
    (-5e-9, r"\(finite and > 0\), got -5e-09"),
])
def test_stray_field_heights_outside_the_physical_range(height, message):
    with pytest.raises(ValueError, match=message):
        mm.stray_field(M0, GRID, 5.8e5, height)


def test_mfm_lift_heights_and_measurements_outside_the_physical_range():
    with pytest.raises(ValueError, match=r"lift_height must be at most 1 m, got 1e\+150 m"):
        mm.mfm_frequency_shift(M0, GRID, 5.8e5, 1e150)
    with pytest.raises(ValueError, match=r"lift_height must be at most .* did you mean 20 nm = 2e-08 m\?"):
        mm.MFMMeasurement(lift_height=20.0)
    with pytest.raises(ValueError, match=r"height must be at most .* did you mean 10 nm = 1e-08 m\?"):
        mm.StrayFieldMeasurement(height=torch.tensor(10.0))


@pytest.mark.parametrize("call", [
    lambda: mm.relax(M0, None, MAT),
    lambda: mm.llg(M0, None, MAT, t_end=1e-12),
    lambda: mm.energy(M0, None, MAT),
    lambda: mm.effective_field(M0, "grid", MAT),
])
def test_grid_must_be_a_grid(call):
    with pytest.raises(ValueError, match="grid must be a napari_mmrecon Grid, got (NoneType|str)"):
        call()


@pytest.mark.parametrize("tol", [-1, float("nan"), 0, 0.0, float("inf"), "1e-4", None])
def test_relax_tolerance_must_be_a_positive_number(tol):
    with pytest.raises(ValueError, match=rf"tol must be a finite number > 0 \(the stop on max \|m x H\| / Ms, "
                                         rf"dimensionless; 0 is never reached\), got {tol!r}"):
        mm.relax(M0, GRID, MAT, tol=tol)


@pytest.mark.parametrize("max_iter", [-1, 2.5, True, "10"])
def test_relax_max_iter_must_be_a_whole_number(max_iter):
    with pytest.raises(ValueError, match=rf"max_iter must be a whole number >= 0, got {max_iter!r}"):
        mm.relax(M0, GRID, MAT, max_iter=max_iter)
    with pytest.raises(ValueError, match="max_iter must be a whole number >= 0"):
        mm.minimize(EnergyModel(GRID, MAT), GRID.tensor(M0), max_iter=max_iter)


def test_relax_with_no_iterations_evaluates_the_start():
    m, info = mm.relax(2 * M0, GRID, MAT, max_iter=0, return_info=True)
    assert info.iterations == 0 and not info.converged
    np.testing.assert_allclose(m, M0, rtol=0, atol=1e-15)


def test_minimize_progress_interval_must_be_positive():
    with pytest.raises(ValueError, match="progress_every must be a whole number >= 1, got 0"):
        mm.minimize(EnergyModel(GRID, MAT), GRID.tensor(M0), progress=print, progress_every=0)


@pytest.mark.parametrize("name, value, meaning", [
    ("t_end", -1e-12, "the end time in seconds"),
    ("rtol", 0.0, "the error tolerance per step on m, dimensionless"),
    ("dt0", float("nan"), "the first trial step in seconds"),
    ("save_every", 0.0, "the interval of the saved series in seconds"),
    ("stop_torque", -1.0, r"max \|m x H\| / Ms, dimensionless"),
])
def test_llg_times_and_tolerances_must_be_positive(name, value, meaning):
    kwargs = {"t_end": 1e-12, name: value}
    with pytest.raises(ValueError, match=rf"{name} must be a finite number > 0 \({meaning}\), got {value!r}"):
        mm.llg(M0, GRID, MAT, **kwargs)


@pytest.mark.parametrize("terms, message", [
    ("exchange", r"terms must be a sequence of names such as \('exchange', 'demag'\), got the string 'exchange'"),
    (("exchange", "magnetoelastic"), r"unknown energy terms \['magnetoelastic'\]; expected a subset of"),
    ((), "terms must name at least one of"),
    (3, "terms must be a sequence of names among"),
])
def test_terms_must_name_known_terms(terms, message):
    with pytest.raises(ValueError, match=message):
        mm.relax(M0, GRID, MAT, terms=terms)
    with pytest.raises(ValueError, match=message):
        EnergyModel(GRID, MAT, terms=terms)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_starting_state_with_nan_says_so_not_its_shape(bad):
    m0 = M0.copy()
    m0[0, 3, 3, 1] = bad
    with pytest.raises(ValueError, match=r"m0 contains NaN or inf values \(1 of 768 entries\)") as relax_error:
        mm.relax(m0, GRID, MAT)
    target = mm.stray_field(M0, GRID, 5.8e5, 10e-9)[..., 2]
    with pytest.raises(ValueError, match="m0 contains 1 NaN or inf values") as fit_error:
        mm.fit_parameters(target, GRID, STRAY, MAT, m0=m0, max_iter=1)
    for error in (relax_error, fit_error):
        assert "shape" not in str(error.value)


def test_fit_parameters_needs_iterations_and_a_real_target():
    target = mm.stray_field(M0, GRID, 5.8e5, 10e-9)[..., 2]
    with pytest.raises(ValueError, match="max_iter must be a whole number >= 1, got 0"):
        mm.fit_parameters(target, GRID, STRAY, MAT, max_iter=0)
    with pytest.raises(ValueError, match=r"target must be a real image, got complex values"):
        mm.fit_parameters(target + 1j * target, GRID, STRAY, MAT)
    with pytest.raises(ValueError, match=r"target must be a real image, got complex values"):
        mm.fit_parameters(torch.tensor(target, dtype=torch.complex128), GRID, STRAY, MAT)


def test_cli_relax_with_a_zero_tolerance_is_an_error_message(tmp_path, capsys):
    assert main(["relax", "--n", "16", "--tol", "0", "-o", str(tmp_path / "x.ovf"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "tol" in err and "Traceback" not in err and "ZeroDivisionError" not in err
