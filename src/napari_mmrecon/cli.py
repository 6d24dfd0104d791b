"""The ``mmrecon`` console script: the same backend as the napari widgets, from a shell.

Every subcommand is a pair: ``_add_<name>(subparsers)`` declares its arguments (the options' flags,
help, defaults and units come from ``workflows.options``) and ``_<name>(args) -> exit code`` runs it
(``demo``, ``simulate``, ``relax``, ``fit``, ``reconstruct``, ``prepare``, ``calibrate-tip``, ``dataset``,
``train``) in the same order: read the inputs and build the objects the flags describe (their constructors check
themselves), check every option against its declared range, check every file it will write
(``_check_outputs``: never an input, an existing file only with ``--overwrite``), then compute under
a progress bar (``jobs`` generators) and write. Units on the command line are SI (m, A/m, J/m,
J/m^3, J/m^2, Hz, N/m).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .workflows.options import MATERIAL_NAMES, OPTIONS, add_arguments, check, defaults, help_text

DESCRIPTION = ("Micromagnetic stray-field and MFM simulation, measured-image preparation, material-parameter fits "
               "and texture reconstruction from a shell. SI units (m, A/m, J/m, J/m^3, J/m^2, Hz, N/m). A negative "
               "number may follow its flag (--D -3e-3) or be joined to it (--D=-3e-3). Results go to -o/--out: a "
               "folder of fixed file names (demo, simulate, fit, reconstruct, train), the OVF file (relax), the TIFF "
               "file (prepare) or a zarr dataset (dataset: completed or extended, never replaced); an existing file "
               "is replaced only with --overwrite, an input file never. Errors are one line and exit code 2.")
CHANNEL_HELP = ("the instrument file's channel, by name (e.g. 'MFM phase') or quantity (phase, frequency_shift); "
                "needed when the file holds several")
OUT_HELP = "output folder (default {}); files of fixed names, see the description"
STATE = ("texture", "n", "cell", "thickness", "nz", "radius", "spacing", "seed")
PROBE = ("heights", "side", "outputs", "tip", "tip_moment", "tip_charge", "k", "f0", "Q")
FIT_MEASUREMENT = ("pixel_size", "measurement", "height", "side", "component", "quantity", "tip", "tip_moment",
                   "tip_charge", "k", "f0", "Q", "nz", "thickness")
FIT = ("fit", "bias", "bias_strength", "optimizer", "max_iter", "relax_tol")
MEASUREMENT_FLAGS = FIT_MEASUREMENT[1:-2]
"""The flags that describe how a target was measured (not its pixel size or film)."""
RECONSTRUCT = ("method", "init", "reconstruct_fit", "bias_strength", "noise", "discrepancy", "reconstruct_max_iter",
               "row_offsets")
RUN = ("device", "threads", "quiet", "overwrite")
TRAIN = ("epochs", "batch_size", "lr", "train_seed", "train_device")
OVF_SUFFIXES = (".ovf", ".omf")
DASK_TIMEOUT = 30
"""Seconds ``mmrecon dataset --dask`` waits for the scheduler."""
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$", re.IGNORECASE)

DEMO_SAMPLE = "skyrmion_lattice"
DEMO_HEIGHTS = (10e-9, 20e-9)
DEMO_FIT_GRID = {"nx": 40, "ny": 40, "nz": 1, "dx": 1e-9, "dy": 1e-9, "dz": 1e-9}
"""The demo's fit: a single skyrmion (radius ``DEMO_FIT_RADIUS``) relaxed on this grid, its Hz at
``DEMO_FIT_HEIGHT`` above the film, fitted from ``DEMO_FIT_START`` times the true parameters."""
DEMO_FIT_RADIUS = 7e-9
DEMO_FIT_HEIGHT = 4e-9
DEMO_FIT_START = {"Ms": 1.3, "A": 0.7, "Ku": 1.3, "D": 0.7}
DEMO_RECONSTRUCT_SAMPLE = "single_skyrmion"
DEMO_RECONSTRUCT_HEIGHT = 10e-9
DEMO_RECONSTRUCTIONS = (("top", "top", "estimate", 5), ("bottom", "bottom", "estimate", 2),
                        ("bottom-unet", "bottom", "unet", 2))
"""The demo's reconstructions of the bundled single skyrmion's texture from its Hz at
``DEMO_RECONSTRUCT_HEIGHT`` (bias method): ``(output folder, side, start, at most this many outer
iterations)``; the last is the hybrid on the weak side. The strong side converges in 3; the weak
side would run on for minutes without getting the texture right (14-16 deg from the truth after 2,
3 or 5 iterations), so it stops at 2 and the demo stays under a minute (54 s on 2 idle cores)."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that reads every negative number as a value: argparse's own pattern
    knows ``-3`` and ``-0.003`` but takes ``-3e-3`` for an unknown flag."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER


# ----------------------------------------------------------------------------- shared pieces


def _run_with_bar(job, description: str, quiet: bool):
    """Drive a ``jobs`` generator to its end under a progress bar; return its result."""
    from tqdm import tqdm

    from .workflows import jobs

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

    from .workflows import jobs

    with tqdm(desc=description, disable=quiet, bar_format="{desc}: {elapsed} {postfix}") as bar:
        return jobs.run(job, lambda progress: bar.set_postfix_str(progress.text))


def _check_options(args) -> None:
    """``options.check`` on every option flag of the command (``ValueError`` naming the first
    one out of its range), and that a ``--device cuda`` exists here."""
    for name in OPTIONS:
        if hasattr(args, name):
            check(name, getattr(args, name))
    if "cuda" in (getattr(args, "device", None), getattr(args, "train_device", None)):
        import torch

        if not torch.cuda.is_available():
            raise ValueError("device = 'cuda' but torch finds no CUDA device on this machine: use --device cpu "
                             "or auto")


def _set_threads(args) -> None:
    """``--threads N`` (N > 0) sets torch's CPU threads; 0 keeps torch's choice."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _cell_height(thickness: float, nz: int) -> float:
    """The cell height dz (m) of a film ``thickness`` (m) in ``nz`` cells, both checked first."""
    return check("thickness", thickness) / check("nz", nz)


def _state(args):
    """``(grid, m, known, name)`` of ``args.input`` (OVF; ``known``: the material it names) or of
    the texture flags (``m`` None: ``_texture`` makes it once the flags are checked); ``ValueError``
    for a grid larger than ``simulate.MAX_CELLS``."""
    from .backend import Grid
    from .io import read_ovf
    from .workflows.layer_data import magnetization_from_field
    from .workflows.simulate import check_grid_size

    if args.input:
        field, grid, header = read_ovf(args.input, return_header=True)
        try:
            m, known = magnetization_from_field(field, header)
        except ValueError as exc:
            raise ValueError(f"{args.input}: {exc}") from None
        return check_grid_size(grid).with_(device=args.device), m, known, Path(args.input).stem
    grid = Grid(nx=args.n, ny=args.n, nz=args.nz, dx=args.cell, dy=args.cell, dz=_cell_height(args.thickness, args.nz),
                device=args.device)
    return check_grid_size(grid), None, {}, args.texture


def _texture(args, grid, m):
    """``m`` if the state came from a file, else the texture of the flags on ``grid``."""
    from .workflows.simulate import texture

    return m if m is not None else texture(args.texture, grid, radius=args.radius, spacing=args.spacing,
                                           seed=args.seed)


def _material(known: dict, args=None):
    """Material from the command line (``args``), else from the input file (``known``), else the
    declared defaults."""
    from .backend import Material

    flags = {} if args is None else {key: getattr(args, key) for key in MATERIAL_NAMES}
    given = {key: value for key, value in flags.items() if value is not None}
    scalars = {key: value for key, value in known.items() if key in MATERIAL_NAMES}
    return Material(**{**defaults(MATERIAL_NAMES), **scalars, **given})


def _probe(args, calibration=None):
    """The probe of the flags; with a calibrated tip (``--tip FILE``) its tip, cantilever and
    height offset instead of the tip and cantilever flags."""
    from .backend import Cantilever, PointDipoleTip, PointMonopoleTip
    from .workflows.simulate import SIDES, Probe

    sides = SIDES if args.side == "both" else (args.side,)
    if calibration is not None:
        return Probe(heights=tuple(args.heights), sides=sides, outputs=tuple(args.outputs), tip=calibration.tip,
                     cantilever=calibration.cantilever, tip_height_offset=calibration.height_offset)
    tip = PointDipoleTip(moment=args.tip_moment) if args.tip == "dipole" else PointMonopoleTip(charge=args.tip_charge)
    return Probe(heights=tuple(args.heights), sides=sides, outputs=tuple(args.outputs), tip=tip,
                 cantilever=Cantilever(k=args.k, f0=args.f0, Q=args.Q))


TIP_FILE_HELP = ("; or the JSON file of a calibrated tip (mmrecon calibrate-tip), whose tip, cantilever and effective "
                 "height offset are used")


def _allow_tip_file(parser) -> None:
    """Let ``--tip`` take a calibrated tip's JSON file besides the tip models (``_tip_calibration``)."""
    action = next(action for action in parser._actions if "--tip" in action.option_strings)
    action.choices, action.metavar = None, "{" + ",".join(OPTIONS["tip"].choices) + "} or FILE.json"
    action.help += TIP_FILE_HELP


