"""The mmrecon console script, run as a user would (through its main function)."""

import json

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.cli import main
from napari_mmrecon.fit_output import FILES as FIT_FILES


def test_demo_writes_state_fields_mfm_and_figure(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "bundled relaxed Neel skyrmion lattice" in text and str(out.resolve()) in text
    m, grid, header = mm.read_ovf(out / "m_relaxed.ovf", return_header=True)
    assert m.shape == (1, 128, 128, 3) and grid.dx == 2e-9
    assert any(line.startswith("mmrecon material: ") for line in header["desc"])
    names = sorted(path.name for path in out.iterdir())
    assert names == sorted(["m_relaxed.ovf", "figure.png", "fit"] + [f"{q}_{s}_{h}nm.tif" for q in ("Hz", "mfm_df")
                                                                     for s in ("top", "bottom") for h in (10, 20)])
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
