"""``mmrecon reconstruct``, run as a user would (through the console script's main function).

The targets are the bundled single skyrmion's Hz at 10 nm above and below the film (64 x 64 cells
of 1 nm), written as TIFF by the package's own writer with the simulator's metadata, as ``mmrecon
simulate`` writes them. From the top side the bias method converges in 3 outer iterations; the
other runs are cut at one or two iterations (their outcome is not the point).
"""

import json

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon._sample_data import load_images, load_state
from napari_mmrecon.cli import main
from napari_mmrecon.workflows import layer_data
from napari_mmrecon.workflows.fit import measurement_from_metadata
from napari_mmrecon.workflows.reconstruct_output import FILES

SAMPLE = "single_skyrmion"


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    """``{"top": path, "bottom": path, "truth": (m, grid)}``: the sample's Hz at 10 nm as TIFFs."""
    folder = tmp_path_factory.mktemp("targets")
    result = load_images(SAMPLE)[0]
    paths = {}
    for image in result.images:
        if image.height == 10e-9:
            path = folder / f"{image.file_stem}.tif"
            mm.write_tiff(path, image.data, (result.grid.dy, result.grid.dx),
                          metadata=layer_data.simulated_image_file_metadata(result, image, "test"))
            paths[image.side] = str(path)
    m, grid, _ = load_state(SAMPLE)
    return {**paths, "truth": (m, grid)}