def _tip_calibration(args):
    """The ``TipCalibration`` of ``--tip FILE.json`` (``args.tip`` then None: no model flag), or
    None for a tip model; ``ValueError`` naming the file or the clash."""
    value = args.tip
    if value is None or value in OPTIONS["tip"].choices:
        return None
    from .backend import load_tip_calibration

    if Path(value).suffix.lower() != ".json":
        raise ValueError(f"--tip {value!r} is neither a tip model ({', '.join(OPTIONS['tip'].choices)}) nor a "
                         "calibrated tip's .json file")
    calibration = load_tip_calibration(value)
    clash = [flag for flag, name in (("--tip-moment", "tip_moment"), ("--tip-charge", "tip_charge"))
             if name in args and getattr(args, name) is not None and OPTIONS[name].default != getattr(args, name)]
    if clash:
        raise ValueError(f"{clash[0]} and --tip {value} both give the tip: give one")
    args.tip = None
    return calibration


def _image_files(probe) -> list[str]:
    """The TIFF names of the images ``simulate.simulate`` makes for ``probe``."""
    from .workflows.simulate import UNITS, SimulatedImage

    return [f"{SimulatedImage(quantity, UNITS[quantity], side, height, None).file_stem}.tif"
            for side in probe.sides for height in probe.heights for quantity in probe.outputs]


def _summary(result) -> str:
    info = result.relax_info
    relaxed = ("" if info is None else f"relaxed: {'converged' if info.converged else 'NOT converged'} after "
               f"{info.iterations} iterations, max torque {info.max_torque:.1e}; ")
    peaks = ", ".join(f"{i.name}: {np.abs(i.data).max():.3g} {i.unit}" for i in result.images[:4])
    return f"{relaxed}largest |value| {peaks}{', ...' if len(result.images) > 4 else ''}"


# ----------------------------------------------------------------------------- output safety


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (through links too)."""
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))


def _check_outputs(files, inputs, overwrite: bool) -> list[Path]:
    """Check every file a command will write, before it computes anything; return those that
    exist (replaced with ``overwrite``). ``ValueError`` if one is an input (never replaced), is
    written twice, is a folder or lies under a file, or if some exist and ``overwrite`` is False
    (the message lists them)."""
    files = [Path(path) for path in files]
    for path in files:
        source = next((Path(i) for i in inputs if i is not None and _same_file(path, Path(i))), None)
        if source is not None:
            raise ValueError(f"{path} is an input of this command, which never writes over its input: choose another "
                             "-o")
        blocker = next((parent for parent in path.parents if parent.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise ValueError(f"cannot write {path}: {blocker} is a file, not a folder")
        if path.is_dir():
            raise ValueError(f"cannot write {path}: it is a folder")
        if files.count(path) > 1:
            raise ValueError(f"{path} would be written twice (give heights that differ in nm)")
    existing = [path for path in files if path.exists()]
    if existing and not overwrite:
        raise ValueError(_existing_message(existing))
    return existing


def _existing_message(existing: list[Path]) -> str:
    """"X exists already ..." or "N files exist already in F: a, b, ...", with the way out."""
    if len(existing) == 1:
        return f"{existing[0]} exists already: give --overwrite to replace it, or another -o"
    folder = Path(os.path.commonpath([str(path.parent) for path in existing]))
    names = ", ".join(str(path.relative_to(folder)) for path in existing)
    return f"{len(existing)} files exist already in {folder}: {names}: give --overwrite to replace them, or another -o"


@contextmanager
def _writing(target):
    """Turn an ``OSError`` while writing into one naming ``target`` (the ``-o`` path) rather than
    the temporary file it happened on."""
    try:
        yield
    except OSError as err:
        raise OSError(f"cannot write {target}: {err.strerror or err}") from None


def _wrote(out: Path, written: list[str], replaced: list[Path]) -> str:
    again = f" ({len(replaced)} replaced, --overwrite)" if replaced else ""
    return f"wrote {len(written)} files to {out.resolve()}{again}: {', '.join(written)}"


def _write_results(out: Path, result, source: str, ovf_name: str) -> list[str]:
    """OVF of the state, one TIFF per image (pixel size and metadata), ``figure.png``."""
    from .io import write_ovf
    from .workflows import layer_data
    from .workflows.figures import simulation_figure

    out.mkdir(parents=True, exist_ok=True)
    write_ovf(out / ovf_name, result.m, result.grid, title="m",
              desc=[f"mmrecon: {source}"] + layer_data.ovf_description(layer_data.material_to_dict(result.material)))
    written = [ovf_name] + _write_images(out, result, source)
    simulation_figure(out / "figure.png", result)
    return written + ["figure.png"]


def _write_images(out: Path, result, source: str) -> list[str]:
    """One TIFF per image of a ``workflows.simulate.Simulation`` (pixel size and metadata inside)."""
    from .io import write_tiff
    from .workflows import layer_data

    written = []
    for image in result.images:
        write_tiff(out / f"{image.file_stem}.tif", image.data, (result.grid.dy, result.grid.dx),
                   metadata=layer_data.simulated_image_file_metadata(result, image, source))
        written.append(f"{image.file_stem}.tif")
    return written


# ----------------------------------------------------------------------------- demo


def _demo_probes():
    """The demo's two probes: Hz and MFM at ``DEMO_HEIGHTS`` on both sides of the sample, and
    the fit's Hz at ``DEMO_FIT_HEIGHT`` above the single skyrmion."""
    from .workflows.simulate import SIDES, Probe

    return (Probe(heights=DEMO_HEIGHTS, sides=SIDES, outputs=("Hz", "frequency_shift")),
            Probe(heights=(DEMO_FIT_HEIGHT,), outputs=("Hz",)))


def _demo(args) -> int:
    """The main job on the bundled sample: check the relaxed skyrmion lattice is an equilibrium,
    simulate its stray field and MFM image at 10 and 20 nm on both sides, write OVF, TIFF, PNG;
    then fit Ms, A, Ku and D to the stray field of a single skyrmion (``_demo_fit``)."""
    from ._sample_data import SAMPLES, load_state
    from .workflows.fit_output import FILES as FIT_FILES
    from .workflows.reconstruct_output import output_files
    from .workflows.simulate import Relaxation, simulate

    m, grid, material = load_state(DEMO_SAMPLE)
    grid = grid.with_(device=args.device)
    probe, fit_probe = _demo_probes()
    _check_options(args)
    out = Path(args.out)
    files = ([out / name for name in ["m_relaxed.ovf", *_image_files(probe), "figure.png"]]
             + [out / "fit" / name for name in _image_files(fit_probe) + list(FIT_FILES)]
             + [out / "reconstruct" / folder / name for folder, *_ in DEMO_RECONSTRUCTIONS for name in output_files("bias")])
    replaced = _check_outputs(files, [SAMPLES[DEMO_SAMPLE].path, SAMPLES[DEMO_RECONSTRUCT_SAMPLE].path],
                              args.overwrite)
    _set_threads(args)
    print(f"napari-mmrecon demo: bundled relaxed Neel skyrmion lattice, {grid.ny} x {grid.nx} x {grid.nz} cells "
          f"of {grid.dx * 1e9:g} x {grid.dy * 1e9:g} x {grid.dz * 1e9:g} nm; Ms = {material.Ms:g} A/m, "
          f"A = {material.A:g} J/m, Ku = {material.Ku:g} J/m^3, D = {material.D:g} J/m^2")
    result = _run_with_bar(simulate(m, grid, material, probe, Relaxation()), "demo", args.quiet)
    print(_summary(result))
    with _writing(out):
        written = _write_results(out, result, "mmrecon demo: bundled skyrmion lattice", "m_relaxed.ovf")
    print(_wrote(out, written, [path for path in replaced if path.parent == out]))
    fitted = _demo_fit(out / "fit", fit_probe, args, [path for path in replaced if path.parent == out / "fit"])
    reconstructed = _demo_reconstruct(out / "reconstruct", args, replaced)
    return 0 if fitted == 0 and reconstructed else 1


