"""A tall magicgui form in a vertical scroll area, as a dock widget.

napari docks a magicgui ``Container`` through its ``.native`` widget, which drops the scroll area
of ``Container(scrollable=True)``; a form taller than the window would then be cut off. The npe2
widget commands of this plugin return ``ScrollableDock(form)`` instead.
"""

from __future__ import annotations

from magicgui.widgets import Container
from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QScrollArea


class ScrollableDock(QScrollArea):
    """``form`` (a magicgui Container) in a vertical scroll area, never narrower than the form.

    ``reset_choices`` is forwarded to the form, so napari keeps its layer lists in sync.
    """

    def __init__(self, form: Container):
        super().__init__()
        self.form = form
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(form.native)

    def _width(self, hint: QSize) -> int:
        return hint.width() + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()

    def minimumSizeHint(self) -> QSize:
        """As wide as the form's minimum (plus the scroll bar), whatever its height."""
        return QSize(self._width(self.widget().minimumSizeHint()), super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        """As wide as the form wants to be, as tall as it is (the dock clips and scrolls)."""
        hint = self.widget().sizeHint()
        return QSize(self._width(hint), hint.height())

    def reset_choices(self, *_) -> None:
        """Refresh the form's choices (napari calls this when layers change)."""
        self.form.reset_choices()
