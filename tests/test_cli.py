"""The mmrecon console script, run as a user would (through its main function)."""

import numpy as np

import napari_mmrecon as mm
from napari_mmrecon.cli import main


def test_demo_writes_state_fields_mfm_and_figure(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "bundled relaxed Neel skyrmion lattice" in text and str(out.resolve()) in text
    m, grid, header = mm.read_ovf(out / "m_relaxed.ovf", return_header=True)
    assert m.shape == (1, 128, 128, 3) and grid.dx == 2e-9
    assert any(line.startswith("mmrecon material: ") for line in header["desc"])
    names = sorted(path.name for path in out.iterdir())
    assert names == sorted(["m_relaxed.ovf", "figure.png"] + [f"{q}_{s}_{h}nm.tif" for q in ("Hz", "mfm_df")
                                                              for s in ("top", "bottom") for h in (10, 20)])
    hz, pixel, meta = mm.read_tiff(out / "Hz_bottom_20nm.tif")
    assert hz.shape == (128, 128) and np.allclose(pixel, (2e-9, 2e-9), rtol=1e-6)
    assert (meta["quantity"], meta["unit"], meta["side"], meta["height"]) == ("Hz", "A/m", "bottom", 2e-8)
    assert meta["material"]["Ms"] == 5.8e5 and meta["relaxed"] is True
    expected = mm.stray_field(m, grid, 5.8e5, 20e-9, side="bottom")[..., 2]
    np.testing.assert_allclose(hz, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    assert mm.read_tiff(out / "mfm_df_top_10nm.tif")[2]["unit"] == "Hz"
    assert (out / "figure.png").stat().st_size > 10_000


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