def _demo_fit(out: Path, probe, args, replaced: list[Path]) -> int:
    """Relax a single skyrmion of the sample's material, simulate its Hz above the film (``probe``),
    fit Ms, A, Ku and D to it from ``DEMO_FIT_START`` times the truth; write the target TIFF and
    the fit's files (``fit_output``) into ``out`` and print the fitted values beside the true ones."""
    from ._sample_data import MATERIAL
    from .backend import Grid, StrayFieldMeasurement
    from .workflows import layer_data
    from .workflows.fit import FitOptions, fit
    from .workflows.fit_output import FittedImage, table_text, write_fit
    from .workflows.simulate import Relaxation, simulate, texture

    grid = Grid(**DEMO_FIT_GRID, device=args.device)
    source = "mmrecon demo: relaxed single skyrmion"
    print(f"fit: Hz at {DEMO_FIT_HEIGHT * 1e9:g} nm above a relaxed single skyrmion, {grid.ny} x {grid.nx} cells of "
          f"{grid.dx * 1e9:g} nm; Ms, A, Ku, D fitted from "
          + ", ".join(f"{factor:g} x" for factor in DEMO_FIT_START.values()) + " the true values")
    target = _run_with_bar(simulate(texture("skyrmion", grid, radius=DEMO_FIT_RADIUS), grid, MATERIAL, probe,
                                    Relaxation(tol=1e-10)), "demo: target", args.quiet)
    image = target.images[0]
    measurement = StrayFieldMeasurement(height=image.height, side=image.side, component="z")
    start = MATERIAL.replace(**{key: getattr(MATERIAL, key) * factor for key, factor in DEMO_FIT_START.items()})
    options = FitOptions()
    result = _run_with_counter(fit(image.data, grid, measurement, start, options), "demo: fit", args.quiet)
    truth = {key: float(getattr(MATERIAL, key)) for key in DEMO_FIT_START}
    fitted = FittedImage(result, image.data, grid, image.name, start, measurement, options, truth)
    with _writing(out):
        out.mkdir(parents=True, exist_ok=True)
        written = _write_images(out, target, source) + write_fit(out, fitted, source)
    print(table_text(fitted))
    print(f"{result.message}; misfit {result.misfit:.2e} after {result.iterations} iterations, "
          f"{result.timings['total']:.1f} s")
    print(_wrote(out, written, replaced))
    print("the same from a shell: mmrecon fit " + str(out / written[0]) + " "
          + " ".join(f"--{key}={value:g}" for key, value in layer_data.material_to_dict(start).items()
                     if key in DEMO_FIT_START) + f" -o {out.parent / 'fit-again'}")
    return 0 if result.converged else 1


def _demo_reconstruct(out: Path, args, replaced: list[Path]) -> bool:
    """Reconstruct the texture of the bundled single skyrmion from its Hz at
    ``DEMO_RECONSTRUCT_HEIGHT`` on each side (at most the iterations ``DEMO_RECONSTRUCTIONS`` gives),
    write each reconstruction's files (``reconstruct_output``) into ``out/top`` and
    ``out/bottom`` and print how close each texture is to the truth (``texture_metrics``).
    Returns whether the reconstruction from the stronger side converged."""
    from ._sample_data import SAMPLES, load_images, load_state
    from .backend import StrayFieldMeasurement, texture_metrics
    from .workflows.reconstruct import ReconstructOptions, reconstruct
    from .workflows.reconstruct_output import ReconstructedImages, write_reconstruction

    m_true, grid, material = load_state(DEMO_RECONSTRUCT_SAMPLE)
    grid = grid.with_(device=args.device)
    images = {image.side: image for image in load_images(DEMO_RECONSTRUCT_SAMPLE)[0].images
              if image.quantity == "Hz" and image.height == DEMO_RECONSTRUCT_HEIGHT}
    options = ReconstructOptions()
    source = f"mmrecon demo: bundled {SAMPLES[DEMO_RECONSTRUCT_SAMPLE].title}"
    print(f"reconstruction: the texture of the bundled single skyrmion ({grid.ny} x {grid.nx} cells of "
          f"{grid.dx * 1e9:g} nm) from its Hz at {DEMO_RECONSTRUCT_HEIGHT * 1e9:g} nm above (top) or below (bottom) "
          f"the film, {options.method} method, started from the image's estimate (bottom-unet: the U-Net's "
          "prediction), at most "
          + ", ".join(f"{max_iter} ({folder})" for folder, *_, max_iter in DEMO_RECONSTRUCTIONS) + " iterations")
    outcomes = {}
    for folder, side, init, max_iter in DEMO_RECONSTRUCTIONS:
        image = images[side]
        measurement = StrayFieldMeasurement(height=image.height, side=side, component="z")
        run = replace(options, init=init, max_iter=max_iter)
        result = _run_with_bar(reconstruct(image.data, grid, measurement, material, run),
                               f"demo: reconstruct ({folder})", args.quiet)
        metrics = texture_metrics(result.m, m_true, grid)
        with _writing(out):
            written = write_reconstruction(out / folder, ReconstructedImages(result, image.data[None], grid,
                                                                              (image.name,), run, metrics), source)
        outcomes[folder] = (image, result, metrics, written)
    print(f"{'run':<13}{'contrast':>12}{'residual':>10}{'angle error':>13}{'m_z corr.':>11}{'charge':>8}  how it ended")
    for folder, (image, result, q, _) in outcomes.items():
        print(f"{folder:<13}{np.ptp(image.data) / 1e3:>8.3g} kA/m{np.sqrt(result.misfit):>9.2%} {q.angle_error:>8.3g} deg"
              f"{q.mz_correlation:>11.3f}{q.charge:>8.2f}  {result.message.split(':')[0]} after "
              f"{result.iterations} iterations")
    strong, weak = sorted(("top", "bottom"), key=lambda side: -np.ptp(outcomes[side][0].data))
    physics, hybrid = outcomes[weak][2], outcomes[f"{weak}-unet"][2]
    print(f"true charge {outcomes[strong][2].charge_true:.2f}. From the {strong} side (the strong contrast) the image "
          f"and the micromagnetic equilibrium give the texture back; from the weak {weak} side alone the image does "
          f"not pin the texture down and physics alone ends far from the truth ({physics.angle_error:.3g} deg). Started "
          f"from the U-Net's prediction (the hybrid, {weak}-unet) it ends {hybrid.angle_error:.3g} deg from the truth "
          f"(m_z correlation {hybrid.mz_correlation:.3f})"
          + ("" if hybrid.angle_error < 0.5 * physics.angle_error else
             ": the U-Net does not find this skyrmion either. Its weak side is fainter than that of 99 % of the "
             "training films; on the held-out films the hybrid rescues the weak side where physics alone fails "
             "(docs/unet.md)"))
    for folder, (*_, written) in outcomes.items():
        print(_wrote(out / folder, written, [path for path in replaced if path.parent == out / folder]))
    return outcomes[strong][1].converged


def _add_demo(sub) -> None:
    demo = sub.add_parser("demo", help="simulate the stray field and MFM image of the bundled skyrmion lattice, "
                                       "write OVF / TIFF / PNG, fit Ms, A, Ku, D to the stray field of a single "
                                       "skyrmion, reconstruct a skyrmion's texture from either side (no arguments "
                                       "needed)",
                          description="Simulate Hz and the MFM frequency shift of the bundled relaxed skyrmion "
                                      "lattice at 10 and 20 nm on both sides, then fit Ms, A, Ku and D to the "
                                      "stray field of a relaxed single skyrmion from 30 % off, then reconstruct the "
                                      "texture of the bundled single skyrmion from its Hz at 10 nm above and below "
                                      "the film (and from below again, started from the U-Net's prediction: the "
                                      "hybrid) and compare it with the truth. Writes m_relaxed.ovf, one TIFF per "
                                      "image and figure.png into -o, the fit's files into its subfolder fit, the "
                                      "reconstructions' into reconstruct/top, reconstruct/bottom and "
                                      "reconstruct/bottom-unet.")
    demo.add_argument("-o", "--out", default="mmrecon-output/demo", help=OUT_HELP.format("mmrecon-output/demo"))
    add_arguments(demo, RUN)
    demo.set_defaults(func=_demo)


# ----------------------------------------------------------------------------- simulate


def _simulate(args) -> int:
    """Texture or OVF in; stray-field / MFM TIFFs, the state as OVF and a PNG figure out."""
    from .workflows.simulate import Relaxation, simulate

    grid, m, known, name = _state(args)
    material = _material(known, args)
    probe = _probe(args, _tip_calibration(args))
    _check_options(args)
    out = Path(args.out)
    ovf = "m_relaxed.ovf" if args.relax else "m.ovf"
    replaced = _check_outputs([out / name for name in [ovf, *_image_files(probe), "figure.png"]], [args.input],
                              args.overwrite)
    m = _texture(args, grid, m)
    _set_threads(args)
    relaxation = Relaxation(tol=args.tol, external_field=(0.0, 0.0, args.field)) if args.relax else None
    result = _run_with_bar(simulate(m, grid, material, probe, relaxation), "simulate", args.quiet)
    print(_summary(result))
    with _writing(out):
        written = _write_results(out, result, f"mmrecon simulate: {name}{' relaxed' if args.relax else ''}", ovf)
    print(_wrote(out, written, replaced))
    return 0


