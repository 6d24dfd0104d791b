"""muMAG standard problem 4, field 1, on a coarse grid, against magnum.np and mumax3.

The reference (tests/data/magnumnp_sp4_coarse.npz) was made by tests/data/make_magnumnp_reference.py
with magnum.np 2.2.0 on the same 100 x 25 x 1 grid of 5 x 5 x 3 nm cells; it also records the
mumax3 reference values of <m> from mumax3's own test (test/standardproblem4.mx3).
"""

from pathlib import Path

import numpy as np
import pytest

import napari_mmrecon as mm

REF = np.load(Path(__file__).parent / "data" / "magnumnp_sp4_coarse.npz")


def first_zero_crossing(t, x):
    i = np.nonzero((x[:-1] > 0) & (x[1:] <= 0))[0][0]
    return t[i] + (t[i + 1] - t[i]) * x[i] / (x[i] - x[i + 1])


@pytest.fixture(scope="module")
def sp4():
    grid = mm.Grid(nx=100, ny=25, nz=1, dx=5e-9, dy=5e-9, dz=3e-9)
    mat = mm.Material(Ms=8e5, A=1.3e-11, alpha=0.02)
    m0 = mm.textures.uniform(grid, (1.0, 0.25, 0.1))
    s_state = mm.relax(m0, grid, mat, tol=1e-7)
    run = mm.llg(s_state, grid, mat, t_end=1e-9, external_field=REF["H_ext"], save_every=2e-12, rtol=1e-6)
    return s_state, run


def test_s_state_matches_references(sp4):
    s_state, _ = sp4
    mean = s_state.reshape(-1, 3).mean(0)
    np.testing.assert_allclose(mean, REF["m_relaxed_mean"], atol=2e-3)
    np.testing.assert_allclose(mean, REF["ref_mumax3_m_relaxed"], atol=3e-3)  # mumax3: 128x32 cells


def test_switching_dynamics_match_magnumnp(sp4):
    _, run = sp4
    t, mx, my = run.t, run.m_mean[:, 0], run.m_mean[:, 1]
    assert first_zero_crossing(t, mx) == pytest.approx(float(REF["t_mx_zero"]), rel=0.01)
    i = np.argmin(my[t < 0.4e-9])
    assert t[i] == pytest.approx(float(REF["t_my_min"]), rel=0.02)
    assert my[i] == pytest.approx(float(REF["my_min"]), rel=0.01)
    ref = np.array([np.interp(t, REF["t"], REF["m_mean"][:, c]) for c in range(3)]).T
    assert np.abs(run.m_mean - ref)[t <= 0.5e-9].max() < 0.02


def test_state_after_one_nanosecond_matches_mumax3(sp4):
    _, run = sp4
    np.testing.assert_allclose(run.m_mean[-1], REF["ref_mumax3_m_1ns"], atol=0.02)
