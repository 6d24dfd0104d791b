"""Every bad input gets a ValueError naming the argument and what was expected."""

import numpy as np
import pytest

import napari_mmrecon as mm

GRID = mm.Grid(nx=4, ny=3, nz=1)
MAT = mm.Material(Ms=5e5, A=1e-11)


@pytest.mark.parametrize("field, value", [("nx", 0), ("ny", -2), ("nz", 1.5), ("dx", 0.0), ("dy", -1e-9),
                                          ("dz", float("nan"))])
def test_grid_non_positive_sizes(field, value):
    kwargs = dict(nx=4, ny=3, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
    kwargs[field] = value
    with pytest.raises(ValueError, match=f"Grid {field} must be a positive (integer|length)"):
        mm.Grid(**kwargs)


def test_magnetization_wrong_shape():
    with pytest.raises(ValueError, match=r"m has shape \(1, 4, 3, 3\); expected \(nz, ny, nx, 3\)"):
        mm.energy(np.ones((1, 4, 3, 3)), GRID, MAT)


def test_magnetization_wrong_shape_not_broadcast():
    # A single vector must not be silently broadcast over the grid.
    with pytest.raises(ValueError, match="m has shape"):
        mm.effective_field(np.array([0.0, 0.0, 1.0]), GRID, MAT)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_magnetization_nan_or_inf(bad):
    m = mm.textures.uniform(GRID)
    m[0, 1, 1, 0] = bad
    with pytest.raises(ValueError, match="m contains NaN or inf"):
        mm.energy(m, GRID, MAT)


@pytest.mark.parametrize("name", ["Ms", "A", "Ku"])
def test_negative_material_parameters(name):
    with pytest.raises(ValueError, match=f"Material {name} must be >= 0"):
        mm.Material(**{name: -1.0})


def test_zero_vector_in_magnetic_cell():
    m = mm.textures.uniform(GRID)
    m[0, 2, 3] = 0.0
    with pytest.raises(ValueError, match=r"m has 1 zero vector\(s\) in magnetic cells"):
        mm.energy(m, GRID, MAT)


def test_zero_vector_in_vacuum_cell_is_fine():
    m = mm.textures.uniform(GRID)
    m[0, 2, 3] = 0.0
    Ms = np.full(GRID.shape, 5e5)
    Ms[0, 2, 3] = 0.0
    assert np.isfinite(mm.energy(m, GRID, MAT.replace(Ms=Ms))["total"])


def test_material_map_of_wrong_shape():
    with pytest.raises(ValueError, match=r"Material Ms has shape \(3, 4\); expected a scalar or a \(1, 3, 4\) map"):
        mm.energy(mm.textures.uniform(GRID), GRID, MAT.replace(Ms=np.ones((3, 4))))


def test_external_field_of_wrong_shape():
    with pytest.raises(ValueError, match=r"external_field has shape \(2,\); expected a 3-vector"):
        mm.energy(mm.textures.uniform(GRID), GRID, MAT, external_field=[1.0, 2.0])


def test_bias_field_nan():
    bias = np.zeros(GRID.vector_shape)
    bias[0, 0, 0, 2] = np.nan
    with pytest.raises(ValueError, match="bias_field contains NaN"):
        mm.energy(mm.textures.uniform(GRID), GRID, MAT, bias_field=bias)


def test_texture_arguments():
    with pytest.raises(ValueError, match="radius must be a positive length"):
        mm.textures.skyrmion(GRID, radius=-1e-9)
    with pytest.raises(ValueError, match="direction must be a non-zero 3-vector"):
        mm.textures.uniform(GRID, (0, 0, 0))
