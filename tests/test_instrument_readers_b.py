"""NanoScope, JPK and Park Systems readers on published instrument files (origins in
tests/data/instrument/README.md), on Park files written here with tifffile in the psia layout, and
on truncated and damaged copies."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_mmrecon.io import write_tiff
from napari_mmrecon.io.instrument import InstrumentError, accepts_instrument, jpk, nanoscope, park, read_instrument

DATA = Path(__file__).resolve().parent / "data" / "instrument"
NANOSCOPE = DATA / "nanoscope_di-3.spm"
JPK = DATA / "jpk_qi_sample_0.jpk"
PARK = DATA / "park_example_ps.tiff"
FILES = {"nanoscope": NANOSCOPE, "jpk": JPK, "park": PARK}
MODULES = {"nanoscope": nanoscope, "jpk": jpk, "park": park}


def test_nanoscope_channels_units_and_pixel_size():
    """di-3 against its header (four Ciao image lists: Samps/line 256, Number of lines 256,
    Scan Size 10 10 ~m, Line Direction Trace/Retrace x3) and SurfaceTopography's diSurfaceTest
    (RMS height 226.42539668457405 nm Height Sensor, 264.00285276203158 nm Height)."""
    f = read_instrument(NANOSCOPE)
    assert f.format == "nanoscope"
    assert [c.name for c in f.channels] == ["Height Sensor", "Amplitude Error", "Phase", "Height"]
    assert [c.unit for c in f.channels] == ["m", "V", "deg", "m"]
    assert [c.quantity for c in f.channels] == ["height", "amplitude", "phase", "height"]
    assert [c.direction for c in f.channels] == ["forward", "backward", "backward", "backward"]
    for c in f.channels:
        assert c.data.shape == (256, 256) and c.data.dtype == np.float64
        assert c.pixel_size == pytest.approx((10e-6 / 256, 10e-6 / 256), rel=1e-12)
    assert f.channel("Height Sensor").data.std() == pytest.approx(226.42539668457405e-9, rel=1e-9)
    assert f.channel("Height").data.std() == pytest.approx(264.00285276203158e-9, rel=1e-9)
    # pySPM 0.6 (through AFMReader 0.0.7's load_spm) gives the phase a std of 6.447600144017035 deg
    assert f.channel("Phase").data.std() == pytest.approx(6.447600144017035, rel=1e-9)
    assert f.lift_height is None and f.cantilever == {}
    assert any(m.startswith("lift height") for m in f.missing) and "cantilever spring constant k" in f.missing


@pytest.mark.parametrize(("channel", "per_count"), [
    # "@2:Z scale: V [Sens. ZsensSens] (0.0003750000 V/LSB) 24.57563 V", "@Sens. ZsensSens: V 790.3658 nm/V"
    ("Height Sensor", 24.57563 / 65536 * 790.3658e-9),
    # "(0.04577637 mV/LSB) 2999.954 mV", "@Sens. Amplitude Error: V 1.000000" (no unit: mV stays, -> V)
    ("Amplitude Error", 2999.954e-3 / 65536),
    # "(0.005493164 º/LSB) 359.9945 º", "@Sens. Phase: V 1.000000"
    ("Phase", 359.9945 / 65536),
    # "(0.005035400 V/LSB) 329.9950 V", "@Sens. Zsens: V 34.55678 nm/V"
    ("Height", 329.9950 / 65536 * 34.55678e-9),
])
def test_nanoscope_values_are_raw_counts_times_the_header_scale(channel, per_count):
    data = read_instrument(NANOSCOPE).channel(channel).data
    counts = data / per_count
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)
    assert np.abs(counts).max() <= 32768 and np.unique(np.round(counts)).size > 100


def test_nanoscope_numbered_suffix(tmp_path):
    copy = tmp_path / "scan.003"
    shutil.copy(NANOSCOPE, copy)
    assert [c.name for c in read_instrument(copy).channels][0] == "Height Sensor"





@pytest.mark.parametrize(("file", "channel", "nx", "rows", "xreal", "yreal_range"), [
    # pySPM tests/test_Bruker.py: pixels x, y and real x, y (um or nm as the header writes them)
    ("pyspm_header_only.000", "Height Sensor", 512, 512, 93e-6, (93e-6, 93e-6)),
    ("pyspm_header_only.001", "Height", 512, 32, 65e-6, (4e-6, 4.1e-6)),  # scan stopped after 32 lines
    ("pyspm_header_only.002", "Height Sensor", 512, 358, 300e-9, (209e-9, 210e-9)),  # aspect 0.516184
    ("pyspm_header_only.003", "Height Sensor", 256, 256, 2e-6, (2e-6, 2e-6)),
])
def test_nanoscope_geometry_against_pyspm_headers(file, channel, nx, rows, xreal, yreal_range):
    """pySPM's header-only test files (no data after the header): lines and scan size per channel
    as pySPM's tests expect them; reading the whole file then fails as truncated."""
    path = DATA / file
    text = path.read_bytes().decode("latin-1")
    sections = nanoscope._sections(text[: text.index("\\*File list end")])
    scan_list = next(values for title, values in sections if title == "ciao scan list")
    images = [values for title, values in sections if title == "ciao image list"]
    image = next(im for i, im in enumerate(images) if nanoscope._channel_label(im, i) == channel)
    itemsize = 4 if nanoscope._version(sections) >= 0x09200000 else 2
    length = int(image["data length"])
    header_nx, header_ny = int(image["samps/line"]), int(image["number of lines"])
    assert header_nx == nx
    assert nanoscope._rows(str(path), channel, image, nx, header_ny, itemsize, length) == rows
    dy, dx = nanoscope._pixel_size(image, scan_list, nx, header_ny)
    assert nx * dx == pytest.approx(xreal, rel=1e-9)
    assert yreal_range[0] * (1 - 1e-9) <= rows * dy <= yreal_range[1] * (1 + 1e-9)
    with pytest.raises(InstrumentError, match="past the end of the file"):
        read_instrument(path)


