"""The texture-reconstruction study behind docs/reconstruction.md.

Run by hand (about an hour on 2 cores)::

    python docs/reconstruction_study.py targets   # make the labyrinth target (minutes; cached)
    python docs/reconstruction_study.py grid      # every target x side x height x noise x method
    python docs/reconstruction_study.py joint     # texture and Ms, A, Ku, D from the film, 20 % off
    python docs/reconstruction_study.py figures   # pictures of typical results

Targets, none made by the reconstruction:

- ``skyrmion``: the bundled isolated Neel skyrmion (64 x 64 x 1 cells of 1 nm, relaxed by the plain
  minimizer from a textbook profile);
- ``film``: 12 Neel skyrmions of different radii at random positions, relaxed by magnum.np 2.2.0
  (``tests/data/magnumnp_film_64x64x1.npz``, 64 x 64 x 1 cells of 2 nm);
- ``labyrinth``: a random labyrinth (``textures.labyrinth``) relaxed by the plain minimizer with
  the film's material (64 x 64 x 1 cells of 2 nm).

Images: H_z at 5, 10 and 20 nm on the top (strong) and the bottom (weak) side, with Gaussian noise
of 0, 5, 10 and 20 % of the image's standard deviation (seed 7); the material is known. Each
method gets ``MAX_ITER`` outer iterations. Results go to docs/reconstruction_study/.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import napari_mmrecon as mm
from napari_mmrecon._sample_data import load_state
from napari_mmrecon.backend.inverse.studies import parallel_map

OUT = Path(__file__).parent / "reconstruction_study"
FILM = np.load(Path(__file__).parents[1] / "tests" / "data" / "magnumnp_film_64x64x1.npz")
FILM_GRID = mm.Grid(nx=64, ny=64, nz=1, dx=float(FILM["dx"]), dy=float(FILM["dy"]), dz=float(FILM["dz"]))
FILM_MATERIAL = mm.Material(Ms=float(FILM["Ms"]), A=float(FILM["A"]), Ku=float(FILM["Ku"]), D=float(FILM["Di"]))
HEIGHTS = (5e-9, 10e-9, 20e-9)
SIDES = ("top", "bottom")
NOISE = (0.0, 0.05, 0.1, 0.2)
METHODS = ("bias", "energy", "fourier")
MAX_ITER = 30
METRICS = ("angle_error", "mz_correlation", "curl_free_error", "div_free_error", "charge", "charge_true",
           "skyrmions", "skyrmions_true", "matched", "position_error", "radius_error")


def target(name: str):
    """``(m_true, grid, material)`` of a study target."""
    if name == "skyrmion":
        return load_state("single_skyrmion")
    if name == "film":
        return FILM["m_relaxed"], FILM_GRID, FILM_MATERIAL
    path = OUT / "labyrinth.npy"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        m = mm.relax(mm.textures.labyrinth(FILM_GRID, period=40e-9, seed=2), FILM_GRID, FILM_MATERIAL, tol=1e-6)
        np.save(path, m)
    return np.load(path), FILM_GRID, FILM_MATERIAL


def run_case(case: dict) -> dict:
    """One reconstruction: the case's target, side, height, noise and method; metrics and time."""
    m_true, grid, material = target(case["target"])
    measurement = mm.StrayFieldMeasurement(height=case["height"], side=case["side"], component="z")
    image = measurement.simulate(m_true, grid, material.Ms)
    sigma = case["noise"] * image.std()
    noisy = image + sigma * np.random.default_rng(7).standard_normal(image.shape)
    started = time.perf_counter()
    rec = mm.reconstruct_texture(noisy, grid, material, measurement, method=case["method"], max_iter=MAX_ITER,
                                 noise=sigma if sigma > 0 else None)
    seconds = time.perf_counter() - started
    q = mm.texture_metrics(rec.m, m_true, grid).to_dict()
    return {**case, **{k: q[k] for k in METRICS}, "seconds": seconds, "converged": rec.converged,
            "residual": float(np.sqrt(rec.misfit)), "iterations": rec.iterations}


def grid_study(workers: int) -> list:
    cases = [dict(target=t, side=s, height=h, noise=n, method=me) for t in ("skyrmion", "film", "labyrinth")
             for s in SIDES for h in HEIGHTS for n in NOISE for me in METHODS]
    for name in ("skyrmion", "film", "labyrinth"):
        target(name)
    rows = parallel_map(run_case, cases, workers=workers,
                        progress=lambda done, total: print(f"{done}/{total}", flush=True))
    OUT.mkdir(exist_ok=True)
    (OUT / "grid.json").write_text(json.dumps(rows, indent=1))
    return rows


def _cell(row: dict) -> str:
    return (f"{row['angle_error']:.1f} / {row['mz_correlation']:.3f} / {row['curl_free_error']:.2f} / "
            f"{row['charge'] - row['charge_true']:+.1f} / {row['matched']}/{row['skyrmions_true']} / "
            f"{row['seconds']:.0f} s")


