"""Effective-field speed of napari-mmrecon beside magnum.np and the bare FFT floor, in one run.

Run by hand (never in CI):

    pip install --no-deps magnumnp==2.2.0 torchdiffeq xitorch setproctitle
    python benchmarks/bench_field.py [--threads 2] [--repeats 30]

Each case times, on the same machine, threads and dtype:
- ``mmrecon``: ``EnergyModel.field`` with exchange, interfacial DMI, uniaxial anisotropy and demag;
- ``magnum.np``: the sum of ``h(state)`` of its DemagField, ExchangeField, UniaxialAnisotropyField
  and InterfaceDMIField (its default, torch.compile'd field; compile time excluded by warm-up);
- ``fft floor``: 3 forward + 3 inverse real FFTs of the 2x zero-padded grid and the 6-component
  kernel product, in plain torch.
It prints medians (ms) and the ratios ``magnum.np / mmrecon`` and ``floor / mmrecon``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types

import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.energy import EnergyModel

CASES = [(128, 128, 1), (256, 256, 1), (512, 512, 1), (256, 256, 4)]
MATERIAL = dict(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)


def median_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def ours(nx, ny, nz, dtype):
    grid = mm.Grid(nx=nx, ny=ny, nz=nz, dx=1e-9, dy=1e-9, dz=1e-9, dtype=dtype, device="cpu")
    model = EnergyModel(grid, mm.Material(**MATERIAL))
    m = grid.tensor(mm.textures.skyrmion(grid, radius=10e-9))
    return lambda: model.field(m)


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--no-magnum", action="store_true", help="skip magnum.np (not installed)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats}")
    print(f"{'grid':>12} {'dtype':>8} {'mmrecon':>9} {'magnum.np':>10} {'floor':>8} {'magnum/ours':>12} {'floor/ours':>11}")
    for dtype in (torch.float64, torch.float32):
        for nx, ny, nz in CASES:
            t_ours = median_ms(ours(nx, ny, nz, dtype), args.repeats)
            t_mag = float("nan") if args.no_magnum else median_ms(magnum(nx, ny, nz, dtype), args.repeats)
            t_floor = median_ms(fft_floor(nx, ny, nz, dtype), args.repeats)
            name = str(dtype).replace("torch.", "")
            print(f"{nx}x{ny}x{nz:>2} {name:>8} {t_ours:9.2f} {t_mag:10.2f} {t_floor:8.2f} "
                  f"{t_mag / t_ours:12.2f} {t_floor / t_ours:11.2f}", flush=True)


if __name__ == "__main__":
    main()