def _add_simulate(sub) -> None:
    sim = sub.add_parser("simulate", help="stray field / MFM images (TIFF, PNG) of a texture or an OVF file",
                         description="Stray-field and MFM images of a texture or an OVF state, optionally relaxed "
                                     "first. Writes m.ovf (m_relaxed.ovf with --relax), one TIFF per image (e.g. "
                                     "Hz_top_10nm.tif, mfm_df_bottom_20nm.tif) and figure.png into -o. The "
                                     "material of an OVF file is used unless given here.")
    _add_state_arguments(sim)
    add_arguments(sim, MATERIAL_NAMES + ("field",), from_input=MATERIAL_NAMES)
    add_arguments(sim, ("relax", "tol") + PROBE)
    _allow_tip_file(sim)
    sim.add_argument("-o", "--out", default="mmrecon-output/simulate", help=OUT_HELP.format("mmrecon-output/simulate"))
    add_arguments(sim, RUN)
    sim.set_defaults(func=_simulate)


# ----------------------------------------------------------------------------- relax


def _relax(args) -> int:
    """Relax a texture or an OVF file and write the equilibrium as OVF 2.0."""
    import threading

    from .backend import relax
    from .io import write_ovf
    from .workflows import layer_data
    from .workflows.jobs import relay
    from .workflows.simulate import relax_progress

    grid, m0, known, _ = _state(args)
    material = _material(known, args)
    _check_options(args)
    out = Path(args.out)
    if out.suffix.lower() not in OVF_SUFFIXES:
        raise ValueError(f"-o {out}: relax writes one OVF file, give a name ending in .ovf")
    replaced = _check_outputs([out], [args.input], args.overwrite)
    m0 = _texture(args, grid, m0)
    _set_threads(args)
    cancel = threading.Event()

    def call(report):
        return relax(m0, grid, material, external_field=[0.0, 0.0, args.field], tol=args.tol, return_info=True,
                     progress=report, cancel=cancel)

    m, info = _run_with_bar(relay(call, relax_progress(args.tol), cancel), "relax", args.quiet)
    with _writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        write_ovf(out, m, grid, title="m", desc=[f"relaxed by mmrecon: {info}"]
                  + layer_data.ovf_description(layer_data.material_to_dict(material)))
    state = "converged" if info.converged else "NOT converged"
    print(f"{state} after {info.iterations} iterations ({info.wall_time:.2f} s), max torque {info.max_torque:.2e}, "
          f"energy {info.energy:.6e} J -> {out}{' (replaced, --overwrite)' if replaced else ''}")
    return 0 if info.converged else 1


def _add_relax(sub) -> None:
    rel = sub.add_parser("relax", help="relax a texture or an OVF file to equilibrium and write OVF 2.0",
                         description="Relax a texture or an OVF state to the nearest energy minimum and write it "
                                     "as OVF 2.0 to the file -o (its material in a Desc line). The material of an "
                                     "OVF file is used unless given here.")
    _add_state_arguments(rel)
    add_arguments(rel, MATERIAL_NAMES + ("field",), from_input=MATERIAL_NAMES)
    add_arguments(rel, ("tol",))
    rel.add_argument("-o", "--out", "--output", dest="out", default="mmrecon-output/relaxed.ovf",
                     help="output OVF file (default mmrecon-output/relaxed.ovf)")
    add_arguments(rel, RUN)
    rel.set_defaults(func=_relax)


# ----------------------------------------------------------------------------- fit


@dataclass
class _Target:
    """A fit's target as read: the ``image`` ``(ny, nx)`` of a TIFF, or the ``state``
    ``(m, grid, material)`` of an OVF file, whose image ``_fit`` simulates once the flags are
    checked; ``pixel`` ``(dy, dx)`` (m), ``meta`` (its metadata), ``name``, ``truth`` (known true
    values, SI)."""

    name: str
    pixel: tuple
    meta: dict
    truth: dict
    image: np.ndarray | None = None
    state: tuple | None = None

    @property
    def shape(self) -> tuple:
        """``(ny, nx)`` of the image."""
        return self.image.shape if self.state is None else (self.state[1].ny, self.state[1].nx)


def _read_target(path, pixel_size=None, states: bool = True, channel: str | None = None) -> _Target:
    """``path``: a TIFF image (pixel size from the file, else ``pixel_size``, the ``--pixel-size``
    flag), the ``channel`` of an instrument file (``workflows.prepare.read_measured``: its lift
    height, quantity and cantilever stand in the metadata as a TIFF of mmrecon's would hold them)
    or, with ``states``, an OVF state (``truth``: the material it names, else the declared
    defaults)."""
    from .io import read_ovf, read_tiff
    from .workflows.layer_data import magnetization_from_field
    from .workflows.prepare import is_instrument, read_measured
    from .workflows.simulate import film_material

    path = Path(path)
    if path.suffix.lower() not in (".ovf", ".omf", ".ohf") and is_instrument(path):
        measured = read_measured(path, channel, pixel_size)
        if measured.pixel_size is None:
            raise ValueError(f"{path} does not say its pixel size: give --pixel-size (m)")
        meta = {"quantity": measured.quantity, "unit": measured.unit, "source": str(path),
                "channel": measured.channel, "cantilever": measured.cantilever,
                **({"height": measured.lift_height} if measured.lift_height else {})}
        return _Target(measured.name, tuple(measured.pixel_size), meta, {}, image=measured.data)
    if channel is not None:
        raise ValueError(f"{path}: --channel is for instrument files (.gwy, .ibw, .sxm, .spm, .jpk, Park .tiff)")
    if path.suffix.lower() in (".ovf", ".omf", ".ohf"):
        if not states:
            raise ValueError(f"{path}: a target here is a TIFF image; simulate the state's image first "
                             "(mmrecon simulate)")
        field, grid, header = read_ovf(path, return_header=True)
        try:
            m, known = magnetization_from_field(field, header)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        material = film_material(m, _material(known))
        truth = {key: float(getattr(material, key)) for key in ("Ms", "A", "Ku", "D")
                 if np.ndim(getattr(material, key)) == 0}
        meta = {"grid": {"nz": grid.nz, "dz": grid.dz, "pbc": grid.pbc}}
        return _Target(f"{path.stem} simulated", (grid.dy, grid.dx), meta, truth, state=(m, grid, material))
    image, pixel, meta = read_tiff(path)
    if image.ndim != 2:
        raise ValueError(f"{path}: a target is one 2-D image, got an array of shape {image.shape}")
    if pixel is None:
        if pixel_size is None:
            raise ValueError(f"{path} has no physical pixel size: give --pixel-size (m)")
        pixel = (pixel_size, pixel_size)
    known = meta.get("material") if isinstance(meta.get("material"), dict) else {}
    truth = {key: float(value) for key, value in known.items()
             if key in ("Ms", "A", "Ku", "D") and isinstance(value, (int, float))}
    return _Target(meta.get("name") or path.stem, tuple(pixel), meta, truth, image=image)


def _given(args, name: str, known=None):
    """The flag ``name`` if given, else ``known`` (from the target) if not None, else the default."""
    value = getattr(args, name)
    return value if value is not None else known if known is not None else OPTIONS[name].default


