"""Tests of the TIFF reader and writer (napari_mmrecon.io.tiff)."""

import json
import re

import numpy as np
import pytest
import tifffile
import torch

from napari_mmrecon.io.tiff import TiffError, accepts_tiff, read_tiff, write_tiff

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


# ------------------------------------------------------------ damaged tags


def edit_tag(path, name, value=None, count=None):
    """Overwrite the value (an inline LONG or SHORT) or the count of tag ``name`` of the first page."""
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages.first.tags[name]
        order = tif.byteorder
    raw = bytearray(path.read_bytes())
    if count is not None:
        raw[tag.offset + 4 : tag.offset + 8] = np.array(count, dtype=order + "u4").tobytes()
    if value is not None:
        size = {3: 2, 4: 4}[int(tag.dtype)]
        raw[tag.valueoffset : tag.valueoffset + size] = np.array(value, dtype=f"{order}u{size}").tobytes()
    path.write_bytes(bytes(raw))
    return path


@pytest.fixture(params=["image", "stack"])
def written(request, tmp_path):
    """A file of write_tiff: a (30, 40) image or a (3, 30, 40) stack."""
    shape = (30, 40) if request.param == "image" else (3, 30, 40)
    path = tmp_path / f"{request.param}.tif"
    write_tiff(path, random_image(shape), 2e-9, metadata={"a": 1})
    return path


@pytest.mark.parametrize("name", ["ImageWidth", "ImageLength"])
def test_huge_declared_size_raises_before_allocating(written, monkeypatch, name):
    edit_tag(written, name, value=2**32 - 1)
    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", lambda *args, **kwargs: pytest.fail("pixels read"))
    with pytest.raises(TiffError, match=re.escape(written.name) + r".*GiB as float64, more than the 4 GiB limit"):
        read_tiff(written)


@pytest.mark.parametrize("name", ["ImageWidth", "ImageLength"])
def test_zero_width_or_height_raises(written, name):
    edit_tag(written, name, value=0)
    with pytest.raises(TiffError, match=re.escape(written.name)):
        read_tiff(written)


@pytest.mark.parametrize("compression", [8, 5, 32946, 7, 12345])
def test_changed_compression_tag_raises_tiff_error(written, compression):
    """zlib.error, missing codecs and unknown codes all come out as TiffError."""
    edit_tag(written, "Compression", value=compression)
    with pytest.raises(TiffError, match=re.escape(written.name)):
        read_tiff(written)


@pytest.mark.parametrize("name, count", [("ImageLength", 2), ("ImageWidth", 3), ("StripOffsets", 5)])
def test_changed_tag_count_raises_tiff_error(written, name, count):
    """A count of 2 on ImageLength made tifffile raise TypeError."""
    edit_tag(written, name, count=count)
    with pytest.raises(TiffError, match=re.escape(written.name)):
        read_tiff(written)


@pytest.mark.parametrize("bits", [7, 12, 64])
def test_changed_bits_per_sample_raises_tiff_error(written, bits):
    edit_tag(written, "BitsPerSample", value=bits)
    with pytest.raises(TiffError, match=re.escape(written.name)):
        read_tiff(written)


@pytest.mark.parametrize(
    "resolution, kwargs, shown",
    [
        ((4e9, 4e9), {"imagej": True, "metadata": {"unit": "nm"}}, "2.5e-19 m x 2.5e-19 m"),
        ((1.0, 4e-3), {"resolutionunit": "CENTIMETER"}, "2.5 m x 0.01 m"),
        ((1e9, 1e9), {"resolutionunit": "MICROMETER"}, "1e-15 m x 1e-15 m"),
    ],
)
def test_implausible_pixel_size_raises_giving_the_value(tmp_path, resolution, kwargs, shown):
    path = tmp_path / "tiny.tif"
    tifffile.imwrite(path, np.zeros((3, 4), np.float32), resolution=resolution, **kwargs)
    with pytest.raises(TiffError, match=re.escape(f"tiny.tif: implausible pixel size {shown} (dy x dx)")):
        read_tiff(path)


def test_damaged_resolution_tag_raises_tiff_error(tmp_path):
    path = tmp_path / "res.tif"
    write_tiff(path, np.zeros((3, 4)), 1e-9)
    edit_tag(path, "XResolution", count=2)
    with pytest.raises(TiffError, match="res.tif: damaged resolution tags"):
        read_tiff(path)


