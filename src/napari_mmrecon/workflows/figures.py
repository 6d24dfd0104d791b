"""The PNG figures of ``mmrecon simulate`` / ``demo``, of a fit and of a reconstruction, drawn in one
way: maps in nm with a colour bar each (signed quantities on a diverging map centred on zero, magnitudes such as
|H| on a sequential one from zero), the loss history with whole-number iteration ticks, and the
fitted parameters as a table. Matplotlib's Agg backend; a figure replaces its file only once it
is complete (``io.files.atomic_output``).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from ..io.files import atomic_output
from .simulate import FIELD_COMPONENTS, LABELS

SIGNED_COLORMAP = "RdBu_r"
MAGNITUDE_COLORMAP = "viridis"
DPI = 80
NOTE_WIDTH = 60
"""Characters per line of the note under the fit table."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def is_signed(quantity: str) -> bool:
    """False for a magnitude (``|H|``, never negative), True for every other image quantity."""
    return FIELD_COMPONENTS.get(quantity, 0) is not None


def draw_map(fig, ax, image, grid, title: str, unit: str = "", signed: bool = True, limit: float | None = None):
    """``image`` ``(ny, nx)`` on the grid's extent in nm with its colour bar labelled ``unit``:
    signed: ``-limit .. limit`` diverging; else ``0 .. limit`` sequential (``limit`` default:
    the largest ``|image|``, 1 for a zero image)."""
    image = np.asarray(image)
    limit = limit or float(np.abs(image).max()) or 1.0
    extent = (0, grid.nx * grid.dx * 1e9, 0, grid.ny * grid.dy * 1e9)
    shown = ax.imshow(image, origin="lower", extent=extent, cmap=SIGNED_COLORMAP if signed else MAGNITUDE_COLORMAP,
                      vmin=-limit if signed else 0.0, vmax=limit)
    ax.set_title(title)
    ax.set_xlabel("x (nm)")
    ax.set_ylabel("y (nm)")
    fig.colorbar(shown, ax=ax, label=unit, shrink=0.85)


def save(fig, path) -> None:
    """Write ``fig`` as a PNG to ``path`` (atomically) and close it."""
    plt = _pyplot()
    try:
        with atomic_output(path) as temporary:
            fig.savefig(temporary, dpi=DPI, format="png")
    finally:
        plt.close(fig)


def simulation_figure(path, result, columns: int = 3) -> None:
    """PNG of a ``simulate.Simulation``: m_z of the first layer, then every image."""
    plt = _pyplot()
    panels = [("m_z", result.m[0, :, :, 2], "", True, 1.0)] + [
        (f"{LABELS.get(i.quantity, i.quantity)}, {i.side} {i.height * 1e9:g} nm", i.data, i.unit,
         is_signed(i.quantity), None) for i in result.images]
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.5 * rows), constrained_layout=True, squeeze=False)
    for ax, (title, image, unit, signed, limit) in zip(axes.flat, panels):
        draw_map(fig, ax, image, result.grid, title, unit, signed, limit)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    save(fig, Path(path))


def fit_figure(path, maps, grid, loss_history, table: tuple, note: str, title: str) -> None:
    """PNG of a fit: ``maps`` (up to four ``(title, image, unit, limit)``, signed), the loss
    history (log scale over whole-number outer iterations) and ``table`` = ``(header, rows)`` of
    strings with ``note`` under it."""
    plt = _pyplot()
    fig = plt.figure(figsize=(15, 8), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    axes = list(top.subplots(1, 3)) + list(bottom.subplots(1, 3, width_ratios=(3, 3, 6)))  # a wide table
    for ax, (name, image, unit, limit) in zip(axes[:4], maps):
        draw_map(ax.figure, ax, image, grid, name, unit, True, limit)
    draw_loss(axes[4], loss_history)
    draw_table(axes[5], table, note)
    fig.suptitle(title)
    save(fig, Path(path))


def reconstruction_figure(path, rows, maps, grid, loss_history, note: str, title: str) -> None:
    """PNG of a texture reconstruction: one row per image (``rows``: three ``(title, image, unit,
    limit)`` each: target, simulated, residual), then a row of ``maps`` (up to two: m_z, the
    bias field) and the loss history (none for an empty one), ``note`` under the title. Signed maps."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows) + 1, 3, figsize=(13, 3.6 * (len(rows) + 1)), layout="constrained",
                             squeeze=False)
    for ax, (name, image, unit, limit) in zip([ax for row in axes[:-1] for ax in row],
                                              [panel for row in rows for panel in row]):
        draw_map(fig, ax, image, grid, name, unit, True, limit)
    last = list(axes[-1])
    for ax, (name, image, unit, limit) in zip(last, maps):
        draw_map(fig, ax, image, grid, name, unit, True, limit)
    if len(loss_history):
        draw_loss(last[2], loss_history)
        last[2].set_ylabel("loss (normalized misfit + penalty)")
    for ax in last[len(maps):2] + ([] if len(loss_history) else [last[2]]):
        ax.axis("off")
    fig.suptitle(f"{title}\n{textwrap.fill(note, 2 * NOTE_WIDTH)}")
    save(fig, Path(path))


def draw_loss(ax, loss_history) -> None:
    """The normalized misfit per outer iteration (1, 2, ...) on a log scale, integer ticks."""
    from matplotlib.ticker import MaxNLocator

    losses = np.maximum(np.asarray(loss_history, dtype=float), 1e-300)
    ax.semilogy(np.arange(1, len(losses) + 1), losses, "o-")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("outer iteration (all stages)")
    ax.set_ylabel("normalized misfit")
    ax.set_title("loss history")


def draw_table(ax, table: tuple, note: str) -> None:
    """``(header, rows)`` as a matplotlib table at the top of ``ax`` (header bold, columns as
    wide as their text), ``note`` wrapped below it."""
    header, rows = table
    ax.axis("off")
    cells = ax.table(cellText=rows or [[""] * len(header)], colLabels=header, loc="upper center", cellLoc="right",
                     colLoc="right", edges="horizontal")
    cells.auto_set_font_size(False)
    cells.set_fontsize(9)
    cells.auto_set_column_width(list(range(len(header))))
    cells.scale(1.0, 1.6)
    cells.set_in_layout(False)  # sized by its text, not by the layout
    for (row, _), cell in cells.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
    ax.text(0.5, 0.95 - 0.12 * (len(rows) + 1), textwrap.fill(note, NOTE_WIDTH), transform=ax.transAxes,
            ha="center", va="top", fontsize=9, in_layout=False)
