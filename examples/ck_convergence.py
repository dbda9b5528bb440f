"""Finite-width CK against its infinite-width limit: the O(√(n/d)) gap
===================================================================

The theorems of docs/reference.rst §5 approximate the *limiting* kernels (widths → ∞ first,
docs/reference.rst §3).  How far is one real network's conjugate kernel CK = Σ_1ᵀΣ_1 from its
limit K_∞ at finite width d?  This script measures ``‖CK − K_∞‖`` (operator norm)
against ``‖K_∞‖`` for one centered ReLU layer on two-class GMM data
(:func:`ntk_theory.data.gmm` with its defaults: ‖μ_a‖ = 2, C_a = s_a I with
s_a = 1 + 2a/√p; n = 1200, p = 800 — the sizes of docs/reference.rst §3) for a sweep of widths
d and several weight seeds, with the exact arc-cosine kernel
(:func:`ntk_theory.exact.exact_kernels`) as K_∞ and the NumPy
network :class:`ntk_theory.network.MLP` for CK.

The gap shrinks like √(n/d): the script fits ``‖CK − K_∞‖ ≈ C √(n/d)`` on the widest
half of the sweep and prints C; the figure ``ck_convergence.png`` in ``--out`` (default:
current directory) shows the measured gap (mean ± std over seeds) and the fit.

Full size (the figure on docs/theory.rst; a few minutes)::

    python3 examples/ck_convergence.py --out docs/figures

``--quick`` (the docs gallery, CI): n = 300, p = 200, d = 150 … 1200, 2 seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ntk_theory.data import gmm, population_statistics, sample
from ntk_theory.exact import exact_kernels
from ntk_theory.network import MLP

FULL = dict(n=1200, p=800, widths=[750, 1500, 3000, 6000, 12000], seeds=3)
QUICK = dict(n=300, p=200, widths=[150, 300, 600, 1200], seeds=2)


def opnorm(A: np.ndarray) -> float:
    """Operator norm of a symmetric matrix (largest |eigenvalue|)."""
    w = np.linalg.eigvalsh(A)
    return float(max(abs(w[0]), abs(w[-1])))


def measure(n: int, p: int, widths: list[int], seeds: int) -> tuple[float, np.ndarray]:
    """``‖K_∞‖`` and the array ``gap[width, seed] = ‖CK − K_∞‖``."""
    data = sample(gmm(p, 2, seed=1), n, seed=2)
    stats = population_statistics(data)
    K = exact_kernels(data.X, ["relu"], tau0=stats.tau0, ntk=False).ck
    gaps = np.empty((len(widths), seeds))
    for i, d in enumerate(widths):
        for s in range(seeds):
            S = MLP(["relu"], [d], p, seed=s, tau0=stats.tau0).forward(data.X)[-1]
            gaps[i, s] = opnorm(S.T @ S - K)
    return opnorm(K), gaps


def figure(n: int, p: int, widths: list[int], norm_K: float, gaps: np.ndarray, C: float, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    d = np.asarray(widths, dtype=float)
    ax.errorbar(d, gaps.mean(axis=1), yerr=gaps.std(axis=1), marker="o", capsize=3,
                label="‖CK − K_∞‖ (mean ± std over seeds)")
    ax.plot(d, C * np.sqrt(n / d), ":", color="0.3", label=f"fit {C:.2f} √(n/d)")
    ax.axhline(norm_K, ls="--", color="tab:red", label=f"‖K_∞‖ = {norm_K:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width d")
    ax.set_ylabel("operator norm")
    ax.set_title(f"one centered ReLU layer, 2-class GMM, n = {n}, p = {p}")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description="Finite-width CK vs its limit (docs/reference.rst §3)")
    ap.add_argument("--quick", action="store_true", help="CI settings: n = 300, p = 200, 4 widths, 2 seeds")
    ap.add_argument("--out", default=".", help="directory for the PNG figure (default: current directory)")
    args = ap.parse_args()
    cfg = QUICK if args.quick else FULL
    n, p, widths, seeds = cfg["n"], cfg["p"], cfg["widths"], cfg["seeds"]
    t0 = time.perf_counter()
    norm_K, gaps = measure(n, p, widths, seeds)
    wide = slice(len(widths) // 2, None)
    rate = np.sqrt(n / np.asarray(widths, dtype=float))
    C = float(np.sum(gaps.mean(axis=1)[wide] * rate[wide]) / np.sum(rate[wide] ** 2))  # least squares
    print(f"one centered ReLU layer, 2-class GMM (gmm(p, 2, seed=1), sample seed 2), n = {n}, p = {p}")
    print(f"‖K_∞‖ = {norm_K:.4f}\n")
    print("|     d | ‖CK − K_∞‖ mean | std    | ‖CK − K_∞‖/‖K_∞‖ | √(n/d) | gap/√(n/d) |")
    print("|------:|---------------:|-------:|-----------------:|-------:|-----------:|")
    for d, g, r in zip(widths, gaps, rate):
        print(f"| {d:5d} | {g.mean():14.4f} | {g.std():6.4f} | {g.mean() / norm_K:16.4f} | {r:6.4f} | "
              f"{g.mean() / r:10.4f} |")
    print(f"\nfit on the widest half: ‖CK − K_∞‖ ≈ {C:.3f} √(n/d)   ({time.perf_counter() - t0:.0f} s)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figure(n, p, widths, norm_K, gaps, C, out / "ck_convergence.png")
    print(f"figure: {out / 'ck_convergence.png'}")
    # the gap must shrink with the width (the content of the O(√(n/d)) statement)
    means = gaps.mean(axis=1)
    if not np.all(np.diff(means) < 0):
        print("FAILED: ‖CK − K_∞‖ does not decrease with the width")
        return 1
    return 0


if __name__ == "__main__":
    # exit status only on failure: the docs gallery runs this file in-process (no SystemExit)
    status = main()
    if status:
        if "sphinx_gallery" in sys.modules:  # in the docs build a SystemExit would end it silently
            raise RuntimeError(f"example ck_convergence.py failed with exit status {status} "
                               "(its error message is on stderr above)")
        raise SystemExit(status)
