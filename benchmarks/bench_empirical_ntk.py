"""Benchmark: empirical NTK by the structured formula vs a per-sample-Jacobian baseline.

Network: 3-layer ReLU MLP, widths (2000, 2000, 1000), p = 784, float64 (docs/reference.rst §3).
Measured in one run, side by side:

* the structured NTK ``K = CK_L + Σ_ℓ (G_ℓᵀG_ℓ) ⊙ CK_{ℓ−1}`` at n = 2000, with its flops
  counted by :func:`ntk_theory.network.ntk_flops` and the achieved GFLOP/s as a fraction
  of a 4000×4000 float64 matmul (2·4000³ flops) timed in the same process;
* the naive baseline — one forward/backward pass per sample, the gradient stored as a
  row of ``J`` (P = 7.57 M parameters), then ``J Jᵀ``.  At n = 2000, ``J`` alone would
  need n·P·8 B ≈ 121 GB, so the baseline is timed on ``m`` samples and scaled with its
  cost model: Jacobian rows ∝ n (measured time × n/m), and the Gram ``J Jᵀ`` as its
  ``n(n+1)P`` flops at the measured matmul rate (a skinny ``m × P`` product runs far
  below that rate, so scaling its time by ``(n/m)²`` would overstate the baseline);
* the structured NTK at n = 8000 (memory estimate and peak resident memory).

The machine is shared, so timings are interleaved: each repeat times the matmul, the
structured NTK (default task-level threads) and the same NTK with ``workers=1`` (one
task, BLAS-internal threading: the previous design) back to back.  Reported: the best
time of each, the ratio of the best rates, and the median of the per-repeat ratios
(load changes between repeats but little within one); the load average is printed.

Usage::

    python3 benchmarks/bench_empirical_ntk.py [--n 2000] [--n-large 8000] [--baseline-m 48]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np
from tqdm.auto import tqdm

from ntk_theory.data import gmm, sample
from ntk_theory.network import MLP, ntk_memory_bytes, per_sample_jacobian

WIDTHS = (2000, 2000, 1000)
P_IN = 784


MATMUL = 4000


def interleaved(net: MLP, X: np.ndarray, repeats: int) -> dict:
    """Matmul, threaded NTK and ``workers=1`` NTK timed back to back, ``repeats`` times."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((MATMUL, MATMUL))
    B = rng.standard_normal((MATMUL, MATMUL))
    mm_flops = 2.0 * MATMUL**3
    t_mm, t_par, t_ser, K, flops = [], [], [], None, 0
    for _ in range(repeats):
        t = time.perf_counter()
        A @ B
        t_mm.append(time.perf_counter() - t)
        res = net.kernels(X)
        t_par.append(res.seconds)
        K, flops = res.ntk, res.flops
        t_ser.append(net.kernels(X, workers=1).seconds)
    t_mm, t_par, t_ser = map(np.array, (t_mm, t_par, t_ser))
    return {
        "t_mm": float(t_mm.min()), "rate_mm": mm_flops / t_mm.min() / 1e9,
        "t_par": float(t_par.min()), "t_ser": float(t_ser.min()),
        "ratio_par_best": float(t_mm.min() / mm_flops * flops / t_par.min()),
        "ratio_ser_best": float(t_mm.min() / mm_flops * flops / t_ser.min()),
        "ratio_par_median": float(np.median(t_mm / mm_flops * flops / t_par)),
        "ratio_ser_median": float(np.median(t_mm / mm_flops * flops / t_ser)),
        "K": K, "flops": flops,
    }


