"""Dock widget "Tip calibration": an effective MFM tip fitted to a reference image of a known magnetization.

Takes a reference MFM Image layer (a frequency shift or phase image: a simulated layer, an
instrument file's channel, a prepared image; its pixel size from the layer, or a pixel-size field),
the reference sample's known magnetization (any magnetization layer of this plugin, on the image's
grid; its Ms fills the Ms field), the reference measurement (nominal lift height, side, quantity,
cantilever k, f0, Q: filled in from the image's metadata where it has them), the tip model (point
dipole, point monopole or both) and whether the tip's effective height offset is fitted.
"Calibrate" runs ``workflows.tip_calibration.calibrate`` in a ``runner.JobPanel``; the Result
section shows the fitted moment and / or charge, the height offset and the reference image's
offset with their 1-sigma uncertainties, and the residual's RMS. "Save calibration..." writes it as
JSON (``TipCalibration.save``; the file dialog asks before replacing a file), which the fit, the
reconstruction and the simulator docks load with their "Load tip calibration..." button (and
``mmrecon simulate / fit / reconstruct --tip FILE`` take). This module only reads fields and
converts units.

Python equivalent of one click, in napari's console::

    from napari_mmrecon import MFMMeasurement, console as mmc
    from napari_mmrecon.workflows import jobs
    from napari_mmrecon.workflows.tip_calibration import calibrate
    image, _, _ = mmc.image_from_layer(viewer.layers["reference"])
    m, grid, material = mmc.from_layer(viewer.layers["m"])
    calibration = jobs.run(calibrate(image, m, grid, material.Ms, MFMMeasurement(lift_height=10e-9)))
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, Table
from napari.layers import Image
from napari.viewer import Viewer
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QStyledItemDelegate

from ..backend import Cantilever, MFMMeasurement
from ..workflows import layer_data
from ..workflows.options import OPTIONS
from ..workflows.tip_calibration import calibrate, calibration_values, validate
from . import file_dialogs
from .dock import ScrollableDock
from .fields import field_for, shown, si, unit_text
from .runner import JobPanel, Task
from .section import Section, compact, reveal
from .target_fields import MFM_QUANTITIES
from .tip_fields import CALIBRATION_FILTER

TITLE = "Tip calibration"
TABLE_COLUMNS = ("value", "± 1σ", "unit")
ROW_NAMES = {"tip_moment": "dipole moment", "tip_charge": "monopole charge", "tip_height_offset": "height offset",
             "offset": "image offset"}
CANTILEVER = ("k", "f0", "Q")


class TipCalibrationWidget(Container):
    """The "Tip calibration" dock widget (see the module docstring).

    Attributes for callers and tests: ``reference`` and ``magnetization`` (the layer choices),
    ``panel`` (the ``JobPanel``), ``table`` (value, 1-sigma uncertainty and unit of each fitted
    quantity), ``summary``, ``save_button``, ``result`` (the last ``TipCalibration``) and ``saved``
    (the path it was last saved to, or None).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    """

    def __init__(self, napari_viewer: Viewer):
        self.viewer = napari_viewer
        self.result = self.saved = None
        self._units = ""
        # the reference image and its known magnetization
        self.reference = ComboBox(choices=self._reference_choices, label="reference image",
                                  tooltip="an MFM image (frequency shift or phase) of the reference sample")
        self.pixel_nm = field_for(OPTIONS["pixel_size"], "pixel size if none", value=0.0,
                                  tooltip="for layers without physical scale (0: refuse them)")
        self.magnetization = ComboBox(choices=self._magnetization_choices, label="its magnetization",
                                      tooltip="the reference sample's known magnetization, on the image's grid")
        self.Ms = field_for(OPTIONS["Ms"], "Ms")
        # the reference measurement
        self.lift_nm = field_for(OPTIONS["lift"], "nominal lift height", value=OPTIONS["heights"].default[0])
        self.side = field_for(OPTIONS["side"], "side", choices=("top", "bottom"))
        self.quantity = field_for(OPTIONS["quantity"], "MFM image", choices=MFM_QUANTITIES)
        self.cantilever = {key: field_for(OPTIONS[key], label) for key, label in
                           zip(CANTILEVER, ("spring constant k", "resonance f0", "quality factor Q"))}
        # the tip model
        self.model = field_for(OPTIONS["calibration_model"], "tip model")
        self.fixed_height = field_for(OPTIONS["fixed_height"], "keep the nominal lift height")
        self.panel = JobPanel(TITLE, prepare=self._prepare, run_text="Calibrate")
        # result
        self.table = Table(value=[], columns=TABLE_COLUMNS)
        table = self.table.native
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setItemDelegate(QStyledItemDelegate(table))  # the text as formatted here
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.setMinimumHeight(140)  # four rows
        self.summary = Label(value="")
        self.summary.native.setWordWrap(True)
        self.save_button = PushButton(text="Save calibration...", enabled=False,
                                      tooltip="write the calibration as JSON, for the fit, reconstruction and "
                                              "simulator docks (Load tip calibration...) and mmrecon --tip FILE")
        super().__init__(
            widgets=[
                Section("Reference", [self.reference, self.pixel_nm, self.magnetization, self.Ms]),
                Section("Measurement", [self.lift_nm, self.side, self.quantity, *self.cantilever.values()]),
                Section("Tip", [self.model, self.fixed_height]),
                self.panel,
                Section("Result", [self.table, self.summary, self.save_button], labels=False),
            ],
            labels=False,
        )
        compact(self)
        self.reference.changed.connect(self._fill_from_reference)
        self.magnetization.changed.connect(self._fill_from_magnetization)
        self.save_button.changed.connect(self._choose_file)
        self._fill_from_reference()
        self._fill_from_magnetization()

    # ------------------------------------------------------------------ choices and prefill

    def _reference_choices(self, _widget=None) -> list:
        """2-D Image layers that are not magnetization layers."""
        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, Image) and not layer.rgb and layer.ndim == 2
                and not layer_data.is_magnetization_layer(layer)]

    def _magnetization_choices(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in self.viewer.layers if layer_data.is_magnetization_layer(layer)]

    def _fill_from_reference(self) -> None:
        """Lift height, side, quantity and cantilever from the reference's metadata, where it has them."""
        layer = self.reference.value
        if layer is None:
            return
        meta = layer_data.mmrecon_metadata(layer)
        height = meta.get("height")
        if isinstance(height, (int, float)) and height > 0:
            self.lift_nm.value = shown(OPTIONS["lift"], height)
        if meta.get("side") in ("top", "bottom"):
            self.side.value = meta["side"]
        if meta.get("quantity") in ("frequency_shift", "phase"):
            self.quantity.value = meta["quantity"]
        cantilever = meta.get("cantilever") if isinstance(meta.get("cantilever"), dict) else {}
        for key, box in self.cantilever.items():
            value = cantilever.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                box.value = shown(OPTIONS[key], value)

    def _fill_from_magnetization(self) -> None:
        """Ms from the magnetization layer's material, where it is one number."""
        layer = self.magnetization.value
        Ms = (layer_data.mmrecon_metadata(layer).get("material") or {}).get("Ms") if layer is not None else None
        if isinstance(Ms, (int, float)) and not isinstance(Ms, bool):
            self.Ms.value = shown(OPTIONS["Ms"], Ms)

    # ------------------------------------------------------------------ the calibration

    def _measurement(self) -> MFMMeasurement:
        cantilever = Cantilever(**{key: si(OPTIONS[key], box.value) for key, box in self.cantilever.items()})
        return MFMMeasurement(lift_height=si(OPTIONS["lift"], self.lift_nm.value), side=self.side.value,
                              cantilever=cantilever, quantity=self.quantity.value)

    def _prepare(self) -> Task:
        layer, source = self.reference.value, self.magnetization.value
        if layer is None:
            raise ValueError("no reference image: open the reference sample's MFM image and choose it")
        if source is None:
            raise ValueError("no reference magnetization: open the reference sample's known magnetization (an OVF "
                             "file, a simulated state) and choose it")
        m, grid, _ = layer_data.read_magnetization(source)
        measurement, Ms = self._measurement(), si(OPTIONS["Ms"], self.Ms.value)
        pixel = layer_data.pixel_size(layer, si(OPTIONS["pixel_size"], self.pixel_nm.value) or None)
        unit = layer_data.mmrecon_metadata(layer).get("unit") or ""
        image = validate(layer.data, m, grid, Ms, measurement, pixel, unit, f"reference {layer.name!r}")
        model, fit_height = self.model.value, not self.fixed_height.value
        units = measurement.units

        def on_result(calibration):
            self._show(calibration, units, layer.name, float(np.sqrt(np.mean(image ** 2))))

        return Task(work=lambda cancel: calibrate(image, m, grid, Ms, measurement, model, fit_height, cancel),
                    on_result=on_result)

    # ------------------------------------------------------------------ results

    def _show(self, calibration, units: str, name: str, image_rms: float) -> None:
        rows, index = [], []
        for key, (value, sigma) in calibration_values(calibration).items():
            option = OPTIONS.get(key)  # all but the image offset, which is in the image's units
            unit, scale = (unit_text(option), option.display_scale) if key != "offset" else (units, 1.0)
            rows.append([f"{value * scale:.5g}", "not fitted" if math.isnan(sigma) else f"{sigma * scale:.2g}", unit])
            index.append(ROW_NAMES[key])
        self.table.value = {"data": rows, "index": index, "columns": TABLE_COLUMNS}
        direction = (f"; the dipole along ({', '.join(f'{c:g}' for c in calibration.dipole.direction)})"
                     if calibration.dipole is not None else "")
        self.summary.value = (f"point {calibration.model} tip from {name!r}{direction}; residual RMS "
                              f"{calibration.residual_rms:.3g} {units} (image RMS {image_rms:.3g}). Save it and load "
                              "it in the fit, reconstruction or simulator dock (Load tip calibration...)")
        self.result, self.saved = calibration, None
        self.save_button.enabled = True
        reveal(self.table)

    def _choose_file(self) -> None:
        path = file_dialogs.save_path(self.save_button.native, "Save tip calibration", "tip.json",
                                      CALIBRATION_FILTER, "json")
        if path is not None:
            self.save(path, replace=True)

    def save(self, path, replace: bool = False) -> bool:
        """Write the last calibration as JSON to ``path`` (a ``.json`` name); an existing file only
        with ``replace`` (the file dialog has asked). A refusal or a failed write is a notification
        and a status line; True when written."""
        path = Path(path)
        try:
            if self.result is None:
                raise ValueError("nothing to save: calibrate first")
            if path.suffix.lower() != ".json":
                raise ValueError(f"{path}: a tip calibration is a JSON file, give a name ending in .json")
            if path.exists() and not replace:
                raise ValueError(f"{path} exists: not replaced (choose it in Save calibration... and confirm, or "
                                 "another name)")
            self.result.save(path)
        except (ValueError, OSError) as exc:
            self.panel.report_error(exc)
            return False
        self.saved = path
        self.panel.status.value = f"saved {path}"
        return True


class TipCalibrationDock(ScrollableDock):
    """The npe2 widget: a ``TipCalibrationWidget`` (``.form``) in a scroll area."""

    def __init__(self, napari_viewer: Viewer):
        form = TipCalibrationWidget(napari_viewer)
        super().__init__(form, footer=form.panel)