def test_complex_pixels_raise_tiff_error(tmp_path):
    path = tmp_path / "complex.tif"
    tifffile.imwrite(path, np.zeros((3, 4), np.complex64))
    with pytest.raises(TiffError, match="complex.tif: unsupported pixel type complex64"):
        read_tiff(path)


# ------------------------------------------------------------ accepts_tiff


def foreign_tiffs(folder):
    """Files a TIFF reader of napari or another plugin may know, but read_tiff is not for."""
    tifffile.imwrite(folder / "rgb.tif", np.zeros((5, 6, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(folder / "alpha.tif", np.zeros((5, 6, 2), np.uint8), photometric="minisblack",
                     extrasamples=["unassalpha"])
    tifffile.imwrite(folder / "series.tif", np.zeros((5, 6), np.float32))
    tifffile.imwrite(folder / "series.tif", np.zeros((7, 8), np.float32), append=True)
    tifffile.imwrite(folder / "time.tif", np.zeros((4, 5, 6), np.float32), imagej=True, metadata={"axes": "TYX"})
    tifffile.imwrite(folder / "channels.ome.tif", np.zeros((2, 5, 6), np.uint16), ome=True,
                     metadata={"axes": "CYX"})
    tifffile.imwrite(folder / "pages.tif", np.zeros((4, 5, 6), np.uint16), photometric="minisblack")
    tifffile.imwrite(folder / "complex.tif", np.zeros((5, 6), np.complex64))
    (folder / "png.tif").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (folder / "notes.tif").write_text("not an image")
    return sorted(folder.iterdir())


def own_tiffs(folder):
    """Files read_tiff is for: real (ny, nx) images and write_tiff's z-stacks."""
    write_tiff(folder / "image.tif", random_image((5, 6)), 1e-9)
    write_tiff(folder / "stack.tif", random_image((3, 5, 6)), 1e-9)
    tifffile.imwrite(folder / "plain.tif", np.zeros((5, 6), np.uint16))
    tifffile.imwrite(folder / "tiled.tif", np.zeros((32, 32), np.float32), tile=(16, 16), compression="zlib")
    tifffile.imwrite(folder / "big.tif", np.zeros((5, 6), np.float32), bigtiff=True)
    tifffile.imwrite(folder / "motorola.tif", np.zeros((5, 6), ">f4"), byteorder=">")
    tifffile.imwrite(folder / "one.ome.tif", np.zeros((5, 6), np.uint16), ome=True)
    return sorted(folder.iterdir())


def test_accepts_tiff_takes_images_and_stacks_and_declines_other_tiffs(tmp_path):
    (tmp_path / "own").mkdir()
    (tmp_path / "foreign").mkdir()
    for path in own_tiffs(tmp_path / "own"):
        assert accepts_tiff(path), path.name
        read_tiff(path)
    for path in foreign_tiffs(tmp_path / "foreign"):
        assert not accepts_tiff(path), path.name
    assert not accepts_tiff(tmp_path / "absent.tif")
    assert not accepts_tiff(tmp_path)


def test_accepts_tiff_reads_no_pixel_data(tmp_path):
    """Single-page files cut where their pixel data start are judged as the whole files."""
    (tmp_path / "own").mkdir()
    (tmp_path / "foreign").mkdir()
    own, foreign = own_tiffs(tmp_path / "own"), foreign_tiffs(tmp_path / "foreign")
    judged = []
    for path in own + foreign:
        if path.read_bytes()[:4] not in (b"II*\x00", b"MM\x00*", b"II+\x00"):
            continue
        with tifffile.TiffFile(path) as tif:
            if len(tif.pages) > 1:  # later pages' headers follow the first page's pixels
                continue
            first_pixel = min(tif.pages.first.dataoffsets)
        cut = path.with_name("cut_" + path.name)
        cut.write_bytes(path.read_bytes()[:first_pixel])
        assert accepts_tiff(cut) == (path in own), path.name
        judged.append(path.name)
    assert {"rgb.tif", "alpha.tif", "complex.tif", "image.tif", "plain.tif", "big.tif"} <= set(judged)


@pytest.mark.parametrize("keep", [8, 20, 100])
def test_accepts_tiff_takes_damaged_tiffs_so_that_read_tiff_reports_them(tmp_path, keep):
    good = tmp_path / "good.tif"
    write_tiff(good, random_image((20, 30)), 1e-9)
    damaged = tmp_path / "damaged.tif"
    damaged.write_bytes(good.read_bytes()[:keep])
    assert accepts_tiff(damaged)
    with pytest.raises(TiffError, match="damaged.tif"):
        read_tiff(damaged)
