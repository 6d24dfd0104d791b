"""U-Net training as a job: what ``mmrecon train`` runs (and a widget could). It only orchestrates
``backend.learn.training.train_unet`` (in a helper thread, through ``jobs.relay``) and reports in
the protocol of ``jobs``::

    result = jobs.run(train("data.zarr", "run/", TrainOptions(epochs=30)))
    result.metrics["val_angle_deg"], result.out / "unet.pt"

While it trains the job yields ``Progress(step, total steps, text)`` after every batch (the text:
epoch, running loss, last held-out loss and angle). Cancelling (the ``cancel`` event) stops it
before the next batch; the run keeps its last checkpoint and resumes from it when started again
with the same options (``result.cancelled`` is then True).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..backend.learn.training import TrainProgress, train_unet
from .jobs import Job, Progress, relay
from .options import OPTIONS


@dataclass(frozen=True)
class TrainOptions:
    """How to train (the arguments of ``train_unet`` besides the data and folder); defaults are the
    declared ones of ``options`` (``device`` "auto": CUDA when present)."""

    epochs: int = OPTIONS["epochs"].default
    batch_size: int = OPTIONS["batch_size"].default
    lr: float = OPTIONS["lr"].default
    seed: int = OPTIONS["train_seed"].default
    device: str = OPTIONS["train_device"].default
    overwrite: bool = False


def describe(progress: TrainProgress) -> Progress:
    """A ``Progress`` over all batches of the run, with the epoch, loss and last held-out metrics."""
    text = f"epoch {progress.epoch}/{progress.epochs}: loss {progress.loss:.4f}"
    if progress.metrics is not None:
        text += (f", held-out loss {progress.metrics['val_loss']:.4f}, angle "
                 f"{progress.metrics['val_angle_deg']:.1f} deg")
    return Progress((progress.epoch - 1) * progress.steps + progress.step, progress.epochs * progress.steps, text)


def train(data, out, options: TrainOptions = TrainOptions(), command: str | None = None,
          cancel: threading.Event | None = None) -> Job:
    """Job (see ``jobs``): ``train_unet(data, out, ...)`` with progress.

    Parameters
    ----------
    data : SyntheticDataset, str or Path
        The dataset (a zarr path is opened by the backend).
    out : str or Path
        The run folder (``checkpoint.pt``, ``loss.csv``, ``loss.png``, ``unet.pt``, ``run.json``).
    options : TrainOptions
    command : str, optional
        The command line recorded in the weights' metadata.
    cancel : threading.Event, optional

    Returns the backend's ``TrainingResult``.
    """
    cancel = threading.Event() if cancel is None else cancel

    def call(report):
        return train_unet(data, out, epochs=options.epochs, batch_size=options.batch_size, lr=options.lr,
                          seed=options.seed, device=options.device, progress=report, cancel=cancel,
                          overwrite=options.overwrite, command=command)

    yield Progress(0, 0, "train: loading the dataset")
    return (yield from relay(call, describe, cancel))