def test_jpk_channels_calibration_and_cantilever():
    """The QI image against AFMReader's tests/test_jpk.py: 100 x 100, pixel 4.999999999999986 nm,
    sums height_trace 31593146.16051172 nm, measuredHeight_trace 32181137.138706185 nm (the
    second such page), slope 626.3810326940231, adhesion 1.579363986493833e-06,
    vDeflection -1.3615033224242345e-05; cantilever from the file's calibration settings."""
    f = read_instrument(JPK)
    assert f.format == "jpk"
    assert [c.name for c in f.channels] == ["Height (measured)", "Vertical Deflection", "Height (measured) 2",
                                            "Adhesion", "Height", "Slope"]
    assert [c.unit for c in f.channels] == ["m", "N", "m", "N", "m", "N/m"]
    assert all(c.direction == "forward" and c.data.shape == (100, 100) for c in f.channels)
    for c in f.channels:
        assert c.pixel_size == pytest.approx((4.999999999999986e-9, 4.999999999999986e-9), rel=1e-12)
    sums = {"Height": 31593146.16051172e-9, "Height (measured) 2": 32181137.138706185e-9, "Slope": 626.3810326940231,
            "Adhesion": 1.579363986493833e-06, "Vertical Deflection": -1.3615033224242345e-05}
    for name, expected in sums.items():
        assert f.channel(name).data.sum() == pytest.approx(expected, rel=1e-9)
    assert f.channel("Height").quantity == "height"
    assert f.cantilever == pytest.approx({"k": 98.4935e-3, "f0": 27.78e3, "Q": 1.957}, rel=1e-12)
    assert f.missing == ["lift height"]  # k, f0 and Q are in the file


def test_park_file_is_the_data_not_the_preview():
    """example_ps.tiff against SurfaceTopography's test/IO/test_ps.py (Z Height, 512 x 512,
    1 x 1 um, RMS 0.003933333499668988 um) and, value by value, against tifffile's own reading
    of tag 50434 times the header's data gain (-12.227015495171795 um per count)."""
    f = read_instrument(PARK)
    (c,) = f.channels
    assert (f.format, c.name, c.unit, c.quantity, c.direction) == ("park", "Z Height", "m", "height", "forward")
    assert c.data.shape == (512, 512)
    assert c.pixel_size == pytest.approx((1e-6 / 512, 1e-6 / 512), rel=1e-12)
    assert c.data.std() == pytest.approx(0.003933333499668988e-6, rel=1e-6)
    with tifffile.TiffFile(PARK) as tif:
        preview = tif.pages[0].asarray()
        raw = np.frombuffer(tif.pages[0].tags[50434].value, dtype="<f4").reshape(512, 512)
    assert preview.shape == (256, 256) and preview.dtype == np.uint8
    np.testing.assert_array_equal(c.data, -12.227015495171795 * 1e-6 * raw.astype(np.float64))
    assert "lift height" in f.missing and c.metadata["ncm_frequency"] == pytest.approx(288954.2189791055)


