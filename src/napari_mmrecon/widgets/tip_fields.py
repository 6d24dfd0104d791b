"""The MFM tip and cantilever inputs shared by the simulator and the fit widgets."""

from __future__ import annotations

from magicgui.widgets import ComboBox, FloatSpinBox, LineEdit

from ..backend import Cantilever, PointDipoleTip, PointMonopoleTip
from .fields import parse_number

TIPS = ("point dipole", "point monopole")


class TipFields:
    """Tip model, its moment (A·m²) or charge (A·m), and the cantilever's k (N/m), f0 (kHz), Q.

    ``widgets`` lists the six input widgets in form order; ``read`` gives the backend objects (SI),
    ``show`` fills the fields from them.
    """

    def __init__(self):
        self.tip = ComboBox(choices=TIPS, value="point dipole", label="tip")
        self.tip_moment = LineEdit(value="1e-16", label="tip moment (A·m²)")
        self.tip_charge = LineEdit(value="1e-9", label="tip charge (A·m)")
        self.k = FloatSpinBox(value=3.0, min=-1e4, max=1e4, step=0.1, label="spring constant k (N/m)")
        self.f0_kHz = FloatSpinBox(value=75.0, min=-1e6, max=1e6, label="resonance f0 (kHz)")
        self.Q = FloatSpinBox(value=200.0, min=-1e7, max=1e7, label="quality factor Q")
        self.widgets = [self.tip, self.tip_moment, self.tip_charge, self.k, self.f0_kHz, self.Q]

    def read(self) -> tuple:
        """``(PointDipoleTip or PointMonopoleTip, Cantilever)``; ``ValueError`` naming a bad field."""
        if self.tip.value == "point dipole":
            tip = PointDipoleTip(moment=parse_number(self.tip_moment.value, "tip moment (A·m²)"))
        else:
            tip = PointMonopoleTip(charge=parse_number(self.tip_charge.value, "tip charge (A·m)", positive=False))
        return tip, Cantilever(k=self.k.value, f0=self.f0_kHz.value * 1e3, Q=self.Q.value)

    def show(self, tip, cantilever: Cantilever) -> None:
        """Fill the fields from a tip and a cantilever (SI)."""
        if isinstance(tip, PointDipoleTip):
            self.tip.value, self.tip_moment.value = "point dipole", f"{tip.moment:g}"
        else:
            self.tip.value, self.tip_charge.value = "point monopole", f"{tip.charge:g}"
        self.k.value, self.f0_kHz.value, self.Q.value = cantilever.k, cantilever.f0 / 1e3, cantilever.Q

    def set_visible(self, visible: bool) -> None:
        """Show or hide the fields; of moment and charge only the chosen tip's."""
        for widget in self.widgets:
            widget.visible = visible
        self.tip_moment.visible = visible and self.tip.value == "point dipole"
        self.tip_charge.visible = visible and self.tip.value == "point monopole"
