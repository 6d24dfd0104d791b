"""Effective-field speed of napari-mmrecon beside magnum.np and the bare FFT floor, in one run.

Run by hand (never in CI):

    pip install --no-deps magnumnp==2.2.0 torchdiffeq xitorch setproctitle
    python benchmarks/bench_field.py [--threads 2] [--repeats 30] [--cases 256x256x1 ...]
                                     [--dtypes float64 float32] [--no-magnum] [--default-malloc]

The process tunes glibc's malloc first (``runtime.allocator.keep_freed_memory``, which the
package itself never calls), unless ``--default-malloc``. Each case times, on the same machine, threads and dtype, the calls taking turns (so that a load
that changes during the run changes every column alike):
- ``mmrecon``: ``EnergyModel.field`` with exchange, interfacial DMI, uniaxial anisotropy and demag
  (the model built once);
- ``one-shot``: ``mm.effective_field(m, grid, material)`` with the same terms, every call from the
  grid and material (its model is cached between calls, ``physics/energy.py``);
- ``magnum.np``: the sum of ``h(state)`` of its DemagField, ExchangeField, UniaxialAnisotropyField
  and InterfaceDMIField (its default, torch.compile'd field; compile time excluded by warm-up);
- ``fft floor``: 3 forward + 3 inverse real FFTs of the 2x zero-padded grid and the 6-component
  kernel product, in plain torch.
It prints medians (ms) and the ratios ``one-shot / mmrecon``, ``magnum.np / mmrecon`` and
``floor / mmrecon``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types

import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.physics.energy import EnergyModel
from napari_mmrecon.backend.runtime.allocator import keep_freed_memory

CASES = ["128x128x1", "256x256x1", "512x512x1", "256x256x4"]
DTYPES = {"float64": torch.float64, "float32": torch.float32}
MATERIAL = dict(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)


def medians_ms(fns: list, repeats: int) -> list:
    """Median wall time (ms) of each function, calling them in turn ``repeats`` times after three
    warm-up rounds."""
    times = [[] for _ in fns]
    for round_ in range(repeats + 3):
        for fn, spent in zip(fns, times):
            start = time.perf_counter()
            fn()
            if round_ >= 3:
                spent.append(time.perf_counter() - start)
    return [1e3 * statistics.median(spent) for spent in times]


def _problem(nx, ny, nz, dtype):
    grid = mm.Grid(nx=nx, ny=ny, nz=nz, dx=1e-9, dy=1e-9, dz=1e-9, dtype=dtype, device="cpu")
    return grid, mm.Material(**MATERIAL), grid.tensor(mm.textures.skyrmion(grid, radius=10e-9))


def ours(nx, ny, nz, dtype):
    grid, material, m = _problem(nx, ny, nz, dtype)
    model = EnergyModel(grid, material)
    return lambda: model.field(m)


def one_shot(nx, ny, nz, dtype):
    grid, material, m = _problem(nx, ny, nz, dtype)
    return lambda: mm.effective_field(m, grid, material)


def magnum(nx, ny, nz, dtype):
    sys.modules.setdefault("pyvista", types.ModuleType("pyvista"))  # only needed for VTK output
    import magnumnp as mnp

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        mesh = mnp.Mesh((nx, ny, nz), (1e-9, 1e-9, 1e-9))
        state = mnp.State(mesh)
        state.material = {"Ms": MATERIAL["Ms"], "A": MATERIAL["A"], "Ku": MATERIAL["Ku"],
                          "Ku_axis": [0.0, 0.0, 1.0], "Di": MATERIAL["D"]}
        grid = mm.Grid(nx=nx, ny=ny, nz=nz)
        m = torch.tensor(mm.textures.skyrmion(grid, radius=10e-9), dtype=dtype).permute(2, 1, 0, 3).contiguous()
        state.m = m
        terms = [mnp.DemagField(), mnp.ExchangeField(), mnp.UniaxialAnisotropyField(), mnp.InterfaceDMIField()]
    finally:
        torch.set_default_dtype(previous)
    return lambda: sum(t.h(state) for t in terms)


def fft_floor(nx, ny, nz, dtype):
    shape = (2 * nz if nz > 1 else 1, 2 * ny, 2 * nx)
    M = torch.randn((3, nz, ny, nx), dtype=dtype)
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    K = torch.randn((6,) + shape[:-1] + (shape[-1] // 2 + 1,), dtype=complex_dtype)

    def run():
        Mk = torch.fft.rfftn(M, s=shape, dim=(-3, -2, -1))
        hx = K[0] * Mk[0] + K[3] * Mk[1] + K[4] * Mk[2]
        hy = K[3] * Mk[0] + K[1] * Mk[1] + K[5] * Mk[2]
        hz = K[4] * Mk[0] + K[5] * Mk[1] + K[2] * Mk[2]
        H = torch.fft.irfftn(torch.stack((hx, hy, hz)), s=shape, dim=(-3, -2, -1))
        return H[:, :nz, :ny, :nx]

    return run


def _case(text: str) -> tuple:
    """``"256x256x1"`` -> ``(256, 256, 1)``."""
    try:
        nx, ny, nz = (int(v) for v in text.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a case is NXxNYxNZ, e.g. 256x256x1, got {text!r}") from None
    return nx, ny, nz


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cases", type=_case, nargs="+", default=[_case(c) for c in CASES],
                        help=f"grids NXxNYxNZ (default {' '.join(CASES)})")
    parser.add_argument("--dtypes", choices=DTYPES, nargs="+", default=list(DTYPES))
    parser.add_argument("--no-magnum", action="store_true", help="skip magnum.np (not installed)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc untuned (default: allocator.keep_freed_memory, as an application may)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    kept = not args.default_malloc and keep_freed_memory()
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats}, "
          f"malloc {'tuned (keep_freed_memory)' if kept else 'untuned'}")
    print(f"{'grid':>12} {'dtype':>8} {'mmrecon':>9} {'one-shot':>9} {'one-shot/ours':>14} {'magnum.np':>10} "
          f"{'floor':>8} {'magnum/ours':>12} {'floor/ours':>11}")
    for name in args.dtypes:
        dtype = DTYPES[name]
        for nx, ny, nz in args.cases:
            fns = [ours(nx, ny, nz, dtype), one_shot(nx, ny, nz, dtype), fft_floor(nx, ny, nz, dtype)]
            if not args.no_magnum:
                fns.append(magnum(nx, ny, nz, dtype))
            t_ours, t_one, t_floor, *rest = medians_ms(fns, args.repeats)
            t_mag = rest[0] if rest else float("nan")
            print(f"{f'{nx}x{ny}x{nz}':>12} {name:>8} {t_ours:9.2f} {t_one:9.2f} {t_one / t_ours:14.2f} {t_mag:10.2f} "
                  f"{t_floor:8.2f} {t_mag / t_ours:12.2f} {t_floor / t_ours:11.2f}", flush=True)


if __name__ == "__main__":
    main()
