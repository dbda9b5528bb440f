"""Benchmark: our α-matching solvers vs the paper-code approach (SciPy SLSQP, random starts).

For every family, random *feasible* targets are made from random parameters (so a
solution exists): thresholds within ±2.5 standard deviations of the layer's input
(z = s/τ), amplitudes in [0.3, 3], τ in [0.5, 2].  Each target is solved

* by :func:`ntk_theory.compress.solve_alpha` (deterministic, mpmath-polished), and
* by the baseline: ``scipy.optimize.minimize(method="SLSQP")`` on the sum of squared
  residuals of ``(m1², m2², w̄2)`` in the family's raw parameters, from ``--starts``
  uniformly random starting points (the paper's code uses 1000), keeping the best.

Success means a maximal relative residual ≤ 1e−12 (the issue's target), checked for
both methods with the same float64 moment formulas; the baseline's rate at the
looser 1e−6 is reported too.  The baseline is slow, so it runs on ``--baseline-targets``
targets per family (stated in the output).

Run::

    python3 benchmarks/bench_solver.py                 # 200 targets, baseline 5 x 1000 starts
    python3 benchmarks/bench_solver.py --targets 20 --baseline-targets 2 --starts 100   # quick
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy.optimize import minimize

from ntk_theory.activations import activation
from ntk_theory.compress import AlphaTargets, solve_alpha
from ntk_theory.compress.families import StaircaseKFamily, stair_moments_np
from ntk_theory.compress.network import dense_layer_moments
from ntk_theory.errors import NTKTheoryError

FAMILIES = ("ternary", "sigma_T", "three_level", "staircase:4")


def random_layer(name: str, rng: np.random.Generator) -> tuple[float, AlphaTargets]:
    """A random τ and the moments of a random member of the family (feasible by construction)."""
    tau = float(rng.uniform(0.5, 2.0))
    if name == "ternary":
        act = activation("ternary", s=rng.uniform(0.1, 2.5) * tau, b=rng.uniform(0.3, 3.0))
    elif name == "sigma_T":
        z1 = rng.uniform(-2.5, 2.0)
        z2 = rng.uniform(z1 + 0.1, min(z1 + 3.0, 2.5))
        act = activation("sigma_T", s1=z1 * tau, s2=z2 * tau, a=rng.uniform(0.3, 3.0))
    elif name == "three_level":
        s = rng.uniform(0.1, 2.5) * tau
        act = activation("three_level", s1=-s, s2=s, a1=rng.uniform(-3, 3), a2=rng.uniform(-3, 3))
    else:
        fam = StaircaseKFamily(int(name.split(":")[1]))
        p = fam.params_from(rng.uniform(0.1, 1.5), rng.uniform(0.3, 2.0), rng.uniform(-2, 2), tau)
        act = activation("staircase", thresholds=tuple(map(float, p["thresholds"])),
                         levels=tuple(map(float, p["levels"])))
    return tau, dense_layer_moments(act, tau).targets


def raw_staircase(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The family's raw parameter vector → (thresholds, levels), as in the paper's code."""
    if name == "ternary":
        s, b = x
        return np.array([-abs(s), abs(s)]), np.array([-b, 0.0, b])
    if name == "sigma_T":
        s1, s2, a = x
        lo, hi = min(s1, s2), max(s1, s2)
        return np.array([lo, hi]), np.array([a, 0.0, a])
    if name == "three_level":
        s1, s2, a1, a2 = x
        lo, hi = min(s1, s2), max(s1, s2)
        return np.array([lo, hi]), np.array([a1, 0.0, a2])
    K = int(name.split(":")[1])
    th = np.sort(x[:K - 1])
    return th, np.asarray(x[K - 1:])


def n_raw(name: str) -> int:
    return {"ternary": 2, "sigma_T": 3, "three_level": 4}.get(name) or 2 * int(name.split(":")[1]) - 1


def achieved(name: str, x: np.ndarray, tau: float) -> np.ndarray:
    th, lv = raw_staircase(name, x)
    m = stair_moments_np(th[None, :] / tau, lv[None, :])
    return np.array([m["m1"][0] ** 2 / tau**2, m["m2"][0] ** 2 / tau**4, m["w2_bar"][0] / tau**2])


