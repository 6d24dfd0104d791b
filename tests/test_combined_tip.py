"""The point tip with both a dipole and a monopole (``PointDipoleMonopoleTip``).

References: the force gradient is linear in the tip, so the combined tip's image is exactly the
dipole tip's image plus the monopole tip's (computed through the one-pole tips, whose own
references are in test_mfm.py); its height derivative is checked against central differences; and
a "both" calibration of a reference simulated with a known combined tip recovers it within 3 of its
stated standard deviations.
"""

import json

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.forward.measurement import image_operator, simulate_image
from napari_mmrecon.backend.forward.mfm import tip_from_dict
from napari_mmrecon.backend.inverse.tip_calibration import calibrate_tip, load_tip_calibration

GRID = mm.Grid(nx=32, ny=32, nz=1, dx=2e-9, dy=2e-9, dz=1e-9, pbc=True)
MS = 5e5
LIFT = 10e-9
OFFSET = 3e-9
DIPOLE = mm.PointDipoleTip(3e-16, (0.6, 0.0, 0.8))
MONOPOLE = mm.PointMonopoleTip(-1.5e-8)
"""Of about equal weight in the image at 10 nm above a 12 nm skyrmion (charge ~ moment x k)."""
TIP = mm.PointDipoleMonopoleTip(DIPOLE, MONOPOLE)


@pytest.fixture(scope="module")
def skyrmion():
    return mm.textures.skyrmion(GRID, radius=12e-9)


@pytest.mark.parametrize("quantity, side", [("frequency_shift", "top"), ("phase", "bottom")])
def test_combined_image_is_the_dipole_image_plus_the_monopole_image(skyrmion, quantity, side):
    def image(tip):
        return mm.MFMMeasurement(lift_height=LIFT, side=side, tip=tip, quantity=quantity).simulate(skyrmion, GRID, MS)

    dipole, monopole = image(DIPOLE), image(MONOPOLE)
    assert np.abs(dipole).max() > 0.2 * np.abs(monopole).max() and np.abs(monopole).max() > 0.2 * np.abs(dipole).max()
    np.testing.assert_allclose(image(TIP), dipole + monopole, rtol=0, atol=1e-12 * np.abs(dipole + monopole).max())
    np.testing.assert_allclose(mm.mfm_frequency_shift(skyrmion, GRID, MS, [LIFT, 2 * LIFT], side, TIP),
                               sum(mm.mfm_frequency_shift(skyrmion, GRID, MS, [LIFT, 2 * LIFT], side, tip)
                                   for tip in (DIPOLE, MONOPOLE)), rtol=1e-12, atol=0)
    # the fits' operator (M in A/m -> image) is the same map
    measurement = mm.MFMMeasurement(lift_height=LIFT, side=side, tip=TIP, quantity=quantity)
    M = GRID.tensor(np.asarray(skyrmion)) * MS
    np.testing.assert_allclose(image_operator(measurement, GRID)(M).numpy(), image(TIP), rtol=1e-12,
                               atol=1e-14 * np.abs(image(TIP)).max())


def test_combined_image_height_derivative_by_autograd_matches_central_differences(skyrmion):
    """The fits differentiate the image w.r.t. the (fitted) lift height by autograd."""
    measurement = mm.MFMMeasurement(lift_height=LIFT, tip=TIP)
    m = GRID.tensor(np.asarray(skyrmion))
    height = torch.tensor(LIFT, dtype=torch.float64, requires_grad=True)
    weights = torch.linspace(-1.0, 1.0, GRID.nx * GRID.ny, dtype=torch.float64).reshape(GRID.ny, GRID.nx)
    (gradient,) = torch.autograd.grad((simulate_image(measurement, m, GRID, MS, height) * weights).sum(), height)
    step = 1e-11
    with torch.no_grad():
        plus, minus = ((simulate_image(measurement, m, GRID, MS, LIFT + s) * weights).sum() for s in (step, -step))
    assert float(gradient) == pytest.approx(float(plus - minus) / (2 * step), rel=1e-5)


