"""Tip calibration from a reference image of a known magnetization (effective point tip, transfer function).

References: images of the project's own point-tip forward model (``forward.mfm``) at a known
moment or charge and a known effective height, with Gaussian noise of known level; the recovered
values must lie within 3 of the fit's stated standard deviations, which must themselves be small.
The transfer-function check is an identity of the Fourier model: above a periodic film each mode
decays as exp(-k z), so a dipole tip's d2Hz/dz2 image is a convolution of dHz/dz, the same kernel
for any texture.
"""

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.backend.inverse.tip_calibration import (apply_transfer_function, calibrate_tip,
                                                            load_tip_calibration, tip_transfer_function)

GRID = mm.Grid(nx=48, ny=48, nz=1, dx=2e-9, dy=2e-9, dz=1e-9, pbc=True)
MS = 5e5
LIFT = 10e-9
OFFSET = 3e-9
"""The true effective height is the nominal lift plus this."""


@pytest.fixture(scope="module")
def reference():
    return mm.textures.skyrmion(GRID, radius=15e-9)


def noisy(image, relative=0.01, seed=1):
    sigma = relative * image.std()
    return image + 0.2 * image.std() + sigma * np.random.default_rng(seed).standard_normal(image.shape), sigma


def assert_within(value, true, sigma, scale):
    """``value`` within 3 sigma of ``true``, and sigma a small fraction of ``scale``."""
    assert 0 < sigma < 1e-2 * abs(scale), (sigma, scale)
    assert abs(value - true) < 3 * sigma, (value, true, sigma)


def test_dipole_moment_and_height_offset_recovered(reference):
    truth = mm.MFMMeasurement(lift_height=LIFT + OFFSET, tip=mm.PointDipoleTip(3e-16))
    image, sigma = noisy(truth.simulate(reference, GRID, MS))
    calibration = calibrate_tip(image, reference, GRID, MS, mm.MFMMeasurement(lift_height=LIFT))
    assert calibration.model == "dipole" and calibration.monopole is None
    assert calibration.dipole.direction == (0.0, 0.0, 1.0)
    assert_within(calibration.dipole.moment, 3e-16, calibration.uncertainty["moment"], 3e-16)
    assert_within(calibration.height_offset, OFFSET, calibration.uncertainty["height_offset"], LIFT)
    assert calibration.lift_height == LIFT
    assert calibration.residual_rms == pytest.approx(sigma, rel=0.1)
    # the calibrated measurement reproduces the reference image to its noise
    model = calibration.measurement().simulate(reference, GRID, MS) + calibration.image_offset
    assert np.sqrt(np.mean((model - image) ** 2)) == pytest.approx(sigma, rel=0.1)
    # without the height the same image is explained far worse
    fixed = calibrate_tip(image, reference, GRID, MS, mm.MFMMeasurement(lift_height=LIFT), fit_height=False)
    assert fixed.height_offset == 0 and "height_offset" not in fixed.uncertainty
    assert fixed.residual_rms > 5 * calibration.residual_rms


def test_monopole_charge_in_phase_recovered(reference):
    truth = mm.MFMMeasurement(lift_height=LIFT + OFFSET, tip=mm.PointMonopoleTip(-2e-9), quantity="phase")
    image, _ = noisy(truth.simulate(reference, GRID, MS), seed=2)
    start = mm.MFMMeasurement(lift_height=LIFT, quantity="phase")
    calibration = calibrate_tip(image, reference, GRID, MS, start, model="monopole")
    assert calibration.dipole is None and calibration.quantity == "phase"
    assert_within(calibration.monopole.charge, -2e-9, calibration.uncertainty["charge"], 2e-9)
    assert_within(calibration.height_offset, OFFSET, calibration.uncertainty["height_offset"], LIFT)
    # at another lift height the calibrated measurement is the true tip there
    other = calibration.measurement(lift_height=20e-9)
    assert other.lift_height == pytest.approx(20e-9 + calibration.height_offset)
    assert other.quantity == "phase" and other.tip == calibration.monopole