def _fit_measurement(args, meta: dict, calibration=None):
    """The measurement from the flags; each one not given is taken from the target's metadata
    (``fit.measurement_from_metadata``: height and side always, component, tip, cantilever
    and MFM quantity if it describes the same kind; an MFM quantity alone, as an instrument file
    without lift height gives it, makes the measurement MFM of that quantity), else the declared
    default. A calibrated tip (``--tip FILE``) gives the tip, the cantilever and quantity (where no
    flag does) and adds its height offset to the nominal lift height."""
    from .backend import Cantilever, MFMMeasurement, PointDipoleTip, PointMonopoleTip, StrayFieldMeasurement
    from .backend.forward.measurement import plane_distance
    from .workflows.fit import measurement_from_metadata

    known = measurement_from_metadata(meta)
    height = _given(args, "height", plane_distance(known) if known else None)
    if height is None:
        raise ValueError("give --height (m): the target does not say at which height it was measured")
    side = _given(args, "side", known.side if known else None)
    if side == "both":
        raise ValueError("side = 'both' is for mmrecon simulate: a target is measured on one side, top or bottom")
    mfm_quantity = meta.get("quantity") if meta.get("quantity") in ("frequency_shift", "phase") else None
    kind = _given(args, "measurement",
                  "mfm" if isinstance(known, MFMMeasurement) or calibration or mfm_quantity else None)
    if kind == "stray" and calibration is not None:
        raise ValueError("--tip FILE is a calibrated MFM tip, but the target is a stray-field image (--measurement "
                         "stray, or its metadata): give --measurement mfm")
    if calibration is not None:
        cantilever = Cantilever(**{key: _given(args, key, getattr(calibration.cantilever, key)) for key in
                                   ("k", "f0", "Q")})
        return calibration.measurement(height, side, cantilever,
                                       _given(args, "quantity", mfm_quantity or calibration.quantity))
    if kind == "stray":
        same = known if isinstance(known, StrayFieldMeasurement) else None
        return StrayFieldMeasurement(height=height, side=side, component=_given(args, "component",
                                                                                 same.component if same else None))
    same = known if isinstance(known, MFMMeasurement) else None
    if args.tip == "monopole" or (args.tip is None and args.tip_charge is not None):
        tip = PointMonopoleTip(charge=_given(args, "tip_charge"))
    elif args.tip == "dipole" or args.tip_moment is not None or same is None:
        tip = PointDipoleTip(moment=_given(args, "tip_moment"))
    else:
        tip = same.tip
    cantilever = Cantilever(**{key: _given(args, key, getattr(same.cantilever, key) if same else None)
                               for key in ("k", "f0", "Q")})
    return MFMMeasurement(lift_height=height, side=side, tip=tip, cantilever=cantilever,
                          quantity=_given(args, "quantity", same.quantity if same else mfm_quantity))


def _fit_grid(args, target: _Target):
    """The film of the fit: the target's cells in plane; ``--nz`` and ``--thickness`` if given,
    else the target's film, else the declared defaults."""
    from .backend import Grid
    from .workflows.simulate import check_grid_size

    film = target.meta.get("grid") if isinstance(target.meta.get("grid"), dict) else {}
    nz = _given(args, "nz", film.get("nz"))
    known_thickness = float(film["nz"]) * float(film["dz"]) if {"nz", "dz"} <= film.keys() else None
    thickness = _given(args, "thickness", known_thickness)
    (ny, nx), (dy, dx) = target.shape, target.pixel
    return check_grid_size(Grid(nx=nx, ny=ny, nz=int(nz), dx=dx, dy=dy, dz=_cell_height(thickness, int(nz)),
                                pbc=bool(film.get("pbc", False)), device=args.device))


