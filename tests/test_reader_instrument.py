"""Instrument (SPM) files through the npe2 reader entry: the right reader, light, one layer per
channel with its physical scale, and a note of what the file does not say."""

import json
from pathlib import Path

import numpy as np
import pytest

from napari_mmrecon import _reader
from napari_mmrecon.io import write_tiff
from napari_mmrecon.io.instrument import read_instrument
from test_reader_entry import heavy_modules, run_python

DATA = Path(__file__).resolve().parent / "data" / "instrument"
READABLE = ["gwyfile_written.gwy", "asylum_BTFO_DSO_Thick0000.ibw", "nanonis_afm_A151216.123306-02602.sxm",
            "nanoscope_di-3.spm", "jpk_qi_sample_0.jpk", "park_example_ps.tiff"]
"""One file of each format that holds image data (the ``pyspm_header_only`` files hold none)."""


def test_get_reader_takes_each_format_without_importing_torch(tmp_path):
    plain = tmp_path / "plain.tif"
    write_tiff(plain, np.ones((4, 5)), 1e-9)
    code = f"""
import json, sys
import napari_mmrecon._reader as r
readers = [r.get_reader(path).__name__ for path in sys.argv[1:]]
print(json.dumps({{"readers": readers, "heavy": {heavy_modules()}}}))
"""
    result = run_python(code, *[DATA / name for name in READABLE], plain)
    assert result == {"readers": ["read_instrument_layers"] * len(READABLE) + ["read_tiff_layers"], "heavy": []}


def test_each_channel_is_a_layer_in_nm_with_its_unit_and_quantity():
    path = DATA / "gwyfile_written.gwy"
    layers = _reader.get_reader(str(path))(str(path))
    contents = read_instrument(path)
    assert [kwargs["name"] for _, kwargs, _ in layers] == [f"{path.stem} {c.name}" for c in contents.channels]
    (phase, phase_kwargs, kind), (height, height_kwargs, _) = layers
    assert kind == "image"
    np.testing.assert_array_equal(phase, contents.channel("MFM phase").data)
    # make_gwy.py: 3.2 um x 1.2 um over 32 x 24 pixels
    assert phase_kwargs["scale"] == pytest.approx((50.0, 100.0)) and phase_kwargs["units"][-1] == "nm"
    meta = phase_kwargs["metadata"]["mmrecon"]
    assert (meta["quantity"], meta["unit"], meta["channel"], meta["instrument"]) == ("phase", "deg", "MFM phase", "gwy")
    assert meta["pixel_size"] == pytest.approx([50e-9, 100e-9]) and meta["source"] == str(path)
    assert "lift height" in meta["missing"] and json.dumps(meta)
    assert phase_kwargs["visible"] and not height_kwargs["visible"]
    assert height_kwargs["metadata"]["mmrecon"]["unit"] == "m"


def test_a_file_without_lift_height_or_cantilever_says_so(notes):
    path = DATA / "gwyfile_written.gwy"
    _reader.read_instrument_layers(str(path))
    warnings = [str(n.message) for n in notes if n.severity == "warning"]
    assert len(warnings) == 1 and warnings[0].startswith("gwyfile_written.gwy does not say its ")
    assert "lift height" in warnings[0]


def test_park_tiff_opens_as_its_data_not_its_preview(make_napari_viewer):
    path = DATA / "park_example_ps.tiff"
    layers = make_napari_viewer().open(path, plugin="napari-mmrecon")
    expected = read_instrument(path).channels[0]
    assert layers[0].source.reader_plugin == "napari-mmrecon"
    np.testing.assert_array_equal(layers[0].data, expected.data)
    assert layers[0].data.dtype == np.float64 and layers[0].metadata["mmrecon"]["instrument"] == "park"
    assert layers[0].scale[-1] == pytest.approx(expected.pixel_size[1] * 1e9)


def test_a_damaged_instrument_file_is_one_notification_and_no_layer(notes, tmp_path):
    path = tmp_path / "scan.sxm"
    path.write_bytes((DATA / "nanonis_afm_A151216.123306-02602.sxm").read_bytes()[:5000])
    assert _reader.read_instrument_layers(str(path)) == [(None,)]
    errors = notes.errors()
    assert len(errors) == 1 and errors[0].startswith("napari-mmrecon cannot open scan.sxm: ") and "truncated" in errors[0]
