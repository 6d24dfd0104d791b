"""A tall magicgui form in a vertical scroll area, as a dock widget, with its Run panel pinned below.

napari docks a magicgui ``Container`` through its ``.native`` widget, which drops the scroll area
of ``Container(scrollable=True)``; a form taller than the window would then be cut off. The npe2
widget commands of this plugin return ``ScrollableDock(form, footer=form.panel)`` instead: the
form scrolls, the footer (Run / Cancel, progress, status) stays in view under it, and the dock
asks for a height that leaves room to other docks. At napari's default window size, with both
docks of this plugin open, each shows its Run button and a few rows of its form.
"""

from __future__ import annotations

from magicgui.widgets import Container, Widget
from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QDockWidget, QScrollArea

MIN_FORM_HEIGHT = 150
"""Height (px) of the form always shown above the footer: five or six rows."""
PREFERRED_FORM_HEIGHT = 320
"""Height (px) of the form a dock asks for when there is room; taller forms scroll."""


class ScrollableDock(QScrollArea):
    """``form`` (a magicgui Container) in a vertical scroll area, ``footer`` pinned below it.

    The footer, one of the form's widgets, is taken out of the form and kept in the scroll
    area's bottom margin, so that it never scrolls away. The dock is never narrower than the form
    (plus the scroll bar) nor than napari's title bar above it. ``reset_choices`` is forwarded to
    the form, so napari keeps its layer lists in sync.
    """

    def __init__(self, form: Container, footer: Widget | None = None):
        super().__init__()
        self.form = form
        self.footer = footer
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        if footer is not None:
            form.remove(footer)
            footer.native.setParent(self)
            footer.native.show()
        self.setWidget(form.native)

    def _footer_height(self) -> int:
        return 0 if self.footer is None else self.footer.native.sizeHint().height()

    def _title_width(self) -> int:
        """Width the title bar of the dock around this widget needs for its whole text (0 if none)."""
        dock = self.parent()
        title = dock.titleBarWidget() if isinstance(dock, QDockWidget) else None
        if title is None:
            return 0
        return (title.layout() or title).sizeHint().width()

    def _width(self, hint: QSize) -> int:
        form = hint.width() + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()
        return max(form, self._title_width())

    def _height(self, form_height: int) -> int:
        return form_height + self._footer_height() + 2 * self.frameWidth()

    def minimumSizeHint(self) -> QSize:
        """As wide as the form's minimum (plus the scroll bar), tall enough for a few rows and the footer."""
        return QSize(self._width(self.widget().minimumSizeHint()), self._height(MIN_FORM_HEIGHT))

    def sizeHint(self) -> QSize:
        """As wide as the form wants to be; as tall as the form, up to ``PREFERRED_FORM_HEIGHT``."""
        hint = self.widget().sizeHint()
        return QSize(self._width(hint), self._height(min(hint.height(), PREFERRED_FORM_HEIGHT)))

    def showEvent(self, event) -> None:
        """Docked by now: ask the dock again for a width that shows its title."""
        super().showEvent(event)
        self.updateGeometry()

    def resizeEvent(self, event) -> None:
        """Keep the footer in the bottom margin, under the form's viewport."""
        footer = self._footer_height()
        self.setViewportMargins(0, 0, 0, footer)
        super().resizeEvent(event)
        if self.footer is not None:
            view = self.viewport().geometry()
            self.footer.native.setGeometry(view.left(), view.bottom() + 1, view.width(), footer)

    def reset_choices(self, *_) -> None:
        """Refresh the form's choices (napari calls this when layers change)."""
        self.form.reset_choices()
