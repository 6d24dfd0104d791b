"""The inputs that describe a target image, shared by the fit, the reconstruction and the U-Net
widgets: what it measures (``MeasurementFields``), the film it images (``FilmFields``), the
material with a "fit" box per parameter (``MaterialFields``, and ``material_choices``: the layers
that carry one), and the choice of one or several target layers with all of these filled from
their metadata (``TargetImages``). Labels, units, defaults and tooltips come from
``workflows.options`` (``fields.field_for``); ``read`` methods give SI backend objects."""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, Select
from napari.layers import Image

from ..backend import Grid, Material, MFMMeasurement, StrayFieldMeasurement
from ..backend.forward.measurement import plane_distance
from ..workflows import layer_data
from ..workflows.fit import measurement_from_metadata
from ..workflows.options import OPTIONS
from ..workflows.simulate import check_grid_size
from .fields import field_for, shown, si
from .tip_fields import TipFields

KINDS = ("stray field", "MFM")
MFM_QUANTITIES = (("frequency shift (Hz)", "frequency_shift"), ("phase (deg)", "phase"))
PARAMETERS = ("Ms", "A", "Ku", "D")
"""The material parameters with a value field and a "fit" box."""
TYPED = "the fields below"
SEVERAL = "several targets: each image's measurement comes from its metadata"


class MeasurementFields:
    """Stray-field component or MFM image (tip, cantilever, quantity), height and side; an MFM
    tip sits at the lift height plus the tip height offset (a calibrated tip's, ``TipFields``).

    ``widgets`` lists the input widgets in form order; ``read`` gives the measurement (SI),
    ``show`` fills the fields from one, ``update_visibility`` shows the fields of the chosen kind.
    """

    def __init__(self):
        self.kind = ComboBox(choices=KINDS, value="stray field", label="measurement")
        self.component = field_for(OPTIONS["component"], "field component")
        self.height_nm = field_for(OPTIONS["height"], "height / lift", value=OPTIONS["heights"].default[0])
        self.side = field_for(OPTIONS["side"], "side", choices=("top", "bottom"))
        self.quantity = field_for(OPTIONS["quantity"], "MFM image", choices=MFM_QUANTITIES)
        self.tip_fields = TipFields()
        self.widgets = [self.kind, self.component, self.height_nm, self.side, self.quantity, *self.tip_fields.widgets]
        for widget in (self.kind, self.tip_fields.tip):
            widget.changed.connect(self.update_visibility)
        self.update_visibility()

    def update_visibility(self) -> None:
        mfm = self.kind.value == "MFM"
        self.component.visible = not mfm
        self.quantity.visible = mfm
        self.tip_fields.set_visible(mfm)

    def read(self):
        """The ``StrayFieldMeasurement`` or ``MFMMeasurement`` of the fields; ``ValueError`` naming a bad one."""
        height, side = si(OPTIONS["height"], self.height_nm.value), self.side.value
        if self.kind.value == "stray field":
            return StrayFieldMeasurement(height=height, side=side, component=self.component.value)
        tip, cantilever = self.tip_fields.read()
        offset = self.tip_fields.height_offset()
        if not height + offset > 0:
            raise ValueError(f"the lift height {self.height_nm.value:g} nm plus the tip height offset "
                             f"{self.tip_fields.height_offset_nm.value:g} nm puts the tip at or below the film")
        return MFMMeasurement(lift_height=height + offset, side=side, tip=tip, cantilever=cantilever,
                              quantity=self.quantity.value)

    def show(self, measurement, tip_height_offset: float = 0.0) -> None:
        """Fill the fields from a measurement (e.g. ``fit.measurement_from_metadata`` of a layer), an
        MFM tip ``tip_height_offset`` (m) above its nominal lift height (``layer_tip_offset``)."""
        self.height_nm.value = shown(OPTIONS["height"], plane_distance(measurement))
        self.side.value = measurement.side
        if isinstance(measurement, StrayFieldMeasurement):
            self.kind.value, self.component.value = "stray field", measurement.component
            return
        self.kind.value, self.quantity.value = "MFM", measurement.quantity
        self.tip_fields.show(measurement.tip, measurement.cantilever, tip_height_offset)


