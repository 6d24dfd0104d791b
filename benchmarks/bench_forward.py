"""Stray-field and MFM forward-model speed of napari-mmrecon beside plain FFT implementations.

Run by hand (never in CI):

    python benchmarks/bench_forward.py [--threads 2] [--repeats 10] [--sizes 512 1024] [--clock wall]

On a machine shared with other busy processes, torch's multi-threaded operations wait for the
scheduler at every parallel region (a loop of 1M-element products ran 4-10x slower on 2 threads
than on 1 here); ``--threads 1 --clock cpu`` then still compares the per-core cost.

Films of N x N x 1 cells (2 x 2 x 1 nm), a smooth texture (periods 60-300 nm), Ms = 5.8e5 A/m, top side.
Quantities: the stray field H (3 components) on 1 plane (h = 10 nm) and on 8 planes
(h = 5..40 nm), and an MFM image (point-dipole tip, frequency shift, lift height 10 nm).
For each, in float64 and float32:

- ``mmrecon open``: ``mm.stray_field`` / ``mm.mfm_frequency_shift`` with open boundaries (the exact
  cuboid kernel on the zero-padded grid). "build cold" is the one-time kernel construction
  (``StrayField(grid, heights, ...)``), timed in a fresh process (``--cold-repeats`` of them) that
  also reports its peak memory above the process's resident size before the build ("peak MB") and
  the size of the kernel it keeps ("kernel MB"); "cached" is the same constructor once the kernel
  is cached; "per image" is the public function call with the kernel cached.
- ``numpy padded`` / ``scipy padded``: the same transfer function, as a user would write it: the
  transformed kernel precomputed (taken from mmrecon, so the result must agree to round-off;
  the "diff" column checks it), then per image ``rfft2`` of ``Ms m`` on the zero-padded grid,
  the 3 x 3 (or, for MFM, 1 x 3) products, ``irfft2``, crop. numpy's FFT is single-threaded;
  scipy's runs ``workers=--threads``. This is the floor.
- ``mmrecon periodic``: the same calls with ``pbc=True`` (alias-summed Fourier transfer function).
- ``numpy textbook``: the textbook Fourier formula ``H = 1/2 e^{-|k| h} (1 - e^{-|k| dz})
  (-i k^, 1) (M_z - i k^ . M)`` (times ``|k|^2`` for ``d2/dz2``) on the unpadded grid, without the
  cell (sinc) and alias factors: what a user writes first; "diff" is its difference from the exact
  periodic result.

Times are medians in ms; "floor / ours" is the floor's per-image time over ours (> 1: we are faster).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time

import numpy as np
import scipy.fft
import torch

import napari_mmrecon as mm
from napari_mmrecon.backend.forward import stray
from napari_mmrecon.backend.forward.stray import StrayField
from napari_mmrecon.backend.physics.demag import fft_length

CELL = (2e-9, 2e-9, 1e-9)
MS = 5.8e5
ONE_HEIGHT = (10e-9,)
EIGHT_HEIGHTS = tuple(5e-9 * (i + 1) for i in range(8))
TIP = mm.PointDipoleTip(moment=1e-16)
CANTILEVER = mm.Cantilever(k=3.0, f0=75e3)
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def make_grid(n: int, dtype: str, pbc: bool) -> mm.Grid:
    return mm.Grid(nx=n, ny=n, nz=1, dx=CELL[0], dy=CELL[1], dz=CELL[2], pbc=pbc, dtype=DTYPES[dtype], device="cpu")


def texture(grid: mm.Grid) -> np.ndarray:
    """Unit vectors ``(1, ny, nx, 3)`` from products of sinusoids with periods of 60 to 300 nm."""
    x, y, _ = grid.cell_centers()
    X, Y = np.meshgrid(x, y)
    k = 2 * math.pi / 60e-9
    v = np.stack([np.sin(k * X) * np.cos(0.5 * k * Y), np.sin(k * Y),
                  np.cos(k * X) * np.cos(k * Y) + 0.3 * np.cos(0.2 * k * X)], axis=-1)
    return (v / np.linalg.norm(v, axis=-1, keepdims=True))[None]


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]
"""The clock of every timing (``--clock``): wall time, or this process's CPU time."""


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return 1e3 * statistics.median(times)


def operator_args(quantity: str, heights: tuple) -> dict:
    """``StrayField`` keyword arguments of a quantity (the MFM image is the projected d2H/dz2)."""
    if quantity == "mfm":
        return dict(height=heights[0], z_derivative=TIP.z_derivative, axis=TIP.axis)
    return dict(height=list(heights), z_derivative=0, axis=None)


# --------------------------------------------------------------------------- mmrecon


def ours(grid: mm.Grid, quantity: str, heights: tuple):
    """Per-image call of the public function (kernel cached after the first call)."""
    m = torch.tensor(texture(grid), dtype=grid.dtype)
    if quantity == "mfm":
        return lambda: mm.mfm_frequency_shift(m, grid, MS, heights[0], tip=TIP, cantilever=CANTILEVER)
    return lambda: mm.stray_field(m, grid, MS, list(heights))


