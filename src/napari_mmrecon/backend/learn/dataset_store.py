"""The synthetic dataset on disk: a zarr (v3) group written shard by shard, resumable, appendable.

    generate_dataset("data.zarr", n=1024, seed=0)         # computes the missing shards, writes each
    data = open_dataset("data.zarr")
    data.m[data.complete_rows], data.images.shape, data.views, data.manifest["recipe"]

Layout (N = the dataset's ``n`` samples, V views, ``cells`` pixels a side; every array is chunked
one shard, ``shard_size`` rows, along its first axis): ``m (N, ny, nx, 3)`` float32 unit vectors,
``images (N, V, ny, nx)`` float32 (A/m for H_z, Hz for MFM), ``heights (N, V)`` m, ``material
(N, 4)`` Ms, A, Ku, D (SI), ``external_field (N,)`` A/m, ``dx``, ``thickness (N,)`` m, ``kind (N,)``
int8 (into the manifest's ``kinds``), ``converged (N,)`` bool, and ``shard_done (n_shards,)`` bool:
the rows of shard ``s`` (``s * shard_size`` up to ``n``) are complete only when ``shard_done[s]``.
The group's ``attrs["manifest"]`` (``FORMAT``, ``VERSION``) records the seed, ``n``, the recipe, the
views, the kinds, the MFM tip and cantilever, the code version and git commit and the creation time.

A shard is written only once it is computed, and marked done after its rows: an interrupted run
leaves at most undone shards, which the next run with the same seed and recipe computes (the
samples are fixed by ``(seed, shard index)``, so the result is the dataset an uninterrupted run
makes). A larger ``n`` appends shards (recomputing a last shard that was cut short); a smaller
``n``, another seed or recipe, a path that holds something else, or a corrupt store is refused with
a ``ValueError`` naming the path.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import zarr

from ..runtime.provenance import git_commit
from .recipe import DatasetRecipe
from .synthetic import CANTILEVER, MFM_TIP, make_shard, views

FORMAT = "napari-mmrecon synthetic dataset"
VERSION = 1
ARRAY_NAMES = ("m", "images", "heights", "material", "external_field", "dx", "thickness", "kind", "converged")
DONE = "shard_done"
DONE_CHUNK = 4096
"""Flags per chunk of ``shard_done``."""
POLL_INTERVAL = 0.2
"""Seconds between two looks at the cancel event while local processes compute shards."""


def layout(recipe: DatasetRecipe) -> dict:
    """``{name: (shape after the first axis, dtype)}`` of every sample array of ``recipe``."""
    cells, V = recipe.cells, len(views(recipe))
    scalar = ((), "float64")
    return {"m": ((cells, cells, 3), "float32"), "images": ((V, cells, cells), "float32"), "heights": ((V,), "float64"),
            "material": ((4,), "float64"), "external_field": scalar, "dx": scalar, "thickness": scalar,
            "kind": ((), "int8"), "converged": ((), "bool")}


def shard_count(n: int, shard_size: int) -> int:
    """Shards of ``n`` samples, ``shard_size`` each (the last one may be cut short)."""
    return math.ceil(n / shard_size)


# ----------------------------------------------------------------------------- reading


@dataclass
class SyntheticDataset:
    """Read access to a dataset: the arrays of ``dataset_store`` (zarr arrays for a dataset on disk,
    indexable like numpy; numpy arrays for one in memory), all with ``N`` rows: ``m (N, ny, nx, 3)``,
    ``images (N, V, ny, nx)``, ``heights (N, V)``, ``material (N, 4)``, ``external_field``, ``dx``,
    ``thickness``, ``kind``, ``converged (N,)``; ``views`` (V dicts ``{"side", "quantity",
    "height_index"}``), the ``manifest``, ``complete_rows`` (the row indices whose shard is done) and
    the ``path`` (None in memory)."""

    m: object
    images: object
    heights: object
    material: object
    external_field: object
    dx: object
    thickness: object
    kind: object
    converged: object
    views: list
    manifest: dict
    complete_rows: np.ndarray
    path: str | None = None

    def __len__(self) -> int:
        return self.m.shape[0]

    @classmethod
    def from_arrays(cls, *, views: list, manifest: dict, **arrays) -> "SyntheticDataset":
        """An in-memory dataset of numpy arrays named as ``ARRAY_NAMES`` (all of them, ``N`` rows
        each, ``images`` and ``heights`` with one column per view), every row complete."""
        missing, unknown = [k for k in ARRAY_NAMES if k not in arrays], [k for k in arrays if k not in ARRAY_NAMES]
        if missing or unknown:
            raise ValueError(f"a synthetic dataset needs the arrays {', '.join(ARRAY_NAMES)}; "
                             + (f"missing: {', '.join(missing)}" if missing else f"unknown: {', '.join(unknown)}"))
        values = {key: np.asarray(arrays[key]) for key in ARRAY_NAMES}
        n, V = len(values["m"]), len(views)
        for key, value in values.items():
            if value.ndim == 0 or len(value) != n:
                raise ValueError(f"array {key} has shape {value.shape}: every array needs {n} rows, as m")
        for key in ("images", "heights"):
            if values[key].ndim < 2 or values[key].shape[1] != V:
                raise ValueError(f"array {key} has shape {values[key].shape}: it needs one column per view ({V})")
        return cls(**values, views=list(views), manifest=dict(manifest), complete_rows=np.arange(n))


def _open_group(path: Path, mode: str):
    try:
        return zarr.open_group(path, mode=mode)
    except (zarr.errors.BaseZarrError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} exists and is not a {FORMAT} (no zarr group: {exc})") from None


def _manifest_of(group, path: Path) -> dict:
    """The group's manifest, checked to be ours and of a version this code reads."""
    manifest = group.attrs.get("manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} exists and is not a {FORMAT} (its zarr group has no such manifest)")
    version = manifest.get("version")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise ValueError(f"{path} is a {FORMAT} of version {version!r}; this napari-mmrecon reads version "
                         f"{VERSION}: update napari-mmrecon")
    return manifest


