"""MFM frequency/phase shift: analytic on-axis values, signs, conventions, noise, gradients, bad input."""

import math

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.forward.mfm import (
    Cantilever,
    MFMMeasurement,
    PointDipoleTip,
    PointMonopoleTip,
    frequency_shift_from_phase,
    mfm_frequency_shift,
    phase_from_frequency_shift,
)
from napari_mmrecon.backend.forward.stray import stray_field

MU0 = 4e-7 * math.pi


# On the axis of a prism with half-sides a, b magnetized along z, each face (charge +-M) gives
# H_z = +-(M / pi) f(d) with f(d) = atan(a b / (d sqrt(a^2 + b^2 + d^2))), d the distance to it, so
# H_z = (M / pi) [f(d_near) - f(d_far)] on either side. Derivatives (by hand, checked below):
# f'(d) = -a b (s^2 + 2 d^2) / ((d^2 + a^2)(d^2 + b^2) sqrt(s^2 + d^2)), s^2 = a^2 + b^2, and by
# logarithmic differentiation f''/f' = 4d/(s^2 + 2d^2) - 2d/(d^2 + a^2) - 2d/(d^2 + b^2) - d/(s^2 + d^2).


def f0(d, a, b):
    return math.atan(a * b / (d * math.sqrt(a * a + b * b + d * d)))


def f1(d, a, b):
    s2 = a * a + b * b
    return -a * b * (s2 + 2 * d * d) / ((d * d + a * a) * (d * d + b * b) * math.sqrt(s2 + d * d))


def f2(d, a, b):
    s2 = a * a + b * b
    return f1(d, a, b) * (4 * d / (s2 + 2 * d * d) - 2 * d / (d * d + a * a) - 2 * d / (d * d + b * b)
                          - d / (s2 + d * d))


def test_on_axis_derivative_formulas():
    a, b = 1.3, 0.6
    for d in (0.05, 0.7, 9.0):
        step = 1e-4 * d
        fd1 = (f0(d - 2 * step, a, b) - 8 * f0(d - step, a, b) + 8 * f0(d + step, a, b) - f0(d + 2 * step, a, b)) \
            / (12 * step)
        fd2 = (f1(d + step, a, b) - f1(d - step, a, b)) / (2 * step)
        assert f1(d, a, b) == pytest.approx(fd1, rel=1e-9)
        assert f2(d, a, b) == pytest.approx(fd2, rel=1e-6)


GRID = mm.Grid(nx=5, ny=3, nz=2, dx=2e-9, dy=3e-9, dz=1.5e-9)
HALF_A, HALF_B, THICK = 2.5 * 2e-9, 1.5 * 3e-9, 3e-9
CANTILEVER = Cantilever(k=2.0, f0=70e3, Q=150)


def on_axis_derivatives(h, side, Ms):
    """Lab-frame dH_z/dz and d2H_z/dz2 on the axis of the uniformly up-magnetized GRID."""
    near, far = h, h + THICK
    sign = 1 if side == "top" else -1  # d/dz = +-d/d(distance)
    d1 = sign * Ms / math.pi * (f1(near, HALF_A, HALF_B) - f1(far, HALF_A, HALF_B))
    d2 = Ms / math.pi * (f2(near, HALF_A, HALF_B) - f2(far, HALF_A, HALF_B))
    return d1, d2


