"""Stray field on planes above/below the film against independent analytic references.

The open-film reference is written here from a different formulation than the implementation
(which sums Newell-type corner antiderivatives of the cell kernel): the whole prism is replaced
by its six charged faces, and the field of a uniformly charged rectangle is computed from its
solid angle (Van Oosterom-Strackee, normal part) and from the line integrals of 1/|r - r'| along
its edges (tangential part), in numpy extended precision. The periodic reference is the field of
each Fourier mode of the piecewise-constant magnetization, derived from its surface and volume
charges.
"""

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import integrate

import napari_mmrecon as mm
from napari_mmrecon.backend.forward.stray import (
    StrayFieldMeasurement,
    open_kernel_quadrant,
    stray_field,
    stray_field_projection,
)

LD = np.longdouble


# --------------------------------------------------------------------------- open reference


def _cross(a, b):
    return np.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1], a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], axis=-1)


def _dot(a, b):
    return (a * b).sum(-1)


def _norm(a):
    return np.sqrt(_dot(a, a))


def _triangle_solid_angle(p, a, b, c):
    """Signed solid angle of triangle abc seen from p (negative when abc is counter-clockwise seen from p)."""
    ra, rb, rc = a - p, b - p, c - p
    num = _dot(ra, _cross(b - a, c - a))
    na, nb, nc = _norm(ra), _norm(rb), _norm(rc)
    den = na * nb * nc + _dot(ra, rb) * nc + _dot(ra, rc) * nb + _dot(rb, rc) * na
    return 2 * np.arctan2(num, den)


def charged_rectangle_field(points, vertices, normal, sigma):
    """H (A/m) at ``points (..., 3)`` of a rectangle with charge density sigma (A/m).

    ``vertices`` run counter-clockwise around the unit ``normal``. Normal part: ``sigma Omega / 4 pi``
    away from the sheet; tangential part: ``sigma / 4 pi sum_edges nu_e ln((Ra + Rb + L) / (Ra + Rb - L))``
    with ``nu_e`` the outward in-plane edge normal.
    """
    v = [np.asarray(x, dtype=LD) for x in vertices]
    n = np.asarray(normal, dtype=LD)
    omega = _triangle_solid_angle(points, v[0], v[1], v[2]) + _triangle_solid_angle(points, v[0], v[2], v[3])
    H = -omega[..., None] * n
    for i in range(4):
        a, b = v[i], v[(i + 1) % 4]
        length = _norm(b - a)
        nu = _cross(((b - a) / length)[None], n[None])[0]
        ra, rb = _norm(a - points), _norm(b - points)
        H = H + nu * np.log((ra + rb + length) / (ra + rb - length))[..., None]
    return sigma * H / (4 * np.pi)


def prism_field(points, lo, hi, M):
    """H (A/m) of the prism ``lo <= r <= hi`` uniformly magnetized with ``M`` (A/m), from its faces."""
    x0, y0, z0 = (LD(c) for c in lo)
    x1, y1, z1 = (LD(c) for c in hi)
    faces = [
        ([(x1, y0, z0), (x1, y1, z0), (x1, y1, z1), (x1, y0, z1)], (1, 0, 0)),
        ([(x0, y0, z0), (x0, y0, z1), (x0, y1, z1), (x0, y1, z0)], (-1, 0, 0)),
        ([(x0, y1, z0), (x0, y1, z1), (x1, y1, z1), (x1, y1, z0)], (0, 1, 0)),
        ([(x0, y0, z0), (x1, y0, z0), (x1, y0, z1), (x0, y0, z1)], (0, -1, 0)),
        ([(x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)], (0, 0, 1)),
        ([(x0, y0, z0), (x0, y1, z0), (x1, y1, z0), (x1, y0, z0)], (0, 0, -1)),
    ]
    H = np.zeros(points.shape, dtype=LD)
    for vertices, normal in faces:
        sigma = LD(float(np.dot(M, normal)))
        if sigma != 0:
            H = H + charged_rectangle_field(points, vertices, normal, sigma)
    return H


