"""U-Net training throughput and inference time on the CPU.

Run by hand (never in CI)::

    python benchmarks/bench_training.py [--threads 2] [--batch-sizes 8 16 32] [--repeats 5]

``train``: optimizer steps of the default ``UNet`` (base 8, depth 3) on random 64 x 64 batches
(5 input channels, targets random unit vectors): forward, loss, backward, AdamW step. Reported in
samples per second (median over ``--repeats`` steps after one warm-up), once with the angle term
alone ("network") and once with the full loss ("with image term": the image misfit of every item
through its own forward operator, H_z or MFM on either side, all operators cached as in the steady
state of an epoch). The one-time cost of building a 64 x 64 operator is reported beside it.

``inference``: one 512 x 512 image (``predict_m``: padding, network, normalization) in eval mode
without gradients, for the default network and smaller ones; the goal is < 0.5 s on 2 cores.
Median over ``--repeats`` calls after one warm-up, with each network's weight size in MB.

``tiles``: ``mm.unet_predict`` with the shipped weights, the whole user path (checks, levelling,
padding, network, blending), on a 512 x 512 image (one tile) and a 2048 x 2048 image (25
overlapping tiles of 512 x 512); one call each after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from napari_mmrecon.backend.learn.network_input import network_input, predict_m
from napari_mmrecon.backend.learn.training_loss import ForwardModel, training_loss
from napari_mmrecon.backend.learn.unet import UNet, weights_bytes

CELLS = 64
VIEWS = [{"side": side, "quantity": quantity, "height_index": 0} for side in ("top", "bottom")
         for quantity in ("Hz", "mfm")]
TIP = {"model": "dipole", "moment": 1e-16, "direction": [0.0, 0.0, 1.0]}
CANTILEVER = {"k": 3.0, "f0": 75e3, "Q": 200.0}
INFERENCE_SIZES = ((8, 3), (8, 2), (12, 3), (16, 3), (16, 2))
"""(base, depth) of the networks timed on a 512 x 512 image; the first is the default."""


def _median_seconds(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _batch(b: int, rng: np.random.Generator) -> dict:
    """A random batch of ``b`` items: input columns (SI) and targets."""
    m = torch.randn(b, CELLS, CELLS, 3)
    return {"images": torch.randn(b, CELLS, CELLS), "m": m / m.norm(dim=-1, keepdim=True),
            "dx": torch.from_numpy(rng.uniform(1e-9, 3e-9, b)),
            "thickness": torch.from_numpy(rng.uniform(5e-10, 2e-9, b)),
            "heights": torch.from_numpy(rng.uniform(3e-9, 3e-8, b)), "views": torch.from_numpy(rng.integers(0, 4, b)),
            "Ms": torch.from_numpy(rng.uniform(3e5, 1e6, b)), "D_sign": torch.from_numpy(rng.choice([-1.0, 1.0], b))}


def train(batch_sizes, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = UNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    forward = ForwardModel(VIEWS, TIP, CANTILEVER)
    results = {}
    for b in batch_sizes:
        data = _batch(b, rng)
        sides = torch.tensor([1.0 if VIEWS[v]["side"] == "top" else -1.0 for v in data["views"]])
        quantities = torch.tensor([float(VIEWS[v]["quantity"] == "mfm") for v in data["views"]])
        uniform = forward.uniform_images(data["dx"], data["thickness"], data["heights"], data["views"],
                                         tuple(data["images"].shape[-2:]), torch.float32, "cpu")
        inputs = network_input(data["images"], data["dx"], data["thickness"], data["heights"], sides, quantities,
                               data["D_sign"], uniform)
        start = time.perf_counter()
        forward.images(data["m"], data["Ms"], data["dx"], data["thickness"], data["heights"], data["views"])
        build = (time.perf_counter() - start) / b

        def step(weight, inputs=inputs, data=data):
            m_pred = predict_m(model, inputs, data["D_sign"])
            loss = training_loss(m_pred, data["m"], data["images"], forward, data["Ms"], data["dx"],
                                 data["thickness"], data["heights"], data["views"], weight)
            optimizer.zero_grad()
            loss.total.backward()
            optimizer.step()

        network = _median_seconds(lambda: step(0.0), repeats)
        full = _median_seconds(lambda: step(0.1), repeats)
        results[b] = {"samples_per_s_network": b / network, "samples_per_s_with_image_term": b / full,
                      "operator_build_s": build}
        print(f"batch {b:3d}: {b / network:6.1f} samples/s network only, {b / full:6.1f} samples/s with the image "
              f"term; building one 64 x 64 operator {build * 1e3:.0f} ms (once per view and film geometry)")
    return results


def inference(repeats: int) -> dict:
    results = {}
    x = network_input(torch.randn(1, 512, 512), [2e-9], [1e-9], [1e-8], [1.0], [0.0], [1.0], torch.randn(1, 512, 512))
    for base, depth in INFERENCE_SIZES:
        model = UNet(base=base, depth=depth).eval()
        with torch.no_grad():
            seconds = _median_seconds(lambda model=model: predict_m(model, x, [1.0]), repeats)
        size = weights_bytes(model) / 1e6
        results[f"base{base}_depth{depth}"] = {"seconds": seconds, "weights_MB": size}
        print(f"UNet(base={base}, depth={depth}): 512 x 512 in {seconds:.3f} s "
              f"({'meets' if seconds < 0.5 else 'misses'} the 0.5 s goal), weights {size:.2f} MB")
    return results


def tiles() -> dict:
    import napari_mmrecon as mm

    results = {}
    meas = mm.StrayFieldMeasurement(height=10e-9, side="top", component="z")
    for n in (512, 2048):
        grid = mm.Grid(nx=n, ny=n, nz=1, dx=2e-9, dy=2e-9, dz=1e-9)
        image = np.random.default_rng(0).standard_normal((n, n))
        mm.unet_predict(image[:512, :512], mm.Grid(nx=512, ny=512, nz=1, dx=2e-9, dy=2e-9, dz=1e-9), meas)
        started = time.perf_counter()
        _, info = mm.unet_predict(image, grid, meas, return_info=True)
        seconds = time.perf_counter() - started
        results[f"{n}x{n}"] = {"seconds": seconds, "notes": info.notes}
        print(f"unet_predict {n} x {n}: {seconds:.2f} s ({'; '.join(info.notes[1:]) or 'one tile'})")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--parts", nargs="+", choices=("train", "inference", "tiles"),
                        default=["train", "inference", "tiles"])
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    results = {}
    if "train" in args.parts:
        results["train"] = train(args.batch_sizes, args.repeats)
    if "inference" in args.parts:
        results["inference"] = inference(args.repeats)
    if "tiles" in args.parts:
        results["tiles"] = tiles()
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
