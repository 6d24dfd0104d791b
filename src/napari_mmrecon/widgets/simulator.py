"""Dock widget "Stray field / MFM simulator".

Takes a magnetization (a magnetization layer of this plugin, any Image layer read as an m_z map,
an OVF file, or a texture preset on a grid), material parameters in the units magneticians use,
optionally relaxes it, and adds one Image layer per output, side and height (``"Hz top 20 nm"``,
``"MFM df top 20 nm"``) with ``scale`` / ``translate`` in nm and every parameter in metadata
(schema in ``napari_mmrecon.layers``). A relaxed state is added as magnetization layers
(``"<source> relaxed"``) as soon as the relaxation ends. The work is ``simulation.simulate``,
run by a ``runner.JobPanel``; this module only reads fields and converts units.

Python equivalent of one click on a magnetization layer ``"m"``::

    from napari_mmrecon import Material, jobs, layers, simulation
    m, grid, known = layers.read_magnetization(viewer.layers["m"])
    probe = simulation.Probe(heights=(10e-9, 20e-9), outputs=("Hz", "frequency_shift"))
    result = jobs.run(simulation.simulate(m, grid, Material(**known), probe))
    add_layers(viewer, layers.simulation_layers(result))   # widgets.layer_io.add_layers
"""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, SpinBox
from napari.layers import Image
from napari.viewer import Viewer

from .. import layers as layer_data
from ..backend import MU0, Grid, Material
from ..io import read_ovf
from ..jobs import Progress
from ..simulation import TEXTURES, Probe, Relaxation, Relaxed, check_grid_size, simulate, texture
from .dock import ScrollableDock
from .fields import parse_number, parse_numbers
from .layer_io import add_layers
from .runner import JobPanel, Task
from .tip_fields import TipFields

TITLE = "Stray field / MFM simulator"
SOURCES = ("layer", "OVF file", "texture")
SIDE_CHOICES = {"top": ("top",), "bottom": ("bottom",), "both": ("top", "bottom")}
MATERIAL_FIELDS = {"Ms": ("Ms (kA/m)", 1e3), "A": ("A (pJ/m)", 1e-12), "Ku": ("Ku (MJ/m³)", 1e6),
                   "D": ("D (mJ/m²)", 1e-3), "alpha": ("damping α", 1.0)}
"""Material parameter -> (field label, SI value of one field unit)."""
OUTPUT_FIELDS = {"Hx": "Hx", "Hy": "Hy", "Hz": "Hz", "|H|": "|H|", "frequency_shift": "MFM Δf", "phase": "MFM phase"}
NM = 1e-9


