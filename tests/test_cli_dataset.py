"""``mmrecon dataset`` end to end on a tiny dataset (16 x 16 cells, shards of 2) in two local
processes, and its refusals: one line, exit code 2, the dataset untouched."""

import numpy as np
import pytest

from napari_mmrecon.backend.learn import DatasetRecipe, make_shard, open_dataset
from napari_mmrecon.cli import main
from napari_mmrecon.workflows.options import OPTIONS

TINY = ["--cells", "16", "--shard-size", "2", "--quiet"]


def test_dataset_options_default_to_the_recipe():
    recipe = DatasetRecipe()
    assert (OPTIONS["cells"].default, OPTIONS["shard_size"].default) == (recipe.cells, recipe.shard_size)


def test_dataset_end_to_end_then_refusals(tmp_path, capsys):
    out = tmp_path / "data.zarr"
    assert main(["dataset", "--n", "3", "-o", str(out), "--workers", "2", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "3 of 3 samples complete" in printed and "samples/s" in printed
    data = open_dataset(out)
    assert len(data) == 3 and list(data.complete_rows) == [0, 1, 2] and data.images.shape == (3, 8, 16, 16)
    shard = make_shard(DatasetRecipe(cells=16, shard_size=2), 0, 1)  # the processes computed it alike
    np.testing.assert_array_equal(np.asarray(data.m[2:3]), shard["m"][:1])
    np.testing.assert_array_equal(np.asarray(data.images[2:3]), shard["images"][:1])

    assert main(["dataset", "--n", "4", "-o", str(out), "--workers", "1", "--quiet"]) == 0  # its own recipe
    assert list(open_dataset(out).complete_rows) == [0, 1, 2, 3]
    capsys.readouterr()
    manifest = open_dataset(out).manifest
    refused = [(["--n", "4", "--seed", "7"], f"{out} holds the dataset of seed 0; it takes no samples of seed 7"),
               (["--n", "4", "--cells", "32"], f"{out} holds a dataset of another recipe (cells: 16 there, 32 here)"),
               (["--n", "2"], f"{out} holds 4 samples, more than n = 2"),
               (["--n", "0"], "the number of samples of the dataset must be > 0, got n = 0"),
               ([], "give --n, the number of samples of the dataset")]
    for flags, message in refused:
        assert main(["dataset", *flags, "-o", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"mmrecon dataset: error: {message}") and err.count("\n") == 1, err
    assert open_dataset(out).manifest == manifest


@pytest.mark.parametrize("make", ["file", "folder"])
def test_dataset_never_writes_into_what_is_not_a_dataset(tmp_path, capsys, make):
    out = tmp_path / "target"
    if make == "file":
        out.write_text("keep me")
    else:
        out.mkdir()
        (out / "keep.txt").write_text("keep me")
    assert main(["dataset", "--n", "2", "-o", str(out), *TINY]) == 2
    assert f"{out} exists and is not a napari-mmrecon synthetic dataset" in capsys.readouterr().err
    assert (out if make == "file" else out / "keep.txt").read_text() == "keep me"
    assert make == "file" or [p.name for p in out.iterdir()] == ["keep.txt"]
