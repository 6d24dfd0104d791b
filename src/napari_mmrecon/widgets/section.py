"""A titled group of labelled fields that folds away when its title is clicked."""

from __future__ import annotations

from magicgui.widgets import Container
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QScrollArea, QSizePolicy, QToolButton

COMPACT_MARGINS = (0, 0, 0, 0)
BODY_MARGINS = (10, 0, 0, 2)
"""Fields are indented a little under their title; rows stay as close as the style allows."""
FORM_MARGINS = (4, 2, 4, 2)


class Section(Container):
    """A bold title with a fold arrow over a container of ``widgets`` (labelled if ``labels``).

    ``expanded`` (read / write) says whether the fields are shown; ``header`` is the title button.
    Hiding the whole section (``visible = False``) hides the title too.
    """

    def __init__(self, title: str, widgets: list, expanded: bool = True, labels: bool = True):
        self.body = Container(widgets=widgets, labels=labels)
        self.body.margins = BODY_MARGINS
        super().__init__(widgets=[self.body], labels=False)
        self.margins = COMPACT_MARGINS
        self.header = QToolButton()
        self.header.setText(title)
        self.header.setCheckable(True)
        self.header.setAutoRaise(True)
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.header.setToolTip(f"show or hide the {title.lower()} fields")
        font = self.header.font()
        font.setBold(True)
        self.header.setFont(font)
        self.header.toggled.connect(self._fold)
        self.native.layout().insertWidget(0, self.header)
        self.expanded = expanded

    @property
    def expanded(self) -> bool:
        """True while the fields are shown."""
        return self.header.isChecked()

    @expanded.setter
    def expanded(self, value: bool) -> None:
        self.header.setChecked(bool(value))
        self._fold(bool(value))

    def _fold(self, expanded: bool) -> None:
        self.header.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.body.visible = expanded


def compact(form: Container) -> None:
    """Tight margins around a form of sections, and a stretch below them so that they stay at the top."""
    form.margins = FORM_MARGINS
    form.native.layout().setSpacing(2)
    form.native.layout().addStretch()


def reveal(widget) -> None:
    """Scroll the dock that holds ``widget`` (a magicgui widget) so that it is in view."""
    parent = widget.native.parentWidget()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parentWidget()
    if parent is not None:
        parent.ensureWidgetVisible(widget.native)
