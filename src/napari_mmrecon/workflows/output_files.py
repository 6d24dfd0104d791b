"""The kinds of file a job's output folder holds, written one way for every job (the fit's
``fit_output``, the reconstruction's ``reconstruct_output``): JSON records and text, states and
vector fields as OVF 2.0 with the material in a ``Desc`` line, images as TIFF with their pixel size
and metadata. Every file replaces its namesake only once it is complete (``io.files.atomic_output``);
which files a caller may replace is the caller's decision (the CLI checks before it runs).
"""

from __future__ import annotations

import json
from pathlib import Path

from . import layer_data
from ..backend import Grid
from ..io import write_ovf, write_tiff
from ..io.files import atomic_output


def write_text(path, text: str) -> None:
    """``text`` into ``path``, replacing it only once complete."""
    with atomic_output(Path(path)) as temporary:
        temporary.write_text(text)


def write_json(path, record: dict) -> None:
    """``record`` (an mmrecon record: SI values, numpy arrays and scalars allowed) as indented JSON
    (``layer_data.json_metadata``: ``m`` dropped, material maps named by their shape)."""
    write_text(path, json.dumps(layer_data.json_metadata(record), indent=2))


def write_state(path, field, grid: Grid, material, line: str, title: str = "m", value_units: str = "") -> None:
    """A vector field ``(nz, ny, nx, 3)`` as OVF 2.0 with a ``Desc`` line ``line`` and the
    material's (``layer_data.ovf_description``, read back by ``material_from_ovf``)."""
    write_ovf(path, field, grid, title=title, value_units=value_units,
              desc=[line] + layer_data.ovf_description(layer_data.material_to_dict(material)))


def write_image(path, data, grid: Grid, meta: dict, name: str) -> None:
    """An image ``(ny, nx)`` or a stack ``(n, ny, nx)`` as TIFF with the grid's pixel size and the
    metadata ``meta`` (``layer_data.image_metadata``, made JSON-ready here) named ``name``."""
    write_tiff(path, data, (grid.dy, grid.dx), metadata={**layer_data.json_metadata(meta), "name": name})
