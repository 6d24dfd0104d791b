"""An isolated Neel skyrmion relaxed here and by magnum.np on the same grid and parameters.

The reference (tests/data/magnumnp_skyrmion_64x64x1.npz) was made by
tests/data/make_magnumnp_reference.py with magnum.np 2.2.0: LLG relaxation and its
Barzilai-Borwein minimizer from the same start, 64x64x1 cells of 1 nm, all terms, open boundaries.
"""

from pathlib import Path

import numpy as np
import pytest

import napari_mmrecon as mm

REF = np.load(Path(__file__).parent / "data" / "magnumnp_skyrmion_64x64x1.npz")


@pytest.fixture(scope="module")
def relaxed():
    grid = mm.Grid(nx=64, ny=64, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
    mat = mm.Material(Ms=float(REF["Ms"]), A=float(REF["A"]), Ku=float(REF["Ku"]), D=float(REF["Di"]))
    m, info = mm.relax(REF["m_start"], grid, mat, return_info=True)
    return grid, mat, m, info


def test_radius_matches_magnumnp_llg(relaxed):
    grid, _, m, info = relaxed
    assert info.converged
    assert mm.skyrmion_radius(m, grid) == pytest.approx(float(REF["radius_llg"]), rel=0.02)
    # in fact far closer than the 2 % asked for
    assert mm.skyrmion_radius(m, grid) == pytest.approx(float(REF["radius_llg"]), rel=1e-3)


def test_energies_per_term_match_magnumnp(relaxed):
    grid, mat, m, _ = relaxed
    E = mm.energy(m, grid, mat)
    for term in ("exchange", "dmi", "anisotropy", "demag"):
        assert E[term] == pytest.approx(float(REF[f"E_{term}_llg"]), rel=3e-4), term
    assert E["total"] == pytest.approx(float(REF["E_llg"]), rel=1e-6)


def test_magnumnp_state_is_an_equilibrium_here(relaxed):
    # The independent solver's state has no torque in this project's field: the two discretized
    # fields agree (measured: 2.5e-9; magnum.np stopped at its own max torque 1.4e-3 A/m / Ms).
    grid, mat, m, _ = relaxed
    H = mm.effective_field(REF["m_llg"], grid, mat)
    torque = np.linalg.norm(np.cross(REF["m_llg"], H), axis=-1).max() / mat.Ms
    assert torque < 1e-7
    np.testing.assert_allclose(m, REF["m_llg"], atol=2e-3)
