"""The ``mmrecon`` console script: the same backend as the napari widgets, from a shell.

Every subcommand is a pair: ``_add_<name>(subparsers)`` declares its arguments and
``_<name>(args) -> exit code`` runs it (``demo``, ``simulate``, ``relax``; a ``fit`` subcommand
is added the same way). Long steps are ``jobs`` generators driven under a tqdm progress bar.
Units on the command line are SI (m, A/m, J/m, J/m^3, J/m^2, Hz, N/m).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DEMO_HEIGHTS = (10e-9, 20e-9)
DEFAULT_MATERIAL = {"Ms": 5.8e5, "A": 1.5e-11, "Ku": 8e5, "D": 3e-3, "alpha": 0.5}


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
    from .io import write_ovf, write_tiff

    out.mkdir(parents=True, exist_ok=True)
    written = [ovf_name]
    write_ovf(out / ovf_name, result.m, result.grid, title="m",
              desc=[f"mmrecon: {source}"] + layer_data.ovf_description(layer_data.material_to_dict(result.material)))
    for image, (_, kwargs, _) in zip(result.images, layer_data.simulation_layers(result, source=source)):
        meta = layer_data.json_metadata(kwargs["metadata"][layer_data.METADATA_KEY])
        write_tiff(out / f"{image.file_stem}.tif", image.data, (result.grid.dy, result.grid.dx),
                   metadata={**meta, "name": image.name})
        written.append(f"{image.file_stem}.tif")
    _figure(out / "figure.png", result)
    return written + ["figure.png"]


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
    simulate its stray field and MFM image at 10 and 20 nm on both sides, write OVF, TIFF, PNG."""
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
    return 0


def _add_demo(sub) -> None:
    demo = sub.add_parser("demo", help="simulate the stray field and MFM image of the bundled skyrmion lattice "
                                       "and write OVF / TIFF / PNG (no arguments needed)")
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
    for add in (_add_demo, _add_simulate, _add_relax):
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
