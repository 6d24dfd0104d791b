"""The worked example behind docs/measured-data.md: from an instrument file to an answer.

Run by hand, in order (on 2 cores: the film about 10 min once, cached; the files seconds)::

    python docs/measured_data_study.py film       # relax the synthetic multilayer (cached .npz)
    python docs/measured_data_study.py files      # its MFM phase as two instrument files
    python docs/measured_data_study.py analyse    # from each file to skyrmions, texture, material

The film: a [Co(1 nm)/spacer(2 nm)] x 10 multilayer element, 2.05 um across (512 x 512 cells of
4 nm), taken as its effective layer (``mm.effective_layer``, 30 nm thick), with 125 Neel
skyrmions on a shaken hexagonal lattice, relaxed at an applied field. Results and
figures go to docs/measured_data/.

The analysis (``analyse``, about 45 s per file from the file to the texture, then about 3 min for
the material on 2 cores): read, prepare (recorded), the gain from the film's edges, two
``"energy-relaxed"`` reconstructions with an offset per scan line, the second at the gain refitted
on the first texture's image; then the material from periodic skyrmion cells. Numbers and
pictures: docs/measured-data.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import napari_mmrecon as mm
from napari_mmrecon.backend.inverse.pinning import find_skyrmions

OUT = Path(__file__).parent / "measured_data"
STACK = {"magnetic_thickness": 1e-9, "spacer_thickness": 2e-9, "repeats": 10,
         "Ms": 1.1e6, "A": 2e-11, "Ku": 0.8e6 + 4e-7 * np.pi * 1.1e6 ** 2 / 3, "D": 2.6e-3}
"""The multilayer (SI; Ku without its shape part, about 1.31 MJ/m^3). Its effective layer
(``mm.effective_layer``, magnetic fraction f = 1/3): Ms 0.367 MA/m, A 6.67 pJ/m, Ku 0.267 MJ/m^3,
D 0.867 mJ/m^2, 30 nm thick."""
FIELD = 20e3
"""Applied field along +z (A/m), against the skyrmion cores."""
CELLS, CELL = 512, 4e-9
SPACING, JITTER, RADIUS, MARGIN, SEED = 180e-9, 25e-9, 45e-9, 90e-9, 15
LIFT = 30e-9
TIP = mm.PointDipoleTip(moment=5e-18)
"""The tip that made the images; the analysis does not know it (it fits a gain)."""
CANTILEVER = mm.Cantilever(k=2.8, f0=72e3, Q=180.0)
"""The cantilever: the .sxm file states f0 and Q (Nanonis writes no k), the .gwy file none."""
ARTEFACTS = {"tilt_deg_per_um": (0.6, -0.35), "jump_rows": 0.04, "jump_deg": 0.15, "noise_fraction": 0.05,
             "spikes": 40, "seed": 3}
"""The measured image's flaws: a plane tilt (deg per um in x, y), offsets that jump at 4 % of the scan
lines (steps of 0.15 deg, a random walk), white noise (5 % of the clean image's standard deviation)
and 40 spikes of 10 standard deviations."""


def effective_film() -> tuple[mm.Grid, mm.Material]:
    """The effective single layer of ``STACK``: one cell through its thickness."""
    material, thickness = mm.effective_layer(mm.Multilayer(**STACK))
    return mm.Grid(nx=CELLS, ny=CELLS, nz=1, dx=CELL, dy=CELL, dz=thickness), material


def skyrmion_centers(grid: mm.Grid) -> np.ndarray:
    """Centres ``(n, 2)`` (x, y; m): a hexagonal lattice of ``SPACING`` shaken by up to ``JITTER``
    in each direction (seed ``SEED``), at least ``MARGIN`` from the film's edges."""
    rng = np.random.default_rng(SEED)
    lx, ly = grid.nx * grid.dx, grid.ny * grid.dy
    rows = np.arange(0.0, ly, SPACING * np.sqrt(3) / 2)
    sites = np.array([(x + (i % 2) * SPACING / 2, y) for i, y in enumerate(rows) for x in np.arange(0.0, lx, SPACING)])
    sites = sites + rng.uniform(-JITTER, JITTER, sites.shape)
    inside = np.all((sites >= MARGIN) & (sites <= np.array([lx, ly]) - MARGIN), axis=1)
    return sites[inside]


def make_film() -> None:
    """Relax skyrmions at ``skyrmion_centers`` in the effective film at ``FIELD``; save the texture."""
    grid, material = effective_film()
    m0 = mm.textures.skyrmions(grid, skyrmion_centers(grid), RADIUS)
    start = time.perf_counter()
    m, info = mm.relax(m0, grid, material, external_field=(0.0, 0.0, FIELD), tol=2e-3, max_iter=20000,
                       return_info=True,
                       progress=lambda i, torque, energy: i % 500 or print(f"  {i} {torque:.2e}", flush=True))
    print(f"relaxed: {info.iterations} iterations, converged {info.converged}, {time.perf_counter() - start:.0f} s")
    OUT.mkdir(exist_ok=True)
    np.savez_compressed(OUT / "film.npz", m=m.astype(np.float32), iterations=info.iterations,
                        converged=info.converged)


def film() -> tuple[np.ndarray, mm.Grid, mm.Material]:
    """The relaxed film ``make_film`` saved: ``(m (1, 512, 512, 3), grid, material)``."""
    grid, material = effective_film()
    return np.load(OUT / "film.npz")["m"].astype(np.float64), grid, material


def measured_phase(clean: np.ndarray, grid: mm.Grid) -> np.ndarray:
    """``clean`` (deg) with the flaws of ``ARTEFACTS``."""
    rng = np.random.default_rng(ARTEFACTS["seed"])
    ny, nx = clean.shape
    y, x = np.mgrid[0:ny, 0:nx] * grid.dx * 1e6  # um
    tilt_x, tilt_y = ARTEFACTS["tilt_deg_per_um"]
    jumps = np.cumsum(np.where(rng.random(ny) < ARTEFACTS["jump_rows"],
                               rng.normal(0.0, ARTEFACTS["jump_deg"], ny), 0.0))
    noisy = clean + tilt_x * x + tilt_y * y + jumps[:, None]
    noisy = noisy + rng.normal(0.0, ARTEFACTS["noise_fraction"] * clean.std(), clean.shape)
    spikes = rng.integers(0, clean.size, ARTEFACTS["spikes"])
    noisy.flat[spikes] += rng.choice([-10.0, 10.0], spikes.size) * clean.std()
    return noisy


def write_gwy(path: Path, phase: np.ndarray, height: np.ndarray, grid: mm.Grid) -> None:
    """A Gwyddion file, by gwyfile's writer: "MFM phase" (deg) and "Height" (m), rows as Gwyddion
    stores them (top row first); no lift height, no cantilever (a .gwy file has none)."""
    from gwyfile.objects import GwyContainer, GwyDataField, GwySIUnit

    container = GwyContainer()
    for number, (title, values, unit) in enumerate((("MFM phase", phase, "deg"), ("Height", height, "m"))):
        container[f"/{number}/data"] = GwyDataField(np.flipud(values), xreal=grid.nx * grid.dx,
                                                    yreal=grid.ny * grid.dy, si_unit_xy=GwySIUnit(unitstr="m"),
                                                    si_unit_z=GwySIUnit(unitstr=unit))
        container[f"/{number}/data/title"] = title
    container.tofile(str(path))


def write_sxm(path: Path, frequency_shift: np.ndarray, height: np.ndarray, grid: mm.Grid) -> None:
    """A Nanonis scan as Nanonis writes it (text header, ``\\x1a\\x04``, big-endian float32
    images), forward channels "Frequency_Shift" (Hz) and "Z" (m), scanned upwards, with the lift
    height (``Z-Controller>TipLift``), f0 and Q (no spring constant: Nanonis writes none)."""
    ny, nx = frequency_shift.shape
    header = {
        "NANONIS_VERSION": "2", "SCANIT_TYPE": "              FLOAT            MSBFIRST",
        "REC_DATE": " 03.12.2026", "REC_TIME": "12:00:00", "SCAN_PIXELS": f"       {nx}       {ny}",
        "SCAN_RANGE": f"           {nx * grid.dx:E}           {ny * grid.dy:E}",
        "SCAN_OFFSET": "             0.000000E+0         0.000000E+0", "SCAN_ANGLE": "            0.000E+0",
        "SCAN_DIR": "up", "Z-Controller>TipLift (m)": f"{LIFT:.6E}",
        "Oscillation Control>Center Frequency (Hz)": f"{CANTILEVER.f0:.6E}",
        "Oscillation Control>PLL-Setup Q-Factor": f"{CANTILEVER.Q:.6E}",
        "DATA_INFO": "\tChannel\tName\tUnit\tDirection\tCalibration\tOffset\n"
                     "\t14\tZ\tm\tforward\t1.000E+0\t0.000E+0\n"
                     "\t20\tFrequency_Shift\tHz\tforward\t1.000E+0\t0.000E+0\n",
    }
    text = "".join(f":{key}:\n{value}\n" for key, value in header.items()) + ":SCANIT_END:\n\n\n"
    data = np.stack([height, frequency_shift]).astype(">f4")
    path.write_bytes(text.encode("latin-1") + b"\x1a\x04" + data.tobytes())


def make_files() -> None:
    """The measurement: MFM phase (deg) and frequency shift (Hz) of the film at ``LIFT`` with the
    unknown ``TIP``, flawed (``measured_phase``), as ``film.gwy`` and ``film.sxm``; the truth in
    ``truth.json``."""
    m, grid, material = film()
    measurement = mm.MFMMeasurement(lift_height=LIFT, tip=TIP, cantilever=CANTILEVER, quantity="phase")
    clean = np.asarray(measurement.simulate(m, grid, material.Ms))
    phase = measured_phase(clean, grid)
    frequency_shift = np.asarray(mm.frequency_shift_from_phase(phase, CANTILEVER))
    rng = np.random.default_rng(ARTEFACTS["seed"] + 1)
    height = 0.3e-9 * rng.standard_normal(clean.shape)
    write_gwy(OUT / "film.gwy", phase, height, grid)
    write_sxm(OUT / "film.sxm", frequency_shift, height, grid)
    skyrmions = find_skyrmions(m, grid)
    truth = {"material": {key: float(getattr(material, key)) for key in ("Ms", "A", "Ku", "D")},
             "thickness": grid.nz * grid.dz, "lift_height": LIFT, "tip": TIP.to_dict(),
             "cantilever": CANTILEVER.to_dict(), "field": FIELD, "skyrmions": len(skyrmions.radii),
             "radius_mean": float(skyrmions.radii.mean()), "radius_std": float(skyrmions.radii.std()),
             "phase_contrast_deg": float(np.ptp(clean))}
    (OUT / "truth.json").write_text(json.dumps(truth, indent=1))
    print(json.dumps(truth, indent=1))


NOMINAL = {"Ms": 1.1e6, "A": 1.5e-11, "Ku": 1.3e6, "D": 2.2e-3}
"""What the analysis assumes of the stack: Ms from magnetometry (exact), A, Ku and D typical of
such stacks (25 %, 0.5 % and 15 % low)."""
STEPS = [{"step": "align_rows", "method": "median"}, {"step": "remove_outliers", "threshold": 8.0},
         {"step": "plane"}]
"""The preparation: scan-line jumps, then spikes, then the tilt. What row alignment leaves (each row
shifted by its own median, which depends on the skyrmions it crosses) the reconstruction's offset per
scan line (``row_offsets``) takes up."""
PASSES = 2
"""Reconstructions at a refined gain: the gain from the film's edges, then from the texture's image."""
CELL_CELLS, CELL_COUNT = 42, 4
"""The material fit: ``CELL_COUNT`` periodic cells of ``CELL_CELLS``^2 pixels (168 nm, about the
area per skyrmion of the lattice), each around one skyrmion near the film's centre."""


def row_centred(image: np.ndarray) -> np.ndarray:
    """``image (ny, nx)`` with each row's mean removed."""
    return image - image.mean(axis=-1, keepdims=True)


def linear_gain(image: np.ndarray, model: np.ndarray) -> float:
    """The gain ``g`` of ``image = g model + offset per row`` by least squares (row offsets profiled out)."""
    a, b = row_centred(model), row_centred(image)
    return float((a * b).sum() / (a * a).sum())


def nominal_film(shape: tuple, pixel_size: tuple, pbc: bool = False) -> tuple[mm.Grid, mm.Material]:
    """The grid of an image ``shape (ny, nx)`` with ``pixel_size (dy, dx)`` and the nominal effective layer."""
    stack = mm.Multilayer(magnetic_thickness=STACK["magnetic_thickness"], spacer_thickness=STACK["spacer_thickness"],
                          repeats=STACK["repeats"], **NOMINAL)
    material, thickness = mm.effective_layer(stack)
    (ny, nx), (dy, dx) = shape, pixel_size
    return mm.Grid(nx=nx, ny=ny, nz=1, dx=dx, dy=dy, dz=thickness, pbc=pbc), material


def file_to_texture(path: Path, channel: str, lift_height: float | None, log=print) -> dict:
    """From one instrument file to a texture: read, prepare (recorded), the gain from the film's
    edges, then ``PASSES`` reconstructions (``"energy-relaxed"``, offset per scan line, the applied
    field known), each at the gain refitted on the last texture's image. Returns what the figures
    and the record need."""
    from napari_mmrecon.backend.inverse.bias import perpendicular_estimate
    from napari_mmrecon.backend.measured.preparation import prepare_image
    from napari_mmrecon.io.instrument import read_instrument
    from napari_mmrecon.workflows.prepare import read_measured

    started = time.perf_counter()
    contents = read_instrument(path)
    measured = read_measured(path, channel)
    prepared = prepare_image(measured.data, measured.pixel_size, STEPS, measured.quantity, measured.unit)
    grid, material = nominal_film(prepared.image.shape, prepared.pixel_size)
    cantilever = mm.Cantilever(**{**mm.Cantilever().to_dict(), **measured.cantilever})
    measurement = mm.MFMMeasurement(lift_height=measured.lift_height or lift_height, cantilever=cantilever,
                                    quantity=prepared.quantity)
    gains = [perpendicular_estimate(prepared.image, grid, measurement, float(material.Ms)).background]
    times = {"read and prepare": time.perf_counter() - started}
    init, rec = "estimate", None
    for number in range(PASSES):
        rec = mm.reconstruct_texture(prepared.image / gains[-1], grid, material, measurement, method="energy-relaxed",
                                     init=init, max_iter=20, row_offsets=True, external_field=(0.0, 0.0, FIELD))
        own = np.asarray(measurement.simulate(rec.m, grid, material.Ms))
        gains.append(linear_gain(prepared.image, own))
        init = rec.m
        times[f"pass {number + 1}"] = time.perf_counter() - started - sum(times.values())
        log(f"  pass {number + 1}: {rec.message}; gain {gains[-1]:.4f}")
    times["total"] = time.perf_counter() - started
    row_offsets = (rec.simulated - own)[:, 0] * gains[-2]  # the last pass's image was prepared / gains[-2]
    return {"contents": contents, "measured": measured, "prepared": prepared, "grid": grid, "material": material,
            "measurement": measurement, "gains": gains, "rec": rec, "own": own, "row_offsets": row_offsets,
            "times": times}


def skyrmion_cells(m: np.ndarray, grid: mm.Grid, count: int = CELL_COUNT, size: int = CELL_CELLS) -> list:
    """``count`` windows ``(y0, x0)`` of ``size``^2 pixels, each centred on one skyrmion of ``m``, the
    skyrmions nearest the film's centre."""
    found = find_skyrmions(m, grid)
    centres = np.asarray(found.centers) / np.array([grid.dx, grid.dy])
    middle = np.array([grid.nx, grid.ny]) / 2
    order = np.argsort(np.hypot(*(centres - middle).T))[:count]
    return [(int(round(centres[i, 1])) - size // 2, int(round(centres[i, 0])) - size // 2) for i in order]


def fit_material(image: np.ndarray, m: np.ndarray, measurement, pixel_size: tuple, log=print):
    """The material from ``CELL_COUNT`` periodic skyrmion cells of ``image`` (row offsets removed,
    divided by the gain), the texture ``m`` their start: one material, one image gain and offset for
    all cells, fitted jointly (``fit_field_series`` at one field), A, Ku, D free, Ms known."""
    grid, material = nominal_film((CELL_CELLS, CELL_CELLS), pixel_size, pbc=True)
    cells = skyrmion_cells(m, nominal_film(image.shape, pixel_size)[0])
    windows = [(slice(y0, y0 + CELL_CELLS), slice(x0, x0 + CELL_CELLS)) for y0, x0 in cells]
    started = time.perf_counter()
    fit = mm.fit_field_series(np.stack([image[w] for w in windows]), grid, measurement, [FIELD] * len(windows),
                              material, fit=("A", "Ku", "D", "gain", "offset"),
                              m0=np.stack([m[:, w[0], w[1]] for w in windows]), max_iter=30,
                              progress=lambda snapshot: log(f"  material fit: {time.perf_counter() - started:.0f} s"))
    return fit, cells, time.perf_counter() - started


def best_determined(fit, names=("A", "Ku", "D")) -> tuple[np.ndarray, float]:
    """The combination ``prod p_i^{w_i}`` of ``names`` (exponents ``w``, unit length) that the fit knows
    best, and its relative 1-sigma: the covariance's smallest eigenvector in log-parameters."""
    index = [fit.names.index(n) for n in names]
    sigma = np.array([fit.uncertainty[n] / fit.values[n] for n in names])
    correlation = np.asarray(fit.correlation)[np.ix_(index, index)]
    covariance = correlation * np.outer(sigma, sigma)
    values, vectors = np.linalg.eigh(covariance)
    w = vectors[:, 0] * np.sign(vectors[np.argmax(np.abs(vectors[:, 0])), 0])
    return w, float(np.sqrt(values[0]))


def analyse_file(path: Path, channel: str, lift_height: float | None, material_fit: bool) -> dict:
    """From one instrument file to skyrmions, a texture and (``material_fit``) the material; figures
    and numbers into ``OUT``. ``lift_height`` serves a file that does not state its own."""
    out = file_to_texture(path, channel, lift_height)
    rec, grid = out["rec"], out["grid"]
    m_true, true_grid, true_material = film()
    metrics = mm.texture_metrics(rec.m, m_true, grid)
    found, true = find_skyrmions(rec.m, grid), find_skyrmions(m_true, true_grid)
    truth = json.loads((OUT / "truth.json").read_text())
    true_image = mm.MFMMeasurement(lift_height=LIFT, tip=TIP, cantilever=CANTILEVER,
                                   quantity=out["measurement"].quantity).simulate(m_true, true_grid, true_material.Ms)
    gain_true = linear_gain(np.asarray(true_image),
                            np.asarray(out["measurement"].simulate(m_true, true_grid, true_material.Ms)))
    record = {"file": path.name, "format": out["contents"].format, "channel": out["measured"].channel,
              "missing": out["contents"].missing, "lift_height": out["measurement"].lift_height,
              "cantilever": out["measurement"].cantilever.to_dict(), "steps": out["prepared"].steps,
              "gains": out["gains"], "gain_true": gain_true, "times_s": out["times"],
              "reconstruction": rec.message, "metrics": metrics.to_dict(),
              "skyrmions_found": len(found.radii), "skyrmions_true": len(true.radii),
              "radius_mean_nm": float(found.radii.mean() * 1e9), "radius_std_nm": float(found.radii.std() * 1e9),
              "radius_true_mean_nm": float(true.radii.mean() * 1e9), "radius_true_std_nm": float(true.radii.std() * 1e9)}
    stem = f"{path.stem}_{path.suffix[1:]}"
    np.save(OUT / f"{stem}_m.npy", rec.m.astype(np.float32))
    if material_fit:
        corrected = (out["prepared"].image - out["row_offsets"][:, None]) / out["gains"][-1]
        fit, cells, seconds = fit_material(corrected, rec.m, out["measurement"], out["prepared"].pixel_size)
        exponents, sigma = best_determined(fit)
        true_values = truth["material"]
        combination = lambda values: float(np.prod([values[n] ** w for n, w in zip(("A", "Ku", "D"), exponents)]))
        record["material"] = {
            "cells": cells, "seconds": seconds, "message": fit.message,
            "values": {n: float(fit.values[n]) for n in ("A", "Ku", "D", "gain", "offset")},
            "uncertainty": {n: float(fit.uncertainty[n]) for n in ("A", "Ku", "D", "gain", "offset")},
            "truth": {n: true_values[n] for n in ("A", "Ku", "D")},
            "gain_total": float(fit.values["gain"] * out["gains"][-1]),
            "gain_total_sigma": float(fit.uncertainty["gain"] * out["gains"][-1]),
            "correlation": np.asarray(fit.correlation).tolist(), "names": list(fit.names),
            "best_combination": {"exponents": dict(zip(("A", "Ku", "D"), exponents.tolist())),
                                 "relative_sigma": sigma, "fitted": combination(fit.values),
                                 "true": combination(true_values)}}
        material_figure(path, corrected, cells, fit, record["material"])
    figures(path, out, record, m_true, found, true)
    (OUT / f"analysis_{path.suffix[1:]}.json").write_text(json.dumps(record, indent=1, default=float))
    print(json.dumps(record, indent=1, default=float))
    return record


def figures(path: Path, out: dict, record: dict, m_true: np.ndarray, found, true) -> None:
    """One picture per step: the file's channel, the prepared image, the texture and its residual, a
    zoom of texture and truth with in-plane arrows, and the radius histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid, rec = out["grid"], out["rec"]
    extent = (0, grid.nx * grid.dx * 1e6, 0, grid.ny * grid.dy * 1e6)
    unit = out["measured"].unit
    fig, axes = plt.subplots(2, 3, figsize=(15, 9.5), constrained_layout=True)
    panels = [(out["measured"].data, f"1. read: {out['measured'].channel} ({unit})", "gray"),
              (out["prepared"].image, f"2. prepared ({out['prepared'].unit}): rows, outliers, plane", "gray"),
              (rec.m[0, ..., 2], "3. texture m_z (energy-relaxed, 2 passes)", "RdBu_r"),
              (rec.residual * out["gains"][-1], f"4. residual ({out['prepared'].unit})", "gray")]
    for ax, (image, title, cmap) in zip(axes.flat, panels):
        shown = ax.imshow(image, origin="lower", extent=extent, cmap=cmap)
        ax.set_title(title)
        ax.set_xlabel("x (um)")
        fig.colorbar(shown, ax=ax, shrink=0.8)
    ax = axes.flat[4]
    window = slice(200, 300)
    for m, colour, label in ((rec.m, "k", "reconstructed"), (m_true, "tab:orange", "truth")):
        step = 5
        y, x = np.mgrid[window, window][:, ::step, ::step] * grid.dx * 1e9
        ax.quiver(x, y, m[0, window, window, 0][::step, ::step], m[0, window, window, 1][::step, ::step], color=colour,
                  scale=25, width=0.003, label=label)
    ax.imshow(rec.m[0, window, window, 2], origin="lower", cmap="RdBu_r", alpha=0.5,
              extent=(200 * grid.dx * 1e9, 300 * grid.dx * 1e9, 200 * grid.dy * 1e9, 300 * grid.dy * 1e9))
    ax.set_title(f"5. zoom: in-plane m (angle error {record['metrics']['angle_error']:.1f} deg overall)")
    ax.set_xlabel("x (nm)")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes.flat[5]
    bins = np.linspace(30, 60, 31)
    ax.hist(true.radii * 1e9, bins, alpha=0.6, label=f"truth: {len(true.radii)}, {true.radii.mean() * 1e9:.1f} nm")
    ax.hist(found.radii * 1e9, bins, histtype="step", lw=2, color="k",
            label=f"found: {len(found.radii)}, {found.radii.mean() * 1e9:.1f} nm")
    ax.set_xlabel("skyrmion radius (nm)")
    ax.set_title("6. radii (m_z = 0 contour)")
    ax.legend()
    fig.suptitle(f"{path.name}: from the file to the texture in {record['times_s']['total']:.0f} s on 2 cores")
    fig.savefig(OUT / f"steps_{path.suffix[1:]}.png", dpi=80)
    plt.close(fig)


def material_figure(path: Path, image: np.ndarray, cells: list, fit, record: dict) -> None:
    """The material step: each cell's image (row offsets removed, over the gain), the fitted model's
    image and the residual, with the fitted values against the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(cells), figsize=(3.2 * len(cells), 9.5), constrained_layout=True)
    for column, (y0, x0) in enumerate(cells):
        target = image[y0:y0 + CELL_CELLS, x0:x0 + CELL_CELLS]
        limit = np.abs(target).max()
        for row, (data, title) in enumerate(((target, f"cell {column + 1}: image"),
                                             (fit.simulated[column], "fitted model"),
                                             (fit.residual[column], "residual"))):
            ax = axes[row, column]
            ax.imshow(data, origin="lower", cmap="gray", vmin=-limit, vmax=limit)
            ax.set_title(title)
            ax.set_axis_off()
    values, sigma, truth = record["values"], record["uncertainty"], record["truth"]
    lines = [f"{n} = {values[n]:.3g} +- {sigma[n]:.2g} (truth {truth[n]:.3g})" for n in ("A", "Ku", "D")]
    fig.suptitle(f"{path.name}, material from {len(cells)} periodic skyrmion cells: " + "; ".join(lines), fontsize=9)
    fig.savefig(OUT / f"material_{path.suffix[1:]}.png", dpi=70)
    plt.close(fig)


def analyse() -> None:
    """Both files: the .gwy (phase, no lift height: the lab book's 30 nm) with the material fit, and
    the .sxm (frequency shift)."""
    analyse_file(OUT / "film.gwy", "MFM phase", LIFT, material_fit=True)
    analyse_file(OUT / "film.sxm", "Frequency_Shift (forward)", None, material_fit=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["film", "files", "analyse"])
    args = parser.parse_args()
    {"film": make_film, "files": make_files, "analyse": analyse}[args.step]()


if __name__ == "__main__":
    main()
