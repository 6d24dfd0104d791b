"""``mmrecon fit`` and ``mmrecon reconstruct`` take an instrument file's channel directly.

The file: a Gwyddion ``.gwy`` of the bundled single skyrmion's MFM phase at 5 nm lift, written by
gwyfile's own writer (``instrument_scan``).
"""

import json

import numpy as np
import pytest

import napari_mmrecon as mm
from instrument_scan import LIFT, write_skyrmion_scan
from napari_mmrecon.cli import main

MATERIAL_FLAGS = ["--Ms", "5.8e5", "--A", "1.5e-11", "--Ku", "8e5", "--D", "3e-3"]


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """``(path, m_true, grid)``: the .gwy file of the sample's MFM phase (``instrument_scan``)."""
    path = tmp_path_factory.mktemp("scan") / "skyrmion.gwy"
    m, grid, _, _ = write_skyrmion_scan(path)
    return str(path), m, grid


def test_reconstruct_an_instrument_files_channel(scan, tmp_path, capsys):
    path, m_true, grid = scan
    out = tmp_path / "rec"
    assert main(["reconstruct", path, "--channel", "MFM phase", "--measurement", "mfm", "--height", str(LIFT),
                 *MATERIAL_FLAGS, "--max-iter", "12", "-o", str(out), "--quiet"]) == 0
    assert "reconstruction of skyrmion MFM phase: 64 x 64 x 1 cells of 1 x 1 x 1 nm" in capsys.readouterr().out
    m, m_grid = mm.read_ovf(out / "m.ovf")
    assert m_grid.nx == 64 and m_grid.dx == pytest.approx(1e-9)
    metrics = mm.texture_metrics(m, m_true, grid)
    assert metrics.angle_error < 2.0 and metrics.mz_correlation > 0.99
    report = json.loads((out / "report.json").read_text())
    assert report["measurements"][0]["kind"] == "MFM" and report["measurements"][0]["quantity"] == "phase"


@pytest.mark.parametrize("flags, message", [
    ([], "holds several channels ('MFM phase', 'Height'): choose one with --channel"),
    (["--channel", "amplitude"], "no channel 'amplitude'; the file has 'MFM phase', 'Height'"),
    (["--channel", "MFM phase", "--measurement", "mfm"], "give --height (m): the target does not say at which height"),
])
def test_what_the_file_does_not_say_is_asked_for(scan, tmp_path, capsys, flags, message):
    assert main(["fit", scan[0], *flags, "-o", str(tmp_path / "fit"), "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_channel_is_refused_for_a_tiff(tmp_path, capsys):
    image = tmp_path / "image.tif"
    mm.write_tiff(image, np.ones((8, 8)), 1e-9)
    assert main(["reconstruct", str(image), "--channel", "phase", "-o", str(tmp_path / "rec"), "--quiet"]) == 2
    assert "--channel is for instrument files" in capsys.readouterr().err
