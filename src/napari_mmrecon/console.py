"""napari's console as a face of napari-mmrecon: layers in, any API function, layers out.

In napari's console (``viewer`` is defined there)::

    from napari_mmrecon import MU0, console as mmc, relax
    m, grid, material = mmc.from_layer(viewer.layers["m (truth)"])
    m = relax(m, grid, material, external_field=(0, 0, 0.1 / MU0))
    mmc.add_layers(viewer, m, grid, material, name="m at 100 mT")

``from_layer`` gives a magnetization layer's state as the API takes it, ``image_from_layer`` an
image with its film and measurement, ``add_layers`` puts arrays back as layers with ``scale`` in
nm and the metadata the widgets read (``workflows.layer_data``). A layer is read as it is now:
``current_magnetization`` applies an edit of the mz image to the state kept in its metadata (the
OVF writer saves the same). napari is imported only when layers are added.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

from .backend import Grid, Material
from .workflows import layer_data
from .workflows.fit import measurement_from_metadata, measurement_quantity

EDIT_TOLERANCE = 1e-9
"""An mz pixel that differs from the kept state by more than this counts as edited."""
SOURCE = "napari console"


class State(NamedTuple):
    """A magnetization layer's state: ``m`` ``(nz, ny, nx, 3)``, its ``Grid``, its ``Material``."""

    m: np.ndarray
    grid: Grid
    material: Material


class Measured(NamedTuple):
    """An image layer: ``data`` ``(ny, nx)``, the film's ``Grid``, the measurement (or None)."""

    data: np.ndarray
    grid: Grid
    measurement: object


# ----------------------------------------------------------------------------- what a layer holds now


def _edited_mz(mz: np.ndarray, m: np.ndarray, name: str) -> np.ndarray:
    """``m`` with its m_z replaced by the edited ``mz`` ``(nz, ny, nx)``, in-plane direction kept.

    Unedited cells stay exactly as they were. In an edited cell the in-plane part keeps its
    direction and gets the length ``sqrt(1 - mz^2)``; where the kept state has no in-plane part
    (a cell along +-z) the direction follows ``layer_data.magnetization_from_mz`` (along the
    gradient of m_z, the Neel sense of D > 0), as when an m_z image is simulated. Empty cells
    (``m = 0``, Ms = 0) cannot be edited.
    """
    if not np.all(np.isfinite(mz)):
        raise ValueError(f"the mz image of {name!r} contains {int(np.sum(~np.isfinite(mz)))} NaN or inf values")
    if np.abs(mz).max() > 1 + 1e-6:
        raise ValueError(f"the mz image of {name!r} spans {mz.min():g} .. {mz.max():g}; m_z lies in -1 .. 1")
    mz = np.clip(mz, -1.0, 1.0)
    edited = np.abs(mz - m[..., 2]) > EDIT_TOLERANCE
    if not edited.any():
        return m
    empty = edited & (np.linalg.norm(m, axis=-1) == 0)
    if empty.any():
        raise ValueError(f"the mz image of {name!r} was edited in {int(empty.sum())} empty cells (Ms = 0), "
                         "which have no magnetization to change")
    length = np.linalg.norm(m[..., :2], axis=-1, keepdims=True)
    scale = np.sqrt(1.0 - mz**2)[..., None] / np.where(length > 0, length, 1.0)
    in_plane = np.where(length > 0, m[..., :2] * scale, layer_data.magnetization_from_mz(mz)[..., :2])
    return np.where(edited[..., None], np.concatenate((in_plane, mz[..., None]), axis=-1), m)


def current_magnetization(data, metadata: dict, kind: str, name: str = "layer") -> tuple[np.ndarray, Grid, dict]:
    """``(m, grid, material)`` that a magnetization layer holds now (``read_magnetization``'s tuple).

    Parameters
    ----------
    data : array
        The layer's data now: the mz Image ``(ny, nx)`` (``nz == 1``) or ``(nz, ny, nx)``, or
        the arrows of the Vectors layer.
    metadata : dict
        The layer's metadata (with the state kept under ``"mmrecon"``).
    kind : {"image", "vectors"}
    name : str
        Names the layer in messages.

    An edited mz image edits the state (``_edited_mz``). The arrows show every ``stride``-th cell
    only, so edited arrows cannot be turned into a state: ``ValueError`` then, pointing to the mz
    image. ``ValueError`` also for a layer that is not a magnetization layer of napari-mmrecon.
    """
    m, grid, material = layer_data.read_magnetization(SimpleNamespace(name=name, metadata=metadata))
    data = np.asarray(data, dtype=np.float64)
    if kind == "vectors":
        arrows = layer_data.vector_arrows(m, grid)[0]
        if data.shape != arrows.shape or not np.allclose(data, arrows, rtol=1e-6, atol=1e-6):
            base = name[: -len(" arrows")] if name.endswith(" arrows") else name
            raise ValueError(f"the arrows of {name!r} were edited; they show a few cells only and cannot be read "
                             f"as a magnetization: edit and save the mz image {base!r} instead")
        return m, grid, material
    mz = data[None] if data.ndim == 2 else data
    if mz.shape != grid.shape:
        raise ValueError(f"the mz image of {name!r} has shape {data.shape}; its grid needs {grid.shape[-2:]} "
                         f"(nz = 1) or {grid.shape}")
    return _edited_mz(mz, m, name), grid, material


