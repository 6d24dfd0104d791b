"""``mmrecon prepare``: a measured TIFF (or an instrument file's channel) prepared into a TIFF that
records its steps; the record replays them; the input is never written over."""

import json
import shlex

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.backend.measured.preparation import prepare_image
from napari_mmrecon.cli import main
from napari_mmrecon.io.instrument import InstrumentChannel, InstrumentFile
from napari_mmrecon.workflows import prepare as prepare_workflow

PIXEL = 4e-9
FLAGS = ["--level", "poly:2", "--align-rows", "median_difference", "--outliers", "6", "--scars", "6", "--crop", "8e-9",
         "0", "160e-9", "200e-9", "--convert", "frequency_shift", "--f0", "70e3", "--Q", "250", "--resample", "8e-9"]


def raw_phase(seed: int = 0) -> np.ndarray:
    """A 48 x 64 'MFM phase' (deg): noise, a tilt, scan-line jumps and one glitch."""
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(48, 64)) + 0.05 * np.arange(64)[None, :] + rng.uniform(-3, 3, 48)[:, None]
    image[20, 30] += 90.0
    return image


def measured_tiff(path, seed: int = 0, pixel=PIXEL):
    mm.write_tiff(path, raw_phase(seed), pixel, metadata={"quantity": "phase", "unit": "deg", "height": 25e-9,
                                                          "cantilever": {"k": 2.8}})
    return path


def run(arguments, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def test_prepare_writes_the_image_with_its_record_and_the_replay_reproduces_it(tmp_path, capsys):
    raw = measured_tiff(tmp_path / "raw.tif")
    code, out, _ = run(["prepare", raw, *FLAGS, "-o", tmp_path / "prepared.tif"], capsys)
    assert code == 0
    image, pixel, meta = mm.read_tiff(tmp_path / "prepared.tif")
    steps = meta["preparation"]["steps"]
    assert [step["step"] for step in steps] == ["crop", "align_rows", "remove_outliers", "remove_scars", "polynomial",
                                                "convert", "resample"]
    assert steps[2]["replaced"] == 1 and steps[5]["cantilever"] == {"f0": 70e3, "Q": 250.0}
    assert (meta["quantity"], meta["unit"], meta["source"]) == ("frequency_shift", "Hz", str(raw))
    assert meta["height"] == 25e-9 and meta["cantilever"] == {"k": 2.8, "f0": 70e3, "Q": 250.0}
    assert meta["preparation"]["input_pixel_size"] == [PIXEL, PIXEL] and meta["pixel_size"] == [8e-9, 8e-9]
    assert pixel == pytest.approx((8e-9, 8e-9), rel=1e-6) and image.shape == (20, 25)
    expected = prepare_image(*mm.read_tiff(raw)[:2], steps, "phase", "deg").image  # the values as stored
    np.testing.assert_array_equal(image, expected.astype(np.float32))
    # the printed replay command, on another measurement: the same steps as the API applies them
    replay = shlex.split(out.strip().splitlines()[-1].split(": ", 1)[1])
    other = measured_tiff(tmp_path / "other.tif", seed=1)
    replay = [str(other) if arg == "OTHER_FILE" else str(tmp_path / "other-prepared.tif") if "OTHER" in arg
              else arg for arg in replay[2:]]
    assert run(["prepare", *replay], capsys)[0] == 0
    again, _, meta_again = mm.read_tiff(tmp_path / "other-prepared.tif")
    replayed = [{key: value for key, value in step.items() if key != "replaced"} for step in steps]
    np.testing.assert_array_equal(again, prepare_image(*mm.read_tiff(other)[:2], replayed, "phase").image
                                  .astype(np.float32))
    assert [step["step"] for step in meta_again["preparation"]["steps"]] == [step["step"] for step in steps]
    # replayed on the same file (from a JSON record too): the same file contents
    (tmp_path / "steps.json").write_text(json.dumps(steps))
    assert run(["prepare", raw, "--steps", tmp_path / "steps.json", "-o", tmp_path / "again.tif"], capsys)[0] == 0
    assert (tmp_path / "again.tif").read_bytes() == (tmp_path / "prepared.tif").read_bytes()


def test_prepare_never_writes_over_its_input_and_replaces_only_with_overwrite(tmp_path, capsys):
    raw = measured_tiff(tmp_path / "raw.tif")
    before = raw.read_bytes()
    for overwrite in ([], ["--overwrite"]):
        code, _, err = run(["prepare", raw, "--level", "plane", "-o", raw, *overwrite], capsys)
        assert code == 2 and "is an input of this command, which never writes over its input" in err
    assert raw.read_bytes() == before
    out = tmp_path / "out.tif"
    out.write_bytes(b"earlier result")
    code, _, err = run(["prepare", raw, "--level", "plane", "-o", out], capsys)
    assert code == 2 and err == f"mmrecon prepare: error: {out} exists already: give --overwrite to replace it, " \
                                "or another -o"
    assert out.read_bytes() == b"earlier result"
    assert run(["prepare", raw, "--level", "plane", "-o", out, "--overwrite"], capsys)[0] == 0
    assert mm.read_tiff(out)[2]["preparation"]["steps"] == [{"step": "plane"}]
    assert raw.read_bytes() == before


def test_prepare_says_how_to_give_what_the_file_lacks(tmp_path, capsys):
    import tifffile

    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, raw_phase().astype(np.float32))
    code, _, err = run(["prepare", bare, "--level", "plane", "-o", tmp_path / "out.tif"], capsys)
    assert code == 2 and err == (f"mmrecon prepare: error: {bare} has no physical pixel size: give --pixel-size (m), "
                                 "e.g. --pixel-size 4e-9 for pixels of 4 nm")
    code, _, err = run(["prepare", bare, "--pixel-size", "4", "-o", tmp_path / "out.tif"], capsys)
    assert code == 2 and "did you mean 4e-9 (4 nm)?" in err
    code, _, err = run(["prepare", bare, "--pixel-size", "4e-9", "--convert", "phase", "-o", tmp_path / "out.tif"],
                       capsys)
    assert code == 2 and "does not say what it is (no quantity): give --quantity" in err
    raw = measured_tiff(tmp_path / "raw.tif")
    code, _, err = run(["prepare", raw, "--convert", "force_gradient", "-o", tmp_path / "out.tif"], capsys)
    assert code == 2 and "converting a phase needs the cantilever's Q, which" in err and err.endswith("give --Q")
    code, _, err = run(["prepare", raw, "--level", "plane", "--steps", raw, "-o", tmp_path / "out.tif"], capsys)
    assert code == 2 and "give no step flags with it (--level)" in err
    assert not (tmp_path / "out.tif").exists()
    assert run(["prepare", bare, "--pixel-size", "4e-9", "--level", "line:1", "-o", tmp_path / "out.tif"],
               capsys)[0] == 0
    assert mm.read_tiff(tmp_path / "out.tif")[1] == pytest.approx((4e-9, 4e-9), rel=1e-6)


