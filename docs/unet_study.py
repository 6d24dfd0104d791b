"""The U-Net study behind docs/unet.md: U-Net alone, physics alone and the hybrid on held-out data.

Run by hand (about 40 minutes on 2 cores, after the shipped weights are in place)::

    python docs/unet_study.py heldout     # the two held-out datasets (seeds never used in training)
    python docs/unet_study.py evaluate    # every sample x side x approach -> docs/unet_study/rows.json
    python docs/unet_study.py tables      # the tables of docs/unet.md (medians per side and approach)
    python docs/unet_study.py figures     # typical results and failures -> docs/unet_study/*.png

Held-out data (written to ``HELDOUT``, outside the repository):

- ``inside``: ``DatasetRecipe()`` (the training recipe), seed 1001;
- ``skyrmion``: the training ranges, every film started from isolated skyrmions (one to three, the
  ``"skyrmion"`` kind), seed 1003: the case of the paper, where physics alone fails on the weak side;
- ``outside``: Ms, A and |D| drawn from the 20 % band beyond the training range's top
  (Ms 1.5-1.8 MA/m, A 25-30 pJ/m, |D| 4-4.8 mJ/m^2; with the quality factor too, no drawn material
  has a resolved wall on 1-4 nm cells), seed 1002.

Each sample is imaged as H_z at its lower height from the top and from the bottom, noise-free;
the side with the larger (levelled) image RMS is the *strong* side, the other the *weak* side. The
material (and the applied field) is known. Approaches: ``unet`` (``unet_predict``), ``physics``
(``reconstruct_texture``, the bias method from the image's perpendicular estimate) and ``hybrid``
(the same from ``init="unet"``), each with ``MAX_ITER`` outer iterations; scored by
``texture_metrics`` against the stored texture.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

import napari_mmrecon as mm
from napari_mmrecon.backend.inverse.studies import parallel_map
from napari_mmrecon.backend.learn import DatasetRecipe, generate_dataset, open_dataset

OUT = Path(__file__).parent / "unet_study"
HELDOUT = Path("/tmp/mmrecon_unet_heldout")
SETS = {"inside": (1001, DatasetRecipe()),
        "skyrmion": (1003, DatasetRecipe(kinds=("skyrmion",), kind_weights=(1.0,))),
        "outside": (1002, DatasetRecipe(Ms=(1.5e6, 1.8e6), A=(25e-12, 30e-12), D=(4e-3, 4.8e-3)))}
SAMPLES = {"inside": 16, "skyrmion": 16, "outside": 8}
EVALUATED = {"inside": 6, "skyrmion": 8, "outside": 4}
"""Films evaluated of each set, at most: the first ones that hold a texture (``textured_rows``; a
shard is generated whole)."""
APPROACHES = ("unet", "physics", "hybrid")
MAX_ITER = 20
METRICS = ("angle_error", "mz_correlation", "mz_rmse", "curl_free_error", "div_free_error", "charge", "charge_true",
           "skyrmions", "skyrmions_true", "matched", "position_error", "radius_error")


def heldout():
    for name, (seed, recipe) in SETS.items():
        if (HELDOUT / f"{name}.zarr").exists():
            continue
        generate_dataset(HELDOUT / f"{name}.zarr", SAMPLES[name], seed=seed, recipe=recipe, workers=1)


def sample(data, i: int):
    """``(m_true, grid, material, external_field, {side: (image, measurement)})`` of row ``i``."""
    dx, t = float(data.dx[i]), float(data.thickness[i])
    grid = mm.Grid(nx=data.m.shape[2], ny=data.m.shape[1], nz=1, dx=dx, dy=dx, dz=t)
    Ms, A, Ku, D = (float(v) for v in data.material[i])
    material = mm.Material(Ms=Ms, A=A, Ku=Ku, D=D)
    views = {}
    for v, view in enumerate(data.views):
        if view["quantity"] == "Hz" and view["height_index"] == 0:
            meas = mm.StrayFieldMeasurement(height=float(data.heights[i, v]), side=view["side"], component="z")
            views[view["side"]] = (np.asarray(data.images[i, v], dtype=float), meas)
    field = (0.0, 0.0, float(data.external_field[i]))
    return np.asarray(data.m[i], dtype=float)[None], grid, material, field, views


def _levelled_rms(image: np.ndarray) -> float:
    ny, nx = image.shape
    y, x = np.mgrid[:ny, :nx]
    basis = np.stack([np.ones(image.size), x.ravel(), y.ravel()], axis=1)
    rest = image.ravel() - basis @ np.linalg.lstsq(basis, image.ravel(), rcond=None)[0]
    return float(np.sqrt(np.mean(rest ** 2)))


def _run(approach, image, grid, material, meas, field):
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.UNetExtrapolationWarning)
        if approach == "unet":
            m, converged = mm.unet_predict(image, grid, meas, material=material), None
        else:
            rec = mm.reconstruct_texture(image, grid, material, meas, init="unet" if approach == "hybrid" else "estimate",
                                         external_field=field, max_iter=MAX_ITER)
            m, converged = rec.m, rec.converged
    return m, converged, time.perf_counter() - started


def _evaluate_sample(task) -> list:
    """Rows of one film ``task = (set name, row)``: both sides x every approach."""
    name, i = task
    data = open_dataset(HELDOUT / f"{name}.zarr")
    kind = data.manifest["kinds"][int(data.kind[i])]
    m_true, grid, material, field, views = sample(data, i)
    strength = {side: _levelled_rms(image) for side, (image, _) in views.items()}
    strong = max(strength, key=strength.get)
    rows = []
    for side, (image, meas) in views.items():
        for approach in APPROACHES:
            head = {"set": name, "sample": i, "kind": kind, "side": side,
                    "role": "strong" if side == strong else "weak", "approach": approach}
            try:
                m, converged, seconds = _run(approach, image, grid, material, meas, field)
            except ValueError as err:  # e.g. a start without an equilibrium under its bias
                rows.append({**head, "error": str(err)})
                continue
            q = mm.texture_metrics(m, m_true, grid)
            rows.append({**head, "seconds": seconds, "converged": converged,
                         **{k: float(getattr(q, k)) for k in METRICS}})
            np.save(OUT / f"m_{name}_{i}_{side}_{approach}.npy", m.astype(np.float32))
    return rows


def textured_rows(data) -> list:
    """The complete rows whose film holds a texture: a minority ``m_z`` domain of at least one cell
    (a film whose skyrmions collapsed during the relaxation is uniform: nothing to reconstruct)."""
    rows = []
    for i in data.complete_rows:
        mz = np.asarray(data.m[i])[..., 2]
        if min((mz < 0).sum(), (mz > 0).sum()) >= 1:
            rows.append(int(i))
    return rows


def evaluate():
    tasks = [(name, i) for name in SETS for i in textured_rows(open_dataset(HELDOUT / f"{name}.zarr"))[:EVALUATED[name]]]
    rows = [row for part in parallel_map(_evaluate_sample, tasks, workers=2) for row in part]
    (OUT / "rows.json").write_text(json.dumps(rows, indent=1))


def tables():
    rows = [r for r in json.loads((OUT / "rows.json").read_text()) if "error" not in r]
    failed = [r for r in json.loads((OUT / "rows.json").read_text()) if "error" in r]
    shown = ("angle_error", "mz_correlation", "curl_free_error", "div_free_error")
    print("| set | side | approach | runs | angle error (deg) | m_z corr. | curl-free err. | div-free err. | "
          "|Q - Q_true| | skyrmions matched | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in SETS:
        for role in ("strong", "weak"):
            for approach in APPROACHES:
                sel = [r for r in rows if r["set"] == name and r["role"] == role and r["approach"] == approach]
                if not sel:
                    continue
                med = {k: np.nanmedian([r[k] for r in sel]) for k in shown}
                dq = np.median([abs(r["charge"] - r["charge_true"]) for r in sel])
                matched = sum(r["matched"] for r in sel)
                true = sum(r["skyrmions_true"] for r in sel)
                print(f"| {name} | {role} | {approach} | {len(sel)} | {med['angle_error']:.1f} | "
                      f"{med['mz_correlation']:.3f} | {med['curl_free_error']:.2f} | {med['div_free_error']:.2f} | "
                      f"{dq:.2f} | {matched}/{true} | {np.median([r['seconds'] for r in sel]):.1f} |")
    for r in failed:
        print(f"failed: {r['set']} sample {r['sample']} {r['side']} {r['approach']}: {r['error']}")
    print()
    print(weak_side_comparison(rows))


def weak_side_comparison(rows) -> str:
    """The weak side, film by film: hybrid against physics alone, per metric (medians, and on how
    many films the hybrid is better), as a markdown table."""
    lines = ["| set | films | angle error (deg) physics -> hybrid | hybrid closer | m_z corr. | curl-free err. | "
             "div-free err. | |Q - Q_true| | skyrmions matched | converged | seconds |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in list(SETS) + ["all"]:
        pairs = []
        for r in rows:
            if r["role"] == "weak" and r["approach"] == "physics" and name in ("all", r["set"]):
                twin = [h for h in rows if h["approach"] == "hybrid" and h["set"] == r["set"]
                        and h["sample"] == r["sample"] and h["side"] == r["side"]]
                if twin:
                    pairs.append((r, twin[0]))
        if not pairs:
            continue

        def both(key, fmt, pairs=pairs):
            a = np.nanmedian([p[key] for p, _ in pairs])
            b = np.nanmedian([h[key] for _, h in pairs])
            return f"{a:{fmt}} -> {b:{fmt}}"

        closer = sum(h["angle_error"] < p["angle_error"] for p, h in pairs)
        dq = (np.median([abs(p["charge"] - p["charge_true"]) for p, _ in pairs]),
              np.median([abs(h["charge"] - h["charge_true"]) for _, h in pairs]))
        true = int(sum(p["skyrmions_true"] for p, _ in pairs))
        matched = (int(sum(p["matched"] for p, _ in pairs)), int(sum(h["matched"] for _, h in pairs)))
        conv = (sum(bool(p["converged"]) for p, _ in pairs), sum(bool(h["converged"]) for _, h in pairs))
        lines.append(f"| {name} | {len(pairs)} | {both('angle_error', '.1f')} | {closer} of {len(pairs)} | "
                     f"{both('mz_correlation', '.3f')} | {both('curl_free_error', '.2f')} | "
                     f"{both('div_free_error', '.2f')} | {dq[0]:.2f} -> {dq[1]:.2f} | "
                     f"{matched[0]} -> {matched[1]} of {true} | {conv[0]} -> {conv[1]} | {both('seconds', '.1f')} |")
    return "\n".join(lines)


def figures():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in json.loads((OUT / "rows.json").read_text()) if "error" not in r]
    weak_hybrid = sorted((r for r in rows if r["role"] == "weak" and r["approach"] == "hybrid"),
                         key=lambda r: r["angle_error"])

    def gain(r):  # how much closer the hybrid ends than physics alone on the same film and side
        alone = [p for p in rows if p["approach"] == "physics" and p["set"] == r["set"]
                 and p["sample"] == r["sample"] and p["side"] == r["side"]]
        return alone[0]["angle_error"] - r["angle_error"] if alone else -np.inf

    picks = {"typical": weak_hybrid[len(weak_hybrid) // 2], "rescue": max(weak_hybrid, key=gain),
             "failure": weak_hybrid[-1]}
    for label, r in picks.items():
        data = open_dataset(HELDOUT / f"{r['set']}.zarr")
        m_true, grid, material, field, views = sample(data, r["sample"])
        image = views[r["side"]][0]
        panels = [("image (weak side)", image, "coolwarm"), ("true m_z", m_true[0, ..., 2], "RdBu_r")]
        for approach in APPROACHES:
            m = np.load(OUT / f"m_{r['set']}_{r['sample']}_{r['side']}_{approach}.npy")
            panels.append((f"{approach} m_z", m[0, ..., 2], "RdBu_r"))
        fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.2))
        extent = (0, grid.nx * grid.dx * 1e9, 0, grid.ny * grid.dy * 1e9)
        for ax, (title, a, cmap) in zip(axes, panels):
            kw = {"vmin": -1, "vmax": 1} if "m_z" in title else {}
            ax.imshow(a, origin="lower", cmap=cmap, extent=extent, **kw)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("x (nm)")
        fig.suptitle(f"{label}: {r['set']} sample {r['sample']} ({r['kind']}), weak side; hybrid angle error "
                     f"{r['angle_error']:.1f} deg", fontsize=9)
        fig.tight_layout()
        fig.savefig(OUT / f"weak_{label}.png", dpi=90)
        plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("heldout", "evaluate", "tables", "figures"))
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    {"heldout": heldout, "evaluate": evaluate, "tables": tables, "figures": figures}[args.part]()


if __name__ == "__main__":
    main()
