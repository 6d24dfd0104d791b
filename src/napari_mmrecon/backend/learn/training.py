"""Training of the U-Net on a synthetic dataset, resumable, on one device or many (DDP).

    result = train_unet("data.zarr", "run/", epochs=30)      # or a SyntheticDataset
    result.metrics["val_angle_deg"], result.out / "unet.pt"

Items. Every epoch draws, for each training sample, one of its views at random (seeded by
``(seed, epoch)``), so that over the epochs the network sees every side, height and quantity of
every film. The samples are split once (seeded by ``seed``) into a training set and a held-out
validation set of ``val_fraction`` of them, never mixed; validation runs every view of every
held-out sample on the noise-free images, without augmentation. Training items are augmented
on the fly (``augment``: symmetries, noise, plane, row offsets); the loss is
``training_loss.training_loss`` (angle + image misfit through the forward operator). AdamW, its
learning rate on a cosine from ``lr`` at the first epoch down to ``LR_FLOOR lr`` at the last
(``epoch_lr``; a run resumed with more epochs follows the longer cosine from where it stands), the
gradient norm clipped at ``GRADIENT_CLIP`` (single bad batches of the noisiest augmentation once
threw the held-out angle back by 10 degrees).

Files in ``out`` (only rank 0 writes; each replaced only once complete):

- ``checkpoint.pt``: model, optimizer, completed epochs, loss history, settings, written every
  epoch; the one before is kept as ``checkpoint.prev.pt``. A run resumes from the last readable one
  (a truncated or corrupt ``checkpoint.pt`` falls back to ``checkpoint.prev.pt``; with neither
  readable it refuses, naming the file) and only with the settings it was started with.
- ``loss.csv`` (epoch, train loss, val loss, val angle in degrees, seconds of the epoch with its
  validation) and ``loss.png``;
- ``unet.pt``: the trained network in the checkpoint format of ``unet`` (``meta``: dataset recipe,
  seed, data path, command, git commit, training ranges, final held-out metrics), written once
  the last epoch is done;
- ``run.json``: settings and state; ``"finished": true`` at the end. A finished run is never
  trained over unless ``overwrite=True`` (which starts a fresh run in the folder).

Distributed: launched by ``torchrun`` (environment ``WORLD_SIZE > 1``) every process joins a
process group ("gloo" on the CPU, "nccl" on CUDA, one GPU per ``LOCAL_RANK``), the model is
wrapped in ``DistributedDataParallel`` and a ``DistributedSampler`` splits each epoch's items
among the ranks; the logged training loss is the mean over all ranks' items. At the end the
ranks compare their weights (``run.json``: ``weights_equal_across_ranks``, ``steps_per_rank``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shlex
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..runtime.provenance import git_commit
from ..runtime.threads import threads_for
from .augment import Augmentation, random_dihedral, scan_artefacts
from .network_input import QUANTITY_CODE, SIDE_SIGN, d_sign, network_input, predict_m
from .training_loss import DEFAULT_IMAGE_WEIGHT, ForwardModel, angle_degrees, training_loss
from .unet import UNet, checkpoint

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
WEIGHTS = "unet.pt"
RUN = "run.json"
LOSS_CSV = "loss.csv"
LOSS_PNG = "loss.png"
RUN_FILES = (CHECKPOINT, PREVIOUS, LOSS_CSV, LOSS_PNG, WEIGHTS, RUN)
"""Every file a run writes into its folder."""
LOSS_COLUMNS = ("epoch", "train_loss", "val_loss", "val_angle_deg", "seconds")
DEFAULT_EPOCHS = 30
DEFAULT_BATCH_SIZE = 16
DEFAULT_LR = 1e-3
DEFAULT_VAL_FRACTION = 0.1
WEIGHT_DECAY = 1e-4
LR_FLOOR = 0.05
"""The learning rate of the last epoch, as a fraction of ``lr`` (``epoch_lr``)."""
GRADIENT_CLIP = 1.0
"""Largest gradient norm of a step (``torch.nn.utils.clip_grad_norm_``)."""
RESUME_SETTINGS = ("seed", "batch_size", "lr", "val_fraction", "image_weight", "augmentation", "config", "samples")
"""Settings a resumed run must share with the run that wrote its checkpoint (``epochs`` may grow)."""


@dataclass(frozen=True)
class TrainProgress:
    """How far training is: ``step`` of ``steps`` batches in ``epoch`` (1-based) of ``epochs``, the
    running mean training ``loss`` of the epoch, and the last held-out ``metrics`` (None before the
    first validation)."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    metrics: dict | None = None


