"""Data-parallel training on the CPU: two "gloo" processes train together (started by
torch.multiprocessing, and by torchrun running ``mmrecon train``), both take their steps, only
rank 0 writes, and the final weights are the same on both ranks and in unet.pt."""

import json
import os
import socket
import subprocess
import sys

import torch
import torch.multiprocessing as mp

from learn_data import VIEWS, manifest, tiny_arrays, write_store
from napari_mmrecon.backend.learn.dataset_store import SyntheticDataset
from napari_mmrecon.backend.learn.training import RUN, WEIGHTS, train_unet
from napari_mmrecon.backend.learn.unet import load_checkpoint

WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weights(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def rank_process(rank: int, port: int, out: str, arrays: dict, reports: str) -> None:
    """One rank, as torchrun would start it (the environment of ``torch.distributed.run``)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    data = SyntheticDataset.from_arrays(**arrays, views=VIEWS, manifest=manifest(len(arrays["m"])))
    result = train_unet(data, out, epochs=1, batch_size=2, base=4, depth=2, device="cpu")
    torch.save({"weights": weights(result.model), "finished": result.finished}, os.path.join(reports, f"{rank}.pt"))


def test_two_gloo_ranks_train_one_model(tmp_path):
    out, reports = tmp_path / "run", tmp_path / "reports"
    reports.mkdir()
    mp.spawn(rank_process, args=(free_port(), str(out), tiny_arrays(), str(reports)), nprocs=WORLD, join=True)
    ranks = [torch.load(reports / f"{rank}.pt", weights_only=True) for rank in range(WORLD)]
    assert all(report["finished"] for report in ranks)
    assert torch.equal(ranks[0]["weights"], ranks[1]["weights"])
    model, meta = load_checkpoint(out / WEIGHTS)
    assert torch.equal(weights(model), ranks[0]["weights"])
    run = json.loads((out / RUN).read_text())
    # 7 training samples, padded to 8 by the DistributedSampler: 4 items, 2 batches of 2 per rank
    assert run["world_size"] == WORLD and run["steps_per_rank"] == [2, 2] and run["weights_equal_across_ranks"]
    assert run["finished"] and meta["metrics"]["val_samples"] == 1
    assert sorted(path.name for path in out.iterdir()) == ["checkpoint.pt", "loss.csv", "loss.png", "run.json",
                                                           "unet.pt"]


def test_torchrun_runs_mmrecon_train_on_two_ranks(tmp_path):
    data, out = tmp_path / "data.zarr", tmp_path / "run"
    write_store(data, tiny_arrays())
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
                           "-m", "napari_mmrecon.cli", "train", "--data", str(data), "-o", str(out), "--epochs", "1",
                           "--batch-size", "2", "--device", "cpu", "--threads", "1", "--quiet"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("training the U-Net on") == 1 and done.stdout.count("held-out: loss") == 1
    run = json.loads((out / RUN).read_text())
    assert run["world_size"] == WORLD and run["steps_per_rank"] == [2, 2] and run["weights_equal_across_ranks"]
    assert run["finished"] and run["data"] == str(data) and run["command"].startswith("mmrecon train --data")
    _, meta = load_checkpoint(out / WEIGHTS)
    assert meta["data"] == str(data) and meta["training_samples"] == 7
