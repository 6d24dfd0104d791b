"""Texture-reconstruction cost: wall time and its split, beside the "energy" baseline in the same run.

Run by hand (never in CI)::

    python benchmarks/bench_reconstruct.py [--threads 2] [--sizes 128 256]

Targets: the stray field H_z at 10 nm above (the strong side) of the bundled relaxed skyrmion lattice
(128 x 128 x 1 cells of 2 nm, 43 skyrmions) and of the same lattice tiled 2 x 2 and relaxed
(256 x 256 x 1; without the relaxation the tiles' canted open edges would sit inside the film, a
texture no smooth bias holds; 800 minimizer steps remove them); the material is known. Each size runs ``reconstruct_texture`` with the default "bias" method (time
split: relaxations, adjoint solves, the rest: images, penalties, L-BFGS) and the "energy" baseline
(direct L-BFGS over unit vectors), and reports both wall times, their ratio and the mean angle
error of each result. Goals (issue 13): 128^2 under 60 s, 256^2 under 5 min.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def _target(n: int):
    import napari_mmrecon as mm
    from napari_mmrecon._sample_data import load_state

    m, grid, material = load_state("skyrmion_lattice")
    if n != grid.nx:
        tiles = n // grid.nx
        grid = mm.Grid(nx=n, ny=n, nz=1, dx=grid.dx, dy=grid.dy, dz=grid.dz)
        # the tiles' canted open edges would sit inside the larger film: relax them away first (800
        # steps, max torque ~1e-2; the lattice would then drift for thousands more)
        m = mm.relax(np.tile(m, (1, tiles, tiles, 1)), grid, material, max_iter=800)
    measurement = mm.StrayFieldMeasurement(height=10e-9, side="top", component="z")
    return m, grid, material, measurement, measurement.simulate(m, grid, material.Ms)


def run(n: int) -> dict:
    import napari_mmrecon as mm

    m, grid, material, measurement, image = _target(n)
    row = {"size": n}
    for method in ("bias", "energy"):
        started = time.perf_counter()
        rec = mm.reconstruct_texture(image, grid, material, measurement, method=method)
        seconds = time.perf_counter() - started
        q = mm.texture_metrics(rec.m, m, grid)
        row[method] = {"seconds": seconds, "iterations": rec.iterations, "converged": rec.converged,
                       "angle_error_deg": q.angle_error, "mz_correlation": q.mz_correlation,
                       "relax": rec.timings.get("relax", float("nan")),
                       "adjoint": rec.timings.get("adjoint", float("nan"))}
        if method == "bias":
            row[method]["rest"] = seconds - row[method]["relax"] - row[method]["adjoint"]
    row["bias / energy"] = row["bias"]["seconds"] / row["energy"]["seconds"]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [run(n) for n in args.sizes]
    print(json.dumps(rows, indent=1))
    print("| film | bias: total (relax / adjoint / rest) | angle error | energy baseline | angle error | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        b, e = r["bias"], r["energy"]
        print(f"| {r['size']}^2 | {b['seconds']:.1f} s ({b['relax']:.1f} / {b['adjoint']:.1f} / {b['rest']:.1f}) | "
              f"{b['angle_error_deg']:.2f} deg | {e['seconds']:.1f} s | {e['angle_error_deg']:.2f} deg | "
              f"{r['bias / energy']:.2f} |")


if __name__ == "__main__":
    main()
