"""Loss scans and noise studies: minima where the truth is, tables that add up, and the same results
serially, in local processes and on a Dask cluster."""

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.backend.inverse.studies import (
    coverage_table,
    noise_study,
    parallel_map,
    sensitivity,
)

GRID = mm.Grid(nx=24, ny=24, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
TRUE = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3.3e-3)
MEASUREMENT = mm.StrayFieldMeasurement(height=6e-9)
TRUTH = {"Ms": 5.8e5, "A": 1.5e-11, "Ku": 8e5, "D": 3.3e-3}


@pytest.fixture(scope="module")
def target():
    m = mm.relax(mm.textures.skyrmion(GRID, radius=12e-9), GRID, TRUE, tol=1e-9)
    return m, MEASUREMENT.simulate(m, GRID, TRUE.Ms)


def _square(x):
    return x * x


def test_parallel_map_keeps_order_locally_and_on_dask():
    tasks = list(range(7))
    expected = [t * t for t in tasks]
    assert parallel_map(_square, tasks, workers=1) == expected
    assert parallel_map(_square, tasks, workers=2) == expected
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        assert parallel_map(_square, tasks, client=client) == expected


def test_sensitivity_scans_are_minimal_at_the_truth(target):
    m, clean = target
    result = sensitivity(clean, GRID, MEASUREMENT, TRUE, m, names=("Ms", "D"), pairs=[("Ms", "D")], span=0.04,
                         points=5, workers=1)
    k = 2
    for name, scan in result.scans.items():
        assert scan[k] < 1e-12 and np.all(scan[np.arange(5) != k] > 1e-6), name
    # Ms scales the image (misfit (offset)^2) and also changes the demag energy, hence the texture:
    # more sensitive than a pure rescaling
    assert np.all(result.scans["Ms"] >= 0.99 * result.offsets ** 2)
    curvature = result.curvature()
    assert curvature["Ms"] > 2.0 and curvature["D"] > 0
    grid_map = result.maps[("Ms", "D")]
    assert grid_map.shape == (5, 5) and grid_map[k, k] < 1e-12
    np.testing.assert_allclose(grid_map[:, k], result.scans["Ms"], rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(grid_map[k, :], result.scans["D"], rtol=1e-12)


def test_noise_study_table(target):
    m, clean = target
    rows = noise_study(clean, GRID, MEASUREMENT, {"Ku": 8e5, "D": 3.3e-3}, TRUE.replace(Ku=8.4e5, D=3.2e-3),
                       noise_levels=(0.05, 0.2), seeds=(0, 1), workers=1, fit=("Ku", "D"), m0=m, bias="none")
    assert [(r["noise"], r["seed"]) for r in rows] == [(0.05, 0), (0.05, 1), (0.2, 0), (0.2, 1)]
    for row in rows:
        assert row["noise_sigma"] == pytest.approx(row["noise"] * np.std(clean), rel=0.15)
        for name in ("Ku", "D"):
            assert row[f"{name}_error"] == pytest.approx(row[name] / TRUTH[name] - 1)
            assert row[f"{name}_covered"] == (abs(row[name] - TRUTH[name]) <= row[f"{name}_sigma"])
    table = coverage_table(rows, ("Ku", "D"))
    assert [entry["noise"] for entry in table] == [0.05, 0.2]
    # four times the noise: about four times the error bar
    ratio = table[1]["D_relative_sigma"] / table[0]["D_relative_sigma"]
    assert 3 < ratio < 5.5
    with pytest.raises(ValueError, match="truth"):
        noise_study(clean, GRID, MEASUREMENT, {"Ku": 8e5}, TRUE, fit=("Ku", "D"))
