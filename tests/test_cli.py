"""The mmrecon console script, run as a user would (through its main function)."""

import json

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.cli import build_parser, main
from napari_mmrecon.workflows.fit_output import FILES as FIT_FILES
from napari_mmrecon.workflows.reconstruct_output import FILES as RECONSTRUCTION_FILES


def test_demo_writes_state_fields_mfm_and_figure(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "bundled relaxed Neel skyrmion lattice" in text and str(out.resolve()) in text
    m, grid, header = mm.read_ovf(out / "m_relaxed.ovf", return_header=True)
    assert m.shape == (1, 128, 128, 3) and grid.dx == 2e-9
    assert any(line.startswith("mmrecon material: ") for line in header["desc"])
    names = sorted(path.name for path in out.iterdir())
    images = [f"{q}_{s}_{h}nm.tif" for q in ("Hz", "mfm_df") for s in ("top", "bottom") for h in (10, 20)]
    assert names == sorted(["m_relaxed.ovf", "figure.png", "fit", "reconstruct"] + images)
    hz, pixel, meta = mm.read_tiff(out / "Hz_bottom_20nm.tif")
    assert hz.shape == (128, 128) and np.allclose(pixel, (2e-9, 2e-9), rtol=1e-6)
    assert (meta["quantity"], meta["unit"], meta["side"], meta["height"]) == ("Hz", "A/m", "bottom", 2e-8)
    assert meta["material"]["Ms"] == 5.8e5 and meta["relaxed"] is True
    expected = mm.stray_field(m, grid, 5.8e5, 20e-9, side="bottom")[..., 2]
    np.testing.assert_allclose(hz, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    assert mm.read_tiff(out / "mfm_df_top_10nm.tif")[2]["unit"] == "Hz"
    assert (out / "figure.png").stat().st_size > 10_000
    # it ends with a fit of Ms, A, Ku, D to the stray field of a single skyrmion, from 30 % off
    assert sorted(path.name for path in (out / "fit").iterdir()) == sorted(FIT_FILES + ("Hz_top_4nm.tif",))
    record = json.loads((out / "fit" / "fit.json").read_text())
    assert record["converged"] and record["true"] == {"Ms": 5.8e5, "A": 1.5e-11, "Ku": 8e5, "D": 3e-3}
    for name, true in record["true"].items():
        assert record["start"][name] != pytest.approx(true, rel=0.2)
        assert record["values"][name] == pytest.approx(true, rel=1e-2), name
    table = text[text.index("parameter "):].splitlines()
    assert table[0].split() == ["parameter", "start", "fitted", "1", "sigma", "unit", "true", "rel.", "error"]
    assert [line.split()[0] for line in table[1:5]] == ["Ms", "A", "Ku", "D"]
    assert "mmrecon fit " in text
    # then it reconstructs the single skyrmion's texture from either side and compares it with the truth
    for folder in ("top", "bottom", "bottom-unet"):
        assert sorted(path.name for path in (out / "reconstruct" / folder).iterdir()) == sorted(RECONSTRUCTION_FILES)
    rows = {line.split()[0]: line for line in text[text.index("run "):].splitlines()[1:4]}
    assert "reconstructed after" in rows["top"] and "not converged" in rows["bottom"]
    top = json.loads((out / "reconstruct" / "top" / "report.json").read_text())
    assert top["converged"] and top["metrics"]["angle_error"] < 1 and top["metrics"]["mz_correlation"] > 0.99
    bottom = json.loads((out / "reconstruct" / "bottom" / "report.json").read_text())
    assert not bottom["converged"] and bottom["metrics"]["mz_correlation"] < 0.5
    assert "physics alone ends far from the truth" in text
    # and from below again, started from the U-Net's prediction (the hybrid), reported beside it
    hybrid = json.loads((out / "reconstruct" / "bottom-unet" / "report.json").read_text())
    assert hybrid["init"] == "unet" and "bottom-unet" in rows
    assert f"it ends {hybrid['metrics']['angle_error']:.3g} deg from the truth" in text


def test_simulate_texture_with_relaxation(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--texture", "skyrmion", "--n", "24", "--radius", "5e-9", "--relax", "--tol", "3e-3",
                 "--heights", "5e-9", "--side", "both", "--outputs", "Hz", "phase", "--Ms", "6e5", "-o", str(out),
                 "--quiet"]) == 0
    assert "relaxed: converged" in capsys.readouterr().out
    m, grid = mm.read_ovf(out / "m_relaxed.ovf")
    assert m.shape == (1, 24, 24, 3)
    phase, _, meta = mm.read_tiff(out / "mfm_phase_bottom_5nm.tif")
    assert meta["unit"] == "deg" and meta["tip"] == {"model": "dipole", "moment": 1e-16, "direction": [0, 0, 1]}
    expected = mm.phase_from_frequency_shift(mm.mfm_frequency_shift(m, grid, 6e5, 5e-9, side="bottom"),
                                             mm.Cantilever())
    np.testing.assert_allclose(phase, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    assert (out / "figure.png").exists() and (out / "Hz_top_5nm.tif").exists()


def test_simulate_ovf_file_takes_its_material(tmp_path):
    grid = mm.Grid(nx=16, ny=16, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
    m = mm.textures.skyrmion(grid, radius=4e-9)
    mm.write_ovf(tmp_path / "M.omf", 7e5 * m, grid, title="M", value_units="A/m")
    out = tmp_path / "sim"
    assert main(["simulate", str(tmp_path / "M.omf"), "--heights", "10e-9", "--outputs", "Hy", "-o", str(out),
                 "--quiet"]) == 0
    hy, _, meta = mm.read_tiff(out / "Hy_top_10nm.tif")
    assert meta["material"]["Ms"] == 7e5
    np.testing.assert_allclose(hy, mm.stray_field(m, grid, 7e5, 10e-9)[..., 1], rtol=1e-5, atol=1e-3)


def test_relax_texture_then_relax_its_file(tmp_path):
    first, second = tmp_path / "a.ovf", tmp_path / "b.ovf"
    assert main(["relax", "--n", "40", "-o", str(first), "--quiet"]) == 0
    m, grid = mm.read_ovf(first)
    assert m.shape == (1, 40, 40, 3) and grid.dx == 1e-9
    assert 4e-9 < mm.skyrmion_radius(m, grid) < 12e-9
    # a relaxed state read back is already converged
    assert main(["relax", str(first), "-o", str(second), "--quiet"]) == 0
    np.testing.assert_allclose(mm.read_ovf(second)[0], m, atol=1e-12)


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert main(["relax", str(tmp_path / "missing.ovf"), "-o", str(tmp_path / "x.ovf")]) == 2
    assert "missing.ovf" in capsys.readouterr().err
    bad = tmp_path / "bad.ovf"
    bad.write_text("this is not an OVF file\n")
    assert main(["simulate", str(bad), "-o", str(tmp_path / "out")]) == 2
    assert "bad.ovf" in capsys.readouterr().err
    assert main(["relax", "--n", "0"]) == 2
    assert "Grid nx must be a positive integer" in capsys.readouterr().err
    assert main(["simulate", "--heights", "0", "-o", str(tmp_path / "out")]) == 2
    assert "heights must be one or more finite lengths > 0 m" in capsys.readouterr().err
    assert main(["simulate", "--n", "2000", "-o", str(tmp_path / "out")]) == 2
    assert "too large" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def small_skyrmion_target(tmp_path):
    """A relaxed skyrmion (40 x 40 x 1 cells of 1 nm) as OVF and its Hz at 5 nm as a TIFF whose
    metadata say what it is, as ``mmrecon simulate`` writes it."""
    grid = mm.Grid(nx=40, ny=40, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
    material = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
    m = mm.relax(mm.textures.skyrmion(grid, radius=7e-9), grid, material, tol=1e-10)
    mm.write_ovf(tmp_path / "truth.ovf", m, grid)
    hz = mm.StrayFieldMeasurement(height=5e-9).simulate(m, grid, material.Ms)
    mm.write_tiff(tmp_path / "hz.tif", hz, 1e-9, metadata={"quantity": "Hz", "unit": "A/m", "side": "top",
                                                            "height": 5e-9, "grid": {"nz": 1, "dz": 1e-9}})
    return m, grid, hz


def test_fit_a_tiff_end_to_end(tmp_path, capsys):
    m, grid, hz = small_skyrmion_target(tmp_path)
    out = tmp_path / "fit"
    assert main(["fit", str(tmp_path / "hz.tif"), "--Ms", "6.09e5", "--D", "2.85e-3", "--fit", "Ms", "D",
                 "--m0", str(tmp_path / "truth.ovf"), "--bias", "none", "--max-iter", "8", "-o", str(out),
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "fit of hz: 40 x 40 x 1 cells of 1 x 1 x 1 nm; fitting Ms, D" in text and "converged" in text
    assert sorted(path.name for path in out.iterdir()) == sorted(FIT_FILES)
    record = json.loads((out / "fit.json").read_text())
    assert record["values"]["Ms"] == pytest.approx(5.8e5, rel=1e-4)
    assert record["values"]["D"] == pytest.approx(3e-3, rel=1e-4)
    assert record["start"] == {"Ms": 6.09e5, "D": 2.85e-3} and record["units"] == {"Ms": "A/m", "D": "J/m^2"}
    assert record["uncertainty"]["Ms"] > 0 and record["measurement"]["height"] == 5e-9
    assert record["material"]["Ku"] == 8e5 and record["converged"] is True
    table = (out / "fit_table.tsv").read_text().splitlines()
    assert table[0] == "parameter\tvalue\tuncertainty (1 sigma)\tunit" and table[1].startswith("Ms\t")
    assert any(line.startswith("Ms ") and "6.09e+05" in line for line in text.splitlines())  # the printed table
    fitted, fitted_grid, header = mm.read_ovf(out / "m_fitted.ovf", return_header=True)
    np.testing.assert_allclose(fitted, m, atol=1e-4)
    assert fitted_grid == grid and any("mmrecon material" in line for line in header["desc"])
    simulated, pixel, meta = mm.read_tiff(out / "simulated.tif")
    residual = mm.read_tiff(out / "residual.tif")[0]
    assert np.allclose(pixel, (1e-9, 1e-9)) and (meta["quantity"], meta["unit"]) == ("Hz", "A/m")
    assert meta["fit"]["values"]["Ms"] == pytest.approx(5.8e5, rel=1e-4)
    np.testing.assert_allclose(simulated, hz, rtol=1e-4, atol=1e-3 * np.abs(hz).max())
    np.testing.assert_allclose(residual, simulated - hz, atol=1e-3 * np.abs(hz).max())
    assert (out / "figure.png").stat().st_size > 10_000


def test_fit_an_ovf_simulates_its_mfm_image(tmp_path, capsys):
    small_skyrmion_target(tmp_path)
    out = tmp_path / "fit"
    assert main(["fit", str(tmp_path / "truth.ovf"), "--measurement", "mfm", "--height", "6e-9", "--quantity",
                 "phase", "--Ms", "6.09e5", "--fit", "Ms", "--m0", str(tmp_path / "truth.ovf"), "--bias", "none",
                 "--max-iter", "5", "-o", str(out), "--quiet"]) == 0
    record = json.loads((out / "fit.json").read_text())
    assert record["target"] == "truth simulated" and record["true"]["Ms"] == 5.8e5  # the OVF's default material
    assert record["values"]["Ms"] == pytest.approx(5.8e5, rel=1e-4)
    assert record["measurement"] == {"kind": "MFM", "height": 6e-9, "side": "top", "quantity": "phase",
                                     "tip": {"model": "dipole", "moment": 1e-16, "direction": [0.0, 0.0, 1.0]},
                                     "cantilever": {"k": 3.0, "f0": 75e3, "Q": 200.0}}
    assert mm.read_tiff(out / "residual.tif")[2]["unit"] == "deg"
    assert "rel. error" in capsys.readouterr().out


def test_fit_errors_are_messages(tmp_path, capsys):
    small_skyrmion_target(tmp_path)
    mm.write_tiff(tmp_path / "bare.tif", mm.read_tiff(tmp_path / "hz.tif")[0], 1e-9)
    cases = [
        (["bare.tif"], "give --height (m)"),
        (["hz.tif", "--measurement", "mfm"], "the target is in A/m but an MFM frequency_shift is in Hz"),
        (["hz.tif", "--Ms", "5e9"], "Ms = 5000000000.0 A/m is outside the physical range"),
        (["hz.tif", "--m0", str(tmp_path / "hz.tif")], "hz.tif"),  # not an OVF file
        (["hz.tif", "--nz", "2", "--m0", str(tmp_path / "truth.ovf")],
         "the starting magnetization has 40 x 40 x 1 cells (x, y, z) but the target's film needs 40 x 40 x 2"),
        (["truth.ovf", "--height", "5e-9", "--fit", "Ms", "--relax-tol", "0"], "relaxation tolerance must be > 0"),
    ]
    for arguments, message in cases:
        arguments = [str(tmp_path / arguments[0])] + arguments[1:]
        assert main(["fit", *arguments, "-o", str(tmp_path / "out"), "--quiet"]) == 2, arguments
        assert message in capsys.readouterr().err, arguments
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- the command line itself


def help_of(arguments, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "250")
    with pytest.raises(SystemExit) as done:
        main(arguments)
    assert done.value.code == 0
    return capsys.readouterr().out


def test_help_shows_units_defaults_negative_values_and_no_markup(capsys, monkeypatch):
    top = help_of(["--help"], capsys, monkeypatch)
    assert "--version" in top and "--D=-3e-3" in top and "--overwrite" in top and "`" not in top
    helps = {name: help_of([name, "--help"], capsys, monkeypatch)
             for name in ("demo", "simulate", "relax", "fit", "reconstruct")}
    for name, text in helps.items():
        assert "`" not in text, name
        for flag in ("-o OUT, --out OUT", "--device {cpu,cuda,auto}", "--threads THREADS", "--quiet", "--overwrite"):
            assert flag in text, (name, flag)
    simulate = helps["simulate"]
    assert "heights above (or below) the film (m, default 1e-08 2e-08)" in simulate
    assert "saturation magnetization (A/m, default: from the input file, else 580000)" in simulate
    assert "a negative value as --D=-0.003" in simulate and "a negative value as --field=-100000" in simulate
    assert "relaxation tolerance: stop at max |m x H|/Ms below it (default 0.0001)" in simulate
    assert "--output OUT" in helps["relax"] and "--field FIELD" in helps["relax"]
    assert "or an OVF state whose image is simulated here (then give --height)" in helps["fit"]
    assert "outer iterations per stage of the fit (default 100)" in helps["fit"]


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"mmrecon {mm.__version__}"


def test_negative_dmi_and_fields_are_physics(tmp_path, capsys):
    out = tmp_path / "neg.ovf"
    assert main(["relax", "--n", "16", "--D", "-3e-3", "--field=-1e4", "--tol", "1e-2", "-o", str(out), "--quiet"]) == 0
    header = mm.read_ovf(out, return_header=True)[2]
    material = json.loads(next(line for line in header["desc"] if line.startswith("mmrecon material: "))
                          .split(": ", 1)[1])
    assert material["D"] == -3e-3
    args = build_parser().parse_args(["fit", "x.tif", "--D=-3e-3", "--tip-charge", "-1e-9", "--field", "-1e5"])
    assert (args.D, args.tip_charge, args.field) == (-3e-3, -1e-9, -1e5)


def tiny_target(path):
    image = np.random.default_rng(1).normal(size=(16, 16))
    mm.write_tiff(path, image, 1e-9, metadata={"quantity": "Hz", "unit": "A/m", "side": "top", "height": 5e-9})
    return str(path)


def test_bad_values_are_one_line_messages_before_any_work(tmp_path, capsys):
    target = tiny_target(tmp_path / "t.tif")
    cases = [
        (["relax", "--n", "16", "--tol", "0"], "the relaxation tolerance must be > 0, got tol = 0.0"),
        (["relax", "--n", "16", "--tol", "nan"], "tol must be a finite number, got nan"),
        (["relax", "--n", "16", "--tol=-1"], "the relaxation tolerance must be > 0, got tol = -1.0"),
        (["relax", "--n", "16", "--thickness", "0"], "the film thickness must be > 0, got thickness = 0.0 m"),
        (["simulate", "--n", "16", "--threads", "-1"], "threads = -1 is outside the range (0 to 1024)"),
        (["simulate", "--heights", "1e300"], "heights = 1e+300 m is outside the physical range (1e-10 to 1e-05 m)"),
        (["simulate", "--heights", "10"], "10.0 m is outside the physical range (1e-10 to 1e-05 m): did you mean "
                                          "10e-9 (10 nm)?"),
        (["simulate", "--Ms", "580"], "did you mean 580e3 (580 kA/m)?"),
        (["fit", target, "--nz", "0"], "the number of cells across the film thickness must be > 0, got nz = 0"),
        (["fit", target, "--thickness", "0"], "the film thickness must be > 0, got thickness = 0.0 m"),
        (["fit", target, "--side", "both"], "side = 'both' is for mmrecon simulate"),
        (["fit", target, "--height", "5"], ("did you mean", "5 nm")),  # the measurement's or the option's hint
        (["demo", "--threads", "-2"], "threads = -2 is outside the range"),
    ]
    if not torch.cuda.is_available():
        cases.append((["relax", "--n", "16", "--device", "cuda"], "torch finds no CUDA device on this machine"))
    for arguments, message in cases:
        assert main([*arguments, "-o", str(tmp_path / "out" / "x.ovf"), "--quiet"]) == 2, arguments
        err = capsys.readouterr().err
        messages = message if isinstance(message, tuple) else (message,)
        assert err.startswith(f"mmrecon {arguments[0]}: error: "), (arguments, err)
        assert all(part in err for part in messages), (arguments, err)
        assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as done:
        main(["relax", "--device", "tpu"])
    assert done.value.code == 2 and "invalid choice: 'tpu'" in capsys.readouterr().err


def test_figures_magnitude_sequential_signed_centred_integer_iterations_table():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_mmrecon.workflows import figures

    grid = mm.Grid(nx=8, ny=8)
    image = np.linspace(-2.0, 1.0, 64).reshape(8, 8)
    fig, axes = plt.subplots(1, 4)
    figures.draw_map(fig, axes[0], image, grid, "Hz", "A/m", figures.is_signed("Hz"))
    figures.draw_map(fig, axes[1], np.abs(image), grid, "|H|", "A/m", figures.is_signed("|H|"))
    (signed,), (magnitude,) = axes[0].get_images(), axes[1].get_images()
    assert (signed.get_cmap().name, signed.get_clim()) == (figures.SIGNED_COLORMAP, (-2.0, 2.0))
    assert (magnitude.get_cmap().name, magnitude.get_clim()) == (figures.MAGNITUDE_COLORMAP, (0.0, 2.0))
    figures.draw_loss(axes[2], [1.0, 1e-2, 1e-5])
    figures.draw_table(axes[3], (["parameter", "fitted", "unit"], [["Ms", "5.8e+05", "A/m"]]), "converged")
    fig.canvas.draw()
    ticks = [tick for tick in axes[2].get_xticks() if 1 <= tick <= 3]
    assert ticks and all(float(tick).is_integer() for tick in ticks)
    assert axes[3].tables and axes[3].tables[0][1, 0].get_text().get_text() == "Ms"
    plt.close(fig)
