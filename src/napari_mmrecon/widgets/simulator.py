"""Dock widget "Stray field / MFM simulator".

Takes a magnetization (a magnetization layer of this plugin, any Image layer read as an m_z map,
an OVF file, or a texture preset on a grid), material parameters in the units magneticians use,
optionally relaxes it, and adds one Image layer per output, side and height (``"Hz top 20 nm"``,
``"MFM df top 20 nm"``) with ``scale`` / ``translate`` in nm and every parameter in metadata
(schema in ``napari_mmrecon.workflows.layer_data``). A relaxed state is added as magnetization layers
(``"<source> relaxed"``) as soon as the relaxation ends. The work is ``workflows.simulate.simulate``,
run by a ``runner.JobPanel``; this module only reads fields and converts units.

The source starts on the newest magnetization layer when the viewer has one, and follows the
magnetization layers that appear (an opened OVF file, a sample, another widget's result) until
the user picks a source or a layer, or runs a simulation.

Python equivalent of one click on a magnetization layer ``"m"``, in napari's console::

    from napari_mmrecon import console as mmc
    from napari_mmrecon.workflows import jobs, layer_data, simulate
    m, grid, material = mmc.from_layer(viewer.layers["m"])
    probe = simulate.Probe(heights=(10e-9, 20e-9), outputs=("Hz", "frequency_shift"))
    result = jobs.run(simulate.simulate(m, grid, material, probe))
    add_layers(viewer, layer_data.simulation_layers(result))   # widgets.layer_io.add_layers

Field labels, units, defaults and tooltips come from ``workflows.options`` (``fields.field_for``).
"""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    SpinBox,
)
from napari.layers import Image
from napari.viewer import Viewer

from ..backend import Grid, Material
from ..io import read_ovf
from ..workflows import layer_data
from ..workflows.jobs import Progress
from ..workflows.options import OPTIONS
from ..workflows.simulate import (
    Probe,
    Relaxation,
    Relaxed,
    check_grid_size,
    simulate,
    texture,
)
from .dock import ScrollableDock
from .fields import field_for, parse_number, parse_numbers, shown, si
from .layer_io import add_layers
from .runner import JobPanel, Task
from .section import Section, compact
from .tip_fields import TipFields

TITLE = "Stray field / MFM simulator"
SOURCES = ("layer", "OVF file", "texture")
SIDE_CHOICES = {"top": ("top",), "bottom": ("bottom",), "both": ("top", "bottom")}
MATERIAL_FIELDS = {"Ms": "Ms", "A": "A", "Ku": "Ku", "D": "D", "alpha": "damping α"}
"""Material parameter (an option of ``workflows.options``) -> field label."""
OUTPUT_FIELDS = {"Hx": "Hx", "Hy": "Hy", "Hz": "Hz", "|H|": "|H|", "frequency_shift": "MFM Δf", "phase": "MFM phase"}


