"""The mmrecon console script, run as a user would (through its main function)."""

import numpy as np

import napari_mmrecon as mm
from napari_mmrecon.cli import main


def test_demo_prints_demag_factors(capsys):
    assert main(["demo", "--n", "32"]) == 0
    out = capsys.readouterr().out
    nzz = float(out.split("Nzz =")[1].split()[0])
    assert 0.8 < nzz < 1.0
    assert "effective field of all terms" in out


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
