"""Dock widget "Measured-image preparation": levelling, row alignment, outliers, scars, crop,
resampling and the phase / frequency shift / force gradient conversion of a measured image, recorded.

Takes one 2-D Image layer (a pixel size for a layer without physical scale; what the image is, in
its metadata or chosen here) and the steps: levelling (plane, a polynomial of degree 1-5, or each
row's polynomial), row alignment against scan-line jumps, outliers and scars (thresholds in robust
standard deviations, 0: none), a crop (none, the current view, or a rectangle in nm), a resampling
(a pixel size in nm, 0: none) and a conversion with the cantilever's k, f0 and Q (filled in from
the layer's metadata where it has them). The steps run in the order crop, row alignment, outliers,
scars, levelling, conversion, resampling (``workflows.prepare.steps_from_options``, as ``mmrecon
prepare``).
"Prepare" runs them in a ``runner.JobPanel`` and adds a NEW layer ``"<input> prepared"`` (the
input layer stays as it is) with its nm scale and, in its metadata (``layer_data``'s schema),
``preparation``: the source, the input's pixel size, quantity and unit, and the record of the
steps that ``prepare_image`` (or ``mmrecon prepare --steps`` on a TIFF saved from the layer)
replays. Bad input is an error notification.

Python equivalent of one click, in napari's console::

    from napari_mmrecon.workflows.prepare import measured_from_layer, prepare, prepared_layer, steps_from_options
    measured = measured_from_layer(viewer.layers["scan"])
    prepared = prepare(measured, steps_from_options(level="plane", align_rows="median"))
    viewer.add_layer(napari.layers.Layer.create(*prepared_layer(measured, prepared)))
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, LineEdit
from napari.layers import Image
from napari.viewer import Viewer

from ..backend.measured.imageprep import ROW_ALIGNMENTS
from ..backend.measured.preparation import UNITS
from ..workflows import layer_data
from ..workflows.jobs import Progress
from ..workflows.options import LEVELS, OPTIONS
from ..workflows.prepare import measured_from_layer, prepare, prepared_layer, steps_from_options
from .dock import ScrollableDock
from .fields import field_for, parse_number, si
from .layer_io import add_layers
from .runner import JobPanel, Task
from .section import Section, compact, reveal

TITLE = "Measured-image preparation"
NONE = ("none", None)
CROPS = (NONE, ("the current view", "view"), ("the rectangle below", "given"))
QUANTITIES = [("as its metadata says, or unknown", None)] + [(f"{name.replace('_', ' ')} ({unit})", name)
                                                            for name, unit in UNITS.items()]


def _optional(values, label: str, tooltip: str) -> ComboBox:
    """A box of ``values`` and "none" (None, the first choice)."""
    return ComboBox(choices=[NONE, *((value, value) for value in values)], value=None, label=label, tooltip=tooltip)


class PrepareWidget(Container):
    """The "Measured-image preparation" dock widget (see the module docstring).

    Attributes for callers and tests: ``image`` (the input layer), ``pixel_nm``, ``quantity``,
    ``level``, ``align_rows``, ``outliers``, ``scars``, ``crop``, ``crop_nm`` (``"y0, x0, height, width"`` in
    nm), ``resample_nm``, ``convert``, ``cantilever`` (the k, f0, Q fields by name), ``panel`` (its
    Run button is "Prepare"), ``summary``, ``result`` (the last ``PreparedImage``) and ``new_layer``
    (the layer it added).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    """

    def __init__(self, napari_viewer: Viewer):
        self.viewer = napari_viewer
        self.result = self.new_layer = None
        self.image = ComboBox(choices=self._choices, label="image", tooltip="the measured image to prepare")
        self.pixel_nm = field_for(OPTIONS["pixel_size"], "pixel size if none", value=0.0,
                                  tooltip="for a layer without physical scale (0: refuse it)")
        self.quantity = ComboBox(choices=QUANTITIES, value=None, label="the image is",
                                 tooltip="what the image measures, for the conversion")
        self.level = _optional(LEVELS, "levelling", OPTIONS["level"].help)
        self.align_rows = _optional(ROW_ALIGNMENTS, "align rows", OPTIONS["align_rows"].help)
        self.outliers = field_for(OPTIONS["outliers"], "outliers above (sigma)", value=0.0,
                                  tooltip=OPTIONS["outliers"].help + "; 0: keep every pixel")
        self.scars = field_for(OPTIONS["scars"], "scars above (sigma)", value=0.0,
                               tooltip=OPTIONS["scars"].help + "; 0: keep every row")
        self.crop = ComboBox(choices=CROPS, value=None, label="crop to", tooltip="the part of the image kept")
        self.crop_nm = LineEdit(value="", label="y0, x0, height, width (nm)",
                                tooltip="the rectangle kept, from the image's corner, in nm")
        self.resample_nm = field_for(OPTIONS["resample"], "resample to", value=0.0,
                                     tooltip=OPTIONS["resample"].help + "; 0: keep the pixels")
        self.convert = _optional(UNITS, "convert to", OPTIONS["convert"].help)
        self.cantilever = {key: field_for(OPTIONS[key], key) for key in ("k", "f0", "Q")}
        self.panel = JobPanel(TITLE, prepare=self._prepare, run_text="Prepare")
        self.summary = Label(value="")
        self.summary.native.setWordWrap(True)
        super().__init__(
            widgets=[
                Section("Input", [self.image, self.pixel_nm, self.quantity]),
                Section("Levelling", [self.level, self.align_rows, self.outliers, self.scars]),
                Section("Crop and resample", [self.crop, self.crop_nm, self.resample_nm]),
                Section("Conversion", [self.convert, *self.cantilever.values()]),
                self.panel,
                Section("Result", [self.summary], labels=False),
            ],
            labels=False,
        )
        compact(self)
        self.image.changed.connect(self.fill)
        self.crop.changed.connect(self._show_fields)
        self.convert.changed.connect(self._show_fields)
        self._show_fields()
        self.fill()

    # ------------------------------------------------------------------ choices and prefill

    def _choices(self, _widget=None) -> list:
        """2-D Image layers that are not magnetization layers."""
        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, Image) and not layer.rgb and layer.ndim == 2
                and not layer_data.is_magnetization_layer(layer)]

    def _show_fields(self, *_) -> None:
        self.crop_nm.visible = self.crop.value == "given"
        for box in self.cantilever.values():
            box.visible = self.convert.value is not None

    def fill(self, *_) -> None:
        """What the image is and the cantilever, from the chosen layer's metadata (the declared
        defaults for the cantilever values it does not hold)."""
        layer = self.image.value
        if layer is None:
            return
        meta = layer_data.mmrecon_metadata(layer)
        self.quantity.value = meta.get("quantity") if meta.get("quantity") in UNITS else None
        cantilever = meta.get("cantilever") if isinstance(meta.get("cantilever"), dict) else {}
        for key, box in self.cantilever.items():  # the layer's value, else the declared default
            value = cantilever.get(key)
            known = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
            box.value = (value if known else OPTIONS[key].default) * OPTIONS[key].display_scale

    # ------------------------------------------------------------------ the preparation

    def _crop(self, layer, pixel: tuple) -> tuple | None:
        """``(y0, x0, height, width)`` (m) of the crop choice."""
        if self.crop.value == "given":
            values = [si(OPTIONS["crop"], parse_number(item, "crop (nm)", positive=False))
                      for item in self.crop_nm.value.replace(",", " ").split()]
            if len(values) != 4:
                raise ValueError(f"crop takes four lengths y0, x0, height, width in nm, got {self.crop_nm.value!r}")
            return tuple(values)
        if self.crop.value == "view":
            # napari's corner pixels: the first and the last (inclusive) data pixel in view
            (i0, j0), (i1, j1) = np.clip(np.asarray(layer.corner_pixels)[:, -2:], 0,
                                         np.asarray(layer.data.shape) - 1)
            return i0 * pixel[0], j0 * pixel[1], (i1 + 1 - i0) * pixel[0], (j1 + 1 - j0) * pixel[1]
        return None

    def _prepare(self) -> Task:
        layer = self.image.value
        if layer is None:
            raise ValueError("no image: open a measured image (a TIFF or an instrument file) and choose it")
        measured = measured_from_layer(layer, si(OPTIONS["pixel_size"], self.pixel_nm.value) or None)
        if self.quantity.value is not None:
            measured.quantity = self.quantity.value
        cantilever = ({key: si(OPTIONS[key], box.value) for key, box in self.cantilever.items()}
                      if self.convert.value is not None else None)
        resample = si(OPTIONS["resample"], self.resample_nm.value) or None
        outliers = self.outliers.value or None
        steps = steps_from_options(self.level.value, self.align_rows.value, outliers,
                                   self._crop(layer, measured.pixel_size), resample, self.convert.value, cantilever,
                                   self.scars.value or None)
        if not steps:
            raise ValueError("nothing to do: choose a levelling, a row alignment, outliers, scars, a crop, a resampling "
                             "or a conversion")

        def work(cancel):
            yield Progress(0, 0, f"preparing {layer.name!r}: {len(steps)} steps")
            return prepare(measured, steps)

        def on_result(prepared):
            (self.new_layer,) = add_layers(self.viewer, [prepared_layer(measured, prepared, cantilever)])
            self.result = prepared
            (ny, nx), (dy, dx) = prepared.image.shape, prepared.pixel_size
            done = ", ".join(step["step"] + (f" ({step['replaced']} pixels)" if "replaced" in step else "")
                             for step in prepared.steps)
            self.summary.value = (f"{self.new_layer.name!r}: {done}; {ny} x {nx} pixels of {dy * 1e9:g} x {dx * 1e9:g} "
                                  f"nm" + (f", {prepared.quantity} ({prepared.unit})" if prepared.quantity else ""))
            reveal(self.summary)

        return Task(work=work, on_result=on_result)


class PrepareDock(ScrollableDock):
    """The npe2 widget: a ``PrepareWidget`` (``.form``) in a scroll area."""

    def __init__(self, napari_viewer: Viewer):
        form = PrepareWidget(napari_viewer)
        super().__init__(form, footer=form.panel)
