"""Dock widget "Physics relaxation / fit": material parameters from a stray-field or MFM image.

Takes a target Image layer (its pixel size from the layer, or a pixel-size field), what it
measures (stray-field component, or MFM tip, cantilever and quantity; height and side), the film
thickness, starting values of Ms, A, Ku and D in the units magneticians use with a check box per
parameter to fit (and the height and an image offset), the bias option, the optimizer and an
optional starting magnetization (any magnetization layer of this plugin). Run fits in a thread
worker (``workflows.fit.fit`` in a ``runner.JobPanel``): layers ``"<target> simulated"`` and
``"<target> residual"`` appear after the first iteration and are updated in place as the fit
goes; at the end (or on Cancel, with the best state so far) they carry the fitted values and
uncertainties in metadata, the relaxed magnetization is added as ``"<target> fitted m"`` layers,
and the parameter table of the Result section (scrolled into view) shows value, 1-sigma
uncertainty and start ("Copy table" puts ``FitResult.table()``, SI and tab-separated, on the
clipboard). An MFM tip's fields can be filled from a tip calibration's JSON file ("Load tip
calibration...", ``tip_fields``).

"field series" fits one material to several images of one film instead (``workflows.fit_series``,
Levenberg-Marquardt, bias none or target): the images chosen in "series images" (Ctrl-click; in
the order of the layer list, shown under the fields), each at its applied field (μ0Hz in mT, one
per image, comma-separated), all measured alike (the measurement fields, filled in from the first
image). Each image gets layers ``"<image> series simulated"``, ``"... series residual"`` (updated
in place as the fit goes) and, at the end, ``"<image> series fitted m"``; their ``fit`` metadata
is the series' record with the image's ``image`` index and ``applied_field`` (A/m). The table shows
the shared values with their 1-sigma uncertainties, the summary each image's misfit and skyrmion
radii. This module only reads fields and converts units.

Python equivalent of one click on a simulated layer ``"Hz top 10 nm"``, in napari's console::

    from napari_mmrecon import Material, console as mmc
    from napari_mmrecon.workflows import jobs
    from napari_mmrecon.workflows.fit import fit
    image, grid, measurement = mmc.image_from_layer(viewer.layers["Hz top 10 nm"])
    result = jobs.run(fit(image, grid, measurement, Material(Ms=7e5, A=1.2e-11, Ku=1e6, D=2.5e-3)))

Field labels, units, defaults and tooltips come from ``workflows.options`` (``fields.field_for``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    Label,
    PushButton,
    Select,
    Table,
)
from napari.layers import Image
from napari.viewer import Viewer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QStyledItemDelegate,
)

from ..backend import Material
from ..backend.inverse.parameter_fit import MATERIAL_PARAMETERS
from ..workflows import layer_data
from ..workflows.fit import (
    FitOptions,
    FitSnapshot,
    fit,
    fit_record,
    measurement_from_metadata,
    measurement_quantity,
    start_values,
    validate,
)
from ..workflows.fit_series import fit_series, validate_series
from ..workflows.options import OPTIONS
from .dock import ScrollableDock
from .fields import field_for, parse_number, shown, si, unit_text
from .layer_io import add_layers
from .reconstruct import show_layers
from .runner import JobPanel, Task
from .section import Section, compact, reveal
from .target_fields import FilmFields, MaterialFields, MeasurementFields, layer_tip_offset

TITLE = "Physics relaxation / fit"
TABLE_COLUMNS = ("value", "± 1σ", "unit", "start")
NO_START = "shaped from the target"


class FitWidget(Container):
    """The "Physics relaxation / fit" dock widget (see the module docstring).

    Attributes for callers and tests: ``panel`` (the ``JobPanel``), ``table`` (the parameter
    table), ``summary`` (how the fit ended), ``copy_button``, ``result`` (the last ``FitResult``).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    """

    def __init__(self, napari_viewer: Viewer):
        self.viewer = napari_viewer
        self.result = None
        # target
        self.target = ComboBox(choices=self._target_choices, label="target image")
        self.pixel_nm = field_for(OPTIONS["pixel_size"], "pixel size if none", value=0.0,
                                     tooltip="for layers without physical scale (0: refuse them)")
        # a field series instead of one target
        self.series = CheckBox(value=False, text="field series",
                               tooltip="fit one material to several images of one film, each at its applied field")
        self.series_targets = Select(choices=self._target_choices, label="series images",
                                     tooltip="two or more images of one film (Ctrl-click), measured alike")
        self.fields_mT = field_for(OPTIONS["fields"], "applied μ0Hz", value=(0.0,))
        self.series_order = Label(value="")
        self.series_order.native.setWordWrap(True)
        # measurement
        self.measurement_fields = MeasurementFields()
        self.kind, self.component, self.height_nm, self.side, self.quantity = self.measurement_fields.widgets[:5]
        self.tip_fields = self.measurement_fields.tip_fields
        tips = self.tip_fields
        self.tip, self.tip_moment, self.tip_charge = tips.tip, tips.tip_moment, tips.tip_charge
        self.k, self.f0_kHz, self.Q = tips.k, tips.f0_kHz, tips.Q
        # film
        self.film = FilmFields()
        self.nz, self.thickness_nm, self.pbc = self.film.widgets
        # starting values and what to fit
        self.material_fields = MaterialFields(OPTIONS["fit"].default,
                                              (("height", "height"), ("gain", "image gain"),
                                               ("offset", "image offset")))
        self.values, self.fitted = self.material_fields.values, self.material_fields.fitted
        # how to fit
        self.bias = field_for(OPTIONS["bias"], "bias field")
        self.bias_strength = field_for(OPTIONS["bias_strength"], "bias strength (× H_K)",
                                          tooltip="in units of the anisotropy field 2 Ku / (μ0 Ms)")
        self.optimizer = field_for(OPTIONS["optimizer"], "optimizer")
        self.max_iter = field_for(OPTIONS["max_iter"], "max iterations")
        self.relax_tol = field_for(OPTIONS["relax_tol"], "relaxation stop (torque)")
        self.start = ComboBox(choices=self._start_choices, label="starting m")
        self.panel = JobPanel(TITLE, prepare=self._prepare, run_text="Fit")
        # results
        self.table = Table(value=[], columns=TABLE_COLUMNS)
        table = self.table.native
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setItemDelegate(QStyledItemDelegate(table))  # the text as formatted here, not magicgui's 4 decimals
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.setMinimumHeight(190)  # six rows: Ms, A, Ku, D, height, offset
        self.summary = Label(value="")
        self.summary.native.setWordWrap(True)  # long messages (why a fit stopped) must not widen the dock
        self.copy_button = PushButton(text="Copy table", enabled=False)

        super().__init__(
            widgets=[
                Section("Target", [self.target, self.series, self.series_targets, self.fields_mT, self.series_order,
                                   self.pixel_nm]),
                Section("Measurement", self.measurement_fields.widgets),
                Section("Film", self.film.widgets),
                Section("Starting values", self.material_fields.rows),
                Section("Fit", [self.bias, self.bias_strength, self.optimizer, self.max_iter, self.relax_tol,
                                self.start]),
                self.panel,
                Section("Result", [self.table, self.summary, self.copy_button], labels=False),
            ],
            labels=False,
        )
        compact(self)
        self.bias.changed.connect(self._update_visibility)
        self.series.changed.connect(self._update_visibility)
        self.series.changed.connect(self._fill_from_target)
        self.target.changed.connect(self._fill_from_target)
        self.series_targets.changed.connect(self._fill_from_target)
        self.start.changed.connect(self._fill_from_start)
        self.copy_button.changed.connect(self.copy_table)
        self._update_visibility()
        self._fill_from_target()

    # ------------------------------------------------------------------ choices and prefill

    def _target_choices(self, _widget=None) -> list:
        """2-D Image layers that are not magnetization layers."""
        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, Image) and not layer.rgb and layer.ndim == 2
                and not layer_data.is_magnetization_layer(layer)]

    def _start_choices(self, _widget=None) -> list:
        """The texture shaped from the target (None), then every magnetization layer."""
        return [(NO_START, None)] + [(layer.name, layer) for layer in self.viewer.layers
                                     if layer_data.is_magnetization_layer(layer)]

    def _update_visibility(self) -> None:
        self.measurement_fields.update_visibility()
        self.bias_strength.visible = self.bias.value != "none"
        series = self.series.value
        self.target.visible = self.optimizer.visible = not series
        for widget in (self.series_targets, self.fields_mT, self.series_order):
            widget.visible = series

    def _series_layers(self) -> list:
        """The chosen series images in the order of the layer list."""
        chosen = list(self.series_targets.value)
        return [layer for layer in self.viewer.layers if layer in chosen]

    def _fill_from_target(self) -> None:
        """Measurement and film from the (first) target's metadata, when a simulation made it."""
        layers = self._series_layers() if self.series.value else [self.target.value]
        self.series_order.value = ("fields in the order " + ", ".join(layer.name for layer in layers)
                                   if self.series.value and layers else "")
        layer = layers[0] if layers else None
        if layer is None:
            return
        meta = layer_data.mmrecon_metadata(layer)
        self.film.show(meta.get("grid") or {})
        measurement = measurement_from_metadata(meta)
        if measurement is not None:
            self.measurement_fields.show(measurement, layer_tip_offset(meta))

    def _fill_from_start(self) -> None:
        """Film thickness and cells from a chosen starting magnetization."""
        if self.start.value is not None:
            self.film.show(layer_data.mmrecon_metadata(self.start.value).get("grid") or {})

    # ------------------------------------------------------------------ reading the fields

    def _measurement(self):
        return self.measurement_fields.read()

    def _material(self) -> Material:
        return self.material_fields.read()

    def _options(self) -> FitOptions:
        return FitOptions(fit=self.material_fields.names(), bias=self.bias.value,
                          bias_strength=self.bias_strength.value, optimizer=self.optimizer.value,
                          max_iter=self.max_iter.value,
                          relax_tol=parse_number(self.relax_tol.value, self.relax_tol.label))

    def _target(self):
        """``(layer, image (ny, nx), grid)`` of the chosen target."""
        layer = self.target.value
        if layer is None:
            raise ValueError("no target image: open a stray-field or MFM image (a TIFF, File > Open Sample)")
        image = np.asarray(layer.data, dtype=float)
        pixel = layer_data.pixel_size(layer, si(OPTIONS["pixel_size"], self.pixel_nm.value) or None)
        return layer, image, self.film.grid(image.shape, pixel)

    def _fields(self) -> tuple:
        """The applied fields H_z (A/m) typed in mT."""
        items = str(self.fields_mT.value).replace(",", " ").split()
        return tuple(si(OPTIONS["fields"], parse_number(item, self.fields_mT.label, positive=False)) for item in items)

    def _prepare(self) -> Task:
        if self.series.value:
            return self._prepare_series()
        layer, image, grid = self._target()
        measurement, init, options = self._measurement(), self._material(), self._options()
        m0 = m0_grid = None
        if self.start.value is not None:
            m0, m0_grid, _ = layer_data.read_magnetization(self.start.value)
        target_unit = layer_data.mmrecon_metadata(layer).get("unit") or ""
        try:
            image = validate(image, grid, measurement, init, options, m0, (grid.dy, grid.dx), target_unit, m0_grid)
        except ValueError as exc:
            raise ValueError(f"target {layer.name!r}: {exc}") from None
        name, source = layer.name, f"fit of layer {layer.name!r}"
        quantity, unit = measurement_quantity(measurement), measurement.units
        live: dict = {}  # index in the fit_layers tuples -> layer, for this run's simulated image and residual

        def layers_of(state, material, record, m=None):
            return layer_data.fit_layers(state.simulated, state.residual, grid, name, quantity, unit, material,
                                         record, m=m, source=source)

        def on_partial(snapshot: FitSnapshot):
            material = init.replace(**{k: v for k, v in snapshot.values.items() if k in MATERIAL_PARAMETERS})
            record = {"running": True, "stage": snapshot.stage, "iteration": snapshot.iteration,
                      "loss": snapshot.loss, "values": snapshot.values}
            self._show(live, layers_of(snapshot, material, record))

        def on_result(result):
            self._show(live, layers_of(result, result.material, fit_record(result, options), m=result.m))
            self._show_table(result, init, measurement, f"noise σ {result.noise_sigma:.2g} {result.measurement.units}")

        return Task(work=lambda cancel: fit(image, grid, measurement, init, options, m0, cancel=cancel),
                    on_result=on_result, on_partial=on_partial, keep_on_cancel=True)

    def _prepare_series(self) -> Task:
        """The field-series fit of the chosen images, each at its applied field (one material)."""
        layers = self._series_layers()
        if not layers:
            raise ValueError("no series images: choose two or more images of one film (Ctrl-click)")
        fallback = si(OPTIONS["pixel_size"], self.pixel_nm.value) or None
        pixels = [layer_data.pixel_size(layer, fallback) for layer in layers]
        images = [np.asarray(layer.data, dtype=float) for layer in layers]
        grid = self.film.grid(images[0].shape, pixels[0])
        measurement, init = self._measurement(), self._material()
        options = dataclasses.replace(self._options(), optimizer=OPTIONS["optimizer"].default)  # the series' own
        m0 = m0_grid = None
        if self.start.value is not None:
            m0, m0_grid, _ = layer_data.read_magnetization(self.start.value)
        units = [layer_data.mmrecon_metadata(layer).get("unit") or "" for layer in layers]
        images, fields = validate_series(images, grid, measurement, self._fields(), init, options, m0, pixels, units,
                                         m0_grid, names=[f"image {layer.name!r}" for layer in layers])
        names = [f"{layer.name} series" for layer in layers]
        source = "field-series fit of layers " + ", ".join(repr(layer.name) for layer in layers)
        quantity, unit = measurement_quantity(measurement), measurement.units
        live: dict = {}  # layer name -> this run's layer

        def layers_of(state, material, record, m=None):
            tuples = []
            for i, name in enumerate(names):
                entry = {**record, "image": i, "applied_field": [0.0, 0.0, fields[i]]}
                tuples += layer_data.fit_layers(state.simulated[i], state.residual[i], grid, name, quantity, unit,
                                                material, entry, m=None if m is None else m[i], source=source)
            return tuples

        def on_partial(snapshot: FitSnapshot):
            material = init.replace(**{k: v for k, v in snapshot.values.items() if k in MATERIAL_PARAMETERS})
            record = {"running": True, "stage": snapshot.stage, "iteration": snapshot.iteration,
                      "loss": snapshot.loss, "values": snapshot.values}
            show_layers(self.viewer, live, layers_of(snapshot, material, record))

        def on_result(result):
            show_layers(self.viewer, live, layers_of(result, result.material, fit_record(result, options), m=result.m))
            per_image = "; ".join(
                f"{layer.name!r} at {shown(OPTIONS['fields'], h):.4g} mT: misfit {misfit:.2e}, radii "
                + (", ".join(f"{r * 1e9:.2f}" for r in radii) or "none") + " nm"
                for layer, h, misfit, radii in zip(layers, fields, result.misfits, result.radii))
            self._show_table(result, init, measurement, per_image)

        return Task(work=lambda cancel: fit_series(images, grid, measurement, fields, init, options, m0,
                                                   cancel=cancel),
                    on_result=on_result, on_partial=on_partial, keep_on_cancel=True)

    # ------------------------------------------------------------------ results

    def _show(self, live: dict, tuples: list) -> None:
        """Update the run's live layers in place (data, contrast limits, metadata) from ``tuples``
        and add the others as new layers; the first two (simulated image, residual) become live."""
        fresh = []
        for index, (data, kwargs, _) in enumerate(tuples):
            layer = live.get(index)
            if layer is not None and layer in self.viewer.layers:
                layer.data = data
                layer.contrast_limits = kwargs["contrast_limits"]
                layer.metadata = kwargs["metadata"]
            else:  # not shown yet, or removed by the user meanwhile
                fresh.append(index)
        added = add_layers(self.viewer, [tuples[index] for index in fresh])
        live.update({index: layer for index, layer in zip(fresh, added) if index < 2})

    def _show_table(self, result, init: Material, measurement, details: str) -> None:
        rows = []
        starts = start_values(result.names, init, measurement)
        for name in result.names:
            option = OPTIONS.get(name)  # all but the offset, which is in the image's units
            unit, scale = (unit_text(option), option.display_scale) if option else (result.measurement.units, 1.0)
            rows.append([f"{result.values[name] * scale:.5g}", f"{result.uncertainty[name] * scale:.2g}", unit,
                         f"{starts[name] * scale:.4g}"])
        self.table.value = {"data": rows, "index": list(result.names), "columns": TABLE_COLUMNS}
        self.summary.value = (f"{result.message}; misfit {result.misfit:.2e} after {result.iterations} iterations, "
                              + details)
        self.result = result
        self.copy_button.enabled = True
        reveal(self.table)

    def copy_table(self) -> None:
        """Put the last result's ``FitResult.table()`` (SI, tab-separated) on the clipboard."""
        if self.result is not None:
            QApplication.clipboard().setText(self.result.table())


class FitDock(ScrollableDock):
    """The npe2 widget: a ``FitWidget`` (``.form``) in a scroll area."""

    def __init__(self, napari_viewer: Viewer):
        form = FitWidget(napari_viewer)
        super().__init__(form, footer=form.panel)