def test_combined_tip_records_round_trip():
    assert mm.PointDipoleMonopoleTip.from_dict(json.loads(json.dumps(TIP.to_dict()))) == TIP
    assert tip_from_dict(TIP.to_dict()) == TIP
    measurement = mm.MFMMeasurement(lift_height=LIFT, tip=TIP, side="bottom")
    assert mm.MFMMeasurement.from_dict(json.loads(json.dumps(measurement.to_dict()))) == measurement
    with pytest.raises(ValueError, match="monopole must be a PointMonopoleTip"):
        mm.PointDipoleMonopoleTip(DIPOLE, DIPOLE)
    with pytest.raises(ValueError, match="monopole"):
        mm.PointDipoleMonopoleTip.from_dict({"model": "both", "dipole": DIPOLE.to_dict()})


def test_both_calibration_recovers_a_combined_tip_and_is_one(skyrmion, tmp_path):
    """A reference image of the combined tip 3 nm above the nominal lift, with 1 % noise and an
    offset: the "both" calibration's moment, charge and height offset lie within 3 sigma; its tip is
    the combined tip, which reproduces the reference to its noise, and survives the JSON file."""
    truth = mm.MFMMeasurement(lift_height=LIFT + OFFSET, tip=TIP).simulate(skyrmion, GRID, MS)
    sigma = 0.01 * truth.std()
    image = truth + 0.2 * truth.std() + sigma * np.random.default_rng(5).standard_normal(truth.shape)
    start = mm.MFMMeasurement(lift_height=LIFT, tip=mm.PointDipoleTip(1e-16, DIPOLE.direction))
    calibration = calibrate_tip(image, skyrmion, GRID, MS, start, model="both")
    for value, true, name in ((calibration.dipole.moment, DIPOLE.moment, "moment"),
                              (calibration.monopole.charge, MONOPOLE.charge, "charge"),
                              (calibration.height_offset, OFFSET, "height_offset")):
        error = calibration.uncertainty[name]
        assert 0 < error < 1e-2 * abs(true) and abs(value - true) < 3 * error, (name, value, true, error)
    assert calibration.dipole.direction == DIPOLE.direction
    assert calibration.tip == mm.PointDipoleMonopoleTip(calibration.dipole, calibration.monopole)
    model = calibration.measurement().simulate(skyrmion, GRID, MS) + calibration.image_offset
    assert np.sqrt(np.mean((model - image) ** 2)) == pytest.approx(sigma, rel=0.1)
    loaded = load_tip_calibration(calibration.save(tmp_path / "tip.json"))
    assert loaded == calibration and loaded.measurement(15e-9) == calibration.measurement(15e-9)


def test_cli_takes_a_both_calibration_as_the_tip(skyrmion, tmp_path):
    """``--tip FILE.json`` of a "both" calibration: the simulator's image is the calibrated combined
    tip's, and the fit's and reconstruction's measurement is the calibration's."""
    from napari_mmrecon import cli

    grid = mm.Grid(nx=32, ny=32, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
    m = mm.textures.skyrmion(grid, radius=12e-9)
    calibration = mm.TipCalibration(model="both", dipole=DIPOLE, monopole=MONOPOLE, height_offset=OFFSET,
                                    lift_height=LIFT)
    tip, ovf, out = tmp_path / "tip.json", tmp_path / "m.ovf", tmp_path / "out"
    calibration.save(tip)
    mm.write_ovf(ovf, m, grid)
    assert cli.main(["simulate", str(ovf), "--Ms", str(MS), "--heights", "10e-9", "--outputs", "frequency_shift",
                     "--tip", str(tip), "-o", str(out), "--quiet"]) == 0
    simulated, _, meta = mm.read_tiff(out / "mfm_df_top_10nm.tif")
    expected = calibration.measurement().simulate(m, grid, MS)
    np.testing.assert_allclose(simulated, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    for command in ("fit", "reconstruct"):
        args = cli.build_parser().parse_args([command, str(out / "mfm_df_top_10nm.tif"), "--tip", str(tip)])
        measurement = cli._fit_measurement(args, meta, cli._tip_calibration(args))
        assert measurement == calibration.measurement(10e-9) and measurement.tip == TIP