def _status_bytes(field: str) -> int:
    """A memory figure (``VmRSS``, ``VmHWM``) of this process from ``/proc/self/status``, in bytes."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def cold_build_worker(n: int, dtype: str, pbc: bool, quantity: str, heights: tuple, threads: int) -> dict:
    """Kernel construction in this (fresh) process: time (s), peak resident memory above the resident
    size just before it (MB; Linux: the peak is reset through ``/proc/self/clear_refs``) and the
    size of the kernel the operator keeps (MB)."""
    torch.set_num_threads(threads)
    grid = make_grid(n, dtype, pbc)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_bytes("VmRSS")
    start = clock()
    operator = StrayField(grid, **operator_args(quantity, heights))
    seconds = clock() - start
    kernels = {id(k): k for output in operator.terms for parts in output for k in parts if k is not None}
    return {"seconds": seconds, "peak_mb": (_status_bytes("VmHWM") - before) / 1e6,
            "kernel_mb": sum(k.numel() * k.element_size() for k in kernels.values()) / 1e6}


def cold_build(n, dtype, pbc, quantity, heights, threads, repeats, clock_name) -> tuple[float, float, float]:
    """Median cold build time (ms), the largest peak memory (MB) over fresh processes and the size
    of the stored kernel (MB)."""
    results = []
    for _ in range(repeats):
        spec = json.dumps([n, dtype, pbc, quantity, list(heights), threads])
        out = subprocess.run([sys.executable, __file__, "--clock", clock_name, "--cold-worker", spec], check=True,
                             capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return (1e3 * statistics.median(r["seconds"] for r in results), max(r["peak_mb"] for r in results),
            results[0]["kernel_mb"])


def cached_build_ms(grid, quantity, heights, repeats) -> float:
    StrayField(grid, **operator_args(quantity, heights))
    return median_ms(lambda: StrayField(grid, **operator_args(quantity, heights)), repeats)


# --------------------------------------------------------------------------- floors


def complex_kernel(grid: mm.Grid, quantity: str, heights: tuple) -> np.ndarray:
    """mmrecon's transformed open kernel as numpy complex rows: ``(nh, ncomp, 3, Ly, Lx // 2 + 1)``."""
    spectrum = stray._spectrum(grid, torch.tensor(heights, dtype=torch.float64), "top",
                               operator_args(quantity, heights)["z_derivative"])
    spectrum = {name: v[:, 0].numpy().swapaxes(-1, -2) for name, v in spectrum.items()}  # (nh, Ly, Kx)
    K = {name: (1j * v if name in ("xz", "yz") else v) for name, v in spectrum.items()}
    rows = [[K["".join(sorted(a + b))] for b in "xyz"] for a in "xyz"]
    dtype = np.complex128 if grid.dtype == torch.float64 else np.complex64
    full = np.stack([np.stack(row, axis=1) for row in rows], axis=1).astype(dtype)  # (nh, 3, 3, Ly, Kx)
    if quantity == "mfm":
        prefactor = -CANTILEVER.f0 / (2 * CANTILEVER.k) * mm.MU0 * TIP.moment
        full = prefactor * np.tensordot(np.asarray(TIP.axis), full, axes=(0, 1))[:, None]
    return np.ascontiguousarray(full, dtype=dtype)


def padded_floor(grid: mm.Grid, quantity: str, heights: tuple, fft: str, threads: int):
    """Per-image FFT convolution on the zero-padded grid with a precomputed kernel (numpy or scipy)."""
    ly, lx = fft_length(grid.ny, False), fft_length(grid.nx, False)
    K = complex_kernel(grid, quantity, heights)
    real = np.float64 if grid.dtype == torch.float64 else np.float32
    M = (MS * texture(grid)[0]).astype(real).transpose(2, 0, 1).copy()  # (3, ny, nx)
    if fft == "numpy":
        forward = lambda a: np.fft.rfft2(a, s=(ly, lx))  # noqa: E731
        inverse = lambda a: np.fft.irfft2(a, s=(ly, lx))  # noqa: E731
    else:
        forward = lambda a: scipy.fft.rfft2(a, s=(ly, lx), workers=threads)  # noqa: E731
        inverse = lambda a: scipy.fft.irfft2(a, s=(ly, lx), workers=threads)  # noqa: E731

    def run():
        Mk = forward(M)
        out = []
        for Kh in K:  # one height at a time: bounded memory
            Hk = Kh[:, 0] * Mk[0] + Kh[:, 1] * Mk[1] + Kh[:, 2] * Mk[2]
            out.append(inverse(Hk)[:, : grid.ny, : grid.nx])
        H = np.stack(out)  # (nh, ncomp, ny, nx)
        return H[0, 0] if quantity == "mfm" else np.moveaxis(H, 1, -1)

    return run