def _psia_v1_file(path, raw, *, gain, z_scale, z_offset, z_unit, swap_xy=0, forward=1, name="Phase"):
    """A version-1 Park TIFF written by tifffile: an 8-bit preview, the psia.c header fields in
    order (psia_read_image_header), padded to the 356 bytes psia.c requires, int16 data."""
    ny, nx = raw.shape
    wide = lambda text, n: text.encode("utf-16-le").ljust(2 * n, b"\0")  # noqa: E731
    header = struct.pack("<I", 0) + wide(name, 32) + wide("MFM", 8)
    header += struct.pack("<dIIIIdIdIII", 0.0, 0, 0, nx, ny, 0.0, 0, 0.0, forward, 1, swap_xy)
    header += struct.pack("<dddddd", 4.0, 2.0, 0.0, 0.0, 1.0, 0.0) + wide("V", 8)
    header += struct.pack("<ddddd", 0.0, 0.0, gain, z_scale, z_offset) + wide(z_unit, 8)
    header += struct.pack("<iiiIII", 0, 0, 0, 0, 0, 0)
    header = header.ljust(356, b"\0")
    preview = (np.arange(64 * 64) % 256).astype(np.uint8).reshape(64, 64)
    data = raw.astype("<i2").tobytes()
    tifffile.imwrite(path, preview, extratags=[(50432, "I", 1, park.MAGIC, True), (50433, "I", 1, 0x01000001, True),
                                               (50434, "B", len(data), data, True),
                                               (50435, "B", len(header), header, True)])


def test_park_version1_int16_gain_scale_offset(tmp_path):
    """psia.c: value = data_gain * 10**p(z_unit) * (raw * z_scale + z_offset)."""
    raw = np.arange(-600, 600, 10, dtype=np.int16).reshape(8, 15)
    path = tmp_path / "phase.tiff"
    _psia_v1_file(path, raw, gain=2.5, z_scale=0.5, z_offset=3.0, z_unit="deg", forward=0)
    c = read_instrument(path).channels[0]
    np.testing.assert_array_equal(c.data, 2.5 * (raw * 0.5 + 3.0))
    assert (c.name, c.unit, c.quantity, c.direction) == ("Phase", "deg", "phase", "backward")
    assert c.pixel_size == pytest.approx((2e-6 / 8, 4e-6 / 15))
    assert c.data.shape != tifffile.imread(path).shape


def test_park_swapped_axes_rotate_as_psia_does(tmp_path):
    """psia.c inverts rows to its top-down order, then ``dd[i*yres + j] = sd[j*xres + xres-1-i]``;
    the reader returns that field bottom-up again."""
    raw = np.arange(6 * 4, dtype=np.int16).reshape(4, 6)
    path = tmp_path / "swapped.tiff"
    _psia_v1_file(path, raw, gain=1.0, z_scale=1.0, z_offset=0.0, z_unit="nm", swap_xy=1)
    sd = raw[::-1]
    dd = np.array([[sd[j, 6 - 1 - i] for j in range(4)] for i in range(6)], dtype=float)
    c = read_instrument(path).channels[0]
    np.testing.assert_array_equal(c.data, dd[::-1] * 1e-9)
    assert c.pixel_size == pytest.approx((4e-6 / 6, 2e-6 / 4))


def test_accepts_only_its_own_format(tmp_path):
    plain = tmp_path / "plain.tiff"
    write_tiff(plain, np.zeros((8, 8)), 1e-9)
    text = tmp_path / "notes.spm"
    text.write_text("a text file, not a scan\n")
    candidates = {**FILES, "plain tiff": plain, "text": text}
    for fmt, module in MODULES.items():
        for kind, path in candidates.items():
            assert module.accepts(path) == (kind == fmt), (fmt, kind)
    assert all(accepts_instrument(path) for path in FILES.values())
    assert not accepts_instrument(plain) and not accepts_instrument(text)


