"""The one metadata schema: every value object's ``to_dict`` / ``from_dict`` round trip, JSON
readiness, the schema version check, and records written before the schema was versioned."""

import json

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.backend.forward.measurement import measurement_from_dict
from napari_mmrecon.backend.forward.mfm import tip_from_dict
from napari_mmrecon.backend.runtime.records import SCHEMA_VERSION, check_schema

GRID = mm.Grid(nx=12, ny=10, nz=2, dx=2e-9, dy=1.5e-9, dz=1e-9, pbc=True, pbc_images=3, device="cpu")

OBJECTS = [
    GRID,
    mm.PointDipoleTip(moment=2e-16, direction=(0.0, 0.6, 0.8)),
    mm.PointMonopoleTip(charge=-3e-9),
    mm.Cantilever(k=2.0, f0=60e3, Q=300.0),
    mm.StrayFieldMeasurement(height=7e-9, side="bottom", component="x"),
    mm.StrayFieldMeasurement(height=[5e-9, 9e-9], component=(0.0, 0.6, 0.8)),
    mm.MFMMeasurement(lift_height=12e-9, tip=mm.PointMonopoleTip(charge=2e-9),
                      cantilever=mm.Cantilever(k=1.5), quantity="phase"),
]


def _read(obj, record):
    if isinstance(obj, (mm.StrayFieldMeasurement, mm.MFMMeasurement)):
        return measurement_from_dict(record)
    if isinstance(obj, (mm.PointDipoleTip, mm.PointMonopoleTip)):
        return tip_from_dict(record)
    return type(obj).from_dict(record)


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: type(o).__name__)
def test_records_survive_json(obj):
    record = json.loads(json.dumps(obj.to_dict()))
    back = _read(obj, record)
    assert back.to_dict() == obj.to_dict()
    assert type(back) is type(obj)


def test_material_record_keeps_maps_and_signs():
    Ms = np.full(GRID.shape, 4e5)
    Ms[0, 0, 0] = 0.0
    material = mm.Material(Ms=Ms, A=1e-11, Ku=3e5, D=-1e-3, alpha=0.1, Ku_axis=(0, 1, 1))
    record = material.to_dict()
    assert isinstance(record["Ms"], np.ndarray) and record["Ms"] is not material.Ms
    back = mm.Material.from_dict(record)
    np.testing.assert_array_equal(back.Ms, Ms)
    assert back.D == -1e-3 and back.Ku_axis == pytest.approx((0, 2 ** -0.5, 2 ** -0.5))
    partial = mm.Material.from_dict({"Ms": 1e5}, default=mm.Material(A=2e-11))
    assert (partial.Ms, partial.A) == (1e5, 2e-11)


def test_fit_result_record_round_trip():
    grid = mm.Grid(nx=24, ny=24, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu")
    truth = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
    m = mm.relax(mm.textures.skyrmion(grid, radius=5e-9), grid, truth, tol=1e-6)
    measurement = mm.StrayFieldMeasurement(height=5e-9)
    target = measurement.simulate(m, grid, truth.Ms)
    result = mm.fit_parameters(target, grid, measurement, truth.replace(Ms=6e5), fit=("Ms",), m0=m, bias="none",
                               max_iter=5)
    record = json.loads(json.dumps(result.to_dict()))
    assert record["units"] == {"Ms": "A/m"} and record["measurement"]["height"] == 5e-9
    back = mm.FitResult.from_dict(record, m=result.m)
    assert back.values == result.values and back.material.to_dict() == result.material.to_dict()
    assert back.converged == result.converged and back.message == result.message
    assert back.to_dict() == record


def test_records_of_a_newer_schema_are_refused():
    assert check_schema(SCHEMA_VERSION) == SCHEMA_VERSION
    for reader, record in ((mm.Grid.from_dict, GRID.to_dict()), (mm.Material.from_dict, {"Ms": 1e5}),
                           (measurement_from_dict, OBJECTS[4].to_dict())):
        with pytest.raises(ValueError, match="newer than this napari-mmrecon reads"):
            reader(record, SCHEMA_VERSION + 1)
    for bad in (0, "1", True, 1.5):
        with pytest.raises(ValueError, match="invalid metadata schema version"):
            check_schema(bad)


def test_incomplete_or_foreign_records_are_named():
    with pytest.raises(ValueError, match="Grid record lacks dx, dy"):
        mm.Grid.from_dict({"nx": 3, "ny": 3, "nz": 1, "dz": 1e-9})
    with pytest.raises(ValueError, match="unknown measurement kind 'NV'"):
        measurement_from_dict({"kind": "NV", "height": 1e-8})
    with pytest.raises(ValueError, match="must be a dict, got list"):
        mm.Cantilever.from_dict([3.0, 75e3, 200.0])


def test_records_written_before_versioning_still_read():
    """fit.json / TIFF metadata of earlier releases: plain dicts without version tags."""
    old = {"kind": "MFM", "height": 6e-9, "side": "top", "quantity": "phase",
           "tip": {"model": "dipole", "moment": 1e-16, "direction": [0.0, 0.0, 1.0]},
           "cantilever": {"k": 3.0, "f0": 75e3, "Q": 200.0}}
    measurement = measurement_from_dict(old)
    assert measurement == mm.MFMMeasurement(lift_height=6e-9, quantity="phase")
    assert measurement.to_dict() == old
