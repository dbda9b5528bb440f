"""NN-BCD (``ntk_theory.bcd``): time per iteration vs the size of the network.

For each network (data set, hidden widths) this times ``--iterations`` NN-BCD sweeps at
sparsity 0.9 (and optionally TT rank ``--tt-rank``) and, in the same run, the
baseline: one full-batch gradient step of the same MLP (forward + backward pass of
the squared loss in NumPy, plus the magnitude-pruning projection) — so "one NN-BCD
sweep costs r gradient steps" is a same-run ratio that the machine's load cancels.
Both run on one BLAS thread (what ``train_bcd`` uses).  Reported: CPU seconds per
iteration (``time.process_time``; the machine is shared, wall time is also shown),
the ratio, the flop estimate of a sweep and the achieved GFLOP/s.

    python3 benchmarks/bench_bcd.py [--iterations 3] [--tt-rank 8] [--quick] [--case mnist:2000-2000-1100]

``--case DATA:H1-H2-...`` runs only the listed networks (e.g. the paper-sized one alone).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from threadpoolctl import threadpool_limits  # noqa: E402

from ntk_theory.bcd import prune, train_bcd  # noqa: E402
from ntk_theory.experiment2 import load_split  # noqa: E402

CASES = [
    ("digits", 1347, 450, (100,)),
    ("digits", 1347, 450, (300, 100)),
    ("digits", 1347, 450, (1000, 300)),
    ("mnist", 4000, 1000, (300, 100)),
    ("mnist", 4000, 1000, (1000, 1000)),
    ("mnist", 4000, 1000, (2000, 2000, 1100)),
]
QUICK = CASES[:2]


def sweep_flops(p: int, n: int, hidden: tuple[int, ...], K: int) -> float:
    """Leading flop count of one sweep: per layer the products U Vᵀ, W V (2·d_out·d_in·n
    each), the Gram V Vᵀ (d_in² n) and its Cholesky (d_in³/3) with d_out right-hand
    sides (2·d_out·d_in²); per hidden layer the system (ρWᵀW + γI) of size d (2 d² d_next +
    d³/3) with n right-hand sides (2 d² n) and Wᵀ U (2 d d_next n); the objective (2 d_out d_in n)."""
    w = (p,) + tuple(hidden) + (K,)
    f = 0.0
    for l, (a, b) in enumerate(zip(w[:-1], w[1:])):
        f += 3 * 2 * b * a * n + (a * a * n if l else 0) + a ** 3 / 3 + 2 * b * a * a
        if l < len(w) - 2:
            c = w[l + 2]
            f += 2 * b * b * c + b ** 3 / 3 + 2 * b * b * n + 2 * b * c * n
    return f


def gradient_step(Ws: list[np.ndarray], X: np.ndarray, Y: np.ndarray, lr: float, eps: float) -> None:
    """One full-batch gradient step of ½‖f(X) − Y‖² with magnitude pruning (the baseline)."""
    acts = [X]
    for l, W in enumerate(Ws):
        Z = W @ acts[-1]
        acts.append(Z if l == len(Ws) - 1 else np.maximum(Z, 0.0))
    G = acts[-1] - Y
    for l in range(len(Ws) - 1, -1, -1):
        gW = G @ acts[l].T
        if l:
            G = (Ws[l].T @ G) * (acts[l] > 0)
        Ws[l] = prune(Ws[l] - lr * gW, eps)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--tt-rank", type=int, default=0, help="also time TT mode at this rank (0: no)")
    ap.add_argument("--quick", action="store_true", help="the two digits networks only")
    ap.add_argument("--case", action="append", default=None, metavar="DATA:H1-H2-...",
                    help="only this network (repeatable), e.g. mnist:2000-2000-1100")
    a = ap.parse_args()
    cases = QUICK if a.quick else CASES
    if a.case:
        known = {f"{c[0]}:{'-'.join(map(str, c[3]))}": c for c in CASES}
        unknown = [c for c in a.case if c not in known]
        if unknown:
            print(f"error: unknown case(s) {', '.join(unknown)} (choose from {', '.join(known)})", file=sys.stderr)
            return 2
        cases = [known[c] for c in a.case]
    print(f"$ python3 {' '.join(sys.argv)}")
    print(f"date {datetime.date.today()}, python {platform.python_version()}, numpy {np.__version__}, "
          f"{os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print("| data | n | widths | mode | CPU s / sweep | wall s / sweep | GD step CPU s | sweep / GD step "
          "| GFLOP / sweep | GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for data, n_tr, n_te, hidden in cases:
        Xtr, ytr, _, _ = load_split(data, n_tr, n_te, seed=0)
        p, K = Xtr.shape[0], 10
        modes = [("prune 0.9", dict(sparsity=0.9))]
        if a.tt_rank:
            modes.append((f"TT rank {a.tt_rank}", dict(tt_rank=a.tt_rank, sparsity=None)))
        for label, kw in modes:
            c0 = time.process_time()
            r = train_bcd(Xtr, ytr, hidden, iterations=a.iterations, seed=0, progress=False, **kw)
            cpu = (time.process_time() - c0) / a.iterations
            wall = r.seconds / a.iterations
            # baseline: same network, same data, one thread
            rng = np.random.default_rng(0)
            w = (p,) + hidden + (K,)
            Ws = [rng.standard_normal((o, i)) * np.sqrt(2 / i) for i, o in zip(w[:-1], w[1:])]
            Y = np.zeros((K, Xtr.shape[1]))
            Y[ytr, np.arange(Xtr.shape[1])] = 1
            with threadpool_limits(1):
                g0 = time.process_time()
                for _ in range(a.iterations):
                    gradient_step(Ws, Xtr, Y, 1e-4, 0.9)
                gcpu = (time.process_time() - g0) / a.iterations
            fl = sweep_flops(p, Xtr.shape[1], hidden, K) / 1e9
            print(f"| {data} | {Xtr.shape[1]} | {'-'.join(map(str, w))} | {label} | {cpu:.3f} | {wall:.3f} | "
                  f"{gcpu:.4f} | {cpu / gcpu:.1f} | {fl:.2f} | {fl / cpu:.1f} |", flush=True)
    print()
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