def _damaged(path, tmp_path, tag, edit):
    copy = tmp_path / f"{tag}{path.suffix}"
    copy.write_bytes(edit(path.read_bytes()))
    return copy


def _park_header_offset(blob: bytes) -> int:
    with tifffile.TiffFile(PARK) as tif:
        return tif.pages[0].tags[50435].valueoffset


MANGLES = {
    "nanoscope": [lambda b: b.replace(b"\\Samps/line: 256", b"\\Samps/line: 999", 2),
                  lambda b: b.replace(b"\\*File list end", b"\\*File list eNd"),
                  lambda b: b.replace(b"\\Data offset: 434176", b"\\Data offset: 999999")],
    "jpk": [lambda b: b.replace(b"LinearScaling", b"LinearScal1ng"),
            lambda b: b[:4] + b"\xf0\xff\xff\x7f" + b[8:]],
    "park": [lambda b: b[:_park_header_offset(b) + 100] + struct.pack("<I", 513) + b[_park_header_offset(b) + 104:],
             lambda b: b.replace(struct.pack("<I", 0x01000002), struct.pack("<I", 0x01000009), 1),
             # data_gain and z_scale (header bytes 220-235) 1e308: the scale overflows
             lambda b: b[:_park_header_offset(b) + 220] + struct.pack("<dd", 1e308, 1e308)
             + b[_park_header_offset(b) + 236:]],
}


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_truncated_and_damaged_copies_raise_instrument_error(fmt, tmp_path):
    path = FILES[fmt]
    size = path.stat().st_size
    copies = [_damaged(path, tmp_path, f"cut{n}", lambda b, n=n: b[:n]) for n in (0, 12, 5000, size // 2, size - 7)]
    copies += [_damaged(path, tmp_path, f"mangled{i}", edit) for i, edit in enumerate(MANGLES[fmt])]
    for copy in copies:
        with pytest.raises(InstrumentError, match=copy.name.replace(".", r"\.")):
            read_instrument(copy)
    text = tmp_path / f"text{path.suffix}"
    text.write_text("not an instrument file\n" * 20)
    with pytest.raises(InstrumentError, match="text"):
        read_instrument(text)


@pytest.mark.parametrize("name, hard_volts, nm_per_volt", [
    ("nanoscope_di-3.spm", 4.506534, 34.55678),  # \@Lift Scan Height: V [Sens. Zsens] ... 4.506534 V; Zsens 34.55678 nm/V
    ("pyspm_header_only.001", 7.692000, 41.63000),  # \@Lift scan height: V [Sens. Zscan] ... 7.692000 V; 41.63 nm/V
])
def test_nanoscope_lift_height_is_the_lift_scan_height_through_its_soft_scale(name, hard_volts, nm_per_volt):
    """No published NanoScope file with lift or interleave mode on was found (README.md). These real
    headers hold the lift parameters with the mode off: the reader gives no lift height and says why;
    with the mode switched on in the parsed header (in memory, the file is not changed) the lift
    height is the header's hard value times its soft scale, as the header lines quoted here state."""
    text = (DATA / name).read_bytes()[: nanoscope.MAX_HEADER_BYTES].decode("latin-1")
    sections = nanoscope._sections(text[: text.find(nanoscope._HEADER_END)])
    scan_list = next(values for title, values in sections if title == "ciao scan list")
    fast = next(values for title, values in sections if title == "fast scan list")
    assert fast["lift mode"] == fast["interleave mode"] == "Disabled"  # \Lift Mode: Disabled in the Fast Scan list
    assert nanoscope._lift_height(sections, scan_list, []) == (
        None, "lift height (lift/interleave mode is off in this file)")
    for mode in ("lift mode", "interleave mode"):
        switched = [(title, {**values, mode: "Enabled"} if title == "fast scan list" else values)
                    for title, values in sections]
        lift, note = nanoscope._lift_height(switched, scan_list, [])
        assert lift == pytest.approx(hard_volts * nm_per_volt * 1e-9, rel=1e-12) and note == ""