def _checked(group, manifest: dict, path: Path) -> DatasetRecipe:
    """The recipe of a manifest, after checking that every array has the shape and dtype it
    implies; ``ValueError`` naming ``path`` and the first problem otherwise."""
    corrupt = f"{path} is a corrupt {FORMAT}"
    try:
        recipe = DatasetRecipe.from_dict(manifest["recipe"])
        n, seed = manifest["n"], manifest["seed"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{corrupt}: its manifest's recipe, n or seed is unreadable ({exc})") from None
    if not isinstance(n, int) or n < 1 or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{corrupt}: its manifest has n = {n!r}, seed = {seed!r}")
    expected = {name: ((n,) + shape, dtype) for name, (shape, dtype) in layout(recipe).items()}
    expected[DONE] = ((shard_count(n, recipe.shard_size),), "bool")
    arrays = set(group.array_keys())
    for name, (shape, dtype) in expected.items():
        if name not in arrays:
            raise ValueError(f"{corrupt}: it lacks the array {name!r}")
        array = group[name]
        if tuple(array.shape) != shape or np.dtype(array.dtype) != np.dtype(dtype):
            raise ValueError(f"{corrupt}: array {name!r} is {tuple(array.shape)} {array.dtype}, its manifest "
                             f"implies {shape} {dtype}")
    return recipe


def _inspect(path: Path):
    """``(group, manifest, recipe)`` of the dataset at ``path``, read-only and checked, or None
    where there is nothing yet (no such path, or an empty folder)."""
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return None
    if not path.is_dir():
        raise ValueError(f"{path} exists and is not a {FORMAT} (a dataset is a folder)")
    group = _open_group(path, "r")
    manifest = _manifest_of(group, path)
    return group, manifest, _checked(group, manifest, path)


def read_manifest(path) -> dict | None:
    """The manifest of the dataset at ``path`` after checking its arrays, or None where there is
    nothing yet (no such path, or an empty folder); ``ValueError`` for a path that holds something
    else or a corrupt dataset."""
    found = _inspect(Path(path))
    return None if found is None else found[1]


def open_dataset(path) -> SyntheticDataset:
    """Read access to the dataset at ``path`` (zarr arrays, read lazily); ``ValueError`` naming the
    path if there is none or it is corrupt."""
    found = _inspect(Path(path))
    if found is None:
        raise ValueError(f"{path}: no {FORMAT} there")
    group, manifest, recipe = found
    S, n = recipe.shard_size, manifest["n"]
    rows = [np.arange(s * S, min((s + 1) * S, n)) for s in np.flatnonzero(group[DONE][:])]
    return SyntheticDataset(**{name: group[name] for name in ARRAY_NAMES}, views=list(manifest["views"]),
                            manifest=manifest, complete_rows=np.concatenate(rows) if rows else np.arange(0),
                            path=str(path))


# ----------------------------------------------------------------------------- writing


def check_target(path, n: int, seed: int = 0, recipe: DatasetRecipe | None = None) -> DatasetRecipe:
    """The recipe a ``generate_dataset(path, n, seed, recipe)`` would use, without writing:
    ``recipe`` (default ``DatasetRecipe()``) for a new dataset, the stored one for an existing one.
    ``ValueError`` naming the path for an ``n`` or ``seed`` that is not a whole number (>= 1,
    >= 0), a path that holds something else or a corrupt dataset, a dataset of another seed or
    recipe, or one of more than ``n`` samples."""
    for value, name, least in ((n, "n", 1), (seed, "seed", 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")
    found = _inspect(Path(path))
    if found is None:
        return DatasetRecipe() if recipe is None else recipe
    _, manifest, stored = found
    if manifest["seed"] != seed:
        raise ValueError(f"{path} holds the dataset of seed {manifest['seed']}; it takes no samples of seed {seed}: "
                         f"give seed {manifest['seed']} to add to it, or another path")
    if recipe is not None and recipe != stored:
        old, new = stored.to_dict(), recipe.to_dict()
        changes = "; ".join(f"{key}: {old[key]} there, {new[key]} here" for key in old if old[key] != new[key])
        raise ValueError(f"{path} holds a dataset of another recipe ({changes}); it takes samples of its own recipe "
                         "only: choose another path")
    if n < manifest["n"]:
        raise ValueError(f"{path} holds {manifest['n']} samples, more than n = {n}: a dataset never shrinks (give "
                         f"n >= {manifest['n']})")
    return stored


def _manifest(n: int, seed: int, recipe: DatasetRecipe) -> dict:
    from ... import __version__

    return {"format": FORMAT, "version": VERSION, "seed": int(seed), "n": int(n), "shard_size": recipe.shard_size,
            "recipe": recipe.to_dict(), "views": views(recipe), "kinds": list(recipe.kinds),
            "mfm_tip": MFM_TIP.to_dict(), "cantilever": CANTILEVER.to_dict(), "code_version": __version__,
            "git_commit": git_commit(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _create(path: Path, n: int, seed: int, recipe: DatasetRecipe):
    """A new store of ``n`` unwritten samples (every ``shard_done`` False); the manifest last."""
    group = zarr.open_group(path, mode="w-")
    S = recipe.shard_size
    for name, (shape, dtype) in layout(recipe).items():
        group.create_array(name, shape=(n,) + shape, chunks=(S,) + shape, dtype=dtype, fill_value=0)
    group.create_array(DONE, shape=(shard_count(n, S),), chunks=(DONE_CHUNK,), dtype="bool", fill_value=False)
    group.attrs["manifest"] = _manifest(n, seed, recipe)
    return group


def _extend(path: Path, n: int, recipe: DatasetRecipe):
    """The existing store at ``path`` grown to ``n`` samples (new shards undone; a last shard cut
    short before is undone too, to be computed whole); the manifest last."""
    group = zarr.open_group(path, mode="r+")
    manifest = dict(group.attrs["manifest"])
    old, S = manifest["n"], recipe.shard_size
    if n > old:
        if old % S:
            group[DONE][old // S] = False
        for name, (shape, _) in layout(recipe).items():
            group[name].resize((n,) + shape)
        group[DONE].resize((shard_count(n, S),))
        group.attrs["manifest"] = {**manifest, "n": n}
    return group


def _write_shard(group, index: int, shard: dict, n: int, shard_size: int) -> None:
    """Rows of shard ``index`` (those below ``n``) from ``make_shard``'s arrays, then its flag."""
    rows = slice(index * shard_size, min((index + 1) * shard_size, n))
    count = rows.stop - rows.start
    for name in ARRAY_NAMES:
        group[name][rows] = shard[name][:count]
    group[DONE][index] = True


def _cancelled(cancel) -> bool:
    return cancel is not None and cancel.is_set()


def _in_this_process(recipe, seed, missing, cancel, device):
    for index in missing:
        if _cancelled(cancel):
            return
        shard = make_shard(recipe, seed, index, device, cancel)
        if shard is None:
            return
        yield index, shard


def _in_processes(recipe, seed, missing, workers, cancel, device):
    """``(index, shard)`` as local processes (``spawn``, ``cores // workers`` torch threads each)
    finish them; on cancel the shards not started are dropped."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=torch.set_num_threads,
                               initargs=(threads,))
    try:
        pending = {pool.submit(make_shard, recipe, seed, index, device): index for index in missing}
        while pending:
            finished, _ = wait(pending, timeout=POLL_INTERVAL, return_when=FIRST_COMPLETED)
            if _cancelled(cancel):
                return
            for future in finished:
                yield pending.pop(future), future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _on_dask(client, recipe, seed, missing, cancel, device):
    """``(index, shard)`` as the Dask cluster of ``client`` finishes them; on cancel (seen between
    two finished shards) the rest are cancelled."""
    from distributed import as_completed

    futures = {client.submit(make_shard, recipe, seed, index, device, pure=False): index for index in missing}
    try:
        for future in as_completed(futures):
            if _cancelled(cancel):
                return
            yield futures[future], future.result()
    finally:
        client.cancel(list(futures))


def generate_dataset(path, n: int, seed: int = 0, recipe: DatasetRecipe | None = None, workers: int | None = None,
                     client=None, progress=None, cancel=None, device="cpu") -> SyntheticDataset:
    """Create, complete or extend the dataset at ``path`` to ``n`` samples; return it opened.

    Parameters
    ----------
    path : str or Path
        A zarr folder: new (or an empty folder), or a dataset of the same ``seed`` and recipe.
    n : int
        Samples wanted (>= the dataset's own ``n``; more appends shards).
    seed : int
        The dataset's seed (>= 0): shard ``s`` is ``synthetic.make_shard(recipe, seed, s)``.
    recipe : DatasetRecipe, optional
        Default: the stored one for an existing dataset, ``DatasetRecipe()`` for a new one.
    workers : int, optional
        Local processes computing shards (default: one per CPU core, at most one per missing
        shard); each gets ``cores // workers`` torch threads. ``1`` computes in this process.
    client : dask.distributed.Client, optional
        Compute the shards on this Dask cluster instead; this process writes them.
    progress : callable ``(done, total)``, optional
        Called with the shards done (those already done before included) after each write.
    cancel : threading.Event, optional
        Stops the run after the shard being written (in this process: during its relaxation);
        the dataset stays resumable.
    device : str
        Torch device of the computation (``"cpu"``: the samples are fixed by seed and recipe
        there; another device gives samples equal to round-off).

    ``ValueError`` (before anything is written) as ``check_target``, or for ``workers`` < 1.
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a whole number >= 1 (None: one per CPU core), got {workers!r}")
    recipe = check_target(path, n, seed, recipe)
    path, n, seed = Path(path), int(n), int(seed)
    group = _extend(path, n, recipe) if read_manifest(path) is not None else _create(path, n, seed, recipe)
    total = shard_count(n, recipe.shard_size)
    missing = [int(s) for s in np.flatnonzero(~group[DONE][:])]
    done = total - len(missing)
    if progress is not None:
        progress(done, total)
    if client is not None:
        shards = _on_dask(client, recipe, seed, missing, cancel, device)
    else:
        workers = max(1, min(workers or os.cpu_count() or 1, len(missing)))
        shards = (_in_this_process(recipe, seed, missing, cancel, device) if workers == 1
                  else _in_processes(recipe, seed, missing, workers, cancel, device))
    for index, shard in shards:
        _write_shard(group, index, shard, n, recipe.shard_size)
        done += 1
        if progress is not None:
            progress(done, total)
    return open_dataset(path)