def test_reference_against_coulomb_quadrature():
    """The face-charge reference equals a direct dblquad of the surface-charge Coulomb field."""
    lo, hi, M = (0.0, 0.0, 0.0), (2.0, 1.0, 0.5), np.array([0.3, -0.5, 0.8])
    p = np.array([2.7, -0.4, 1.1])
    expected = np.zeros(3)
    for axis in range(3):
        u, v = [a for a in range(3) if a != axis]
        for coord, sign in ((hi[axis], 1), (lo[axis], -1)):
            def integrand(b, a, comp):
                q = np.empty(3)
                q[axis], q[u], q[v] = coord, a, b
                d = p - q
                return d[comp] / np.linalg.norm(d) ** 3
            for comp in range(3):
                val, _ = integrate.dblquad(integrand, lo[u], hi[u], lo[v], hi[v], args=(comp,),
                                           epsabs=1e-13, epsrel=1e-12)
                expected[comp] += sign * M[axis] * val / (4 * np.pi)
    got = prism_field(p[None].astype(LD), lo, hi, M)[0].astype(float)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max())


def on_axis_hz(d_near, d_far, a, b, M):
    """On-axis H_z of a z-magnetized prism (half-sides a, b) at distances d_near, d_far from its faces."""
    def f(d):
        return math.atan(a * b / (d * math.sqrt(a * a + b * b + d * d)))
    return M / math.pi * (f(d_near) - f(d_far))


def test_reference_on_axis_closed_form():
    a, b, c, M = 1.5, 0.7, 0.4, 2.0
    for d in (0.1, 1.0, 7.0):
        p = np.array([[a, b, c + d], [a, b, -d]], dtype=LD)
        H = prism_field(p, (0, 0, 0), (2 * a, 2 * b, c), (0.0, 0.0, M)).astype(float)
        assert H[0, 2] == pytest.approx(on_axis_hz(d, d + c, a, b, M), rel=1e-14)
        assert H[1, 2] == pytest.approx(on_axis_hz(d, d + c, a, b, M), rel=1e-14)
        np.testing.assert_allclose(H[:, :2], 0, atol=1e-15 * abs(H[0, 2]))


def plane_points(grid, z):
    x, y, _ = grid.cell_centers()
    X, Y = np.meshgrid(x, y)
    return np.stack([X, Y, np.full_like(X, z)], axis=-1).astype(LD)


def block_prism(grid, block, M):
    """``(m, Ms map, lo, hi)`` for a uniformly magnetized block of cells inside the grid."""
    (x0, x1), (y0, y1), (z0, z1) = block
    Ms = np.zeros(grid.shape)
    Ms[z0:z1, y0:y1, x0:x1] = np.linalg.norm(M)
    m = np.broadcast_to(np.asarray(M, float) / np.linalg.norm(M), grid.vector_shape).copy()
    lo = (x0 * grid.dx, y0 * grid.dy, z0 * grid.dz)
    hi = (x1 * grid.dx, y1 * grid.dy, z1 * grid.dz)
    return m, Ms, lo, hi


def plane_z(grid, height, side):
    return grid.nz * grid.dz + height if side == "top" else -height


PRISMS = {
    "one cell": (dict(nx=7, ny=6, nz=1, dx=2e-9, dy=1.5e-9, dz=1e-9), ((3, 4), (2, 3), (0, 1))),
    "5x3x2 in a multilayer": (dict(nx=12, ny=9, nz=3, dx=1e-9, dy=2e-9, dz=0.7e-9), ((2, 7), (3, 6), (1, 3))),
    "16x16x1 full film": (dict(nx=16, ny=16, nz=1, dx=2e-9, dy=2e-9, dz=0.5e-9), ((0, 16), (0, 16), (0, 1))),
}
DIRECTIONS = [(1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0), (0.3, -0.5, 0.8)]
HEIGHT_CELLS = (0.5, 1.0, 3.0, 10.0, 40.0)


