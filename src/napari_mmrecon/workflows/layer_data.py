"""Magnetization states and images <-> napari layer data, without importing napari.

Layer data tuples ``(data, kwargs, layer_type)`` are what npe2 readers and sample-data commands
return and what ``napari.layers.Layer.create`` takes. Lengths on layers are in nm (``scale``,
``translate``, ``units``); everything in ``metadata`` is SI.

Metadata schema (``layer.metadata["mmrecon"]``, version ``SCHEMA_VERSION``)
---------------------------------------------------------------------------
Every layer made here carries one dict under ``METADATA_KEY``. Its entries that describe backend
objects are their records (``Grid.to_dict``, ``Material.to_dict``, ``tip.to_dict``, ...; see
``backend/runtime/records.py``); the same dict, made JSON-ready by ``json_metadata``, is the
metadata of the TIFF files, and ``fit.json`` and the OVF ``Desc`` line carry the same version.

``schema``      int, ``SCHEMA_VERSION``
``kind``        ``"magnetization"`` (the mz Image and the arrows Vectors of one state) or ``"image"``
``grid``        ``Grid.to_dict()``: ``{"nx", "ny", "nz", "dx", "dy", "dz" (m), "pbc", "pbc_images"}``
``material``    the known material parameters (``Material.to_dict()`` or a subset of it: SI floats
                or ``(nz, ny, nx)`` arrays); empty when unknown (e.g. an OVF file of unit vectors)
``source``      str, where the data came from (file, texture preset, simulation)

``kind == "magnetization"`` adds ``m``: the full state, float64 ``(nz, ny, nx, 3)`` unit
vectors ``(mx, my, mz)``; ``relax``: ``{"iterations", "max_torque", "energy" (J), "converged",
"tol"}`` if it was relaxed here; ``arrows``: ``{"stride", "length_nm"}`` of the decimation.
Both layers of one state hold equal dicts, so either is a complete input for later widgets
(``read_magnetization``).

``kind == "image"`` adds ``quantity`` (``"Hx" "Hy" "Hz" "|H|" "frequency_shift" "phase"`` or a
free name), ``unit`` (``"A/m"``, ``"Hz"``, ``"deg"``, ``""`` if unknown), ``pixel_size``
``[dy, dx]`` (m) and, for simulated images, ``side``, ``height`` (m), ``tip``
(``tip.to_dict()``), ``cantilever`` (``Cantilever.to_dict()``: ``{"k" N/m, "f0" Hz, "Q"}``),
``relaxed`` (bool) and, for MFM images of a tip that sits above the nominal ``height`` (a
calibrated tip), ``tip_height_offset`` (m; the tip was at ``height + tip_height_offset``, which
the docks' measurement fields read back, while ``fit.measurement_from_metadata`` and ``mmrecon``
take the nominal height, to which ``--tip FILE`` adds the calibration's offset).

Layers made by the parameter fit (``fit_layers``: the simulated image, the residual and the
fitted magnetization) add ``fit``: ``workflows.fit.fit_record`` of the result (its
``FitResult.to_dict()``: ``names``, ``values`` and ``uncertainty`` (1 sigma) in SI, ``units``,
``correlation``, ``misfit``, ``loss_history``, ``converged``, ``cancelled``, ``message``,
``material``, ``measurement``, ...; and the fit's ``options``), or while the
fit runs ``{"running": True, "stage", "iteration", "loss", "values"}``; the images also carry
``target`` (the name of the fitted image's layer or file).

Layers made by the texture reconstruction (``reconstruction_layers``: the simulated image(s), the
residual, the bias field's z component (quantity ``"H_bias_z"``, A/m) and the reconstructed
magnetization) add ``reconstruction``: ``workflows.reconstruct.reconstruction_record`` of the result
(``ReconstructionResult.to_dict()``: ``method``, ``init``, ``message``, ``misfit``, ``misfit_goal``,
``noise``, ``converged``, ``cancelled``, ``iterations``, ``loss_history``, ``material``,
``measurements``, a joint fit's ``fit``, ...; and the ``options``), or while it runs ``{"running":
True, "stage", "iteration", "loss", "misfit"}``; the images also carry ``target`` (the names of the
images reconstructed from). A stack of several images is one ``(nh, ny, nx)`` layer.

The magnetization layers of a U-Net prediction (``workflows.unet.unet_layers``) add ``unet``:
``UNetResult.to_dict()`` (``method``, ``weights``, ``extrapolated``: one line per quantity outside
the training ranges, ``notes``, ``measurements``, ``material``, ``seconds``) and ``target``.

Prepared measured images (``workflows.prepare.prepared_metadata``, ``mmrecon prepare`` and the
"Measured-image preparation" dock) add ``preparation``: ``{"input"`` (the file or layer),
``"channel"`` (an instrument file's, else ``""``), ``"input_pixel_size"`` ``[dy, dx]`` (m),
``"input_quantity"``, ``"input_unit"``, ``"steps"`` (the record ``prepare_image`` replays)``}``, and
``height`` (the lift height, m) and ``cantilever`` (the known values of ``k``, ``f0``, ``Q``) where
known.

Images with ``nz == 1`` (and their layers) are 2-D ``(ny, nx)``; thicker films give 3-D
``(nz, ny, nx)`` layers. ``translate`` puts the centre of pixel 0 at ``(dy/2, dx/2)`` nm, the
cell centre of the backend's grid.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..backend import Grid, Material, RelaxInfo
from ..backend.runtime.records import SCHEMA_VERSION, check_schema

METADATA_KEY = "mmrecon"
NM = 1e9
"""Nanometres per metre: layers show nm, metadata and code use m."""

SIGNED_COLORMAP = "RdBu_r"
"""Centred diverging colormap of signed images (contrast limits symmetric about 0)."""
MAGNITUDE_COLORMAP = "magma"
ARROW_COLORMAP = "viridis"
"""Colormap of the arrows (by mz): dark where m_z = 0, so that the long in-plane arrows of the
walls stand out on the white middle of the mz image's ``SIGNED_COLORMAP`` beneath."""
MAX_ARROWS_PER_SIDE = 32
"""Arrows are decimated to at most this many along each axis."""
ARROW_FILL = 0.9
"""Arrow length of an in-plane unit vector, as a fraction of the arrow spacing."""
MIN_IN_PLANE = 0.25
"""Films of one layer: cells tilted less than ~15 degrees from the normal get no arrow (it would
be a dot; the mz image shows them), so the arrows trace the walls and their chirality."""

