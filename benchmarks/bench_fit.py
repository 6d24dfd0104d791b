"""Parameter-fit cost: wall time and its split, and the memory of one gradient through a relaxation.

Run by hand (never in CI)::

    python benchmarks/bench_fit.py [--threads 2] [--parts time memory]

``time``: the 4-parameter fit (Ms, A, Ku, D; start 30 % off, default options) of a stray-field
image of relaxed Neel skyrmions on 64x64x1 (one skyrmion) and 128x128x1 (four skyrmions) films of
1 nm cells, with the split between relaxations, adjoint/tangent solves and the rest (forward
images, the outer optimizer).

``memory``: peak resident memory of one loss gradient w.r.t. (Ms, A, Ku, D) through a relaxation of
N and 10 N iterations, by implicit differentiation (this package's default) and by
backpropagation through the steps, each in a fresh process on a 64x64x1 film. Reported as the
peak RSS above the process's state after a one-iteration warm-up.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

MATERIAL = dict(Ms=5.8e5, A=1.5e-11, Ku=8e5, D=3e-3)
START = (1.3, 0.7, 1.3, 0.7)


def _film(n: int):
    import napari_mmrecon as mm

    grid = mm.Grid(nx=n, ny=n, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
    material = mm.Material(**MATERIAL)
    if n <= 64:
        m0 = mm.textures.skyrmion(grid, radius=7e-9)
    else:
        m0 = mm.textures.skyrmions(grid, [(n * q[0] * 1e-9, n * q[1] * 1e-9) for q in
                                          ((0.3, 0.3), (0.7, 0.35), (0.35, 0.7), (0.7, 0.72))], radius=7e-9)
    return grid, material, mm.relax(m0, grid, material, tol=1e-10)


def time_fit(n: int) -> dict:
    import napari_mmrecon as mm

    grid, material, m = _film(n)
    measurement = mm.StrayFieldMeasurement(height=5e-9)
    target = measurement.simulate(m, grid, material.Ms)
    init = material.replace(**{k: MATERIAL[k] * f for k, f in zip(("Ms", "A", "Ku", "D"), START)})
    started = time.perf_counter()
    result = mm.fit_parameters(target, grid, measurement, init)
    wall = time.perf_counter() - started
    worst = max(abs(result.values[k] / MATERIAL[k] - 1) for k in MATERIAL)
    return dict(n=n, wall=wall, worst_error=worst, iterations=result.iterations, message=result.message,
                **{k: v for k, v in result.timings.items()})


def memory_case(mode: str, iterations: int) -> dict:
    import torch

    import napari_mmrecon as mm
    from napari_mmrecon.backend.equilibrium import EquilibriumSettings, equilibrium, unrolled_equilibrium
    from napari_mmrecon.backend.measurement import simulate_image

    grid, material, m_true = _film(64)
    measurement = mm.StrayFieldMeasurement(height=5e-9)
    target = grid.tensor(measurement.simulate(m_true, grid, material.Ms))
    m_start = grid.tensor(mm.textures.skyrmion(grid, radius=9e-9))

    def gradient(steps):
        params = [torch.tensor(MATERIAL[k] * f, dtype=torch.float64, requires_grad=True)
                  for k, f in zip(("Ms", "A", "Ku", "D"), (1.05, 0.95, 1.05, 0.95))]
        if mode == "implicit":
            settings = EquilibriumSettings(tol=0.0, max_iter=steps)  # exactly `steps` minimizer iterations
            m = equilibrium(m_start, grid, *params, None, settings)
        else:
            m = unrolled_equilibrium(m_start, grid, *params, None, EquilibriumSettings(), steps)
        loss = ((simulate_image(measurement, m, grid, params[0]) - target) ** 2).mean()
        loss.backward()
        return [float(p.grad) for p in params]

    gradient(1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    gradient(iterations)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return dict(mode=mode, iterations=iterations, extra_mb=(peak - before) / 1024, peak_mb=peak / 1024,
                seconds=time.perf_counter() - started)


def _spawn(args: list[str], threads: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--threads", str(threads), "--worker", *args],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", nargs="+", default=["time", "memory"])
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        kind = args.worker[0]
        result = time_fit(int(args.worker[1])) if kind == "time" else memory_case(kind, int(args.worker[1]))
        print(json.dumps(result))
        return
    print(f"{args.threads} threads")
    if "time" in args.parts:
        print("\n| film | wall time | relax | adjoint + tangent solves | uncertainty | rest | LM iterations | "
              "worst error |\n|---|---|---|---|---|---|---|---|")
        for n in (64, 128):
            r = _spawn(["time", str(n)], args.threads)
            print(f"| {n}x{n}x1 | {r['wall']:.1f} s | {r['relax']:.1f} s | {r['adjoint']:.1f} s | "
                  f"{r['uncertainty']:.1f} s | {r['outer']:.1f} s | {r['iterations']} | {r['worst_error']:.1e} |",
                  flush=True)
    if "memory" in args.parts:
        print("\n| gradient | peak RSS, N = 50 | N = 500 | peak ratio | above warm-up, N = 50 | N = 500 | "
              "time N = 50 | time N = 500 |\n|---|---|---|---|---|---|---|---|")
        for mode in ("implicit", "unrolled"):
            small, large = (_spawn([mode, str(n)], args.threads) for n in (50, 500))
            print(f"| {mode} | {small['peak_mb']:.0f} MB | {large['peak_mb']:.0f} MB | "
                  f"{large['peak_mb'] / small['peak_mb']:.3f} | {small['extra_mb']:.1f} MB | {large['extra_mb']:.1f} MB | "
                  f"{small['seconds']:.2f} s | {large['seconds']:.2f} s |", flush=True)

if __name__ == "__main__":
    main()
