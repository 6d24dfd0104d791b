"""Multilayers two ways (``physics.multilayer``): the effective layer and the full stack.

References, all independent of the implementation:

- the effective parameters of an [Ir(1)/Fe(0.3)/Co(0.6)/Pt(1)] x 20 stack, computed by hand;
- the stray field of a uniformly magnetized prism from its two charged faces (solid angle of a
  rectangle), written here; its z-derivatives by mpmath's high-precision differences;
- per in-plane Fourier mode ``k`` the field of the stack is the effective layer's times
  ``R(k) = e^{-k s} (1 - e^{-k t_m}) / (f (1 - e^{-k P}))``, from the charge sheets of the layers
  (``s``: spacer above each magnetic layer); for the centred layout ``R = sinh(k t_m / 2) /
  (f sinh(k P / 2)) = 1 - (k P)^2 (1 - f^2) / 24 + O(k^4)``, so that outside the film
  ``H_stack = H_eff - c d^2 H_eff / dz^2 + O(P^4)`` with ``c = (P^2 - t_m^2) / 24`` (``k^2 -> -d^2/dz^2``
  by Laplace's equation);
- the energy of the uniform states: a laterally infinite stack has the shape anisotropy
  ``f mu0 Ms^2 / 2`` per volume, and exchange and DMI energies of a texture uniform through the
  thickness are the same in both ways.
"""

import math

import mpmath
import numpy as np
import pytest

import napari_mmrecon as mm

MU0 = 4e-7 * math.pi

# [Ir(1)/Fe(0.3)/Co(0.6)/Pt(1)] x 20, parameters of the Fe/Co layer in the range of Soumyanarayanan
# et al., Nat. Mater. 16, 898 (2017)
IRFECOPT = dict(magnetic_thickness=0.9e-9, spacer_thickness=2e-9, repeats=20, Ms=1.2e6, A=1.1e-11, Ku=1.0e6,
                D=2.0e-3, alpha=0.3)


# --------------------------------------------------------------------------- references


def prism_hz(x, y, z, box, Ms):
    """H_z (A/m) at points ``(x, y, z)`` above or below a prism ``box = (x1, x2, y1, y2, z1, z2)`` (m)
    magnetized ``Ms`` along +z: the faces carry ``+-Ms``, each giving ``sigma Omega / (4 pi)`` with
    the solid angle ``Omega`` of the rectangle (signed: positive above a positive sheet)."""
    x1, x2, y1, y2, z1, z2 = box
    total = 0.0
    for sigma, zs in ((Ms, z2), (-Ms, z1)):
        w = z - zs
        omega = 0.0
        for su, u in ((1, x2 - x), (-1, x1 - x)):
            for sv, v in ((1, y2 - y), (-1, y1 - y)):
                omega = omega + su * sv * np.arctan(u * v / (w * np.sqrt(u * u + v * v + w * w)))
        total = total + sigma * omega / (4 * math.pi)
    return total


def prism_hz_dz2_on_axis(z, half, z1, z2, Ms):
    """``d^2 H_z / dz^2`` (A/m^3) on the axis of a square prism of half side ``half`` (m), by mpmath."""
    def hz(zz):
        def omega(w):
            return 4 * mpmath.atan(half * half / (w * mpmath.sqrt(2 * half * half + w * w)))
        return Ms * (omega(zz - z2) - omega(zz - z1)) / (4 * mpmath.pi)

    with mpmath.workdps(40):
        return float(mpmath.diff(hz, mpmath.mpf(z), 2))


def transfer_ratio(k, stack, spacer_above):
    """``R(k)``: the stack's field over the effective layer's, per in-plane wave number ``k`` (1/m)."""
    f, tm, P = stack.magnetic_fraction, stack.magnetic_thickness, stack.period
    return np.exp(-k * spacer_above) * -np.expm1(-k * tm) / (f * -np.expm1(-k * P))


# --------------------------------------------------------------------------- the effective layer