SIGNED_QUANTITIES = ("Hx", "Hy", "Hz", "frequency_shift", "phase", "mz", "residual", "H_bias_z")
_LENGTH_UNITS = {"meter": 1.0, "millimeter": 1e3, "micrometer": 1e6, "nanometer": 1e9, "angstrom": 1e10,
                 "picometer": 1e12}
"""pint unit names (napari ``layer.units``) -> units per metre (exact integers: 5 um -> 5e-6 exactly)."""
_MATERIAL_KEYS = ("Ms", "A", "Ku", "D", "alpha", "Ku_axis")
_OVF_MATERIAL_PREFIX = "mmrecon material: "


# ----------------------------------------------------------------------------- grid and material


def grid_to_dict(grid: Grid) -> dict:
    """The metadata ``grid`` entry: ``grid.to_dict()``."""
    return grid.to_dict()


def grid_from_dict(values: dict, schema: int = SCHEMA_VERSION) -> Grid:
    """The ``Grid`` (float64 on the CPU) of a metadata ``grid`` entry; ``ValueError`` if incomplete."""
    try:
        return Grid.from_dict(values, schema)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"layer metadata has no complete grid ({exc})") from None


def material_to_dict(material: Material | None) -> dict:
    """The metadata ``material`` entry: ``material.to_dict()``, ``{}`` for None."""
    return {} if material is None else material.to_dict()


