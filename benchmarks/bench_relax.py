"""Relaxation speed of napari-mmrecon beside magnum.np, in one run, on the same machine and threads.

Run by hand (never in CI):

    pip install --no-deps magnumnp==2.2.0 torchdiffeq xitorch setproctitle
    python benchmarks/bench_relax.py [--threads 2]

Cases: the isolated Neel skyrmion of the test-suite (Ms = 5.8e5 A/m, A = 1.5e-11 J/m,
Ku = 8e5 J/m^3, D = 3e-3 J/m^2, 1 nm cells, all terms, open boundaries) on 64x64x1 and 128x128x1,
started from a radius-8 nm profile; and a batch of 16 skyrmions with D from 2.6e-3 to 3.4e-3.
Both codes stop on the same criterion: max |m x (m x H)| below ``TOL * Ms`` (A/m).

"cold" is measured in a fresh Python process: import, build, relax (so it includes magnum.np's
torch.compile and our kernel set-up); "cold after import" starts the clock after the imports.
"warm" repeats the relaxation in the same process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

TOL = 1e-5  # dimensionless torque; magnum.np dm_tol = TOL * Ms
MATERIAL = dict(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)


def _worker_ours(n: int, batch: int, threads: int) -> dict:
    t0 = time.perf_counter()
    import numpy as np
    import torch

    import napari_mmrecon as mm

    torch.set_num_threads(threads)
    t_import = time.perf_counter()
    grid = mm.Grid(nx=n, ny=n, nz=1)
    m0 = mm.textures.skyrmion(grid, radius=8e-9)
    if batch > 1:
        m0 = np.stack([m0] * batch)
        mat = mm.Material(**dict(MATERIAL, D=np.linspace(2.6e-3, 3.4e-3, batch)))
    else:
        mat = mm.Material(**MATERIAL)
    m, info = mm.relax(m0, grid, mat, tol=TOL, return_info=True)
    t_cold = time.perf_counter()
    m, info = mm.relax(m0, grid, mat, tol=TOL, return_info=True)
    t_warm = time.perf_counter() - t_cold
    out = dict(total=t_cold - t0, after_import=t_cold - t_import, warm=t_warm, iterations=info.iterations,
               evaluations=info.field_evaluations)
    if batch > 1:
        start = time.perf_counter()
        for i in range(batch):
            mm.relax(m0[i], grid, mat.replace(D=float(mat.D[i])), tol=TOL)
        out["singles"] = time.perf_counter() - start
    else:
        out["radius_nm"] = 1e9 * mm.skyrmion_radius(m, grid)
    return out


def _worker_magnum(n: int, method: str, threads: int) -> dict:
    t0 = time.perf_counter()
    import types

    sys.modules.setdefault("pyvista", types.ModuleType("pyvista"))
    import magnumnp as mnp
    import torch

    import napari_mmrecon as mm

    torch.set_num_threads(threads)
    t_import = time.perf_counter()
    mesh = mnp.Mesh((n, n, 1), (1e-9, 1e-9, 1e-9))
    state = mnp.State(mesh)
    state.material = {"Ms": MATERIAL["Ms"], "A": MATERIAL["A"], "Ku": MATERIAL["Ku"], "Ku_axis": [0.0, 0.0, 1.0],
                      "Di": MATERIAL["D"], "alpha": 1.0}
    grid = mm.Grid(nx=n, ny=n, nz=1)
    m0 = torch.tensor(mm.textures.skyrmion(grid, radius=8e-9)).permute(2, 1, 0, 3).contiguous()
    terms = [mnp.DemagField(), mnp.ExchangeField(), mnp.UniaxialAnisotropyField(), mnp.InterfaceDMIField()]

    def run():
        state.m = m0.clone()
        if method == "bb":
            mnp.MinimizerBB(terms).minimize(state, maxiter=100000, dm_tol=TOL * MATERIAL["Ms"])
        else:
            state.t = 0.0
            mnp.LLGSolver(terms).relax(state, maxiter=100000, dm_tol=TOL * MATERIAL["Ms"])

    run()
    t_cold = time.perf_counter()
    run()
    t_warm = time.perf_counter() - t_cold
    mz = state.m[:, :, 0, 2].T.numpy()
    m_np = state.m.permute(2, 1, 0, 3).numpy()
    return dict(total=t_cold - t0, after_import=t_cold - t_import, warm=t_warm,
                radius_nm=1e9 * mm.skyrmion_radius(m_np, grid), mz_min=float(mz.min()))


def _spawn(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-magnum", action="store_true")
    parser.add_argument("--no-llg", action="store_true", help="skip magnum.np's LLG relaxation (slow on a busy machine)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, n, extra = args.worker[0], int(args.worker[1]), args.worker[2]
        result = _worker_ours(n, int(extra), args.threads) if kind == "ours" else _worker_magnum(n, extra, args.threads)
        print(json.dumps(result))
        return
    threads = ["--threads", str(args.threads)]
    print(f"{args.threads} threads; stop at max|m x H|/Ms < {TOL:g}")
    for n in (64, 128):
        ours = _spawn(["ours", str(n), "1"] + threads)
        print(f"\n{n}x{n}x1 skyrmion")
        print(f"  mmrecon relax       cold {ours['total']:6.2f} s (after import {ours['after_import']:5.2f} s)  "
              f"warm {ours['warm']:6.3f} s  {ours['iterations']} it / {ours['evaluations']} fields  "
              f"R = {ours['radius_nm']:.3f} nm")
        if not args.no_magnum:
            methods = (("bb", "magnum.np BB "),) + (() if args.no_llg else (("llg", "magnum.np LLG"),))
            for method, label in methods:
                peer = _spawn(["magnum", str(n), method] + threads)
                print(f"  {label}       cold {peer['total']:6.2f} s (after import {peer['after_import']:5.2f} s)  "
                      f"warm {peer['warm']:6.3f} s  R = {peer['radius_nm']:.3f} nm  "
                      f"warm ratio {peer['warm'] / ours['warm']:.1f}x")
    batch = _spawn(["ours", "64", "16"] + threads)
    print(f"\nbatch of 16 skyrmions 64x64x1: batched {batch['warm']:.2f} s vs 16 single runs {batch['singles']:.2f} s "
          f"({batch['singles'] / batch['warm']:.1f}x)")


if __name__ == "__main__":
    main()
