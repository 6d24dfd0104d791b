"""npe2 writers: a magnetization layer (its mz Image or its arrows) as OVF 2.0, an Image as TIFF
with its physical pixel size (nm in the ImageJ header) and its mmrecon metadata (JSON).

A magnetization layer saves what it holds now (``console.current_magnetization``): the state
kept in its metadata with the layer's current mz applied. Edited mz pixels keep their cell's
in-plane direction and get the in-plane length ``sqrt(1 - mz^2)`` (a cell that pointed along
+-z takes the direction of the gradient of m_z, as when an m_z image is simulated); the other
cells are written exactly as kept. The arrows show a few cells only, so a Vectors layer whose
arrows were edited is refused (save its mz image instead).

A layer that cannot be written (not a magnetization, edited arrows, an mz outside -1 .. 1, no
physical pixel size, a bad path) gives an error notification naming the problem; nothing is
written and no path is returned.
"""

from __future__ import annotations

from types import SimpleNamespace

from napari.utils.notifications import show_error

from .console import current_magnetization
from .io import write_ovf, write_tiff
from .workflows import layer_data


def _layer(meta: dict) -> SimpleNamespace:
    """The layer attributes the napari-free helpers read, from a writer's ``meta`` dict (the layer
    state: a Vectors layer's has ``vector_style``)."""
    return SimpleNamespace(name=meta.get("name", "layer"), metadata=meta.get("metadata") or {},
                           scale=meta.get("scale", (1.0, 1.0)), units=meta.get("units"),
                           kind="vectors" if "vector_style" in meta else "image")


def _or_notify(write, path: str, data, meta: dict) -> list[str]:
    """``write(...)`` and ``[path]``, or an error notification and ``[]``."""
    try:
        write(path, data, _layer(meta))
    except (ValueError, OSError) as exc:
        show_error(f"napari-mmrecon cannot save {meta.get('name', 'the layer')!r} to {path}: {exc}")
        return []
    return [path]


def _ovf(path: str, data, layer) -> None:
    m, grid, material = current_magnetization(data, layer.metadata, layer.kind, layer.name)
    write_ovf(path, m, grid, title="m",
              desc=[f"napari-mmrecon layer {layer.name}"] + layer_data.ovf_description(material))


def _tiff(path: str, data, layer) -> None:
    pixel = layer_data.pixel_size(layer)
    info = layer_data.json_metadata(layer_data.mmrecon_metadata(layer))
    write_tiff(path, data, pixel, metadata={**info, "name": layer.name})


def write_ovf_layer(path: str, data, meta: dict) -> list[str]:
    """Write the full magnetization ``m`` that a magnetization layer holds now to ``path`` (OVF 2.0,
    binary 8; an edited mz included, see the module docstring).

    The material goes into a ``Desc`` line, so it comes back when the file is opened here.
    """
    return _or_notify(_ovf, path, data, meta)


def write_tiff_layer(path: str, data, meta: dict) -> list[str]:
    """Write an Image layer ``(ny, nx)`` or ``(n, ny, nx)`` to a TIFF with its pixel size
    (``layer_data.pixel_size``) and the JSON part of its mmrecon metadata."""
    return _or_notify(_tiff, path, data, meta)
