"""The README screenshot: napari with the lattice sample open and the simulator docked.

Run headless from the repository root (needs OpenGL, hence a virtual X server)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshot.py

It opens the sample through napari's own API, docks the widget from the plugin manifest, runs a
simulation of the ground truth (Hz at 5 nm), shows the magnetization beside the simulated images
in napari's grid view and writes ``docs/screenshot.png`` (a 256-colour PNG, < 300 kB).
"""

import os
from pathlib import Path

os.environ["NAPARI_APPLICATION_GUI_NOTIFICATION_LEVEL"] = "error"  # no warning toasts over the canvas
import napari  # noqa: E402
from PIL import Image  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

OUT = Path(__file__).with_name("screenshot.png")
TRUTH = "m (truth)"
GRID_ORDER = (f"{TRUTH} arrows", TRUTH, "Hz top 5 nm", "Hz bottom 10 nm", "MFM df top 20 nm", "Hz top 20 nm",
              "Hz top 10 nm", "Hz bottom 20 nm")
"""Layers from the top of the list: napari's grid view puts them two per cell (stride 2), so the
first of each pair is shown and the second hidden, except the magnetization and its arrows."""
SHOWN = (f"{TRUTH} arrows", TRUTH, "Hz top 5 nm", "MFM df top 20 nm")


def main() -> None:
    viewer = napari.Viewer(title="napari-mmrecon")
    viewer.window._qt_window.resize(1700, 960)
    viewer.open_sample("napari-mmrecon", "skyrmion_lattice")
    _, dock = viewer.window.add_plugin_dock_widget("napari-mmrecon", "Stray field / MFM simulator")
    widget = dock.form
    widget.source.value = "layer"
    widget.layer.value = viewer.layers[TRUTH]
    widget.relax.value = False
    widget.heights.value = "5"
    widget.outputs["frequency_shift"].value = False
    widget.panel.run_button.native.click()
    app = QApplication.instance()
    while widget.panel.is_running:
        app.processEvents()
    for index, name in enumerate(GRID_ORDER):
        viewer.layers.move(viewer.layers.index(name), len(viewer.layers) - 1 - index)
    for layer in viewer.layers:
        layer.visible = layer.name in SHOWN
    viewer.layers.selection.active = viewer.layers["Hz top 5 nm"]
    grid = viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid
    grid.enabled, grid.shape, grid.stride = True, (1, 3), 2
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
    shot = viewer.screenshot(canvas_only=False, flash=False)
    Image.fromarray(shot[..., :3]).quantize(colors=256, dither=Image.Dither.NONE).save(OUT, optimize=True)
    viewer.close()
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
