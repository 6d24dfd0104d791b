"""The inputs that describe a target image, shared by the fit and the reconstruction widgets: what
it measures (``MeasurementFields``), the film it images (``FilmFields``) and the material with a
"fit" box per parameter (``MaterialFields``). Labels, units, defaults and tooltips come from
``workflows.options`` (``fields.field_for``); ``read`` methods give SI backend objects."""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, Container

from ..backend import Grid, Material, MFMMeasurement, StrayFieldMeasurement
from ..backend.forward.measurement import plane_distance
from ..workflows.options import OPTIONS
from ..workflows.simulate import check_grid_size
from .fields import field_for, shown, si
from .tip_fields import TipFields

KINDS = ("stray field", "MFM")
MFM_QUANTITIES = (("frequency shift (Hz)", "frequency_shift"), ("phase (deg)", "phase"))
PARAMETERS = ("Ms", "A", "Ku", "D")
"""The material parameters with a value field and a "fit" box."""


class MeasurementFields:
    """Stray-field component or MFM image (tip, cantilever, quantity), height and side.

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
        return MFMMeasurement(lift_height=height, side=side, tip=tip, cantilever=cantilever,
                              quantity=self.quantity.value)

    def show(self, measurement) -> None:
        """Fill the fields from a measurement (e.g. ``fit.measurement_from_metadata`` of a layer)."""
        self.height_nm.value = shown(OPTIONS["height"], plane_distance(measurement))
        self.side.value = measurement.side
        if isinstance(measurement, StrayFieldMeasurement):
            self.kind.value, self.component.value = "stray field", measurement.component
            return
        self.kind.value, self.quantity.value = "MFM", measurement.quantity
        self.tip_fields.show(measurement.tip, measurement.cantilever)


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