def test_effective_parameters_by_hand():
    stack = mm.Multilayer(**IRFECOPT)
    material, thickness = mm.effective_layer(stack)
    f = 9 / 29  # 0.9 nm of Fe/Co in a 2.9 nm period
    assert stack.period == pytest.approx(2.9e-9, rel=1e-14, abs=0)
    assert stack.magnetic_fraction == pytest.approx(f, rel=1e-14, abs=0)
    assert thickness == pytest.approx(20 * 2.9e-9, rel=1e-14, abs=0)
    assert material.Ms == pytest.approx(1.2e6 * 9 / 29, rel=1e-14, abs=0)  # 372 414 A/m
    assert material.A == pytest.approx(1.1e-11 * 9 / 29, rel=1e-14, abs=0)  # 3.414 pJ/m
    assert material.D == pytest.approx(2.0e-3 * 9 / 29, rel=1e-14, abs=0)  # 0.6207 mJ/m^2
    # f Ku - mu0 Ms^2 f (1 - f) / 2 = 310 345 - 904 779 * 180 / 841 = 116 694 J/m^3
    shape = 0.5 * MU0 * 1.2e6 ** 2
    assert material.Ku == pytest.approx(1.0e6 * 9 / 29 - shape * (9 / 29) * (20 / 29), rel=1e-14, abs=0)
    assert 116e3 < material.Ku < 117.5e3
    assert material.alpha == 0.3 and material.Ku_axis == (0.0, 0.0, 1.0)


def test_uniform_state_energy_agrees_both_ways():
    """The perpendicular-minus-in-plane energy per area of a laterally infinite film (periodic
    grid) is the same for the stack and the effective layer, ``-N t_m (Ku - mu0 Ms^2 / 2)`` up to
    the periodic demag kernel's far-image sum (2 images here: 0.3 %); the naive ``Ku_eff = f Ku``
    would be off by ``mu0 Ms^2 (1 - f) / (2 Ku - mu0 Ms^2)`` = 6 times the value."""
    stack = mm.Multilayer(0.9e-9, 1.8e-9, 3, 1.2e6, 1.1e-11, 1.0e6, 2e-3)
    grid, material = mm.stack_grid(stack, 8, 8, 2e-9, 2e-9, pbc=True)
    effective, thickness = mm.effective_layer(stack)
    layer = mm.Grid(8, 8, 1, 2e-9, 2e-9, thickness, pbc=True, pbc_images=2)

    def perpendicular(g, mat):
        energies = [mm.energy(mm.textures.uniform(g, d), g, mat, terms=("anisotropy", "demag"))["total"]
                    for d in ((0, 0, 1), (1, 0, 0))]
        return (energies[0] - energies[1]) / (g.nx * g.dx * g.ny * g.dy)

    full = perpendicular(grid.with_(pbc_images=2), material)
    single = perpendicular(layer, effective)
    hand = -3 * 0.9e-9 * (1.0e6 - 0.5 * MU0 * 1.2e6 ** 2)
    assert full == pytest.approx(hand, rel=5e-3, abs=0) and single == pytest.approx(hand, rel=5e-3, abs=0)
    assert full == pytest.approx(single, rel=1e-3, abs=0)


# --------------------------------------------------------------------------- the full stack


def test_stack_layout_and_material():
    stack = mm.Multilayer(1e-9, 2e-9, 4, 8e5, 1.5e-11, 6e5, -1.5e-3)
    grid, material = mm.stack_grid(stack, 6, 5, 2e-9, 3e-9, cells_per_layer=2)
    assert (grid.nz, grid.ny, grid.nx, grid.dz) == (4 * 6, 5, 6, 0.5e-9)
    period = [0, 0, 1, 1, 0, 0]  # 2 spacer cells, 2 magnetic, 2 spacer
    expected = np.tile(period, 4).astype(bool)
    for name, value in (("Ms", 8e5), ("A", 1.5e-11), ("Ku", 6e5), ("D", -1.5e-3)):
        column = getattr(material, name)[:, 2, 3]
        assert np.array_equal(column, np.where(expected, value, 0.0)), name
        assert np.ptp(getattr(material, name), axis=(1, 2)).max() == 0, name
    # odd spacer cells: the extra one on top of each period
    _, odd = mm.stack_grid(mm.Multilayer(1e-9, 1e-9, 2, 8e5, 1e-11, 0.0, 0.0), 2, 2, 1e-9, 1e-9)
    assert np.array_equal(odd.Ms[:, 0, 0], [8e5, 0, 8e5, 0])


