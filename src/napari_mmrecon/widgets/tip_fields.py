"""The MFM tip and cantilever inputs shared by the simulator and the fit widgets."""

from __future__ import annotations

from ..backend import Cantilever, PointDipoleTip, PointMonopoleTip
from ..workflows.options import OPTIONS
from .fields import field_for, parse_number, shown, si

TIPS = ("point dipole", "point monopole")


class TipFields:
    """Tip model, its moment (A·m²) or charge (A·m), and the cantilever's k (N/m), f0 (kHz), Q,
    as declared in ``workflows.options`` (defaults, units, help).

    ``widgets`` lists the six input widgets in form order; ``read`` gives the backend objects (SI),
    ``show`` fills the fields from them.
    """

    def __init__(self):
        self.tip = field_for(OPTIONS["tip"], "tip", value=f"point {OPTIONS['tip'].default}", choices=TIPS)
        self.tip_moment = field_for(OPTIONS["tip_moment"], "tip moment")
        self.tip_charge = field_for(OPTIONS["tip_charge"], "tip charge")
        self.k = field_for(OPTIONS["k"], "spring constant k")
        self.f0_kHz = field_for(OPTIONS["f0"], "resonance f0")
        self.Q = field_for(OPTIONS["Q"], "quality factor Q")
        self.widgets = [self.tip, self.tip_moment, self.tip_charge, self.k, self.f0_kHz, self.Q]

    def read(self) -> tuple:
        """``(PointDipoleTip or PointMonopoleTip, Cantilever)``; ``ValueError`` naming a bad field."""
        if self.tip.value == "point dipole":
            tip = PointDipoleTip(moment=parse_number(self.tip_moment.value, self.tip_moment.label))
        else:
            tip = PointMonopoleTip(charge=parse_number(self.tip_charge.value, self.tip_charge.label, positive=False))
        return tip, Cantilever(k=self.k.value, f0=si(OPTIONS["f0"], self.f0_kHz.value), Q=self.Q.value)

    def show(self, tip, cantilever: Cantilever) -> None:
        """Fill the fields from a tip and a cantilever (SI)."""
        if isinstance(tip, PointDipoleTip):
            self.tip.value, self.tip_moment.value = "point dipole", f"{tip.moment:g}"
        else:
            self.tip.value, self.tip_charge.value = "point monopole", f"{tip.charge:g}"
        self.k.value, self.f0_kHz.value, self.Q.value = cantilever.k, shown(OPTIONS["f0"], cantilever.f0), cantilever.Q

    def set_visible(self, visible: bool) -> None:
        """Show or hide the fields; of moment and charge only the chosen tip's."""
        for widget in self.widgets:
            widget.visible = visible
        self.tip_moment.visible = visible and self.tip.value == "point dipole"
        self.tip_charge.visible = visible and self.tip.value == "point monopole"
