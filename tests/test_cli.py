"""The mmrecon console script, run as a user would (through its main function)."""

import numpy as np

import napari_mmrecon as mm
from napari_mmrecon.cli import main


def test_demo_writes_relaxed_state_stray_field_and_mfm(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--n", "48", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    nzz = float(text.split("Nzz =")[1].split()[0])
    assert 0.8 < nzz < 1.0
    m, grid = mm.read_ovf(out / "m_relaxed.ovf")
    assert m.shape == (1, 48, 48, 3) and grid.dx == 2e-9
    hz, pixel, meta = mm.read_tiff(out / "Hz_top_10nm.tif")
    assert hz.shape == (48, 48) and np.allclose(pixel, (2e-9, 2e-9), rtol=1e-6)
    assert meta["value_unit"] == "A/m" and meta["Ms"] == 5.8e5
    # the stray field in the file is the one of the relaxed state
    expected = mm.stray_field(m, grid, 5.8e5, 10e-9, side="top")[..., 2]
    np.testing.assert_allclose(hz, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    assert mm.read_tiff(out / "mfm_top_20nm.tif")[2]["value_unit"] == "Hz"
    assert (out / "demo.png").stat().st_size > 10_000


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
    assert main(["relax", str(bad), "-o", str(tmp_path / "x.ovf")]) == 2
    assert "bad.ovf" in capsys.readouterr().err
    assert main(["relax", "--n", "0"]) == 2
    assert "Grid nx must be a positive integer" in capsys.readouterr().err
