"""Parameter-fit cost: wall time and its split, and the memory of one gradient through a relaxation.

Run by hand (never in CI)::

    python benchmarks/bench_fit.py [--threads 2] [--parts time compare memory]

``time``: the 4-parameter fit (Ms, A, Ku, D; start 30 % off, default options) of a stray-field
image of relaxed Neel skyrmions on 64x64x1 (one skyrmion) and 128x128x1 (four skyrmions) films of
1 nm cells, with the split between relaxations, adjoint/tangent solves and the rest (forward
images, the outer optimizer).

``compare``: the project's Levenberg-Marquardt against ``scipy.optimize.least_squares`` (trust-region
reflective, bounded, given the project's Jacobian through the equilibrium) as the final,
unbiased stage of the same fits: the two films above and the 12-skyrmion film relaxed by magnum.np
(``tests/data/magnumnp_film_64x64x1.npz``, Hz at 6 nm, starts 30 % off in both directions).

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


def _magnumnp_film():
    from pathlib import Path

    import numpy as np

    import napari_mmrecon as mm

    data = np.load(Path(__file__).parents[1] / "tests" / "data" / "magnumnp_film_64x64x1.npz")
    grid = mm.Grid(nx=64, ny=64, nz=1, dx=float(data["dx"]), dy=float(data["dy"]), dz=float(data["dz"]))
    return grid, mm.Material(**MATERIAL), data["m_relaxed"]


def scipy_least_squares(objective, state, bias_scale, rule, stage, progress=None):
    """A final stage by ``scipy.optimize.least_squares`` (TRF, bounded ``theta``) with the project's
    residual, Jacobian, warm starts and topology guard: the drop-in rival of
    ``fit_optimizers.levenberg_marquardt`` (same signature)."""
    import numpy as np
    import torch
    from scipy.optimize import least_squares

    from napari_mmrecon.backend.inverse.optimizers import (
        STEP_CG_MAX_ITER,
        STEP_CG_TOL,
        StageOutcome,
        _report,
    )

    like = state.best.theta
    cache = {}

    def evaluation(x):
        key = x.tobytes()
        if key not in cache:
            theta = torch.as_tensor(x, dtype=like.dtype, device=like.device)
            trial = objective.evaluate(theta, state.warm, bias_scale, state.tolerance())
            state.consider(trial)
            cache.clear()
            cache[key] = trial
        return cache[key]

    def jacobian(x):
        J, state.tangent = objective.jacobian(evaluation(x), state.tangent, STEP_CG_TOL, STEP_CG_MAX_ITER)
        _report(state, stage, len(state.history) + 1, progress)
        return J.cpu().numpy()

    x0 = like.cpu().numpy()
    bound = 5.0  # tanh(5 / ln 10) = 0.97: the whole of each parameter's range
    found = least_squares(lambda x: objective.residual(evaluation(x)).cpu().numpy(), np.clip(x0, -bound, bound),
                          jac=jacobian, method="trf", bounds=(-bound, bound), x_scale="jac",
                          max_nfev=3 * max(rule.max_iter, 1), ftol=1e-12, xtol=1e-10, gtol=1e-10)
    return StageOutcome("stationary" if found.status > 0 else "max_iter", int(found.njev))


def _problem(name: str):
    import napari_mmrecon as mm

    if name == "magnumnp":
        grid, material, m = _magnumnp_film()
        height = 6e-9
    else:
        grid, material, m = _film(int(name))
        height = 5e-9
    measurement = mm.StrayFieldMeasurement(height=height)
    return grid, material, measurement, measurement.simulate(m, grid, material.Ms)


def time_fit(n, optimizer: str = "project", start=START) -> dict:
    import napari_mmrecon as mm
    from napari_mmrecon.backend.inverse import staged_fit as fitting

    grid, material, measurement, target = _problem(str(n))
    init = material.replace(**{k: MATERIAL[k] * f for k, f in zip(("Ms", "A", "Ku", "D"), start)})
    if optimizer == "scipy":
        fitting.levenberg_marquardt = scipy_least_squares
    started = time.perf_counter()
    result = mm.fit_parameters(target, grid, measurement, init)
    wall = time.perf_counter() - started
    worst = max(abs(result.values[k] / MATERIAL[k] - 1) for k in MATERIAL)
    return dict(n=n, wall=wall, worst_error=worst, iterations=result.iterations, message=result.message,
                converged=result.converged, **{k: v for k, v in result.timings.items()})


def memory_case(mode: str, iterations: int) -> dict:
    import torch

    import napari_mmrecon as mm
    from napari_mmrecon.backend.forward.measurement import simulate_image
    from napari_mmrecon.backend.solvers.equilibrium import (
        EquilibriumSettings,
        equilibrium,
        unrolled_equilibrium,
    )

    grid, material, m_true = _film(64)
    measurement = mm.StrayFieldMeasurement(height=5e-9)
    target = grid.tensor(measurement.simulate(m_true, grid, material.Ms))
    m_start = grid.tensor(mm.textures.skyrmion(grid, radius=9e-9))

    def gradient(steps):
        params = [torch.tensor(MATERIAL[k] * f, dtype=torch.float64, requires_grad=True)
                  for k, f in zip(("Ms", "A", "Ku", "D"), (1.05, 0.95, 1.05, 0.95))]
        if mode == "implicit":
            settings = EquilibriumSettings(tol=0.0, max_iter=steps, newton=False)  # exactly `steps` iterations
            m = equilibrium(m_start, grid, dict(zip(("Ms", "A", "Ku", "D"), params)), settings)
        else:
            m = unrolled_equilibrium(m_start, grid, dict(zip(("Ms", "A", "Ku", "D"), params)), EquilibriumSettings(), steps)
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
        if kind == "time":
            result = time_fit(args.worker[1])
        elif kind == "compare":
            start = tuple(float(f) for f in args.worker[3].split(","))
            result = time_fit(args.worker[1], args.worker[2], start)
        else:
            result = memory_case(kind, int(args.worker[1]))
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
    if "compare" in args.parts:
        print("\n| film | start | final stage | wall time | outer iterations | evaluations | worst error | ending |"
              "\n|---|---|---|---|---|---|---|---|")
        for problem in ("64", "128", "magnumnp"):
            for start in ("1.3,0.7,1.3,0.7", "0.7,1.3,0.7,1.3"):
                for optimizer in ("project", "scipy"):
                    r = _spawn(["compare", problem, optimizer, start], args.threads)
                    label = "Levenberg-Marquardt (project)" if optimizer == "project" else "scipy least_squares (TRF)"
                    print(f"| {problem} | {start} | {label} | {r['wall']:.1f} s | {r['iterations']} | "
                          f"{r['evaluations']} | {r['worst_error']:.1e} | {r['message'].split(':')[0]} |", flush=True)
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