def test_reconstruct_a_tiff_end_to_end(targets, tmp_path, capsys):
    out = tmp_path / "rec"
    assert main(["reconstruct", targets["top"], "--max-iter", "5", "-o", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "reconstruction of Hz top 10 nm: 64 x 64 x 1 cells of 1 x 1 x 1 nm; bias method, start: estimate" in text
    assert "Ms = 580000" in text and "reconstructed: residual" in text and str(out.resolve()) in text
    assert sorted(path.name for path in out.iterdir()) == sorted(FILES)
    m, grid, header = mm.read_ovf(out / "m.ovf", return_header=True)
    truth, true_grid = targets["truth"]
    assert grid == true_grid and any(line.startswith("mmrecon material: ") for line in header["desc"])
    metrics = mm.texture_metrics(m, truth, grid)
    assert metrics.angle_error < 1.0 and metrics.mz_correlation > 0.99
    assert metrics.charge == pytest.approx(metrics.charge_true, abs=0.05)
    bias, bias_grid = mm.read_ovf(out / "bias_field.ovf")
    assert bias.shape == (1, 64, 64, 3) and np.abs(bias[..., 2]).max() > 1e4 and np.all(bias[..., :2] == 0)
    target = mm.read_tiff(targets["top"])[0]
    simulated, pixel, meta = mm.read_tiff(out / "simulated.tif")
    residual, _, residual_meta = mm.read_tiff(out / "residual.tif")
    assert simulated.shape == (64, 64) and np.allclose(pixel, (1e-9, 1e-9))
    assert (meta["quantity"], meta["unit"], meta["side"], meta["height"]) == ("Hz", "A/m", "top", 1e-8)
    assert measurement_from_metadata(meta) == mm.StrayFieldMeasurement(height=1e-8)  # reads back as a target
    assert residual_meta["quantity"] == "residual" and meta["reconstruction"]["converged"] is True
    np.testing.assert_allclose(residual, simulated - target, atol=1e-3 * np.abs(target).max())
    assert np.sqrt(np.mean(residual ** 2) / np.mean(target ** 2)) < 0.011
    report = json.loads((out / "report.json").read_text())
    assert report["converged"] and report["method"] == "bias" and report["targets"] == ["Hz top 10 nm"]
    assert report["options"]["max_iter"] == 5 and report["options"]["fit"] == []
    assert report["grid"]["nx"] == 64 and report["material"]["Ku"] == 8e5
    assert report["measurements"] == [{"kind": "stray field", "height": 1e-8, "side": "top", "component": "z"}]
    assert report["iterations"] == len(report["loss_history"]) <= 5
    assert (out / "reconstruction.png").stat().st_size > 10_000


def test_refuses_to_overwrite_and_replaces_with_overwrite(targets, tmp_path, capsys):
    out = tmp_path / "rec"
    out.mkdir()
    (out / "bias_field.ovf").write_text("an earlier result")
    assert main(["reconstruct", targets["top"], "--method", "fourier", "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bias_field.ovf exists already: give --overwrite" in err
    assert (out / "bias_field.ovf").read_text() == "an earlier result"
    # the Fourier inversion has no misfit goal: exit code 1; the earlier bias field is removed
    assert main(["reconstruct", targets["top"], "--method", "fourier", "-o", str(out), "--quiet",
                 "--overwrite"]) == 1
    text = capsys.readouterr().out
    assert "removed the earlier bias_field.ovf" in text
    assert sorted(path.name for path in out.iterdir()) == sorted(set(FILES) - {"bias_field.ovf"})
    assert json.loads((out / "report.json").read_text())["method"] == "fourier"
    assert main(["reconstruct", targets["top"], "--method", "fourier", "-o", str(out), "--quiet"]) == 2
    assert "5 files exist already in" in capsys.readouterr().err


def test_a_stack_of_two_targets(targets, tmp_path, capsys):
    out = tmp_path / "stack"
    assert main(["reconstruct", targets["top"], targets["bottom"], "--max-iter", "1", "-o", str(out),
                 "--quiet"]) == 1
    text = capsys.readouterr().out
    assert "reconstruction of Hz top 10 nm + Hz bottom 10 nm" in text and "not converged" in text
    simulated, _, meta = mm.read_tiff(out / "simulated.tif")
    residual = mm.read_tiff(out / "residual.tif")[0]
    assert simulated.shape == residual.shape == (2, 64, 64)
    assert (meta["quantity"], meta["unit"]) == ("Hz", "A/m") and "height" not in meta
    stack = np.stack([mm.read_tiff(targets[side])[0] for side in ("top", "bottom")])
    np.testing.assert_allclose(residual, simulated - stack, atol=1e-3 * np.abs(stack).max())
    report = json.loads((out / "report.json").read_text())
    assert [m["side"] for m in report["measurements"]] == ["top", "bottom"] and len(report["noise"]) == 2
    assert report["targets"] == ["Hz top 10 nm", "Hz bottom 10 nm"] and report["iterations"] == 1
    assert (out / "reconstruction.png").stat().st_size > 10_000


def test_bad_input_is_one_line_and_exit_2(targets, tmp_path, capsys):
    top, bottom = targets["top"], targets["bottom"]
    image = mm.read_tiff(top)[0]
    mm.write_tiff(tmp_path / "bare.tif", image, 1e-9)
    mm.write_tiff(tmp_path / "small.tif", image[:32, :32], 1e-9, metadata={"quantity": "Hz", "height": 1e-8})
    mm.write_tiff(tmp_path / "cube.tif", np.stack([image, image]), 1e-9)
    small = mm.Grid(nx=40, ny=40, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
    mm.write_ovf(tmp_path / "small.ovf", mm.textures.skyrmion(small, radius=5e-9), small)
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "simulated.tif").write_bytes(open(top, "rb").read())
    bare, ovf = str(tmp_path / "bare.tif"), str(tmp_path / "small.ovf")
    cases = [
        ([str(tmp_path / "missing.tif")], "missing.tif"),
        ([bare], "give --height (m)"),
        ([top, "--measurement", "mfm"], "the image is in A/m but an MFM frequency_shift is in Hz"),
        ([top, "--Ku", "0"], "the reconstruction needs Ku > 0"),
        ([top, "--Ms", "5e9"], "Ms = 5000000000.0 A/m is outside the physical range"),
        ([top, "--max-iter", "0"], "reconstruction over all its stages must be > 0, got max_iter = 0"),
        ([top, "--noise=-1"], "noise = -1.0 is outside the range (>= 0)"),
        ([top, "--discrepancy", "0"], "the discrepancy factor must be > 0"),
        ([top, "--fit", "Ms", "Ms"], "fit names a parameter twice"),
        ([top, bottom, "--fit", "Ku"], "a joint fit of the material takes one image and the bias method"),
        ([top, "--method", "energy", "--fit", "Ku"], "a joint fit of the material takes one image"),
        ([top, "--row-offsets"], "an offset per scan line (row offsets) takes method 'energy' or 'energy-relaxed'"),
        ([top, bottom, "--height", "1e-8"], "--height describes one target: with several targets each file's"),
        ([top, bare], "bare.tif: give --height (m)"),
        ([top, str(tmp_path / "small.tif")], "small.tif has 32 x 32 pixels of 1 x 1 nm but"),
        ([ovf], "a target here is a TIFF image"),
        ([str(tmp_path / "cube.tif")], "a target is one 2-D image"),
        ([top, "--m0", ovf], "the starting magnetization has 40 x 40 x 1 cells (x, y, z) but the target's film "
                             "needs 64 x 64 x 1"),
        ([top, "--height", "10"], "did you mean"),
        ([str(tmp_path / "inputs" / "simulated.tif"), "-o", str(tmp_path / "inputs")], "is an input of this command"),
    ]
    for arguments, message in cases:
        out = [] if "-o" in arguments else ["-o", str(tmp_path / "out")]
        assert main(["reconstruct", *arguments, *out, "--quiet"]) == 2, arguments
        err = capsys.readouterr().err
        assert err.startswith("mmrecon reconstruct: error: ") and err.count("\n") == 1, (arguments, err)
        assert message in err, (arguments, err)
    assert not (tmp_path / "out").exists()
    for arguments in (["--init", "neural"], ["--fit", "bias"], ["--method", "magic"]):
        with pytest.raises(SystemExit) as done:
            main(["reconstruct", top, *arguments])
        assert done.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_help_names_the_options_with_units_and_defaults(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(SystemExit) as done:
        main(["reconstruct", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for part in ("--method {bias,energy,energy-relaxed,fourier}", "--row-offsets", "--init {uniform,estimate,unet}", "--fit {Ms,A,Ku,D,height,offset,gain}",
                 "outer iterations of the reconstruction over all its stages (default 100)",
                 "--m0 M0", "--max-iter", "--noise NOISE", "--discrepancy DISCREPANCY", "--bias-strength",
                 "saturation magnetization (A/m, default: from the input file, else 580000)",
                 "-o OUT, --out OUT", "--device {cpu,cuda,auto}", "--threads THREADS", "--quiet", "--overwrite"):
        assert part in text, part
    assert "`" not in text
