"""Benchmark: empirical NTK by the structured formula vs a per-sample-Jacobian baseline.

Network: 3-layer ReLU MLP, widths (2000, 2000, 1000), p = 784, float64 (docs/reference.rst §3).
Measured in one run, side by side:

* the structured NTK ``K = CK_L + Σ_ℓ (G_ℓᵀG_ℓ) ⊙ CK_{ℓ−1}`` alone (``kernels(X,
  ck=False)``, what neural-tangents computes) at n = 2000, with its flops counted by
  :func:`ntk_theory.network.ntk_flops` and the achieved GFLOP/s as a fraction of two
  same-run references, a 4000×4000 matmul (2·4000³ flops) in the network's dtype written
  into a preallocated result (the BLAS rate alone, the stricter reference) and ``A @ B``
  (which also maps and faults in a fresh 128 MB result);
* the same with all conjugate kernels returned, and the NTK alone with ``workers=1``
  (one task, BLAS-internal threading); with ``--numpy-alloc`` also the NTK alone with
  ``np.empty`` (NumPy's huge-page allocations) instead of populated mappings;
* the naive baseline — one forward/backward pass per sample, the gradient stored as a
  row of ``J`` (P = 7.57 M parameters), then ``J Jᵀ``.  At n = 2000, ``J`` alone would
  need n·P·8 B ≈ 121 GB, so the baseline is timed on ``m`` samples and scaled with its
  cost model: Jacobian rows ∝ n (measured time × n/m), and the Gram ``J Jᵀ`` as its
  ``n(n+1)P`` flops at the measured matmul rate (a skinny ``m × P`` product runs far
  below that rate, so scaling its time by ``(n/m)²`` would overstate the baseline);
* the structured NTK alone at ``--n-large`` (memory estimate and peak resident memory).

The machine is shared, so timings are interleaved: each repeat runs both references and
every variant back to back.  Reported: the best time of each, the ratio of the best
rates, the median of the per-repeat ratios (load changes between repeats but little
within one), the first repeat (a cold process), and the median system CPU time per call
(the kernel's page-fault work); the load average is printed.

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


def _timed(fn) -> tuple[float, float, object]:
    """Wall seconds, system CPU seconds (page faults, mostly) and the result of ``fn()``."""
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t
    return wall, resource.getrusage(resource.RUSAGE_SELF).ru_stime - r0.ru_stime, out


def interleaved(net: MLP, X: np.ndarray, repeats: int, numpy_alloc: bool) -> dict:
    """The references and the NTK variants timed back to back, ``repeats`` times.

    References (the network's dtype): ``np.matmul(A, B, out=C)`` into a preallocated
    ``C`` (the BLAS rate alone) and ``A @ B`` (what a NumPy user writes: it also maps and
    faults in a fresh 4000² result).  Variants: the NTK alone (``ck=False``, default
    workers, the primary figure), all CKs and the NTK, the NTK alone with ``workers=1``,
    and with ``numpy_alloc`` the NTK alone with ``np.empty`` in place of the populated
    mappings (see ``ntk_theory.network._populated_empty``).
    """
    import ntk_theory.network as network

    rng = np.random.default_rng(0)
    A = rng.standard_normal((MATMUL, MATMUL)).astype(net.dtype)
    B = rng.standard_normal((MATMUL, MATMUL)).astype(net.dtype)
    C = np.ones_like(A)
    variants = {
        "ntk": lambda: net.kernels(X, ck=False),
        "all": lambda: net.kernels(X),
        "ser": lambda: net.kernels(X, ck=False, workers=1),
    }
    if numpy_alloc:
        def with_numpy_alloc():
            keep = network._populated_empty
            network._populated_empty = lambda shape, dtype: np.empty(shape, dtype=dtype)
            try:
                return net.kernels(X, ck=False)
            finally:
                network._populated_empty = keep
        variants["npalloc"] = with_numpy_alloc
    t: dict[str, list[float]] = {k: [] for k in ("mm_out", "mm", *variants)}
    sys_s: dict[str, list[float]] = {k: [] for k in variants}
    K, flops = None, 0
    for _ in range(repeats):
        t["mm_out"].append(_timed(lambda: np.matmul(A, B, out=C))[0])
        t["mm"].append(_timed(lambda: A @ B)[0])
        for name, fn in variants.items():
            _, sy, res = _timed(fn)
            t[name].append(res.seconds)
            sys_s[name].append(sy)
            if name == "ntk":
                K, flops = res.ntk, res.flops
            del res
    T = {k: np.array(v) for k, v in t.items()}
    mm_flops = 2.0 * MATMUL**3
    out = {"K": K, "flops": flops, "t": {k: float(v.min()) for k, v in T.items()},
           "t_first": {k: float(v[0]) for k, v in T.items()},
           "sys_median": {k: float(np.median(v)) for k, v in sys_s.items()}}
    for ref in ("mm_out", "mm"):
        out[f"rate_{ref}"] = mm_flops / T[ref].min() / 1e9
        for name in variants:
            out[f"{name}/{ref}/best"] = float(T[ref].min() / mm_flops * flops / T[name].min())
            out[f"{name}/{ref}/median"] = float(np.median(T[ref] / mm_flops * flops / T[name]))
    return out


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
    ap.add_argument("--baseline-m", type=int, default=48, help="0 to skip the per-sample baseline")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--numpy-alloc", action="store_true",
                    help="also time the NTK with np.empty (huge pages) instead of populated mappings")
    args = ap.parse_args(argv)

    load_before = os.getloadavg()
    spec = gmm(P_IN, 2, seed=args.seed)
    data = sample(spec, args.n, seed=args.seed + 1)
    dtype = np.dtype(args.dtype)
    net = MLP(["relu"] * 3, WIDTHS, p=P_IN, seed=args.seed, tau0=1.0, dtype=dtype)
    r = interleaved(net, data.X, args.repeats, args.numpy_alloc)
    K, flops, best = r["K"], r["flops"], r["t"]
    load_mid = os.getloadavg()

    m = args.baseline_m
    P = net.parameter_count()
    rate_mm, r_mm = r["rate_mm_out"], r["rate_mm"]

    def row(label: str, key: str, note: str) -> tuple[str, ...]:
        rate = flops / best[key] / 1e9
        return (label, f"{best[key]:.3f}", f"{rate:.1f}",
                f"{100 * r[f'{key}/mm_out/best']:.0f}% / {100 * r[f'{key}/mm_out/median']:.0f}%",
                f"{100 * r[f'{key}/mm/best']:.0f}% / {100 * r[f'{key}/mm/median']:.0f}%",
                f"{r['sys_median'][key]:.2f}", note)

    rows = [
        (f"4000×4000 {dtype.name} matmul into a preallocated C", f"{best['mm_out']:.3f}",
         f"{rate_mm:.1f}", "reference", "", "", "BLAS alone"),
        (f"4000×4000 {dtype.name} matmul A @ B", f"{best['mm']:.3f}", f"{r['rate_mm']:.1f}", "", "reference",
         "", "fresh 128 MB result each time (first repeat "
         f"{r['t_first']['mm']:.2f} s)"),
        row(f"structured NTK alone (ck=False), n={args.n}", "ntk",
            f"{flops / 1e9:.1f} GFLOP counted (forward, backward, syrk Grams, Hadamard); "
            f"first repeat {r['t_first']['ntk']:.2f} s"),
        row(f"all CKs and the NTK, n={args.n}", "all", "four more n×n results"),
        row(f"NTK alone, workers=1 (BLAS threads only), n={args.n}", "ser", ""),
    ]
    if args.numpy_alloc:
        rows.append(row(f"NTK alone, np.empty instead of populated mappings, n={args.n}", "npalloc",
                        f"huge pages (NumPy's madvise); first repeat {r['t_first']['npalloc']:.2f} s"))
    if m:
        t_rows, t_gram, K_sub = baseline(net, data.X[:, :m], m, args.quiet)
        scale = args.n / m
        t_gram_n = args.n * (args.n + 1) * P / (rate_mm * 1e9)
        t_base = t_rows * scale + t_gram_n
        t_s = best["ntk"]
        agree = float(np.max(np.abs(K_sub - K[:m, :m])) / np.max(np.abs(K[:m, :m])))
        rows += [
            (f"per-sample Jacobian, m={m} (measured)", f"{t_rows + t_gram:.2f}", "", "", "", "",
             f"rows {t_rows:.2f} s + J Jᵀ {t_gram:.2f} s; max rel. diff vs structured {agree:.1e}"),
            (f"per-sample Jacobian, n={args.n} (scaled)", f"{t_base:.0f}", "", "", "", "",
             f"rows {t_rows * scale:.0f} s (×n/m) + J Jᵀ {t_gram_n:.0f} s (n(n+1)P flops at the matmul "
             f"rate); J would need {args.n * P * dtype.itemsize / 1e9:.0f} GB"),
        ]
    large = None
    if args.n_large:
        est = ntk_memory_bytes(args.n_large, P_IN, WIDTHS, dtype, workers=os.cpu_count() or 1, ck=False)
        data_l = sample(spec, args.n_large, seed=args.seed + 2)
        del K, r  # the n = 2000 kernels are not part of the large run's peak
        wall_l, sys_l, res = _timed(lambda: net.kernels(data_l.X, ck=False))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        large = (args.n_large, res.seconds, res.flops / res.seconds / 1e9, est, peak)
        rows.append((f"structured NTK alone, n={args.n_large}", f"{res.seconds:.1f}",
                     f"{large[2]:.1f}", f"{100 * large[2] / rate_mm:.0f}% (best matmul)",
                     f"{100 * large[2] / r_mm:.0f}% (best matmul)", f"{sys_l:.2f}",
                     f"memory estimate {est / 2**30:.1f} GiB, peak RSS {peak / 2**30:.1f} GiB"))

    print(f"Empirical NTK, 3-layer ReLU MLP, widths {WIDTHS}, p={P_IN}, {dtype.name}, P={P:,} parameters")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
          f"{args.repeats} interleaved repeats (best time of each shown)")
    from threadpoolctl import threadpool_info

    blas = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} ({i.get('num_threads')} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    print(f"BLAS: {'; '.join(blas)}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    print("load average (1/5/15 min): before " + "/".join(f"{v:.1f}" for v in load_before)
          + f", after the n={args.n} repeats " + "/".join(f"{v:.1f}" for v in load_mid)
          + ", at the end " + "/".join(f"{v:.1f}" for v in os.getloadavg()) + "\n")
    print("| computation | seconds (best) | GFLOP/s | of preallocated-matmul rate, best / median | "
          "of A @ B rate, best / median | system s (median) | notes |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    if m:
        print(f"\nspeed-up of the structured NTK over the (scaled) baseline at n={args.n}: {t_base / t_s:.0f}×")
    print("\ncommand: python3 benchmarks/bench_empirical_ntk.py "
          + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
