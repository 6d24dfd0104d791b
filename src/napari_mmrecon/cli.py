"""The ``mmrecon`` console script: the same backend as the napari widgets, from a shell."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _demo(args) -> int:
    import torch

    from . import backend as mm
    from .backend.energy import EnergyModel

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.float32 if args.float32 else torch.float64
    grid = mm.Grid(nx=args.n, ny=args.n, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, device=args.device, dtype=dtype)
    mat = mm.Material(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3, alpha=0.3)
    print(f"napari-mmrecon demo: {grid.nz}x{grid.ny}x{grid.nx} film, cells {grid.dx * 1e9:g} x "
          f"{grid.dy * 1e9:g} x {grid.dz * 1e9:g} nm, {grid.device}, {str(dtype).replace('torch.', '')}")
    print(f"material: Ms={mat.Ms:g} A/m  A={mat.A:g} J/m  Ku={mat.Ku:g} J/m^3  D={mat.D:g} J/m^2")

    print("\ndemagnetizing factors of the whole film (volume-averaged field / -Ms):")
    probe = mm.Material(Ms=1.0, A=0.0)
    for label, direction in (("Nxx", (1, 0, 0)), ("Nyy", (0, 1, 0)), ("Nzz", (0, 0, 1))):
        h = mm.effective_field(mm.textures.uniform(grid, direction), grid, probe)
        print(f"  {label} = {-h.reshape(-1, 3).mean(0)[np.argmax(direction)]:.6f}")

    model = EnergyModel(grid, mat)
    print("\nenergies (J) of starting textures:")
    textures = {
        "uniform +z": mm.textures.uniform(grid),
        "Neel skyrmion R=10 nm": mm.textures.skyrmion(grid, radius=10e-9),
        "skyrmion lattice a=30 nm": mm.textures.skyrmion_lattice(grid, spacing=30e-9, radius=8e-9),
        "stripes period 25 nm": mm.textures.stripes(grid, period=25e-9),
    }
    header = "".join(f"{name:>12}" for name in mm.TERM_NAMES + ("total",))
    print(f"  {'':26}{header}")
    for label, m in textures.items():
        E = model.energies(grid.tensor(m))
        print(f"  {label:26}" + "".join(f"{float(E[k]):12.4e}" for k in mm.TERM_NAMES + ("total",)))

    m = grid.tensor(textures["Neel skyrmion R=10 nm"])
    model.field(m)
    start = time.perf_counter()
    repeats = 20
    for _ in range(repeats):
        model.field(m)
    elapsed = (time.perf_counter() - start) / repeats
    print(f"\neffective field of all terms: {elapsed * 1e3:.2f} ms per evaluation")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmrecon", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="energies and demag factors of a film with several textures")
    demo.add_argument("--n", type=int, default=128, help="cells per in-plane side (default 128)")
    demo.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    demo.add_argument("--float32", action="store_true", help="single precision")
    demo.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``mmrecon`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"mmrecon: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
