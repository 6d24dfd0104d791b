"""The image's gain (a multiplicative scale, e.g. an MFM tip's unknown phase scale) fitted with its offset.

The target is the MFM image of a relaxed skyrmion made with a known tip, multiplied by a known
gain, shifted by a known offset and given noise; the material is the true one and stays fixed.
"""

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.backend.inverse.parameter_fit import fit_parameters

GRID = mm.Grid(nx=40, ny=40, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
TRUE = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
MFM = mm.MFMMeasurement(lift_height=6e-9, side="top", tip=mm.PointDipoleTip(moment=1e-16))
GAIN = 1.7


@pytest.fixture(scope="module")
def case():
    m = mm.relax(mm.textures.skyrmion(GRID, radius=6e-9), GRID, TRUE, tol=1e-10)
    clean = MFM.simulate(m, GRID, TRUE.Ms)
    offset = 0.3 * clean.std()
    sigma = 0.02 * GAIN * clean.std()
    target = GAIN * clean + offset + sigma * np.random.default_rng(7).standard_normal(clean.shape)
    return m, target, offset, sigma


def test_gain_and_offset_recovered_within_their_uncertainty(case):
    m, target, offset, sigma = case
    result = fit_parameters(target, GRID, MFM, TRUE, fit=("gain", "offset"), m0=m, bias="none",
                            pin_skyrmions=False)
    assert result.converged, result.message
    assert result.names == ("gain", "offset")
    for name, true in (("gain", GAIN), ("offset", offset)):
        error = abs(result.values[name] - true)
        assert 0 < result.uncertainty[name] and error < 3 * result.uncertainty[name], (name, error, result.uncertainty)
    assert result.uncertainty["gain"] < 0.01 * GAIN  # a meaningful statement, not a wide interval
    assert result.noise_sigma == pytest.approx(sigma, rel=0.1)
    for name in ("Ms", "A", "Ku", "D"):
        assert getattr(result.material, name) == getattr(TRUE, name)
    assert result.to_dict()["units"]["gain"] == "" and "gain\t" in result.table()

    # the same image without a gain: the fit cannot explain it
    without = fit_parameters(target, GRID, MFM, TRUE, fit=("offset",), m0=m, bias="none", pin_skyrmions=False)
    assert not without.converged and "poor fit" in without.message
    assert without.misfit > 50 * result.misfit
    assert np.sqrt(np.mean(without.residual ** 2)) > 10 * sigma


@pytest.mark.parametrize("tip", [mm.PointMonopoleTip(charge=1e-9), mm.PointDipoleTip(moment=1e-16)])
def test_jacobian_of_height_gain_and_offset_matches_finite_differences(case, tip):
    """The gain's column, and the height's (analytic for a monopole tip, by autograd for a
    dipole) at a gain of 1.3, against central differences of the image."""
    import torch

    from napari_mmrecon.backend.inverse.objective import Objective
    from napari_mmrecon.backend.inverse.parameter_set import Parameter, ParameterSet
    from napari_mmrecon.backend.solvers.equilibrium import EquilibriumSettings

    m, target, _, _ = case
    measurement = mm.MFMMeasurement(lift_height=6e-9, tip=tip)
    t = GRID.tensor
    params = ParameterSet([Parameter("height", t(7e-9)), Parameter("gain", t(1.3)),
                           Parameter("offset", t(5.0), "linear", 10.0)],
                          {name: t(getattr(TRUE, name)) for name in ("Ms", "A", "Ku", "D")})
    objective = Objective(GRID, measurement, t(target), params, EquilibriumSettings())
    evaluation = objective.evaluate(params.zeros(t(target)), t(m), 0.0, 1e-10)
    J = objective.jacobian(evaluation)[0] * objective.norm
    base = params.values(evaluation.theta)
    for j, name in enumerate(params.names):
        def image(eps):
            values = dict(base, **{name: params[name].natural(base[name], torch.tensor(eps, dtype=torch.float64))})
            return objective.image(t(m), values).reshape(-1)
        fd = (image(1e-5) - image(-1e-5)) / 2e-5
        assert float((J[:, j] - fd).norm() / fd.norm()) < 1e-6, name


def test_gain_on_the_command_line():
    from napari_mmrecon.cli import build_parser
    from napari_mmrecon.workflows.options import check

    args = build_parser().parse_args(["fit", "x.tif", "--fit", "A", "gain", "offset"])
    assert args.fit == ["A", "gain", "offset"] and check("fit", args.fit) == ("A", "gain", "offset")
    assert check("reconstruct_fit", ["Ku", "gain", "offset"]) == ("Ku", "gain", "offset")
    with pytest.raises(ValueError, match="bias"):
        check("reconstruct_fit", ["bias"])