def test_stack_energy_terms_with_vacuum_spacers():
    """No NaN with Ms = 0 cells, no field there, no exchange across a spacer, and the exchange and
    DMI energies of a skyrmion column equal the effective layer's (both scale with N t_m)."""
    stack = mm.Multilayer(0.9e-9, 1.8e-9, 3, 1.2e6, 1.1e-11, 1.0e6, 2e-3)
    grid, material = mm.stack_grid(stack, 16, 16, 2e-9, 2e-9)
    m = mm.textures.skyrmion(grid, radius=8e-9)
    E = mm.energy(m, grid, material)
    H = mm.effective_field(m, grid, material)
    assert all(math.isfinite(v) for v in E.values()) and np.isfinite(H).all()
    spacer = material.Ms[:, 0, 0] == 0
    assert np.abs(H[spacer]).max() == 0 and np.abs(H[~spacer]).max() > 0
    effective, thickness = mm.effective_layer(stack)
    layer = mm.Grid(16, 16, 1, 2e-9, 2e-9, thickness)
    E_eff = mm.energy(mm.textures.skyrmion(layer, radius=8e-9), layer, effective)
    for term in ("exchange", "dmi"):
        assert E[term] == pytest.approx(E_eff[term], rel=1e-12, abs=0), term
    # magnetic layers up, down, up: no exchange energy across the spacers, but A |m_i - m_j|^2 / dz
    # = 4 A / dz per area at each of the 2 interfaces where the same layers touch (no spacer)
    for spacer, expected in ((1.8e-9, 0.0), (0.0, 2 * 4 * 1.1e-11 / 0.9e-9 * (32e-9) ** 2)):
        g, mat = mm.stack_grid(mm.Multilayer(0.9e-9, spacer, 3, 1.2e6, 1.1e-11, 0.0, 0.0), 16, 16, 2e-9, 2e-9)
        flipped = mm.textures.uniform(g)
        flipped[np.flatnonzero(mat.Ms[:, 0, 0])[1::2]] *= -1
        exchange = mm.energy(flipped, g, mat, terms=("exchange",))["exchange"]
        assert exchange == pytest.approx(expected, rel=1e-12, abs=0)


# --------------------------------------------------------------------------- stray field and MFM


@pytest.mark.parametrize("nz", [1, 20])
def test_thick_prism_field_closed_form(nz):
    """A 40 nm thick square prism (52 nm wide, inside a wider grid of vacuum cells), as one cell or
    20 cells of 2 nm: H_z everywhere on planes above and below, and d^2 H_z / dz^2 (the dipole
    MFM) on the axis, against the charged-face formula to 1e-9 of the peak. A cell treated as a
    charge sheet through its middle would be off by tens of percent at these heights."""
    dx, n, half_cells = 4e-9, 21, 6
    grid = mm.Grid(n, n, nz, dx, dx, 40e-9 / nz)
    Ms = np.zeros(grid.shape)
    Ms[:, 10 - half_cells : 11 + half_cells, 10 - half_cells : 11 + half_cells] = 7e5
    m = mm.textures.uniform(grid)
    x = (np.arange(n) + 0.5) * dx
    box = (x[10 - half_cells] - dx / 2, x[10 + half_cells] + dx / 2) * 2 + (0.0, 40e-9)
    heights = [2e-9, 40e-9]
    for side, z_of in (("top", lambda h: 40e-9 + h), ("bottom", lambda h: -h)):
        H = mm.stray_field(m, grid, Ms, heights, side=side)[..., 2]
        for i, h in enumerate(heights):
            expected = prism_hz(x[None, :], x[:, None], z_of(h), box, 7e5)
            assert np.abs(H[i] - expected).max() <= 1e-9 * np.abs(expected).max(), (side, h)
    dz2 = mm.stray_field(m, grid, Ms, heights, z_derivative=2)[:, 10, 10, 2]
    half = (box[1] - box[0]) / 2
    for i, h in enumerate(heights):
        assert dz2[i] == pytest.approx(prism_hz_dz2_on_axis(40e-9 + h, half, 0.0, 40e-9, 7e5), rel=1e-9, abs=0)


def test_stack_field_is_the_sum_of_its_layers():
    """The full stack [Co(1)/Pt(1)] x 20 magnetized up: H_z above it is the sum of the 20 magnetic
    prisms' closed-form fields (the spacer cells carry nothing)."""
    stack = mm.Multilayer(1e-9, 1e-9, 20, 1.1e6, 1e-11, 0.0, 0.0)
    grid, material = mm.stack_grid(stack, 17, 17, 3e-9, 3e-9)
    Ms = material.Ms.copy()
    Ms[:, :, :4] = 0.0  # finite in the grid along x as well as at its edges
    x = (np.arange(17) + 0.5) * 3e-9
    for h in (3e-9, 30e-9):
        H = mm.stray_field(mm.textures.uniform(grid), grid, Ms, h)[..., 2]
        expected = sum(prism_hz(x[None, :], x[:, None], grid.nz * grid.dz + h,
                                (12e-9, 51e-9, 0.0, 51e-9, 2e-9 * j, 2e-9 * j + 1e-9), 1.1e6) for j in range(20))
        assert np.abs(H - expected).max() <= 1e-9 * np.abs(expected).max(), h


