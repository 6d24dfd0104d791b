"""The synthetic dataset as a job: what ``mmrecon dataset`` runs. It only orchestrates
``backend.learn.generate_dataset`` (in a helper thread, through ``jobs.relay``) and reports in the
protocol of ``jobs``; SI units throughout.

    run = plan("data.zarr", 64, seed=0)                         # ValueError if it would be refused
    data = jobs.run(dataset("data.zarr", 64, run.seed, run.recipe))   # a backend SyntheticDataset
    data.complete_rows, data.converged[:]

While it runs the job yields ``Progress(shards done, shards, text)`` after every shard written
(those done by an earlier run count as done). Cancelling (the ``cancel`` event) stops it after the
shard being written; the dataset stays resumable and the job returns it as it is.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..backend.learn.dataset_store import check_target, generate_dataset, open_dataset, read_manifest
from ..backend.learn.recipe import DatasetRecipe
from .jobs import Job, Progress, relay


@dataclass(frozen=True)
class Plan:
    """What a run at a path will do: its ``recipe`` and ``seed``, and the ``complete`` samples the
    path holds already."""

    recipe: DatasetRecipe
    seed: int
    complete: int


def plan(path, n: int, seed: int | None = None, **changes) -> Plan:
    """The run that makes ``path`` a dataset of ``n`` samples: the recipe and seed stored there
    (else ``DatasetRecipe()`` and seed 0), with ``seed`` and the recipe fields ``changes`` that are
    not None; ``ValueError`` naming the path if ``generate_dataset`` would refuse it (another seed or
    recipe than the stored ones, fewer samples than stored, not a dataset, corrupt)."""
    manifest = read_manifest(path)
    stored = DatasetRecipe() if manifest is None else DatasetRecipe.from_dict(manifest["recipe"])
    seed = (0 if manifest is None else manifest["seed"]) if seed is None else seed
    recipe = check_target(path, n, seed, stored.replace(**{k: v for k, v in changes.items() if v is not None}))
    return Plan(recipe, seed, 0 if manifest is None else len(open_dataset(path).complete_rows))


def dataset(path, n: int, seed: int = 0, recipe: DatasetRecipe | None = None, workers: int | None = None,
            client=None, device="cpu", cancel: threading.Event | None = None) -> Job:
    """Job (see ``jobs``): ``generate_dataset(path, n, seed, recipe, workers, client)`` with
    progress; returns the dataset opened (``SyntheticDataset``). The arguments are those of
    ``generate_dataset``; ``cancel`` stops it between shards."""
    cancel = threading.Event() if cancel is None else cancel

    def call(report):
        return generate_dataset(path, n, seed, recipe, workers=workers, client=client, progress=report,
                                cancel=cancel, device=device)

    def describe(done: int, total: int) -> Progress:
        return Progress(done, total, f"{done} of {total} shards")

    yield Progress(0, 0, f"dataset {path}: starting")
    return (yield from relay(call, describe, cancel))
