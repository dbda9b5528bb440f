"""Finite-width spectra: predicted vs empirical conjugate kernels
==============================================================

The infinite-width limit describes none of the spectra a real network has at n/d ≳ 0.5.
:func:`ntk_theory.finite_width.predict_spectrum` predicts them: the generalized
Marchenko–Pastur law with the exact limiting kernel as population matrix, propagated
layer by layer (docs/finite_width.rst).  This script draws, on a 2-class GMM
(docs/reference.rst §2), the empirical eigenvalue histogram of one network with N(0, 1)
weights, the predicted density and the infinite-width limit:

* ``finite_width_dense.png`` — one ReLU layer and three tanh layers across n/d;
* ``finite_width_compressed.png`` — a σ_T-compressed ReLU layer (docs/reference.rst §6)
  with Gaussian weights and with sparse ternary weights at ε = 0.9 and 0.99 (the
  prediction assumes Gaussian weights);
* ``finite_width_failure.png`` — where the prediction is weakest: three uncentered ReLU
  layers (the bulk's top edge) and the one-layer NTK at n/d = 4.

Full size (the figures of docs/finite_width.rst, n = 800, a few minutes)::

    python3 examples/finite_width_spectra.py --out docs/figures

``--quick`` (docs gallery, CI): n = 160, n/d ∈ {1, 4}, a coarser density grid.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ntk_theory.compress import compress_network, ternary_weights
from ntk_theory.data import gmm, population_statistics, sample
from ntk_theory.finite_width import predict_spectrum, w1_sorted
from ntk_theory.network import MLP
from ntk_theory.verify import compressed_activations, compressed_centering

FULL = dict(n=800, ratios=[0.5, 1.0, 4.0, 8.0], grid=1200)
QUICK = dict(n=160, ratios=[1.0, 4.0], grid=300)


def _figure(cols: int, rows: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.3 * cols, 2.8 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False)


def panel(ax, emp: np.ndarray, spec, title: str) -> None:
    """Histogram of the positive empirical eigenvalues (mass 1/n each), predicted density, limit."""
    n = emp.size
    pos = emp[emp > 1e-9 * emp.max()]
    hi = float(np.quantile(emp, 0.99)) * 1.15
    bins = np.linspace(0.0, hi, 50)
    w = np.full(pos.size, 1.0 / (n * (bins[1] - bins[0])))
    h, _, _ = ax.hist(pos[pos <= hi], bins=bins, weights=w[pos <= hi], color="0.75", label="empirical (one network)")
    sel = spec.grid <= hi
    ax.plot(spec.grid[sel], spec.density[sel], color="tab:red", lw=1.4, label="finite-width prediction")
    lim = spec.limit_eigenvalues
    ax.hist(lim[lim <= hi], bins=bins, weights=np.full(int(np.sum(lim <= hi)), 1.0 / (n * (bins[1] - bins[0]))),
            histtype="step", color="tab:blue", lw=1.0, label="infinite-width limit")
    ax.set_ylim(0.0, 1.4 * float(np.max(h)))  # the x^(-1/2) hard edge at n/d = 1 would squash the rest
    ratio = w1_sorted(spec.eigenvalues, emp) / w1_sorted(spec.limit_eigenvalues, emp)
    ax.set_title(f"{title}\nW1 ratio {ratio:.3f}", fontsize=8)
    ax.set_xlabel("eigenvalue", fontsize=8)
    ax.tick_params(labelsize=7)


def empirical(acts, X, widths, centering, seed=7, eps=None, kernel="ck") -> np.ndarray:
    kw = {}
    if eps is not None:
        kw["weights"] = ternary_weights((X.shape[0], *widths), eps, seed).matrices(np.float64)
    net = MLP(acts, widths, X.shape[0], seed=seed, centering="none" if centering is False else centering, **kw)
    K = net.ntk(X) if kernel == "ntk" else net.conjugate_kernels(X)[-1]
    return np.linalg.eigvalsh(K)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI settings (n = 160, two ratios)")
    ap.add_argument("--out", default=".", help="directory of the PNG files")
    args = ap.parse_args()
    cfg = QUICK if args.quick else FULL
    n, ratios, grid = cfg["n"], cfg["ratios"], cfg["grid"]
    p = 2 * n // 3
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = sample(gmm(p, 2, seed=0), n, seed=1)
    X, tau0 = data.X, population_statistics(data).tau0

    # dense networks across n/d
    fig, axes = _figure(len(ratios), 2)
    for row, acts in enumerate((["relu"], ["tanh"] * 3)):
        for col, r in enumerate(ratios):
            ws = [int(round(n / r))] * len(acts)
            spec = predict_spectrum(acts, X, ws, grid_points=grid)
            panel(axes[row, col], empirical(acts, X, ws, False), spec,
                  f"{len(acts)}× {acts[0]}, n/d = {r:g} (d = {ws[0]})")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(f"empirical CK vs finite-width prediction (GMM, n = {n}, uncentered)", fontsize=9)
    fig.savefig(out / "finite_width_dense.png", dpi=110)
    print(f"finite_width_dense.png ({time.perf_counter() - t0:.0f} s)")

    # σ_T compressed layer: Gaussian vs sparse ternary weights
    res = compress_network(["relu"], tau0)
    acts, cen = compressed_activations(res), compressed_centering(res)
    fig, axes = _figure(3, 2)
    for row, r in enumerate((1.0, 4.0)):
        ws = [int(round(n / r))]
        spec = predict_spectrum(acts, X, ws, centered=cen, grid_points=grid)
        for col, eps in enumerate((None, 0.9, 0.99)):
            label = "Gaussian W" if eps is None else f"ternary ε = {eps:g}"
            panel(axes[row, col], empirical(acts, X, ws, cen, eps=eps), spec, f"σ_T, {label}, n/d = {r:g}")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle("σ_T-compressed ReLU layer: the prediction assumes Gaussian weights", fontsize=9)
    fig.savefig(out / "finite_width_compressed.png", dpi=110)
    print(f"finite_width_compressed.png ({time.perf_counter() - t0:.0f} s)")

    # where the prediction is weakest
    fig, axes = _figure(3, 1)
    for col, r in enumerate((1.0, 4.0)):
        ws = [int(round(n / r))] * 3
        panel(axes[0, col], empirical(["relu"] * 3, X, ws, False),
              predict_spectrum(["relu"] * 3, X, ws, grid_points=grid),
              f"3× relu (uncentered), n/d = {r:g}")
    d = n // 4
    panel(axes[0, 2], empirical(["erf"], X, [d], False, kernel="ntk"),
          predict_spectrum(["erf"], X, [d], kernel="ntk", grid_points=grid),
          "one-layer NTK, erf, n/d = 4")
    axes[0, 0].legend(fontsize=6)
    fig.savefig(out / "finite_width_failure.png", dpi=110)
    print(f"finite_width_failure.png ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    # exit status only on failure: the docs gallery runs this file in-process (no SystemExit)
    status = main()
    if status:
        if "sphinx_gallery" in sys.modules:  # in the docs build a SystemExit would end it silently
            raise RuntimeError(f"example finite_width_spectra.py failed with exit status {status} "
                               "(its error message is on stderr above)")
        raise SystemExit(status)