def test_periodic_stack_over_effective_layer_is_the_layer_sum_ratio():
    """Periodic film with a domain pattern: per Fourier mode, the stack's H_z and MFM image over the
    effective layer's equal R(k) (aliases negligible: kept modes below half the Nyquist number and
    lifts >= 24 nm, weight e^{-pi h / dx} < 1e-8). R - 1 reaches -0.1 here, so the 1e-7 match also
    checks where the layers sit."""
    stack = mm.Multilayer(1e-9, 2e-9, 10, 1e6, 1e-11, 1e6, 0.0)
    n, dx = 32, 4e-9
    grid, material = mm.stack_grid(stack, n, n, dx, dx, pbc=True)
    effective, thickness = mm.effective_layer(stack)
    layer = mm.Grid(n, n, 1, dx, dx, thickness, pbc=True)
    i = np.arange(n)
    mz = np.sign(np.sin(4 * np.pi * i / n)[None, :] + np.cos(6 * np.pi * i / n)[:, None] + 0.1)
    pattern = np.stack([np.zeros_like(mz), np.zeros_like(mz), mz], axis=-1)
    k1 = 2 * np.pi * np.fft.fftfreq(n, dx)
    k = np.hypot(k1[None, :], k1[:, None])
    low = (np.abs(k1)[None, :] <= np.pi / (2 * dx)) & (np.abs(k1)[:, None] <= np.pi / (2 * dx)) & (k > 0)
    R = transfer_ratio(np.where(k > 0, k, 1.0), stack, 1e-9)
    heights = [24e-9, 48e-9]
    images = []
    for g, mat in ((grid, material), (layer, effective)):
        m = np.broadcast_to(pattern, g.vector_shape).copy()
        images.append((mm.stray_field(m, g, mat.Ms, heights)[..., 2], mm.mfm_frequency_shift(m, g, mat.Ms, heights)))
    for full, single in zip(*images):
        for a, b in zip(full, single):
            A, B = np.fft.fft2(a), np.fft.fft2(b)
            keep = low & (np.abs(B) > 1e-6 * np.abs(B).max())
            assert keep.sum() > 20
            assert np.abs(A[keep] / B[keep] - R[keep]).max() < 1e-7
            assert np.abs(R[keep] - 1).max() > 1e-2


def test_stack_and_effective_layer_images_agree():
    """Open film [Pt(1)/Co(1)/Pt(1)] x 4, an isolated Neel skyrmion column (its contrast over the
    uniform background: the image of a skyrmion in an infinite film). At lifts 6, 12, 24 nm (2-8
    periods) the stack's H_z and dipole-MFM image differ from the effective layer's by the stated
    ``-c d^2/dz^2`` of the latter, ``c = (P^2 - t_m^2) / 24 = 0.33 nm^2`` (for the MFM, d^4/dz^4 by a
    difference of its analytic d^2/dz^2 at h -+ 0.5 nm): by 1.3, 0.7, 0.15 % of the peak for H_z
    and 3.7, 1.0, 1.1 % for the MFM; the difference is this term to 5 %, and it leaves under 5 % of
    the difference pixel by pixel (the MFM at 6 nm, whose image holds wave numbers near the pixel's pi / dx where
    the O(k^4) term is 20 % of the O(k^2) one: under 25 %). The rms difference falls with the lift
    (H_z 0.5, 0.26, 0.10 %; MFM 3.7, 1.1, 0.5 %) and the rms ratio stack / effective rises to 1
    from below (R(k) < 1 at every k)."""
    stack = mm.Multilayer(1e-9, 2e-9, 4, 1e6, 1e-11, 1e6, 2e-3)
    n, dx = 24, 3e-9
    grid, material = mm.stack_grid(stack, n, n, dx, dx)
    effective, thickness = mm.effective_layer(stack)
    layer = mm.Grid(n, n, 1, dx, dx, thickness)
    c = (stack.period ** 2 - stack.magnetic_thickness ** 2) / 24

    def contrast(g, Ms, heights, order):
        images = [mm.stray_field_projection(m, g, Ms, heights, "z", z_derivative=order)
                  for m in (mm.textures.skyrmion(g, radius=10e-9), mm.textures.uniform(g, (0, 0, -1)))]
        return images[0] - images[1]

    heights, step = [6e-9, 12e-9, 24e-9], 0.5e-9
    H_full, D_full = (contrast(grid, material.Ms, heights, order) for order in (0, 2))
    H_single, D_single = (contrast(layer, effective.Ms, heights, order) for order in (0, 2))
    around = contrast(layer, effective.Ms, [h + s for h in heights for s in (-step, step)], 2).reshape(3, 2, n, n)
    D_dz4 = (around[:, 0] - 2 * D_single + around[:, 1]) / step ** 2
    rms = {"H": [], "MFM": []}
    for i, h in enumerate(heights):
        for name, full, single, predicted, share in (
                ("H", H_full[i], H_single[i], H_single[i] - c * D_single[i], 0.05),
                ("MFM", D_full[i], D_single[i], D_single[i] - c * D_dz4[i], 0.25 if h < 10e-9 else 0.05)):
            difference = np.abs(full - single).max()
            stated = np.abs(predicted - single).max()
            assert abs(difference - stated) < share * stated, (name, h)
            assert np.abs(full - predicted).max() < share * difference, (name, h)
            assert difference < (0.02 if name == "H" else 0.05) * np.abs(single).max(), (name, h)
            rms[name].append((np.linalg.norm(full - single), np.linalg.norm(full)) / np.linalg.norm(single))
    for name, values in rms.items():
        relative, ratio = np.array(values).T
        assert np.all(np.diff(relative) < 0) and np.all(np.diff(ratio) > 0) and np.all(ratio < 1), name
        assert relative[-1] < 0.01 and ratio[-1] > 0.99, name


