"""Material parameters from a film of many skyrmions relaxed by another solver.

The target is the stray field of a film relaxed by magnum.np 2.2.0 (``tests/data``,
``make_magnumnp_reference.py film``): Neel skyrmions started at random positions with different
radii, a texture family the fit's own start (sharp domains shaped from the image) is not. The fit
ends in the film without bias, each skyrmion held where the image has it; it must recover the
material from starts 30 % off in either direction, keep a start at the truth, and report honest
uncertainties with noise.
"""

from pathlib import Path

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.backend.inverse.parameter_fit import fit_parameters

DATA = np.load(Path(__file__).parent / "data" / "magnumnp_film_64x64x1.npz")
GRID = mm.Grid(nx=64, ny=64, nz=1, dx=float(DATA["dx"]), dy=float(DATA["dy"]), dz=float(DATA["dz"]))
TRUE = mm.Material(Ms=float(DATA["Ms"]), A=float(DATA["A"]), Ku=float(DATA["Ku"]), D=float(DATA["Di"]))
NAMES = ("Ms", "A", "Ku", "D")
STRAY = mm.StrayFieldMeasurement(height=6e-9, side="top", component="z")
M_TRUE = DATA["m_relaxed"]
TARGET = STRAY.simulate(M_TRUE, GRID, TRUE.Ms)


def start_material(factors):
    return TRUE.replace(**{n: getattr(TRUE, n) * f for n, f in zip(NAMES, factors)})


@pytest.mark.parametrize("factors", [(1.3, 0.7, 1.3, 0.7), (0.7, 1.3, 0.7, 1.3)])
def test_film_recovered_from_starts_30_percent_off(factors):
    result = fit_parameters(TARGET, GRID, STRAY, start_material(factors))
    assert result.converged and result.message.startswith("converged"), result.message
    for name in NAMES:
        assert result.values[name] == pytest.approx(getattr(TRUE, name), rel=1e-2), name
    assert len(result.centers) == int(DATA["skyrmions_relaxed"])
    assert abs(mm.topological_charge(result.m) - float(DATA["Q_relaxed"])) < 0.5


def test_film_with_5_percent_noise_within_the_reported_two_sigma():
    noisy = TARGET + 0.05 * TARGET.std() * np.random.default_rng(11).standard_normal(TARGET.shape)
    result = fit_parameters(noisy, GRID, STRAY, start_material((0.8, 1.2, 0.8, 1.2)))
    assert result.converged, result.message
    assert result.noise_sigma == pytest.approx(0.05 * TARGET.std(), rel=0.1)
    for name in NAMES:
        error = abs(result.values[name] - getattr(TRUE, name))
        assert 0 < result.uncertainty[name] and error < 2 * result.uncertainty[name], name


def test_a_fit_started_at_the_truth_stays_there():
    result = fit_parameters(TARGET, GRID, STRAY, TRUE, m0=M_TRUE)
    assert result.converged, result.message
    for name in NAMES:
        assert result.values[name] == pytest.approx(getattr(TRUE, name), rel=1e-3), name
