"""The npe2 reader entry point: light (no torch) and polite (declines what it does not read)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_mmrecon
from napari_mmrecon import _reader
from napari_mmrecon.io import write_ovf, write_tiff

SOURCE = str(Path(napari_mmrecon.__file__).resolve().parents[1])
"""The folder holding the package under test, for the subprocesses."""

OVF_FILE = Path(__file__).resolve().parent / "data" / "ovf" / "oommf_ovf2_bin4_m_5x5x5.omf"


def run_python(code: str, *args) -> dict:
    """Run ``code`` in a fresh interpreter importing this checkout; it prints one JSON line."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SOURCE, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def heavy_modules() -> str:
    """Python source of a JSON-ready list of the heavy modules imported so far."""
    return ("sorted(m for m in sys.modules if m in ('torch', 'napari') "
            "or m.startswith('napari_mmrecon.backend') or m.startswith('napari_mmrecon.workflows'))")


def test_get_reader_imports_neither_torch_nor_napari(tmp_path):
    tiff = tmp_path / "image.tif"
    write_tiff(tiff, np.ones((4, 5)), 1e-9)
    code = f"""
import json, sys
import napari_mmrecon._reader as r
readers = [r.get_reader(path).__name__ for path in sys.argv[1:]]
print(json.dumps({{"readers": readers, "heavy": {heavy_modules()}}}))
"""
    result = run_python(code, OVF_FILE, tiff)
    assert result == {"readers": ["read_ovf_layers", "read_tiff_layers"], "heavy": []}


def test_package_imports_its_public_names_on_first_use():
    code = f"""
import json, sys
import napari_mmrecon as mm
before = {heavy_modules()}
from napari_mmrecon import DEFAULT_TORQUE_TOL, read_ovf, relax
star = {{}}
exec("from napari_mmrecon import *", star)
missing = sorted(set(mm.__all__) - set(star))
print(json.dumps({{"before": before, "torch_after": "torch" in sys.modules, "missing": missing,
                  "dir": sorted(set(mm.__all__) - set(dir(mm))), "relax": relax is mm.backend.relax,
                  "read_ovf": read_ovf.__module__, "tol": DEFAULT_TORQUE_TOL > 0, "version": mm.__version__}}))
"""
    result = run_python(code)
    assert result == {"before": [], "torch_after": True, "missing": [], "dir": [], "relax": True,
                      "read_ovf": "napari_mmrecon.io.ovf", "tol": True, "version": "0.1.0"}


def test_public_names_resolve_and_unknown_names_raise():
    for name in napari_mmrecon.__all__:
        assert getattr(napari_mmrecon, name) is not None, name
    assert set(napari_mmrecon.__all__) <= set(dir(napari_mmrecon))
    with pytest.raises(AttributeError, match="module 'napari_mmrecon' has no attribute 'no_such_name'"):
        napari_mmrecon.no_such_name  # noqa: B018


def own_files(folder: Path) -> list[Path]:
    """Files the plugin reads (a damaged OVF file and TIFF among them: it reports those)."""
    from napari_mmrecon.backend.physics.grid import Grid

    write_ovf(folder / "m.ovf", np.zeros((1, 2, 3, 3)), Grid(3, 2, 1))
    (folder / "cut.omf").write_bytes(OVF_FILE.read_bytes()[:300])
    write_tiff(folder / "image.tif", np.ones((4, 5)), 1e-9)
    write_tiff(folder / "stack.TIFF", np.ones((2, 4, 5)), 1e-9)
    tifffile.imwrite(folder / "scan.tiff", np.zeros((4, 5), np.uint16))
    (folder / "noise.tif").write_bytes(b"II*\x00garbage that is not a tiff")
    return sorted(folder.iterdir())


def foreign_files(folder: Path) -> list[Path]:
    """Files named like ours that napari's own reader or another plugin should take."""
    tifffile.imwrite(folder / "rgb.tif", np.zeros((4, 5, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(folder / "series.tif", np.zeros((4, 5), np.float32))
    tifffile.imwrite(folder / "series.tif", np.zeros((6, 7), np.float32), append=True)
    tifffile.imwrite(folder / "time.tif", np.zeros((3, 4, 5), np.float32), imagej=True, metadata={"axes": "TYX"})
    tifffile.imwrite(folder / "channels.ome.tif", np.zeros((2, 4, 5), np.uint16), ome=True,
                     metadata={"axes": "CYX"})
    tifffile.imwrite(folder / "complex.tif", np.zeros((4, 5), np.complex64))
    (folder / "photo.tif").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (folder / "table.ovf").write_text("x y z mx my mz\n0 0 0 1 0 0\n")
    (folder / "empty.omf").write_bytes(b"")
    return sorted(folder.iterdir())


def test_get_reader_takes_its_own_files(tmp_path):
    expected = {".ovf": _reader.read_ovf_layers, ".omf": _reader.read_ovf_layers}
    for path in own_files(tmp_path):
        reader = expected.get(path.suffix.lower(), _reader.read_tiff_layers)
        assert _reader.get_reader(str(path)) is reader, path.name
        assert _reader.get_reader([path]) is reader, path.name


def test_get_reader_declines_other_files(tmp_path):
    for path in foreign_files(tmp_path):
        assert _reader.get_reader(str(path)) is None, path.name
    image = tmp_path / "image.tif"
    write_tiff(image, np.ones((4, 5)), 1e-9)
    assert _reader.get_reader([image, image]) is None
    assert _reader.get_reader(str(tmp_path / "absent.tif")) is None
    renamed = tmp_path / "image.png"
    image.rename(renamed)
    assert _reader.get_reader(str(renamed)) is None


def test_declined_rgb_tiff_opens_with_napari_builtin_reader(make_napari_viewer, tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.full((16, 20, 3), 200, np.uint8), photometric="rgb")
    layers = make_napari_viewer().open(path)
    assert len(layers) == 1 and layers[0].source.reader_plugin == "napari"
    assert layers[0].data.shape == (16, 20, 3)


def test_file_gone_before_reading_gives_a_notification(notes, tmp_path):
    path = tmp_path / "m.ovf"
    path.write_bytes(OVF_FILE.read_bytes())
    read = _reader.get_reader(str(path))
    path.unlink()
    assert read(str(path)) == [(None,)]
    messages = notes.errors()
    assert len(messages) == 1 and messages[0].startswith("napari-mmrecon cannot open m.ovf: ")
