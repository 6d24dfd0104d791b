"""Tests of the TIFF reader and writer (napari_mmrecon.io.tiff)."""

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_mmrecon.io.tiff import TiffError, read_tiff, write_tiff

FLOAT32_RTOL = 2e-7


def random_image(shape, seed=0):
    return np.random.default_rng(seed).normal(loc=0.5, scale=2.0, size=shape)


def test_round_trip_image_pixel_size_values_metadata(tmp_path):
    image = random_image((6, 9))
    metadata = {"value_units": "rad", "Ms": 8e5, "angles": [0.0, 30.5], "nested": {"ok": True}}
    path = tmp_path / "phase.tif"
    write_tiff(path, image, (3e-9, 2e-9), metadata=metadata)
    back, pixel_size, meta = read_tiff(path)
    assert back.dtype == np.float64 and back.shape == (6, 9)
    np.testing.assert_array_equal(back, image.astype(np.float32))
    np.testing.assert_allclose(pixel_size, (3e-9, 2e-9), rtol=FLOAT32_RTOL)
    assert meta == metadata


def test_stack_round_trip_and_imagej_calibration(tmp_path):
    stack = random_image((4, 5, 7), seed=1)
    path = tmp_path / "stack.tif"
    write_tiff(path, torch.from_numpy(stack), 0.37e-9)
    back, pixel_size, meta = read_tiff(path)
    np.testing.assert_array_equal(back, stack.astype(np.float32))
    np.testing.assert_allclose(pixel_size, (0.37e-9, 0.37e-9), rtol=FLOAT32_RTOL)
    assert meta == {}
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["unit"] == "nm"
        assert tif.imagej_metadata["slices"] == 4
        assert tif.pages.first.dtype == np.float32


def test_resolution_tags_are_pixels_per_nm_with_x_and_y_not_swapped(tmp_path):
    path = tmp_path / "rect.tif"
    write_tiff(path, np.zeros((3, 4)), (4e-9, 2e-9))
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages.first.tags
        x_numerator, x_denominator = tags["XResolution"].value
        y_numerator, y_denominator = tags["YResolution"].value
        assert tif.imagej_metadata["unit"] == "nm"
    assert x_numerator / x_denominator == pytest.approx(0.5)
    assert y_numerator / y_denominator == pytest.approx(0.25)


@pytest.mark.parametrize("unit", ["um", "micron", "m", "pm"])
def test_other_units_round_trip(tmp_path, unit):
    path = tmp_path / f"{unit}.tif"
    write_tiff(path, np.ones((2, 3)), (1.5e-9, 2.5e-9), unit=unit)
    _, pixel_size, _ = read_tiff(path)
    np.testing.assert_allclose(pixel_size, (1.5e-9, 2.5e-9), rtol=FLOAT32_RTOL)
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["unit"] == unit


def test_plain_tiff_without_resolution_has_no_pixel_size(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.arange(12, dtype=np.uint16).reshape(3, 4))
    image, pixel_size, meta = read_tiff(path)
    assert pixel_size is None and meta == {}
    assert image.dtype == np.float64
    np.testing.assert_array_equal(image, np.arange(12).reshape(3, 4))


def test_plain_tiff_with_centimetre_resolution_unit(tmp_path):
    path = tmp_path / "cm.tif"
    tifffile.imwrite(path, np.zeros((3, 4), np.float32), resolution=(1e4, 5e3), resolutionunit="CENTIMETER")
    _, pixel_size, _ = read_tiff(path)
    np.testing.assert_allclose(pixel_size, (2e-6, 1e-6), rtol=FLOAT32_RTOL)


def test_imagej_pixel_unit_and_free_text_info(tmp_path):
    path = tmp_path / "fiji.tif"
    tifffile.imwrite(path, np.zeros((3, 4), np.float32), imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "pixel", "Info": "Acquired with some microscope"})
    _, pixel_size, meta = read_tiff(path)
    assert pixel_size is None
    assert meta == {"info": "Acquired with some microscope"}


@pytest.mark.parametrize("pixel_size", [0.0, -1e-9, float("nan"), float("inf"), (1e-9, 0.0), (1e-9,), "big"])
def test_bad_pixel_size_raises_naming_pixel_size(tmp_path, pixel_size):
    with pytest.raises(ValueError, match="pixel_size"):
        write_tiff(tmp_path / "bad.tif", np.zeros((3, 4)), pixel_size)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "image, kwargs, message",
    [
        (np.zeros(5), {}, "shape"),
        (np.zeros((2, 2, 3, 4)), {}, "shape"),
        (np.zeros((3, 4), complex), {}, "real"),
        (np.zeros((3, 4)), {"unit": "furlong"}, "unit"),
        (np.zeros((3, 4)), {"metadata": {"when": object()}}, "JSON"),
        (np.zeros((3, 4)), {"metadata": [1, 2]}, "dict"),
    ],
)
def test_bad_arguments_raise_value_error_and_write_nothing(tmp_path, image, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_tiff(tmp_path / "bad.tif", image, 1e-9, **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape, keep", [((40, 60), 0.5), ((3, 10, 12), 0.6), ((3, 10, 12), 0.02)])
def test_truncated_tiff_raises_tiff_error_naming_file(tmp_path, shape, keep):
    good = tmp_path / "good.tif"
    write_tiff(good, random_image(shape), 1e-9, metadata={"a": 1})
    raw = good.read_bytes()
    path = tmp_path / "cut.tif"
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(TiffError, match="cut.tif") as info:
        read_tiff(path)
    assert isinstance(info.value, ValueError)


def test_not_a_tiff_raises_tiff_error(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text(json.dumps({"not": "an image"}))
    with pytest.raises(TiffError, match="notes.tif"):
        read_tiff(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.tif"):
        read_tiff(tmp_path / "absent.tif")


def test_overwrite_replaces_file_without_leftovers(tmp_path):
    path = tmp_path / "img.tif"
    write_tiff(path, np.zeros((3, 4)), 1e-9)
    write_tiff(path, np.ones((5, 6)), 2e-9, metadata={"v": 2})
    image, pixel_size, meta = read_tiff(path)
    assert image.shape == (5, 6) and meta == {"v": 2}
    np.testing.assert_allclose(pixel_size, (2e-9, 2e-9), rtol=FLOAT32_RTOL)
    assert [p.name for p in tmp_path.iterdir()] == ["img.tif"]
