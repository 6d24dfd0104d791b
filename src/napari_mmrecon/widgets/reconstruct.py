"""Dock widget "Texture reconstruction": the magnetization texture behind stray-field or MFM images.

Takes one target Image layer, or several images of one film (Ctrl-click in the list: several
heights, both sides; each says how it was measured in its metadata, as the simulator writes it),
what a single target measures (filled in from its metadata: stray-field component or MFM tip,
cantilever and quantity; height and side), the film thickness, the material (typed in, or filled
in from the metadata of a layer that carries one: a fit's result, a sample) with a box per
parameter to fit jointly, the method, the start (estimated from the image, uniform, or any
magnetization layer of this plugin) and the regularization options. Reconstruct runs
``workflows.reconstruct.reconstruct`` in a ``runner.JobPanel``: after the first iteration the
layers ``"<target> reconstruction simulated"``, ``"... residual"``, ``"... bias z"`` (bias method)
and ``"<target> reconstructed m"`` (m_z image and arrows) appear and are updated in place as it
goes; at the end (or on Cancel, with the best state so far) they carry the reconstruction's
record in metadata (``layer_data.reconstruction_layers``). A new run adds new layers unless
"replace earlier result layers" is ticked, which updates the layers of the same names made by an
earlier reconstruction instead (and removes its bias layer if the new method makes none). This
module only reads fields and converts units.

Python equivalent of one click on the sample layer ``"Hz top 10 nm"``, in napari's console::

    from napari_mmrecon import Material, console as mmc
    from napari_mmrecon.workflows import jobs
    from napari_mmrecon.workflows.reconstruct import reconstruct
    image, grid, measurement = mmc.image_from_layer(viewer.layers["Hz top 10 nm"])
    result = jobs.run(reconstruct(image, grid, measurement, Material(Ku=8e5, D=3e-3)))

Field labels, units, defaults and tooltips come from ``workflows.options`` (``fields.field_for``).
"""

from __future__ import annotations

import math

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, Select
from napari.layers import Image, Vectors
from napari.viewer import Viewer

from ..workflows import layer_data
from ..workflows.fit import measurement_from_metadata
from ..workflows.options import OPTIONS
from ..workflows.reconstruct import (
    ReconstructionSnapshot,
    ReconstructOptions,
    reconstruct,
    reconstruction_record,
    validate,
)
from ..workflows.reconstruct_output import image_entries, image_kind
from .dock import ScrollableDock
from .fields import field_for, si
from .layer_io import add_layers
from .runner import JobPanel, Task
from .section import Section, compact, reveal
from .target_fields import PARAMETERS, FilmFields, MaterialFields, MeasurementFields

TITLE = "Texture reconstruction"
STARTS = (("estimated from the image", "estimate"), ("uniform", "uniform"))
TYPED = "the fields below"
SEVERAL = "several targets: each image's measurement comes from its metadata"


