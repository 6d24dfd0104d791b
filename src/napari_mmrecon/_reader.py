"""npe2 reader: OVF files open as magnetization layers, TIFF images with their physical pixel size.

- ``.ovf`` / ``.omf`` with 3 components in A/m or without unit: an mz Image and an arrows
  Vectors layer (``layer_data.magnetization_layers``); unit vectors are taken as ``m``, other
  lengths as ``M = Ms m`` (OOMMF), whose ``Ms`` goes to the layer's material.
- other OVF fields (a scalar, or a vector in T): one Image layer per component.
- ``.tif`` / ``.tiff``: an Image layer in nm if the file declares its pixel size (ImageJ unit or
  resolution unit), with the metadata ``write_tiff`` stored; otherwise in pixels.
- instrument (SPM) files, ``io.instrument``: Gwyddion ``.gwy``, Asylum ``.ibw``, Nanonis ``.sxm``,
  NanoScope ``.spm`` / ``.000``, JPK ``.jpk`` and Park Systems ``.tiff`` (taken before the plain
  TIFF reader, which would show its 8-bit preview): one Image layer per channel, in nm, with the
  channel's unit, quantity, scan direction, lift height and cantilever in the metadata. What the
  file does not say (pixel size, lift height, cantilever) is named in a notification.

``get_reader`` declines (returns None) what these readers are not for, so that napari's own reader
or another plugin takes it: a ``.ovf`` / ``.omf`` / ``.ohf`` file without the ``# OOMMF`` first
line, and TIFF files other than a single real-valued ``(ny, nx)`` image or an ImageJ z-stack (RGB,
several series, time or channel axes, complex pixels, not a TIFF at all). It decides from the first
line or the TIFF header alone and imports neither torch nor napari; the reader functions it returns
import them when they run.

A file that cannot be read gives an error notification naming the file and the problem, and no
layer.
"""

from __future__ import annotations

from pathlib import Path

from .io.instrument import accepts_instrument, read_instrument
from .io.ovf import accepts_ovf, read_ovf
from .io.tiff import accepts_tiff, read_tiff

OVF_SUFFIXES = (".ovf", ".omf", ".ohf")
TIFF_SUFFIXES = (".tif", ".tiff")
MAGNETIZATION_UNITS = ("", "1", "A/m")
_RESTORED = ("schema", "kind", "quantity", "unit", "pixel_size", "source", "grid", "material")
"""TIFF metadata keys that ``image_layer`` takes as arguments; the rest pass through."""


def get_reader(path):
    """The reader function for one OVF or TIFF path that this plugin reads (see the module
    docstring), else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    suffix = Path(str(path)).suffix.lower()
    if suffix in OVF_SUFFIXES and accepts_ovf(path):
        return read_ovf_layers
    if accepts_instrument(path):  # by suffix and first bytes; None of ours for other suffixes
        return read_instrument_layers
    if suffix in TIFF_SUFFIXES and accepts_tiff(path):
        return read_tiff_layers
    return None


def _single(path) -> Path:
    return Path(path[0] if isinstance(path, (list, tuple)) else path)


def _or_notify(read, path) -> list:
    """``read(path)``, or an error notification and napari's "no layers" sentinel."""
    try:
        return read(path)
    except (ValueError, OSError) as exc:  # OVFError and TiffError are ValueErrors
        from napari.utils.notifications import show_error

        show_error(f"napari-mmrecon cannot open {path.name}: {exc}")
        return [(None,)]


def read_ovf_layers(path) -> list:
    """Layer data tuples of an OVF file (see the module docstring)."""
    return _or_notify(_ovf_layers, _single(path))


def read_tiff_layers(path) -> list:
    """Layer data tuple of a TIFF image (see the module docstring)."""
    return _or_notify(_tiff_layers, _single(path))


def read_instrument_layers(path) -> list:
    """Layer data tuples of an instrument file's channels (see the module docstring)."""
    return _or_notify(_instrument_layers, _single(path))


def _ovf_layers(path: Path) -> list:
    from .workflows import layer_data  # imports the backend (torch)

    field, grid, header = read_ovf(path, return_header=True)
    units = header.get("valueunits") or [header.get("valueunit", "")]
    title = header.get("title") or path.stem
    if field.ndim == 4 and field.shape[-1] == 3 and all(u in MAGNETIZATION_UNITS for u in units):
        m, material = layer_data.magnetization_from_field(field, header)
        return layer_data.magnetization_layers(m, grid, material, name=path.stem, source=str(path))
    components = [field] if field.ndim == 3 else [field[..., i] for i in range(field.shape[-1])]
    labels = header.get("valuelabels") or [f"{title}_{i}" for i in range(len(components))]
    out = []
    for index, values in enumerate(components):
        data = values[0] if grid.nz == 1 else values
        label = labels[index] if index < len(labels) else f"{title}_{index}"
        unit = units[index] if index < len(units) else units[0]
        out.append(layer_data.image_layer(data, (grid.dy, grid.dx), f"{path.stem} {label}", quantity=label,
                                          unit=unit, grid=grid, source=str(path)))
    return out


def _tiff_layers(path: Path) -> list:
    from .workflows import layer_data  # imports the backend (torch)

    image, pixel, meta = read_tiff(path)
    if image.ndim not in (2, 3):
        raise ValueError(f"{path}: expected a (ny, nx) image or an (n, ny, nx) stack, got shape {image.shape}")

    def entry(key, kind):
        return meta.get(key) if isinstance(meta.get(key), kind) else None

    extra = {k: v for k, v in meta.items() if k not in _RESTORED + ("name",)}
    return [layer_data.image_layer(image, pixel, entry("name", str) or path.stem,
                                   quantity=entry("quantity", str) or "", unit=entry("unit", str) or "",
                                   grid=entry("grid", dict), material=entry("material", dict), source=str(path),
                                   **extra)]


def _instrument_layers(path: Path) -> list:
    from .workflows import layer_data  # imports the backend (torch)

    contents = read_instrument(path)
    if contents.missing:
        from napari.utils.notifications import show_warning

        show_warning(f"{path.name} does not say its {', '.join(contents.missing)}: give "
                     f"{'them' if len(contents.missing) > 1 else 'it'} in the preparation or fit widget")
    shown = next((c for c in contents.channels if c.quantity in ("phase", "frequency_shift")), contents.channels[0])
    out = []
    for channel in contents.channels:
        data, kwargs, kind = layer_data.image_layer(
            channel.data, channel.pixel_size, f"{path.stem} {channel.name}", quantity=channel.quantity,
            unit=channel.unit, source=str(path), instrument=contents.format, channel=channel.name,
            direction=channel.direction, lift_height=contents.lift_height, cantilever=dict(contents.cantilever),
            missing=list(contents.missing), channel_metadata=channel.metadata)
        out.append((data, {**kwargs, "visible": channel is shown}, kind))
    return out