def _material_entry(material) -> dict:
    """The metadata ``material`` entry of a ``Material``, a dict of known parameters or None."""
    return dict(material) if isinstance(material, dict) else material_to_dict(material)


def material_from_dict(values: dict, default: Material | None = None, schema: int = SCHEMA_VERSION) -> Material:
    """``default`` (a default ``Material()`` if None) with the parameters found in ``values``."""
    return Material.from_dict(values, schema, default=default)


def relax_info_to_dict(info: RelaxInfo, tol: float) -> dict:
    """``{"iterations", "max_torque", "energy" (J), "converged", "tol"}``."""
    return {"iterations": int(info.iterations), "max_torque": float(info.max_torque), "energy": float(info.energy),
            "converged": bool(info.converged), "tol": float(tol)}


# ----------------------------------------------------------------------------- layer geometry


def _spatial(grid: Grid, ndim: int) -> dict:
    """``scale``, ``translate`` (nm, pixel 0 centred at half a cell), ``units``, ``axis_labels``."""
    cells = (grid.dz, grid.dy, grid.dx)[-ndim:]
    return {"scale": tuple(d * NM for d in cells), "translate": tuple(d * NM / 2 for d in cells),
            "units": ("nm",) * ndim, "axis_labels": ("z", "y", "x")[-ndim:]}


def _signed_limits(data: np.ndarray) -> tuple[float, float]:
    """Contrast limits ``(-a, a)`` with ``a`` the largest finite ``|data|`` (1 for an all-zero image)."""
    finite = np.abs(data[np.isfinite(data)])
    limit = float(finite.max()) if finite.size else 0.0
    return (-limit, limit) if limit > 0 else (-1.0, 1.0)