class SimulatorWidget(Container):
    """The "Stray field / MFM simulator" dock widget (see the module docstring).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    """

    def __init__(self, napari_viewer: Viewer):
        self.viewer = napari_viewer
        # magnetization source
        self.source = ComboBox(choices=SOURCES, value="texture", label="from")
        self.layer = ComboBox(choices=self._layer_choices, label="layer")
        self.pixel_nm = field_for(OPTIONS["pixel_size"], "pixel size if none", value=0.0,
                                  tooltip="for layers without physical scale (0: refuse them)")
        self.ovf_path = FileEdit(mode="r", filter="*.ovf *.omf", label="OVF file")
        self.texture = field_for(OPTIONS["texture"], "texture")
        self.radius_nm = field_for(OPTIONS["radius"], "skyrmion radius")
        self.spacing_nm = field_for(OPTIONS["spacing"], "spacing / period")
        self.seed = field_for(OPTIONS["seed"], "random seed")
        # grid of a texture, thickness also of m_z image layers
        self.nx = field_for(OPTIONS["n"], "nx (cells)")
        self.ny = field_for(OPTIONS["n"], "ny (cells)")
        self.nz = field_for(OPTIONS["nz"], "nz (cells)")
        self.cell_nm = field_for(OPTIONS["cell"], "cell dx = dy")
        self.thickness_nm = field_for(OPTIONS["thickness"], "film thickness")
        self.pbc = CheckBox(value=False, text="periodic in-plane")
        # material
        self.material = {key: field_for(OPTIONS[key], label) for key, label in MATERIAL_FIELDS.items()}
        # relaxation
        self.relax = field_for(OPTIONS["relax"], "relax first", value=True)
        self.field_mT = field_for(OPTIONS["field"], "external μ0Hz")
        self.tol = field_for(OPTIONS["tol"], "stop at max torque")
        self.max_iter = SpinBox(value=20000, min=1, max=10_000_000, label="max iterations")
        # measurement
        self.heights = field_for(OPTIONS["heights"], "heights")
        self.side = field_for(OPTIONS["side"], "side")
        self.outputs = {key: CheckBox(value=key in OPTIONS["outputs"].default, text=text,
                                      tooltip=OPTIONS["outputs"].help) for key, text in OUTPUT_FIELDS.items()}
        # tip and cantilever
        self.tip_fields = TipFields()
        tips = self.tip_fields
        self.tip, self.tip_moment, self.tip_charge = tips.tip, tips.tip_moment, tips.tip_charge
        self.k, self.f0_kHz, self.Q = tips.k, tips.f0_kHz, tips.Q
        self.panel = JobPanel(TITLE, prepare=self._prepare, run_text="Simulate")

        boxes = list(self.outputs.values())
        outputs = Container(widgets=[Container(widgets=boxes[i:i + 3], layout="horizontal", labels=False)
                                     for i in (0, 3)], labels=False, label="outputs")
        self._grid_section = Section("Grid of the texture", [self.nx, self.ny, self.nz, self.cell_nm, self.pbc])
        self._tip_section = Section("Tip and cantilever", self.tip_fields.widgets)
        super().__init__(
            widgets=[
                Section("Magnetization", [self.source, self.layer, self.pixel_nm, self.ovf_path, self.texture,
                                          self.radius_nm, self.spacing_nm, self.seed, self.thickness_nm]),
                self._grid_section,
                Section("Material", list(self.material.values())),
                Section("Relaxation", [self.relax, self.field_mT, self.tol, self.max_iter]),
                Section("Measurement", [self.heights, self.side, outputs]),
                self._tip_section,
                self.panel,
            ],
            labels=False,
        )
        compact(self)
        self.source.changed.connect(self._update_visibility)
        self.source.changed.connect(self._fill_material_from_layer)
        self.texture.changed.connect(self._update_visibility)
        self.tip.changed.connect(self._update_visibility)
        self.relax.changed.connect(self._update_visibility)
        for key in ("frequency_shift", "phase"):
            self.outputs[key].changed.connect(self._update_visibility)
        self.layer.changed.connect(self._fill_material_from_layer)
        self.layer.changed.connect(self._update_visibility)
        self.ovf_path.changed.connect(self._fill_material_from_file)
        self._update_visibility()
        self._source_picked = self._following = False
        self.source.changed.connect(self._note_source_pick)
        self.layer.native.activated.connect(self._note_source_pick)  # a layer chosen by hand, not by a refresh
        napari_viewer.layers.events.inserted.connect(self._follow_magnetization)
        self._follow_magnetization()

    # ------------------------------------------------------------------ choices and visibility

    def _layer_choices(self, _widget=None) -> list:
        """Magnetization layers of this plugin, then the other Image layers (read as m_z maps)."""
        magnetization = [layer for layer in self.viewer.layers if layer_data.is_magnetization_layer(layer)]
        images = [layer for layer in self.viewer.layers
                  if isinstance(layer, Image) and not layer.rgb and layer not in magnetization]
        return [(layer.name, layer) for layer in magnetization + images]

    def _newest_magnetization(self):
        """The magnetization layer highest in the layer list (its mz Image rather than its arrows), or None."""
        layers = [layer for layer in self.viewer.layers if layer_data.is_magnetization_layer(layer)]
        images = [layer for layer in layers if isinstance(layer, Image)]
        return (images or layers or [None])[-1]

    def _follow_magnetization(self, event=None) -> None:
        """Make the newest magnetization layer the source, until the user picks a source or runs."""
        if self._source_picked or (event is not None and not layer_data.is_magnetization_layer(event.value)):
            return
        layer = self._newest_magnetization()
        if layer is None:
            return
        self.layer.reset_choices()  # napari may refresh the choices only after this handler
        self._following = True
        try:
            self.source.value, self.layer.value = "layer", layer
        finally:
            self._following = False

    def _note_source_pick(self, *_) -> None:
        if not self._following:
            self._source_picked = True

    def _update_visibility(self) -> None:
        source, preset = self.source.value, self.texture.value
        mz_map = source == "layer" and not layer_data.is_magnetization_layer(self.layer.value)
        self.layer.visible = source == "layer"
        self.pixel_nm.visible = mz_map
        self.ovf_path.visible = source == "OVF file"
        self.texture.visible = source == "texture"
        self.radius_nm.visible = source == "texture" and "skyrmion" in preset
        self.spacing_nm.visible = source == "texture" and preset in ("skyrmion_lattice", "stripes", "labyrinth")
        self.seed.visible = source == "texture" and preset in ("labyrinth", "random")
        self.thickness_nm.visible = mz_map or source == "texture"
        self._grid_section.visible = source == "texture"
        mfm = self.outputs["frequency_shift"].value or self.outputs["phase"].value
        self._tip_section.visible = mfm
        self.tip_fields.set_visible(mfm)
        for widget in (self.field_mT, self.tol, self.max_iter):
            widget.visible = self.relax.value

    def _set_material_fields(self, known: dict) -> None:
        for key in MATERIAL_FIELDS:
            value = known.get(key)
            if isinstance(value, (int, float)):
                self.material[key].value = shown(OPTIONS[key], value)

    def _fill_material_from_layer(self) -> None:
        layer = self.layer.value
        if layer is not None and self.source.value == "layer":
            self._set_material_fields(layer_data.mmrecon_metadata(layer).get("material") or {})

    def _fill_material_from_file(self) -> None:
        path = Path(self.ovf_path.value)
        if path.is_file():
            try:
                self._set_material_fields(self._read_ovf(path)[2])
            except ValueError as exc:
                self.panel.report_error(exc)

    # ------------------------------------------------------------------ reading the fields

    @staticmethod
    def _read_ovf(path: Path):
        field, grid, header = read_ovf(path, return_header=True)
        try:
            m, material = layer_data.magnetization_from_field(field, header)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        return m, grid, material

    def _material(self) -> Material:
        values = {key: si(OPTIONS[key], self.material[key].value) for key in MATERIAL_FIELDS}
        return Material(**values)

    def _texture_grid(self) -> Grid:
        cell, thickness = si(OPTIONS["cell"], self.cell_nm.value), si(OPTIONS["thickness"], self.thickness_nm.value)
        if cell <= 0 or thickness <= 0:
            raise ValueError(f"cell size and film thickness must be > 0 nm, got {self.cell_nm.value:g} nm and "
                             f"{self.thickness_nm.value:g} nm")
        grid = Grid(nx=self.nx.value, ny=self.ny.value, nz=self.nz.value, dx=cell, dy=cell,
                    dz=thickness / self.nz.value, pbc=self.pbc.value, device="cpu")
        return check_grid_size(grid)

    def _probe(self) -> Probe:
        heights = parse_numbers(self.heights.value, self.heights.label)
        outputs = tuple(key for key, box in self.outputs.items() if box.value)
        if not outputs:
            raise ValueError("choose at least one output (Hx, Hy, Hz, |H|, MFM Δf, MFM phase)")
        tip, cantilever = self.tip_fields.read()
        return Probe(heights=tuple(si(OPTIONS["heights"], h) for h in heights), sides=SIDE_CHOICES[self.side.value],
                     outputs=outputs, tip=tip, cantilever=cantilever,
                     tip_height_offset=self.tip_fields.height_offset())

    def _relaxation(self) -> Relaxation | None:
        if not self.relax.value:
            return None
        tol = parse_number(self.tol.value, self.tol.label)
        return Relaxation(tol=tol, max_iter=self.max_iter.value,
                          external_field=(0.0, 0.0, si(OPTIONS["field"], self.field_mT.value)))

    def _source(self):
        """``(load, grid, name, source)``: ``load()`` returns m ``(nz, ny, nx, 3)`` (run in the worker
        for a texture), ``name`` the base name of new layers, ``source`` a description."""
        if self.source.value == "layer":
            layer = self.layer.value
            if layer is None:
                raise ValueError("no layer to simulate: open a magnetization (File > Open Sample, an OVF file) "
                                 "or choose another source")
            if layer_data.is_magnetization_layer(layer):
                m, grid, _ = layer_data.read_magnetization(layer)
            else:
                m, grid = layer_data.image_as_magnetization(layer, si(OPTIONS["thickness"], self.thickness_nm.value),
                                                            si(OPTIONS["pixel_size"], self.pixel_nm.value) or None)
            name = layer.name[: -len(" arrows")] if layer.name.endswith(" arrows") else layer.name
            return (lambda: m), check_grid_size(grid), name, f"layer {layer.name!r}"
        if self.source.value == "OVF file":
            path = Path(self.ovf_path.value)
            if not path.is_file():
                raise ValueError(f"no OVF file at {str(path)!r}: choose one")
            m, grid, _ = self._read_ovf(path)
            return (lambda: m), check_grid_size(grid), path.stem, str(path)
        grid = self._texture_grid()
        preset = self.texture.value
        options = dict(radius=si(OPTIONS["radius"], self.radius_nm.value),
                       spacing=si(OPTIONS["spacing"], self.spacing_nm.value), seed=self.seed.value)
        return (lambda: texture(preset, grid, **options)), grid, preset, f"texture {preset}"

    def _prepare(self) -> Task:
        self._source_picked = True  # the layers this run adds do not change the source
        load, grid, name, source = self._source()
        material, probe, relaxation = self._material(), self._probe(), self._relaxation()
        is_layer = self.source.value == "layer"

        def work(cancel):
            yield Progress(0, 0, "building the starting state")
            result = yield from simulate(load(), grid, material, probe, relaxation, cancel)
            return result

        def on_partial(relaxed: Relaxed):
            add_layers(self.viewer, layer_data.magnetization_layers(
                relaxed.m, grid, material, name=f"{name} relaxed", source=source,
                relax=layer_data.relax_info_to_dict(relaxed.info, relaxation.tol)))

        def on_result(result):
            new = [] if is_layer or relaxation is not None else layer_data.magnetization_layers(
                result.m, grid, result.material, name=name, source=source)
            add_layers(self.viewer, new + layer_data.simulation_layers(result, source=source))

        return Task(work=work, on_result=on_result, on_partial=on_partial)


class SimulatorDock(ScrollableDock):
    """The npe2 widget: a ``SimulatorWidget`` (``.form``) in a scroll area."""

    def __init__(self, napari_viewer: Viewer):
        form = SimulatorWidget(napari_viewer)
        super().__init__(form, footer=form.panel)
