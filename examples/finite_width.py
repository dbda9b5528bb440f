"""Finite width: why NTK-LC loses accuracy on a real network
=========================================================

Used by docs/compression.rst ("Finite width").  On the demo's data (GMM, docs/reference.rst §2:
n = 360, p = 240, 3 classes) and a 3-layer ReLU network compressed by α-matching
(docs/reference.rst §6), this script separates the candidate causes of the finite-width gap:

1. convergence of each network's empirical CK to its **own** exact limit (docs/reference.rst §3),
   ``‖CK − K_∞‖/‖K_∞‖``, for d = widths of all three layers: dense ReLU, σ_T activations
   with Gaussian weights, with ternary weights at ε = 0 and at ε = 0.9 — the weights'
   share of the error; plus ``‖CK' − δI − K‖/‖K‖`` against the dense limit, and the
   features' empirical mean (centering); figure ``finite_width.png`` in ``--out``
   (default: current directory): these errors vs d with the O(d^(-1/2)) rate;
2. ridge readouts (λ by 5-fold CV per network, mean over 8 random 75/25 splits) on the exact
   kernels (d = ∞) and on wide networks, for σ_T and for families with smaller δ, and with a
   wider last layer.

    python3 examples/finite_width.py                      # d = 1000 2000 4000 8000 (~10 min)
    python3 examples/finite_width.py --widths 1000 2000   # quicker

Quick settings for CI (d = 250, 500; one extra family; no wide last layer; these run in
the docs gallery)::

    python3 examples/finite_width.py --quick --out /tmp/finite_width
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ntk_theory.compress import compress_network, ternary_weights
from ntk_theory.data import gmm, population_statistics, sample
from ntk_theory.network import MLP
from ntk_theory.readout import kernel_ridge_accuracy, kernel_ridge_cv
from ntk_theory.spectral import relative_errors
from ntk_theory.verify import compressed_activations, compressed_centering, verify_kernels

N, P, CLASSES, SPLITS = 360, 240, 3, 8
DT = np.float32
#: ``--quick``: CI settings
QUICK = dict(widths=[250, 500], families=["three_level"], wide_last=0, readout_width=500)
NETWORK_LABELS = ("dense ReLU", "σ_T, Gaussian W", "σ_T, ternary ε = 0", "σ_T, ternary ε = 0.9")


def convergence_figure(widths: list[int], errors: list[list[float]], path: Path) -> None:
    """``finite_width.png``: ‖CK − K_∞‖/‖K_∞‖ vs d for each network, with a d^(-1/2) guide."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    E = np.asarray(errors)
    for k, label in enumerate(NETWORK_LABELS):
        ax.loglog(widths, E[:, k], marker="o", label=label)
    d = np.asarray(widths, dtype=float)
    ax.loglog(d, E[0, :].max() * np.sqrt(d[0] / d), ":", color="0.4", label="∝ d^(-1/2)")
    ax.set_xlabel("width d of each of the 3 layers")
    ax.set_ylabel("‖CK − K_∞‖ / ‖K_∞‖ (own limit)")
    ax.set_title(f"empirical CK vs its exact limit (GMM n = {N}, p = {P})")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)