def tables(rows: list) -> str:
    """Markdown: one table per target, rows side x height x noise, columns the methods."""
    out = []
    for name in ("skyrmion", "film", "labyrinth"):
        out.append(f"\n#### {name}\n")
        out.append("each cell: mean angle error (deg) / m_z correlation / curl-free in-plane error / "
                   "charge error / skyrmions matched / wall time\n")
        out.append("| side | height | noise | " + " | ".join(METHODS) + " |")
        out.append("| --- | --- | --- | " + " | ".join("---" for _ in METHODS) + " |")
        for side in SIDES:
            for h in HEIGHTS:
                for n in NOISE:
                    cells = []
                    for method in METHODS:
                        row = next(r for r in rows if (r["target"], r["side"], r["height"], r["noise"],
                                                       r["method"]) == (name, side, h, n, method))
                        cells.append(_cell(row))
                    out.append(f"| {side} | {h * 1e9:.0f} nm | {n:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def joint() -> str:
    """Texture and Ms, A, Ku, D from the noise-free film image, the material 20 % off."""
    m_true, grid, material = target("film")
    measurement = mm.StrayFieldMeasurement(height=6e-9, side="top", component="z")
    image = measurement.simulate(m_true, grid, material.Ms)
    lines = ["| start | Ms | A | Ku | D | angle error | time |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for factors in ((1.2, 0.8, 1.2, 0.8), (0.8, 1.2, 0.8, 1.2)):
        start = material.replace(**{n: getattr(material, n) * f for n, f in zip(("Ms", "A", "Ku", "D"), factors)})
        started = time.perf_counter()
        rec = mm.reconstruct_texture(image, grid, start, measurement, fit=("Ms", "A", "Ku", "D"))
        seconds = time.perf_counter() - started
        errors = [rec.material.__dict__[n] / getattr(material, n) - 1 for n in ("Ms", "A", "Ku", "D")]
        q = mm.texture_metrics(rec.m, m_true, grid)
        lines.append(f"| {factors} | " + " | ".join(f"{e:+.1e}" for e in errors)
                     + f" | {q.angle_error:.2f} deg | {seconds:.0f} s |")
    return "\n".join(lines)


def figures():
    """m_z of the truth and of each method, strong and weak side at 10 nm, noise-free."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name in ("skyrmion", "film", "labyrinth"):
        m_true, grid, material = target(name)
        fig, axes = plt.subplots(2, 4, figsize=(10, 5.3))
        for row, (side, noise) in enumerate((("top", 0.0), ("bottom", 0.0))):
            measurement = mm.StrayFieldMeasurement(height=10e-9, side=side, component="z")
            image = measurement.simulate(m_true, grid, material.Ms)
            sigma = noise * image.std()
            noisy = image + sigma * np.random.default_rng(7).standard_normal(image.shape)
            axes[row, 0].imshow(noisy, cmap="RdBu_r", origin="lower")
            axes[row, 0].set_title(f"H_z {side} 10 nm, {noise:.0%} noise", fontsize=8)
            for col, method in enumerate(METHODS, start=1):
                rec = mm.reconstruct_texture(noisy, grid, material, measurement, method=method, max_iter=MAX_ITER,
                                             noise=sigma if sigma > 0 else None)
                q = mm.texture_metrics(rec.m, m_true, grid)
                axes[row, col].imshow(rec.m[0, ..., 2], cmap="RdBu_r", vmin=-1, vmax=1, origin="lower")
                axes[row, col].set_title(f"{method}: {q.angle_error:.1f} deg, r={q.mz_correlation:.3f}", fontsize=8)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"{name}: m_z reconstructed (truth: {mm.texture_metrics(m_true, m_true, grid).skyrmions} "
                     "skyrmions)")
        fig.tight_layout()
        fig.savefig(OUT / f"{name}.png", dpi=80)
        fig, ax = plt.subplots(figsize=(3, 3))
        ax.imshow(m_true[0, ..., 2], cmap="RdBu_r", vmin=-1, vmax=1, origin="lower")
        ax.set_title(f"{name}: true m_z", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.savefig(OUT / f"{name}_truth.png", dpi=80)
        plt.close("all")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("targets", "grid", "joint", "figures", "tables"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2 if args.workers == 1 else 1)
    OUT.mkdir(exist_ok=True)
    if args.part == "targets":
        for name in ("skyrmion", "film", "labyrinth"):
            m, grid, _ = target(name)
            print(name, mm.texture_metrics(m, m, grid).skyrmions, "skyrmions", mm.topological_charge(m))
    elif args.part == "grid":
        text = tables(grid_study(args.workers))
        (OUT / "grid.md").write_text(text)
        print(text)
    elif args.part == "tables":
        text = tables(json.loads((OUT / "grid.json").read_text()))
        (OUT / "grid.md").write_text(text)
        print(text)
    elif args.part == "joint":
        text = joint()
        (OUT / "joint.md").write_text(text)
        print(text)
    else:
        figures()


if __name__ == "__main__":
    main()
