"""The parameter-fit studies behind docs/fitting.md: recovery, bias options, noise, sensitivity.

Run by hand (minutes to an hour on 2 cores), one part at a time or all::

    python docs/fit_study.py films        # films of many skyrmions: both start directions, 0 / 5 / 10 % noise
    python docs/fit_study.py recovery     # isolated skyrmion and a many-skyrmion film, stray field and MFM
    python docs/fit_study.py bias         # each bias option on the many-skyrmion film
    python docs/fit_study.py noise        # 5 / 10 / 20 % noise, 10 seeds: errors and 1-sigma coverage
    python docs/fit_study.py sensitivity  # 1-D loss scans and the 2-D scan of the most correlated pair

Each part prints a markdown table and writes it (and its figure) to docs/fit_study/. Targets are
made with the project's own forward model at the true parameters, relaxed without bias; every fit
starts 30 % off in every fitted parameter (the signs alternate) from a texture shaped from the
image itself, unless stated.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.inverse.studies import (
    coverage_table,
    noise_study,
    sensitivity,
)

OUT = Path(__file__).parent / "fit_study"
NAMES = ("Ms", "A", "Ku", "D")
SINGLE = dict(grid=mm.Grid(nx=48, ny=48, nz=1, dx=1e-9, dy=1e-9, dz=1e-9),
              material=mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3))
FILM = dict(grid=mm.Grid(nx=80, ny=80, nz=1, dx=1e-9, dy=1e-9, dz=1e-9),
            material=mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3))
STRAY = mm.StrayFieldMeasurement(height=6e-9, side="top", component="z")
MFM = mm.MFMMeasurement(lift_height=10e-9, side="top", tip=mm.PointDipoleTip(moment=1e-16),
                        cantilever=mm.Cantilever(k=3.0, f0=75e3, Q=200))
OFF = (1.3, 0.7, 1.3, 0.7)


def single_skyrmion():
    g, mat = SINGLE["grid"], SINGLE["material"]
    return mm.relax(mm.textures.skyrmion(g, radius=7e-9), g, mat, tol=1e-10)


def skyrmion_film(count: int = 6, seed: int = 3):
    g, mat = FILM["grid"], FILM["material"]
    m0 = mm.textures.random_skyrmions(g, count, radius=6e-9, min_distance=22e-9, margin=10e-9, seed=seed)
    return mm.relax(m0, g, mat, tol=1e-10)


def start(material, factors=OFF):
    return material.replace(**{n: float(getattr(material, n)) * f for n, f in zip(NAMES, factors)})


def errors(result, material, measurement=None, true_height=None):
    row = {n: result.values[n] / float(getattr(material, n)) - 1 for n in NAMES if n in result.values}
    if "height" in result.values:
        row["height"] = result.values["height"] / true_height - 1
    return row


def fmt_row(label, row, result):
    cells = " | ".join(f"{row[n]:+.1e}" if n in row else "-" for n in NAMES + ("height",))
    return (f"| {label} | {cells} | {result.misfit:.1e} | {result.iterations} | "
            f"{result.timings['total']:.0f} s | {result.message} |")


HEADER = ("| case | Ms error | A error | Ku error | D error | height error | final loss | iterations | time | outcome |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def films():
    """The bundled 43-skyrmion lattice (Hz at 10 nm, 2 nm cells, relaxed by this package to a torque of
    1e-4; noise-free, each fit takes minutes) and the film relaxed by magnum.np (tests/data, Hz at
    6 nm; noise-free and with 5 and 10 % noise, 3 seeds each): starts 30 % off in both directions."""
    from napari_mmrecon._sample_data import load_state

    data = np.load(Path(__file__).parents[1] / "tests" / "data" / "magnumnp_film_64x64x1.npz")
    magnumnp_grid = mm.Grid(nx=64, ny=64, nz=1, dx=float(data["dx"]), dy=float(data["dy"]), dz=float(data["dz"]))
    lattice_m, lattice_grid, lattice_material = load_state("skyrmion_lattice")
    cases = {"bundled lattice, 128x128 x 2 nm, Hz at 10 nm":
             (lattice_m, lattice_grid, lattice_material, 10e-9, (0.0,), 1),
             f"magnum.np film ({int(data['skyrmions_relaxed'])} skyrmions), 64x64 x 2 nm, Hz at 6 nm":
                 (data["m_relaxed"], magnumnp_grid, FILM["material"], 6e-9, (0.0, 0.05, 0.1), 3)}
    lines = ["| film, start, noise (seed) | Ms error | A error | Ku error | D error | A 1-sigma | within 2 sigma | "
             "final misfit | iterations | time | outcome |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, (m, g, mat, height, levels, seeds) in cases.items():
        measurement = mm.StrayFieldMeasurement(height=height)
        clean = measurement.simulate(m, g, mat.Ms)
        for factors in (OFF, (0.7, 1.3, 0.7, 1.3)):
            for level in levels:
                for seed in range(1 if level == 0 else seeds):
                    rng = np.random.default_rng(seed)
                    target = clean + level * clean.std() * rng.standard_normal(clean.shape)
                    result = mm.fit_parameters(target, g, measurement, start(mat, factors))
                    row = errors(result, mat)
                    inside = all(abs(result.values[n] - float(getattr(mat, n))) < 2 * result.uncertainty[n]
                                 for n in NAMES)
                    cells = " | ".join(f"{row[n]:+.1e}" for n in NAMES)
                    lines.append(f"| {label}, start {factors}, {level:.0%} ({seed}) | {cells} | "
                                 f"{result.uncertainty['A'] / result.values['A']:.1e} | {'yes' if inside else 'NO'} | "
                                 f"{result.misfit:.1e} | {result.iterations} | {result.timings['total']:.0f} s | "
                                 f"{result.message.split(':')[0]} |")
                    print(lines[-1], flush=True)
    return "\n".join(lines)


def recovery():
    lines = [HEADER]
    for label, (m, setup) in {"single skyrmion, 48x48 x 1 nm": (single_skyrmion(), SINGLE),
                              "5 skyrmions, 80x80 x 1 nm": (skyrmion_film(), FILM)}.items():
        g, mat = setup["grid"], setup["material"]
        print(f"{label}: Q = {mm.topological_charge(m):.2f}", flush=True)
        for meas_label, meas in (("stray field Hz", STRAY), ("MFM frequency shift", MFM)):
            target = meas.simulate(m, g, mat.Ms)
            result = mm.fit_parameters(target, g, meas, start(mat))
            lines.append(fmt_row(f"{label}, {meas_label}", errors(result, mat), result))
            print(lines[-1], flush=True)
        # the height too, started 30 % off
        target = STRAY.simulate(m, g, mat.Ms)
        off = mm.StrayFieldMeasurement(height=STRAY.height * 1.3, side="top", component="z")
        result = mm.fit_parameters(target, g, off, start(mat), fit=NAMES + ("height",))
        lines.append(fmt_row(f"{label}, stray field Hz, height fitted", errors(result, mat, true_height=STRAY.height),
                             result))
        print(lines[-1], flush=True)
    return "\n".join(lines)


def bias_options():
    m = skyrmion_film()
    g, mat = FILM["grid"], FILM["material"]
    target = STRAY.simulate(m, g, mat.Ms)
    lines = [HEADER.replace("| case |", "| bias option, start |")]
    cases = [(factors, bias, m0) for factors in (OFF, (0.7, 1.3, 0.7, 1.3))
             for bias, m0 in (("none", None), ("none", m), ("target", None), ("optimize", None))]
    cases.append(((1.1, 0.9, 1.1, 0.9), "none", m))  # close enough for the configuration to hold unbiased
    for factors, bias, m0 in cases:
        label = f"{bias}{', m0 = the true texture' if m0 is not None else ''}, start {factors}"
        try:
            result = mm.fit_parameters(target, g, STRAY, start(mat, factors), bias=bias, m0=m0)
        except ValueError as err:
            lines.append(f"| {label} | - | - | - | - | - | - | - | - | fails: {err} |")
        else:
            charge = mm.topological_charge(result.m)
            outcome = f"{result.message}; Q = {charge:.2f} (target {mm.topological_charge(m):.2f})"
            result.message = outcome
            lines.append(fmt_row(label, errors(result, mat), result))
        print(lines[-1], flush=True)
    return "\n".join(lines)


def noise():
    m = single_skyrmion()
    g, mat = SINGLE["grid"], SINGLE["material"]
    clean = STRAY.simulate(m, g, mat.Ms)
    truth = {n: float(getattr(mat, n)) for n in NAMES}
    rows = noise_study(clean, g, STRAY, truth, start(mat, (1.1, 0.9, 1.1, 0.9)), noise_levels=(0.05, 0.1, 0.2),
                       seeds=range(10), workers=2)
    (OUT / "noise_rows.json").write_text(json.dumps(rows, indent=1))
    table = coverage_table(rows, NAMES)
    lines = ["| noise (of image std) | fits | " + " | ".join(f"{n}: rms error / mean sigma / coverage" for n in NAMES)
             + " |", "|---|---|" + "---|" * len(NAMES)]
    for entry in table:
        cells = " | ".join(f"{100 * entry[f'{n}_rms_error']:.2f} % / {100 * entry[f'{n}_relative_sigma']:.2f} % / "
                           f"{entry[f'{n}_coverage']:.0%}" for n in NAMES)
        lines.append(f"| {entry['noise']:.0%} | {entry['fits']} | {cells} |")
    coverage = np.mean([row[f"{n}_covered"] for row in rows for n in NAMES])
    lines.append(f"\nAll fits, all parameters: the 1-sigma interval covers the truth in {coverage:.0%} of cases "
                 f"({len(rows) * len(NAMES)} intervals; 68 % expected).")
    return "\n".join(lines)


def sensitivity_study():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = single_skyrmion()
    g, mat = SINGLE["grid"], SINGLE["material"]
    target = STRAY.simulate(m, g, mat.Ms)
    fit = mm.fit_parameters(target, g, STRAY, start(mat, (1.05, 0.95, 1.05, 0.95)))
    corr = fit.correlation.copy()
    np.fill_diagonal(corr, 0)
    i, j = np.unravel_index(np.abs(corr).argmax(), corr.shape)
    pair = (NAMES[i], NAMES[j])
    result = sensitivity(target, g, STRAY, mat, m, pairs=[pair], span=0.1, points=11, workers=2)
    curvature = result.curvature()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for name, scan in result.scans.items():
        axes[0].semilogy(100 * result.offsets, np.maximum(scan, 1e-16), "o-", label=f"{name} (curvature "
                                                                                    f"{curvature[name]:.3g})")
    axes[0].set_xlabel("relative change of one parameter (%)")
    axes[0].set_ylabel("normalized misfit")
    axes[0].legend()
    axes[0].set_title("1-D loss scans, single skyrmion, Hz at 6 nm")
    extent = (-10, 10, -10, 10)
    shown = axes[1].imshow(np.log10(np.maximum(result.maps[pair], 1e-16)), origin="lower", extent=extent,
                           cmap="viridis", aspect="auto")
    axes[1].set_xlabel(f"{pair[1]} change (%)")
    axes[1].set_ylabel(f"{pair[0]} change (%)")
    axes[1].set_title(f"log10 misfit over {pair[0]}, {pair[1]} (correlation {fit.correlation[i, j]:+.3f})")
    fig.colorbar(shown, ax=axes[1])
    fig.savefig(OUT / "sensitivity.png", dpi=90)
    order = sorted(curvature, key=curvature.get)
    lines = ["| parameter | curvature of the misfit at the optimum |", "|---|---|"]
    lines += [f"| {n} | {curvature[n]:.4g} |" for n in order]
    lines.append(f"\nCorrelation matrix (order {NAMES}):\n\n```\n{np.array2string(fit.correlation, precision=4)}\n```")
    lines.append(f"\nMost sensitive: {order[-1]}; least sensitive: {order[0]}; most correlated pair: {pair}.")
    return "\n".join(lines)


PARTS = {"films": films, "recovery": recovery, "bias": bias_options, "noise": noise, "sensitivity": sensitivity_study}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {list(PARTS)}")
    OUT.mkdir(exist_ok=True)
    for part in args.parts or PARTS:
        started = time.perf_counter()
        text = PARTS[part]()
        text += f"\n\n(run {time.strftime('%Y-%m-%d')}, torch {torch.__version__}, {args.threads} threads, " \
                f"{time.perf_counter() - started:.0f} s)\n"
        (OUT / f"{part}.md").write_text(text)
        print(text, flush=True)


if __name__ == "__main__":
    main()
