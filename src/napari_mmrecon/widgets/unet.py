"""Dock widget "U-Net reconstruction": the magnetization a trained U-Net predicts from stray-field or
MFM images, in a second, and its refinement by the physics.

Takes one target Image layer, or several images of one film (Ctrl-click; each says how it was
measured in its metadata), what a single target measures (filled in from its metadata: H_z or a
point-dipole MFM image, height and side), the film thickness, the material (typed in, or filled
in from a layer that carries one: only the sign of D steers the network, but every value is
compared with the ranges it was trained on) and the weights (empty: the shipped ones). Predict
runs ``workflows.unet.predict`` in a ``runner.JobPanel`` and adds ``"<target> U-Net m"`` (the m_z
image) and ``"<target> U-Net m arrows"`` (``workflows.unet.unet_layers``: nm scale; the
measurements, grid, material and the prediction's notes in metadata). A prediction beyond the
training ranges still gives its layers, with a warning notification that names each quantity and
its range. "Refine with physics" hands the last prediction to the texture reconstruction as its
start (``widgets.reconstruct.reconstruction_task``: the bias method with the material of the
fields, its layers ``"<target> reconstructed m"`` etc. shown live as the "Texture reconstruction"
dock shows them, Cancel keeping the best state so far). This module only reads fields.

Python equivalent of one click on the sample layer ``"Hz top 10 nm"``, in napari's console::

    from napari_mmrecon import Material, console as mmc
    from napari_mmrecon.workflows import jobs
    from napari_mmrecon.workflows.unet import predict
    image, grid, measurement = mmc.image_from_layer(viewer.layers["Hz top 10 nm"])
    result = jobs.run(predict(image, grid, measurement, Material(Ku=8e5, D=3e-3)))
"""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton
from napari.utils.notifications import show_warning
from napari.viewer import Viewer

from ..workflows import layer_data
from ..workflows.options import OPTIONS
from ..workflows.reconstruct import ReconstructOptions
from ..workflows.reconstruct import validate as validate_reconstruction
from ..workflows.unet import predict, unet_layers, validate
from .dock import ScrollableDock
from .fields import field_for
from .layer_io import add_layers
from .reconstruct import reconstruction_task
from .runner import JobPanel, Task
from .section import Section, compact, reveal
from .target_fields import MaterialFields, TargetImages, material_choices

TITLE = "U-Net reconstruction"