@dataclass
class TrainingResult:
    """What ``train_unet`` did: the run folder, the model (on the training device), the epochs
    completed, the per-epoch ``history`` (rows of ``LOSS_COLUMNS``), the last held-out ``metrics``,
    and whether it ``finished`` (``unet.pt`` written) or was ``cancelled``."""

    out: Path
    model: UNet
    epochs: int
    history: list
    metrics: dict | None
    finished: bool
    cancelled: bool = False
    resumed_from: Path | None = None
    run: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- data


@dataclass
class Samples:
    """The complete samples of a dataset in memory (numpy): ``m (n, ny, nx, 3)`` float32,
    ``images (n, V, ny, nx)`` float32, ``heights (n, V)``, ``Ms``, ``D``, ``dx``, ``thickness``
    ``(n,)`` (SI), the dataset ``rows`` they came from, its ``views`` and ``manifest``."""

    m: np.ndarray
    images: np.ndarray
    heights: np.ndarray
    Ms: np.ndarray
    D: np.ndarray
    dx: np.ndarray
    thickness: np.ndarray
    rows: np.ndarray
    views: list
    manifest: dict
    path: str | None

    def __len__(self) -> int:
        return len(self.rows)


def load_samples(data) -> Samples:
    """The complete rows of ``data`` (a ``SyntheticDataset``, or a path opened with
    ``dataset_store.open_dataset``) in memory; ``ValueError`` naming the dataset if it has fewer
    than two complete samples, a damaged chunk, arrays of inconsistent shapes or non-finite values."""
    path = getattr(data, "path", None)
    if isinstance(data, (str, os.PathLike)):
        from .dataset_store import open_dataset

        path, data = data, open_dataset(data)
    name = str(path) if path is not None else "the dataset"
    rows = np.asarray(data.complete_rows, dtype=np.int64)
    if len(rows) < 2:
        raise ValueError(f"{name} has {len(rows)} complete samples: training needs at least 2 (one held out)")

    def take(array, dtype):
        try:
            values = np.asarray(array[:])
        except Exception as err:  # a damaged chunk: zstd, blosc and zarr errors differ by codec
            raise ValueError(f"{name} is corrupt: reading it failed ({err})") from None
        return np.ascontiguousarray(values[rows], dtype=dtype)

    material = take(data.material, np.float64)
    samples = Samples(m=take(data.m, np.float32), images=take(data.images, np.float32),
                      heights=take(data.heights, np.float64), Ms=material[:, 0], D=material[:, 3],
                      dx=take(data.dx, np.float64), thickness=take(data.thickness, np.float64), rows=rows,
                      views=list(data.views), manifest=dict(getattr(data, "manifest", None) or {}),
                      path=None if path is None else str(path))
    n, ny, nx = len(rows), samples.m.shape[1], samples.m.shape[2]
    expected = {"m": (n, ny, nx, 3), "images": (n, len(samples.views), ny, nx), "heights": (n, len(samples.views))}
    for key, shape in expected.items():
        if getattr(samples, key).shape != shape:
            raise ValueError(f"{name}: {key} has shape {getattr(samples, key).shape}, expected {shape}")
    for key in ("m", "images", "heights", "Ms", "D", "dx", "thickness"):
        if not np.all(np.isfinite(getattr(samples, key))):
            raise ValueError(f"{name}: {key} of a complete sample holds NaN or inf")
    return samples


