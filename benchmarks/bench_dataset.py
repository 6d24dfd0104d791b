"""Synthetic-dataset speed: one shard relaxed as a batch beside the same samples relaxed one by one.

Run by hand (never in CI):

    python benchmarks/bench_dataset.py [--cells 64] [--shard-size 16] [--shards 1] [--threads 1]

For each shard of the dataset of ``--seed`` (``backend.learn.synthetic.draw_shard``: the random
films, materials, fields and starting textures of the default recipe), in one run on the same
machine and threads:

- ``batched``: ``relax_shard``, the ``shard_size`` samples relaxed together (``relax`` with
  length-B material vectors and per-state fields), as ``mmrecon dataset`` does;
- ``one by one``: ``relax`` of each sample alone (scalar material, its own field), same tolerance
  and iteration cap.

Both then image the relaxed states from every view in one batch (``view_images``, timed apart: its
cost is the stray-field kernels of the shard's cell size and heights, built once per shard).
"iterations" is the batch's (that of its slowest state; each one evaluates the states still
relaxing) or the sum over the samples; "samples/s" counts relaxation and images; "same" is the
number of samples whose two relaxed states agree to ``SAME`` in every cell (a state left unconverged
at the cap may differ, and so may a converged one along a soft mode: the relaxation stops at a
torque, not at a point). The dataset's local workers run one torch thread each (``--threads 1``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from napari_mmrecon.backend.learn.recipe import DatasetRecipe
from napari_mmrecon.backend.learn.synthetic import ShardDraw, draw_shard, relax_shard, view_images, views
from napari_mmrecon.backend.physics.grid import Material
from napari_mmrecon.backend.solvers.relax import relax

SAME = 1e-2
"""Largest difference of two unit vectors, in any cell, of states counted as the same."""


def one_by_one(draw: ShardDraw, recipe: DatasetRecipe) -> tuple[np.ndarray, int, np.ndarray]:
    """``(m (B, 1, ny, nx, 3), iterations summed over the samples, converged (B,))`` of each sample
    relaxed alone."""
    states, iterations, converged = [], 0, []
    for i, (Ms, A, Ku, D) in enumerate(draw.material):
        m, info = relax(draw.m0[i], draw.grid, Material(Ms=Ms, A=A, Ku=Ku, D=D),
                        external_field=(0.0, 0.0, draw.external_field[i]), tol=recipe.tol, max_iter=recipe.max_iter,
                        return_info=True)
        states.append(m)
        iterations += info.iterations
        converged.append(info.converged)
    return np.stack(states), iterations, np.array(converged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--shards", type=int, default=1, help="shards timed (indices 0, 1, ...)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = DatasetRecipe(cells=args.cells, shard_size=args.shard_size)
    view_list = views(recipe)
    print(f"torch {torch.__version__}, {args.threads} thread(s); {args.cells} x {args.cells} cells, shards of "
          f"{args.shard_size}, {len(view_list)} views, tol {recipe.tol:g}, at most {recipe.max_iter} iterations")
    print(f"{'shard':>5} {'mode':<11} {'relax s':>8} {'images s':>8} {'iterations':>10} {'converged':>9} "
          f"{'same':>5} {'samples/s':>9}")
    for index in range(args.shards):
        draw = draw_shard(recipe, args.seed, index)
        B = len(draw.material)
        start = time.perf_counter()
        batched, info = relax_shard(draw, recipe)
        relaxed = time.perf_counter()
        view_images(draw.grid, draw.heights, view_list, batched, draw.material[:, 0])
        rows = [("batched", relaxed - start, time.perf_counter() - relaxed, info.iterations, info.converged)]
        start = time.perf_counter()
        singles, iterations, converged = one_by_one(draw, recipe)
        relaxed = time.perf_counter()
        view_images(draw.grid, draw.heights, view_list, singles, draw.material[:, 0])
        rows.append(("one by one", relaxed - start, time.perf_counter() - relaxed, iterations, converged))
        same = int(np.count_nonzero(np.abs(batched - singles).max(axis=(1, 2, 3, 4)) < SAME))
        for mode, relax_s, images_s, its, done in rows:
            print(f"{index:>5} {mode:<11} {relax_s:8.2f} {images_s:8.2f} {its:>10} {int(done.sum()):>6}/{B:<2} "
                  f"{same:>5} {B / (relax_s + images_s):9.2f}")


if __name__ == "__main__":
    main()
