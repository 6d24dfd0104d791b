"""``unet_predict``: shapes, units and |m| = 1, padding and tiles, the mirror for D < 0, and the
messages for input it cannot take or outside its training ranges. The network here is a
random-init checkpoint (these are properties of the prediction path, not of the training);
the shipped weights are tested in test_learn_shipped.py."""

import warnings

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.learn import predict
from napari_mmrecon.backend.learn.recipe import DatasetRecipe
from napari_mmrecon.backend.learn.unet import UNet, checkpoint

HZ = mm.StrayFieldMeasurement(height=10e-9, side="top", component="z")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = UNet()
    with torch.no_grad():  # outputs of order 1, as a trained network gives, so float32 round-off stays small
        model.head.weight *= 100.0
    path = tmp_path_factory.mktemp("unet") / "random.pt"
    torch.save(checkpoint(model, {"recipe": DatasetRecipe().to_dict()}), path)
    return path


def _image(grid):
    return HZ.simulate(mm.textures.skyrmion(grid, radius=8e-9), grid, 5.8e5)


def test_prediction_has_the_grid_shape_unit_vectors_and_the_input_kind(weights):
    grid = mm.Grid(nx=37, ny=30, nz=2, dx=2e-9, dy=2e-9, dz=1e-9)
    image = _image(grid)
    m, info = mm.unet_predict(image, grid, HZ, weights=weights, return_info=True)
    assert isinstance(m, np.ndarray) and m.shape == (2, 30, 37, 3)
    assert np.allclose(np.linalg.norm(m, axis=-1), 1.0, atol=1e-12)
    assert np.array_equal(m[0], m[1])
    assert any("reflect-padded" in note for note in info.notes)
    assert any("D > 0 assumed" in note for note in info.notes)
    assert info.extrapolated == []
    mt = mm.unet_predict(torch.as_tensor(image), grid, HZ, weights=weights)
    assert isinstance(mt, torch.Tensor) and np.allclose(mt.numpy(), m)


def test_a_stack_averages_its_views_and_gain_and_offset_do_not_matter(weights):
    grid = mm.Grid(nx=32, ny=32, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
    image = _image(grid)
    bottom = mm.StrayFieldMeasurement(height=10e-9, side="bottom", component="z")
    lower = bottom.simulate(mm.textures.skyrmion(grid, radius=8e-9), grid, 5.8e5)
    one = mm.unet_predict(image, grid, HZ, weights=weights)
    other = mm.unet_predict(lower, grid, bottom, weights=weights)
    both = mm.unet_predict(np.stack([image, lower]), grid, [HZ, bottom], weights=weights)
    total = one + other
    length = np.linalg.norm(total, axis=-1, keepdims=True)
    settled = length[..., 0] > 0.1  # where the two nearly cancel, float32 round-off decides the direction
    assert settled.mean() > 0.9
    # float32 network: a batch of two runs other kernels than two of one (round-off ~1e-6, divided by |total|)
    assert np.allclose(both[settled], (total / length)[settled], atol=1e-4)
    assert np.allclose(mm.unet_predict(3.0 * image + 100.0, grid, HZ, weights=weights), one, atol=1e-5)


def test_negative_dmi_mirrors_the_prediction_of_the_other_side(weights):
    """A film with D < 0 is shown to the network as the mirrored film seen from the other side."""
    grid = mm.Grid(nx=32, ny=32, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
    image = _image(grid)
    bottom = mm.StrayFieldMeasurement(height=10e-9, side="bottom", component="z")
    positive = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
    mirrored = mm.unet_predict(image, grid, HZ, material=positive.replace(D=-3e-3), weights=weights)
    other_side = mm.unet_predict(image, grid, bottom, material=positive, weights=weights)
    assert np.allclose(mirrored, other_side * np.array([-1.0, -1.0, 1.0]), atol=1e-6)


def test_large_images_are_predicted_in_blended_tiles(weights, monkeypatch):
    monkeypatch.setattr(predict, "TILE", 32)
    monkeypatch.setattr(predict, "OVERLAP", 8)
    grid = mm.Grid(nx=80, ny=56, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
    m, info = mm.unet_predict(_image(grid), grid, HZ, weights=weights, return_info=True)
    assert m.shape == (1, 56, 80, 3) and np.all(np.isfinite(m))
    assert np.allclose(np.linalg.norm(m, axis=-1), 1.0, atol=1e-12)
    assert any("6 overlapping tiles of 32 x 32" in note for note in info.notes)


def test_outside_the_training_ranges_the_prediction_is_marked_extrapolated(weights):
    grid = mm.Grid(nx=32, ny=32, nz=1, dx=8e-9, dy=8e-9, dz=1e-9)
    mfm = mm.MFMMeasurement(lift_height=50e-9, side="top", tip=mm.PointDipoleTip(moment=1e-16))
    image = mfm.simulate(mm.textures.skyrmion(grid, radius=40e-9), grid, 5.8e5)
    material = mm.Material(Ms=2.5e6, A=1.5e-11, Ku=8e6, D=3e-3)
    with pytest.warns(mm.UNetExtrapolationWarning) as record:
        _, info = mm.unet_predict(image, grid, mfm, material=material, weights=weights, return_info=True)
    text = " ".join(info.extrapolated)
    for expected in ("pixel size 8 nm is outside the training range 1-4 nm", "height 50 nm", "Ms 2.5 MA/m"):
        assert expected in text
    assert "pixel size 8 nm" in str(record[0].message)


@pytest.mark.parametrize("change, match", [
    ({"images": np.full((32, 32), np.nan)}, "NaN or infinite"),
    ({"images": np.zeros((30, 32))}, r"expected \(ny, nx\)"),
    ({"measurement": mm.StrayFieldMeasurement(height=10e-9, side="top", component="x")}, "takes H_z images"),
    ({"measurement": mm.MFMMeasurement(lift_height=10e-9, side="top", tip=mm.PointMonopoleTip(charge=1e-9))},
     "point-dipole tip"),
    ({"measurement": [HZ, HZ]}, "give one per image"),
    ({"weights": "missing.pt"}, "U-Net weights not found: missing.pt"),
])
def test_bad_input_names_the_problem(weights, change, match):
    grid = mm.Grid(nx=32, ny=32, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
    kwargs = {"images": _image(grid), "measurement": HZ, "weights": weights, **change}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=match):
            mm.unet_predict(kwargs["images"], grid, kwargs["measurement"], weights=kwargs["weights"])


def test_a_file_that_is_not_a_checkpoint_is_refused_by_name(tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint")
    grid = mm.Grid(nx=32, ny=32, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
    with pytest.raises(ValueError, match="corrupt.pt is not a readable U-Net checkpoint"):
        mm.unet_predict(_image(grid), grid, HZ, weights=bad)