@pytest.mark.parametrize("side", ["top", "bottom"])
@pytest.mark.parametrize("name", PRISMS)
def test_prism_equals_analytic_cuboid(name, side):
    kwargs, block = PRISMS[name]
    grid = mm.Grid(**kwargs)
    heights = [f * max(grid.cell_size) for f in HEIGHT_CELLS]
    for M in DIRECTIONS:
        m, Ms, lo, hi = block_prism(grid, block, 4e5 * np.asarray(M))
        H = stray_field(m, grid, Ms, heights, side=side)
        assert H.shape == (len(heights), grid.ny, grid.nx, 3)
        for i, h in enumerate(heights):
            ref = prism_field(plane_points(grid, plane_z(grid, h, side)), lo, hi, 4e5 * np.asarray(M)).astype(float)
            err = np.abs(H[i] - ref).max() / np.abs(ref).max()
            assert err < 1e-9, (M, h, err)


@pytest.mark.parametrize("side", ["top", "bottom"])
def test_z_derivatives_equal_high_order_differences_of_reference(side):
    """d/dz and d2/dz2 kernels (analytic) against 5-point differences of the longdouble reference."""
    grid = mm.Grid(nx=7, ny=6, nz=2, dx=2e-9, dy=1.5e-9, dz=1e-9)
    M = 4e5 * np.array([0.3, -0.5, 0.8])
    m, Ms, lo, hi = block_prism(grid, ((3, 5), (2, 3), (0, 2)), M)
    for h in (1e-9, 4e-9, 20e-9):
        step = LD(h + 4e-9) * LD(2e-3)
        z = LD(plane_z(grid, h, side))
        ref = {}
        for k in (-2, -1, 0, 1, 2):
            pts = plane_points(grid, 0.0)
            pts[..., 2] = z + k * step
            ref[k] = prism_field(pts, lo, hi, M)
        d1 = ((ref[-2] - 8 * ref[-1] + 8 * ref[1] - ref[2]) / (12 * step)).astype(float)
        d2 = ((-ref[-2] + 16 * ref[-1] - 30 * ref[0] + 16 * ref[1] - ref[2]) / (12 * step * step)).astype(float)
        for order, expected in ((1, d1), (2, d2)):
            got = stray_field(m, grid, Ms, h, side=side, z_derivative=order)
            assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-8, (h, order)


@pytest.mark.parametrize("side", ["top", "bottom"])
def test_far_planes_approach_the_point_dipole(side):
    """Heights of 1e3..1e5 film sizes: the field (and its z-derivatives) of the total moment."""
    grid = mm.Grid(nx=5, ny=4, nz=2, dx=2e-9, dy=1.5e-9, dz=1e-9)
    M = 3e5 * np.array([0.3, -0.5, 0.8])
    m, Ms, lo, hi = block_prism(grid, ((0, 5), (0, 4), (0, 2)), M)
    center = np.array([(a + b) / 2 for a, b in zip(lo, hi)], dtype=LD)
    moment = (M * np.prod(np.subtract(hi, lo))).astype(LD)
    size = max(np.subtract(hi, lo))

    def dipole_field(z):
        r = plane_points(grid, 0.0) - center
        r[..., 2] += z
        rn = np.sqrt(_dot(r, r))[..., None]
        return (3 * r * _dot(r, moment)[..., None] / rn**5 - moment / rn**3) / (4 * np.pi)

    for factor in (1e3, 1e4, 1e5):
        h = factor * size
        z, step = LD(plane_z(grid, h, side)), LD(1e-3 * h)
        H = [dipole_field(z + j * step) for j in (-2, -1, 0, 1, 2)]
        expected = [H[2], (H[0] - 8 * H[1] + 8 * H[3] - H[4]) / (12 * step),
                    (-H[0] + 16 * H[1] - 30 * H[2] + 16 * H[3] - H[4]) / (12 * step * step)]
        for order in (0, 1, 2):
            got = stray_field(m, grid, Ms, h, side=side, z_derivative=order)
            ref = expected[order].astype(float)
            err = np.abs(got - ref).max() / np.abs(ref).max()
            assert err < 2 / factor**2, (factor, order, err)  # multipole corrections ~ (size / r)^2