def split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` indices of ``n`` samples: a seeded permutation, ``round(val_fraction n)``
    (at least 1, at most ``n - 1``) held out."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie between 0 and 1 (exclusive), got {val_fraction!r}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(val_fraction * n)), n - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


@dataclass
class Batch:
    """One batch of items on the CPU: noise-free ``images (B, ny, nx)`` of each item's view,
    ``m (B, ny, nx, 3)``, and ``(B,)`` columns ``Ms``, ``D_sign``, ``dx``, ``thickness``,
    ``heights``, ``views`` (indices), ``sides`` (+-1), ``quantities`` (0/1)."""

    images: torch.Tensor
    m: torch.Tensor
    Ms: torch.Tensor
    D_sign: torch.Tensor
    dx: torch.Tensor
    thickness: torch.Tensor
    heights: torch.Tensor
    views: torch.Tensor
    sides: torch.Tensor
    quantities: torch.Tensor


def make_batch(samples: Samples, index: np.ndarray, views: np.ndarray) -> Batch:
    """The items ``(samples[index[i]], view views[i])`` as a ``Batch``."""
    view_records = [samples.views[v] for v in views]
    return Batch(images=torch.from_numpy(samples.images[index, views]), m=torch.from_numpy(samples.m[index]),
                 Ms=torch.from_numpy(samples.Ms[index]), D_sign=d_sign(torch.from_numpy(samples.D[index])),
                 dx=torch.from_numpy(samples.dx[index]), thickness=torch.from_numpy(samples.thickness[index]),
                 heights=torch.from_numpy(samples.heights[index, views]), views=torch.from_numpy(views),
                 sides=torch.tensor([SIDE_SIGN[r["side"]] for r in view_records]),
                 quantities=torch.tensor([QUANTITY_CODE[r["quantity"]] for r in view_records]))


def batch_loss(model, batch: Batch, forward: ForwardModel, image_weight: float, device: torch.device,
               noisy: torch.Tensor | None = None):
    """``(LossTerms, m_pred)`` of ``model`` on ``batch``; ``noisy`` (B, ny, nx) replaces the
    noise-free images as the network's input (the training augmentation)."""
    shown = batch.images if noisy is None else noisy
    uniform = forward.uniform_images(batch.dx, batch.thickness, batch.heights, batch.views, tuple(shown.shape[-2:]),
                                     torch.float32, "cpu")
    inputs = network_input(shown, batch.dx, batch.thickness, batch.heights, batch.sides, batch.quantities,
                           batch.D_sign, uniform).to(device)
    m_pred = predict_m(model, inputs, batch.D_sign.to(device))
    terms = training_loss(m_pred, batch.m.to(device), batch.images.to(device), forward, batch.Ms, batch.dx,
                          batch.thickness, batch.heights, batch.views, image_weight, uniform.to(device))
    return terms, m_pred


def validate(model, samples: Samples, val: np.ndarray, forward: ForwardModel, batch_size: int, image_weight: float,
             device: torch.device) -> dict:
    """Held-out metrics over every view of the ``val`` samples (noise-free, no augmentation):
    ``val_loss``, ``val_angle_deg``, ``val_image_misfit`` (means over items), the mean angle per view
    ``val_angle_deg_by_view`` (``"<side> <quantity> h<height_index>"``) and ``val_samples``."""
    n_views = len(samples.views)
    index, views = np.repeat(val, n_views), np.tile(np.arange(n_views), len(val))
    sums, angles = {"loss": 0.0, "image": 0.0}, []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(index), batch_size):
            part = slice(start, start + batch_size)
            batch = make_batch(samples, index[part], views[part])
            terms, m_pred = batch_loss(model, batch, forward, image_weight, device)
            count = len(batch.views)
            sums["loss"] += float(terms.total) * count
            sums["image"] += float(terms.image) * count
            angles.append(angle_degrees(m_pred, batch.m.to(device)).cpu())
    model.train(was_training)
    angles = torch.cat(angles).numpy()
    by_view = {_view_name(record): float(angles[views == v].mean()) for v, record in enumerate(samples.views)}
    return {"val_loss": sums["loss"] / len(index), "val_angle_deg": float(angles.mean()),
            "val_image_misfit": sums["image"] / len(index), "val_angle_deg_by_view": by_view,
            "val_samples": len(val)}


def _view_name(view: dict) -> str:
    return f"{view['side']} {view['quantity']} h{view.get('height_index', 0)}"


# ----------------------------------------------------------------------------- files


@contextmanager
def _replacing(path: Path, keep: Path | None = None):
    """Yield a temporary path beside ``path``; once written and synced, move ``path`` to ``keep``
    (if given and present) and the temporary file onto ``path``. On an error nothing is replaced."""
    temporary = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield temporary
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        if keep is not None and path.exists():
            os.replace(path, keep)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    with _replacing(path) as temporary:
        temporary.write_text(text)


def _save(record: dict, path: Path, keep: Path | None = None) -> None:
    with _replacing(path, keep) as temporary:
        torch.save(record, temporary)


def read_run(out: Path) -> dict | None:
    """``run.json`` of a run folder, or None if there is none; ``ValueError`` naming it if unreadable."""
    path = out / RUN
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path}: {err}: give overwrite to start a fresh run there") from None


def _load_state(out: Path) -> tuple[dict | None, Path | None]:
    """The last readable training checkpoint of ``out`` and its path: ``checkpoint.pt``, else
    (with a warning naming the broken file) ``checkpoint.prev.pt``; ``(None, None)`` if neither
    exists; ``ValueError`` naming the file if one exists but none is readable."""
    problems = []
    for path in (out / CHECKPOINT, out / PREVIOUS):
        if not path.exists():
            continue
        try:
            record = torch.load(path, map_location="cpu", weights_only=True)
            for key in ("config", "state_dict", "optimizer", "epoch", "history", "settings"):
                if key not in record:
                    raise ValueError(f"it lacks {key!r}")
        except Exception as err:  # unpickling and zip errors differ by torch version
            problems.append(f"{path} is truncated or corrupt ({err})")
            continue
        if problems:
            warnings.warn(f"{problems[0]}; resuming from {path}", stacklevel=3)
        return record, path
    if problems:
        raise ValueError("; ".join(problems) + f": no readable checkpoint to resume from in {out}: delete the "
                         "checkpoint files to start over, or give another output folder")
    return None, None


def _check_resumable(state: dict, path: Path, settings: dict) -> None:
    """``ValueError`` naming the checkpoint if it was written with other ``RESUME_SETTINGS``."""
    for key in RESUME_SETTINGS:
        old, new = state["settings"].get(key), settings[key]
        if old != new:
            raise ValueError(f"{path} was written by a run with {key} = {old!r}, not {new!r}: give the same "
                             "settings to resume it, overwrite to start afresh, or another output folder")


def write_loss_files(out: Path, history: list) -> None:
    """``loss.csv`` and ``loss.png`` (training and held-out loss, held-out angle) of ``history``."""
    text = io.StringIO()
    writer = csv.DictWriter(text, LOSS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: row[key] for key in LOSS_COLUMNS} for row in history)
    _write_text(out / LOSS_CSV, text.getvalue())
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), constrained_layout=True)
    ax = fig.add_subplot()
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row["train_loss"] for row in history], "o-", label="training loss")
    ax.plot(epochs, [row["val_loss"] for row in history], "s-", label="held-out loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.xaxis.get_major_locator().set_params(integer=True)
    angle = ax.twinx()
    angle.plot(epochs, [row["val_angle_deg"] for row in history], "^--", color="C2", label="held-out angle")
    angle.set_ylabel("held-out mean angle (deg)")
    fig.legend(loc="upper right")
    with _replacing(out / LOSS_PNG) as temporary:
        fig.savefig(temporary, dpi=80, format="png")


def training_ranges(recipe: dict) -> dict:
    """The ``(low, high)`` ranges of a dataset recipe (its entries that are two numbers), SI."""
    return {key: list(value) for key, value in recipe.items() if isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)}


def data_ranges(samples: Samples, rows: np.ndarray) -> dict:
    """``[min, max]`` (SI) over ``rows`` of Ms, |D|, dx, thickness and the plane distances."""
    values = {"Ms": samples.Ms, "abs_D": np.abs(samples.D), "dx": samples.dx, "thickness": samples.thickness,
              "height": samples.heights}
    return {key: [float(np.min(v[rows])), float(np.max(v[rows]))] for key, v in values.items()}


# ----------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class Ranks:
    """This process's ``rank`` among ``world`` processes (1: not distributed), its ``device``,
    and whether ``train_unet`` started the process group (and ends it)."""

    rank: int
    world: int
    device: torch.device
    owns_group: bool

    @property
    def writes(self) -> bool:
        """Only rank 0 writes files."""
        return self.rank == 0


def _ranks(device) -> Ranks:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``). The device:
    ``device`` if given (not ``"auto"``), else CUDA when present, else the CPU; a CUDA device
    without an index is ``cuda:LOCAL_RANK``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local)
    if world == 1:
        return Ranks(0, 1, device, False)
    import torch.distributed as dist

    owns = not dist.is_initialized()
    if owns:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), device, owns)


def _all_mean(total: float, count: int, ranks: Ranks) -> float:
    """``sum(total) / sum(count)`` over the ranks."""
    if ranks.world == 1:
        return total / count
    import torch.distributed as dist

    values = torch.tensor([total, float(count)], dtype=torch.float64, device=ranks.device)
    dist.all_reduce(values)
    return float(values[0] / values[1])


def _compare_ranks(model, steps: int, ranks: Ranks) -> dict:
    """``{"world_size", "steps_per_rank", "weights_equal_across_ranks"}``: every rank's number of
    optimizer steps and whether its weights equal rank 0's exactly."""
    if ranks.world == 1:
        return {"world_size": 1, "steps_per_rank": [steps], "weights_equal_across_ranks": True}
    import torch.distributed as dist

    flat = torch.cat([p.detach().reshape(-1).to(torch.float64) for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(ranks.world)]
    dist.all_gather(gathered, flat)
    counts = [None] * ranks.world
    dist.all_gather_object(counts, steps)
    return {"world_size": ranks.world, "steps_per_rank": counts,
            "weights_equal_across_ranks": all(torch.equal(g, gathered[0]) for g in gathered)}


# ----------------------------------------------------------------------------- training


def check_run_folder(out: Path, overwrite: bool) -> None:
    """``ValueError`` naming ``out`` if it is a file, or a folder holding a finished run (unless
    ``overwrite``)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"cannot write the run into {out}: it is a file, not a folder")
    previous = None if overwrite else read_run(out)
    if previous is not None and previous.get("finished"):
        raise ValueError(f"{out} holds a finished training run ({out / WEIGHTS}): it is never trained over; give "
                         "another output folder, or overwrite (--overwrite) to train afresh there")


def _prepare_folder(out: Path, resume: bool, overwrite: bool, ranks: Ranks) -> tuple[dict | None, Path | None]:
    """Clear the folder's run files for a fresh run (``overwrite``, or no ``resume``), else return
    the checkpoint state to resume from and its file, or ``(None, None)``."""
    if overwrite or not resume:
        if ranks.writes:
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
        return None, None
    return _load_state(out)


def train_unet(data, out_dir, epochs: int = DEFAULT_EPOCHS, batch_size: int = DEFAULT_BATCH_SIZE,
               lr: float = DEFAULT_LR, seed: int = 0, val_fraction: float = DEFAULT_VAL_FRACTION, device=None,
               progress=None, cancel: threading.Event | None = None, resume: bool = True, overwrite: bool = False,
               image_weight: float = DEFAULT_IMAGE_WEIGHT, augmentation: Augmentation = Augmentation(),
               base: int = 8, depth: int = 3, command: str | None = None) -> TrainingResult:
    """Train a ``UNet(base=base, depth=depth)`` on ``data``, writing the run into ``out_dir``.

    Parameters
    ----------
    data : SyntheticDataset, str or Path
        The dataset (a path is opened with ``dataset_store.open_dataset``); its complete rows are used.
    out_dir : str or Path
        The run folder (created); see the module docstring for its files.
    epochs : int
        Total epochs of the run (a resumed run continues up to it).
    batch_size : int
        Items per optimizer step and process.
    lr : float
        AdamW learning rate (weight decay ``WEIGHT_DECAY``).
    seed : int
        Seeds the split, the initial weights, each epoch's views, order and augmentation.
    val_fraction : float
        Share of the samples held out for validation (0 < f < 1).
    device : str or torch.device, optional
        Default (None or "auto"): CUDA when present, else the CPU.
    progress : callable(TrainProgress), optional
        Called after every batch and after every validation.
    cancel : threading.Event, optional
        Set to stop before the next batch: the epoch in progress is dropped, the last checkpoint
        stays, and the result has ``cancelled`` True (resume later with the same call).
    resume : bool
        Continue from the folder's checkpoint, if any (else its run files are cleared).
    overwrite : bool
        Start a fresh run even where a finished one lies (its files are replaced).
    image_weight : float
        Weight of the image misfit in the loss (``training_loss.DEFAULT_IMAGE_WEIGHT``).
    augmentation : Augmentation
    base, depth : int
        The U-Net's size (``unet.UNet``).
    command : str, optional
        The command recorded in the weights' metadata (default: this process's ``sys.argv``).
    """
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    cancel = threading.Event() if cancel is None else cancel
    out = Path(out_dir)
    check_run_folder(out, overwrite)
    samples = load_samples(data)
    ranks = _ranks(device)
    try:
        with threads_for(batch_size * samples.m.shape[1] * samples.m.shape[2]):
            result = _train(samples, out, epochs, batch_size, lr, seed, val_fraction, progress, cancel, resume,
                            overwrite, image_weight, augmentation, base, depth, command or shlex.join(sys.argv), ranks)
        if ranks.owns_group:
            import torch.distributed as dist

            # every rank reaches the end before any tears its connections down: a rank that closed
            # them while another still had gloo traffic in flight was aborted at exit (SIGABRT,
            # "terminate called without an active exception"; once in four CI runs)
            dist.barrier()
        return result
    finally:
        if ranks.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train(samples, out, epochs, batch_size, lr, seed, val_fraction, progress, cancel, resume, overwrite,
           image_weight, augmentation, base, depth, command, ranks: Ranks) -> TrainingResult:
    train_rows, val_rows = split(len(samples), val_fraction, seed)
    torch.manual_seed(seed)
    model = UNet(base=base, depth=depth).to(ranks.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    settings = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "val_fraction": val_fraction,
                "image_weight": image_weight, "augmentation": asdict(augmentation), "config": model.config(),
                "samples": len(samples)}
    if ranks.writes:
        out.mkdir(parents=True, exist_ok=True)
    state, resumed_from = _prepare_folder(out, resume, overwrite, ranks)
    history, metrics, start = [], None, 0
    if state is not None:
        _check_resumable(state, resumed_from, settings)
        if state["epoch"] > epochs:
            raise ValueError(f"{resumed_from} has {state['epoch']} epochs done, more than epochs = {epochs}: give "
                             "at least as many to resume it")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        history, metrics, start = list(state["history"]), state.get("metrics"), int(state["epoch"])
    run = {"format": "napari-mmrecon training run", "finished": False, "settings": settings, "data": samples.path,
           "command": command, "git_commit": git_commit(), "world_size": ranks.world, "epochs_done": start}
    net = model
    if ranks.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[ranks.device.index] if ranks.device.type == "cuda" else None)
    forward = ForwardModel(samples.views, samples.manifest.get("mfm_tip"), samples.manifest.get("cantilever"))
    steps_taken = 0
    for epoch in range(start, epochs):
        began = time.perf_counter()
        index, views = _epoch_items(len(samples.views), train_rows, seed, epoch, ranks)
        generator = torch.Generator().manual_seed(int(np.random.default_rng([seed, epoch, ranks.rank]).integers(2**62)))
        steps = math.ceil(len(index) / batch_size)
        for group in optimizer.param_groups:
            group["lr"] = epoch_lr(lr, epoch, epochs)
        total, count = 0.0, 0
        net.train()
        for step in range(steps):
            if cancel.is_set():
                return TrainingResult(out, model, epoch, history, metrics, False, True, resumed_from, run)
            part = slice(step * batch_size, (step + 1) * batch_size)
            batch = make_batch(samples, index[part], views[part])
            if augmentation.symmetries:
                batch.images, batch.m = random_dihedral(batch.images, batch.m, generator)
            noisy = scan_artefacts(batch.images, generator, augmentation)
            terms, _ = batch_loss(net, batch, forward, image_weight, ranks.device, noisy)
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), GRADIENT_CLIP)
            optimizer.step()
            steps_taken += 1
            total, count = total + float(terms.total.detach()) * len(batch.views), count + len(batch.views)
            if progress is not None:
                progress(TrainProgress(epoch + 1, epochs, step + 1, steps, total / count, metrics))
        train_loss = _all_mean(total, count, ranks)
        if not ranks.writes:
            continue
        metrics = validate(model, samples, val_rows, forward, batch_size, image_weight, ranks.device)
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": metrics["val_loss"],
                        "val_angle_deg": metrics["val_angle_deg"], "seconds": time.perf_counter() - began})
        _save({**checkpoint(model, {}), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
               "history": history, "metrics": metrics, "settings": settings}, out / CHECKPOINT, out / PREVIOUS)
        write_loss_files(out, history)
        run["epochs_done"] = epoch + 1
        _write_text(out / RUN, json.dumps(run, indent=2))
        if progress is not None:
            progress(TrainProgress(epoch + 1, epochs, steps, steps, train_loss, metrics))
    run.update(_compare_ranks(model, steps_taken, ranks))
    if ranks.writes:
        if not run["weights_equal_across_ranks"]:
            raise RuntimeError(f"the ranks' weights differ after training (steps {run['steps_per_rank']}): "
                               f"{out / WEIGHTS} is not written")
        _save(checkpoint(model, _weights_meta(samples, train_rows, run, metrics, epochs)), out / WEIGHTS)
        run.update(finished=True, metrics=metrics)
        _write_text(out / RUN, json.dumps(run, indent=2))
    return TrainingResult(out, model, epochs, history, metrics, True, False, resumed_from, run)


def epoch_lr(lr: float, epoch: int, epochs: int) -> float:
    """Learning rate of epoch ``epoch`` (0-based) of ``epochs``: ``lr`` at the first, cosine down to
    ``LR_FLOOR lr`` at the last."""
    done = epoch / max(epochs - 1, 1)
    return lr * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * done)))


def _epoch_items(n_views: int, train_rows: np.ndarray, seed: int, epoch: int, ranks: Ranks):
    """This rank's items of an epoch, in order: ``(sample indices, view indices)``. Each training
    sample gets one random view (seeded by ``(seed, epoch)``, the same on every rank); the order
    is a seeded permutation, split among the ranks by a ``DistributedSampler``."""
    rng = np.random.default_rng([seed, epoch])
    views = rng.integers(0, n_views, size=len(train_rows))
    if ranks.world == 1:
        order = rng.permutation(len(train_rows))
    else:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(range(len(train_rows)), num_replicas=ranks.world, rank=ranks.rank, shuffle=True,
                                     seed=seed)
        sampler.set_epoch(epoch)
        order = np.fromiter(iter(sampler), dtype=np.int64)
    return train_rows[order], views[order]


def _weights_meta(samples: Samples, train_rows: np.ndarray, run: dict, metrics: dict, epochs: int) -> dict:
    """The ``meta`` of ``unet.pt``: plain values only (loadable with ``weights_only=True``)."""
    from ... import __version__

    recipe = samples.manifest.get("recipe") or {}
    return {"format": "napari-mmrecon U-Net", "version": 1, "code_version": __version__,
            "git_commit": run["git_commit"], "command": run["command"], "data": samples.path,
            "dataset_seed": samples.manifest.get("seed"), "dataset_git_commit": samples.manifest.get("git_commit"),
            "recipe": recipe, "training_ranges": training_ranges(recipe),
            "data_ranges": data_ranges(samples, train_rows), "views": samples.views,
            "mfm_tip": samples.manifest.get("mfm_tip"), "cantilever": samples.manifest.get("cantilever"),
            "seed": run["settings"]["seed"], "epochs": epochs, "settings": run["settings"],
            "training_samples": len(train_rows), "metrics": metrics,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
