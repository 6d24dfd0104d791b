"""The ``mmrecon`` console script: the same backend as the napari widgets, from a shell.

Every subcommand is a pair: ``_add_<name>(subparsers)`` declares its arguments and
``_<name>(args) -> exit code`` runs it (``demo``, ``simulate``, ``relax``, ``fit``). Long steps are
``jobs`` generators driven under a tqdm progress bar.
Units on the command line are SI (m, A/m, J/m, J/m^3, J/m^2, Hz, N/m).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DEMO_HEIGHTS = (10e-9, 20e-9)
DEFAULT_MATERIAL = {"Ms": 5.8e5, "A": 1.5e-11, "Ku": 8e5, "D": 3e-3, "alpha": 0.5}
DEMO_FIT_GRID = {"nx": 48, "ny": 48, "nz": 1, "dx": 1e-9, "dy": 1e-9, "dz": 1e-9}
"""The demo's fit: a single skyrmion (radius ``DEMO_FIT_RADIUS``) relaxed on this grid, its Hz at
``DEMO_FIT_HEIGHT`` above the film, fitted from ``DEMO_FIT_START`` times the true parameters."""
DEMO_FIT_RADIUS = 7e-9
DEMO_FIT_HEIGHT = 4e-9
DEMO_FIT_START = {"Ms": 1.3, "A": 0.7, "Ku": 1.3, "D": 0.7}


# ----------------------------------------------------------------------------- shared pieces


def _run_with_bar(job, description: str, quiet: bool):
    """Drive a ``jobs`` generator to its end under a progress bar; return its result."""
    from tqdm import tqdm

    from . import jobs

    with tqdm(total=1000, desc=description, disable=quiet, bar_format="{l_bar}{bar}| {elapsed} {postfix}") as bar:
        def on_progress(progress):
            bar.total = progress.maximum or bar.total
            bar.n = progress.value
            bar.set_postfix_str(progress.text, refresh=False)
            bar.refresh()

        return jobs.run(job, on_progress)


def _run_with_counter(job, description: str, quiet: bool):
    """Drive a ``jobs`` generator of unknown length (a fit) under a tqdm line showing the elapsed
    time and its latest progress text (iteration, loss); return its result."""
    from tqdm import tqdm

    from . import jobs

    with tqdm(desc=description, disable=quiet, bar_format="{desc}: {elapsed} {postfix}") as bar:
        return jobs.run(job, lambda progress: bar.set_postfix_str(progress.text))


def _starting_state(args):
    """``(m, grid, material_known, name)`` from ``args.input`` (OVF) or ``args.texture`` on a grid
    (``ValueError`` for a grid larger than ``simulation.MAX_CELLS``)."""
    from .backend import Grid
    from .io import read_ovf
    from .layers import magnetization_from_field
    from .simulation import check_grid_size, texture

    if args.input:
        field, grid, header = read_ovf(args.input, return_header=True)
        try:
            m, known = magnetization_from_field(field, header)
        except ValueError as exc:
            raise ValueError(f"{args.input}: {exc}") from None
        return m, check_grid_size(grid), known, Path(args.input).stem
    grid = Grid(nx=args.n, ny=args.n, nz=1, dx=args.cell, dy=args.cell, dz=args.thickness, device=args.device)
    m = texture(args.texture, check_grid_size(grid), radius=args.radius, spacing=args.spacing, seed=args.seed)
    return m, grid, {}, args.texture


def _material(args, known: dict):
    """Material from the command line, else from the input file, else ``DEFAULT_MATERIAL``."""
    from .backend import Material

    given = {key: getattr(args, key) for key in DEFAULT_MATERIAL if getattr(args, key) is not None}
    scalars = {k: v for k, v in known.items() if k in DEFAULT_MATERIAL}
    return Material(**{**DEFAULT_MATERIAL, **scalars, **given})


def _write_results(out: Path, result, source: str, ovf_name: str) -> list[str]:
    """OVF of the state, one TIFF per image (pixel size and metadata), ``figure.png``."""
    from . import layers as layer_data
    from .io import write_ovf

    out.mkdir(parents=True, exist_ok=True)
    write_ovf(out / ovf_name, result.m, result.grid, title="m",
              desc=[f"mmrecon: {source}"] + layer_data.ovf_description(layer_data.material_to_dict(result.material)))
    written = [ovf_name] + _write_images(out, result, source)
    _figure(out / "figure.png", result)
    return written + ["figure.png"]


def _write_images(out: Path, result, source: str) -> list[str]:
    """One TIFF per image of a ``simulation.Simulation`` (pixel size and metadata inside)."""
    from . import layers as layer_data
    from .io import write_tiff

    written = []
    for image, (_, kwargs, _) in zip(result.images, layer_data.simulation_layers(result, source=source)):
        meta = layer_data.json_metadata(kwargs["metadata"][layer_data.METADATA_KEY])
        write_tiff(out / f"{image.file_stem}.tif", image.data, (result.grid.dy, result.grid.dx),
                   metadata={**meta, "name": image.name})
        written.append(f"{image.file_stem}.tif")
    return written


def _figure(path: Path, result, columns: int = 3) -> None:
    """PNG: m_z of the first layer and every image, in nm, centred diverging colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .simulation import LABELS

    grid = result.grid
    panels = [("m_z", result.m[0, :, :, 2], "")] + [
        (f"{LABELS.get(i.quantity, i.quantity)}, {i.side} {i.height * 1e9:g} nm", i.data, i.unit)
        for i in result.images]
    rows = -(-len(panels) // columns)
    extent = (0, grid.nx * grid.dx * 1e9, 0, grid.ny * grid.dy * 1e9)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.5 * rows), constrained_layout=True,
                             squeeze=False)
    for ax, (title, image, unit) in zip(axes.flat, panels):
        limit = float(np.abs(image).max()) or 1.0
        shown = ax.imshow(image, origin="lower", extent=extent, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(title)
        ax.set_xlabel("x (nm)")
        ax.set_ylabel("y (nm)")
        fig.colorbar(shown, ax=ax, label=unit, shrink=0.85)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _probe(args):
    from .backend import Cantilever, PointDipoleTip, PointMonopoleTip
    from .simulation import Probe

    tip = PointDipoleTip(moment=args.tip_moment) if args.tip == "dipole" else PointMonopoleTip(charge=args.tip_charge)
    sides = ("top", "bottom") if args.side == "both" else (args.side,)
    return Probe(heights=tuple(args.heights), sides=sides, outputs=tuple(args.outputs), tip=tip,
                 cantilever=Cantilever(k=args.k, f0=args.f0, Q=args.Q))


def _summary(result) -> str:
    info = result.relax_info
    relaxed = ("" if info is None else f"relaxed: {'converged' if info.converged else 'NOT converged'} after "
               f"{info.iterations} iterations, max torque {info.max_torque:.1e}; ")
    peaks = ", ".join(f"{i.name}: {np.abs(i.data).max():.3g} {i.unit}" for i in result.images[:4])
    return f"{relaxed}largest |value| {peaks}{', ...' if len(result.images) > 4 else ''}"


def _set_threads(args) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


# ----------------------------------------------------------------------------- demo


def _demo(args) -> int:
    """The main job on the bundled sample: check the relaxed skyrmion lattice is an equilibrium,
    simulate its stray field and MFM image at 10 and 20 nm on both sides, write OVF, TIFF, PNG;
    then fit Ms, A, Ku and D to the stray field of a single skyrmion (``_demo_fit``)."""
    from ._sample_data import load_state
    from .simulation import Probe, Relaxation, simulate

    _set_threads(args)
    m, grid, material = load_state("skyrmion_lattice")
    print(f"napari-mmrecon demo: bundled relaxed Neel skyrmion lattice, {grid.ny} x {grid.nx} x {grid.nz} cells "
          f"of {grid.dx * 1e9:g} x {grid.dy * 1e9:g} x {grid.dz * 1e9:g} nm; Ms = {material.Ms:g} A/m, "
          f"A = {material.A:g} J/m, Ku = {material.Ku:g} J/m^3, D = {material.D:g} J/m^2")
    probe = Probe(heights=DEMO_HEIGHTS, sides=("top", "bottom"), outputs=("Hz", "frequency_shift"))
    result = _run_with_bar(simulate(m, grid, material, probe, Relaxation()), "demo", args.quiet)
    print(_summary(result))
    out = Path(args.out)
    written = _write_results(out, result, "mmrecon demo: bundled skyrmion lattice", "m_relaxed.ovf")
    print(f"wrote {len(written)} files to {out.resolve()}: {', '.join(written)}")
    return _demo_fit(out / "fit", args.quiet)


def _demo_fit(out: Path, quiet: bool) -> int:
    """Relax a single skyrmion of the sample's material, simulate its Hz above the film, fit Ms,
    A, Ku and D to it from ``DEMO_FIT_START`` times the truth; write the target TIFF and the fit's
    files (``fit_output``) into ``out`` and print the fitted values beside the true ones."""
    from . import layers as layer_data
    from ._sample_data import MATERIAL
    from .backend import Grid, StrayFieldMeasurement
    from .fit_output import FittedImage, table_text, write_fit
    from .fitting_job import FitOptions, fit
    from .simulation import Probe, Relaxation, simulate, texture

    grid = Grid(**DEMO_FIT_GRID, device="cpu")
    source = "mmrecon demo: relaxed single skyrmion"
    print(f"fit: Hz at {DEMO_FIT_HEIGHT * 1e9:g} nm above a relaxed single skyrmion, {grid.ny} x {grid.nx} cells of "
          f"{grid.dx * 1e9:g} nm; Ms, A, Ku, D fitted from "
          + ", ".join(f"{factor:g} x" for factor in DEMO_FIT_START.values()) + " the true values")
    probe = Probe(heights=(DEMO_FIT_HEIGHT,), outputs=("Hz",))
    target = _run_with_bar(simulate(texture("skyrmion", grid, radius=DEMO_FIT_RADIUS), grid, MATERIAL, probe,
                                    Relaxation(tol=1e-10)), "demo: target", quiet)
    out.mkdir(parents=True, exist_ok=True)
    target_file = _write_images(out, target, source)[0]
    image = target.images[0]
    measurement = StrayFieldMeasurement(height=image.height, side=image.side, component="z")
    start = MATERIAL.replace(**{key: getattr(MATERIAL, key) * factor for key, factor in DEMO_FIT_START.items()})
    options = FitOptions()
    result = _run_with_counter(fit(image.data, grid, measurement, start, options), "demo: fit", quiet)
    truth = {key: float(getattr(MATERIAL, key)) for key in DEMO_FIT_START}
    fitted = FittedImage(result, image.data, grid, image.name, start, measurement, options, truth)
    written = write_fit(out, fitted, source)
    print(table_text(fitted))
    print(f"{result.message}; misfit {result.misfit:.2e} after {result.iterations} iterations, "
          f"{result.timings['total']:.1f} s")
    print(f"wrote {len(written) + 1} files to {out.resolve()}: {target_file}, {', '.join(written)}")
    print("the same from a shell: mmrecon fit " + str(out / target_file) + " "
          + " ".join(f"--{key} {value:g}" for key, value in layer_data.material_to_dict(start).items()
                     if key in DEMO_FIT_START) + f" -o {out.parent / 'fit-again'}")
    return 0 if result.converged else 1


def _add_demo(sub) -> None:
    demo = sub.add_parser("demo", help="simulate the stray field and MFM image of the bundled skyrmion lattice, "
                                       "write OVF / TIFF / PNG, then fit Ms, A, Ku, D to the stray field of a "
                                       "single skyrmion (no arguments needed)")
    demo.add_argument("--out", default="mmrecon-output/demo", help="output folder (default ./mmrecon-output/demo)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    demo.set_defaults(func=_demo)


# ----------------------------------------------------------------------------- simulate


def _simulate(args) -> int:
    """Texture or OVF in; stray-field / MFM TIFFs, the state as OVF and a PNG figure out."""
    from .simulation import Relaxation, simulate

    _set_threads(args)
    m, grid, known, name = _starting_state(args)
    material = _material(args, known)
    relaxation = Relaxation(tol=args.tol, external_field=(0.0, 0.0, args.field)) if args.relax else None
    result = _run_with_bar(simulate(m, grid, material, _probe(args), relaxation), "simulate", args.quiet)
    print(_summary(result))
    out = Path(args.out)
    ovf = "m_relaxed.ovf" if args.relax else "m.ovf"
    written = _write_results(out, result, f"mmrecon simulate: {name}{' relaxed' if args.relax else ''}", ovf)
    print(f"wrote {len(written)} files to {out.resolve()}: {', '.join(written)}")
    return 0


def _add_simulate(sub) -> None:
    from .simulation import OUTPUTS

    sim = sub.add_parser("simulate", help="stray field / MFM images (TIFF, PNG) of a texture or an OVF file")
    _add_state_arguments(sim)
    _add_material_arguments(sim)
    sim.add_argument("--relax", action="store_true", help="relax the state first")
    sim.add_argument("--tol", type=float, default=1e-4, help="relaxation stop: max |m x H|/Ms")
    sim.add_argument("--heights", type=float, nargs="+", default=[10e-9, 20e-9], help="heights (m)")
    sim.add_argument("--side", choices=("top", "bottom", "both"), default="top")
    sim.add_argument("--outputs", nargs="+", choices=OUTPUTS, default=["Hz", "frequency_shift"],
                     help="images to compute (default Hz frequency_shift)")
    sim.add_argument("--tip", choices=("dipole", "monopole"), default="dipole", help="MFM tip model")
    sim.add_argument("--tip-moment", type=float, default=1e-16, help="dipole tip moment (A m^2)")
    sim.add_argument("--tip-charge", type=float, default=1e-9, help="monopole tip charge (A m)")
    sim.add_argument("--k", type=float, default=3.0, help="cantilever spring constant (N/m)")
    sim.add_argument("--f0", type=float, default=75e3, help="cantilever resonance (Hz)")
    sim.add_argument("--Q", type=float, default=200.0, help="cantilever quality factor")
    sim.add_argument("-o", "--out", default="mmrecon-output/simulate",
                     help="output folder (default ./mmrecon-output/simulate)")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    sim.set_defaults(func=_simulate)


# ----------------------------------------------------------------------------- relax


def _relax(args) -> int:
    """Relax a texture or an OVF file and write the equilibrium as OVF 2.0."""
    import threading

    from . import layers as layer_data
    from .backend import relax
    from .io import write_ovf
    from .jobs import relay
    from .simulation import relax_progress

    m0, grid, known, _ = _starting_state(args)
    material = _material(args, known)
    cancel = threading.Event()

    def call(report):
        return relax(m0, grid, material, external_field=[0.0, 0.0, args.field], tol=args.tol, return_info=True,
                     progress=report, cancel=cancel)

    m, info = _run_with_bar(relay(call, relax_progress(args.tol), cancel), "relax", args.quiet)
    write_ovf(args.output, m, grid, title="m", desc=[f"relaxed by mmrecon: {info}"]
              + layer_data.ovf_description(layer_data.material_to_dict(material)))
    state = "converged" if info.converged else "NOT converged"
    print(f"{state} after {info.iterations} iterations ({info.wall_time:.2f} s), max torque {info.max_torque:.2e}, "
          f"energy {info.energy:.6e} J -> {args.output}")
    return 0 if info.converged else 1


def _add_relax(sub) -> None:
    rel = sub.add_parser("relax", help="relax a texture or an OVF file to equilibrium and write OVF 2.0")
    _add_state_arguments(rel)
    _add_material_arguments(rel)
    rel.add_argument("-o", "--output", default="relaxed.ovf", help="output OVF file (default relaxed.ovf)")
    rel.add_argument("--tol", type=float, default=1e-4, help="stop at max |m x H|/Ms below this")
    rel.add_argument("--quiet", action="store_true", help="no progress bar")
    rel.set_defaults(func=_relax)


# ----------------------------------------------------------------------------- fit


def _fit_target(args):
    """``(image (ny, nx), pixel_size (dy, dx), metadata, name, truth)`` of ``args.target``: a TIFF
    image (pixel size from the file, else ``--pixel-size``) or an OVF state whose image is simulated
    here for the measurement of the flags (``truth``: the material it was simulated with)."""
    from .backend import Material
    from .io import read_ovf, read_tiff
    from .layers import magnetization_from_field
    from .simulation import film_material

    path = Path(args.target)
    if path.suffix.lower() in (".ovf", ".omf", ".ohf"):
        field, grid, header = read_ovf(path, return_header=True)
        try:
            m, known = magnetization_from_field(field, header)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        material = film_material(m, Material(**{**DEFAULT_MATERIAL, **{k: v for k, v in known.items()
                                                                        if k in DEFAULT_MATERIAL}}))
        image = np.asarray(_fit_measurement(args, {}).simulate(m, grid, material.Ms))
        meta = {"grid": {"nz": grid.nz, "dz": grid.dz, "pbc": grid.pbc}}
        truth = {key: float(getattr(material, key)) for key in ("Ms", "A", "Ku", "D")
                 if np.ndim(getattr(material, key)) == 0}
        return image, (grid.dy, grid.dx), meta, f"{path.stem} simulated", truth
    image, pixel, meta = read_tiff(path)
    if image.ndim != 2:
        raise ValueError(f"{path}: a target is one 2-D image, got an array of shape {image.shape}")
    if pixel is None:
        if args.pixel_size is None:
            raise ValueError(f"{path} has no physical pixel size: give --pixel-size (m)")
        pixel = (args.pixel_size, args.pixel_size)
    known = meta.get("material") if isinstance(meta.get("material"), dict) else {}
    truth = {key: float(value) for key, value in known.items()
             if key in ("Ms", "A", "Ku", "D") and isinstance(value, (int, float))}
    return image, tuple(pixel), meta, meta.get("name") or path.stem, truth


def _fit_measurement(args, meta: dict):
    """The measurement from the flags; each one not given is taken from the target's metadata
    (``fitting_job.measurement_from_metadata``: height and side always, component, tip, cantilever
    and MFM quantity if it describes the same kind), else a default."""
    from .backend import Cantilever, MFMMeasurement, PointDipoleTip, PointMonopoleTip, StrayFieldMeasurement
    from .backend.measurement import plane_distance
    from .fitting_job import measurement_from_metadata

    known = measurement_from_metadata(meta)
    height = args.height if args.height is not None else (plane_distance(known) if known else None)
    if height is None:
        raise ValueError("give --height (m): the target does not say at which height it was measured")
    side = args.side or (known.side if known else "top")
    kind = args.measurement or ("mfm" if isinstance(known, MFMMeasurement) else "stray")
    if kind == "stray":
        same = known if isinstance(known, StrayFieldMeasurement) else None
        return StrayFieldMeasurement(height=height, side=side, component=args.component or (
            same.component if same else "z"))
    same = known if isinstance(known, MFMMeasurement) else None
    if args.tip == "monopole" or (args.tip is None and args.tip_charge is not None):
        tip = PointMonopoleTip(charge=args.tip_charge if args.tip_charge is not None else 1e-9)
    elif args.tip == "dipole" or args.tip_moment is not None or same is None:
        tip = PointDipoleTip(moment=args.tip_moment if args.tip_moment is not None else 1e-16)
    else:
        tip = same.tip
    cantilever = same.cantilever if same else Cantilever()
    cantilever = Cantilever(**{key: getattr(args, key) if getattr(args, key) is not None else getattr(cantilever, key)
                               for key in ("k", "f0", "Q")})
    quantity = args.quantity or (same.quantity if same else "frequency_shift")
    return MFMMeasurement(lift_height=height, side=side, tip=tip, cantilever=cantilever, quantity=quantity)


def _fit(args) -> int:
    """Fit material parameters to a TIFF image (or an OVF state's simulated image); write the
    fitted values, the relaxed state, the simulated and residual images and a figure."""
    from .backend import Grid
    from .fit_output import FittedImage, table_text, write_fit
    from .fitting_job import FitOptions, fit, validate
    from .io import read_ovf
    from .layers import magnetization_from_field
    from .simulation import check_grid_size

    _set_threads(args)
    image, (dy, dx), meta, name, truth = _fit_target(args)
    film = meta.get("grid") if isinstance(meta.get("grid"), dict) else {}
    nz = args.nz or int(film.get("nz", 1))
    thickness = args.thickness or float(film.get("nz", 1)) * float(film.get("dz", 1e-9))
    grid = check_grid_size(Grid(nx=image.shape[1], ny=image.shape[0], nz=nz, dx=dx, dy=dy, dz=thickness / nz,
                                pbc=bool(film.get("pbc", False)), device="cpu"))
    measurement = _fit_measurement(args, meta)
    start = _material(args, {})
    options = FitOptions(fit=tuple(args.fit), bias=args.bias, bias_strength=args.bias_strength,
                         optimizer=args.optimizer, max_iter=args.max_iter, relax_tol=args.relax_tol,
                         external_field=(0.0, 0.0, args.field) if args.field else None)
    m0 = m0_grid = None
    if args.m0:
        field, m0_grid, header = read_ovf(args.m0, return_header=True)
        m0, _ = magnetization_from_field(field, header)
    image = validate(image, grid, measurement, start, options, m0, (dy, dx), meta.get("unit") or "", m0_grid)
    print(f"fit of {name}: {grid.ny} x {grid.nx} x {grid.nz} cells of {dx * 1e9:g} x {dy * 1e9:g} x "
          f"{grid.dz * 1e9:g} nm; fitting {', '.join(options.fit)} ({options.optimizer}, bias {options.bias})")
    result = _run_with_counter(fit(image, grid, measurement, start, options, m0), "fit", args.quiet)
    fitted = FittedImage(result, image, grid, name, start, measurement, options, truth)
    out = Path(args.out)
    written = write_fit(out, fitted, f"mmrecon fit: {args.target}")
    print(table_text(fitted))
    print(f"{result.message}; misfit {result.misfit:.2e} after {result.iterations} iterations, "
          f"{result.timings['total']:.1f} s")
    print(f"wrote {len(written)} files to {out.resolve()}: {', '.join(written)}")
    return 0 if result.converged else 1


def _add_fit(sub) -> None:
    from .backend.fit_optimizers import OPTIMIZERS
    from .backend.fitting import BIAS_OPTIONS, FITTABLE

    fit = sub.add_parser("fit", help="fit Ms, A, Ku, D (and height, offset) to a stray-field or MFM image",
                         description="Fit material parameters so that the relaxed state reproduces the image. "
                                     "Measurement flags not given come from the TIFF's metadata (as mmrecon "
                                     "simulate writes it). SI units.")
    fit.add_argument("target", help="TIFF image with its pixel size, or an OVF state (its image is simulated)")
    fit.add_argument("--pixel-size", type=float, help="pixel size (m) of a TIFF without one")
    fit.add_argument("--measurement", choices=("stray", "mfm"), help="what the image is (default: from the file, "
                                                                       "else stray)")
    fit.add_argument("--height", type=float, help="height / lift height above (or below) the film (m)")
    fit.add_argument("--side", choices=("top", "bottom"), help="side of the film (default top)")
    fit.add_argument("--component", choices=("x", "y", "z"), help="stray-field component (default z)")
    fit.add_argument("--quantity", choices=("frequency_shift", "phase"), help="MFM image (default frequency_shift)")
    fit.add_argument("--tip", choices=("dipole", "monopole"), help="MFM tip model (default dipole)")
    fit.add_argument("--tip-moment", type=float, help="dipole tip moment (A m^2, default 1e-16)")
    fit.add_argument("--tip-charge", type=float, help="monopole tip charge (A m, default 1e-9)")
    fit.add_argument("--k", type=float, help="cantilever spring constant (N/m, default 3)")
    fit.add_argument("--f0", type=float, help="cantilever resonance (Hz, default 75e3)")
    fit.add_argument("--Q", type=float, help="cantilever quality factor (default 200)")
    fit.add_argument("--nz", type=int, help="cells across the film (default: from the file, else 1)")
    fit.add_argument("--thickness", type=float, help="film thickness (m, default: from the file, else 1e-9)")
    _add_material_arguments(fit)
    fit.add_argument("--fit", nargs="+", choices=FITTABLE, default=["Ms", "A", "Ku", "D"],
                     help="parameters to fit (default Ms A Ku D)")
    fit.add_argument("--m0", help="OVF file with the starting magnetization (default: shaped from the image)")
    fit.add_argument("--bias", choices=BIAS_OPTIONS, default="target", help="bias field (default target)")
    fit.add_argument("--bias-strength", type=float, default=0.2, help="in units of 2 Ku / (mu0 Ms) (default 0.2)")
    fit.add_argument("--optimizer", choices=OPTIMIZERS, default="levenberg-marquardt")
    fit.add_argument("--max-iter", type=int, default=100, help="outer iterations per stage (default 100)")
    fit.add_argument("--relax-tol", type=float, default=1e-8, help="relaxation stop: max |m x H|/Ms")
    fit.add_argument("-o", "--out", default="mmrecon-output/fit", help="output folder (default ./mmrecon-output/fit)")
    fit.add_argument("--quiet", action="store_true", help="no progress line")
    fit.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    fit.set_defaults(func=_fit)


# ----------------------------------------------------------------------------- arguments


def _add_state_arguments(parser) -> None:
    from .simulation import TEXTURES

    parser.add_argument("input", nargs="?", help="OVF file with a starting magnetization (else --texture)")
    parser.add_argument("--texture", choices=TEXTURES, default="skyrmion", help="preset (default skyrmion)")
    parser.add_argument("--n", type=int, default=64, help="cells per side for a texture (default 64)")
    parser.add_argument("--cell", type=float, default=1e-9, help="in-plane cell size (m)")
    parser.add_argument("--thickness", type=float, default=1e-9, help="film thickness (m)")
    parser.add_argument("--radius", type=float, default=8e-9, help="skyrmion radius (m)")
    parser.add_argument("--spacing", type=float, default=30e-9,
                        help="lattice spacing / stripe and labyrinth period (m)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")


def _add_material_arguments(parser) -> None:
    """Material flags default to None: then the input file's values, else ``DEFAULT_MATERIAL``."""
    parser.add_argument("--Ms", type=float, help="saturation magnetization (A/m, default 5.8e5)")
    parser.add_argument("--A", type=float, help="exchange stiffness (J/m, default 1.5e-11)")
    parser.add_argument("--Ku", type=float, help="uniaxial anisotropy along z (J/m^3, default 8e5)")
    parser.add_argument("--D", type=float, help="interfacial DMI (J/m^2, default 3e-3)")
    parser.add_argument("--alpha", type=float, help="Gilbert damping (default 0.5)")
    parser.add_argument("--field", type=float, default=0.0, help="external field along z (A/m)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmrecon", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_demo, _add_simulate, _add_relax, _add_fit):
        add(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``mmrecon`` console script; errors are one-line messages, exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        print(f"mmrecon: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