def layer_tip_offset(meta: dict) -> float:
    """The tip height offset (m) an MFM layer's metadata records above its nominal height (a
    calibrated tip's, ``layer_data``), else 0."""
    offset = meta.get("tip_height_offset")
    return float(offset) if isinstance(offset, (int, float)) and not isinstance(offset, bool) else 0.0


class FilmFields:
    """Cells across the film, its thickness and in-plane periodicity; ``widgets`` in form order."""

    def __init__(self):
        self.nz = field_for(OPTIONS["nz"], "nz (cells)")
        self.thickness_nm = field_for(OPTIONS["thickness"], "film thickness")
        self.pbc = CheckBox(value=False, text="periodic in-plane")
        self.widgets = [self.nz, self.thickness_nm, self.pbc]

    def show(self, grid: dict) -> None:
        """Fill the fields from a metadata ``grid`` entry that names ``nz`` and ``dz``."""
        if all(isinstance(grid.get(key), (int, float)) for key in ("nz", "dz")):
            self.nz.value = int(grid["nz"])
            self.thickness_nm.value = shown(OPTIONS["thickness"], grid["nz"] * grid["dz"])
            self.pbc.value = bool(grid.get("pbc", False))

    def grid(self, shape: tuple, pixel: tuple) -> Grid:
        """The film (CPU) of an image of ``shape`` ``(ny, nx)`` and ``pixel`` ``(dy, dx)`` (m), checked
        against ``simulate.MAX_CELLS``; ``ValueError`` for a thickness <= 0."""
        thickness = si(OPTIONS["thickness"], self.thickness_nm.value)
        if not thickness > 0:
            raise ValueError(f"film thickness must be > 0 nm, got {self.thickness_nm.value:g} nm")
        (ny, nx), (dy, dx) = shape, pixel
        return check_grid_size(Grid(nx=nx, ny=ny, nz=self.nz.value, dx=dx, dy=dy, dz=thickness / self.nz.value,
                                    pbc=self.pbc.value, device="cpu"))


class MaterialFields:
    """A value field of Ms, A, Ku and D each with a "fit" box beside it, and a row of boxes for the
    other fitted quantities (``also``: ``(name, text)`` pairs, e.g. the height).

    ``values`` and ``fitted`` are dicts of the fields and boxes by name; ``rows`` the form's rows;
    ``read`` the ``Material`` (SI), ``names`` the names ticked, ``show`` fills the values.
    """

    def __init__(self, fitted=(), also=(("height", "height"),)):
        self.values = {key: field_for(OPTIONS[key], key) for key in PARAMETERS}
        self.fitted = {key: CheckBox(value=key in fitted, text="fit") for key in PARAMETERS}
        self.fitted.update({key: CheckBox(value=key in fitted, text=text) for key, text in also})
        self.rows = [Container(widgets=[self.values[key], self.fitted[key]], layout="horizontal", labels=False,
                               label=self.values[key].label, tooltip=self.values[key].tooltip) for key in PARAMETERS]
        if also:
            self.rows.append(Container(widgets=[self.fitted[key] for key, _ in also], layout="horizontal",
                                       labels=False, label="also fit"))

    def read(self) -> Material:
        return Material(**{key: si(OPTIONS[key], self.values[key].value) for key in PARAMETERS})

    def names(self) -> tuple:
        """The names whose box is ticked, in form order."""
        return tuple(key for key, box in self.fitted.items() if box.value)

    def show(self, values: dict) -> None:
        """Fill the value fields from SI numbers (others in ``values`` are ignored)."""
        for key in PARAMETERS:
            if isinstance(values.get(key), (int, float)) and not isinstance(values.get(key), bool):
                self.values[key].value = shown(OPTIONS[key], float(values[key]))


def scalar_material(meta: dict) -> bool:
    """Whether a layer's metadata name Ms, A, Ku and D as numbers."""
    material = meta.get("material") or {}
    return all(isinstance(material.get(key), (int, float)) and not isinstance(material.get(key), bool)
               for key in PARAMETERS)