class UNetWidget(Container):
    """The "U-Net reconstruction" dock widget (see the module docstring).

    Attributes for callers and tests: ``targets`` (the list of target layers), ``weights`` (the
    file field), ``panel`` (the ``JobPanel`` of both buttons), ``summary``, ``refine_button``
    (enabled once there is a prediction), ``result`` (the last ``workflows.unet.UNetResult``),
    ``layers`` (its two layers, by name), ``refined`` (the last refinement's
    ``ReconstructionResult``) and ``refined_layers`` (its layers, by name); ``refine()`` does what
    the Refine button does.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    """

    def __init__(self, napari_viewer: Viewer):
        self.viewer = napari_viewer
        self.result = self.refined = None
        self.layers: dict = {}
        self.refined_layers: dict = {}
        self._inputs = None  # what self.result was predicted from, for the refinement
        # targets, the measurement of a single target, the film
        self.target_images = TargetImages(napari_viewer)
        self.targets, self.pixel_nm = self.target_images.targets, self.target_images.pixel_nm
        self.measurement_fields, self.film = self.target_images.measurement_fields, self.target_images.film
        # material: the sign of D, the range check and the refinement
        self.material_from = ComboBox(choices=self._material_choices, label="material from",
                                      tooltip="fill the fields from a layer's material (a fit's result, a sample)")
        self.material_fields = MaterialFields(also=())
        for box in self.material_fields.fitted.values():
            box.visible = False  # nothing is fitted here
        self.values = self.material_fields.values
        self.weights = FileEdit(mode="r", filter="*.pt", nullable=True, label="weights",
                                tooltip="a checkpoint made by `mmrecon train`; empty: the weights shipped with the "
                                        "plugin")
        self.weights.line_edit.native.setPlaceholderText("the shipped weights")
        self.panel = JobPanel(TITLE, prepare=self._prepare, run_text="Predict")
        self.summary = Label(value="")
        self.summary.native.setWordWrap(True)  # long messages must not widen the dock
        self.max_iter = field_for(OPTIONS["reconstruct_max_iter"], "max iterations")
        self.refine_button = PushButton(text="Refine with physics", enabled=False,
                                        tooltip="texture reconstruction (bias method, the material above) starting "
                                                "from the last prediction")

        super().__init__(
            widgets=[
                Section("Targets", [self.targets, self.pixel_nm]),
                Section("Measurement", [self.target_images.several, *self.measurement_fields.widgets]),
                Section("Film", self.film.widgets),
                Section("Material", [self.material_from, *self.material_fields.rows]),
                Section("Network", [self.weights]),
                self.panel,
                Section("Result", [self.summary], labels=False),
                Section("Refine with physics", [self.max_iter, self.refine_button]),
            ],
            labels=False,
        )
        compact(self)
        self.material_from.changed.connect(self._fill_material)
        self.refine_button.changed.connect(self.refine)
        self.target_images.select_first()
        self.target_images.fill()

    # ------------------------------------------------------------------ choices and prefill

    def _material_choices(self, _widget=None) -> list:
        return material_choices(self.viewer)

    def reset_choices(self, *_) -> None:
        """Refresh the layer lists (napari calls this when layers change); a target list left
        empty picks the first image."""
        super().reset_choices()
        self.target_images.select_first()

    def _fill_material(self) -> None:
        layer = self.material_from.value
        if layer is not None:
            self.material_fields.show(layer_data.mmrecon_metadata(layer).get("material") or {})

    # ------------------------------------------------------------------ the prediction

    def _prepare(self) -> Task:
        layers, images, grid, measurements = self.target_images.read()
        material, weights = self.material_fields.read(), self.weights.value
        names = [f"target {layer.name!r}" for layer in layers]
        units = [layer_data.mmrecon_metadata(layer).get("unit") or "" for layer in layers]
        images = validate(images, grid, measurements, material, (grid.dy, grid.dx), units, names, weights)
        name = " + ".join(layer.name for layer in layers)
        source = f"U-Net prediction from layer{'s' if len(layers) > 1 else ''} {name!r}"

        def on_result(result):
            tuples = unet_layers(result, name, source)
            added = add_layers(self.viewer, tuples)
            self.layers = {kwargs["name"]: layer for (_, kwargs, _), layer in zip(tuples, added)}
            self.result, self._inputs = result, (name, names, images, grid, measurements)
            self.refine_button.enabled = True
            self._show_summary(result)
            if result.extrapolated:
                show_warning(f"{TITLE}: the prediction is extrapolated: " + "; ".join(result.extrapolated))

        return Task(work=lambda cancel: predict(images, grid, measurements, material, weights), on_result=on_result)

    def _show_summary(self, result) -> None:
        lines = [result.message, *result.extrapolated, *result.notes]
        self.summary.value = "\n".join(lines)
        reveal(self.summary)

    # ------------------------------------------------------------------ the refinement

    def refine(self) -> bool:
        """Start the texture reconstruction from the last prediction in the panel (the Refine
        button); False (with a notification) if none started."""
        return self.panel.start(self._prepare_refine)

    def _prepare_refine(self) -> Task:
        if self.result is None:
            raise ValueError("predict first: the refinement starts from the U-Net's prediction")
        name, names, images, grid, measurements = self._inputs
        m0 = self.result.m
        material, options = self.material_fields.read(), ReconstructOptions(max_iter=self.max_iter.value)
        images = validate_reconstruction(images, grid, measurements, material, options, m0, names=names)
        self.refined_layers = {}
        return reconstruction_task(self.viewer, images, grid, measurements, material, options, name, m0,
                                   self.refined_layers, on_result=self._show_refined)

    def _show_refined(self, result) -> None:
        self.refined = result
        self.summary.value = f"refined from the U-Net prediction: {result.message}; {result.iterations} iterations"
        reveal(self.summary)


class UNetDock(ScrollableDock):
    """The npe2 widget: a ``UNetWidget`` (``.form``) in a scroll area."""

    def __init__(self, napari_viewer: Viewer):
        form = UNetWidget(napari_viewer)
        super().__init__(form, footer=form.panel)