def closed_form_kernel(X, Y, w_lo, w_hi, hx, hy, order):
    """``d^order/dz^order K_ab`` (xx, yy, xy, xz, yz) of a cell ``[-hx, hx] x [-hy, hy] x [z0, z1]`` seen
    from ``(X, Y, z)`` with ``w = z - z'`` in ``[w_lo, w_hi]``: the 8-corner sum of the cuboid's
    antiderivatives in 40-digit arithmetic (z-derivatives by mpmath's high-precision differences).
    The formula is the one ``test_prism_equals_analytic_cuboid`` checks against the face charges."""
    corner = (
        lambda u, v, w: -mpmath.atan(v * w / (u * mpmath.sqrt(u * u + v * v + w * w))),
        lambda u, v, w: -mpmath.atan(u * w / (v * mpmath.sqrt(u * u + v * v + w * w))),
        lambda u, v, w: mpmath.asinh(w / mpmath.sqrt(u * u + v * v)),
        lambda u, v, w: mpmath.asinh(v / mpmath.sqrt(u * u + w * w)),
        lambda u, v, w: mpmath.asinh(u / mpmath.sqrt(v * v + w * w)),
    )

    def kernel(shift, component):
        total = mpmath.mpf(0)
        for su, u in ((1, X + hx), (-1, X - hx)):
            for sv, v in ((1, Y + hy), (-1, Y - hy)):
                for sw, w in ((1, w_hi + shift), (-1, w_lo + shift)):
                    total += su * sv * sw * corner[component](u, v, w)
        return total / (4 * mpmath.pi)

    with mpmath.workdps(40):
        values = [kernel(0, c) if order == 0 else mpmath.diff(lambda s, c=c: kernel(s, c), 0, order)
                  for c in range(5)]
        return np.array([float(v) for v in values])


def test_kernel_in_every_quadrature_band_equals_the_high_precision_closed_form():
    """Cells within 3 cell sizes use the corner sums; farther ones Gauss-Legendre rules of falling
    order. Every band, for H and both z-derivatives, against the 40-digit closed form: the accuracy
    stray.py states (1e-12 within 400 cell sizes, 4e-11 beyond), which the prism tests (all within
    ~50 cell sizes) do not reach."""
    grid = mm.Grid(nx=900, ny=40, nz=1, dx=2e-9, dy=1.5e-9, dz=1e-9)
    names = ("xx", "yy", "xy", "xz", "yz")
    offsets = [(1, 1), (4, 3), (9, 0), (20, 5), (50, 30), (200, 7), (450, 2), (899, 39)]
    for order in (0, 1, 2):
        for height_cells in (0.5, 40.0):
            h = height_cells * grid.dx
            K = open_kernel_quadrant(grid, torch.tensor([h], dtype=torch.float64), "top", order)
            for i, j in offsets:
                with mpmath.workdps(40):
                    X, Y = mpmath.mpf(i) * mpmath.mpf(grid.dx), mpmath.mpf(j) * mpmath.mpf(grid.dy)
                    expected = closed_form_kernel(X, Y, mpmath.mpf(h), mpmath.mpf(h) + mpmath.mpf(grid.dz),
                                                  mpmath.mpf(grid.dx) / 2, mpmath.mpf(grid.dy) / 2, order)
                got = np.array([float(K[name][0, 0, j, i]) for name in names])
                err = np.abs(got - expected).max() / np.abs(expected).max()
                distance = math.sqrt((i * grid.dx) ** 2 + (j * grid.dy) ** 2 + (h + grid.dz / 2) ** 2) / grid.dx
                assert err < (1e-12 if distance < 400 else 4e-11), (order, height_cells, (i, j), err)


