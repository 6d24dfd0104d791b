"""Measured-image preparation: the new levelling steps against exact answers, the force-gradient
conversions against DESIGN.md section 8, and the recorded pipeline (replay, input untouched, bad
steps named)."""

import json
import math
from importlib.resources import files

import numpy as np
import pytest
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.measured import imageprep as ip
from napari_mmrecon.backend.measured.preparation import prepare_image

RNG = np.random.default_rng(7)
NOISE = RNG.standard_normal((48, 64))
CANTILEVER = mm.Cantilever(k=2.8, f0=70e3, Q=250.0)


def polynomial_surface(order: int, shape=(48, 64), seed: int = 0) -> np.ndarray:
    """A random 2-D polynomial of total degree ``order`` in pixel coordinates (scaled to O(10))."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:shape[0], 0:shape[1]] / 32.0
    return sum(rng.uniform(-10, 10) * x**i * y**(total - i) for total in range(order + 1) for i in range(total + 1))


# ----------------------------------------------------------------------------- levelling


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_polynomial_level_removes_a_polynomial_of_its_degree_to_rounding(order):
    surface = polynomial_surface(order)
    assert np.abs(ip.polynomial_level(surface, order)).max() < 1e-10 * np.abs(surface).max()
    np.testing.assert_allclose(ip.polynomial_level(NOISE + surface, order), ip.polynomial_level(NOISE, order),
                               atol=1e-9)
    if order < 5:  # one degree more is not removed
        assert np.abs(ip.polynomial_level(polynomial_surface(order + 1, seed=1), order)).max() > 1e-3


def test_polynomial_level_fits_the_masked_background_only():
    y, x = np.mgrid[0:48, 0:64]
    feature = np.where((x - 30) ** 2 + (y - 20) ** 2 < 100, 4.0, 0.0)
    levelled = ip.polynomial_level(feature + polynomial_surface(3), 3, mask=feature == 0)
    np.testing.assert_allclose(levelled, feature, atol=1e-9)
    np.testing.assert_allclose(ip.plane_level(NOISE), ip.polynomial_level(NOISE, 1), atol=1e-13)


def symmetric_rows(ny: int = 40, nx: int = 50, seed: int = 1) -> np.ndarray:
    """Rows that are shuffled sets ``{-a, +a}``: mean, median and trimmed mean all exactly 0."""
    rng = np.random.default_rng(seed)
    half = rng.uniform(0.1, 3.0, (ny, nx // 2))
    return rng.permuted(np.concatenate([half, -half], axis=1), axis=1)


@pytest.mark.parametrize("method", ["median", "trimmed_mean"])
def test_align_rows_removes_row_offsets_exactly(method):
    clean = symmetric_rows()
    if method == "trimmed_mean":  # the largest value of some rows becomes a glitch: trimmed away
        rows = np.arange(0, 40, 3)
        clean[rows, np.argmax(clean[rows], axis=1)] = 1e3
    offsets = RNG.uniform(-20, 20, 40)
    aligned = ip.align_rows(clean + offsets[:, None], method)
    np.testing.assert_allclose(aligned, clean + offsets.mean(), atol=1e-12)


def test_align_rows_median_difference_keeps_features_that_move_row_medians():
    """Rows of one profile f(x), a bump over 40 % of rows 10 to 19: the median of each row moves with
    the bump, the median of row differences does not."""
    x = np.arange(50)
    clean = np.tile(np.sin(x / 5.0), (40, 1))
    clean[10:20, 5:25] += 3.0
    offsets = RNG.uniform(-20, 20, 40)
    jumped = clean + offsets[:, None]
    np.testing.assert_allclose(ip.align_rows(jumped, "median_difference"), clean + offsets.mean(), atol=1e-12)
    assert np.abs(ip.align_rows(jumped, "median") - clean - offsets.mean()).max() > 0.1


def test_remove_outliers_replaces_spikes_by_the_local_median_and_counts_them():
    spikes = [(3, 7, 40.0), (20, 33, -55.0), (47, 0, 60.0), (30, 63, 35.0), (10, 40, -45.0)]
    image = NOISE.copy()
    for i, j, value in spikes:
        image[i, j] += value
    cleaned, mask = ip.remove_outliers(image, threshold=5.0, return_mask=True)
    assert sorted(zip(*np.nonzero(mask))) == sorted((i, j) for i, j, _ in spikes)
    local = ip.ndimage.median_filter(image, size=3, mode="reflect")
    np.testing.assert_array_equal(cleaned[mask], local[mask])
    np.testing.assert_array_equal(cleaned[~mask], image[~mask])
    np.testing.assert_array_equal(ip.remove_outliers(NOISE, 5.0), NOISE)  # noise alone: nothing replaced


SKYRMION_MFM = "1|frequency_shift|top|2e-08"  # the bundled single skyrmion's MFM image, 64 x 64 cells of 1 nm


def bundled_mfm() -> np.ndarray:
    with np.load(files("napari_mmrecon.data") / "single_skyrmion_images.npz") as images:
        return images[SKYRMION_MFM]


def test_remove_outliers_leaves_a_sharp_noise_free_image_alone():
    """The noise-free MFM image of a skyrmion in a 64 nm film has curvature in most pixels (the
    median-filter residual is 0 only in part of the image, so its MAD is 0): none of it is a glitch."""
    image = bundled_mfm()
    cleaned, mask = ip.remove_outliers(image, threshold=5.0, return_mask=True)
    assert mask.sum() == 0
    np.testing.assert_array_equal(cleaned, image)


def test_remove_outliers_finds_spikes_on_a_sharp_noisy_image():
    """The same image with noise of 2 % of its range and 20 spikes of +-10 noise sigma: the spikes are
    found except where the skyrmion's own variation around them is as large (here 1 of 20; 17 to 19 of
    20 over other seeds), and no noise pixel is taken for a spike (at most 1 over other seeds)."""
    image = bundled_mfm()
    rng = np.random.default_rng(4)
    sigma = 0.02 * np.ptp(image)
    noisy = image + sigma * rng.standard_normal(image.shape)
    spikes = rng.choice(image.size, 20, replace=False)
    noisy.flat[spikes] += rng.choice([-1.0, 1.0], 20) * 10 * sigma
    cleaned, mask = ip.remove_outliers(noisy, threshold=5.0, return_mask=True)
    found = mask.flat[spikes].sum()
    assert found >= 18 and mask.sum() == found
    np.testing.assert_array_equal(cleaned[mask], ip.ndimage.median_filter(noisy, size=3, mode="reflect")[mask])


def test_remove_scars_replaces_row_strokes_by_the_rows_around_them_and_leaves_spikes():
    image = NOISE.copy()
    image[20, 10:22] += 25.0
    image[33, 40:46] -= 30.0
    image[5, 5] += 40.0  # one pixel: a spike, not a scar
    image[40, 20:22] += 40.0  # two pixels: shorter than a scar
    cleaned, mask = ip.remove_scars(image, threshold=5.0, min_length=4, return_mask=True)
    expected = np.zeros(image.shape, bool)
    expected[20, 10:22] = expected[33, 40:46] = True
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(cleaned[mask], ((image[:-2] + image[2:]) / 2)[mask[1:-1]])
    np.testing.assert_array_equal(cleaned[~mask], image[~mask])
    assert ip.remove_scars(image, 5.0, min_length=2, return_mask=True)[1].sum() == 12 + 6 + 2


# ----------------------------------------------------------------------------- conversions


def test_force_gradient_conversions_follow_design_section_8():
    """dphi = -(Q/k) dF/dz (rad), df = -(f0/2k) dF/dz; an attractive gradient (> 0) gives negative shifts."""
    gradient = 1e-4  # N/m
    assert mm.phase_from_force_gradient(gradient, CANTILEVER) == pytest.approx(
        math.degrees(-CANTILEVER.Q / CANTILEVER.k * gradient), rel=1e-15)
    assert mm.frequency_shift_from_force_gradient(gradient, CANTILEVER) == pytest.approx(
        -CANTILEVER.f0 / (2 * CANTILEVER.k) * gradient, rel=1e-15)
    assert mm.frequency_shift_from_force_gradient(gradient, CANTILEVER) == pytest.approx(
        CANTILEVER.frequency_shift(gradient), rel=1e-15)
    # the same phase through the frequency shift (df = f0 dphi / 2Q)
    through_df = mm.phase_from_frequency_shift(mm.frequency_shift_from_force_gradient(gradient, CANTILEVER),
                                               CANTILEVER)
    assert through_df == pytest.approx(mm.phase_from_force_gradient(gradient, CANTILEVER), rel=1e-14)


@pytest.mark.parametrize("forward, inverse", [
    (mm.phase_from_force_gradient, mm.force_gradient_from_phase),
    (mm.frequency_shift_from_force_gradient, mm.force_gradient_from_frequency_shift),
])
def test_force_gradient_conversions_are_inverses_for_arrays_and_tensors(forward, inverse):
    values = NOISE * 1e-4
    np.testing.assert_allclose(inverse(forward(values, CANTILEVER), CANTILEVER), values, rtol=1e-14)
    np.testing.assert_allclose(forward(inverse(values, CANTILEVER), CANTILEVER), values, rtol=1e-14)
    tensor = forward(torch.as_tensor(values), CANTILEVER)
    assert isinstance(tensor, torch.Tensor)
    np.testing.assert_allclose(tensor.numpy(), forward(values, CANTILEVER), rtol=1e-15)


# ----------------------------------------------------------------------------- the recorded pipeline

PIXEL = (2e-9, 2.5e-9)
STEPS = [
    {"step": "align_rows"},
    {"step": "remove_outliers", "threshold": 6},
    {"step": "polynomial", "order": 2},
    {"step": "crop", "origin": [4e-9, 10e-9], "size": [60e-9, 100e-9]},
    {"step": "convert", "to": "frequency_shift", "cantilever": {"f0": 70e3, "Q": 250.0}},
    {"step": "scale", "factor": 2.0, "offset": 0.5},
    {"step": "resample", "pixel_size": 4e-9},
]


def raw_phase() -> np.ndarray:
    image = NOISE + polynomial_surface(2) + RNG.uniform(-5, 5, 48)[:, None]
    image[12, 30] += 80.0
    return image


def test_prepare_records_every_step_and_replays_it_bit_for_bit():
    raw = raw_phase()
    before = raw.copy()
    prepared = prepare_image(raw, PIXEL, STEPS, quantity="phase", unit="deg")
    np.testing.assert_array_equal(raw, before)  # the input is never modified
    record = json.loads(json.dumps(prepared.steps))
    assert [step["step"] for step in record] == [step["step"] for step in STEPS]
    assert record[0] == {"step": "align_rows", "method": "median", "trim": 0.25}
    assert record[1] == {"step": "remove_outliers", "threshold": 6.0, "size": 3, "replaced": 1}
    assert record[4]["from"] == "phase" and (prepared.quantity, prepared.unit) == ("frequency_shift", "Hz")
    assert prepared.pixel_size == (4e-9, 4e-9) and prepared.image.shape == (15, 25)
    again = prepare_image(raw, PIXEL, record)
    np.testing.assert_array_equal(again.image, prepared.image)
    assert again.steps == record and (again.quantity, again.unit) == ("frequency_shift", "Hz")


def test_prepared_conversion_and_crop_are_the_functions_they_name():
    raw = raw_phase()
    steps = [{"step": "crop", "origin": [4e-9, 10e-9], "size": [60e-9, 100e-9]},
             {"step": "convert", "from": "phase", "to": "force_gradient", "cantilever": {"k": 2.8, "Q": 250.0}}]
    prepared = prepare_image(raw, PIXEL, steps)
    expected = mm.force_gradient_from_phase(raw[2:32, 4:44], CANTILEVER)
    np.testing.assert_array_equal(prepared.image, expected)
    assert (prepared.quantity, prepared.unit, prepared.pixel_size) == ("force_gradient", "N/m", PIXEL)


@pytest.mark.parametrize("step, function", [
    ({"step": "plane"}, ip.plane_level),
    ({"step": "polynomial", "order": 4}, lambda image: ip.polynomial_level(image, 4)),
    ({"step": "line", "order": 1}, lambda image: ip.line_level(image, 1)),
    ({"step": "background", "length": 20e-9}, lambda image: ip.remove_background(image, PIXEL, 20e-9)),
    ({"step": "align_rows", "method": "trimmed_mean", "trim": 0.1},
     lambda image: ip.align_rows(image, "trimmed_mean", 0.1)),
    ({"step": "remove_outliers", "threshold": 4.0, "size": 5}, lambda image: ip.remove_outliers(image, 4.0, 5)),
    ({"step": "remove_scars", "threshold": 4.0, "min_length": 3}, lambda image: ip.remove_scars(image, 4.0, 3)),
    ({"step": "resample", "pixel_size": [3e-9, 4e-9], "shape": [20, 30]},
     lambda image: ip.resample(image, PIXEL, (3e-9, 4e-9), (20, 30))),
    ({"step": "scale", "factor": -2.0, "offset": 3.0}, lambda image: -2.0 * image + 3.0),
])
def test_each_step_is_the_function_it_names(step, function):
    raw = raw_phase()
    np.testing.assert_array_equal(prepare_image(raw, PIXEL, [step]).image, function(raw))


@pytest.mark.parametrize("steps, message", [
    ([{"step": "polynomial", "order": 7}], r"step 1 \(polynomial\): order must be an integer 1 to 5, got 7"),
    ([{"step": "plane"}, {"step": "smooth"}], r"step 2: unknown step 'smooth'; known: plane, polynomial"),
    ([{"step": "line", "orders": 1}], r"step 1 \(line\): unknown parameter orders; it takes order"),
    ([{"step": "align_rows", "method": "mean"}], r"step 1 \(align_rows\): method must be one of median, "),
    ([{"step": "align_rows", "method": "trimmed_mean", "trim": 0.5}], r"trim must be a fraction from 0 to below"),
    ([{"step": "remove_outliers", "threshold": -1}], r"\(remove_outliers\): threshold must be a positive finite"),
    ([{"step": "crop", "origin": [0, 0], "size": [1e-6, 1e-8]}], r"step 1 \(crop\): crop rectangle rows 0:500"),
    ([{"step": "crop", "origin": [0, 0], "size": "all"}], r"size must be two lengths \[y, x\] in metres"),
    ([{"step": "resample", "pixel_size": 0}], r"\(resample\): pixel_size must be positive lengths"),
    ([{"step": "convert", "to": "frequency_shift", "cantilever": {"f0": 7e4, "Q": 200}}],
     r"\(convert\): from must be one of phase, frequency_shift, force_gradient, got '': the image's quantity"),
    ([{"step": "convert", "from": "phase", "to": "force_gradient", "cantilever": {"f0": 7e4, "Q": 200}}],
     r"converting a phase to a force_gradient needs the cantilever's k"),
    ([{"step": "scale", "factor": float("nan")}], r"step 1 \(scale\): factor must be a finite number"),
    ("plane", r"steps must be a list"),
])
def test_bad_steps_are_named(steps, message):
    with pytest.raises(ValueError, match=message):
        prepare_image(NOISE, PIXEL, steps)


def test_steps_that_need_a_pixel_size_or_a_matching_unit_say_so():
    with pytest.raises(ValueError, match=r"step 1 \(resample\): the image has no pixel size"):
        prepare_image(NOISE, None, [{"step": "resample", "pixel_size": 4e-9}])
    with pytest.raises(ValueError, match=r"a phase in deg is converted, but the image is in 'V'"):
        prepare_image(NOISE, None, [{"step": "convert", "from": "phase", "to": "frequency_shift",
                                     "cantilever": {"f0": 7e4, "Q": 200}}], unit="V")
    with pytest.raises(ValueError, match=r"from = 'phase' but the image is a frequency_shift"):
        prepare_image(NOISE, None, [{"step": "convert", "from": "phase", "to": "force_gradient",
                                     "cantilever": {"k": 3, "Q": 200}}], quantity="frequency_shift")
