"""``mmrecon fit`` and ``mmrecon reconstruct`` take an instrument file's channel directly (one
reader for both, ``cli._read_target``; the texture reconstructed from such a file is tested through
the napari docks in ``test_widgets_instrument_flow``).

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
    """``(path, m_true, grid)``: the .gwy file of the sample's MFM phase with 1 % noise (``instrument_scan``)."""
    path = tmp_path_factory.mktemp("scan") / "skyrmion.gwy"
    m, grid, _, _ = write_skyrmion_scan(path, noise=0.01)
    return str(path), m, grid


def test_fit_an_instrument_files_channel(scan, tmp_path, capsys):
    # the texture is the file's own (m0): the image's gain and offset are all that is fitted
    path, m_true, grid = scan
    m0 = tmp_path / "m0.ovf"
    mm.write_ovf(m0, m_true, grid)
    out = tmp_path / "fit"
    assert main(["fit", path, "--channel", "MFM phase", "--height", str(LIFT), *MATERIAL_FLAGS, "--m0", str(m0),
                 "--fit", "gain", "offset", "-o", str(out), "--quiet"]) == 0
    assert "fit of skyrmion MFM phase: 64 x 64 x 1 cells of 1 x 1 x 1 nm" in capsys.readouterr().out
    record = json.loads((out / "fit.json").read_text())
    assert record["values"]["gain"] == pytest.approx(1.0, abs=1e-3)
    assert record["measurement"]["kind"] == "MFM" and record["measurement"]["quantity"] == "phase"
    assert record["measurement"]["height"] == pytest.approx(LIFT)


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