@pytest.mark.parametrize("side", ["top", "bottom"])
def test_frequency_shift_on_axis_equals_analytic(side):
    Ms = 4e5
    m = mm.textures.uniform(GRID)
    heights = [1e-9, 10e-9, 100e-9]
    dipole = PointDipoleTip(moment=2e-16)
    tilted = PointDipoleTip(moment=2e-16, direction=(0.6, 0.0, 0.8))
    monopole = PointMonopoleTip(charge=-3e-9)
    df_dipole = mfm_frequency_shift(m, GRID, Ms, heights, side, dipole, CANTILEVER)
    df_tilted = mfm_frequency_shift(m, GRID, Ms, heights, side, tilted, CANTILEVER)
    df_monopole = mfm_frequency_shift(m, GRID, Ms, heights, side, monopole, CANTILEVER)
    assert df_dipole.shape == (3, GRID.ny, GRID.nx)
    pref = -CANTILEVER.f0 / (2 * CANTILEVER.k) * MU0
    for i, h in enumerate(heights):
        d1, d2 = on_axis_derivatives(h, side, Ms)
        assert df_dipole[i, 1, 2] == pytest.approx(pref * 2e-16 * d2, rel=1e-9)
        # on the axis d2H_x/dz2 = 0 by symmetry: only the z component of the tilted moment acts
        assert df_tilted[i, 1, 2] == pytest.approx(0.8 * pref * 2e-16 * d2, rel=1e-9)
        assert df_monopole[i, 1, 2] == pytest.approx(pref * -3e-9 * d1, rel=1e-9)


