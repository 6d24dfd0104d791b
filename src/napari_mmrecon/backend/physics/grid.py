"""Finite-difference grid and material parameters.

Axis order follows numpy/napari: scalar fields are ``(nz, ny, nx)``, vector fields
``(nz, ny, nx, 3)`` with the last axis the physical component ``(x, y, z)``. An optional
leading batch axis ``B`` is accepted everywhere. Cell centres sit at ``x_i = (i + 1/2) dx``
from the grid origin; the film occupies ``0 <= z <= nz * dz``. SI units throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from ..runtime.records import SCHEMA_VERSION, from_record

MU0 = 4e-7 * math.pi
"""Vacuum permeability (T m / A), the value mumax3, OOMMF and magnum.np use."""

MAX_CELLS = 1 << 28
"""Most cells a grid may have (one float64 vector field of them takes 6.4 GB)."""

MAX_PBC_IMAGES = 32
"""Most periodic images summed explicitly on each side (the demag kernel sums ``(2 n + 1)^2`` image
tensors; the images beyond are added as a continuum, so the default 8 already suffices)."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Return a torch device; ``None`` or ``"auto"`` picks CUDA when present, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class Grid:
    """A regular grid of ``nz x ny x nx`` cuboid cells of size ``dx x dy x dz`` (m).

    Parameters
    ----------
    nx, ny, nz : int
        Number of cells along x, y, z (all >= 1).
    dx, dy, dz : float
        Cell size in metres (all > 0).
    pbc : bool
        In-plane (x and y) periodic boundaries. The z axis is always open.
    device : str or torch.device, optional
        ``"cpu"``, ``"cuda"`` or ``"auto"`` (default: CUDA when available).
    dtype : torch.dtype
        ``torch.float64`` (default) or ``torch.float32``.
    pbc_images : int
        For ``pbc=True``: number of periodic images summed explicitly on each side in x and
        y for the demagnetizing kernel; the remaining far images are added as a continuum.
    """

    nx: int
    ny: int
    nz: int = 1
    dx: float = 1e-9
    dy: float = 1e-9
    dz: float = 1e-9
    pbc: bool = False
    device: torch.device = field(default=None, compare=True)
    dtype: torch.dtype = torch.float64
    pbc_images: int = 8

    def __post_init__(self):
        for name in ("nx", "ny", "nz"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Grid {name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("dx", "dy", "dz"):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"Grid {name} must be a positive length in metres, got {value!r}") from None
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"Grid {name} must be a positive length in metres, got {value!r}")
            object.__setattr__(self, name, value)
        if self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"Grid dtype must be torch.float32 or torch.float64, got {self.dtype!r}")
        images = self.pbc_images
        if isinstance(images, bool) or not isinstance(images, (int, np.integer)) or not 0 <= images <= MAX_PBC_IMAGES:
            raise ValueError(f"Grid pbc_images must be a whole number from 0 to {MAX_PBC_IMAGES}, got {images!r} (the "
                             "demag kernel sums (2 n + 1)^2 image tensors; images beyond n are added as a continuum)")
        object.__setattr__(self, "pbc_images", int(images))
        cells = self.nx * self.ny * self.nz
        if cells > MAX_CELLS:
            raise ValueError(f"Grid of {self.nx} x {self.ny} x {self.nz} = {cells} cells is too large: at most "
                             f"{MAX_CELLS} (2**28) cells (one float64 vector field of {cells} cells takes "
                             f"{cells * 24 / 1e9:.3g} GB)")
        object.__setattr__(self, "pbc", bool(self.pbc))
        object.__setattr__(self, "device", resolve_device(self.device))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Scalar-field shape ``(nz, ny, nx)``."""
        return (self.nz, self.ny, self.nx)

    @property
    def vector_shape(self) -> tuple[int, int, int, int]:
        """Vector-field shape ``(nz, ny, nx, 3)``."""
        return (self.nz, self.ny, self.nx, 3)

    @property
    def cell_size(self) -> tuple[float, float, float]:
        """``(dx, dy, dz)`` in metres."""
        return (self.dx, self.dy, self.dz)

    @property
    def cell_volume(self) -> float:
        """Volume of one cell (m^3)."""
        return self.dx * self.dy * self.dz

    @property
    def size(self) -> tuple[float, float, float]:
        """Physical extent ``(Lx, Ly, Lz)`` in metres."""
        return (self.nx * self.dx, self.ny * self.dy, self.nz * self.dz)

    def cell_centers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """1-D arrays of cell-centre coordinates ``x (nx,), y (ny,), z (nz,)`` in metres."""
        return (
            (np.arange(self.nx) + 0.5) * self.dx,
            (np.arange(self.ny) + 0.5) * self.dy,
            (np.arange(self.nz) + 0.5) * self.dz,
        )

    def with_(self, **changes) -> "Grid":
        """A copy with some fields changed, e.g. ``grid.with_(dtype=torch.float32)``."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Grid(**values)

    def tensor(self, value, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``value`` as a tensor on this grid's device and dtype (keeps autograd history); a numpy
        view with negative strides (``np.flipud``, ``a[::-1]``) is copied, as torch cannot take it."""
        if isinstance(value, np.ndarray) and any(stride < 0 for stride in value.strides):
            value = np.ascontiguousarray(value)
        return torch.as_tensor(value, dtype=dtype or self.dtype, device=self.device)

    def to_dict(self) -> dict:
        """Record ``{"nx", "ny", "nz", "dx", "dy", "dz" (m), "pbc", "pbc_images"}`` (``records``
        schema); the device and dtype are choices of a run, not of the grid."""
        return {"nx": self.nx, "ny": self.ny, "nz": self.nz, "dx": self.dx, "dy": self.dy, "dz": self.dz,
                "pbc": self.pbc, "pbc_images": self.pbc_images}

    @classmethod
    def from_dict(cls, values, schema: int = SCHEMA_VERSION, device: str | torch.device | None = "cpu",
                  dtype: torch.dtype = torch.float64) -> "Grid":
        """The grid of a ``to_dict`` record of version ``schema``, on ``device`` with ``dtype``;
        ``ValueError`` if the record is incomplete or invalid."""
        record = from_record("Grid", values, ("nx", "ny", "nz", "dx", "dy", "dz"), schema)
        return cls(nx=record["nx"], ny=record["ny"], nz=record["nz"], dx=record["dx"], dy=record["dy"],
                   dz=record["dz"], pbc=bool(record.get("pbc", False)), pbc_images=record.get("pbc_images", 8),
                   device=device, dtype=dtype)


@dataclass
class Material:
    """Material parameters, each a scalar or a per-cell map.

    Parameters
    ----------
    Ms : float or array (nz, ny, nx)
        Saturation magnetization (A/m), >= 0. Cells with ``Ms == 0`` are vacuum.
    A : float or array
        Exchange stiffness (J/m), >= 0.
    Ku : float or array
        First-order uniaxial anisotropy constant (J/m^3), >= 0 (easy axis).
    Ku_axis : 3-sequence
        Anisotropy axis (normalized here); default ``(0, 0, 1)``.
    D : float or array
        Interfacial DMI constant (J/m^2), mumax3 ``Dind`` sign convention; any sign.
    alpha : float or array
        Gilbert damping, >= 0.

    Every parameter may also be a torch tensor (e.g. with ``requires_grad``), a length-B
    vector or a ``(B, nz, ny, nx)`` map for a batch of B states.
    """

    Ms: object = 5.8e5
    A: object = 1.5e-11
    Ku: object = 0.0
    D: object = 0.0
    alpha: object = 0.5
    Ku_axis: tuple = (0.0, 0.0, 1.0)

    def __post_init__(self):
        for name in ("Ms", "A", "Ku", "alpha"):
            value = getattr(self, name)
            arr = _as_check_array(value, name)
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"Material {name} contains NaN or inf")
            if np.any(arr < 0):
                raise ValueError(f"Material {name} must be >= 0, got min {arr.min():g}")
        arr = _as_check_array(self.D, "D")
        if not np.all(np.isfinite(arr)):
            raise ValueError("Material D contains NaN or inf")
        axis = np.asarray(self.Ku_axis, dtype=float)
        if axis.shape != (3,) or not np.all(np.isfinite(axis)) or np.linalg.norm(axis) == 0:
            raise ValueError(f"Material Ku_axis must be a non-zero 3-vector, got {self.Ku_axis!r}")
        self.Ku_axis = tuple(axis / np.linalg.norm(axis))

    def replace(self, **changes) -> "Material":
        """A copy with some parameters changed."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Material(**values)

    def to_dict(self) -> dict:
        """Record ``{"Ms" (A/m), "A" (J/m), "Ku" (J/m^3), "D" (J/m^2), "alpha", "Ku_axis"}``
        (``records`` schema): scalars as floats, maps as ``(nz, ny, nx)`` numpy arrays (copies),
        the axis as a list."""
        values = {}
        for f in fields(self):
            if f.name == "Ku_axis":
                values[f.name] = [float(c) for c in self.Ku_axis]
                continue
            arr = np.array(_as_check_array(getattr(self, f.name), f.name), dtype=float)
            values[f.name] = float(arr) if arr.ndim == 0 else arr
        return values

    @classmethod
    def from_dict(cls, values, schema: int = SCHEMA_VERSION, default: "Material | None" = None) -> "Material":
        """``default`` (``Material()`` if None) with the parameters found in a ``to_dict`` record of
        version ``schema``; a record may hold only the known ones (none for a file of unit vectors)."""
        record = from_record("Material", values, (), schema)
        known = {f.name: record[f.name] for f in fields(cls) if f.name in record and not isinstance(record[f.name], str)}
        return (default or cls()).replace(**known)

    def as_dict(self) -> dict:
        """A plain-Python summary: ``to_dict`` with each map as a ``"map(nz, ny, nx)"`` string."""
        return {name: f"map{value.shape}" if isinstance(value, np.ndarray) else value
                for name, value in self.to_dict().items()}

    def parameter(self, name: str, grid: Grid, batch: int | None = None) -> torch.Tensor:
        """Parameter ``name`` as a tensor that broadcasts against ``(B?, nz, ny, nx)``.

        Scalars stay 0-d; ``(nz, ny, nx)`` maps are kept; a length-B vector becomes
        ``(B, 1, 1, 1)``. Any other shape raises ``ValueError``.
        """
        value = getattr(self, name)
        t = grid.tensor(value)
        if t.ndim == 0 or tuple(t.shape) == grid.shape:
            return t
        if t.ndim == 1 and batch is not None and t.shape[0] == batch:
            return t.reshape(batch, 1, 1, 1)
        if t.ndim == 4 and tuple(t.shape[1:]) == grid.shape and (batch is None or t.shape[0] == batch):
            return t
        expected = f"a scalar or a {grid.shape} map (nz, ny, nx)"
        if batch is not None:
            expected += f", a length-{batch} vector or a ({batch}, {grid.nz}, {grid.ny}, {grid.nx}) map"
        raise ValueError(f"Material {name} has shape {tuple(t.shape)}; expected {expected}")


def _as_check_array(value, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"Material {name} must be a number or an array of numbers, got {value!r}") from None
