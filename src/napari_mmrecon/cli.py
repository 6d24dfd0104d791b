"""The ``mmrecon`` console script: the same backend as the napari widgets, from a shell."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _demo(args) -> int:
    """The main job on built-in sample data: relax a skyrmion lattice, simulate what an MFM and a
    stray-field sensor would see above and below it, and write OVF, TIFF and a PNG figure."""
    from pathlib import Path

    import torch
    from tqdm import tqdm

    from . import backend as mm
    from .io import write_ovf, write_tiff

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dtype = torch.float32 if args.float32 else torch.float64
    grid = mm.Grid(nx=args.n, ny=args.n, nz=1, dx=2e-9, dy=2e-9, dz=1e-9, device=args.device, dtype=dtype)
    mat = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3, alpha=0.3)
    print(f"napari-mmrecon demo: {grid.nz}x{grid.ny}x{grid.nx} film, cells {grid.dx * 1e9:g} x "
          f"{grid.dy * 1e9:g} x {grid.dz * 1e9:g} nm, {grid.device}, {str(dtype).replace('torch.', '')}")
    print(f"material: Ms={mat.Ms:g} A/m  A={mat.A:g} J/m  Ku={mat.Ku:g} J/m^3  D={mat.D:g} J/m^2")

    probe = mm.Material(Ms=1.0, A=0.0)
    factors = []
    for direction in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
        h = mm.effective_field(mm.textures.uniform(grid, direction), grid, probe)
        factors.append(-h.reshape(-1, 3).mean(0)[np.argmax(direction)])
    print("demag factors of the film: Nxx = {:.5f}  Nyy = {:.5f}  Nzz = {:.5f}".format(*factors))

    m0 = mm.textures.skyrmion_lattice(grid, spacing=args.spacing, radius=args.spacing / 4)
    with tqdm(desc="relax skyrmion lattice", unit="it", disable=args.quiet) as bar:
        def progress(iteration, torque, energy):
            bar.n = iteration
            bar.set_postfix(torque=f"{torque:.1e}", refresh=False)
            bar.refresh()

        m, info = mm.relax(m0, grid, mat, return_info=True, progress=progress)
    E = mm.energy(m, grid, mat)
    print(f"relaxed in {info.iterations} iterations ({info.wall_time:.1f} s), max torque {info.max_torque:.1e}; "
          "energies (J): " + "  ".join(f"{k} {E[k]:.4e}" for k in mm.TERM_NAMES + ("total",)))

    heights = [10e-9, 20e-9]
    images = {}
    for side in ("top", "bottom"):
        H = mm.stray_field(m, grid, mat.Ms, heights, side=side)  # (2, ny, nx, 3) A/m
        for h, plane in zip(heights, H):
            images[f"Hz_{side}_{h * 1e9:.0f}nm"] = plane[..., 2]
    tip, cantilever = mm.PointDipoleTip(moment=1e-16), mm.Cantilever(k=3.0, f0=75e3, Q=200)
    images["mfm_top_20nm"] = mm.mfm_frequency_shift(m, grid, mat.Ms, 20e-9, side="top", tip=tip,
                                                    cantilever=cantilever)

    pixel = (grid.dy, grid.dx)
    params = {"Ms": mat.Ms, "A": mat.A, "Ku": mat.Ku, "D": mat.D, "grid": [grid.nz, grid.ny, grid.nx],
              "cell_m": [grid.dx, grid.dy, grid.dz]}
    write_ovf(out / "m_relaxed.ovf", m, grid, title="m", desc=["relaxed Neel skyrmion lattice (mmrecon demo)"])
    for name, image in images.items():
        unit = "Hz" if name.startswith("mfm") else "A/m"
        write_tiff(out / f"{name}.tif", image, pixel, metadata=dict(params, quantity=name, value_unit=unit))
    _demo_figure(out / "demo.png", m, images, grid)
    print(f"wrote {len(images) + 2} files to {out.resolve()}: m_relaxed.ovf, "
          + ", ".join(f"{k}.tif" for k in images) + ", demo.png")
    return 0


def _demo_figure(path, m, images, grid):
    """PNG: m_z, the stray field at 10 nm on both sides and the MFM image, in nm coordinates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("m_z", m[0, :, :, 2], "1")] + [(k, v, "Hz" if k.startswith("mfm") else "A/m")
                                               for k, v in images.items() if "20nm" not in k or k.startswith("mfm")]
    extent = (0, grid.nx * grid.dx * 1e9, 0, grid.ny * grid.dy * 1e9)
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), constrained_layout=True)
    for ax, (title, image, unit) in zip(axes, panels):
        limit = float(np.abs(image).max()) or 1.0
        shown = ax.imshow(image, origin="lower", extent=extent, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(title)
        ax.set_xlabel("x (nm)")
        fig.colorbar(shown, ax=ax, label=unit, shrink=0.8)
    axes[0].set_ylabel("y (nm)")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _material(args):
    from .backend import Material

    return Material(Ms=args.Ms, A=args.A, Ku=args.Ku, D=args.D, alpha=args.alpha)


def _starting_state(args, grid):
    from .backend import textures
    from .io import read_ovf

    if args.input:
        m, file_grid = read_ovf(args.input)
        if m.ndim != 4 or m.shape[-1] != 3:
            raise ValueError(f"{args.input} holds a field with {m.shape[-1] if m.ndim == 4 else 1} components; "
                             "a magnetization needs 3")
        return m, file_grid
    if args.texture == "skyrmion":
        return textures.skyrmion(grid, radius=args.radius), grid
    if args.texture == "lattice":
        return textures.skyrmion_lattice(grid, spacing=args.spacing, radius=args.radius), grid
    if args.texture == "stripes":
        return textures.stripes(grid, period=args.spacing), grid
    return textures.random(grid, seed=args.seed), grid


def _relax(args) -> int:
    from tqdm import tqdm

    from .backend import Grid, relax
    from .io import write_ovf

    grid = Grid(nx=args.n, ny=args.n, nz=1, dx=args.cell, dy=args.cell, dz=args.thickness)
    m0, grid = _starting_state(args, grid)
    mat = _material(args)
    with tqdm(desc="relax", unit="it", disable=args.quiet) as bar:
        def progress(iteration, torque, energy):
            bar.n = iteration
            bar.set_postfix(torque=f"{torque:.2e}", energy=f"{energy:.4e} J", refresh=False)
            bar.refresh()

        m, info = relax(m0, grid, mat, external_field=[0.0, 0.0, args.field], tol=args.tol, return_info=True,
                        progress=progress)
    write_ovf(args.output, m, grid, title="m", desc=[f"relaxed by mmrecon: {mat}", f"{info}"])
    state = "converged" if info.converged else "NOT converged"
    print(f"{state} after {info.iterations} iterations ({info.wall_time:.2f} s), max torque {info.max_torque:.2e}, "
          f"energy {info.energy:.6e} J -> {args.output}")
    return 0 if info.converged else 1


def _add_material_arguments(parser):
    parser.add_argument("--Ms", type=float, default=5.8e5, help="saturation magnetization (A/m)")
    parser.add_argument("--A", type=float, default=1.5e-11, help="exchange stiffness (J/m)")
    parser.add_argument("--Ku", type=float, default=8e5, help="uniaxial anisotropy along z (J/m^3)")
    parser.add_argument("--D", type=float, default=3e-3, help="interfacial DMI (J/m^2)")
    parser.add_argument("--alpha", type=float, default=0.5, help="Gilbert damping")
    parser.add_argument("--field", type=float, default=0.0, help="external field along z (A/m)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmrecon", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="relax a skyrmion lattice, simulate its stray field and MFM image, "
                                       "write OVF / TIFF / PNG")
    demo.add_argument("--n", type=int, default=128, help="cells per in-plane side (default 128, 2 nm cells)")
    demo.add_argument("--spacing", type=float, default=40e-9, help="lattice spacing (m)")
    demo.add_argument("--out", default="mmrecon-demo", help="output folder (default ./mmrecon-demo)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    demo.add_argument("--float32", action="store_true", help="single precision")
    demo.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    demo.set_defaults(func=_demo)

    rel = sub.add_parser("relax", help="relax a texture or an OVF file to equilibrium and write OVF 2.0")
    rel.add_argument("input", nargs="?", help="OVF file with a starting magnetization (else --texture)")
    rel.add_argument("-o", "--output", default="relaxed.ovf", help="output OVF file (default relaxed.ovf)")
    rel.add_argument("--texture", choices=("skyrmion", "lattice", "stripes", "random"), default="skyrmion")
    rel.add_argument("--n", type=int, default=64, help="cells per side for a texture (default 64)")
    rel.add_argument("--cell", type=float, default=1e-9, help="in-plane cell size (m)")
    rel.add_argument("--thickness", type=float, default=1e-9, help="film thickness (m)")
    rel.add_argument("--radius", type=float, default=8e-9, help="skyrmion radius (m)")
    rel.add_argument("--spacing", type=float, default=30e-9, help="lattice spacing / stripe period (m)")
    rel.add_argument("--seed", type=int, default=0)
    rel.add_argument("--tol", type=float, default=1e-4, help="stop at max |m x H|/Ms below this")
    rel.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_material_arguments(rel)
    rel.set_defaults(func=_relax)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``mmrecon`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        print(f"mmrecon: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
