"""Compressed vs dense forward pass at ε = 0.9 (issue 4, "Performance"), side by side, plus the
memory ratios of docs/reference.rst §6.

Forms timed on the same data (n samples, widths d_0 → d_1 → … → d_L), 3 layers:

* dense float32: Gaussian weights, BLAS matmul, ReLU;
* compressed, dense-stored float32: the ternary matrix as a float32 array (same BLAS cost);
* compressed, sparse CSR float32 (scipy.sparse, 10% non-zeros): ``W @ X`` as a sparse product;
* compressed, sparse sign-split: ``W = s·(P − M)`` with boolean CSR ``P, M`` (additions only).

The staircase activation and its centering are applied in each compressed form.  Best of
``--repeat`` runs (the machine is shared).

    python3 benchmarks/bench_compressed_forward.py [--n 2000] [--widths 784 2000 2000 1000]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np
import scipy
import scipy.sparse as sps

from ntk_theory.compress import bit_accounting, compress_network, ternary_weights


def best(f, repeat):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t0)
    return min(ts), out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--widths", type=int, nargs="+", default=[784, 2000, 2000, 1000])
    ap.add_argument("--eps", type=float, default=0.9)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(f"$ python3 {' '.join(sys.argv)}")
    print(f"date {datetime.date.today()}, python {platform.python_version()}, numpy {np.__version__}, "
          f"scipy {scipy.__version__}, cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    w = a.widths
    L = len(w) - 1
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((w[0], a.n)) / np.sqrt(w[0])).astype(np.float32)
    res = compress_network(["relu"] * L, 1.0)
    tw = ternary_weights(w, a.eps, 1)
    dense_W = [rng.standard_normal((w[i + 1], w[i]), dtype=np.float32) for i in range(L)]
    tern_W = tw.matrices(np.float32)
    csr = [sps.csr_matrix(M) for M in tern_W]
    split = [(sps.csr_matrix(l.signs > 0, dtype=np.float32), sps.csr_matrix(l.signs < 0, dtype=np.float32),
              np.float32(l.scale)) for l in tw.layers]
    fits = res.layers
    # staircase σ_T(t) = a(1_{t<s1} + 1_{t>s2}) evaluated with comparisons
    stair = [(np.float32(f.params["s1"]), np.float32(f.params["s2"]), np.float32(f.params["a"]),
              np.float32(f.mean)) for f in fits]

    def act_c(H, l, d):
        s1, s2, amp, c = stair[l]
        return ((amp * ((H < s1) | (H > s2)).astype(np.float32)) - c) / np.float32(np.sqrt(d))

    def fwd_dense():
        H = X
        for l, W in enumerate(dense_W):
            H = np.maximum(W @ H, 0) / np.float32(np.sqrt(w[l + 1]))
        return H

    def fwd_tern(mats):
        def f():
            H = X
            for l, W in enumerate(mats):
                H = act_c(np.asarray(W @ H), l, w[l + 1])
            return H
        return f

    def fwd_split():
        H = X
        for l, (P, M, s) in enumerate(split):
            H = act_c(s * (P @ H - M @ H), l, w[l + 1])
        return H

    rows = [("dense float32 (BLAS)", fwd_dense), ("compressed, dense-stored float32 (BLAS)", fwd_tern(tern_W)),
            ("compressed, CSR float32", fwd_tern(csr)), ("compressed, sign-split CSR (adds only)", fwd_split)]
    out = {}
    print(f"\nn = {a.n}, widths {w}, ε = {a.eps}, best of {a.repeat}\n")
    print("| forward pass | seconds | vs dense |\n|---|---|---|")
    t_dense = None
    for name, f in rows:
        t, H = best(f, a.repeat)
        out[name] = H
        t_dense = t if t_dense is None else t_dense
        print(f"| {name} | {t:.3f} | {t / t_dense:.2f}× |")
    ref = out["compressed, dense-stored float32 (BLAS)"]
    for name in ("compressed, CSR float32", "compressed, sign-split CSR (adds only)"):
        # float32 sums in different orders can flip a pre-activation sitting on a threshold
        assert np.mean(np.abs(out[name] - ref) > 1e-3) < 1e-3, name
    n_act = sum(len(f.params) for f in fits)
    bits = bit_accounting(tw, n_act)
    mem = {"dense float32": bits["dense_float32"], "packed 2-bit": bits["packed"], "entropy bound": bits["entropy"],
           "seed": bits["seed"], "CSR float32 (values + int32 indices + row pointers)":
           8.0 * sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in csr)}
    print("\n| weight storage | bits | dense / this |\n|---|---|---|")
    for k, v in mem.items():
        print(f"| {k} | {v:.4g} | {bits['dense_float32'] / v:.3g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
