"""Stray field of the film on planes above (``side="top"``) or below (``side="bottom"``) it.

The planes sit at ``z = nz dz + h`` (top) or ``z = -h`` (bottom) for each height ``h > 0`` and are
sampled at the cell centres ``((i + 1/2) dx, (j + 1/2) dy)``. ``z`` is the lab axis (upwards) on
both sides, and ``z_derivative = n`` returns ``d^n H / dz^n`` along that axis.

Open boundaries (``grid.pbc`` False)
------------------------------------
Every cell is a uniformly magnetized cuboid, so the field is exact for piecewise-uniform ``M``:
``H_a(r) = sum_cells K_ab(r - r_cell) M_b`` with the point-evaluated cuboid tensor

    K_ab(r) = 1 / (4 pi) int_cell d_a d_b (1 / |r - r'|) d^3 r'
            = 1 / (4 pi) sum_{8 corners} s F_ab(u, v, w),

where ``(u, v, w)`` is ``r`` minus a corner, ``s = +1`` at upper and ``-1`` at lower corner
coordinates, and ``d^3 F_ab / (du dv dw) = d_a d_b (1 / R)``, ``R = |(u, v, w)|``:
``F_xx = -atan(v w / (u R))``, ``F_yy = -atan(u w / (v R))``, ``F_xy = asinh(w / sqrt(u^2 + v^2))``,
``F_xz = asinh(v / sqrt(u^2 + w^2))``, ``F_yz = asinh(u / sqrt(v^2 + w^2))``, and
``K_zz = -(K_xx + K_yy)`` outside the cell. The sampling points are cell centres, so ``u`` and
``v`` are odd multiples of ``dx / 2``, ``dy / 2`` and ``w != 0``: no term is singular. The
z-derivatives of the kernel (for MFM) use the analytic ``w``-derivatives of the same ``F``
(rational functions, see ``_corner_functions``), never finite differences.

The 8-corner sums cancel ``~(r / d)^3`` of their leading digits, so they are used only for
cells within ``CLOSED_FORM_CELLS`` cell sizes of the sampling point. Farther cells integrate
the analytic point kernel ``d_a d_b d_z^n (1 / R)`` over the cell by tensor-product
Gauss-Legendre quadrature, whose order (``QUADRATURE_BANDS``) falls with the distance. Against
50-digit closed forms, every kernel entry (field and both z-derivatives) is accurate to ~1e-12
relative within 400 cell sizes and to < 4e-11 beyond (the 2-point rule, error ~ (d / r)^4).
The kernel is laid out on the zero-padded grid (``demag.fft_length``) and applied by FFT.

Periodic films (``grid.pbc`` True, in-plane period ``Lx = nx dx``, ``Ly = ny dy``)
-------------------------------------------------------------------------------
A layer of thickness ``dz`` whose top face is a distance ``t`` below the plane, with magnetization
``M e^{i k . rho}`` (uniform through the layer), carries the volume charge ``-i k . M`` and the
surface charges ``+-M_z``. A charge sheet ``sigma e^{i k . rho}`` has the potential
``sigma e^{-|k| |z - z'|} / (2 |k|)``; integrating over the layer and taking ``H = -grad phi``:

    top:    H = 1/2 e^{-|k| t} (1 - e^{-|k| dz}) (-i kx/|k|, -i ky/|k|,  1) (M_z - i k^ . M)
    bottom: H = 1/2 e^{-|k| t} (1 - e^{-|k| dz}) (-i kx/|k|, -i ky/|k|, -1) (-M_z - i k^ . M)

(``k^ = k / |k|``; ``H = 0`` at ``k = 0``), i.e. the symmetric tensor ``T_ab(k)`` with
``T_xx = -kx^2/k^2 f``, ``T_xy = -kx ky/k^2 f``, ``T_zz = f``, ``T_xz = -+ i kx/|k| f`` and
``f = 1/2 e^{-|k| t} (1 - e^{-|k| dz})``; ``d/dz`` multiplies by ``-|k|`` (top) or ``+|k|``
(bottom), exactly. For piecewise-constant cells the continuous spectrum of the cell-sampled
``M_j`` at ``k = k0 + G`` (``G = 2 pi (p / dx, q / dy)``, any integers ``p, q``) is
``(DFT M)(k0) sinc(kx dx / 2) sinc(ky dy / 2) / N`` times ``(-1)^(p+q)``, and sampling ``H`` at
the cell centres multiplies alias ``G`` by ``(-1)^(p+q)`` again, so the exact discrete transfer
function is the alias sum

    T_eff(k0) = sum_{p, q} T(k0 + G) sinc(kx dx / 2) sinc(ky dy / 2),   k = k0 + G,

truncated, plane by plane, where ``e^{-|k| t}`` has fallen by ``e^{-ALIAS_CUTOFF}`` below the slowest
retained mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..runtime.arrays import batch_size, check_magnetization, like_input, to_tensor
from ..runtime.records import SCHEMA_VERSION, from_record
from ..physics.demag import fft_length
from ..physics.grid import Grid

SIDES = ("top", "bottom")
MAX_HEIGHT = 1.0
"""Largest plane distance (m) accepted: 1 m, far beyond stray-field and MFM imaging of a film (a
larger value is most likely a length in nanometres given as metres; the fit's physical range is
narrower still)."""
MAX_Z_DERIVATIVE = 2
CLOSED_FORM_CELLS = 3.0
"""Cells closer than this (centre distance over the largest cell size) use the corner sums."""
QUADRATURE_BANDS = ((6.0, 8), (12.0, 6), (24.0, 5), (64.0, 4), (400.0, 3), (math.inf, 2))
"""``(upper distance, Gauss-Legendre points per axis)`` for the cells beyond ``CLOSED_FORM_CELLS``."""
ALIAS_CUTOFF = 40.0
"""Periodic films: aliases damped by more than ``exp(-ALIAS_CUTOFF)`` are dropped."""
_CHUNK = 1 << 17
"""Elements per vectorized chunk of the kernel construction (bounds its memory)."""
_BLOCK_ELEMENTS = 1 << 17
"""Real numbers of the y-transformed magnetization per block of kx columns in ``StrayField``
(1 MB in float64): the block stays in cache while every plane and output use it."""

_COMPUTED = ("xx", "yy", "xy", "xz", "yz")
_PARITY_YX = {"xx": (1, 1), "yy": (1, 1), "zz": (1, 1), "xy": (-1, -1), "xz": (1, -1), "yz": (-1, 1)}
"""Sign of each kernel component under ``y -> -y`` and ``x -> -x``."""
_IMAGINARY = ("xz", "yz")
"""Components whose in-plane transform is imaginary (stored as their imaginary part)."""
_AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


# --------------------------------------------------------------------------- argument checks


def check_side(side) -> str:
    """``side`` if it is ``"top"`` or ``"bottom"``, else ``ValueError``."""
    if not isinstance(side, str) or side not in SIDES:
        raise ValueError(f"side must be 'top' or 'bottom', got {side!r}")
    return side


def parse_heights(height, name: str = "height"):
    """Validate heights above/below the film surface.

    Parameters
    ----------
    height : float, sequence of floats, numpy array or torch tensor (0-d or 1-d)
        Distances (m) from the film surface, all finite, > 0 and at most ``MAX_HEIGHT`` (1 m).
    name : str
        Argument name used in error messages.

    Returns
    -------
    heights : tuple of float or torch.Tensor
        A tuple for plain numbers; the (1-d) tensor itself when ``height`` is a tensor.
    scalar : bool
        True if a single height was given (0-d): outputs drop the height axis.
    """
    expected = f"{name} must be a positive length in metres or a 1-d list of them"
    if isinstance(height, torch.Tensor):
        values = height.detach().cpu().numpy().astype(float)
    else:
        try:
            values = np.asarray(height, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{expected}, got {height!r}") from None
    if values.ndim > 1 or values.size == 0:
        raise ValueError(f"{expected}, got shape {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{expected} (finite and > 0), got {values.tolist()!r}")
    if np.any(values > MAX_HEIGHT):
        largest = float(values.max())
        raise ValueError(f"{name} must be at most {MAX_HEIGHT:g} m, got {largest:g} m; heights are in metres: "
                         f"did you mean {largest:g} nm = {largest * 1e-9:g} m?")
    scalar = values.ndim == 0
    if isinstance(height, torch.Tensor):
        return height.reshape(-1), scalar
    return tuple(float(v) for v in values.reshape(-1)), scalar


def check_z_derivative(z_derivative) -> int:
    """``z_derivative`` as an int in ``0..MAX_Z_DERIVATIVE``, else ``ValueError``."""
    if isinstance(z_derivative, bool) or not isinstance(z_derivative, (int, np.integer)) \
            or not 0 <= z_derivative <= MAX_Z_DERIVATIVE:
        raise ValueError(f"z_derivative must be 0, 1 or 2, got {z_derivative!r}")
    return int(z_derivative)


def sensor_axis(component, name: str = "component") -> tuple[float, float, float]:
    """Unit sensor axis from ``"x"``, ``"y"``, ``"z"`` or any non-zero finite 3-vector."""
    if isinstance(component, str):
        if component not in _AXES:
            raise ValueError(f"{name} must be 'x', 'y', 'z' or a 3-vector, got {component!r}")
        return _AXES[component]
    try:
        axis = np.asarray(component.detach().cpu() if isinstance(component, torch.Tensor) else component,
                          dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 'x', 'y', 'z' or a 3-vector, got {component!r}") from None
    norm = np.linalg.norm(axis) if axis.shape == (3,) else 0.0
    if axis.shape != (3,) or not np.isfinite(norm) or norm == 0:
        raise ValueError(f"{name} must be 'x', 'y', 'z' or a non-zero finite 3-vector, got {component!r}")
    return tuple(float(a) for a in axis / norm)


def saturation_magnetization(Ms, grid: Grid, batch: int | None) -> torch.Tensor:
    """``Ms`` (A/m) as a tensor broadcasting against ``(B?, nz, ny, nx)``.

    Accepts a scalar, a ``(nz, ny, nx)`` map and, for a batch of ``B`` states, a length-B vector or
    a ``(B, nz, ny, nx)`` map; values must be finite and >= 0. Autograd history is kept.
    """
    t = to_tensor(Ms, grid, "Ms")
    if not bool(torch.isfinite(t).all()):
        raise ValueError("Ms contains NaN or inf")
    if bool((t.detach() < 0).any()):
        raise ValueError(f"Ms must be >= 0 A/m, got min {float(t.detach().min()):g}")
    if t.ndim == 0 or tuple(t.shape) == grid.shape:
        return t
    if batch is not None and t.ndim == 1 and t.shape[0] == batch:
        return t.reshape(batch, 1, 1, 1)
    if batch is not None and tuple(t.shape) == (batch,) + grid.shape:
        return t
    expected = f"a scalar or a {grid.shape} map (nz, ny, nx)"
    if batch is not None:
        expected += f", a length-{batch} vector or a ({batch}, {grid.nz}, {grid.ny}, {grid.nx}) map"
    raise ValueError(f"Ms has shape {tuple(t.shape)}; expected {expected}")


# --------------------------------------------------------------------------- open-film kernel


def _corner_functions(u, v, w, order: int) -> dict:
    """Corner antiderivatives ``d_w^order F_ab`` (dimensionless lengths, torch tensors).

    ``d^3 F_ab / (du dv dw) = d_a d_b (1 / R)``; components ``xx, yy, xy, xz, yz`` (``zz`` follows
    from the trace). Requires ``u, v != 0`` and ``w != 0``.
    """
    u2, v2, w2 = u * u, v * v, w * w
    r = torch.sqrt(u2 + v2 + w2)
    if order == 0:
        return {"xx": -torch.atan(v * w / (u * r)), "yy": -torch.atan(u * w / (v * r)),
                "xy": torch.asinh(w / torch.sqrt(u2 + v2)), "xz": torch.asinh(v / torch.sqrt(u2 + w2)),
                "yz": torch.asinh(u / torch.sqrt(v2 + w2))}
    uw2, vw2 = u2 + w2, v2 + w2
    if order == 1:
        return {"xx": -u * v / (r * uw2), "yy": -u * v / (r * vw2), "xy": 1 / r,
                "xz": -v * w / (r * uw2), "yz": -u * w / (r * vw2)}
    r3 = r * (u2 + v2 + w2)
    return {"xx": u * v * w * (3 * u2 + 2 * v2 + 3 * w2) / (uw2 * uw2 * r3),
            "yy": u * v * w * (2 * u2 + 3 * v2 + 3 * w2) / (vw2 * vw2 * r3),
            "xy": -w / r3,
            "xz": -v * ((u2 + v2) * (u2 - w2) - 2 * w2 * w2) / (uw2 * uw2 * r3),
            "yz": -u * ((u2 + v2) * (v2 - w2) - 2 * w2 * w2) / (vw2 * vw2 * r3)}


def _point_kernel(x, y, z, order: int, weight) -> dict:
    """``weight * d_a d_b d_z^order (1 / r)`` at ``(x, y, z)`` for ``xx, yy, xy, xz, yz``."""
    r2 = x * x + y * y + z * z
    if order == 0:
        i3 = r2 ** -1.5 * weight
        t = 3 * i3 / r2
        tx, ty = t * x, t * y
        return {"xx": tx * x - i3, "yy": ty * y - i3, "xy": tx * y, "xz": tx * z, "yz": ty * z}
    i5 = r2 ** -2.5 * weight
    i7 = i5 / r2
    z2 = z * z
    if order == 1:
        b, c = 3 * i5 * z, 15 * z * i7
        a = 3 * i5 - 15 * z2 * i7
        cx = c * x
        return {"xx": b - cx * x, "yy": b - c * y * y, "xy": -cx * y, "xz": a * x, "yz": a * y}
    i9 = i7 / r2
    common = 3 * i5 - 15 * z2 * i7
    e = 105 * z2 * i9 - 15 * i7
    f = (105 * z2 * i9 - 45 * i7) * z
    ex = e * x
    return {"xx": common + ex * x, "yy": common + e * y * y, "xy": ex * y, "xz": f * x, "yz": f * y}


def _box_closed_form(X, Y, w_lo, w_hi, hx: float, hy: float, order: int) -> dict:
    """``4 pi K`` of boxes ``[X -+ hx] x [Y -+ hy] x [w_lo, w_hi]`` by the 8-corner sums."""
    out = dict.fromkeys(_COMPUTED, 0)
    for su, u in ((1, X + hx), (-1, X - hx)):
        for sv, v in ((1, Y + hy), (-1, Y - hy)):
            for sw, w in ((1, w_hi), (-1, w_lo)):
                terms = _corner_functions(u, v, w, order)
                sign = su * sv * sw
                for name in _COMPUTED:
                    out[name] = out[name] + sign * terms[name]
    return out


def _box_quadrature(X, Y, w_lo, w_hi, hx: float, hy: float, order: int, points: int) -> dict:
    """``4 pi K`` of the same boxes by ``points^3`` Gauss-Legendre integration of the point kernel.

    Vectorized over the nodes (leading axis), in chunks of about ``_CHUNK`` evaluations.
    """
    nodes, weights = np.polynomial.legendre.leggauss(points)
    opts = dict(dtype=X.dtype, device=X.device)
    tz, ty, tx = (t.reshape(-1, 1) for t in torch.meshgrid(*(torch.as_tensor(nodes, **opts),) * 3, indexing="ij"))
    g = torch.as_tensor(weights, **opts)
    weight = (g[:, None, None] * g[None, :, None] * g[None, None, :]).reshape(-1, 1)
    hz = (w_hi - w_lo) / 2
    wc = (w_hi + w_lo) / 2
    size = max(1, _CHUNK // points**3)
    chunks = []
    for i in range(0, X.shape[0], size):
        part = slice(i, i + size)
        values = _point_kernel(X[part] + hx * tx, Y[part] + hy * ty, wc[part] + hz[part] * tz, order, weight)
        chunks.append({name: value.sum(0) * (hx * hy * hz[part]) for name, value in values.items()})
    return {name: torch.cat([c[name] for c in chunks]) for name in _COMPUTED}


def _layer_boxes(grid: Grid, heights: torch.Tensor, side: str):
    """Signed ``w`` range (m, plane z minus source z) of every layer seen from every plane.

    Returns ``w_lo, w_hi`` of shape ``(nh, nz)``.
    """
    layer = torch.arange(grid.nz, dtype=heights.dtype, device=heights.device)
    if side == "top":
        w_lo = heights[:, None] + (grid.nz - 1 - layer) * grid.dz
        return w_lo, w_lo + grid.dz
    w_hi = -(heights[:, None] + layer * grid.dz)
    return w_hi - grid.dz, w_hi


def open_kernel_quadrant(grid: Grid, heights: torch.Tensor, side: str, order: int) -> dict:
    """Real-space kernel ``d_z^order K_ab`` on the offsets ``(0..ny-1) dy, (0..nx-1) dx``.

    Parameters
    ----------
    grid : Grid
    heights : float64 tensor (nh,)
        Plane distances from the film surface (m); may require grad.
    side : "top" or "bottom"
    order : int
        z-derivative order (0, 1, 2).

    Returns
    -------
    dict of the six components -> float64 tensors ``(nh, nz, ny, nx)`` in ``1 / m^order``.
    """
    scale = max(grid.cell_size)
    w_lo, w_hi = (w / scale for w in _layer_boxes(grid, heights, side))
    nh, nz, ny, nx = heights.shape[0], grid.nz, grid.ny, grid.nx
    opts = dict(dtype=torch.float64, device=heights.device)
    Y = (torch.arange(ny, **opts) * (grid.dy / scale))[None, None, :, None]
    X = (torch.arange(nx, **opts) * (grid.dx / scale))[None, None, None, :]
    shape = (nh, nz, ny, nx)
    X, Y = X.expand(shape).reshape(-1), Y.expand(shape).reshape(-1)
    w_lo = w_lo[:, :, None, None].expand(shape).reshape(-1)
    w_hi = w_hi[:, :, None, None].expand(shape).reshape(-1)
    wc = (w_lo + w_hi).detach() / 2
    dist = torch.sqrt(X * X + Y * Y + wc * wc)
    hx, hy = grid.dx / (2 * scale), grid.dy / (2 * scale)
    pieces, positions = [], []
    lower = 0.0
    for upper, points in ((CLOSED_FORM_CELLS, 0),) + QUADRATURE_BANDS:
        idx = torch.nonzero((dist >= lower) & (dist < upper)).reshape(-1)
        lower = upper
        if idx.numel() == 0:
            continue
        args = (X[idx], Y[idx], w_lo[idx], w_hi[idx], hx, hy, order)
        pieces.append(_box_closed_form(*args) if points == 0 else _box_quadrature(*args, points))
        positions.append(idx)
    inverse = torch.argsort(torch.cat(positions))
    factor = 1.0 / (4 * math.pi * scale ** order)
    out = {name: (torch.cat([p[name] for p in pieces])[inverse] * factor).reshape(shape) for name in _COMPUTED}
    out["zz"] = -(out["xx"] + out["yy"])
    return out


@lru_cache(maxsize=64)
def _length(n: int, periodic: bool) -> int:
    """``demag.fft_length`` (a search over candidate lengths), remembered: it runs on every call."""
    return fft_length(n, periodic)


def _mirror(values: torch.Tensor, parity: int, n: int, length: int, dim: int) -> torch.Tensor:
    """Spread offsets ``0..n-1`` stored along ``dim`` over a length-``length`` transform axis.

    Offset ``-j`` (index ``length - j``) holds ``parity`` times offset ``j``; the padding between
    ``n - 1`` and ``length - n + 1`` is zero (the layout of ``demag._wrapped_offsets``, open axes).
    """
    padding = list(values.shape)
    padding[dim] = length - 2 * n + 1
    tail = values.narrow(dim, 1, n - 1).flip(dim)
    return torch.cat([values, values.new_zeros(padding), tail if parity == 1 else -tail], dim=dim)


def _transform_quadrant(values: torch.Tensor, parity: tuple[int, int], grid: Grid, ly: int, lx: int,
                        imaginary: bool) -> torch.Tensor:
    """Real (or, for an odd-in-x-or-y component, imaginary) part of the 2-D transform of a kernel
    component spread over the zero-padded grid, stored transposed (``ky`` last, see ``StrayField``):
    ``values (..., ny, nx)`` -> ``(..., lx // 2 + 1, ly)``.

    The x transform runs on the ``ny`` stored rows before the rows are mirrored, halving its work.
    """
    spectrum = torch.fft.rfft(_mirror(values, parity[1], grid.nx, lx, -1), dim=-1).transpose(-1, -2)
    spectrum = torch.fft.fft(_mirror(spectrum, parity[0], grid.ny, ly, -1), dim=-1)
    return (spectrum.imag if imaginary else spectrum.real).contiguous()


def _open_spectrum(grid: Grid, heights: torch.Tensor, side: str, order: int) -> dict:
    """Transformed open-film kernel: real tensors ``(nh, nz, Lx // 2 + 1, Ly)`` (float64)."""
    ly, lx = _length(grid.ny, False), _length(grid.nx, False)
    quadrant = open_kernel_quadrant(grid, heights, side, order)
    del quadrant["zz"]  # traceless: its transform is -(xx + yy), one transform fewer
    out = {name: _transform_quadrant(quadrant.pop(name), _PARITY_YX[name], grid, ly, lx, name in _IMAGINARY)
           for name in list(quadrant)}
    out["zz"] = -(out["xx"] + out["yy"])
    return out


# --------------------------------------------------------------------------- periodic transfer


def _sinc(x: torch.Tensor) -> torch.Tensor:
    """``sin(x) / x`` with the value 1 at 0."""
    safe = torch.where(x == 0, torch.ones_like(x), x)
    return torch.where(x == 0, torch.ones_like(x), torch.sin(safe) / safe)


def _aliases(grid: Grid, k_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Alias indices ``(p, q)`` whose lowest wave number (``(2|p| - 1) pi / dx`` along x, the same
    along y) is at most ``k_max``."""
    reach = [int(math.floor((k_max * d / math.pi + 1) / 2)) for d in (grid.dx, grid.dy)]
    p, q = np.meshgrid(np.arange(-reach[0], reach[0] + 1), np.arange(-reach[1], reach[1] + 1), indexing="ij")
    low_x = np.maximum(2 * np.abs(p) - 1, 0) * math.pi / grid.dx
    low_y = np.maximum(2 * np.abs(q) - 1, 0) * math.pi / grid.dy
    keep = np.hypot(low_x, low_y) <= k_max
    return p[keep], q[keep]


def _periodic_plane(grid: Grid, t: torch.Tensor, side: str, order: int) -> dict:
    """Alias-summed transfer function on one plane; ``t (nz,)``: distance (m) from the plane to the
    near face of each layer. Returns the six components, float64 ``(nz, nx // 2 + 1, ny)``."""
    opts = dict(dtype=torch.float64, device=t.device)
    kx0 = 2 * math.pi * torch.fft.rfftfreq(grid.nx, d=grid.dx, **opts)
    ky0 = 2 * math.pi * torch.fft.fftfreq(grid.ny, d=grid.dy, **opts)
    k_floor = 2 * math.pi / max(grid.nx * grid.dx, grid.ny * grid.dy)
    p, q = _aliases(grid, k_floor + ALIAS_CUTOFF / float(t.detach().min()))
    t = t[:, None, None]
    direction = -1.0 if side == "top" else 1.0
    size = max(1, _CHUNK // (t.numel() * grid.ny * kx0.numel()))
    out = dict.fromkeys(_PARITY_YX, 0)
    for i in range(0, p.size, size):
        kx = kx0[:, None] + torch.as_tensor(2 * math.pi / grid.dx * p[i:i + size], **opts)[:, None, None]
        ky = ky0 + torch.as_tensor(2 * math.pi / grid.dy * q[i:i + size], **opts)[:, None, None]
        k = torch.sqrt(kx * kx + ky * ky)  # (chunk, Kx, ny)
        safe = torch.where(k > 0, k, torch.ones_like(k))
        pixel = _sinc(kx * (grid.dx / 2)) * _sinc(ky * (grid.dy / 2)) * (direction * k) ** order
        k, pixel, ux, uy = (v[:, None] for v in (k, pixel, kx / safe, ky / safe))
        f = 0.5 * torch.exp(-k * t) * -torch.expm1(-k * grid.dz) * pixel  # (chunk, nz, Kx, ny)
        out["xx"] = out["xx"] - (ux * ux * f).sum(0)
        out["yy"] = out["yy"] - (uy * uy * f).sum(0)
        out["zz"] = out["zz"] + f.sum(0)
        out["xy"] = out["xy"] - (ux * uy * f).sum(0)
        out["xz"] = out["xz"] + direction * (ux * f).sum(0)
        out["yz"] = out["yz"] + direction * (uy * f).sum(0)
    return out


def periodic_transfer(grid: Grid, heights: torch.Tensor, side: str, order: int) -> dict:
    """Alias-summed transfer function of a periodic film (see the module docstring).

    Each plane keeps the aliases its own nearest layer needs (far planes need few).

    Returns
    -------
    dict of the six components -> float64 tensors ``(nh, nz, nx // 2 + 1, ny)`` (``1 / m^order``;
    ``ky`` last, like the open kernel); ``xz`` and ``yz`` hold the imaginary part, the others the
    real part.
    """
    w_lo, w_hi = _layer_boxes(grid, heights, side)
    planes = [_periodic_plane(grid, t, side, order) for t in (w_lo if side == "top" else -w_hi)]
    return {name: torch.stack([plane[name] for plane in planes]) for name in _PARITY_YX}


# --------------------------------------------------------------------------- the operator


def _spectrum(grid: Grid, heights: torch.Tensor, side: str, order: int) -> dict:
    """Open or periodic kernel spectrum (real parts; ``xz``, ``yz`` imaginary) in ``grid.dtype``,
    ``(nh, nz, Kx, Ly)``; built one plane at a time, so that the float64 intermediates of only one
    plane are alive beside the result."""
    build = periodic_transfer if grid.pbc else _open_spectrum
    out = {}
    for plane in range(heights.shape[0]):
        for name, value in build(grid, heights[plane : plane + 1], side, order).items():
            if name not in out:
                out[name] = value.new_empty(heights.shape[:1] + value.shape[1:], dtype=grid.dtype)
            out[name][plane] = value[0]
    return out


def _combine(pairs: list):
    """``sum c * K`` over ``(c, K)`` pairs; a single unit-weight ``K`` is shared, not copied; ``None``
    for no pairs."""
    if not pairs:
        return None
    if len(pairs) == 1 and pairs[0][0] == 1.0:
        return pairs[0][1]
    return sum(c * K for c, K in pairs)


def _output_terms(K: dict, d: tuple[float, float, float]) -> tuple:
    """Transfer of ``sum_a d_a H_a`` from each source component ``b``: ``((re, im), ...)`` for
    ``b = x, y, z``, with ``sum_a d_a K_ab = re + i im`` (tensors ``(nh, nz, Kx, Ly)`` or ``None``)."""
    terms = []
    for b in "xyz":
        parts = {False: [], True: []}
        for a, coeff in zip("xyz", d):
            if coeff != 0:
                name = "".join(sorted(a + b))
                parts[name in _IMAGINARY].append((coeff, K[name]))
        terms.append((_combine(parts[False]), _combine(parts[True])))
    return tuple(terms)


def _transfer(grid: Grid, heights, side: str, order: int, axes: tuple) -> tuple:
    """``_output_terms`` of every output axis: the operator's transformed kernel.

    The full field (unit axes) keeps the six distinct real components once (the tensor is
    symmetric and each entry purely real or imaginary): ``6 nh nz Kx Ly`` numbers of ``grid.dtype``.
    """
    K = _spectrum(grid, heights, side, order)
    return tuple(_output_terms(K, d) for d in axes)


@lru_cache(maxsize=4)
def _cached_transfer(grid: Grid, heights: tuple, side: str, order: int, axes: tuple) -> tuple:
    """``_transfer`` for plain-number heights, kept for reuse."""
    with torch.no_grad():
        h = torch.tensor(heights, dtype=torch.float64, device=grid.device)
        return _transfer(grid, h, side, order, axes)


def transfer_terms(grid: Grid, heights, side: str, order: int, axes: tuple) -> tuple:
    """Transformed kernel (see ``_transfer``): cached (at most 4 entries), or rebuilt in torch, so
    that autograd flows to the heights, for a height tensor that requires grad."""
    if isinstance(heights, torch.Tensor) and heights.requires_grad and torch.is_grad_enabled():
        return _transfer(grid, heights.to(device=grid.device, dtype=torch.float64), side, order, axes)
    return _cached_transfer(grid, tuple(float(h) for h in heights), side, order, axes)


class StrayField:
    """Linear map from ``M = Ms m`` (A/m) to ``axis . d^n H / dz^n`` on planes outside the film.

    Parameters
    ----------
    grid : Grid
    height : float, sequence or tensor
        Plane distances from the film surface (m), see ``parse_heights``.
    side : {"top", "bottom"}
    z_derivative : int
        Order ``n`` of the derivative along the lab ``+z`` axis (0, 1 or 2).
    axis : 3-sequence of float, optional
        Return only the projection on this vector (not normalized here); default: all three
        components.
    name : str
        Name of the height argument in error messages.

    Transforms are laid out ``(..., Kx, Ly)`` (``ky`` last): the y transforms run along the
    contiguous axis, the forward one padding and the inverse one cropping the ``ny`` rows. Per
    image: ``3 nz`` forward x transforms, then, in blocks of kx columns small enough to stay in
    cache, the y transforms, the real-by-complex kernel products (the kernel stays real) and the
    inverse y transforms of every plane and output, then one inverse x transform per plane and
    output on the ``ny`` kept rows.
    """

    def __init__(self, grid: Grid, height, side: str = "top", z_derivative: int = 0, axis=None,
                 name: str = "height"):
        if not isinstance(grid, Grid):
            raise ValueError(f"grid must be a Grid, got {type(grid).__name__}")
        self.grid = grid
        self.side = check_side(side)
        self.z_derivative = check_z_derivative(z_derivative)
        self.heights, self.scalar = parse_heights(height, name)
        self.projected = axis is not None
        axes = (tuple(float(a) for a in axis),) if self.projected else tuple(_AXES[c] for c in "xyz")
        self.lx = _length(grid.nx, grid.pbc)
        self.ly = _length(grid.ny, grid.pbc)
        self.terms = transfer_terms(grid, self.heights, self.side, self.z_derivative, axes)

    def _product(self, real: list, imag: list, output: tuple, columns: slice) -> torch.Tensor:
        """One output ``sum_{b, layer} (re + i im) Mk_b`` on every plane, for a block of columns.

        ``real[b][layer]`` and ``imag[b][layer]`` are the real and imaginary parts ``u, v`` of the
        y-transformed magnetization in the block, ``(..., 1, w, Ly)``; returns the complex
        ``(..., nh, w, Ly)``. The kernels stay real: ``re (u + i v) = re u + i re v`` and
        ``i im (u + i v) = -im v + i im u``. Every output has a real term, which starts the sums.
        """
        acc_re = acc_im = None
        for b, (re, _) in enumerate(output):
            for layer in range(self.grid.nz * (re is not None)):
                kernel, u, v = re[:, layer, columns], real[b][layer], imag[b][layer]
                if acc_re is None:
                    acc_re, acc_im = kernel * u, kernel * v
                else:
                    acc_re.addcmul_(kernel, u)
                    acc_im.addcmul_(kernel, v)
        for b, (_, im) in enumerate(output):
            for layer in range(self.grid.nz * (im is not None)):
                kernel, u, v = im[:, layer, columns], real[b][layer], imag[b][layer]
                acc_re.addcmul_(kernel, v, value=-1)
                acc_im.addcmul_(kernel, u)
        return torch.complex(acc_re, acc_im)

    def _block(self, X: torch.Tensor, columns: slice, out: torch.Tensor) -> None:
        """y transforms and kernel products of a block of ``w`` kx columns, written into ``out``.

        ``X (..., 3, nz, w, ny)``: the x-transformed magnetization of the block. ``out`` is the
        complex ``(..., nh, ncomp, ny, Kx)``: the x-transformed outputs on the kept rows.
        """
        Y = torch.fft.fft(X, n=self.ly, dim=-1) if self.ly > 1 else X  # (..., 3, nz, w, Ly)
        real, imag = ([part.unbind(-4) for part in values.contiguous().unsqueeze(-3).unbind(-5)]
                      for values in (Y.real, Y.imag))  # [b][layer] -> (..., 1, w, Ly)
        for index, output in enumerate(self.terms):
            Hk = self._product(real, imag, output, columns)  # (..., nh, w, Ly)
            if self.ly > 1:
                Hk = torch.fft.ifft(Hk, dim=-1)[..., : self.grid.ny]
            out[..., index, :, columns] = Hk.transpose(-1, -2)

    def __call__(self, M: torch.Tensor) -> torch.Tensor:
        """Field (or its z-derivative) of ``M`` on the planes.

        Parameters
        ----------
        M : tensor (..., nz, ny, nx, 3)
            Magnetization (A/m) on ``grid.device`` with ``grid.dtype``.

        Returns
        -------
        tensor ``(..., nh, ny, nx, 3)``, or ``(..., nh, ny, nx)`` for a projection, in A/m per
        m^n. The height axis is dropped for a scalar height.
        """
        g = self.grid
        batch = M.shape[:-4]
        padded = M.new_zeros(batch + (3, g.nz, g.ny, self.lx))
        padded[..., : g.nx] = M.movedim(-1, -4)
        X = torch.fft.rfft(padded, dim=-1).transpose(-1, -2)  # (..., 3, nz, Kx, ny)
        kx = X.shape[-2]
        out = X.new_empty(batch + (len(self.heights), len(self.terms), g.ny, kx))
        width = max(1, _BLOCK_ELEMENTS // (math.prod(batch) * 3 * g.nz * self.ly))
        for start in range(0, kx, width):
            columns = slice(start, start + width)
            self._block(X[..., columns, :], columns, out)
        H = torch.stack([torch.fft.irfft(out[..., plane, :, :, :], n=self.lx, dim=-1)[..., : g.nx]
                         for plane in range(len(self.heights))], dim=-4)  # (..., nh, ncomp, ny, nx)
        if self.scalar:
            H = H.select(-4, 0)
        return H.select(-3, 0) if self.projected else H.movedim(-3, -1)


def output_kind(*args):
    """The argument whose kind (numpy or torch) a result takes: the first tensor, else the first."""
    return next((v for v in args if isinstance(v, torch.Tensor)), args[0])


def plane_field(m, grid: Grid, Ms, height, side: str, z_derivative: int, axis, name: str = "height"):
    """Checked ``M = Ms m`` mapped by ``StrayField``; returns a tensor (see ``stray_field``)."""
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a Grid, got {type(grid).__name__}")
    mt = to_tensor(m, grid, "m")
    batch = batch_size(mt, grid)
    Ms_t = saturation_magnetization(Ms, grid, batch)
    check_magnetization(mt, grid, Ms_t)
    operator = StrayField(grid, height, side, z_derivative, axis=axis, name=name)
    return operator(Ms_t.unsqueeze(-1) * mt)


def stray_field(m, grid: Grid, Ms, height, side: str = "top", z_derivative: int = 0):
    """Stray field ``H`` (A/m) on planes above or below the film, at the cell centres in x, y.

    Parameters
    ----------
    m : array or tensor (nz, ny, nx, 3) or (B, nz, ny, nx, 3)
        Unit magnetization (zero vectors allowed only where ``Ms == 0``).
    grid : Grid
        ``grid.pbc`` selects the periodic (Fourier) or the open (exact cuboid kernel) model.
    Ms : float, (nz, ny, nx) map, or for a batch a length-B vector or (B, nz, ny, nx) map
        Saturation magnetization (A/m); a tensor may require grad.
    height : float, 1-d sequence or tensor
        Distance(s) (m, > 0) of the planes from the film surface: ``z = nz dz + height`` on the
        top side, ``z = -height`` on the bottom side. A tensor may require grad.
    side : {"top", "bottom"}
    z_derivative : int
        0 for ``H``; 1 or 2 for ``dH/dz``, ``d2H/dz2`` (A/m^2, A/m^3) along the lab ``+z`` axis,
        from the analytic derivatives of the kernel.

    Returns
    -------
    H : (ny, nx, 3) for one height, (nh, ny, nx, 3) for a list; a leading ``B`` for a batch.
        Components ``(Hx, Hy, Hz)``. A torch tensor if any of ``m``, ``Ms``, ``height`` is one,
        else a numpy array.
    """
    H = plane_field(m, grid, Ms, height, side, z_derivative, axis=None)
    return like_input(H, output_kind(m, Ms, height))


def stray_field_projection(m, grid: Grid, Ms, height, axis, side: str = "top", z_derivative: int = 0):
    """Projection ``axis . d^n H / dz^n`` of the stray field on a sensor axis (one inverse FFT).

    ``axis`` is ``"x"``, ``"y"``, ``"z"`` or a 3-vector (normalized here). The other arguments
    are those of ``stray_field``. Returns ``(ny, nx)`` or ``(nh, ny, nx)`` (a leading ``B`` for a
    batch), in A/m per m^n.
    """
    H = plane_field(m, grid, Ms, height, side, z_derivative, axis=sensor_axis(axis, "axis"))
    return like_input(H, output_kind(m, Ms, height))


@dataclass
class StrayFieldMeasurement:
    """A stray-field image: one field component (or sensor axis) on one plane.

    Parameters
    ----------
    height : float or tensor
        Plane distance from the film surface (m).
    side : {"top", "bottom"}
    component : {"x", "y", "z"} or 3-vector
        Sensor axis; a vector is normalized (e.g. a tilted Hall or NV axis).
    """

    height: object
    side: str = "top"
    component: object = "z"
    units = "A/m"

    def __post_init__(self):
        parse_heights(self.height)
        check_side(self.side)
        sensor_axis(self.component)

    @property
    def axis(self) -> tuple[float, float, float]:
        """Unit sensor axis ``(x, y, z)``."""
        return sensor_axis(self.component)

    def simulate(self, m, grid: Grid, Ms):
        """Simulated image ``axis . H`` (A/m): ``(ny, nx)`` (``(B, ny, nx)`` for a batch)."""
        return stray_field_projection(m, grid, Ms, self.height, self.axis, side=self.side)

    def to_dict(self) -> dict:
        """Record ``{"kind": "stray field", "height" (m, a float or a list), "side", "component"
        (a name or a 3-vector list)}`` (``records`` schema)."""
        component = self.component if isinstance(self.component, str) else [float(c) for c in self.component]
        return {"kind": "stray field", "height": length_record(self.height), "side": self.side,
                "component": component}

    @classmethod
    def from_dict(cls, values, schema: int = SCHEMA_VERSION) -> "StrayFieldMeasurement":
        """The measurement of a ``to_dict`` record of version ``schema``; ``ValueError`` if incomplete
        or invalid."""
        record = from_record("StrayFieldMeasurement", values, ("height",), schema)
        component = record.get("component", "z")
        return cls(height=record["height"], side=record.get("side", "top"),
                   component=component if isinstance(component, str) else tuple(component))


def length_record(value):
    """A height or list of heights (float, sequence or tensor; m) as a float or a list of floats."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, dtype=float)
    return float(arr) if arr.ndim == 0 else arr.tolist()