# --------------------------------------------------------------------------- periodic reference


def mode_field(qx, qy, A, z0, z1, z):
    """Complex H amplitudes (3, ...) of modes ``A e^{i q . rho}`` (A/m) in a layer ``z0 <= z' <= z1``,
    at a height ``z`` outside it; ``qx, qy`` are arrays of wave vectors (1/m).

    Charges: volume ``-i q . A`` (uniform), surfaces ``+A_z`` (top) and ``-A_z`` (bottom). A sheet
    ``sigma`` at ``z'`` has potential ``sigma e^{-|q||z - z'|} / (2|q|)``; ``H = -grad phi``.
    """
    qn = np.hypot(qx, qy)
    rho = -1j * (qx * A[0] + qy * A[1])
    near, far = (z - z1, z - z0) if z > z1 else (z0 - z, z1 - z)
    decay = np.exp(-qn * near) - np.exp(-qn * far)
    sheet_charge = A[2] if z > z1 else -A[2]  # the nearer face's charge
    phi = sheet_charge * decay / (2 * qn) + rho * decay / (2 * qn * qn)
    dz_sign = -1 if z > z1 else 1  # phi ~ e^{-|q| z} above, e^{+|q| z} below
    return np.stack([-1j * qx * phi, -1j * qy * phi, -dz_sign * qn * phi])


def staircase_field(grid, k, A, layers, z, aliases=14):
    """Field at the cell centres of cells holding ``Re(A e^{i k . r_cell})`` in ``layers``.

    The staircase's Fourier coefficient at ``k + G`` (``G = 2 pi (p / dx, q / dy)``) is
    ``sinc(kx dx / 2) sinc(ky dy / 2) e^{-i pi (p + q)}`` times that of the samples, and
    ``e^{i G . r}`` at a cell centre is ``e^{i pi (p + q)}``: the aliases add with the sinc weights.
    ``aliases = 14`` reaches ``e^{-2 pi 14 t / d} < 1e-19`` for planes ``t >= d / 2`` away.
    """
    p, q = np.meshgrid(np.arange(-aliases, aliases + 1), np.arange(-aliases, aliases + 1), indexing="ij")
    qx, qy = k[0] + 2 * np.pi * p / grid.dx, k[1] + 2 * np.pi * q / grid.dy
    weight = np.sinc(qx * grid.dx / (2 * np.pi)) * np.sinc(qy * grid.dy / (2 * np.pi))
    keep = np.abs(weight) > 1e-14  # sinc zeros: a sinusoid constant along one axis
    total = sum((weight[keep] * mode_field(qx[keep], qy[keep], A, layer * grid.dz, (layer + 1) * grid.dz, z)).sum(-1)
                for layer in layers)
    x, y, _ = grid.cell_centers()
    phase = np.exp(1j * (k[0] * x[None, :] + k[1] * y[:, None]))
    return np.real(total[None, None, :] * phase[..., None])


NEEL_HELICES = {
    # grid, (jx, jy) periods across the film, in-plane rotation direction angle
    "along x": (dict(nx=32, ny=2, nz=1, dx=1e-9, dy=1e-9, dz=2e-9), (3, 0)),
    "along y, two layers": (dict(nx=2, ny=24, nz=2, dx=1.5e-9, dy=1e-9, dz=1e-9), (0, 2)),
    "diagonal": (dict(nx=16, ny=16, nz=1, dx=1e-9, dy=1.25e-9, dz=1e-9), (1, 2)),
}


