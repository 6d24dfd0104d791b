"""The Gwyddion (.gwy), Asylum/Igor (.ibw) and Nanonis (.sxm) readers on published files and a file
written by gwyfile's own writer (tests/data/instrument/README.md names their origins).

Expected channel names, sizes, units and scan sizes are quoted from the source projects' own tests
or from the files' own text headers, as said at each test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_mmrecon.io.instrument import (
    InstrumentError,
    accepts_instrument,
    gwy,
    ibw,
    read_instrument,
    sxm,
)
from napari_mmrecon.io.instrument._units import si_unit

DATA = Path(__file__).resolve().parent / "data" / "instrument"
GWY_WRITTEN = DATA / "gwyfile_written.gwy"
GWY_TEST = DATA / "gwyfile_test.gwy"
IBW = DATA / "asylum_BTFO_DSO_Thick0000.ibw"
IBW_NAP = DATA / "surfacetopography_kpfm_nap_spot_1-1000nm.ibw"
SXM = DATA / "nanonis_afm_A151216.123306-02602.sxm"
FILES = {GWY_WRITTEN: gwy, GWY_TEST: gwy, IBW: ibw, SXM: sxm}


def test_gwyfile_written_channels_values_scale_and_units_are_exact():
    # make_gwy.py wrote 24 x 32 fields over 3.2 um x 1.2 um: phase 0.25 * (32 row + column) - 90 deg and
    # height 1e-9 (row - column) m, rows in Gwyddion's order (row 0 at the top), and a mask.
    read = read_instrument(GWY_WRITTEN)
    assert read.format == "gwy" and [c.name for c in read.channels] == ["MFM phase", "Height"]
    row, column = np.mgrid[0:24, 0:32].astype(np.float64)
    phase, height = read.channels
    np.testing.assert_array_equal(phase.data, np.flipud(0.25 * (32 * row + column) - 90.0))
    np.testing.assert_array_equal(height.data, np.flipud(1e-9 * (row - column)))
    for channel in read.channels:
        assert channel.data.dtype == np.float64 and channel.data.shape == (24, 32)
        assert channel.pixel_size == (1.2e-6 / 24, 3.2e-6 / 32)
    assert (phase.unit, phase.quantity, height.unit, height.quantity) == ("deg", "phase", "m", "height")
    assert "pixel size" not in read.missing
    assert {"lift height", "cantilever spring constant k"} <= set(read.missing)
    assert read.lift_height is None and read.cantilever == {}


def test_gwyfile_test_file_values_as_gwyfile_own_test_states():
    # gwyfile's tests/test_gwyobject.py: channel 'Test', shape (128, 128), data[0][0] = 0.00082494,
    # data[44][33] = 0.00085301 in Gwyddion's row order (row 0 at the top; ours is flipped).
    read = read_instrument(GWY_TEST)
    assert [c.name for c in read.channels] == ["Test"]
    data = read.channels[0].data
    assert data.shape == (128, 128)
    assert data[127 - 0, 0] == pytest.approx(0.00082494, rel=1e-5)
    assert data[127 - 44, 33] == pytest.approx(0.00085301, rel=1e-5)
    # The file's lateral unit is empty (xreal = yreal = 128 in no unit): no pixel size, and said so.
    assert read.channels[0].pixel_size is None and "pixel size" in read.missing


@pytest.mark.parametrize("path", [GWY_TEST, GWY_WRITTEN])
def test_own_gwyp_parser_agrees_with_gwyfile(path):
    gwyfile = pytest.importorskip("gwyfile")
    theirs = gwyfile.load(str(path))["/0/data"]
    ours = gwy.parse_gwyp(path.read_bytes())["/0/data"]
    np.testing.assert_array_equal(ours["data"], theirs.data.ravel())
    for key in ("xres", "yres", "xreal", "yreal"):
        assert ours[key] == theirs[key]
    assert ours["si_unit_z"]["unitstr"] == theirs["si_unit_z"]["unitstr"]


def test_asylum_image_as_scifireaders_test_states():
    # SciFiReaders tests/readers/microscopy/spm/afm/test_igor.py (test_load_test_ibw_image_file): 4 channels
    # 'HeightRetrace (m)', 'AmplitudeRetrace (m)', 'DeflectionRetrace (m)', 'PhaseRetrace (deg)', each (256, 256),
    # ScanSize 2e-06. The note (ScanPoints 256, SpringConstant 0.46538, ThermalFrequency 72969,
    # ThermalQ 138.63, NapMode 0) gives the rest.
    read = read_instrument(IBW)
    assert read.format == "ibw"
    assert [(c.name, c.unit) for c in read.channels] == [
        ("HeightRetrace", "m"), ("AmplitudeRetrace", "m"), ("DeflectionRetrace", "m"), ("PhaseRetrace", "deg")]
    assert [c.quantity for c in read.channels] == ["height", "amplitude", "", "phase"]
    for channel in read.channels:
        assert channel.data.shape == (256, 256) and channel.data.dtype == np.float64
        assert channel.direction == "backward"
        assert channel.pixel_size == pytest.approx((2e-6 / 255, 2e-6 / 255), rel=1e-6)
    assert read.cantilever == pytest.approx({"k": 0.46538, "f0": 72969.0, "Q": 138.63})
    assert read.lift_height is None and read.missing == ["lift height"]
    # Heights in metres: a 2 um PFM frame's flattened topography spans nanometres, not metres or pixels.
    height = read.channel("HeightRetrace").data
    assert 1e-10 < np.ptp(height) < 1e-6


def test_asylum_nap_mode_file_gives_its_lift_height_and_lift_pass_channels():
    """A real Asylum Nap-mode scan (KPFM; the lift pass is the same for MFM): its note says
    ``NapMode: 1`` and ``NapHeight: 1e-06`` (and its name "1000nm"); the channels are the
    dimension labels, the Nap ones from the lift pass. SurfaceTopography's test_ibw_kpfm_file states
    the 20 um frame; the note gives ScanPoints 256, SpringConstant 1, ThermalFrequency 75000,
    ThermalQ 20 and no PotentialUnit."""
    note = IBW_NAP.read_bytes()
    assert b"NapMode: 1\r" in note and b"NapHeight: 1e-06\r" in note and b"ScanSize: 2e-05\r" in note
    read = read_instrument(IBW_NAP)
    assert read.lift_height == 1e-6 and read.missing == []
    names = [f"{kind}{direction}" for kind in ("Height", "Amplitude", "Phase", "NapPotential")
             for direction in ("Trace", "Retrace")]
    assert [c.name for c in read.channels] == names
    assert [c.unit for c in read.channels] == ["m", "m", "m", "m", "deg", "deg", "", ""]
    assert [c.metadata["pass"] for c in read.channels] == ["main"] * 6 + ["lift"] * 2
    assert [c.direction for c in read.channels] == ["forward", "backward"] * 4
    for channel in read.channels:
        assert channel.data.shape == (256, 256)
        assert channel.pixel_size == pytest.approx((2e-5 / 255, 2e-5 / 255), rel=1e-6)
    assert read.cantilever == pytest.approx({"k": 1.0, "f0": 75000.0, "Q": 20.0})


def test_nanonis_scan_as_its_header_states():
    # The file's header: SCAN_PIXELS 128 128, SCAN_RANGE 2.000000E-9 2.000000E-9, SCAN_DIR up, DATA_INFO
    # Z m, Input_4 V, Current A, Phase deg, Amplitude m, Frequency_Shift Hz, Excitation V, LIX_1_omega A,
    # LIY_1_omega A, all 'both'; Center Frequency 22.6312E+3 Hz, PLL-Setup Q-Factor 53.561E+3.
    read = read_instrument(SXM)
    names = ["Z", "Input_4", "Current", "Phase", "Amplitude", "Frequency_Shift", "Excitation", "LIX_1_omega",
             "LIY_1_omega"]
    units = ["m", "V", "A", "deg", "m", "Hz", "V", "A", "A"]
    assert [c.name for c in read.channels] == [f"{n} ({d})" for n in names for d in ("forward", "backward")]
    assert [c.unit for c in read.channels] == [u for u in units for _ in (0, 1)]
    assert [c.direction for c in read.channels] == ["forward", "backward"] * 9
    for channel in read.channels:
        assert channel.data.shape == (128, 128) and channel.pixel_size == (2e-9 / 128, 2e-9 / 128)
    assert read.channel("Frequency_Shift (forward)").quantity == "frequency_shift"
    assert read.cantilever == pytest.approx({"f0": 22631.2, "Q": 53561.0})
    assert read.missing == ["lift height", "cantilever spring constant k"]


def test_nanonis_backward_images_are_mirrored_into_the_forward_frame():
    # Trace and retrace of one frame see the same surface: after the reader mirrors the backward lines
    # (stored right to left), the two frequency-shift images agree; unmirrored they would not.
    read = read_instrument(SXM)
    forward, backward = (read.channel(f"Frequency_Shift ({d})").data for d in ("forward", "backward"))
    forward = forward - forward.mean(axis=1, keepdims=True)
    backward = backward - backward.mean(axis=1, keepdims=True)
    assert np.corrcoef(forward.ravel(), backward.ravel())[0, 1] > 0.9
    assert np.corrcoef(forward.ravel(), backward[:, ::-1].ravel())[0, 1] < 0.5


def test_nanonis_scan_down_is_flipped_to_increasing_y(tmp_path):
    # The same bytes with the header's scan direction edited from up to down: the first stored line is
    # then the frame's top, so every image comes out flipped in y (an identity, not a new measurement).
    raw = SXM.read_bytes()
    down = tmp_path / "down.sxm"
    down.write_bytes(raw.replace(b":SCAN_DIR:\nup\n", b":SCAN_DIR:\ndown\n", 1))
    for up_channel, down_channel in zip(read_instrument(SXM).channels, read_instrument(down).channels):
        np.testing.assert_array_equal(down_channel.data, up_channel.data[::-1])


def test_si_units_with_prefixes_and_radians():
    assert si_unit("nm") == ("m", 1e-9) and si_unit("kHz") == ("Hz", 1e3) and si_unit("mV") == ("V", 1e-3)
    assert si_unit("\u00b5m") == ("m", 1e-6) and si_unit("\u00b0") == ("deg", 1.0)
    assert si_unit("rad")[0] == "deg" and si_unit("rad")[1] * np.pi == pytest.approx(180.0)
    assert si_unit("a.u.") == ("", 1.0) and si_unit("") == ("", 1.0) and si_unit("mdeg") == ("", 1.0)


def test_accepts_only_its_own_format(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("GWY? no: plain text\n")
    for path, module in FILES.items():
        assert module.accepts(path) and accepts_instrument(path)
        for other in {gwy, ibw, sxm} - {module}:
            assert not other.accepts(path), (other.__name__, path.name)
    for module in (gwy, ibw, sxm):
        assert not module.accepts(text)
    renamed = tmp_path / "text.sxm"
    renamed.write_text("plain text\n")
    assert not accepts_instrument(renamed)


def test_gwyddion_1_file_is_refused_with_a_clear_message(tmp_path):
    old = tmp_path / "old.gwy"  # Gwyddion 1.x wrote the magic GWYO and another serialization
    old.write_bytes(b"GWYO" + GWY_WRITTEN.read_bytes()[4:])
    assert not gwy.accepts(old)
    with pytest.raises(InstrumentError, match="old.gwy: a Gwyddion 1.x file"):
        read_instrument(old)


@pytest.mark.parametrize("path", list(FILES), ids=lambda p: p.name)
def test_header_and_metadata_are_json_serialisable(path):
    read = read_instrument(path)
    json.dumps([read.header, read.cantilever, read.missing, read.lift_height] + [c.metadata for c in read.channels])


def _mangled(path: Path) -> bytes:
    """The file with a structural part of its header overwritten (xor 0x5a)."""
    raw = path.read_bytes()
    start = raw.index(b":SCAN_PIXELS:") + 14 if path.suffix == ".sxm" else 4  # gwy: top object; ibw: section sizes
    return raw[:start] + bytes(b ^ 0x5A for b in raw[start : start + 24]) + raw[start + 24 :]


@pytest.mark.parametrize("path", list(FILES), ids=lambda p: p.name)
def test_truncated_and_mangled_copies_raise_instrument_error_naming_the_file(path, tmp_path):
    raw = path.read_bytes()
    copies = {"truncated": raw[: len(raw) * 9 // 10], "header only": raw[:200], "mangled": _mangled(path)}
    for how, content in copies.items():
        copy = tmp_path / f"{how.replace(' ', '_')}{path.suffix}"
        copy.write_bytes(content)
        with pytest.raises(InstrumentError, match=copy.name):
            read_instrument(copy)
    wrong = tmp_path / f"other{'.sxm' if path.suffix != '.sxm' else '.gwy'}"
    wrong.write_bytes(raw)
    with pytest.raises(InstrumentError, match=wrong.name):
        read_instrument(wrong)


def test_channel_by_name_and_by_quantity():
    read = read_instrument(GWY_WRITTEN)
    assert read.channel("mfm phase").name == "MFM phase"
    assert read.channel("phase").name == "MFM phase"  # by quantity
    assert read.channel("height").name == "Height"
    with pytest.raises(InstrumentError, match="no channel 'amplitude'"):
        read.channel("amplitude")
    scan = read_instrument(SXM)
    assert scan.channel("Phase (backward)").quantity == "phase"
    with pytest.raises(InstrumentError, match="ambiguous"):
        scan.channel("frequency_shift")  # forward and backward