def _section(title: str, widgets: list) -> list:
    """A bold header and a labelled container of ``widgets``."""
    return [Label(value=f"<b>{title}</b>"), Container(widgets=widgets, labels=True)]


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
        self.pixel_nm = FloatSpinBox(value=0.0, min=0.0, max=1e5, step=0.5,
                                     label="pixel size if none (nm)",
                                     tooltip="for layers without physical scale (0: refuse them)")
        self.ovf_path = FileEdit(mode="r", filter="*.ovf *.omf", label="OVF file")
        self.texture = ComboBox(choices=TEXTURES, value="skyrmion", label="texture")
        self.radius_nm = FloatSpinBox(value=10.0, min=-1e4, max=1e4, label="skyrmion radius (nm)")
        self.spacing_nm = FloatSpinBox(value=40.0, min=-1e4, max=1e4, label="spacing / period (nm)")
        self.seed = SpinBox(value=0, min=0, max=2**31 - 1, label="random seed")
        # grid of a texture, thickness also of m_z image layers
        self.nx = SpinBox(value=64, min=1, max=1_000_000, label="nx (cells)")
        self.ny = SpinBox(value=64, min=1, max=1_000_000, label="ny (cells)")
        self.nz = SpinBox(value=1, min=1, max=10_000, label="nz (cells)")
        self.cell_nm = FloatSpinBox(value=1.0, min=-1e4, max=1e4, step=0.5, label="cell dx = dy (nm)")
        self.thickness_nm = FloatSpinBox(value=1.0, min=-1e4, max=1e4, step=0.5, label="film thickness (nm)")
        self.pbc = CheckBox(value=False, text="periodic in-plane")
        # material
        self.material = {key: FloatSpinBox(value=value, min=-1e6, max=1e6, step=step, label=label)
                         for (key, (label, _)), value, step in zip(MATERIAL_FIELDS.items(),
                                                                   (580.0, 15.0, 0.8, 3.0, 0.5),
                                                                   (10.0, 0.5, 0.05, 0.1, 0.05))}
        # relaxation
        self.relax = CheckBox(value=True, text="relax first")
        self.field_mT = FloatSpinBox(value=0.0, min=-1e5, max=1e5, label="external μ0Hz (mT)")
        self.tol = LineEdit(value="1e-4", label="stop at max torque")
        self.max_iter = SpinBox(value=20000, min=1, max=10_000_000, label="max iterations")
        # measurement
        self.heights = LineEdit(value="10, 20", label="heights (nm)")
        self.side = ComboBox(choices=tuple(SIDE_CHOICES), value="top", label="side")
        self.outputs = {key: CheckBox(value=key in ("Hz", "frequency_shift"), text=text)
                        for key, text in OUTPUT_FIELDS.items()}
        # tip and cantilever
        self.tip_fields = TipFields()
        self.tip, self.tip_moment, self.tip_charge, self.k, self.f0_kHz, self.Q = self.tip_fields.widgets
        self.panel = JobPanel(TITLE, prepare=self._prepare, run_text="Simulate")

        boxes = list(self.outputs.values())
        outputs = Container(widgets=[Container(widgets=boxes[i:i + 3], layout="horizontal", labels=False)
                                     for i in (0, 3)], labels=False)
        self._grid_section = _section("Grid of the texture", [self.nx, self.ny, self.nz, self.cell_nm, self.pbc])
        self._tip_section = _section("Tip and cantilever", self.tip_fields.widgets)
        super().__init__(
            widgets=[
                *_section("Magnetization", [self.source, self.layer, self.pixel_nm, self.ovf_path, self.texture,
                                            self.radius_nm, self.spacing_nm, self.seed,
                                            self.thickness_nm]),
                *self._grid_section,
                *_section("Material", list(self.material.values())),
                *_section("Relaxation", [self.relax, self.field_mT, self.tol, self.max_iter]),
                *_section("Measurement", [self.heights, self.side, outputs]),
                *self._tip_section,
                self.panel,
            ],
            labels=False,
        )
        self.native.layout().addStretch()
        self.source.changed.connect(self._update_visibility)
        self.source.changed.connect(self._fill_material_from_layer)
        self.texture.changed.connect(self._update_visibility)
        self.tip.changed.connect(self._update_visibility)
        self.relax.changed.connect(self._update_visibility)
        for key in ("frequency_shift", "phase"):
            self.outputs[key].changed.connect(self._update_visibility)
        self.layer.changed.connect(self._fill_material_from_layer)
        self.ovf_path.changed.connect(self._fill_material_from_file)
        self._update_visibility()

    # ------------------------------------------------------------------ choices and visibility

    def _layer_choices(self, _widget=None) -> list:
        """Magnetization layers of this plugin, then the other Image layers (read as m_z maps)."""
        magnetization = [layer for layer in self.viewer.layers if layer_data.is_magnetization_layer(layer)]
        images = [layer for layer in self.viewer.layers
                  if isinstance(layer, Image) and not layer.rgb and layer not in magnetization]
        return [(layer.name, layer) for layer in magnetization + images]

    def _update_visibility(self) -> None:
        source, preset = self.source.value, self.texture.value
        self.layer.visible = self.pixel_nm.visible = source == "layer"
        self.ovf_path.visible = source == "OVF file"
        self.texture.visible = source == "texture"
        self.radius_nm.visible = source == "texture" and "skyrmion" in preset
        self.spacing_nm.visible = source == "texture" and preset in ("skyrmion_lattice", "stripes", "labyrinth")
        self.seed.visible = source == "texture" and preset in ("labyrinth", "random")
        self.thickness_nm.visible = source in ("layer", "texture")
        for widget in self._grid_section:
            widget.visible = source == "texture"
        mfm = self.outputs["frequency_shift"].value or self.outputs["phase"].value
        for widget in self._tip_section:
            widget.visible = mfm
        self.tip_fields.set_visible(mfm)
        for widget in (self.field_mT, self.tol, self.max_iter):
            widget.visible = self.relax.value

    def _set_material_fields(self, known: dict) -> None:
        for key, (_, unit) in MATERIAL_FIELDS.items():
            value = known.get(key)
            if isinstance(value, (int, float)):
                self.material[key].value = value / unit

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
        values = {key: self.material[key].value * unit for key, (_, unit) in MATERIAL_FIELDS.items()}
        return Material(**values)

    def _texture_grid(self) -> Grid:
        cell, thickness = self.cell_nm.value * NM, self.thickness_nm.value * NM
        if cell <= 0 or thickness <= 0:
            raise ValueError(f"cell size and film thickness must be > 0 nm, got {self.cell_nm.value:g} nm and "
                             f"{self.thickness_nm.value:g} nm")
        grid = Grid(nx=self.nx.value, ny=self.ny.value, nz=self.nz.value, dx=cell, dy=cell,
                    dz=thickness / self.nz.value, pbc=self.pbc.value, device="cpu")
        return check_grid_size(grid)

    def _probe(self) -> Probe:
        heights = parse_numbers(self.heights.value, "heights (nm)")
        outputs = tuple(key for key, box in self.outputs.items() if box.value)
        if not outputs:
            raise ValueError("choose at least one output (Hx, Hy, Hz, |H|, MFM Δf, MFM phase)")
        tip, cantilever = self.tip_fields.read()
        return Probe(heights=tuple(h * NM for h in heights), sides=SIDE_CHOICES[self.side.value], outputs=outputs,
                     tip=tip, cantilever=cantilever)

    def _relaxation(self) -> Relaxation | None:
        if not self.relax.value:
            return None
        tol = parse_number(self.tol.value, "stop at max torque")
        return Relaxation(tol=tol, max_iter=self.max_iter.value,
                          external_field=(0.0, 0.0, self.field_mT.value * 1e-3 / MU0))

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
                m, grid = layer_data.image_as_magnetization(layer, self.thickness_nm.value * NM,
                                                            self.pixel_nm.value * NM or None)
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
        options = dict(radius=self.radius_nm.value * NM, spacing=self.spacing_nm.value * NM, seed=self.seed.value)
        return (lambda: texture(preset, grid, **options)), grid, preset, f"texture {preset}"

    def _prepare(self) -> Task:
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
        super().__init__(SimulatorWidget(napari_viewer))