def textbook_floor(grid: mm.Grid, quantity: str, heights: tuple):
    """Per-image textbook Fourier formula on the unpadded grid (no cell or alias factors)."""
    real = np.float64 if grid.dtype == torch.float64 else np.float32
    kx = 2 * np.pi * np.fft.rfftfreq(grid.nx, grid.dx)[None, :]
    ky = 2 * np.pi * np.fft.fftfreq(grid.ny, grid.dy)[:, None]
    k = np.hypot(kx, ky)
    safe = np.where(k > 0, k, 1.0)
    ux, uy = kx / safe, ky / safe
    h = np.asarray(heights if quantity != "mfm" else heights[:1])[:, None, None]
    f = 0.5 * np.exp(-k * h) * -np.expm1(-k * grid.dz) * (k * k if quantity == "mfm" else 1.0)
    f[:, k == 0] = 0.0
    f, ux, uy = (a.astype(real) for a in (f, ux, uy))
    prefactor = -CANTILEVER.f0 / (2 * CANTILEVER.k) * mm.MU0 * TIP.moment
    M = (MS * texture(grid)[0]).astype(real).transpose(2, 0, 1).copy()

    def run():
        Mk = np.fft.rfft2(M)
        charge = Mk[2] - 1j * (ux * Mk[0] + uy * Mk[1])  # (M_z - i k^ . M)
        if quantity == "mfm":
            return prefactor * np.fft.irfft2(f[0] * charge, s=(grid.ny, grid.nx))
        Hk = np.stack([-1j * ux * f * charge, -1j * uy * f * charge, f * charge], axis=-3)
        return np.moveaxis(np.fft.irfft2(Hk, s=(grid.ny, grid.nx)), -3, -1)

    return run


def relative_difference(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.abs(a - b).max() / np.abs(b).max())


# --------------------------------------------------------------------------- the table


def case_rows(n, dtype, quantity, heights, args):
    """Table rows (method, build cold ms, peak MB, kernel MB, build cached ms, per-image ms,
    floor/ours, diff)."""
    rows = []
    for pbc in (False, True):
        grid = make_grid(n, dtype, pbc)
        stray._cached_transfer.cache_clear()
        cold, peak, kernel = cold_build(n, dtype, pbc, quantity, heights, args.threads, args.cold_repeats,
                                        args.clock)
        cached = cached_build_ms(grid, quantity, heights, args.repeats)
        call = ours(grid, quantity, heights)
        t_ours = median_ms(call, args.repeats)
        result = call().numpy()
        name = "mmrecon periodic" if pbc else "mmrecon open"
        rows.append((name, cold, peak, kernel, cached, t_ours, math.nan, math.nan))
        floors = [("numpy textbook", textbook_floor(grid, quantity, heights))] if pbc else [
            ("numpy padded", padded_floor(grid, quantity, heights, "numpy", args.threads)),
            ("scipy padded", padded_floor(grid, quantity, heights, "scipy", args.threads))]
        for label, run in floors:
            t = median_ms(run, args.repeats)
            rows.append((label, math.nan, math.nan, math.nan, math.nan, t, t / t_ours,
                         relative_difference(run(), result)))
        del call, result
        stray._cached_transfer.cache_clear()
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--cold-repeats", type=int, default=2, help="fresh processes per cold build")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="cpu: this process's CPU time, steady on a shared machine (use with --threads 1)")
    parser.add_argument("--cold-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    if args.cold_worker:
        n, dtype, pbc, quantity, heights, threads = json.loads(args.cold_worker)
        print(json.dumps(cold_build_worker(n, dtype, pbc, quantity, tuple(heights), threads)))
        return
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, numpy {np.__version__}, {args.threads} threads, {args.clock} time, "
          f"median of {args.repeats} (cold: {args.cold_repeats} processes)")
    print(f"{'case':<28} {'method':<17} {'build cold':>10} {'peak MB':>8} {'kernel MB':>9} {'cached':>8} "
          f"{'per image':>10} {'floor/ours':>10} {'diff':>8}")
    quantities = [("H, 1 height", "field", ONE_HEIGHT), ("H, 8 heights", "field", EIGHT_HEIGHTS),
                  ("MFM", "mfm", ONE_HEIGHT)]
    for n in args.sizes:
        for dtype in args.dtypes:
            for label, quantity, heights in quantities:
                case = f"{n}^2 {dtype} {label}"
                for method, cold, peak, kernel, cached, t, ratio, diff in case_rows(n, dtype, quantity, heights,
                                                                                    args):
                    print(f"{case:<28} {method:<17} {cold:10.0f} {peak:8.0f} {kernel:9.0f} {cached:8.3f} "
                          f"{t:10.1f} {ratio:10.2f} {diff:8.1e}", flush=True)


if __name__ == "__main__":
    main()
