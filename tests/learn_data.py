"""Tiny datasets in the layout of the synthetic dataset (``dataset_store``), in memory or as a zarr
store, for the U-Net tests: unrelaxed Neel skyrmions of random radius, position, polarity and DMI
sign, imaged by ``measurement.simulate`` (no relaxation: the tests check the training machinery,
not physics)."""

import numpy as np

import napari_mmrecon as mm
from napari_mmrecon.backend.learn.dataset_store import FORMAT, VERSION, SyntheticDataset
from napari_mmrecon.backend.learn.recipe import DatasetRecipe
from napari_mmrecon.backend.runtime.threads import threads_for

TIP = mm.PointDipoleTip(moment=1e-16)
CANTILEVER = mm.Cantilever(k=3.0, f0=75e3)
VIEWS = [{"side": side, "quantity": quantity, "height_index": 0}
         for side in ("top", "bottom") for quantity in ("Hz", "mfm")]


def measurement(view: dict, height: float):
    """The measurement of a view at ``height`` (m), as the dataset's generator makes it."""
    if view["quantity"] == "Hz":
        return mm.StrayFieldMeasurement(height=height, side=view["side"], component="z")
    return mm.MFMMeasurement(lift_height=height, side=view["side"], tip=TIP, cantilever=CANTILEVER)


def tiny_arrays(n: int = 8, cells: int = 16, seed: int = 0) -> dict:
    """The arrays of ``n`` samples of ``cells x cells`` pixels (4 views: both sides, Hz and MFM, one
    height each; every two samples share a film geometry, like a shard)."""
    with threads_for(cells * cells):  # tiny fields: one thread, as the backend runs them
        return _arrays(n, cells, seed)


def _arrays(n: int, cells: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {"m": [], "images": [], "heights": [], "material": [], "dx": [], "thickness": []}
    for i in range(n):
        if i % 2 == 0:
            dx, thickness, height = rng.uniform(1e-9, 2e-9), rng.uniform(0.6e-9, 1.5e-9), rng.uniform(2e-9, 6e-9)
        grid = mm.Grid(nx=cells, ny=cells, nz=1, dx=dx, dy=dx, dz=thickness, device="cpu")
        center = rng.uniform(0.35, 0.65, 2) * cells * dx
        m = mm.textures.skyrmion(grid, radius=rng.uniform(0.12, 0.25) * cells * dx, center=tuple(center),
                                 polarity=int(rng.choice([-1, 1])))
        Ms, D = rng.uniform(4e5, 8e5), rng.choice([-1.0, 1.0]) * rng.uniform(1e-3, 4e-3)
        arrays["m"].append(m[0])
        arrays["images"].append([np.asarray(measurement(v, height).simulate(m, grid, Ms)) for v in VIEWS])
        arrays["heights"].append([height] * len(VIEWS))
        arrays["material"].append([Ms, 1.5e-11, 8e5, D])
        arrays["dx"].append(dx)
        arrays["thickness"].append(thickness)
    out = {key: np.asarray(value, dtype=np.float32 if key in ("m", "images") else np.float64)
           for key, value in arrays.items()}
    out.update(external_field=np.zeros(n), kind=np.zeros(n, np.int8), converged=np.ones(n, bool))
    return out


RECIPE = DatasetRecipe(cells=16, n_heights=1, height_range=(2e-9, 6e-9), shard_size=2)
"""The recipe these datasets claim (their samples follow it only in shape and views)."""


def manifest(n: int) -> dict:
    return {"format": FORMAT, "version": VERSION, "seed": 0, "n": n, "shard_size": RECIPE.shard_size,
            "recipe": RECIPE.to_dict(), "views": VIEWS, "kinds": list(RECIPE.kinds), "mfm_tip": TIP.to_dict(),
            "cantilever": CANTILEVER.to_dict(), "code_version": mm.__version__, "git_commit": None,
            "created": "test"}


def tiny_dataset(n: int = 8, cells: int = 16, seed: int = 0) -> SyntheticDataset:
    """An in-memory ``SyntheticDataset`` of ``tiny_arrays``."""
    return SyntheticDataset.from_arrays(**tiny_arrays(n, cells, seed), views=VIEWS, manifest=manifest(n))


def write_store(path, arrays: dict) -> None:
    """``arrays`` (``tiny_arrays``) as a zarr dataset in the layout of ``dataset_store``, every shard done."""
    import zarr

    n = len(arrays["m"])
    group = zarr.open_group(path, mode="w-")
    for name, value in arrays.items():
        group.create_array(name, data=value, chunks=(RECIPE.shard_size,) + value.shape[1:])
    group.create_array("shard_done", data=np.ones(-(-n // RECIPE.shard_size), bool))
    group.attrs["manifest"] = manifest(n)
