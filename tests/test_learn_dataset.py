"""The synthetic dataset (backend/learn): deterministic by seed, resumable after an interruption,
appendable, computed alike in this process and on Dask, refusing what is not its own; every
dataset tiny (16 x 16 cells, shards of 2, one height, a short iteration cap)."""

import shutil
import threading

import numpy as np
import pytest
import zarr

import napari_mmrecon as mm
from napari_mmrecon.backend.learn import DatasetRecipe, SyntheticDataset, generate_dataset, make_shard, open_dataset
from napari_mmrecon.backend.learn.dataset_store import ARRAY_NAMES, DONE, FORMAT
from napari_mmrecon.backend.learn.synthetic import MFM_TIP, view_measurement, views
from napari_mmrecon.backend.physics.grid import MU0

RECIPE = DatasetRecipe(cells=16, shard_size=2, n_heights=1, max_iter=150)
N = 5
"""Samples of the reference dataset: shards of 2, 2 and 1 (the last one cut short)."""


def arrays(data) -> dict:
    return {name: np.asarray(getattr(data, name)[:]) for name in ARRAY_NAMES}


def assert_same(data, reference) -> None:
    assert len(data) == len(reference)
    np.testing.assert_array_equal(data.complete_rows, reference.complete_rows)
    for name, value in arrays(reference).items():
        np.testing.assert_array_equal(np.asarray(getattr(data, name)[:]), value, err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A complete dataset of ``N`` samples made in one uninterrupted run in this process."""
    return generate_dataset(tmp_path_factory.mktemp("reference") / "data.zarr", N, seed=0, recipe=RECIPE, workers=1)


def test_arrays_are_unit_vectors_and_finite_images_of_every_view(reference):
    V = len(reference.views)
    assert V == 4 and len(views(DatasetRecipe())) == 8  # both sides x heights x (Hz, mfm)
    assert reference.views[:2] == [{"side": "top", "quantity": "Hz", "height_index": 0},
                                   {"side": "top", "quantity": "mfm", "height_index": 0}]
    shapes = {"m": (N, 16, 16, 3), "images": (N, V, 16, 16), "heights": (N, V), "material": (N, 4), "kind": (N,)}
    for name, shape in shapes.items():
        assert getattr(reference, name).shape == shape, name
    assert (reference.m.dtype, reference.images.dtype) == (np.float32, np.float32)
    data = arrays(reference)
    np.testing.assert_allclose(np.linalg.norm(data["m"], axis=-1), 1.0, atol=1e-6)
    assert np.all(np.isfinite(data["images"])) and np.all(np.abs(data["images"]).max(axis=(-2, -1)) > 0)
    np.testing.assert_array_equal(reference.complete_rows, np.arange(N))
    low, high = RECIPE.height_range
    assert np.all((data["heights"] >= low) & (data["heights"] <= high))
    Ms, A, Ku, D = data["material"].T
    Q = Ku / (MU0 * Ms**2 / 2)
    assert np.all((Q >= 1.05) & (Q <= 4) & (np.abs(D) >= 0.5e-3) & (np.abs(D) <= 4e-3) & (Ms >= 3e5) & (A <= 25e-12))
    for first in (0, 2):  # one cell size, thickness and set of heights per shard
        rows = slice(first, first + 2)
        for name in ("dx", "thickness", "heights"):
            assert np.all(data[name][rows] == data[name][first]), name
    assert set(np.unique(data["kind"])) <= set(range(len(reference.manifest["kinds"])))
    manifest = reference.manifest
    assert (manifest["format"], manifest["version"], manifest["seed"], manifest["n"]) == (FORMAT, 1, 0, N)
    assert DatasetRecipe.from_dict(manifest["recipe"]) == RECIPE and manifest["mfm_tip"] == MFM_TIP.to_dict()
    assert {"code_version", "git_commit", "created", "cantilever", "shard_size"} <= manifest.keys()


def test_images_are_the_forward_model_of_the_stored_texture(reference):
    i = 3
    grid = mm.Grid(nx=16, ny=16, nz=1, dx=float(reference.dx[i]), dy=float(reference.dx[i]),
                   dz=float(reference.thickness[i]), device="cpu")
    m = np.asarray(reference.m[i], dtype=np.float64)[None]
    for v, view in enumerate(reference.views):
        expected = np.asarray(view_measurement(view, float(reference.heights[i, v])).simulate(m, grid,
                                                                                            reference.material[i, 0]))
        stored = np.asarray(reference.images[i, v])
        assert np.abs(stored - expected).max() < 1e-5 * np.abs(expected).max(), view


def test_same_seed_same_shard_another_seed_another(reference):
    shard = make_shard(RECIPE, 0, 1)
    for name in ARRAY_NAMES:
        np.testing.assert_array_equal(shard[name], np.asarray(getattr(reference, name)[2:4]), err_msg=name)
    other = make_shard(RECIPE, 1, 1)
    assert not np.array_equal(other["m"], shard["m"]) and not np.array_equal(other["material"], shard["material"])


def test_a_cancelled_run_resumes_to_the_uninterrupted_dataset(reference, tmp_path):
    path, cancel, seen = tmp_path / "data.zarr", threading.Event(), []

    def progress(done, total):
        seen.append((done, total))
        if done == 1:
            cancel.set()

    partial = generate_dataset(path, N, seed=0, recipe=RECIPE, workers=1, progress=progress, cancel=cancel)
    assert seen == [(0, 3), (1, 3)] and list(partial.complete_rows) == [0, 1]
    seen.clear()
    assert_same(generate_dataset(path, N, seed=0, workers=1, progress=lambda *a: seen.append(a)), reference)
    assert seen == [(1, 3), (2, 3), (3, 3)]  # the stored recipe, and only the missing shards


def test_a_shard_flag_cleared_by_hand_is_computed_again(reference, tmp_path):
    path = tmp_path / "data.zarr"
    shutil.copytree(reference.path, path)
    group = zarr.open_group(path, mode="r+")
    group[DONE][1] = False
    group["m"][2:4] = 0
    assert list(open_dataset(path).complete_rows) == [0, 1, 4]
    seen = []
    assert_same(generate_dataset(path, N, seed=0, recipe=RECIPE, workers=1, progress=lambda *a: seen.append(a)),
                reference)
    assert seen == [(2, 3), (3, 3)]


def test_a_larger_n_appends_and_completes_a_short_last_shard(reference, tmp_path):
    path = tmp_path / "data.zarr"
    small = generate_dataset(path, 3, seed=0, recipe=RECIPE, workers=1)
    assert len(small) == 3 and list(small.complete_rows) == [0, 1, 2]
    assert_same(generate_dataset(path, N, seed=0, recipe=RECIPE, workers=1), reference)
    assert open_dataset(path).manifest["n"] == N


def test_refusals_name_the_path_and_write_nothing(reference, tmp_path):
    path = reference.path
    before = open_dataset(path).manifest
    cases = [
        (dict(n=N, seed=1), "holds the dataset of seed 0; it takes no samples of seed 1"),
        (dict(n=N, seed=0, recipe=RECIPE.replace(cells=32)), "another recipe (cells: 16 there, 32 here)"),
        (dict(n=N - 1, seed=0), f"holds {N} samples, more than n = {N - 1}"),
        (dict(n=0, seed=0), "n must be a whole number >= 1"),
    ]
    for arguments, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            generate_dataset(path, workers=1, **arguments)
    assert open_dataset(path).manifest == before
    text = tmp_path / "notes.txt"
    text.write_text("not a dataset")
    other = tmp_path / "other"
    (other / "sub").mkdir(parents=True)
    for where in (text, other):
        with pytest.raises(ValueError, match=f"{where} exists and is not a {FORMAT}"):
            generate_dataset(where, 2, recipe=RECIPE, workers=1)
    assert text.read_text() == "not a dataset" and [p.name for p in other.iterdir()] == ["sub"]
    corrupt = tmp_path / "corrupt.zarr"
    shutil.copytree(path, corrupt)
    shutil.rmtree(corrupt / "images")
    with pytest.raises(ValueError, match=f"{corrupt} is a corrupt {FORMAT}: it lacks the array 'images'"):
        generate_dataset(corrupt, N, workers=1)
    with pytest.raises(ValueError, match=f"{corrupt} is a corrupt"):
        open_dataset(corrupt)


def test_in_memory_dataset_from_arrays(reference):
    values = arrays(reference)
    data = SyntheticDataset.from_arrays(**values, views=reference.views, manifest=reference.manifest)
    assert len(data) == N and list(data.complete_rows) == list(range(N)) and data.path is None
    np.testing.assert_array_equal(data.images, values["images"])
    with pytest.raises(ValueError, match="missing: converged"):
        SyntheticDataset.from_arrays(**{k: v for k, v in values.items() if k != "converged"}, views=reference.views,
                                     manifest={})
    with pytest.raises(ValueError, match="one column per view"):
        SyntheticDataset.from_arrays(**values, views=reference.views[:2], manifest={})


def test_a_dask_cluster_makes_the_same_dataset(reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        data = generate_dataset(tmp_path / "data.zarr", N, seed=0, recipe=RECIPE, client=client)
    assert_same(data, reference)