def test_prepare_reads_the_chosen_channel_of_an_instrument_file(tmp_path, capsys, monkeypatch):
    """The instrument readers arrive separately: a stand-in ``read_instrument`` gives the
    ``InstrumentFile`` a reader would, to check what prepare takes from it."""
    path = tmp_path / "scan.gwy"
    path.write_bytes(b"stand-in")
    height = np.zeros((48, 64))
    contents = InstrumentFile(str(path), "gwy", [
        InstrumentChannel("Height", height, "m", (5e-9, 4e-9), quantity="height"),
        InstrumentChannel("MFM phase", raw_phase(), "deg", (5e-9, 4e-9), quantity="phase")],
        lift_height=30e-9, cantilever={"k": 2.8, "f0": 70e3, "Q": 250.0})
    monkeypatch.setattr(prepare_workflow, "read_instrument", lambda p: contents)
    code, _, err = run(["prepare", path, "--level", "plane", "-o", tmp_path / "out.tif"], capsys)
    assert code == 2 and "holds several channels ('Height', 'MFM phase'): choose one with --channel" in err
    code, out, _ = run(["prepare", path, "--channel", "MFM phase", "--convert", "force_gradient", "--Q", "200",
                        "-o", tmp_path / "out.tif"], capsys)
    assert code == 0 and "--channel 'MFM phase'" in out
    image, pixel, meta = mm.read_tiff(tmp_path / "out.tif")
    assert pixel == pytest.approx((5e-9, 4e-9), rel=1e-6) and meta["height"] == 30e-9
    assert meta["cantilever"] == {"k": 2.8, "f0": 70e3, "Q": 200.0}  # the flag overrides the file
    assert meta["preparation"]["channel"] == "MFM phase" and meta["unit"] == "N/m"
    np.testing.assert_array_equal(image, mm.force_gradient_from_phase(raw_phase(), mm.Cantilever(k=2.8, Q=200.0))
                                  .astype(np.float32))


def test_prepare_a_published_asylum_file_with_the_cantilever_it_states(tmp_path, capsys):
    """The PhaseRetrace channel of a published Asylum Research file (tests/data/instrument/README.md):
    pixel size and cantilever (f0, Q) come from the file; the file is left as it was."""
    from pathlib import Path

    from napari_mmrecon.io.instrument import read_instrument

    path = Path(__file__).parent / "data" / "instrument" / "asylum_BTFO_DSO_Thick0000.ibw"
    before = path.read_bytes()
    code, out, err = run(["prepare", path, "--channel", "PhaseRetrace", "--align-rows", "median", "--level", "plane",
                          "--convert", "frequency_shift", "-o", tmp_path / "phase.tif"], capsys)
    assert code == 0, err
    assert path.read_bytes() == before
    channel = read_instrument(path).channel("PhaseRetrace")
    image, pixel, meta = mm.read_tiff(tmp_path / "phase.tif")
    assert pixel == pytest.approx(channel.pixel_size, rel=1e-6)
    assert meta["cantilever"] == {"k": 0.46538, "f0": 72969.0, "Q": 138.63} and "height" not in meta
    steps = meta["preparation"]["steps"]
    assert steps[-1] == {"step": "convert", "from": "phase", "to": "frequency_shift",
                         "cantilever": {"f0": 72969.0, "Q": 138.63}}
    expected = prepare_image(channel.data, channel.pixel_size, steps, "phase", "deg").image
    np.testing.assert_array_equal(image, expected.astype(np.float32))