def baseline(net: MLP, X: np.ndarray, m: int, quiet: bool) -> tuple[float, float, np.ndarray]:
    """Seconds for the ``m`` Jacobian rows and for ``J Jᵀ``; returns the ``m×m`` NTK."""
    P = net.parameter_count()
    J = np.empty((m, P))
    t0 = time.perf_counter()
    step = 8
    for j0 in tqdm(range(0, m, step), desc="per-sample Jacobian", disable=quiet or not sys.stderr.isatty()):
        j1 = min(m, j0 + step)
        J[j0:j1] = per_sample_jacobian(net, X[:, j0:j1])
    t_rows = time.perf_counter() - t0
    t1 = time.perf_counter()
    K = J @ J.T
    t_gram = time.perf_counter() - t1
    return t_rows, t_gram, K


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-large", type=int, default=8000, help="0 to skip the large run")
    ap.add_argument("--baseline-m", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    load_before = os.getloadavg()
    spec = gmm(P_IN, 2, seed=args.seed)
    data = sample(spec, args.n, seed=args.seed + 1)
    net = MLP(["relu"] * 3, WIDTHS, p=P_IN, seed=args.seed, tau0=1.0)
    r = interleaved(net, data.X, args.repeats)
    t_mm, rate_mm, t_s, K, flops = r["t_mm"], r["rate_mm"], r["t_par"], r["K"], r["flops"]
    rate_s = flops / t_s / 1e9
    rate_1 = flops / r["t_ser"] / 1e9
    load_mid = os.getloadavg()

    m = args.baseline_m
    t_rows, t_gram, K_sub = baseline(net, data.X[:, :m], m, args.quiet)
    scale = args.n / m
    t_gram_n = args.n * (args.n + 1) * net.parameter_count() / (rate_mm * 1e9)
    t_base = t_rows * scale + t_gram_n
    agree = float(np.max(np.abs(K_sub - K[:m, :m])) / np.max(np.abs(K[:m, :m])))
    P = net.parameter_count()

    rows = [
        ("4000×4000 float64 matmul", f"{t_mm:.3f}", f"{rate_mm:.1f}", "100%", "reference"),
        (f"structured NTK, n={args.n}", f"{t_s:.2f}", f"{rate_s:.1f}", f"{100 * rate_s / rate_mm:.0f}%",
         f"{flops / 1e9:.1f} GFLOP counted (forward, backward, syrk Grams, Hadamard); "
         f"median of per-repeat ratios {100 * r['ratio_par_median']:.0f}%"),
        (f"same, workers=1 (BLAS threads only), n={args.n}", f"{r['t_ser']:.2f}", f"{rate_1:.1f}",
         f"{100 * rate_1 / rate_mm:.0f}%", f"median of per-repeat ratios {100 * r['ratio_ser_median']:.0f}%"),
        (f"per-sample Jacobian, m={m} (measured)", f"{t_rows + t_gram:.2f}", "", "",
         f"rows {t_rows:.2f} s + J Jᵀ {t_gram:.2f} s; max rel. diff vs structured {agree:.1e}"),
        (f"per-sample Jacobian, n={args.n} (scaled)", f"{t_base:.0f}", "", "",
         f"rows {t_rows * scale:.0f} s (×n/m) + J Jᵀ {t_gram_n:.0f} s (n(n+1)P flops at the matmul rate); "
         f"J would need {args.n * P * 8 / 1e9:.0f} GB"),
    ]
    large = None
    if args.n_large:
        est = ntk_memory_bytes(args.n_large, P_IN, WIDTHS, np.float64)
        data_l = sample(spec, args.n_large, seed=args.seed + 2)
        res = net.kernels(data_l.X)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        large = (args.n_large, res.seconds, res.flops / res.seconds / 1e9, est, peak)
        rows.append((f"structured NTK, n={args.n_large}", f"{res.seconds:.1f}",
                     f"{large[2]:.1f}", f"{100 * large[2] / rate_mm:.0f}%",
                     f"memory estimate {est / 2**30:.1f} GiB, peak RSS {peak / 2**30:.1f} GiB"))

    print(f"Empirical NTK, 3-layer ReLU MLP, widths {WIDTHS}, p={P_IN}, float64, P={P:,} parameters")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
          f"{args.repeats} interleaved repeats (best time of each shown)")
    print("load average (1/5/15 min): before " + "/".join(f"{v:.1f}" for v in load_before)
          + f", after the n={args.n} repeats " + "/".join(f"{v:.1f}" for v in load_mid)
          + ", at the end " + "/".join(f"{v:.1f}" for v in os.getloadavg()) + "\n")
    print("| computation | seconds | GFLOP/s | of matmul | notes |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\nspeed-up of the structured NTK over the (scaled) baseline at n={args.n}: {t_base / t_s:.0f}×")
    print("\ncommand: python3 benchmarks/bench_empirical_ntk.py "
          + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
