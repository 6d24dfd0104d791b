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
module only reads fields and converts units; ``reconstruction_task`` (a run with its live layers)
is shared with the U-Net dock's "Refine with physics".

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

from magicgui.widgets import CheckBox, ComboBox, Container, Label
from napari.layers import Vectors
from napari.viewer import Viewer

from ..workflows import layer_data
from ..workflows.fit import parameter_units
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
from .fields import field_for
from .layer_io import add_layers
from .runner import JobPanel, Task
from .section import Section, compact, reveal
from .target_fields import MaterialFields, TargetImages, material_choices

TITLE = "Texture reconstruction"
STARTS = (("estimated from the image", "estimate"), ("uniform", "uniform"), ("U-Net prediction", "unet"))


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
        # targets, the measurement of a single target, the film
        self.target_images = TargetImages(napari_viewer)
        self.targets, self.pixel_nm = self.target_images.targets, self.target_images.pixel_nm
        self.measurement_fields, self.several = self.target_images.measurement_fields, self.target_images.several
        self.film = self.target_images.film
        # material
        self.material_from = ComboBox(choices=self._material_choices, label="material from",
                                      tooltip="fill the fields from a layer's material (a fit's result, a sample)")
        self.material_fields = MaterialFields(also=(("height", "height"), ("gain", "image gain"),
                                                    ("offset", "image offset")))
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
        self.row_offsets = field_for(OPTIONS["row_offsets"], "offset per scan line")
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
                                           self.discrepancy, self.max_iter, self.row_offsets, self.replace]),
                self.panel,
                Section("Result", [self.summary], labels=False),
            ],
            labels=False,
        )
        compact(self)
        self.method.changed.connect(self._update_visibility)
        self.material_from.changed.connect(self._fill_material)
        self.start.changed.connect(self._fill_from_start)
        self.target_images.select_first()
        self._update_visibility()
        self.target_images.fill()

    # ------------------------------------------------------------------ choices and prefill

    def _material_choices(self, _widget=None) -> list:
        return material_choices(self.viewer)

    def _start_choices(self, _widget=None) -> list:
        """The named starts, then every magnetization layer."""
        return list(STARTS) + [(layer.name, layer) for layer in self.viewer.layers
                               if layer_data.is_magnetization_layer(layer)]

    def reset_choices(self, *_) -> None:
        """Refresh the layer lists (napari calls this when layers change); a target list left
        empty picks the first image."""
        super().reset_choices()
        self.target_images.select_first()

    def _update_visibility(self) -> None:
        self.target_images.update_visibility()
        method = self.method.value
        self.bias_strength.visible = method == "bias"
        self.start.visible = self.discrepancy.visible = self.max_iter.visible = method != "fourier"
        self.row_offsets.visible = method in ("energy", "energy-relaxed")

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
                                  max_iter=self.max_iter.value,
                                  row_offsets=self.row_offsets.value and self.method.value in ("energy", "energy-relaxed"))

    def _prepare(self) -> Task:
        layers, images, grid, measurements = self.target_images.read()
        material, options = self.material_fields.read(), self._options()
        m0 = m0_grid = None
        if not isinstance(self.start.value, str) and options.method != "fourier":
            m0, m0_grid, _ = layer_data.read_magnetization(self.start.value)
        units = [layer_data.mmrecon_metadata(layer).get("unit") or "" for layer in layers]
        images = validate(images, grid, measurements, material, options, m0, (grid.dy, grid.dx), units, m0_grid,
                          names=[f"target {layer.name!r}" for layer in layers])
        name = " + ".join(layer.name for layer in layers)
        replace = self.replace.value
        self.layers = earlier_layers(self.viewer, name) if replace else {}
        return reconstruction_task(self.viewer, images, grid, measurements, material, options, name, m0, self.layers,
                                   replace, self._show_summary)

    # ------------------------------------------------------------------ results

    def _show_summary(self, result) -> None:
        text = f"{result.message}; {result.iterations} iterations, {result.timings.get('total', math.nan):.1f} s"
        units = parameter_units(result.measurements[0])
        if result.fit is not None:
            text += "; fitted " + ", ".join(f"{key} = {value:.4g} ± {result.fit.uncertainty[key]:.2g} "
                                            f"{units[key]}" for key, value in result.fit.values.items())
        elif result.offset:
            text += f"; image offset {result.offset:.4g} {units['offset']}"
        self.summary.value = text
        self.result = result
        reveal(self.summary)