def _comma_numbers(text: str) -> tuple:
    """``"0,20e3,40e3"`` -> ``(0.0, 20000.0, 40000.0)`` (argparse type; ranges are ``check``'s)."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _fit(args) -> int:
    """Fit material parameters to a TIFF image (or an OVF state's simulated image); write the
    fitted values, the relaxed state, the simulated and residual images and a figure. Several
    images (``--fields``): a field series, fitted jointly (``_fit_series``)."""
    from .io import read_ovf
    from .workflows.fit import FitOptions, fit, validate
    from .workflows.fit_output import FILES, FittedImage, table_text, write_fit
    from .workflows.layer_data import magnetization_from_field

    fields = args.fields
    if fields is not None and len(fields) != len(args.targets):
        raise ValueError(f"--fields gives {len(fields)} fields for {len(args.targets)} images: one per image")
    if fields is not None and args.field:
        raise ValueError("give the applied field with --fields (one per image) or --field, not both")
    if len(args.targets) > 1:
        if fields is None:
            raise ValueError(f"{len(args.targets)} images are a field series: give each one's applied field with "
                             "--fields (A/m, comma-separated)")
        return _fit_series(args)
    args.target = args.targets[0]
    applied = fields[0] if fields is not None else args.field
    target = _read_target(args.target, args.pixel_size, channel=args.channel)
    grid = _fit_grid(args, target)
    measurement = _fit_measurement(args, target.meta, _tip_calibration(args))
    start = _material({}, args)
    options = FitOptions(fit=tuple(args.fit), bias=args.bias, bias_strength=args.bias_strength,
                         optimizer=args.optimizer, max_iter=args.max_iter, relax_tol=args.relax_tol,
                         external_field=(0.0, 0.0, applied) if applied else None)
    _check_options(args)
    out = Path(args.out)
    replaced = _check_outputs([out / name for name in FILES], [args.target, args.m0], args.overwrite)
    image = target.image
    if target.state is not None:
        m, ovf_grid, material = target.state
        image = np.asarray(measurement.simulate(m, ovf_grid, material.Ms))
    m0 = m0_grid = None
    if args.m0:
        field, m0_grid, header = read_ovf(args.m0, return_header=True)
        m0, _ = magnetization_from_field(field, header)
    image = validate(image, grid, measurement, start, options, m0, target.pixel, target.meta.get("unit") or "",
                     m0_grid)
    _set_threads(args)
    print(f"fit of {target.name}: {grid.ny} x {grid.nx} x {grid.nz} cells of {grid.dx * 1e9:g} x {grid.dy * 1e9:g} x "
          f"{grid.dz * 1e9:g} nm; fitting {', '.join(options.fit)} ({options.optimizer}, bias {options.bias})")
    result = _run_with_counter(fit(image, grid, measurement, start, options, m0), "fit", args.quiet)
    fitted = FittedImage(result, image, grid, target.name, start, measurement, options, target.truth)
    with _writing(out):
        written = write_fit(out, fitted, f"mmrecon fit: {args.target}")
    print(table_text(fitted))
    print(f"{result.message}; misfit {result.misfit:.2e} after {result.iterations} iterations, "
          f"{result.timings['total']:.1f} s")
    print(_wrote(out, written, replaced))
    return 0 if result.converged else 1


def _fit_series(args) -> int:
    """Fit one material jointly to several TIFF images of one film, each at its ``--fields`` value;
    write the fitted values, each image's relaxed state and the simulated and residual stacks."""
    from .io import read_ovf
    from .workflows.fit import FitOptions, check_start, check_unit
    from .workflows.fit_series import files, fit_series, write_series
    from .workflows.layer_data import magnetization_from_field

    targets = [_read_target(path, args.pixel_size, states=False, channel=args.channel) for path in args.targets]
    _check_stack(targets, args.targets)
    grid = _fit_grid(args, targets[0])
    measurement = _fit_measurement(args, targets[0].meta)
    for target, path in zip(targets, args.targets):
        check_unit(target.meta.get("unit") or "", measurement, path)
    start = _material({}, args)
    options = FitOptions(fit=tuple(args.fit), bias=args.bias, bias_strength=args.bias_strength,
                         max_iter=args.max_iter, relax_tol=args.relax_tol)
    _check_options(args)
    if args.optimizer not in (None, "levenberg-marquardt"):
        raise ValueError(f"--optimizer {args.optimizer}: a field series is fitted by levenberg-marquardt")
    if args.bias not in ("none", "target"):
        raise ValueError(f"--bias {args.bias}: a field series takes bias none or target")
    out = Path(args.out)
    replaced = _check_outputs([out / name for name in files(len(targets))], [*args.targets, args.m0],
                              args.overwrite)
    m0 = None
    if args.m0:
        field, m0_grid, header = read_ovf(args.m0, return_header=True)
        m0, _ = magnetization_from_field(field, header)
        check_start(m0, grid, m0_grid)
    images = np.stack([target.image for target in targets])
    _set_threads(args)
    print(f"field-series fit of {len(targets)} images at H_z = {', '.join(f'{h:g}' for h in args.fields)} A/m: "
          f"{grid.ny} x {grid.nx} x {grid.nz} cells of {grid.dx * 1e9:g} x {grid.dy * 1e9:g} x {grid.dz * 1e9:g} "
          f"nm; fitting {', '.join(options.fit)} (bias {options.bias})")
    result = _run_with_counter(fit_series(images, grid, measurement, args.fields, start, options, m0,
                                          targets[0].pixel), "fit", args.quiet)
    truth = targets[0].truth
    with _writing(out):
        written = write_series(out, result, images, grid, [t.name for t in targets], start, measurement, options,
                               truth, "mmrecon fit: " + " ".join(args.targets))
    print(result.table())
    for i, (h, radii) in enumerate(zip(args.fields, result.radii)):
        sizes = ", ".join(f"{r * 1e9:.2f}" for r in radii) or "none"
        print(f"image {i} (H_z {h:g} A/m): misfit {result.misfits[i]:.2e}, skyrmion radii {sizes} nm")
    print(f"{result.message}; misfit {result.misfit:.2e} after {result.iterations} iterations, "
          f"{result.timings['total']:.1f} s")
    print(_wrote(out, written, replaced))
    return 0 if result.converged else 1


def _add_fit(sub) -> None:
    from .workflows.fit_output import FILES

    fit = sub.add_parser("fit", help="fit Ms, A, Ku, D (and height, image offset and gain) to a stray-field or MFM "
                                     "image",
                         description="Fit material parameters so that the relaxed state reproduces the image. "
                                     "Measurement flags not given come from the TIFF's metadata (as mmrecon "
                                     "simulate writes it), else their defaults. An OVF target is a state whose "
                                     "image is simulated here: give --height (and the measurement flags). "
                                     "Writes " + ", ".join(FILES) + " into -o. SI units.")
    fit.add_argument("targets", nargs="+", metavar="target",
                     help="TIFF image with its pixel size, an instrument file (.gwy, .ibw, .sxm, .spm, .jpk, Park "
                          ".tiff; --channel), or an OVF state whose image is simulated here (then give --height); "
                          "several images of one film at the applied --fields: a field series, fitted jointly with "
                          "one material")
    fit.add_argument("--channel", help=CHANNEL_HELP)
    add_arguments(fit, FIT_MEASUREMENT, from_input=FIT_MEASUREMENT[1:])
    _allow_tip_file(fit)
    add_arguments(fit, MATERIAL_NAMES + ("field",))
    fit.add_argument(OPTIONS["fields"].flag, dest="fields", type=_comma_numbers, metavar="H1,H2,...",
                     help=help_text(OPTIONS["fields"]))
    add_arguments(fit, FIT)
    fit.add_argument("--m0", help="OVF file with the starting magnetization (default: shaped from the image)")
    fit.add_argument("-o", "--out", default="mmrecon-output/fit", help=OUT_HELP.format("mmrecon-output/fit"))
    add_arguments(fit, RUN)
    fit.set_defaults(func=_fit)


# ----------------------------------------------------------------------------- reconstruct


def _stack_measurements(args, targets: list[_Target], paths: list[str]) -> list:
    """One measurement per target: from the flags and the file's metadata for one target
    (``_fit_measurement``), from each file's metadata alone for several (a measurement flag is
    then refused: it would describe them all alike; a calibrated tip, ``--tip FILE``, is the
    tip of every MFM image)."""
    calibration = _tip_calibration(args)
    if len(targets) == 1:
        return [_fit_measurement(args, targets[0].meta, calibration)]
    given = [OPTIONS[name].flag for name in MEASUREMENT_FLAGS if getattr(args, name) is not None]
    if given:
        raise ValueError(f"{given[0]} describes one target: with several targets each file's metadata gives its "
                         "measurement (as mmrecon simulate writes it)")
    measurements = []
    for target, path in zip(targets, paths):
        try:
            measurements.append(_fit_measurement(args, target.meta, calibration))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return measurements


def _check_stack(targets: list[_Target], paths: list[str]) -> None:
    """``ValueError`` unless every target has the first one's pixels (a stack images one film)."""
    first = targets[0]
    for target, path in zip(targets[1:], paths[1:]):
        if target.shape != first.shape or not np.allclose(target.pixel, first.pixel, rtol=1e-6, atol=0):
            raise ValueError(f"{path} has {target.shape[1]} x {target.shape[0]} pixels of "
                             f"{target.pixel[1] * 1e9:g} x {target.pixel[0] * 1e9:g} nm but {paths[0]} has "
                             f"{first.shape[1]} x {first.shape[0]} of {first.pixel[1] * 1e9:g} x "
                             f"{first.pixel[0] * 1e9:g} nm: the images of a stack are of one film")


def _reconstruct(args) -> int:
    """Reconstruct the magnetization texture behind one or several TIFF images of one film; write
    the texture, its bias field, the simulated and residual images, a figure and a report."""
    from .io import read_ovf
    from .workflows.layer_data import magnetization_from_field
    from .workflows.reconstruct import ReconstructOptions, reconstruct, validate
    from .workflows.reconstruct_output import FILES, ReconstructedImages, write_reconstruction

    targets = [_read_target(path, args.pixel_size, states=False, channel=args.channel) for path in args.targets]
    _check_stack(targets, args.targets)
    grid = _fit_grid(args, targets[0])
    measurements = _stack_measurements(args, targets, args.targets)
    material = _material(targets[0].truth, args)
    options = ReconstructOptions(method=args.method, init=args.init, fit=tuple(args.reconstruct_fit or ()),
                                 bias_strength=args.bias_strength, noise=args.noise, discrepancy=args.discrepancy,
                                 max_iter=args.reconstruct_max_iter, row_offsets=args.row_offsets,
                                 external_field=(0.0, 0.0, args.field) if args.field else None)
    _check_options(args)
    out = Path(args.out)
    replaced = _check_outputs([out / name for name in FILES], [*args.targets, args.m0], args.overwrite)
    m0 = m0_grid = None
    if args.m0:
        field, m0_grid, header = read_ovf(args.m0, return_header=True)
        try:
            m0, _ = magnetization_from_field(field, header)
        except ValueError as exc:
            raise ValueError(f"{args.m0}: {exc}") from None
    images = validate([target.image for target in targets], grid, measurements, material, options, m0,
                      targets[0].pixel, [target.meta.get("unit") or "" for target in targets], m0_grid,
                      names=args.targets)
    _set_threads(args)
    names = tuple(target.name for target in targets)
    start = f"from {args.m0}" if args.m0 else f"start: {options.init}"
    print(f"reconstruction of {' + '.join(names)}: {grid.ny} x {grid.nx} x {grid.nz} cells of {grid.dx * 1e9:g} x "
          f"{grid.dy * 1e9:g} x {grid.dz * 1e9:g} nm; {options.method} method, {start}"
          + (f", fitting {', '.join(options.fit)}" if options.fit else "") + "; material "
          + ", ".join(f"{key} = {getattr(material, key):g}" for key in ("Ms", "A", "Ku", "D")))
    result = _run_with_bar(reconstruct(images, grid, measurements, material, options, m0), "reconstruct",
                           args.quiet)
    with _writing(out):
        written = write_reconstruction(out, ReconstructedImages(result, images, grid, names, options),
                                       f"mmrecon reconstruct: {' '.join(args.targets)}")
        stale = [path for path in replaced if path.name not in written]  # an earlier run's bias field
        for path in stale:
            path.unlink()
    if result.fit is not None:
        print(result.fit.table())
    print(f"{result.message}; {result.iterations} iterations, {result.timings['total']:.1f} s")
    print(_wrote(out, written, [path for path in replaced if path not in stale])
          + "".join(f"; removed the earlier {path.name}" for path in stale))
    return 0 if result.converged else 1


def _add_reconstruct(sub) -> None:
    from .workflows.reconstruct_output import FILES

    rec = sub.add_parser("reconstruct", help="the magnetization texture behind one or more stray-field or MFM "
                                             "images of a film",
                         description="Reconstruct the magnetization texture behind a stray-field or MFM image, or "
                                     "behind several images of one film (several heights, both sides: one "
                                     "measurement per file). Measurement flags not given come from the TIFF's "
                                     "metadata (as mmrecon simulate writes it), else their defaults; with several "
                                     "targets each file's metadata gives its measurement. The material comes from "
                                     "the flags, else from the first target's metadata, else the defaults. Writes "
                                     + ", ".join(FILES) + " (bias field: bias method only) into -o. Exit code 0 "
                                     "when the residual reached its goal (the noise, or 1 % of the image RMS), 1 "
                                     "when not (always for the fourier method, which has no goal). SI units.")
    rec.add_argument("targets", nargs="+", metavar="target", help="TIFF image with its pixel size or an instrument "
                                                                  "file (--channel); several: one film's images, "
                                                                  "each with its measurement in its metadata")
    rec.add_argument("--channel", help=CHANNEL_HELP)
    add_arguments(rec, FIT_MEASUREMENT, from_input=FIT_MEASUREMENT[1:])
    _allow_tip_file(rec)
    add_arguments(rec, MATERIAL_NAMES + ("field",), from_input=MATERIAL_NAMES)
    add_arguments(rec, RECONSTRUCT)
    rec.add_argument("--m0", help="OVF file with the starting magnetization (instead of --init)")
    rec.add_argument("-o", "--out", default="mmrecon-output/reconstruct",
                     help=OUT_HELP.format("mmrecon-output/reconstruct"))
    add_arguments(rec, RUN)
    rec.set_defaults(func=_reconstruct)


# ----------------------------------------------------------------------------- prepare

PREPARE_STEPS = ("level", "align_rows", "outliers", "scars", "crop", "resample", "convert")
"""The flags that choose preparation steps (``--steps`` replays a record instead)."""
TIFF_OUTPUTS = (".tif", ".tiff")


def _prepare(args) -> int:
    """Prepare a measured image (a TIFF or an instrument file's channel): the steps of the flags,
    or those recorded in ``--steps``; write the result as TIFF with the record in its metadata."""
    import json
    import shlex

    from .io import write_tiff
    from .workflows import layer_data
    from .workflows.prepare import prepare, prepared_metadata, read_measured, read_steps, steps_from_options

    _check_options(args)
    out = Path(args.out)
    if out.suffix.lower() not in TIFF_OUTPUTS:
        raise ValueError(f"-o {out}: prepare writes one TIFF image, give a name ending in .tif")
    given = [OPTIONS[name].flag for name in PREPARE_STEPS if getattr(args, name) is not None]
    if args.steps and given:
        raise ValueError(f"--steps replays a recorded preparation: give no step flags with it ({', '.join(given)})")
    replaced = _check_outputs([out], [args.input, args.steps], args.overwrite)
    measured = read_measured(args.input, args.channel, args.pixel_size)
    if measured.pixel_size is None:
        raise ValueError(f"{args.input} has no physical pixel size: give --pixel-size (m), e.g. --pixel-size 4e-9 "
                         "for pixels of 4 nm")
    if args.input_quantity is not None:
        measured.quantity = args.input_quantity
    flags = {key: getattr(args, key) for key in ("k", "f0", "Q") if getattr(args, key) is not None}
    cantilever = {**measured.cantilever, **flags}
    if args.convert is not None:
        _check_conversion(args.input, measured.quantity, args.convert, cantilever)
    steps = read_steps(args.steps) if args.steps else steps_from_options(
        args.level, args.align_rows, args.outliers, args.crop, args.resample, args.convert, cantilever, args.scars)
    prepared = prepare(measured, steps)
    meta = prepared_metadata(measured, prepared, flags)
    with _writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        write_tiff(out, prepared.image, prepared.pixel_size,
                   metadata={**layer_data.json_metadata(meta), "name": f"{measured.name} prepared"})
    (ny, nx), (dy, dx) = prepared.image.shape, prepared.pixel_size
    what = f"{prepared.quantity} ({prepared.unit})" if prepared.quantity else prepared.unit or "unit unknown"
    print(f"{args.input}{f' channel {measured.channel!r}' if measured.channel else ''}: "
          + ("; ".join(json.dumps(step) for step in prepared.steps) or "no steps")
          + f" -> {ny} x {nx} pixels of {dy * 1e9:g} x {dx * 1e9:g} nm, {what}")
    print(f"wrote {out.resolve()}{' (replaced, --overwrite)' if replaced else ''}")
    channel = ["--channel", measured.channel] if measured.channel else []
    print("the same steps on another file: " + shlex.join(["mmrecon", "prepare", "OTHER_FILE", *channel, "--steps",
                                                           str(out), "-o", "OTHER_FILE-prepared.tif"]))
    return 0


def _check_conversion(path, quantity: str, to: str, cantilever: dict) -> None:
    """``ValueError`` naming the flag to give when ``--convert`` lacks the input's quantity or a
    cantilever value the conversion needs."""
    from .backend.measured.preparation import CONVERSIONS

    if quantity not in [source for source, _ in CONVERSIONS]:
        raise ValueError(f"--convert {to}: {path} does not say what it is ({quantity or 'no quantity'}): give "
                         f"--quantity")
    if quantity != to:
        missing = [OPTIONS[key].flag for key in CONVERSIONS[quantity, to][1] if key not in cantilever]
        if missing:
            raise ValueError(f"--convert {to}: converting a {quantity} needs the cantilever's "
                             f"{' and '.join(key[2:] for key in missing)}, which {path} does not say: give "
                             f"{' and '.join(missing)}")


def _add_prepare(sub) -> None:
    prep = sub.add_parser("prepare", help="prepare a measured image (TIFF or instrument file): levelling, row "
                                          "alignment, outliers, scars, crop, resampling, phase / frequency shift / force "
                                          "gradient; recorded and replayable",
                          description="Prepare a measured MFM (or other) image for the fit and the reconstruction: "
                                      "the steps the flags choose, in the order crop, row alignment, outliers, "
                                      "scars, levelling, conversion, resampling; or the steps recorded in a "
                                      "prepared TIFF (--steps), replayed exactly. The input is a TIFF or an instrument file "
                                      "(choose its channel with --channel); pixel size, units, lift height and "
                                      "cantilever come from the file, the flags override them. Writes one TIFF "
                                      "(-o) with its pixel size and, in its metadata, the source, channel, units, "
                                      "lift height, cantilever and the record of the steps; never over the input. "
                                      "SI units (m, Hz, N/m).")
    prep.add_argument("input", help="a TIFF image or an instrument file (.gwy, .ibw, .sxm, .spm, .jpk, Park .tiff)")
    prep.add_argument("--channel", help=CHANNEL_HELP)
    add_arguments(prep, ("pixel_size", "input_quantity", "k", "f0", "Q"), from_input=("k", "f0", "Q"))
    add_arguments(prep, PREPARE_STEPS)
    prep.add_argument("--steps", metavar="RECORD", help="replay the steps recorded in a TIFF written by mmrecon "
                                                        "prepare (or a JSON list of steps) instead of the step flags")
    prep.add_argument("-o", "--out", required=True, help="the prepared image: a TIFF file")
    add_arguments(prep, ("overwrite",))
    prep.set_defaults(func=_prepare)


# ----------------------------------------------------------------------------- calibrate-tip


def _reference_measurement(args, meta: dict):
    """The reference MFM measurement: ``--lift``, ``--side``, ``--quantity``, ``--k/--f0/--Q`` if
    given, else the TIFF's metadata (an MFM image as mmrecon simulate writes it), else the defaults
    (no default lift height: it must be known)."""
    from .backend import Cantilever, MFMMeasurement
    from .workflows.fit import measurement_from_metadata

    known = measurement_from_metadata(meta)
    same = known if isinstance(known, MFMMeasurement) else None
    lift = _given(args, "lift", same.lift_height if same else None)
    if lift is None:
        raise ValueError("give --lift (m): the reference image does not say at which lift height it was measured")
    side = _given(args, "side", same.side if same else None)
    if side == "both":
        raise ValueError("side = 'both' is for mmrecon simulate: a reference is measured on one side, top or bottom")
    cantilever = Cantilever(**{key: _given(args, key, getattr(same.cantilever, key) if same else None)
                               for key in ("k", "f0", "Q")})
    return MFMMeasurement(lift_height=lift, side=side, cantilever=cantilever,
                          quantity=_given(args, "quantity", same.quantity if same else None))


def _calibrate_tip(args) -> int:
    """Fit an effective point tip (and its height offset) to an MFM image of a known magnetization;
    write the calibration as JSON."""
    from .backend import calibrate_tip
    from .io import read_ovf
    from .workflows.layer_data import magnetization_from_field
    from .workflows.simulate import film_material
    from .workflows.tip_calibration import validate

    target = _read_target(args.reference, args.pixel_size, states=False)
    field, grid, header = read_ovf(args.magnetization, return_header=True)
    try:
        m, known = magnetization_from_field(field, header)
    except ValueError as exc:
        raise ValueError(f"{args.magnetization}: {exc}") from None
    material = _material(known)
    material = film_material(m, material if args.Ms is None else material.replace(Ms=args.Ms))
    measurement = _reference_measurement(args, target.meta)
    _check_options(args)
    image = validate(target.image, m, grid, material.Ms, measurement, pixel_size=target.pixel,
                     unit=target.meta.get("unit") or "", name=args.reference)
    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise ValueError(f"-o {out}: calibrate-tip writes one JSON file, give a name ending in .json")
    replaced = _check_outputs([out], [args.reference, args.magnetization], args.overwrite)
    _set_threads(args)
    calibration = calibrate_tip(image, m, grid.with_(device=args.device), material.Ms, measurement,
                                model=args.calibration_model, fit_height=not args.fixed_height)
    with _writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        calibration.save(out)
    sigma = calibration.uncertainty
    parts = []
    if calibration.dipole is not None:
        parts.append(f"dipole moment {calibration.dipole.moment:.4g} +- {sigma['moment']:.2g} A m^2 along "
                     f"{tuple(round(c, 3) for c in calibration.dipole.direction)}")
    if calibration.monopole is not None:
        parts.append(f"monopole charge {calibration.monopole.charge:.4g} +- {sigma['charge']:.2g} A m")
    height = (f"height offset {calibration.height_offset * 1e9:+.3f} +- {sigma['height_offset'] * 1e9:.2g} nm"
              if "height_offset" in sigma else "height offset 0 (not fitted)")
    print(f"tip calibration from {args.reference} ({calibration.model}): {'; '.join(parts)}; {height}; residual RMS "
          f"{calibration.residual_rms:.3g} {measurement.units} (image RMS {np.sqrt(np.mean(target.image ** 2)):.3g})")
    print(f"wrote {out.resolve()}{' (replaced, --overwrite)' if replaced else ''}; use it with --tip {out} in "
          "mmrecon simulate, fit and reconstruct")
    return 0


def _add_calibrate_tip(sub) -> None:
    cal = sub.add_parser("calibrate-tip", help="fit an effective MFM tip (moment or charge, height offset) to a "
                                               "reference image of a known magnetization; write it as JSON",
                         description="Fit an effective point tip (dipole moment and/or monopole charge) and its "
                                     "effective height offset to an MFM image of a reference sample whose "
                                     "magnetization is known (an OVF file on the image's grid). Measurement flags "
                                     "not given come from the TIFF's metadata, else their defaults. Writes the "
                                     "calibration to the JSON file -o; give it to mmrecon simulate, fit and "
                                     "reconstruct as --tip FILE. SI units.")
    cal.add_argument("reference", help="the reference MFM image: a TIFF with its pixel size")
    cal.add_argument("--magnetization", required=True, help="OVF file of the reference sample's known "
                                                            "magnetization, on the image's grid")
    add_arguments(cal, ("pixel_size", "lift", "side", "quantity", "k", "f0", "Q"),
                  from_input=("lift", "side", "quantity", "k", "f0", "Q"))
    add_arguments(cal, ("Ms",), from_input=("Ms",))
    add_arguments(cal, ("calibration_model", "fixed_height"))
    cal.add_argument("-o", "--out", "--output", dest="out", default="mmrecon-output/tip.json",
                     help="output JSON file (default mmrecon-output/tip.json)")
    add_arguments(cal, RUN)
    cal.set_defaults(func=_calibrate_tip)


# ----------------------------------------------------------------------------- dataset


def _dask_client(address: str):
    """A ``dask.distributed.Client`` of the scheduler at ``address``; ``ValueError`` without the
    ``distributed`` package, ``OSError`` if the scheduler does not answer."""
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("--dask needs the distributed package: pip install 'napari-mmrecon[dask]'") from None
    return Client(address, timeout=DASK_TIMEOUT)


def _dataset(args) -> int:
    """Generate a synthetic dataset of relaxed textures and their images into a zarr store, or
    complete (an interrupted run) or extend (a larger --n) the one there; never another dataset."""
    import time

    from .workflows.dataset import dataset, plan

    _check_options(args)
    if args.samples is None:
        raise ValueError("give --n, the number of samples of the dataset")
    out = Path(args.out)
    run = plan(out, args.samples, args.dataset_seed, cells=args.cells, shard_size=args.shard_size)
    recipe = run.recipe
    client = _dask_client(args.dask) if args.dask else None
    where = f"on the Dask cluster at {args.dask}" if client else f"{args.workers or os.cpu_count()} local process(es)"
    print(f"dataset {out}: {args.samples} samples of {recipe.cells} x {recipe.cells} cells (seed {run.seed}, shards "
          f"of {recipe.shard_size}, {run.complete} complete already), computed {where}")
    start = time.perf_counter()
    try:
        data = _run_with_bar(dataset(out, args.samples, run.seed, recipe, workers=args.workers or None, client=client,
                                     device=args.device), "dataset", args.quiet)
    finally:
        if client is not None:
            client.close()
    seconds = time.perf_counter() - start
    complete = len(data.complete_rows)
    unconverged = int(np.count_nonzero(~np.asarray(data.converged[:])[data.complete_rows]))
    print(f"{out.resolve()}: {complete} of {len(data)} samples complete ({complete - run.complete} new in "
          f"{seconds:.1f} s, {(complete - run.complete) / seconds:.2f} samples/s); {unconverged} not relaxed to the "
          "tolerance within the iteration cap (kept, flagged in 'converged')")
    return 0 if complete == len(data) else 1


def _add_dataset(sub) -> None:
    data = sub.add_parser("dataset", help="a synthetic dataset of relaxed textures and their images (zarr), for "
                                          "training the U-Net",
                          description="Relax random textures of random films (Ms, A, Ku, D, field, cell size, "
                                      "thickness in the ranges of the dataset recipe) in batches (shards) and image "
                                      "each from both sides at random heights as H_z and MFM frequency shift; write "
                                      "them to a zarr store shard by shard. Run again on the same store to complete "
                                      "an interrupted run, or with a larger --n to append; a store of another seed "
                                      "or recipe is refused. Exit code 0 when every sample is complete. SI units.")
    add_arguments(data, ("samples", "dataset_seed", "cells", "shard_size"),
                  from_input=("dataset_seed", "cells", "shard_size"))
    add_arguments(data, ("workers",))
    data.add_argument("--dask", metavar="ADDRESS", help="compute the shards on the Dask cluster of this scheduler "
                                                        "(e.g. tcp://host:8786) instead of local processes")
    data.add_argument("-o", "--out", required=True, help="the dataset: a zarr folder (new, or a dataset to complete "
                                                          "or extend)")
    add_arguments(data, ("device", "quiet"))
    data.set_defaults(func=_dataset)


# ----------------------------------------------------------------------------- train


def _train(args) -> int:
    """Train the U-Net on a synthetic dataset into a run folder; resume an unfinished run there.
    Under ``torchrun`` every process runs this; only rank 0 prints and writes."""
    import shlex

    from .backend.learn.dataset_store import open_dataset
    from .backend.learn.training import WEIGHTS, check_run_folder
    from .workflows.train import TrainOptions, train

    _check_options(args)
    data, out = Path(args.data), Path(args.out)
    check_run_folder(out, args.overwrite)
    if _same_file(out, data) or data.resolve() in out.resolve().parents:
        raise ValueError(f"{out} lies in the dataset {data}, which this command never writes into: choose another -o")
    dataset = open_dataset(data)
    _set_threads(args)
    options = TrainOptions(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.train_seed,
                           device=args.train_device, overwrite=args.overwrite)
    first = int(os.environ.get("RANK", "0")) == 0
    if first:
        print(f"training the U-Net on {data} ({len(dataset.complete_rows)} complete samples, {len(dataset.views)} "
              f"views each) into {out}: {options.epochs} epochs, batches of {options.batch_size}, lr {options.lr:g}, "
              f"seed {options.seed}")
    command = shlex.join(["mmrecon", *sys.argv[1:]])
    result = _run_with_bar(train(str(data), out, options, command), "train", args.quiet or not first)
    if not first:
        return 0
    if result.cancelled:
        print(f"stopped after {result.epochs} epochs; the run resumes from {out} when started again")
        return 1
    metrics = result.metrics
    print(f"held-out: loss {metrics['val_loss']:.4f}, mean angle {metrics['val_angle_deg']:.1f} deg over "
          f"{metrics['val_samples']} samples x all views; wrote {out / WEIGHTS} and the run's loss.csv, loss.png, "
          "run.json")
    return 0


def _add_train(sub) -> None:
    from .backend.learn.training import RUN_FILES

    train = sub.add_parser("train", help="train the U-Net on a synthetic dataset (mmrecon dataset)",
                           description="Train the U-Net that predicts the magnetization from one stray-field or MFM "
                                       "image, on a synthetic dataset (zarr). Writes " + ", ".join(RUN_FILES)
                                       + " into -o; an unfinished run there resumes from its last checkpoint (with "
                                       "the same options), a finished one is replaced only with --overwrite. Uses "
                                       "CUDA when present unless --device cpu; under torchrun (WORLD_SIZE > 1) it "
                                       "trains data-parallel, one process per device.")
    train.add_argument("--data", required=True, help="the dataset: a zarr store written by mmrecon dataset")
    add_arguments(train, TRAIN)
    train.add_argument("-o", "--out", default="mmrecon-output/train", help=OUT_HELP.format("mmrecon-output/train"))
    add_arguments(train, ("threads", "quiet", "overwrite"))
    train.set_defaults(func=_train)


# ----------------------------------------------------------------------------- arguments


def _add_state_arguments(parser) -> None:
    parser.add_argument("input", nargs="?", help="OVF file with a starting magnetization (else --texture)")
    add_arguments(parser, STATE)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="mmrecon", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_demo, _add_simulate, _add_relax, _add_fit, _add_reconstruct, _add_prepare, _add_calibrate_tip,
                _add_dataset, _add_train):
        add(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``mmrecon`` console script: a bad value, a missing, corrupt or protected
    file (``ValueError``, ``OSError``) is one line ``mmrecon <command>: error: ...`` on stderr and
    exit code 2, like argparse's own errors; Ctrl-C is one line and exit code 130 (files are
    written whole or not at all, so nothing half-written is left); anything else is a bug and
    shows its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        print(f"mmrecon {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mmrecon {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