def disc_grid_and_ms(cell: float, radius: float, thickness: float, Ms: float):
    """A disc of ``radius`` centred on the middle cell of a square single-layer grid with ``cell``-sized
    cells; ``Ms`` weighted by the disc's area fraction of each cell (16 x 16 sub-samples)."""
    n = 2 * int(math.ceil(1.25 * radius / cell)) + 1
    grid = mm.Grid(nx=n, ny=n, nz=1, dx=cell, dy=cell, dz=thickness)
    sub = (np.arange(16) + 0.5) / 16
    x = ((np.arange(n)[:, None] + sub[None, :]).reshape(-1) - (n // 2 + 0.5)) * cell
    inside = (x[None, :] ** 2 + x[:, None] ** 2 <= radius**2).reshape(n, 16, n, 16).mean(axis=(1, 3))
    return grid, Ms * inside[None]


def disc_on_axis(distance: float, radius: float, thickness: float, Ms: float, order: int) -> float:
    """``d^order H_z / d distance^order`` on the axis of a z-magnetized disc, ``distance`` from its face.

    Each face is a charged disc (``+-Ms``); a disc ``sigma`` gives ``H_z = sigma/2 (1 - s / sqrt(s^2 + R^2))``
    at a distance ``s`` on its axis, so ``H_z = Ms/2 [g(d + t) - g(d)]`` with ``g(s) = s / sqrt(s^2 + R^2)``,
    ``g' = R^2 / (s^2 + R^2)^(3/2)``, ``g'' = -3 R^2 s / (s^2 + R^2)^(5/2)`` (the same on both sides).
    """
    def g(s):
        q = s * s + radius * radius
        return (s / math.sqrt(q), radius**2 / q**1.5, -3 * radius**2 * s / q**2.5)[order]

    return Ms / 2 * (g(distance + thickness) - g(distance))


@pytest.mark.parametrize("side", ["top", "bottom"])
def test_disc_frequency_shift_equals_the_cylinder_closed_form(side):
    """An independent geometry for the sign and the scaling of both tip models: a disc (R = 20 nm,
    t = 2 nm) in square cells against the closed-form on-axis field of a cylinder. The cells only
    approximate the circle, so the deviation is a discretization error: below 1.5e-3 with 0.5 nm
    cells, and falling like cell^2 (over 3x smaller than with 1 nm cells)."""
    radius, thickness, Ms = 20e-9, 2e-9, 4e5
    heights = [5e-9, 20e-9, 40e-9]
    dipole, monopole = PointDipoleTip(moment=2e-16), PointMonopoleTip(charge=-3e-9)
    pref = -CANTILEVER.f0 / (2 * CANTILEVER.k) * MU0
    sign = 1 if side == "top" else -1  # lab d/dz = +-d/d(distance)
    expected = {"dipole": [pref * 2e-16 * disc_on_axis(h, radius, thickness, Ms, 2) for h in heights],
                "monopole": [pref * -3e-9 * sign * disc_on_axis(h, radius, thickness, Ms, 1) for h in heights]}
    worst = {}
    for cell in (1e-9, 0.5e-9):
        grid, Ms_map = disc_grid_and_ms(cell, radius, thickness, Ms)
        m = mm.textures.uniform(grid)
        centre = grid.ny // 2, grid.nx // 2
        for name, tip in (("dipole", dipole), ("monopole", monopole)):
            df = mfm_frequency_shift(m, grid, Ms_map, heights, side, tip, CANTILEVER)[(slice(None),) + centre]
            worst[name, cell] = max(abs(got / want - 1) for got, want in zip(df, expected[name]))
    for name in ("dipole", "monopole"):
        assert worst[name, 0.5e-9] < 1.5e-3, worst
        assert worst[name, 0.5e-9] < worst[name, 1e-9] / 3, worst


def test_attraction_gives_negative_frequency_shift():
    """Above (and below) an up-magnetized prism the stray field points up on the axis. A tip moment
    parallel to it is attracted, with a force gradient dF_z/dz > 0, so Delta f < 0, on both sides;
    a north monopole is repelled from the top face (Delta f > 0) and attracted to the bottom face."""
    Ms = 4e5
    m = mm.textures.uniform(GRID)
    h = 10e-9  # beyond the inflection of H_z(z) near the flat face
    for side, attract_monopole in (("top", False), ("bottom", True)):
        H = stray_field(m, GRID, Ms, h, side)[1, 2]
        dH = stray_field(m, GRID, Ms, h, side, z_derivative=1)[1, 2]
        assert H[2] > 0
        force = MU0 * 1e-16 * dH[2]  # F_z of an up dipole
        assert (force < 0) if side == "top" else (force > 0)  # pulled towards the film
        df = mfm_frequency_shift(m, GRID, Ms, h, side, PointDipoleTip(1e-16), CANTILEVER)[1, 2]
        assert df < 0
        df_north = mfm_frequency_shift(m, GRID, Ms, h, side, PointMonopoleTip(1e-9), CANTILEVER)[1, 2]
        assert (df_north < 0) == attract_monopole
    # an antiparallel (down) tip moment is repelled: positive shift
    down = PointDipoleTip(1e-16, direction=(0, 0, -1))
    assert mfm_frequency_shift(m, GRID, Ms, h, "top", down, CANTILEVER)[1, 2] > 0


@pytest.mark.parametrize("pbc", [False, True])
def test_frequency_shift_is_the_force_gradient_of_the_field(pbc):
    """Delta f = -(f0/2k) mu0 m_t . d2H/dz2 everywhere, with d2H/dz2 the 2nd difference in height."""
    grid = mm.Grid(nx=12, ny=10, nz=2, dx=2e-9, dy=2e-9, dz=1e-9, pbc=pbc)
    m = mm.textures.random(grid, seed=4)
    tip = PointDipoleTip(moment=3e-16, direction=(0.2, -0.3, 1.0))
    h, step = 6e-9, 5e-12
    df = mfm_frequency_shift(m, grid, 5e5, h, "bottom", tip, CANTILEVER)
    H = [stray_field(m, grid, 5e5, h + j * step, "bottom") @ np.array(tip.direction) for j in (-2, -1, 0, 1, 2)]
    # bottom side: z = -height, so d2/dz2 = d2/dheight2
    d2 = (-H[0] + 16 * H[1] - 30 * H[2] + 16 * H[3] - H[4]) / (12 * step * step)
    expected = -CANTILEVER.f0 / (2 * CANTILEVER.k) * MU0 * 3e-16 * d2
    assert np.abs(df - expected).max() < 1e-6 * np.abs(expected).max()


def test_noise():
    m = mm.textures.skyrmion(GRID, radius=3e-9)
    clean = mfm_frequency_shift(m, GRID, 4e5, 5e-9)
    noisy = mfm_frequency_shift(m, GRID, 4e5, 5e-9, noise=0.1, seed=3)
    again = mfm_frequency_shift(m, GRID, 4e5, 5e-9, noise={"relative": 0.1}, seed=3)
    other = mfm_frequency_shift(m, GRID, 4e5, 5e-9, noise=0.1, seed=4)
    np.testing.assert_array_equal(noisy, again)
    assert not np.array_equal(noisy, other)
    big = mm.Grid(nx=64, ny=64, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
    mb = mm.textures.skyrmion(big, radius=20e-9)
    clean_b = mfm_frequency_shift(mb, big, 4e5, 10e-9)
    residual = mfm_frequency_shift(mb, big, 4e5, 10e-9, noise=0.2, seed=1) - clean_b
    assert residual.std() == pytest.approx(0.2 * clean_b.std(), rel=0.05)
    residual = mfm_frequency_shift(mb, big, 4e5, 10e-9, noise={"sigma": 0.5}, seed=1) - clean_b
    assert residual.std() == pytest.approx(0.5, rel=0.05)
    assert clean.shape == noisy.shape == (GRID.ny, GRID.nx)


def test_phase_conversion_and_measurement():
    c = Cantilever(k=3.0, f0=75e3, Q=200)
    assert phase_from_frequency_shift(-1.0, c) == pytest.approx(math.degrees(-2 * 200 / 75e3))
    df = np.array([[-2.0, 0.5]])
    np.testing.assert_allclose(frequency_shift_from_phase(phase_from_frequency_shift(df, c), c), df, rtol=1e-15)
    t = torch.tensor([1.0, -3.0])
    assert isinstance(phase_from_frequency_shift(t, c), torch.Tensor)
    m = mm.textures.skyrmion(GRID, radius=3e-9)
    tip = PointMonopoleTip(2e-9)
    freq = MFMMeasurement(lift_height=5e-9, side="bottom", tip=tip, cantilever=c)
    phase = MFMMeasurement(lift_height=5e-9, side="bottom", tip=tip, cantilever=c, quantity="phase")
    assert (freq.units, phase.units) == ("Hz", "deg")
    image = freq.simulate(m, GRID, 4e5)
    np.testing.assert_array_equal(image, mfm_frequency_shift(m, GRID, 4e5, 5e-9, "bottom", tip, c))
    np.testing.assert_allclose(phase.simulate(m, GRID, 4e5), phase_from_frequency_shift(image, c), rtol=1e-15)
    # the small-shift relation: Delta phi = -(Q / k) dF/dz
    force_gradient = image / (-c.f0 / (2 * c.k))
    np.testing.assert_allclose(np.radians(phase.simulate(m, GRID, 4e5)), -c.Q / c.k * force_gradient, rtol=1e-12)


def test_kinds_and_batch():
    m = mm.textures.random(GRID, seed=1)
    out = mfm_frequency_shift(torch.tensor(m), GRID, 4e5, [3e-9, 6e-9])
    assert isinstance(out, torch.Tensor) and out.shape == (2, GRID.ny, GRID.nx)
    batch = np.stack([m, mm.textures.random(GRID, seed=2)])
    out = mfm_frequency_shift(batch, GRID, 4e5, 3e-9)
    assert isinstance(out, np.ndarray) and out.shape == (2, GRID.ny, GRID.nx)
    np.testing.assert_allclose(out[0], mfm_frequency_shift(m, GRID, 4e5, 3e-9), rtol=1e-12,
                               atol=1e-12 * np.abs(out).max())


def central_difference(f, x, step):
    return (f(x - 2 * step) - 8 * f(x - step) + 8 * f(x + step) - f(x + 2 * step)) / (12 * step)


@pytest.mark.parametrize("pbc", [False, True])
@pytest.mark.parametrize("tip", [PointDipoleTip(2e-16, (0.3, 0.1, 1.0)), PointMonopoleTip(1e-9)])
def test_gradients_match_finite_differences(pbc, tip):
    grid = mm.Grid(nx=8, ny=6, nz=2, dx=2e-9, dy=1.5e-9, dz=1e-9, pbc=pbc)
    rng = np.random.default_rng(3)
    m0 = torch.tensor(mm.textures.random(grid, seed=6))
    Ms0 = torch.tensor(5e5 * (1 + 0.3 * rng.random(grid.shape)))
    target = torch.tensor(rng.standard_normal((grid.ny, grid.nx)))
    h0 = torch.tensor(4e-9, dtype=torch.float64)

    def loss(m, Ms, h):
        df = mfm_frequency_shift(m, grid, Ms, h, "top", tip, CANTILEVER)
        return ((df - target) ** 2).sum()

    m = m0.clone().requires_grad_()
    Ms = Ms0.clone().requires_grad_()
    h = h0.clone().requires_grad_()
    loss(m, Ms, h).backward()

    def fd(base, index, step, build):
        def f(v):
            t = base.clone()
            t[index] = v
            return float(build(t))
        return central_difference(f, float(base[index]), step)

    for index in [(0, 1, 2, 0), (1, 4, 7, 2)]:
        assert float(m.grad[index]) == pytest.approx(fd(m0, index, 1e-3, lambda t: loss(t, Ms0, h0)), rel=1e-6)
    for index in [(0, 2, 3), (1, 5, 0)]:
        assert float(Ms.grad[index]) == pytest.approx(fd(Ms0, index, 1e2, lambda t: loss(m0, t, h0)), rel=1e-6)
    assert float(h.grad) == pytest.approx(fd(h0, (), 4e-12, lambda t: loss(m0, Ms0, t)), rel=1e-6)
    Ms_s = torch.tensor(5e5, requires_grad=True)
    loss(m0, Ms_s, h0).backward()
    expected = central_difference(lambda v: float(loss(m0, torch.tensor(v), h0)), 5e5, 1e2)
    assert float(Ms_s.grad) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(k=0.0), "Cantilever k"), (dict(k=-1.0), "Cantilever k"), (dict(f0=0.0), "Cantilever f0"),
    (dict(Q=float("nan")), "Cantilever Q"),
])
def test_bad_cantilever(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Cantilever(**kwargs)


def test_bad_arguments():
    m = mm.textures.uniform(GRID)
    with pytest.raises(ValueError, match="PointDipoleTip moment"):
        PointDipoleTip(moment=0.0)
    with pytest.raises(ValueError, match="PointDipoleTip direction"):
        PointDipoleTip(direction=(0, 0, 0))
    with pytest.raises(ValueError, match="PointMonopoleTip charge"):
        PointMonopoleTip(charge=float("inf"))
    with pytest.raises(ValueError, match="lift_height must be a positive length"):
        mfm_frequency_shift(m, GRID, 4e5, 0.0)
    with pytest.raises(ValueError, match="lift_height must be a positive length"):
        MFMMeasurement(lift_height=-1e-9)
    with pytest.raises(ValueError, match="side must be 'top' or 'bottom'"):
        mfm_frequency_shift(m, GRID, 4e5, 1e-9, side="left")
    with pytest.raises(ValueError, match="tip must be"):
        mfm_frequency_shift(m, GRID, 4e5, 1e-9, tip="sharp")
    with pytest.raises(ValueError, match="cantilever must be"):
        mfm_frequency_shift(m, GRID, 4e5, 1e-9, cantilever=3.0)
    with pytest.raises(ValueError, match="quantity must be"):
        MFMMeasurement(lift_height=1e-9, quantity="amplitude")
    with pytest.raises(ValueError, match="m has shape"):
        mfm_frequency_shift(m[0], GRID, 4e5, 1e-9)
    for noise in (-0.1, {"sigma": -1}, {"std": 1.0}, "loud"):
        with pytest.raises(ValueError, match="noise must be"):
            mfm_frequency_shift(m, GRID, 4e5, 1e-9, noise=noise)
    with pytest.raises(ValueError, match="seed must be an integer"):
        mfm_frequency_shift(m, GRID, 4e5, 1e-9, noise=0.1, seed=1.5)