def material_choices(viewer) -> list:
    """The choices of a "material from" box: the fields themselves (None), then every layer whose
    metadata name Ms, A, Ku and D."""
    return [(TYPED, None)] + [(layer.name, layer) for layer in viewer.layers
                              if scalar_material(layer_data.mmrecon_metadata(layer))]


class TargetImages:
    """The target Image layers (one, or several of one film: Ctrl-click), a pixel size for layers
    without physical scale, a single target's measurement and the film, filled in from the
    first target's metadata when the choice changes.

    ``targets`` (the list), ``pixel_nm``, ``several`` (the line shown instead of the measurement
    fields for several targets), ``measurement_fields``, ``film``; ``read`` gives ``(layers,
    images, grid, measurements)``.
    """

    def __init__(self, viewer):
        self.viewer = viewer
        self.targets = Select(choices=self._choices, label="target images",
                              tooltip="one image, or several images of one film (Ctrl-click), each with its "
                                      "measurement in its metadata")
        self.pixel_nm = field_for(OPTIONS["pixel_size"], "pixel size if none", value=0.0,
                                  tooltip="for layers without physical scale (0: refuse them)")
        self.measurement_fields = MeasurementFields()
        self.several = Label(value=SEVERAL)
        self.several.native.setWordWrap(True)
        self.film = FilmFields()
        self.targets.changed.connect(self.fill)

    def _choices(self, _widget=None) -> list:
        """2-D Image layers that are not magnetization layers."""
        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, Image) and not layer.rgb and layer.ndim == 2
                and not layer_data.is_magnetization_layer(layer)]

    def select_first(self) -> None:
        """Choose the first image if none is chosen."""
        if not self.targets.value and self.targets.choices:
            self.targets.value = [self.targets.choices[0]]

    def update_visibility(self) -> None:
        """The measurement fields for one target, the ``several`` line for more."""
        several = len(self.targets.value) > 1
        self.several.visible = several
        for widget in self.measurement_fields.widgets:
            widget.visible = not several
        if not several:
            self.measurement_fields.update_visibility()

    def fill(self) -> None:
        """Film from the first target's metadata; a single target's measurement from its metadata."""
        layers = list(self.targets.value)
        self.update_visibility()
        if not layers:
            return
        meta = layer_data.mmrecon_metadata(layers[0])
        self.film.show(meta.get("grid") or {})
        measurement = measurement_from_metadata(meta)
        if len(layers) == 1 and measurement is not None:
            self.measurement_fields.show(measurement, layer_tip_offset(meta))

    def read(self):
        """``(layers, images, grid, measurements)`` of the chosen targets: the images float64 ``(ny,
        nx)``, their film (the pixel size of the layers, one for all) and a measurement per image (the
        fields' for one target, each layer's metadata for several); ``ValueError`` naming the problem."""
        layers = list(self.targets.value)
        if not layers:
            raise ValueError("no target image: open a stray-field or MFM image (a TIFF, File > Open Sample) and "
                             "choose it")
        fallback = si(OPTIONS["pixel_size"], self.pixel_nm.value) or None
        pixels = [layer_data.pixel_size(layer, fallback) for layer in layers]
        for layer, pixel in zip(layers[1:], pixels[1:]):
            if not np.allclose(pixel, pixels[0], rtol=1e-6, atol=0):
                raise ValueError(f"target {layer.name!r} has pixels of {pixel[1] * 1e9:g} x {pixel[0] * 1e9:g} nm "
                                 f"but {layers[0].name!r} of {pixels[0][1] * 1e9:g} x {pixels[0][0] * 1e9:g} nm: the "
                                 "images of a stack are of one film")
        images = [np.asarray(layer.data, dtype=float) for layer in layers]
        grid = self.film.grid(images[0].shape, pixels[0])
        if len(layers) == 1:
            return layers, images, grid, [self.measurement_fields.read()]
        measurements = []
        for layer in layers:
            measurement = measurement_from_metadata(layer_data.mmrecon_metadata(layer))
            if measurement is None:
                raise ValueError(f"target {layer.name!r} does not say how it was measured (quantity, height and side "
                                 "in its metadata): reconstruct it alone, with the measurement fields")
            measurements.append(measurement)
        return layers, images, grid, measurements