def test_both_poles_tell_a_dipole_apart(reference):
    """A dipole tip's image fitted with both poles: the charge comes out zero within its error."""
    truth = mm.MFMMeasurement(lift_height=LIFT + OFFSET, tip=mm.PointDipoleTip(3e-16))
    image, _ = noisy(truth.simulate(reference, GRID, MS), seed=3)
    calibration = calibrate_tip(image, reference, GRID, MS, mm.MFMMeasurement(lift_height=LIFT), model="both")
    assert abs(calibration.monopole.charge) < 3 * calibration.uncertainty["charge"]
    assert abs(calibration.dipole.moment - 3e-16) < 3 * calibration.uncertainty["moment"]
    assert calibration.measurement().tip == mm.PointDipoleMonopoleTip(calibration.dipole, calibration.monopole)


def test_negative_moment_reverses_the_direction(reference):
    truth = mm.MFMMeasurement(lift_height=LIFT, tip=mm.PointDipoleTip(1e-16, (0, 0, -1)))
    image = truth.simulate(reference, GRID, MS)
    calibration = calibrate_tip(image, reference, GRID, MS, mm.MFMMeasurement(lift_height=LIFT), fit_height=False)
    assert calibration.dipole.direction == (0.0, 0.0, -1.0)
    assert calibration.dipole.moment == pytest.approx(1e-16, rel=1e-9)


def test_save_load_round_trip(reference, tmp_path):
    truth = mm.MFMMeasurement(lift_height=LIFT + OFFSET, tip=mm.PointDipoleTip(3e-16), side="bottom",
                              cantilever=mm.Cantilever(k=2.0, f0=60e3, Q=300))
    image, _ = noisy(truth.simulate(reference, GRID, MS), seed=4)
    start = mm.MFMMeasurement(lift_height=LIFT, side="bottom", cantilever=truth.cantilever)
    calibration = calibrate_tip(image, reference, GRID, MS, start)
    path = calibration.save(tmp_path / "tip.json")
    loaded = load_tip_calibration(path)
    assert loaded == calibration
    assert loaded.measurement(15e-9) == calibration.measurement(15e-9)
    assert loaded.measurement().side == "bottom" and loaded.measurement().cantilever == truth.cantilever
    assert mm.load_tip_calibration(path) == calibration and isinstance(calibration, mm.TipCalibration)


def test_bad_input_is_named(reference, tmp_path):
    measurement = mm.MFMMeasurement(lift_height=LIFT)
    image = measurement.simulate(reference, GRID, MS)
    nan = image.copy()
    nan[3, 4] = np.nan
    bad_m = np.array(reference)
    bad_m[0, 1, 2] = np.nan
    for args, kwargs, match in [
        ((nan, reference, GRID, MS, measurement), {}, "reference_image contains 1 NaN"),
        ((image[:-1], reference, GRID, MS, measurement), {}, "reference_image has shape"),
        ((image, reference[:, :-1], GRID, MS, measurement), {}, "m_reference has shape"),
        ((image, bad_m, GRID, MS, measurement), {}, "m_reference"),
        ((image, reference, GRID, MS, mm.StrayFieldMeasurement(height=LIFT)), {}, "needs an MFMMeasurement"),
        ((image, reference, GRID, MS, measurement), {"model": "quadrupole"}, "model must be one of"),
        ((image, reference, GRID, -1.0, measurement), {}, "Ms must be >= 0"),
    ]:
        with pytest.raises(ValueError, match=match):
            calibrate_tip(*args, **kwargs)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        load_tip_calibration(tmp_path / "broken.json")
    (tmp_path / "other.json").write_text('{"schema": 1, "kind": "fit"}')
    with pytest.raises(ValueError, match="other.json"):
        load_tip_calibration(tmp_path / "other.json")
    with pytest.raises(ValueError, match="field_map has shape"):
        apply_transfer_function(tip_transfer_function(image, image), image[:-1])
    with pytest.raises(ValueError, match="regularization"):
        tip_transfer_function(image, image, regularization=0)


