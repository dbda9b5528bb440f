"""Exact limiting kernels of smooth activations (issue 11): accuracy and time, before/after.

Compares the current ``ntk_theory.exact`` with the version before issue 11 (the file at a
git commit, loaded as a module; default ``34ea0b0``):

* **accuracy** — one layer of tanh, swish, GELU and sin on four inputs with squared norms
  50, 40, 50, 0.01 and correlations 0.95, −0.999, 0 and 0.31: the largest error of K, K̇ and Θ
  entries against nested adaptive QUADPACK (``scipy.integrate.quad``, tolerance 1e-14),
  whose agreement with mpmath is tested in ``tests/test_exact.py``;
* **time** — CPU seconds of ``exact_kernels(X, acts)`` (NTK) for GMM-like data with
  ``p = n/2`` and unit mean squared norm, n = 1000 and n = 4000, 1 and 2 layers of tanh and
  one of GELU, plus a run with squared norms 10 (``--scale``).

Usage::

    python benchmarks/bench_exact_kernels.py [--baseline COMMIT] [--sizes 1000,4000] [--skip-accuracy]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from ntk_theory import exact as current  # noqa: E402


def load_baseline(commit: str):
    src = subprocess.run(["git", "-C", ROOT, "show", f"{commit}:ntk_theory/exact.py"], check=True,
                         capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("ntk_theory._exact_baseline", loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "ntk_theory"
    sys.modules[spec.name] = mod  # dataclasses look their module up
    exec(compile(src, f"{commit}:ntk_theory/exact.py", "exec"), mod.__dict__)
    return mod


def references(name):
    """K, K̇ reference matrices on the test grid by nested QUADPACK (shared by both versions)."""
    import warnings

    from test_exact import _norm_grid, _phi, _quadpack_pair  # the tests' independent reference

    Phi = lambda t: 0.5 * math.erfc(-t / math.sqrt(2))  # noqa: E731
    sig = lambda t: 0.5 * (1.0 + math.tanh(0.5 * t))  # noqa: E731
    f, df = {"tanh": (math.tanh, lambda t: 0.0 if abs(t) > 350 else 1 / math.cosh(t) ** 2),
             "swish": (lambda t: t * sig(t), lambda t: sig(t) + t * sig(t) * (1 - sig(t))),
             "gelu": (lambda t: t * Phi(t), lambda t: Phi(t) + t * _phi(t)),
             "sin": (math.sin, math.cos)}[name]
    X = _norm_grid()
    K0 = X.T @ X
    K, Kd = np.zeros((4, 4)), np.zeros((4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(4):
            for j in range(i, 4):
                a, b, c = K0[i, i], K0[j, j], K0[i, j]
                K[i, j] = K[j, i] = _quadpack_pair(f, f, a, b, c)
                Kd[i, j] = Kd[j, i] = _quadpack_pair(df, df, a, b, c)
    return X, K0, K, Kd


def accuracy(mod, name, ref):
    X, K0, K, Kd = ref
    ek = mod.exact_kernels(X, [name], centering="none")
    Th = K + K0 * Kd
    return {"K": float(np.abs(ek.K[1] - K).max()), "Kdot": float(np.abs(ek.Kdot[0] - Kd).max()),
            "Theta": float(np.abs(ek.Theta[1] - Th).max()),
            "diag Theta rel": float(np.abs(np.diag(ek.Theta[1]) / np.diag(Th) - 1).max())}


def data(n, scale, seed=0, mean=1.0):
    """Two classes, p = n/2; ``mean`` = class-mean norm over noise norm (same-class
    correlation about mean²/(1 + mean²): 0.5 for 1, 0.8 for 2 — then half the pairs are
    near the |ρ| = 0.8 switch to the expensive certified pair rule)."""
    rng = np.random.default_rng(seed)
    p = n // 2
    mu = rng.standard_normal((p, 2)) * mean / math.sqrt(p)
    lab = rng.integers(0, 2, n)
    X = mu[:, lab] + rng.standard_normal((p, n)) / math.sqrt(p)
    return X * math.sqrt(scale / np.mean(np.sum(X * X, axis=0)))


def timing(mod, X, acts):
    t0 = time.process_time()
    mod.exact_kernels(X, acts)
    return time.process_time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="34ea0b0")
    ap.add_argument("--sizes", default="1000,4000")
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    base = load_baseline(args.baseline)
    print(f"command: python benchmarks/bench_exact_kernels.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; numpy {np.__version__}; "
          f"cores {os.cpu_count()}; load average at start {os.getloadavg()[0]:.2f}")
    if not args.skip_accuracy:
        print("\n| activation | version | max err K | max err K̇ | max err Θ | max rel err diag Θ |")
        print("|---|---|---|---|---|---|")
        for name in ("tanh", "swish", "gelu", "sin"):
            ref = references(name)
            for label, mod in (("before", base), ("after", current)):
                w = accuracy(mod, name, ref)
                print(f"| {name} | {label} | {w['K']:.1e} | {w['Kdot']:.1e} | {w['Theta']:.1e} | "
                      f"{w['diag Theta rel']:.1e} |", flush=True)
    print("\n| n | scale ‖x‖² | class mean | activations | before CPU s | after CPU s | after/before |")
    print("|---|---|---|---|---|---|---|")
    for n in (int(v) for v in args.sizes.split(",")):
        for scale, acts, mean in ((1.0, ["tanh"], 1.0), (1.0, ["gelu"], 1.0), (10.0, ["tanh"], 1.0),
                                  (1.0, ["tanh"], 2.0)):
            if mean > 1 and n > 300:
                continue  # the slow case (many strongly correlated pairs) only at n = 300
            X = data(n, scale, mean=mean)
            tb = timing(base, X, acts)
            ta = timing(current, X, acts)
            print(f"| {n} | {scale:g} | {mean:g} | {','.join(acts)} | {tb:.2f} | {ta:.2f} | {ta / tb:.2f} |",
                  flush=True)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