def reconstruction_task(viewer: Viewer, images, grid, measurements, material, options: ReconstructOptions, name: str,
                        m0=None, live: dict | None = None, replace: bool = False, on_result=None) -> Task:
    """The ``Task`` of a texture reconstruction whose layers are shown in ``viewer`` as it goes, as the
    "Texture reconstruction" dock shows them.

    ``images`` ``(nh, ny, nx)`` (``reconstruct.validate``'s), ``grid``, ``measurements`` (one per
    image), ``material``, ``options`` and ``m0`` (a start ``(nz, ny, nx, 3)`` or None) are what
    ``workflows.reconstruct.reconstruct`` runs on; ``name`` names the targets: the layers
    ``layer_data.reconstruction_layers`` makes (``"<name> reconstruction simulated"``, ...,
    ``"<name> reconstructed m"``) appear after the first iteration and are updated in place, and
    at the end (or on Cancel, the best state so far) carry the reconstruction's record. ``live``
    (by layer name) holds the run's layers, to be updated (``earlier_layers``, with ``replace``:
    see ``show_layers``); ``on_result(result)`` is called after the last update.
    """
    live = {} if live is None else live
    source = f"reconstruction of layer{'s' if len(images) > 1 else ''} {name!r}"
    quantity, unit = image_kind(measurements)
    entries = image_entries(measurements)

    def layers_of(state, material, record):
        return layer_data.reconstruction_layers(state.m, state.simulated, state.residual, state.bias_field, grid, name,
                                                quantity, unit, material, record, entries, source)

    def on_partial(snapshot: ReconstructionSnapshot):
        show_layers(viewer, live, layers_of(snapshot, material, snapshot.record()), replace)

    def finish(result):
        show_layers(viewer, live, layers_of(result, result.material, reconstruction_record(result, options)), replace)
        if on_result is not None:
            on_result(result)

    target = images[0] if len(images) == 1 else images
    measurement = measurements[0] if len(measurements) == 1 else measurements
    return Task(work=lambda cancel: reconstruct(target, grid, measurement, material, options, m0, cancel=cancel),
                on_result=finish, on_partial=on_partial, keep_on_cancel=True)


def earlier_layers(viewer: Viewer, name: str) -> dict:
    """The result layers of an earlier reconstruction of ``name`` in ``viewer`` (by layer name), to update."""
    names = [f"{name} reconstruction {part}" for part in ("simulated", "residual", "bias z")]
    names += [f"{name} reconstructed m", f"{name} reconstructed m arrows"]
    layers = viewer.layers
    return {key: layers[key] for key in names
            if key in layers and "reconstruction" in layer_data.mmrecon_metadata(layers[key])}


def show_layers(viewer: Viewer, live: dict, tuples: list, replace: bool = False) -> None:
    """Update a run's layers ``live`` (by name) in place (data, display, metadata) from ``tuples`` and
    add the others as new layers, all of which become the run's. With ``replace``, an earlier run's
    layer that this run does not make (a bias field) is removed."""
    names = {kwargs["name"] for _, kwargs, _ in tuples}
    for key in [key for key in live if replace and key not in names]:
        layer = live.pop(key)
        if layer in viewer.layers:
            viewer.layers.remove(layer)
    fresh = []
    for data, kwargs, kind in tuples:
        layer = live.get(kwargs["name"])
        if layer is None or layer not in viewer.layers:
            fresh.append((data, kwargs, kind))
            continue
        layer.data = data
        if isinstance(layer, Vectors):
            layer.features = kwargs["features"]
        else:
            layer.contrast_limits = kwargs["contrast_limits"]
        layer.metadata = kwargs["metadata"]
    added = add_layers(viewer, fresh)
    live.update({kwargs["name"]: layer for (_, kwargs, _), layer in zip(fresh, added)})


class ReconstructDock(ScrollableDock):
    """The npe2 widget: a ``ReconstructWidget`` (``.form``) in a scroll area."""

    def __init__(self, napari_viewer: Viewer):
        form = ReconstructWidget(napari_viewer)
        super().__init__(form, footer=form.panel)
