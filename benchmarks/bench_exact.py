"""Certified exact kernels of smooth activations on strongly correlated data: time and accuracy.

For tanh and swish, 1 and 3 layers, on two-class GMM data (``p = n/2``, unit mean squared
norm, class means twice the noise: same-class correlations ρ ≈ 0.8, the regime where the
previous version sent a third of all pairs through its 2-D tensor rule):

* **time** — CPU seconds of one ``exact_kernels(X, acts)`` call (CK and NTK) with the current
  ``ntk_theory.exact`` and with the version at ``--baseline`` (default ``main``, loaded from git
  into a separate interpreter so that a run past ``--baseline-timeout`` seconds is stopped and
  reported as "> timeout"; the limit is on CPU time, RLIMIT_CPU); the baseline is timed
  only at the sizes in ``--baseline-sizes``.
* **accuracy** — a sample of entries (the most correlated off-diagonal pair and one
  diagonal entry) of K_ℓ and K̇_ℓ at the first and the last layer against an
  mpmath reference: the layer map ``E[(σ(u) − c)(σ(v) − c)]`` (and ``E[σ'(u)σ'(v)]``) at the
  computed ``K_{ℓ−1}`` entries by nested ``mpmath.quad`` (adaptive Gauss–Legendre, 17
  digits) — an independent method from the package's Hermite/Mehler and composite rules.

Usage::

    python benchmarks/bench_exact.py [--sizes 300,1200] [--baseline main] \\
        [--baseline-sizes 300] [--baseline-timeout 600]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from bench_exact_kernels import data, load_baseline  # noqa: E402

CONFIGS = ((["tanh"], "tanh"), (["tanh"] * 3, "tanh×3"), (["swish"], "swish"), (["swish"] * 3, "swish×3"))


def gmm(n):
    """Class means twice the noise: same-class ρ ≈ 0.8 (0.8+ for a good part of the pairs)."""
    return data(n, 1.0, seed=0, mean=2.0)


def cpu_time(mod, X, acts):
    t0 = time.process_time()
    ek = mod.exact_kernels(X, acts)
    return time.process_time() - t0, ek


def child(args):
    """Run the baseline once in this (separate) interpreter and print its CPU seconds."""
    base = load_baseline(args.baseline)
    X = gmm(args.child_n)
    t, _ = cpu_time(base, X, args.child_acts.split(","))
    print(f"{t:.3f}")


def baseline_seconds(args, n, acts):
    cmd = [sys.executable, os.path.abspath(__file__), "--baseline", args.baseline, "--child-n", str(n),
           "--child-acts", ",".join(acts)]
    import resource

    def limit_cpu():  # the child is killed (SIGXCPU) after --baseline-timeout CPU seconds
        t = math.ceil(args.baseline_timeout)
        resource.setrlimit(resource.RLIMIT_CPU, (t, t + 5))

    out = subprocess.run(cmd, capture_output=True, text=True, check=False, preexec_fn=limit_cpu)
    if out.returncode != 0:
        if out.returncode in (-24, -9):  # SIGXCPU / SIGKILL from the CPU limit
            return None
        raise RuntimeError(out.stderr)
    return float(out.stdout.strip().splitlines()[-1])


def mp_pair(name, derivative, a, b, c, center):
    """E[(σ(u) − c)(σ(v) − c)] or E[σ'(u)σ'(v)] for (u, v) ~ N(0, [[a, c], [c, b]]) in mpmath."""
    import mpmath as mp

    mp.mp.dps = 17

    def sig(t):
        return 1 / (1 + mp.exp(-t))

    f = {("tanh", False): lambda t: mp.tanh(t) - center,
         ("tanh", True): lambda t: mp.sech(t) ** 2,
         ("swish", False): lambda t: t * sig(t) - center,
         ("swish", True): lambda t: sig(t) * (1 + t * (1 - sig(t)))}[(name, derivative)]
    a, b, c = mp.mpf(a), mp.mpf(b), mp.mpf(c)
    cuts = [-10, -3, 0, 3, 10]
    if a == b == c:
        return float(mp.quad(lambda x: f(mp.sqrt(a) * x) ** 2 * mp.npdf(x), cuts, method="gauss-legendre"))
    rho = c / mp.sqrt(a * b)
    s = mp.sqrt(1 - rho * rho)

    def inner(x):
        return mp.quad(lambda y: f(mp.sqrt(b) * (rho * x + s * y)) * mp.npdf(y), cuts, method="gauss-legendre")

    return float(mp.quad(lambda x: f(mp.sqrt(a) * x) * inner(x) * mp.npdf(x), cuts, method="gauss-legendre"))


def sample_errors(ek, acts):
    """Largest |error| of the sampled K and K̇ entries at the first and last layer."""
    worst = 0.0
    name = acts[0]
    for layer in sorted({1, len(acts)}):
        Kp = ek.K[layer - 1]
        d = np.sqrt(np.diag(Kp))
        R = Kp / np.outer(d, d)
        np.fill_diagonal(R, 0.0)
        i_hi, j_hi = np.unravel_index(np.argmax(np.abs(R)), R.shape)
        for i, j in ((i_hi, j_hi), (0, 0)):
            a, b, c = Kp[i, i], Kp[j, j], Kp[i, j]
            worst = max(worst, abs(ek.K[layer][i, j] - mp_pair(name, False, a, b, c, ek.centering[layer - 1])),
                        abs(ek.Kdot[layer - 1][i, j] - mp_pair(name, True, a, b, c, 0.0)))
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="300,1200")
    ap.add_argument("--baseline", default="main")
    ap.add_argument("--baseline-sizes", default="300")
    ap.add_argument("--baseline-timeout", type=float, default=600.0, help="CPU seconds")
    ap.add_argument("--child-n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child-acts", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_n:
        return child(args)
    from ntk_theory import exact as current

    base_sizes = {int(v) for v in args.baseline_sizes.split(",") if v}
    print(f"command: python benchmarks/bench_exact.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; numpy {np.__version__}; "
          f"cores {os.cpu_count()}; load average at start {os.getloadavg()[0]:.2f}")
    print("\n| n | activations | pairs with ρ > 0.8 | before CPU s | after CPU s | before/after "
          "| max err vs mpmath (sample) |")
    print("|---|---|---|---|---|---|---|")
    for n in (int(v) for v in args.sizes.split(",")):
        X = gmm(n)
        K0 = X.T @ X
        d = np.sqrt(np.diag(K0))
        R = (K0 / np.outer(d, d))[~np.eye(n, dtype=bool)]
        frac = float(np.mean(R > 0.8))
        for acts, label in CONFIGS:
            ta, ek = cpu_time(current, X, acts)
            err = sample_errors(ek, acts)
            if n in base_sizes:
                tb = baseline_seconds(args, n, acts)
                before = f"> {args.baseline_timeout:.0f}" if tb is None else f"{tb:.2f}"
                ratio = f"> {args.baseline_timeout / ta:.0f}" if tb is None else f"{tb / ta:.0f}"
            else:
                before, ratio = "not run", "–"
            print(f"| {n} | {label} | {frac:.2f} | {before} | {ta:.2f} | {ratio} | {err:.1e} |", flush=True)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