@pytest.mark.parametrize("name", NEEL_HELICES)
def test_periodic_neel_helix_equals_mode_sum(name):
    """m = (sin(k.r) k^, cos(k.r)): unit length; the continuum helix is one-sided (Mallinson), so the
    top-side field comes only from the cell aliases and checks them separately."""
    kwargs, (jx, jy) = NEEL_HELICES[name]
    grid = mm.Grid(pbc=True, **kwargs)
    k = (2 * np.pi * jx / (grid.nx * grid.dx), 2 * np.pi * jy / (grid.ny * grid.dy))
    khat = np.array(k) / math.hypot(*k)
    x, y, _ = grid.cell_centers()
    phase = k[0] * x[None, :] + k[1] * y[:, None]
    m = np.zeros(grid.vector_shape)
    m[..., 0] = khat[0] * np.sin(phase)
    m[..., 1] = khat[1] * np.sin(phase)
    m[..., 2] = np.cos(phase)
    Ms = 5e5
    A = Ms * np.array([-1j * khat[0], -1j * khat[1], 1.0])  # Re(A e^{i phase}) = Ms m
    heights = [f * grid.dx for f in (0.5, 2.0, 8.0)]
    fields = {}
    for side in ("top", "bottom"):
        H = stray_field(m, grid, Ms, heights, side=side)
        for i, h in enumerate(heights):
            ref = staircase_field(grid, k, A, range(grid.nz), plane_z(grid, h, side))
            scale = np.abs(ref).max()
            assert np.abs(H[i] - ref).max() <= 1e-9 * scale + 1e-12 * Ms, (side, h)
        fields[side] = np.abs(H).max(axis=(1, 2, 3))
    assert fields["top"][0] < 0.05 * fields["bottom"][0]
    assert fields["top"][-1] < 1e-9 * fields["bottom"][-1]


def test_periodic_uniform_film_has_no_stray_field():
    grid = mm.Grid(nx=8, ny=6, nz=2, dx=1e-9, dy=2e-9, dz=1e-9, pbc=True)
    m = mm.textures.uniform(grid, direction=(0.3, 0.4, 1.0))
    H = stray_field(m, grid, 8e5, [0.5e-9, 3e-9], side="bottom")
    assert np.abs(H).max() < 1e-9


