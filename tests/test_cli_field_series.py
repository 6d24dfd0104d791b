"""``mmrecon fit IMG1.tif IMG2.tif --fields H1,H2``: a field series from the command line."""

import json

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.cli import build_parser, main

GRID = mm.Grid(nx=40, ny=40, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
TRUE = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
FIELDS = (0.0, 60e3)


def series_targets(tmp_path) -> list:
    """Hz 5 nm above a skyrmion relaxed at each of ``FIELDS``, as TIFFs; the zero-field state as OVF."""
    m = mm.relax(mm.textures.skyrmion(GRID, radius=7e-9), GRID, TRUE, tol=1e-10)
    mm.write_ovf(tmp_path / "start.ovf", m, GRID)
    paths = []
    for i, h in enumerate(FIELDS):
        state = mm.relax(m, GRID, TRUE, external_field=(0.0, 0.0, h), tol=1e-10)
        hz = mm.StrayFieldMeasurement(height=5e-9).simulate(state, GRID, TRUE.Ms)
        paths.append(str(tmp_path / f"hz{i}.tif"))
        mm.write_tiff(paths[-1], hz, 1e-9, metadata={"quantity": "Hz", "unit": "A/m", "side": "top", "height": 5e-9,
                                                     "grid": {"nz": 1, "dz": 1e-9}})
    return paths


def test_fit_a_field_series_end_to_end(tmp_path, capsys):
    paths = series_targets(tmp_path)
    out = tmp_path / "series"
    assert main(["fit", *paths, "--fields", "0,60e3", "--Ku", "8.4e5", "--fit", "Ku", "--m0",
                 str(tmp_path / "start.ovf"), "--bias", "none", "--max-iter", "6", "-o", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "field-series fit of 2 images at H_z = 0, 60000 A/m" in text and "converged" in text
    assert sorted(p.name for p in out.iterdir()) == sorted(["fit.json", "fit_table.tsv", "simulated.tif",
                                                           "residual.tif", "m_fitted_0.ovf", "m_fitted_1.ovf"])
    record = json.loads((out / "fit.json").read_text())
    assert record["values"]["Ku"] == pytest.approx(TRUE.Ku, rel=1e-4) and record["start"] == {"Ku": 8.4e5}
    assert record["fields"] == [[0.0, 0.0, 0.0], [0.0, 0.0, 60e3]] and record["targets"] == ["hz0", "hz1"]
    assert record["radii"][0][0] > record["radii"][1][0]  # the field shrinks the skyrmion
    simulated = mm.read_tiff(out / "simulated.tif")[0]
    assert simulated.shape == (2, 40, 40)
    for i, path in enumerate(paths):
        np.testing.assert_allclose(simulated[i], mm.read_tiff(path)[0], atol=1e-3 * np.abs(simulated).max())


def test_field_series_errors_are_messages(tmp_path, capsys):
    image = np.random.default_rng(1).normal(size=(16, 16))
    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f"t{i}.tif"))
        mm.write_tiff(paths[-1], image, 1e-9, metadata={"quantity": "Hz", "unit": "A/m", "side": "top",
                                                         "height": 5e-9})
    cases = [
        ([*paths], "give each one's applied field with --fields"),
        ([*paths, "--fields", "0,1e4,2e4"], "--fields gives 3 fields for 2 images"),
        ([*paths, "--fields", "0,1e4", "--field", "1e4"], "not both"),
        ([*paths, "--fields", "0,1e9"], "outside the physical range"),
    ]
    for arguments, message in cases:
        assert main(["fit", *arguments, "-o", str(tmp_path / "out"), "--quiet"]) == 2, arguments
        assert message in capsys.readouterr().err, arguments
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        main(["fit", *paths, "--fields", "0,x"])
    assert "expected comma-separated numbers, got '0,x'" in capsys.readouterr().err
    args = build_parser().parse_args(["fit", "a.tif", "b.tif", "--fields=-6e4,6e4"])
    assert args.targets == ["a.tif", "b.tif"] and args.fields == (-6e4, 6e4)

