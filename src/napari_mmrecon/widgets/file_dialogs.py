"""The file dialogs of the docks: a file to open, a file to save (Qt asks before replacing one).

Docks call these through the module (``file_dialogs.save_path(...)``), so that headless tests can
put a path in place of the dialog.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QFileDialog


def open_path(parent, title: str, name_filter: str) -> Path | None:
    """The existing file the user picks (None if the dialog is cancelled)."""
    path, _ = QFileDialog.getOpenFileName(parent, title, "", name_filter)
    return Path(path) if path else None


def save_path(parent, title: str, default: str, name_filter: str, suffix: str) -> Path | None:
    """The file the user picks to write (None if the dialog is cancelled). A name typed without an
    extension gets ``suffix``; Qt asks before an existing file is chosen, so the path returned
    may be replaced."""
    dialog = QFileDialog(parent, title, default, name_filter)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setDefaultSuffix(suffix)
    if not dialog.exec():
        return None
    return Path(dialog.selectedFiles()[0])