def display_kwargs(data: np.ndarray, quantity: str) -> dict:
    """Colormap and contrast limits: centred diverging for signed quantities (or data of both
    signs), ``MAGNITUDE_COLORMAP`` from 0 for ``|H|``, else gray over the data range."""
    finite = data[np.isfinite(data)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if quantity in SIGNED_QUANTITIES or (quantity != "|H|" and low < 0 < high):
        return {"colormap": SIGNED_COLORMAP, "contrast_limits": _signed_limits(data)}
    if quantity == "|H|":
        return {"colormap": MAGNITUDE_COLORMAP, "contrast_limits": (0.0, high if high > 0 else 1.0)}
    return {"colormap": "gray", "contrast_limits": (low, high if high > low else low + 1.0)}


# ----------------------------------------------------------------------------- magnetization


def vector_arrows(m: np.ndarray, grid: Grid, max_per_side: int = MAX_ARROWS_PER_SIDE):
    """Decimated arrows of ``m`` for a napari Vectors layer, in nm.

    Parameters
    ----------
    m : ndarray (nz, ny, nx, 3)
    grid : Grid
    max_per_side : int
        Keep every ``stride``-th cell along each axis so that at most this many remain.

    Returns
    -------
    data : ndarray (N, 2, D)
        ``[start, projection]`` in nm, ``D = 2`` (y, x) for ``nz == 1`` else 3 (z, y, x). An
        in-plane unit vector has length ``ARROW_FILL * stride * min(dx, dy)``; in-plane the arrow
        is centred on its cell. For ``nz == 1``, cells with an in-plane part below
        ``MIN_IN_PLANE`` are left out.
    mz : ndarray (N,)
        ``m_z`` of each arrow (for its colour).
    stride : int
    length_nm : float
        Length of a unit vector (nm).
    """
    stride = max(1, math.ceil(max(grid.nx, grid.ny) / max_per_side))
    z_stride = max(1, math.ceil(grid.nz / max_per_side))
    iz = np.arange(z_stride // 2, grid.nz, z_stride)
    iy = np.arange(stride // 2, grid.ny, stride)
    ix = np.arange(stride // 2, grid.nx, stride)
    Z, Y, X = np.meshgrid((iz + 0.5) * grid.dz * NM, (iy + 0.5) * grid.dy * NM, (ix + 0.5) * grid.dx * NM,
                          indexing="ij")
    picked = m[np.ix_(iz, iy, ix)].reshape(-1, 3)
    length = ARROW_FILL * stride * min(grid.dx, grid.dy) * NM
    centre = np.stack((Z.ravel(), Y.ravel(), X.ravel()), axis=-1)
    projection = picked[:, ::-1] * length  # (mz, my, mx) in (z, y, x) order
    start = centre.copy()
    start[:, 1:] -= projection[:, 1:] / 2
    data = np.stack((start, projection), axis=1)
    mz = picked[:, 2].copy()
    if grid.nz == 1:
        keep = np.hypot(picked[:, 0], picked[:, 1]) >= MIN_IN_PLANE
        data, mz = data[keep][:, :, 1:], mz[keep]
    return data, mz, stride, length


def magnetization_layers(m, grid: Grid, material: Material | dict | None = None, name: str = "m",
                         source: str = "", relax: dict | None = None) -> list[tuple]:
    """The layer data tuples of a magnetization: an mz Image and, above it, a Vectors layer.

    Parameters
    ----------
    m : ndarray (nz, ny, nx, 3)
        Unit vectors ``(mx, my, mz)``.
    grid : Grid
    material : Material, dict of known SI parameters, or None
    name : str
        The Image is called ``name``, the Vectors ``name + " arrows"``.
    source : str
    relax : dict, optional
        ``relax_info_to_dict`` of the relaxation that produced ``m``.

    Returns ``[(mz, kwargs, "image"), (arrows, kwargs, "vectors")]``; both carry the metadata
    of the module docstring, including the full ``m``.
    """
    m = np.asarray(m, dtype=np.float64)
    if m.shape != grid.vector_shape:
        raise ValueError(f"m has shape {m.shape}; the grid needs {grid.vector_shape} (nz, ny, nx, 3)")
    arrows, mz, stride, length = vector_arrows(m, grid)
    ndim = 2 if grid.nz == 1 else 3
    meta = {
        "schema": SCHEMA_VERSION, "kind": "magnetization", "grid": grid_to_dict(grid),
        "material": _material_entry(material), "source": source, "m": m, "relax": relax,
        "arrows": {"stride": stride, "length_nm": length},
    }
    mz_image = m[0, :, :, 2] if ndim == 2 else m[..., 2]
    image_kwargs = {"name": name, "metadata": {METADATA_KEY: dict(meta)}, "colormap": SIGNED_COLORMAP,
                    "contrast_limits": (-1.0, 1.0), **_spatial(grid, ndim)}
    vector_kwargs = {"name": f"{name} arrows", "metadata": {METADATA_KEY: dict(meta)}, "features": {"mz": mz},
                     "edge_color": "mz", "edge_colormap": ARROW_COLORMAP, "edge_contrast_limits": (-1.0, 1.0),
                     "edge_width": 0.12 * length, "length": 1.0, "vector_style": "arrow", "opacity": 1.0,
                     "units": ("nm",) * ndim, "axis_labels": ("z", "y", "x")[-ndim:]}
    return [(mz_image.copy(), image_kwargs, "image"), (arrows, vector_kwargs, "vectors")]


def mmrecon_metadata(layer) -> dict:
    """The ``METADATA_KEY`` dict of a layer (anything with a ``metadata`` mapping), or ``{}``."""
    meta = getattr(layer, "metadata", None) or {}
    value = meta.get(METADATA_KEY) if hasattr(meta, "get") else None
    return value if isinstance(value, dict) else {}


def is_magnetization_layer(layer) -> bool:
    """True for the mz Image and the arrows Vectors made by ``magnetization_layers``."""
    meta = mmrecon_metadata(layer)
    return meta.get("kind") == "magnetization" and "m" in meta and "grid" in meta


def read_magnetization(layer) -> tuple[np.ndarray, Grid, dict]:
    """``(m, grid, material)`` of a magnetization layer: ``m`` ``(nz, ny, nx, 3)``, its ``Grid``
    and the dict of known material parameters (SI). ``ValueError`` for other layers."""
    if not is_magnetization_layer(layer):
        raise ValueError(f"layer {getattr(layer, 'name', '?')!r} is not a magnetization layer of napari-mmrecon")
    meta = mmrecon_metadata(layer)
    grid = grid_from_dict(meta["grid"], meta.get("schema", SCHEMA_VERSION))
    m = np.asarray(meta["m"], dtype=np.float64)
    if m.shape != grid.vector_shape:
        raise ValueError(f"layer {layer.name!r}: m has shape {m.shape}, its grid needs {grid.vector_shape}")
    return m, grid, dict(meta.get("material") or {})


# ----------------------------------------------------------------------------- images


def image_layer(data, pixel_size, name: str, quantity: str = "", unit: str = "",
                grid: Grid | dict | None = None, material: Material | dict | None = None, source: str = "",
                **parameters) -> tuple:
    """Layer data tuple of an image ``(ny, nx)`` (or a stack ``(n, ny, nx)``).

    Parameters
    ----------
    data : ndarray
    pixel_size : (dy, dx) in m, or None
        None (no physical scale known) leaves ``scale`` at 1 pixel; ``pixel_size`` then refuses the
        layer unless given a fallback.
    name, quantity, unit, source : str
    grid, material : optional
        The film the image belongs to (stored in metadata).
    **parameters
        More metadata entries (SI), e.g. ``side``, ``height``, ``tip``, ``cantilever``.
    """
    data = np.asarray(data)
    spatial = {}
    if pixel_size is not None:
        dy, dx = (float(p) for p in pixel_size)
        spatial = _spatial(Grid(nx=1, ny=1, dx=dx, dy=dy, device="cpu"), 2)
        if data.ndim == 3:
            spatial = {"scale": (1.0,) + spatial["scale"], "translate": (0.0,) + spatial["translate"],
                       "units": ("pixel", "nm", "nm"), "axis_labels": ("plane", "y", "x")}
    meta = image_metadata(pixel_size, quantity, unit, grid, material, source, **parameters)
    kwargs = {"name": name, "metadata": {METADATA_KEY: meta}, **display_kwargs(data, quantity), **spatial}
    return data, kwargs, "image"


def image_metadata(pixel_size, quantity: str = "", unit: str = "", grid: Grid | dict | None = None,
                   material: Material | dict | None = None, source: str = "", **parameters) -> dict:
    """The metadata dict (module docstring, ``kind == "image"``) of an image: of its layer
    (``image_layer``) and, through ``json_metadata``, of its TIFF file. Arguments as
    ``image_layer``'s."""
    pixel_size = None if pixel_size is None else [float(p) for p in pixel_size]
    return {"schema": SCHEMA_VERSION, "kind": "image", "quantity": quantity, "unit": unit,
            "pixel_size": pixel_size, "source": source,
            "grid": grid_to_dict(grid) if isinstance(grid, Grid) else grid,
            "material": _material_entry(material), **parameters}


def simulated_image_metadata(result, image, source: str = "") -> dict:
    """The metadata entries (module docstring) of one image of a ``simulate.Simulation`` beyond
    its name, pixel size, quantity and unit: the film, the probe and whether it was relaxed."""
    probe = result.probe
    entries = {"grid": result.grid, "material": result.material, "source": source, "side": image.side,
               "height": image.height, "tip": probe.tip.to_dict(), "cantilever": probe.cantilever.to_dict(),
               "relaxed": result.relax_info is not None}
    if image.quantity in ("frequency_shift", "phase") and probe.tip_height_offset:
        entries["tip_height_offset"] = probe.tip_height_offset
    return entries


def simulation_layers(result, source: str = "") -> list[tuple]:
    """Image layer data tuples of a ``simulate.Simulation``, one per output and height."""
    pixel = (result.grid.dy, result.grid.dx)
    return [image_layer(image.data, pixel, image.name, image.quantity, image.unit,
                        **simulated_image_metadata(result, image, source)) for image in result.images]


def simulated_image_file_metadata(result, image, source: str = "") -> dict:
    """The JSON-ready metadata of a simulated image's TIFF file, made from the result: the
    metadata of its layer in ``simulation_layers`` (the same schema) and the image's name."""
    meta = image_metadata((result.grid.dy, result.grid.dx), image.quantity, image.unit,
                          **simulated_image_metadata(result, image, source))
    return {**json_metadata(meta), "name": image.name}


def fit_layers(simulated, residual, grid: Grid, name: str, quantity: str, unit: str, material, fit: dict,
               m=None, source: str = "") -> list[tuple]:
    """Layer data tuples of a parameter fit (or of its state so far).

    Parameters
    ----------
    simulated, residual : ndarray (ny, nx)
        The simulated image and ``simulated - target``, in ``unit``.
    grid : Grid
        The fitted film (cell sizes give the layers' scale).
    name : str
        The target's name: layers ``"<name> simulated"``, ``"<name> residual"`` and, with ``m``,
        the magnetization layers ``"<name> fitted m"`` (+ ``" arrows"``).
    quantity, unit : str
        What the images are (``"Hz"``, ``"A/m"``, ...); the residual's quantity is ``"residual"``.
    material : Material or dict
        The fitted (or current) material.
    fit : dict
        The ``fit`` metadata entry (module docstring).
    m : ndarray (nz, ny, nx, 3), optional
        The relaxed magnetization at the fitted parameters.
    """
    common = {"grid": grid, "material": material, "source": source, "target": name, "fit": fit}
    pixel = (grid.dy, grid.dx)
    out = [image_layer(simulated, pixel, f"{name} simulated", quantity, unit, **common),
           image_layer(residual, pixel, f"{name} residual", "residual", unit, **common)]
    if m is not None:
        state = magnetization_layers(m, grid, material, name=f"{name} fitted m", source=source)
        for _, kwargs, _ in state:
            kwargs["metadata"][METADATA_KEY]["fit"] = fit
        out += state
    return out


def reconstruction_layers(m, simulated, residual, bias_field, grid: Grid, name: str, quantity: str, unit: str,
                          material, record: dict, measurement: dict | None = None, source: str = "") -> list[tuple]:
    """Layer data tuples of a texture reconstruction (or of its state so far).

    Parameters
    ----------
    m : ndarray (nz, ny, nx, 3)
        The reconstructed magnetization.
    simulated, residual : ndarray (ny, nx) or (nh, ny, nx)
        Its image(s) and ``simulated - target``, in ``unit``.
    bias_field : ndarray (nz, ny, nx, 3) or None
        The bias field (A/m) whose equilibrium ``m`` is; its z component becomes an image.
    grid : Grid
    name : str
        The target's name: layers ``"<name> reconstruction simulated"``, ``"<name> reconstruction
        residual"``, ``"<name> reconstruction bias z"`` (with a bias field) and the magnetization
        layers ``"<name> reconstructed m"`` (+ ``" arrows"``), in this order.
    quantity, unit : str
        What the images are (``"Hz"``, ``"A/m"``; ``""`` for a stack of several kinds).
    material : Material or dict
    record : dict
        The ``reconstruction`` metadata entry (module docstring).
    measurement : dict, optional
        Metadata entries of the measurement of a single image (``side``, ``height``, ``tip``,
        ``cantilever``) for the simulated image, so that it reads back as a target.
    """
    common = {"grid": grid, "material": material, "source": source, "target": name, "reconstruction": record}
    pixel = (grid.dy, grid.dx)
    out = [image_layer(simulated, pixel, f"{name} reconstruction simulated", quantity, unit, **common,
                       **(measurement or {})),
           image_layer(residual, pixel, f"{name} reconstruction residual", "residual", unit, **common)]
    if bias_field is not None:
        bias = np.asarray(bias_field)[..., 2]
        data, kwargs, kind = image_layer(bias[0] if grid.nz == 1 else bias, pixel, f"{name} reconstruction bias z",
                                         "H_bias_z", "A/m", **common)
        kwargs.update(_spatial(grid, data.ndim))
        out.append((data, kwargs, kind))
    state = magnetization_layers(m, grid, material, name=f"{name} reconstructed m", source=source)
    for _, kwargs, _ in state:
        kwargs["metadata"][METADATA_KEY]["reconstruction"] = record
    return out + state


def pixel_size(layer, fallback: float | None = None) -> tuple[float, float]:
    """Physical pixel size ``(dy, dx)`` (m) of a 2-D or 3-D layer's last two axes.

    Taken from, in order: the layer ``units`` if they are lengths (``scale`` times the unit); the
    ``pixel_size`` of mmrecon metadata; ``scale`` if it is not all 1 (read as nm, the unit of
    this plugin's layers); else ``fallback`` (m). ``ValueError`` when none applies.
    """
    scale = np.asarray(getattr(layer, "scale", (1.0, 1.0)), dtype=float)[-2:]
    units = [str(u) for u in (getattr(layer, "units", None) or ())][-2:]
    if len(units) == 2 and all(u in _LENGTH_UNITS for u in units):
        return float(scale[0] / _LENGTH_UNITS[units[0]]), float(scale[1] / _LENGTH_UNITS[units[1]])
    stored = mmrecon_metadata(layer).get("pixel_size")
    if stored is not None:
        return float(stored[0]), float(stored[1])
    if not np.allclose(scale, 1.0):
        return float(scale[0] / NM), float(scale[1] / NM)
    if fallback is not None and fallback > 0:
        return float(fallback), float(fallback)
    raise ValueError(f"layer {getattr(layer, 'name', '?')!r} has no physical pixel size (its scale is 1 and it "
                     "carries no napari-mmrecon metadata): give a pixel size")


def magnetization_from_mz(mz: np.ndarray, chirality: int = 1) -> np.ndarray:
    """A unit magnetization ``(nz, ny, nx, 3)`` from an m_z map ``(nz, ny, nx)`` in [-1, 1].

    The in-plane part ``sqrt(1 - mz^2)`` lies along ``chirality * grad m_z`` (in-plane), the
    Neel sense favoured by ``D > 0`` for ``chirality = +1`` (as ``textures.labyrinth``), and along
    +x where m_z is flat. A starting state: relax it before measuring.
    """
    mz = np.clip(np.asarray(mz, dtype=np.float64), -1.0, 1.0)
    gy, gx = np.gradient(mz, axis=(-2, -1)) if min(mz.shape[-2:]) > 1 else (np.zeros_like(mz),) * 2
    norm = np.hypot(gx, gy)
    flat = norm == 0
    ux = np.where(flat, 1.0, chirality * gx / np.where(flat, 1.0, norm))
    uy = np.where(flat, 0.0, chirality * gy / np.where(flat, 1.0, norm))
    perpendicular = np.sqrt(1.0 - mz**2)
    return np.stack((perpendicular * ux, perpendicular * uy, mz), axis=-1)


def image_as_magnetization(layer, thickness: float, fallback_pixel: float | None = None):
    """``(m, grid)`` from an Image layer read as an m_z map (values in [-1, 1]).

    A 2-D layer is a film of one cell of ``thickness`` (m); a 3-D layer ``(nz, ny, nx)`` has
    ``nz`` cells of ``thickness / nz``. The pixel size comes from ``pixel_size(layer,
    fallback_pixel)``. ``ValueError`` names the problem: no pixel size, NaN or inf, values outside
    [-1, 1], a wrong number of dimensions.
    """
    name = getattr(layer, "name", "?")
    data = np.asarray(layer.data, dtype=np.float64)
    if data.ndim not in (2, 3) or getattr(layer, "rgb", False):
        raise ValueError(f"layer {name!r} has shape {data.shape}; an m_z map is (ny, nx) or (nz, ny, nx)")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"layer {name!r} contains {int(np.sum(~np.isfinite(data)))} NaN or inf values")
    if np.abs(data).max() > 1 + 1e-6:
        raise ValueError(f"layer {name!r} is not an m_z map: values span {data.min():g} .. {data.max():g}, "
                         "expected -1 .. 1")
    if not (math.isfinite(thickness) and thickness > 0):
        raise ValueError(f"film thickness must be > 0 nm, got {thickness * NM:g} nm")
    dy, dx = pixel_size(layer, fallback_pixel)
    mz = data[None] if data.ndim == 2 else data
    grid = Grid(nx=mz.shape[2], ny=mz.shape[1], nz=mz.shape[0], dx=dx, dy=dy, dz=thickness / mz.shape[0],
                device="cpu")
    return magnetization_from_mz(mz), grid


# ----------------------------------------------------------------------------- files


def json_metadata(meta: dict) -> dict:
    """The JSON-serialisable part of an mmrecon metadata dict (for TIFF files): ``m`` is dropped,
    material maps become ``"map(nz, ny, nx)"`` strings, numpy scalars become numbers."""

    def plain(value):
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, np.ndarray):
            return value.tolist() if value.size <= 3 else f"map{value.shape}"
        if isinstance(value, np.generic):
            return value.item()
        return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)

    return plain({k: v for k, v in meta.items() if k != "m"})


def ovf_description(material: dict) -> list[str]:
    """OVF ``Desc`` line carrying the scalar material parameters and the schema version
    (``material_from_ovf``)."""
    scalars = {k: v for k, v in json_metadata({"material": material})["material"].items() if not isinstance(v, str)}
    return [_OVF_MATERIAL_PREFIX + json.dumps({"schema": SCHEMA_VERSION, **scalars})] if scalars else []


def material_from_ovf(header: dict) -> dict:
    """The material parameters stored by ``ovf_description`` in an OVF header, or ``{}``."""
    for line in header.get("desc", []):
        if line.startswith(_OVF_MATERIAL_PREFIX):
            try:
                values = json.loads(line[len(_OVF_MATERIAL_PREFIX):])
            except ValueError:
                return {}
            if not isinstance(values, dict):
                return {}
            check_schema(values.get("schema", 1))
            return {k: v for k, v in values.items() if k in _MATERIAL_KEYS}
    return {}


def magnetization_from_field(field: np.ndarray, header: dict | None = None, tolerance: float = 1e-3):
    """``(m, material)`` from an OVF vector field ``(nz, ny, nx, 3)``.

    Unit vectors (mumax3 ``m``) are taken as they are. Otherwise the field is ``M`` in A/m (OOMMF
    ``.omf``): ``m = M / |M|`` and ``Ms = |M|`` (a scalar if equal in all non-empty cells within
    ``tolerance``, else a map). Zero vectors stay zero (vacuum). ``material`` also holds the
    parameters written by ``ovf_description``.
    """
    if field.ndim != 4 or field.shape[-1] != 3:
        raise ValueError(f"a magnetization has 3 components per cell, got an array of shape {field.shape}")
    if not np.all(np.isfinite(field)):
        raise ValueError("the vector field contains NaN or inf values")
    norm = np.linalg.norm(field, axis=-1)
    filled = norm > 0
    if not filled.any():
        raise ValueError("the vector field is zero everywhere")
    material = material_from_ovf(header or {})
    m = np.where(filled[..., None], field / np.where(filled, norm, 1.0)[..., None], 0.0)
    values = norm[filled]
    if not np.allclose(values, 1.0, rtol=0, atol=tolerance):
        material["Ms"] = float(values.mean()) if np.ptp(values) <= tolerance * values.max() else norm
    return m, material