# --------------------------------------------------------------------------- records and bad input


def test_record_round_trip():
    stack = mm.Multilayer(**IRFECOPT)
    record = stack.to_dict()
    assert record == IRFECOPT
    assert mm.Multilayer.from_dict(record) == stack
    assert mm.Multilayer.from_dict({k: v for k, v in record.items() if k != "alpha"}).alpha == 0.5
    with pytest.raises(ValueError, match="Multilayer record lacks repeats"):
        mm.Multilayer.from_dict({k: v for k, v in record.items() if k != "repeats"})


@pytest.mark.parametrize("name, value, message", [
    ("magnetic_thickness", -1e-9, "magnetic_thickness must be a positive finite number"),
    ("magnetic_thickness", 0.0, "magnetic_thickness must be a positive finite number"),
    ("spacer_thickness", -2e-9, "spacer_thickness must be a finite number >= 0"),
    ("repeats", 0, "repeats must be a whole number >= 1"),
    ("repeats", 2.5, "repeats must be a whole number >= 1"),
    ("repeats", True, "repeats must be a whole number >= 1"),
    ("Ms", 0.0, "Ms must be a positive finite number"),
    ("A", -1e-11, "A must be a finite number >= 0"),
    ("Ku", float("nan"), "Ku must be a finite number >= 0"),
    ("D", "strong", "D must be a finite number"),
    ("alpha", -0.1, "alpha must be a finite number >= 0"),
])
def test_bad_stack_named(name, value, message):
    values = dict(IRFECOPT, **{name: value})
    with pytest.raises(ValueError, match=f"Multilayer {message}"):
        mm.Multilayer(**values)


def test_bad_use_named():
    stack = mm.Multilayer(**IRFECOPT)
    with pytest.raises(ValueError, match=r"spacer .* is 2.22222 cells .* cells_per_layer=9 gives whole spacer cells"):
        mm.stack_grid(stack, 8, 8, 1e-9, 1e-9)
    with pytest.raises(ValueError, match="cells_per_layer must be a whole number >= 1"):
        mm.stack_grid(stack, 8, 8, 1e-9, 1e-9, cells_per_layer=0)
    with pytest.raises(ValueError, match="stack must be a Multilayer"):
        mm.effective_layer(IRFECOPT)
    with pytest.raises(ValueError, match="Ku_eff .* is negative"):
        mm.effective_layer(mm.Multilayer(**dict(IRFECOPT, Ku=2e5)))
    with pytest.raises(ValueError, match="Grid nx must be a positive integer"):
        mm.stack_grid(mm.Multilayer(1e-9, 1e-9, 2, 8e5, 1e-11, 0.0, 0.0), 0, 8, 1e-9, 1e-9)