def test_periodic_matches_open_far_from_the_edges():
    """A skyrmion in the middle of a 256 x 256 film: the open field of (skyrmion - uniform state)
    is the periodic field up to the field of the periodic images (~1e-4 of the maximum here)."""
    grid = mm.Grid(nx=256, ny=256, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
    periodic = grid.with_(pbc=True)
    sk = mm.textures.skyrmion(grid, radius=15e-9)
    up = mm.textures.uniform(grid)
    heights = [2e-9, 10e-9]
    H_open = stray_field(sk, grid, 5.8e5, heights) - stray_field(up, grid, 5.8e5, heights)
    H_per = stray_field(sk, periodic, 5.8e5, heights)
    for i in range(len(heights)):
        err = np.abs(H_open[i] - H_per[i]).max() / np.abs(H_per[i]).max()
        assert err < 5e-4, (heights[i], err)


def test_periodic_z_derivatives_are_exact():
    """On a periodic grid d/dz is exact (a -+|k| factor per alias): compare with 5-point differences
    of the mode sum, and of stray_field itself along +z (i.e. +-d/dheight)."""
    grid = mm.Grid(nx=24, ny=2, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, pbc=True)
    k = (2 * np.pi * 2 / (grid.nx * grid.dx), 0.0)
    x, _, _ = grid.cell_centers()
    m = np.zeros(grid.vector_shape)
    m[..., 0], m[..., 2] = np.sin(k[0] * x), np.cos(k[0] * x)
    A = np.array([-1j, 0, 1.0])
    h, step = 3e-9, 2e-12

    def five_point(values):
        return (values[0] - 8 * values[1] + 8 * values[3] - values[4]) / (12 * step)

    for side, sign in (("top", 1), ("bottom", -1)):
        z = plane_z(grid, h, side)
        d1 = five_point([staircase_field(grid, k, A, [0], z + j * step) for j in (-2, -1, 0, 1, 2)])
        got = stray_field(m, grid, 1.0, h, side=side, z_derivative=1)
        assert np.abs(got - d1).max() < 1e-7 * np.abs(d1).max()
        own = sign * five_point([stray_field(m, grid, 1.0, h + j * step, side=side) for j in (-2, -1, 0, 1, 2)])
        assert np.abs(got - own).max() < 1e-7 * np.abs(got).max()


# --------------------------------------------------------------------------- API behaviour


def test_kinds_shapes_batch_and_float32():
    grid = mm.Grid(nx=6, ny=5, nz=2)
    m = mm.textures.random(grid, seed=3)
    H = stray_field(m, grid, 5e5, 2e-9)
    assert isinstance(H, np.ndarray) and H.shape == (5, 6, 3)
    Ht = stray_field(torch.tensor(m), grid, 5e5, 2e-9)
    assert isinstance(Ht, torch.Tensor) and Ht.dtype == torch.float64
    np.testing.assert_array_equal(Ht.numpy(), H)
    assert isinstance(stray_field(m, grid, torch.tensor(5e5), 2e-9), torch.Tensor)
    Hl = stray_field(m, grid, 5e5, [2e-9, 5e-9])
    assert Hl.shape == (2, 5, 6, 3)
    np.testing.assert_allclose(Hl[0], H, rtol=1e-13, atol=1e-13 * np.abs(H).max())
    batch = np.stack([m, mm.textures.random(grid, seed=4)])
    Hb = stray_field(batch, grid, np.array([5e5, 2e5]), [2e-9, 5e-9], side="bottom")
    assert Hb.shape == (2, 2, 5, 6, 3)
    np.testing.assert_allclose(Hb[1], stray_field(batch[1], grid, 2e5, [2e-9, 5e-9], side="bottom"),
                               rtol=1e-12, atol=1e-12 * np.abs(Hb).max())
    H32 = stray_field(m, grid.with_(dtype=torch.float32), 5e5, 2e-9)
    assert H32.dtype == np.float32
    np.testing.assert_allclose(H32, H, atol=1e-5 * np.abs(H).max())


def test_projection_and_measurement():
    grid = mm.Grid(nx=9, ny=7, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
    m = mm.textures.random(grid, seed=5)
    H = stray_field(m, grid, 6e5, 10e-9)
    axis = np.array([0.2, -0.4, 1.0])
    expected = H @ (axis / np.linalg.norm(axis))
    got = stray_field_projection(m, grid, 6e5, 10e-9, axis)
    np.testing.assert_allclose(got, expected, atol=1e-12 * np.abs(H).max())
    meas = StrayFieldMeasurement(height=10e-9, side="top", component="z")
    np.testing.assert_allclose(meas.simulate(m, grid, 6e5), H[..., 2], atol=1e-12 * np.abs(H).max())
    assert StrayFieldMeasurement(height=10e-9, component=axis).axis == pytest.approx(axis / np.linalg.norm(axis))


# --------------------------------------------------------------------------- gradients


def central_difference(f, x, step):
    """4th-order central difference of scalar f at x (float)."""
    return (f(x - 2 * step) - 8 * f(x - step) + 8 * f(x + step) - f(x + 2 * step)) / (12 * step)


@pytest.mark.parametrize("pbc", [False, True])
@pytest.mark.parametrize("side", ["top", "bottom"])
def test_gradients_match_finite_differences(pbc, side):
    grid = mm.Grid(nx=8, ny=6, nz=2, dx=2e-9, dy=1.5e-9, dz=1e-9, pbc=pbc)
    rng = np.random.default_rng(7)
    m0 = torch.tensor(mm.textures.random(grid, seed=2))
    Ms0 = torch.tensor(5e5 * (1 + 0.3 * rng.random(grid.shape)))
    weights = torch.tensor(rng.standard_normal((2, grid.ny, grid.nx, 3)))
    h0 = torch.tensor([2e-9, 6e-9], dtype=torch.float64)

    def loss(m, Ms, h):
        H = stray_field(m, grid, Ms, h, side=side)
        return (weights * H).sum() + 1e-6 * (H**2).sum()

    m = m0.clone().requires_grad_()
    Ms = Ms0.clone().requires_grad_()
    h = h0.clone().requires_grad_()
    loss(m, Ms, h).backward()

    def fd_entry(base, index, step, build):
        def f(v):
            t = base.clone()
            t[index] = v
            return float(build(t))
        return central_difference(f, float(base[index]), step)

    for index in [(0, 1, 2, 0), (1, 4, 7, 2), (1, 0, 3, 1)]:
        fd = fd_entry(m0, index, 1e-3, lambda t: loss(t, Ms0, h0))
        assert float(m.grad[index]) == pytest.approx(fd, rel=1e-6)
    for index in [(0, 2, 3), (1, 5, 0)]:
        fd = fd_entry(Ms0, index, 1e2, lambda t: loss(m0, t, h0))
        assert float(Ms.grad[index]) == pytest.approx(fd, rel=1e-6)
    for index in [(0,), (1,)]:
        fd = fd_entry(h0, index, 2e-12, lambda t: loss(m0, Ms0, t))
        assert float(h.grad[index]) == pytest.approx(fd, rel=1e-6)
    # scalar Ms
    Ms_s = torch.tensor(5e5, requires_grad=True)
    loss(m0, Ms_s, h0).backward()
    fd = central_difference(lambda v: float(loss(m0, torch.tensor(v), h0)), 5e5, 1e2)
    assert float(Ms_s.grad) == pytest.approx(fd, rel=1e-6)


def test_differentiable_height_path_equals_cached_path():
    grid = mm.Grid(nx=20, ny=12, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
    m = torch.tensor(mm.textures.random(grid, seed=9))
    for pbc in (False, True):
        g = grid.with_(pbc=pbc)
        cached = stray_field(m, g, 5e5, 1.5e-9)
        h = torch.tensor(1.5e-9, dtype=torch.float64, requires_grad=True)
        traced = stray_field(m, g, 5e5, h)
        torch.testing.assert_close(traced.detach(), cached, rtol=0, atol=1e-12 * float(cached.abs().max()))


# --------------------------------------------------------------------------- bad input


GRID = mm.Grid(nx=4, ny=3, nz=1)


def test_bad_magnetization():
    with pytest.raises(ValueError, match=r"m has shape \(1, 4, 3, 3\)"):
        stray_field(np.ones((1, 4, 3, 3)), GRID, 5e5, 1e-9)
    m = mm.textures.uniform(GRID)
    m[0, 1, 1, 2] = np.nan
    with pytest.raises(ValueError, match="m contains NaN"):
        stray_field(m, GRID, 5e5, 1e-9)


@pytest.mark.parametrize("height", [0.0, -1e-9, np.nan, np.inf, [1e-9, 0.0], [[1e-9]], "high"])
def test_bad_height(height):
    with pytest.raises(ValueError, match="height must be a positive length"):
        stray_field(mm.textures.uniform(GRID), GRID, 5e5, height)


def test_bad_side_ms_derivative_axis():
    m = mm.textures.uniform(GRID)
    with pytest.raises(ValueError, match="side must be 'top' or 'bottom'"):
        stray_field(m, GRID, 5e5, 1e-9, side="above")
    with pytest.raises(ValueError, match="Ms must be >= 0"):
        stray_field(m, GRID, -1.0, 1e-9)
    with pytest.raises(ValueError, match=r"Ms has shape \(3, 4\)"):
        stray_field(m, GRID, np.ones((3, 4)), 1e-9)
    with pytest.raises(ValueError, match="Ms contains NaN"):
        stray_field(m, GRID, np.nan, 1e-9)
    with pytest.raises(ValueError, match="z_derivative must be 0, 1 or 2"):
        stray_field(m, GRID, 5e5, 1e-9, z_derivative=3)
    with pytest.raises(ValueError, match="axis must be"):
        stray_field_projection(m, GRID, 5e5, 1e-9, axis=(0, 0, 0))
    with pytest.raises(ValueError, match="component must be"):
        StrayFieldMeasurement(height=1e-9, component="w")