class ReconstructWidget(Container):
    """The "Texture reconstruction" dock widget (see the module docstring).

    Attributes for callers and tests: ``targets`` (the list of target layers), ``panel`` (the
    ``JobPanel``), ``summary`` (how the reconstruction ended), ``result`` (the last
    ``ReconstructionResult``), ``layers`` (the result layers of the last run, by name).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    """

    def __init__(self, napari_viewer: Viewer):
        self.viewer = napari_viewer
        self.result = None
        self.layers: dict = {}
        # targets
        self.targets = Select(choices=self._target_choices, label="target images",
                              tooltip="one image, or several images of one film (Ctrl-click), each with its "
                                      "measurement in its metadata")
        self.pixel_nm = field_for(OPTIONS["pixel_size"], "pixel size if none", value=0.0,
                                  tooltip="for layers without physical scale (0: refuse them)")
        # measurement of a single target
        self.measurement_fields = MeasurementFields()
        self.several = Label(value=SEVERAL)
        self.several.native.setWordWrap(True)
        # film and material
        self.film = FilmFields()
        self.material_from = ComboBox(choices=self._material_choices, label="material from",
                                      tooltip="fill the fields from a layer's material (a fit's result, a sample)")
        self.material_fields = MaterialFields()
        self.values, self.fitted = self.material_fields.values, self.material_fields.fitted
        # how to reconstruct
        self.method = field_for(OPTIONS["method"], "method")
        self.start = ComboBox(choices=self._start_choices, label="start")
        self.bias_strength = field_for(OPTIONS["bias_strength"], "start bias (× H_K)",
                                       tooltip="in units of the anisotropy field 2 Ku / (μ0 Ms)")
        self.noise = field_for(OPTIONS["noise"], "noise (image units)", value=0.0,
                               tooltip="noise level of the images in their units (A/m, Hz or deg); 0: estimated "
                                       "from each image")
        self.discrepancy = field_for(OPTIONS["discrepancy"], "discrepancy factor")
        self.max_iter = field_for(OPTIONS["reconstruct_max_iter"], "max iterations")
        self.replace = CheckBox(value=False, text="replace earlier result layers")
        self.panel = JobPanel(TITLE, prepare=self._prepare, run_text="Reconstruct")
        self.summary = Label(value="")
        self.summary.native.setWordWrap(True)  # long messages must not widen the dock

        super().__init__(
            widgets=[
                Section("Targets", [self.targets, self.pixel_nm]),
                Section("Measurement", [self.several, *self.measurement_fields.widgets]),
                Section("Film", self.film.widgets),
                Section("Material", [self.material_from, *self.material_fields.rows]),
                Section("Reconstruction", [self.method, self.start, self.bias_strength, self.noise,
                                           self.discrepancy, self.max_iter, self.replace]),
                self.panel,
                Section("Result", [self.summary], labels=False),
            ],
            labels=False,
        )
        compact(self)
        self.method.changed.connect(self._update_visibility)
        self.targets.changed.connect(self._fill_from_targets)
        self.material_from.changed.connect(self._fill_material)
        self.start.changed.connect(self._fill_from_start)
        self._select_first()
        self._update_visibility()
        self._fill_from_targets()

    # ------------------------------------------------------------------ choices and prefill

    def _target_choices(self, _widget=None) -> list:
        """2-D Image layers that are not magnetization layers."""
        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, Image) and not layer.rgb and layer.ndim == 2
                and not layer_data.is_magnetization_layer(layer)]

    def _material_choices(self, _widget=None) -> list:
        """The fields themselves (None), then every layer whose metadata names Ms, A, Ku and D."""
        return [(TYPED, None)] + [(layer.name, layer) for layer in self.viewer.layers
                                  if _scalar_material(layer_data.mmrecon_metadata(layer))]

    def _start_choices(self, _widget=None) -> list:
        """The named starts, then every magnetization layer."""
        return list(STARTS) + [(layer.name, layer) for layer in self.viewer.layers
                               if layer_data.is_magnetization_layer(layer)]

    def reset_choices(self, *_) -> None:
        """Refresh the layer lists (napari calls this when layers change); a target list left
        empty picks the first image."""
        super().reset_choices()
        self._select_first()

    def _select_first(self) -> None:
        if not self.targets.value and self.targets.choices:
            self.targets.value = [self.targets.choices[0]]

    def _update_visibility(self) -> None:
        several = len(self.targets.value) > 1
        self.several.visible = several
        for widget in self.measurement_fields.widgets:
            widget.visible = not several
        if not several:
            self.measurement_fields.update_visibility()
        method = self.method.value
        self.bias_strength.visible = method == "bias"
        self.start.visible = self.discrepancy.visible = self.max_iter.visible = method != "fourier"

    def _fill_from_targets(self) -> None:
        """Film from the first target's metadata; a single target's measurement from its metadata."""
        layers = list(self.targets.value)
        self._update_visibility()
        if not layers:
            return
        meta = layer_data.mmrecon_metadata(layers[0])
        self.film.show(meta.get("grid") or {})
        measurement = measurement_from_metadata(meta)
        if len(layers) == 1 and measurement is not None:
            self.measurement_fields.show(measurement)

    def _fill_material(self) -> None:
        layer = self.material_from.value
        if layer is not None:
            self.material_fields.show(layer_data.mmrecon_metadata(layer).get("material") or {})

    def _fill_from_start(self) -> None:
        """Film thickness and cells from a chosen starting magnetization."""
        if not isinstance(self.start.value, str):
            self.film.show(layer_data.mmrecon_metadata(self.start.value).get("grid") or {})

    # ------------------------------------------------------------------ reading the fields

    def _options(self) -> ReconstructOptions:
        start = self.start.value
        return ReconstructOptions(method=self.method.value, init=start if isinstance(start, str) else "estimate",
                                  fit=self.material_fields.names(), bias_strength=self.bias_strength.value,
                                  noise=self.noise.value or None, discrepancy=self.discrepancy.value,
                                  max_iter=self.max_iter.value)

    def _targets(self):
        """``(layers, images, grid, measurements)`` of the chosen targets."""
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

    def _prepare(self) -> Task:
        layers, images, grid, measurements = self._targets()
        material, options = self.material_fields.read(), self._options()
        m0 = m0_grid = None
        if not isinstance(self.start.value, str) and options.method != "fourier":
            m0, m0_grid, _ = layer_data.read_magnetization(self.start.value)
        units = [layer_data.mmrecon_metadata(layer).get("unit") or "" for layer in layers]
        images = validate(images, grid, measurements, material, options, m0, (grid.dy, grid.dx), units, m0_grid,
                          names=[f"target {layer.name!r}" for layer in layers])
        name = " + ".join(layer.name for layer in layers)
        source = f"reconstruction of layer{'s' if len(layers) > 1 else ''} {name!r}"
        quantity, unit = image_kind(measurements)
        entries = image_entries(measurements)
        replace = self.replace.value
        live = self._earlier_layers(name) if replace else {}
        self.layers = live

        def layers_of(state, material, record):
            return layer_data.reconstruction_layers(state.m, state.simulated, state.residual, state.bias_field, grid,
                                                    name, quantity, unit, material, record, entries, source)

        def on_partial(snapshot: ReconstructionSnapshot):
            self._show(live, layers_of(snapshot, material, snapshot.record()), replace)

        def on_result(result):
            self._show(live, layers_of(result, result.material, reconstruction_record(result, options)), replace)
            self._show_summary(result)

        target = images[0] if len(images) == 1 else images
        measurement = measurements[0] if len(measurements) == 1 else measurements
        return Task(work=lambda cancel: reconstruct(target, grid, measurement, material, options, m0, cancel=cancel),
                    on_result=on_result, on_partial=on_partial, keep_on_cancel=True)

    # ------------------------------------------------------------------ results

    def _earlier_layers(self, name: str) -> dict:
        """The result layers of an earlier reconstruction of ``name`` (by layer name), to update."""
        names = [f"{name} reconstruction {part}" for part in ("simulated", "residual", "bias z")]
        names += [f"{name} reconstructed m", f"{name} reconstructed m arrows"]
        layers = self.viewer.layers
        return {key: layers[key] for key in names
                if key in layers and "reconstruction" in layer_data.mmrecon_metadata(layers[key])}

    def _show(self, live: dict, tuples: list, replace: bool = False) -> None:
        """Update this run's layers in place (data, display, metadata) from ``tuples`` and add the
        others as new layers, all of which become this run's. With ``replace``, an earlier run's
        layer that this run does not make (a bias field) is removed."""
        names = {kwargs["name"] for _, kwargs, _ in tuples}
        for key in [key for key in live if replace and key not in names]:
            layer = live.pop(key)
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        fresh = []
        for data, kwargs, kind in tuples:
            layer = live.get(kwargs["name"])
            if layer is None or layer not in self.viewer.layers:
                fresh.append((data, kwargs, kind))
                continue
            layer.data = data
            if isinstance(layer, Vectors):
                layer.features = kwargs["features"]
            else:
                layer.contrast_limits = kwargs["contrast_limits"]
            layer.metadata = kwargs["metadata"]
        added = add_layers(self.viewer, fresh)
        live.update({kwargs["name"]: layer for (_, kwargs, _), layer in zip(fresh, added)})

    def _show_summary(self, result) -> None:
        text = f"{result.message}; {result.iterations} iterations, {result.timings.get('total', math.nan):.1f} s"
        if result.fit is not None:
            text += "; fitted " + ", ".join(f"{key} = {value:.4g} ± {result.fit.uncertainty[key]:.2g} "
                                            f"{OPTIONS[key].unit}" for key, value in result.fit.values.items())
        self.summary.value = text
        self.result = result
        reveal(self.summary)


def _scalar_material(meta: dict) -> bool:
    """Whether a layer's metadata name Ms, A, Ku and D as numbers."""
    material = meta.get("material") or {}
    return all(isinstance(material.get(key), (int, float)) and not isinstance(material.get(key), bool)
               for key in PARAMETERS)


class ReconstructDock(ScrollableDock):
    """The npe2 widget: a ``ReconstructWidget`` (``.form``) in a scroll area."""

    def __init__(self, napari_viewer: Viewer):
        form = ReconstructWidget(napari_viewer)
        super().__init__(form, footer=form.panel)
