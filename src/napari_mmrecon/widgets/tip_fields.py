"""The MFM tip and cantilever inputs shared by the simulator, the fit and the reconstruction widgets."""

from __future__ import annotations

from magicgui.widgets import PushButton
from napari.utils.notifications import show_error

from ..backend import Cantilever, PointDipoleMonopoleTip, PointDipoleTip, PointMonopoleTip, load_tip_calibration
from ..workflows.options import OPTIONS
from . import file_dialogs
from .fields import field_for, parse_number, shown, si

TIPS = ("point dipole", "point monopole", "point dipole + monopole")
CALIBRATION_FILTER = "Tip calibration (*.json)"


class TipFields:
    """Tip model, its moment (A·m²) and/or charge (A·m), its height offset above the nominal lift height
    (nm) and the cantilever's k (N/m), f0 (kHz), Q, as declared in ``workflows.options`` (defaults,
    units, help), and a "Load tip calibration..." button that fills them from a JSON file of the
    "Tip calibration" dock or ``mmrecon calibrate-tip`` (``load``).

    ``widgets`` lists the button and the seven input widgets in form order; ``read`` gives the backend
    objects (SI), ``height_offset`` the offset (m), ``show`` fills the fields from them.
    """

    def __init__(self):
        self.load_button = PushButton(text="Load tip calibration...", label="calibrated tip",
                                      tooltip="fill the tip, its height offset and the cantilever from a tip "
                                              "calibration's JSON file (Tip calibration dock, mmrecon calibrate-tip)")
        self.tip = field_for(OPTIONS["tip"], "tip", value=f"point {OPTIONS['tip'].default}", choices=TIPS)
        self.tip_moment = field_for(OPTIONS["tip_moment"], "tip moment")
        self.tip_charge = field_for(OPTIONS["tip_charge"], "tip charge")
        self.height_offset_nm = field_for(OPTIONS["tip_height_offset"], "tip height offset")
        self.height_offset_nm.step = 0.001  # pm steps and decimals: a calibration knows it to ~10 pm
        self.k = field_for(OPTIONS["k"], "spring constant k")
        self.f0_kHz = field_for(OPTIONS["f0"], "resonance f0")
        self.Q = field_for(OPTIONS["Q"], "quality factor Q")
        self.widgets = [self.load_button, self.tip, self.tip_moment, self.tip_charge, self.height_offset_nm, self.k,
                        self.f0_kHz, self.Q]
        self.load_button.changed.connect(self._choose_calibration)

    def read(self) -> tuple:
        """``(PointDipoleTip, PointMonopoleTip or PointDipoleMonopoleTip, Cantilever)``; ``ValueError``
        naming a bad field."""
        dipole = monopole = None
        if self.tip.value != "point monopole":
            dipole = PointDipoleTip(moment=parse_number(self.tip_moment.value, self.tip_moment.label))
        if self.tip.value != "point dipole":
            monopole = PointMonopoleTip(charge=parse_number(self.tip_charge.value, self.tip_charge.label,
                                                            positive=False))
        tip = PointDipoleMonopoleTip(dipole, monopole) if dipole and monopole else dipole or monopole
        return tip, Cantilever(k=self.k.value, f0=si(OPTIONS["f0"], self.f0_kHz.value), Q=self.Q.value)

    def height_offset(self) -> float:
        """The tip's effective height above the nominal lift height (m)."""
        return si(OPTIONS["tip_height_offset"], self.height_offset_nm.value)

    def show(self, tip, cantilever: Cantilever, height_offset: float = 0.0) -> None:
        """Fill the fields from a tip, a cantilever and the tip's height offset (SI)."""
        if isinstance(tip, PointDipoleMonopoleTip):
            self.tip.value = "point dipole + monopole"
            self.tip_moment.value, self.tip_charge.value = f"{tip.dipole.moment:g}", f"{tip.monopole.charge:g}"
        elif isinstance(tip, PointDipoleTip):
            self.tip.value, self.tip_moment.value = "point dipole", f"{tip.moment:g}"
        else:
            self.tip.value, self.tip_charge.value = "point monopole", f"{tip.charge:g}"
        self.height_offset_nm.value = shown(OPTIONS["tip_height_offset"], height_offset)
        self.k.value, self.f0_kHz.value, self.Q.value = cantilever.k, shown(OPTIONS["f0"], cantilever.f0), cantilever.Q

    def load(self, path):
        """Fill the fields from the ``TipCalibration`` saved at ``path`` and return it; ``ValueError``
        naming the file for one that is not a calibration."""
        calibration = load_tip_calibration(path)
        self.show(calibration.tip, calibration.cantilever, calibration.height_offset)
        return calibration

    def _choose_calibration(self) -> None:
        path = file_dialogs.open_path(self.load_button.native, "Load tip calibration", CALIBRATION_FILTER)
        if path is None:
            return
        try:
            self.load(path)
        except ValueError as exc:
            show_error(f"Load tip calibration: {exc}")

    def set_visible(self, visible: bool) -> None:
        """Show or hide the fields; of moment and charge only the chosen tip's."""
        for widget in self.widgets:
            widget.visible = visible
        self.tip_moment.visible = visible and self.tip.value != "point monopole"
        self.tip_charge.visible = visible and self.tip.value != "point dipole"