def test_transfer_function_reproduces_the_tip_on_another_texture():
    """A TF deconvolved from a dipole tip's image of a labyrinth and its dHz/dz reproduces that
    tip's image of two skyrmions (never seen) within 1 %."""
    grid = mm.Grid(nx=64, ny=64, nz=1, dx=2e-9, dy=2e-9, dz=1e-9, pbc=True)
    tip = mm.MFMMeasurement(lift_height=LIFT, tip=mm.PointDipoleTip(2e-16))
    labyrinth = mm.textures.labyrinth(grid, period=30e-9, seed=1)
    skyrmions = mm.textures.skyrmions(grid, [(30e-9, 40e-9), (90e-9, 80e-9)], radius=12e-9)

    def dhz(m):
        return mm.stray_field_projection(m, grid, MS, LIFT, "z", z_derivative=1)

    transfer = tip_transfer_function(tip.simulate(labyrinth, grid, MS), dhz(labyrinth))
    predicted = apply_transfer_function(transfer, dhz(skyrmions))
    expected = tip.simulate(skyrmions, grid, MS)
    assert np.linalg.norm(predicted - expected) < 1e-2 * np.linalg.norm(expected)
    # the kernel is real, centred, and the Fourier TF is its transform
    kernel = transfer.kernel
    assert kernel.shape == (64, 64) and np.unravel_index(np.abs(kernel).argmax(), kernel.shape) == (32, 32)
    np.testing.assert_allclose(np.fft.fft2(np.fft.ifftshift(kernel)), transfer.fourier, atol=1e-9 * np.abs(
        transfer.fourier).max())


def test_cli_calibrate_tip_round_trip(tmp_path, capsys):
    """A reference (a known tip 3 nm above the nominal lift) written as TIFF and OVF: calibrate-tip
    recovers the tip, and --tip FILE reproduces the reference image at the nominal lift."""
    from napari_mmrecon import cli

    grid = mm.Grid(nx=32, ny=32, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
    m = mm.textures.skyrmion(grid, radius=12e-9)
    truth = mm.MFMMeasurement(lift_height=LIFT + OFFSET, tip=mm.PointDipoleTip(3e-16))
    image_file, ovf = tmp_path / "reference.tif", tmp_path / "m.ovf"
    mm.write_tiff(image_file, truth.simulate(m, grid, MS), (grid.dy, grid.dx))
    mm.write_ovf(ovf, m, grid)
    tip = tmp_path / "tip.json"
    command = ["calibrate-tip", str(image_file), "--magnetization", str(ovf), "--Ms", str(MS), "--lift", "10e-9",
               "--model", "dipole", "-o", str(tip)]
    assert cli.main(command + ["--quiet"]) == 0
    assert "dipole moment 3e-16" in capsys.readouterr().out
    calibration = load_tip_calibration(tip)
    assert calibration.dipole.moment == pytest.approx(3e-16, rel=1e-6)
    assert calibration.height_offset == pytest.approx(3e-9, rel=1e-5)
    # never over an existing file without --overwrite, never over an input
    assert cli.main(command) == 2 and "exists already" in capsys.readouterr().err
    assert cli.main(command[:-1] + [str(ovf), "--overwrite"]) == 2
    assert "ending in .json" in capsys.readouterr().err
    # the calibrated tip in the simulator: the reference image back at the nominal lift height
    again = tmp_path / "again"
    assert cli.main(["simulate", str(ovf), "--Ms", str(MS), "--heights", "10e-9", "--outputs", "frequency_shift",
                     "--tip", str(tip), "-o", str(again), "--quiet"]) == 0
    reference, simulated = mm.read_tiff(image_file)[0], mm.read_tiff(again / "mfm_df_top_10nm.tif")[0]
    np.testing.assert_allclose(simulated, reference, rtol=0, atol=1e-5 * np.abs(reference).max())
    # and in the fit and the reconstruction: the measurement is the calibrated one at the nominal lift
    for command in ("fit", "reconstruct"):
        args = cli.build_parser().parse_args([command, str(again / "mfm_df_top_10nm.tif"), "--tip", str(tip)])
        measurement = cli._fit_measurement(args, mm.read_tiff(again / "mfm_df_top_10nm.tif")[2],
                                           cli._tip_calibration(args))
        assert measurement == calibration.measurement(10e-9)
    assert cli.main(["fit", str(again / "mfm_df_top_10nm.tif"), "--measurement", "stray", "--tip", str(tip)]) == 2
    assert "calibrated MFM tip" in capsys.readouterr().err
    (tmp_path / "tip.txt").write_text("")
    assert cli.main(["fit", str(image_file), "--tip", str(tmp_path / "tip.txt")]) == 2
    assert "neither a tip model" in capsys.readouterr().err