def ridge(G: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the test accuracy, λ by 5-fold CV on each split's training part."""
    accs = []
    m = N // 4
    for k in range(SPLITS):
        perm = np.random.default_rng(100 + k).permutation(N)
        tr, te = np.sort(perm[m:]), np.sort(perm[:m])
        lam = kernel_ridge_cv(G, y, tr, folds=5, seed=k).lam
        accs.append(kernel_ridge_accuracy(G, y, tr, te, lam))
    a = np.asarray(accs)
    return float(a.mean()), float(a.std(ddof=1) / np.sqrt(a.size))


def features(net: MLP, X: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(S, dtype=float) for S in net.forward(X)[1:]]


def compressed(res, p: int, widths: tuple[int, ...], eps: float | None) -> MLP:
    """σ' network: ternary weights at sparsity ``eps`` (seed 1), or Gaussian weights (``eps=None``)."""
    kw = {}
    if eps is not None:
        kw["weights"] = ternary_weights((p,) + widths, eps, 1).matrices(DT)
    return MLP(compressed_activations(res), widths, p, seed=1, dtype=DT,
               centering=compressed_centering(res), **kw)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    ap.add_argument("--families", nargs="+", default=["three_level", "staircase:4", "staircase:8"])
    ap.add_argument("--wide-last", type=int, default=16000, help="last-layer width of the extra run (0: skip)")
    ap.add_argument("--readout-width", type=int, default=2000, help="width of the family comparison (default 2000)")
    ap.add_argument("--quick", action="store_true", help="CI settings (overrides the options above)")
    ap.add_argument("--out", default=".", help="directory for finite_width.png (default: current directory)")
    args = ap.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)  # many small eigendecompositions: one BLAS thread is far cheaper
    except ImportError:  # pragma: no cover
        pass
    print(f"$ python3 {' '.join(sys.argv)}")
    print(f"date {datetime.date.today()}, python {platform.python_version()}, numpy {np.__version__}")
    t0 = time.perf_counter()
    data = sample(gmm(P, CLASSES, seed=1), N, seed=2)
    st = population_statistics(data)
    X, y = data.X, data.labels
    acts = ["relu"] * 3
    res = compress_network(acts, st.tau0)  # σ_T
    chk = verify_kernels(X, res, keep=True)
    Kd, Kc, delta = chk.K_dense, chk.K_compressed, res.delta
    eye = np.eye(N)
    print(f"\nτ_0 = {st.tau0:.4f}, σ_T: δ = {delta:.4f} = {delta / res.tau_dense[-1] ** 2:.1f} τ_L², "
          f"‖K‖ = {np.linalg.norm(Kd, 2):.3f}, ‖K'‖ = {np.linalg.norm(Kc, 2):.3f}, "
          f"exact ‖K' − δI − K‖/‖K‖ = {chk.rel_opnorm:.3f}")

    print("\n### 1. empirical CK vs its own exact limit, ‖CK − K_∞‖/‖K_∞‖ (and vs the dense limit)\n")
    print("| d | dense ReLU | σ_T, Gaussian W | σ_T, ε = 0 | σ_T, ε = 0.9 | ‖CK' − δI − K‖/‖K‖ (ε = 0.9) "
          "| max |mean feature|·√d (ε = 0.9) |")
    print("|---|---|---|---|---|---|---|")
    readout_rows = []
    all_errors = []
    for d in args.widths:
        W = (d, d, d)
        Fd = features(MLP(acts, W, P, seed=0, dtype=DT, tau0=st.tau0), X)
        errs = [relative_errors(Fd[-1].T @ Fd[-1], Kd)[0]]
        Gs = {}
        for name, eps in (("gauss", None), ("eps0", 0.0), ("eps0.9", 0.9)):
            F = features(compressed(res, P, W, eps), X)
            Gs[name] = F[-1].T @ F[-1]
            errs.append(relative_errors(Gs[name], Kc)[0])
            if name == "eps0.9":
                mean = max(abs(float(S.mean())) * np.sqrt(d) for S in F)
        all_errors.append(errs)
        vs_dense = relative_errors(Gs["eps0.9"] - delta * eye, Kd)[0]
        print(f"| {d} | " + " | ".join(f"{e:.3f}" for e in errs) + f" | {vs_dense:.2f} | {mean:.4f} |")
        readout_rows.append((f"dense, d = {d}", "–", ridge(Fd[-1].T @ Fd[-1], y)))
        readout_rows.append((f"σ_T ε = 0, d = {d}", f"{delta:.3f}", ridge(Gs["eps0"], y)))
        readout_rows.append((f"σ_T ε = 0.9, d = {d}", f"{delta:.3f}", ridge(Gs["eps0.9"], y)))
        sys.stdout.flush()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    convergence_figure(list(args.widths), all_errors, out / "finite_width.png")
    print(f"\nfigure: {out / 'finite_width.png'}")

    print("\n### 2. ridge readouts (λ by 5-fold CV per network, mean ± s.e. over 8 splits; chance 0.333)\n")
    print("| kernel / network | δ | δ/τ_L² | test accuracy |")
    print("|---|---|---|---|")
    tl2 = res.tau_dense[-1] ** 2
    for name, G, dl in (("dense, exact limit", Kd, None), ("σ_T, exact limit", Kc, delta),
                        ("dense exact limit + δI", Kd + delta * eye, delta)):
        a, se = ridge(G, y)
        print(f"| {name} | {'–' if dl is None else f'{dl:.3f}'} | "
              f"{'–' if dl is None else f'{dl / tl2:.1f}'} | {a:.3f} ± {se:.3f} |")
    for name, dl, (a, se) in readout_rows:
        print(f"| {name} | {dl} | {'–' if dl == '–' else f'{float(dl) / tl2:.1f}'} | {a:.3f} ± {se:.3f} |")
    d = args.readout_width
    for fam in args.families:
        r = compress_network(acts, st.tau0, family=fam)
        F = features(compressed(r, P, (d, d, d), 0.9), X)[-1]
        a, se = ridge(F.T @ F, y)
        print(f"| {fam} ε = 0.9, d = {d} | {r.delta:.3f} | {r.delta / tl2:.2f} | {a:.3f} ± {se:.3f} |")
        sys.stdout.flush()
    if args.wide_last:
        W = (d, d, args.wide_last)
        for fam in ("sigma_T", "staircase:4"):
            r = compress_network(acts, st.tau0, family=fam)
            F = features(compressed(r, P, W, 0.9), X)[-1]
            a, se = ridge(F.T @ F, y)
            print(f"| {fam} ε = 0.9, d = {list(W)} | {r.delta:.3f} | {r.delta / tl2:.2f} | {a:.3f} ± {se:.3f} |")
        Fd = features(MLP(acts, W, P, seed=0, dtype=DT, tau0=st.tau0), X)[-1]
        a, se = ridge(Fd.T @ Fd, y)
        print(f"| dense, d = {list(W)} | – | – | {a:.3f} ± {se:.3f} |")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    # exit status only on failure: the docs gallery runs this file in-process (no SystemExit)
    status = main()
    if status:
        if "sphinx_gallery" in sys.modules:  # in the docs build a SystemExit would end it silently
            raise RuntimeError(f"example finite_width.py failed with exit status {status} "
                               "(its error message is on stderr above)")
        raise SystemExit(status)