def _kind(layer) -> str:
    return "vectors" if hasattr(layer, "vector_style") else "image"


# ----------------------------------------------------------------------------- layers -> API objects


def from_layer(layer) -> State:
    """``State(m, grid, material)`` of a magnetization layer (its mz Image or its arrows), as it is now.

    ``material`` holds the parameters the layer knows; the others are ``Material()``'s defaults.
    ``ValueError`` for other layers (``image_from_layer`` reads images).
    """
    name = getattr(layer, "name", "layer")
    if not layer_data.is_magnetization_layer(layer):
        raise ValueError(f"layer {name!r} is not a magnetization layer of napari-mmrecon; for an image use "
                         "image_from_layer")
    m, grid, known = current_magnetization(layer.data, layer.metadata, _kind(layer), name)
    return State(m, grid, layer_data.material_from_dict(known))


def image_from_layer(layer, pixel_size: float | None = None, thickness: float | None = None) -> Measured:
    """``Measured(data, grid, measurement)`` of a 2-D Image layer.

    The grid is the film stored with the image (a simulated image), else one layer of cells of
    the image's pixel size (``layer_data.pixel_size``; ``pixel_size`` in m for a layer without
    one) and ``thickness`` (m). ``measurement`` comes from the metadata (None if unknown).
    """
    name = getattr(layer, "name", "layer")
    data = np.asarray(layer.data, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"layer {name!r} has shape {data.shape}; an image is (ny, nx)")
    meta = layer_data.mmrecon_metadata(layer)
    if isinstance(meta.get("grid"), dict):
        grid = layer_data.grid_from_dict(meta["grid"])
        if (grid.ny, grid.nx) != data.shape:
            raise ValueError(f"layer {name!r} has shape {data.shape} but its film has {(grid.ny, grid.nx)} cells")
    elif thickness is None or not thickness > 0:
        raise ValueError(f"layer {name!r} does not say how thick its film is: give thickness= (m)")
    else:
        dy, dx = layer_data.pixel_size(layer, pixel_size)
        grid = Grid(nx=data.shape[1], ny=data.shape[0], nz=1, dx=dx, dy=dy, dz=thickness, device="cpu")
    return Measured(data, grid, measurement_from_metadata(meta))


# ----------------------------------------------------------------------------- API objects -> layers


def _numpy(values) -> np.ndarray:
    """A numpy copy of an array or a torch tensor (detached, on the CPU)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.array(values, dtype=np.float64)


def layer_tuples(data, grid: Grid, material: Material | dict | None = None, name: str = "result",
                 measurement=None, quantity: str = "", unit: str = "") -> list[tuple]:
    """Layer data tuples (napari-free) for ``add_layers``: magnetization layers for data of shape
    ``grid.vector_shape``, else one Image of ``(ny, nx)`` or ``(n, ny, nx)``."""
    data = _numpy(data)
    if data.shape == grid.vector_shape:
        return layer_data.magnetization_layers(data, grid, material, name=name, source=SOURCE)
    if data.ndim not in (2, 3) or data.shape[-2:] != (grid.ny, grid.nx):
        raise ValueError(f"data of shape {data.shape} is neither a magnetization {grid.vector_shape} nor an "
                         f"image {(grid.ny, grid.nx)} of this grid")
    described = {}
    if measurement is not None:
        quantity, unit = measurement_quantity(measurement), measurement.units
        described = {k: v for k, v in measurement.to_dict().items()
                     if k in ("side", "height", "tip", "cantilever")}
    return [layer_data.image_layer(data, (grid.dy, grid.dx), name, quantity, unit, grid=grid, material=material,
                                   source=SOURCE, **described)]


def add_layers(viewer, data, grid: Grid, material: Material | dict | None = None, name: str = "result",
               measurement=None, quantity: str = "", unit: str = "") -> list:
    """Add ``data`` to ``viewer`` as layers with ``scale`` in nm and napari-mmrecon metadata.

    Parameters
    ----------
    viewer : napari.Viewer
    data : array or tensor
        A magnetization ``grid.vector_shape`` (an mz Image ``name`` and its arrows) or an image
        ``(ny, nx)`` / a stack ``(n, ny, nx)`` on the grid's cells.
    grid : Grid
    material : Material or dict, optional
        Stored with the layers, so that the widgets and ``from_layer`` find it.
    name : str
    measurement : StrayFieldMeasurement or MFMMeasurement, optional
        What an image is (sets ``quantity``, ``unit``, side and height, so the fit widget fills
        its form from the layer); else ``quantity`` (e.g. ``"Hz"``) and ``unit`` (``"A/m"``).

    Returns the new layers.
    """
    from .widgets.layer_io import add_layers as add_all

    return add_all(viewer, layer_tuples(data, grid, material, name, measurement, quantity, unit))