def rel_residual(name: str, x: np.ndarray, tau: float, t: AlphaTargets) -> float:
    target = np.array([t.m1**2, t.m2**2, t.w2_bar])
    got = achieved(name, x, tau)
    D = np.max(np.abs(target))
    den = np.where(np.abs(target) > 1e-20 * D, np.abs(target), D)
    return float(np.max(np.abs(got - target) / den))


def baseline(name: str, tau: float, t: AlphaTargets, starts: int, rng: np.random.Generator) -> float:
    """Best relative residual of SLSQP on the squared residuals from ``starts`` random points."""
    target = np.array([t.m1**2, t.m2**2, t.w2_bar])

    def obj(x: np.ndarray) -> float:
        return float(np.sum((achieved(name, x, tau) - target) ** 2))

    k = n_raw(name)
    best = math.inf
    for _ in range(starts):
        x0 = np.concatenate([rng.uniform(-3, 3, size=k)])
        r = minimize(obj, x0, method="SLSQP", options={"maxiter": 200, "ftol": 1e-30})
        if np.all(np.isfinite(r.x)):
            best = min(best, rel_residual(name, r.x, tau, t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=200)
    ap.add_argument("--baseline-targets", type=int, default=5)
    ap.add_argument("--starts", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()
    rows = []
    for name in FAMILIES:
        rng = np.random.default_rng([args.seed, FAMILIES.index(name)])
        layers = [random_layer(name, rng) for _ in range(args.targets)]
        ok, times, worst = 0, [], 0.0
        for tau, t in layers:
            t0 = time.perf_counter()
            try:
                fit = solve_alpha(name, t, tau)
            except NTKTheoryError:
                times.append(time.perf_counter() - t0)
                continue
            times.append(time.perf_counter() - t0)
            # independent float64 check of the returned float parameters
            th = np.asarray(fit.activation.staircase.thresholds)
            lv = np.asarray(fit.activation.staircase.levels)
            m = stair_moments_np(th[None, :] / tau, lv[None, :])
            got = np.array([m["m1"][0] ** 2 / tau**2, m["m2"][0] ** 2 / tau**4, m["w2_bar"][0] / tau**2])
            target = np.array([t.m1**2, t.m2**2, t.w2_bar])
            D = np.max(np.abs(target))
            den = np.where(np.abs(target) > 1e-20 * D, np.abs(target), D)
            r = max(fit.max_rel_residual, float(np.max(np.abs(got - target) / den)))
            worst = max(worst, fit.max_rel_residual)
            ok += fit.max_rel_residual <= 1e-12
        ours_t = float(np.median(times))
        brng = np.random.default_rng([args.seed, 99, FAMILIES.index(name)])
        b_res, b_times = [], []
        for tau, t in layers[: args.baseline_targets]:
            t0 = time.perf_counter()
            b_res.append(baseline(name, tau, t, args.starts, brng))
            b_times.append(time.perf_counter() - t0)
        b_t = float(np.median(b_times)) if b_times else math.nan
        rows.append((name, args.targets, ok, worst, ours_t, len(b_res),
                     sum(r <= 1e-12 for r in b_res), sum(r <= 1e-6 for r in b_res),
                     float(np.median(b_res)) if b_res else math.nan, b_t))
        print(rows[-1], flush=True)
    print()
    print(f"| family | ours: success (≤1e-12) | ours: worst residual | ours: median s/layer | "
          f"SLSQP×{args.starts}: targets | success ≤1e-12 | success ≤1e-6 | median best residual | "
          f"median s/layer | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (name, n, ok, worst, ot, bn, b12, b6, bres, bt) in rows:
        print(f"| {name} | {ok}/{n} | {worst:.1e} | {ot:.4f} | {bn} | {b12}/{bn} | {b6}/{bn} | "
              f"{bres:.1e} | {bt:.2f} | {bt / ot:.0f}× |")


if __name__ == "__main__":
    main()
