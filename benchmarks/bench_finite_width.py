"""Benchmark: finite-width prediction of the empirical CK spectrum vs the infinite-width limit.

For every activation family, depth L and ratio n/d (all hidden widths d), on a 2-class
GMM (:func:`ntk_theory.data.gmm`, n = 800, p = 533 = 2n/3, seeds 0/1):

* empirical: the mean sorted eigenvalues of ``CK_L = Σ_Lᵀ Σ_L/d`` over ``--seeds``
  networks with N(0, 1) weights (:class:`ntk_theory.network.MLP`);
* prediction: :func:`ntk_theory.finite_width.predict_spectrum`;
* limit: the exact infinite-width kernel's eigenvalues (:func:`ntk_theory.exact.exact_kernels`);
* reported: ``W1(prediction, empirical)``, ``W1(limit, empirical)`` and their ratio (the
  issue's bars: ≤ 0.05 for one layer and ≤ 0.25 for three ReLU layers at n/d ∈ {1, 4}).

Dense networks are uncentered (the pinned definition); the σ_T network is the NTK-LC
compression of the ReLU network of the same depth (:func:`ntk_theory.compress.compress_network`)
with its own centering constants.  ``--ternary`` adds σ_T networks with sparse ternary
weights (the prediction still assumes Gaussian weights).  ``--large N`` times the
one-layer prediction at n = N against one float64 ``eigvalsh`` of the N×N empirical CK in
the same run (wall and CPU seconds; ``--threads 1`` for CPU times a shared machine does
not inflate).

Usage::

    python3 benchmarks/bench_finite_width.py                       # the table (about 20 min on 2 busy cores)
    python3 benchmarks/bench_finite_width.py --families relu --depths 1 --ratios 1,4
    python3 benchmarks/bench_finite_width.py --only-large --large 8000 --threads 1
    python3 benchmarks/bench_finite_width.py --readout --n 400 --seeds 12   # what δ costs at width d
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ntk_theory.compress import compress_network, ternary_weights  # noqa: E402
from ntk_theory.data import gmm, population_statistics, sample  # noqa: E402
from ntk_theory.finite_width import predict_spectrum, w1_sorted  # noqa: E402
from ntk_theory.network import MLP  # noqa: E402
from ntk_theory.verify import compressed_activations, compressed_centering  # noqa: E402


def network_spec(family: str, L: int, tau0: float):
    """(activations, centering) of the network: dense uncentered, or σ_T compressed."""
    if family == "sigma_T":
        res = compress_network(["relu"] * L, tau0)
        return compressed_activations(res), compressed_centering(res)
    return [family] * L, False


def empirical(acts, centering, X, widths, seeds: int, eps: float | None = None) -> np.ndarray:
    cen = "none" if centering is False else centering
    out = []
    for s in range(seeds):
        kw = {}
        if eps is not None:
            kw["weights"] = ternary_weights((X.shape[0], *widths), eps, 100 + s).matrices(np.float64)
        S = MLP(acts, widths, X.shape[0], seed=100 + s, centering=cen, **kw).forward(X)[-1]
        out.append(np.linalg.eigvalsh(S.T @ S))
    return np.mean(out, axis=0)


def _timed(fn):
    """(result, wall seconds, CPU seconds of this process: all BLAS threads)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def large_timing(n: int, threads: int | None = None) -> dict:
    """One-layer ReLU prediction at n vs one float64 eigvalsh of the n×n empirical CK (same run).

    Both are timed in wall and CPU seconds; ``threads`` limits the BLAS threads of both
    (``threadpoolctl``): on a shared machine one thread makes the CPU times comparable,
    since busy-waiting BLAS threads inflate the CPU time of a contended parallel run.
    """
    from threadpoolctl import threadpool_limits

    p = 2 * n // 3
    X = sample(gmm(p, 2, seed=0), n, seed=1).X
    S = MLP(["relu"], [n // 4], p, seed=5, centering="none").forward(X)[-1]
    C = S.T @ S
    del S
    with threadpool_limits(limits=threads):
        spec, w_pred, c_pred = _timed(lambda: predict_spectrum(["relu"], X, [n // 4]))
        lam, w_eig, c_eig = _timed(lambda: np.linalg.eigvalsh(C))
    return {"n": n, "d": n // 4, "threads": threads or "default", "seconds_prediction": w_pred,
            "cpu_seconds_prediction": c_pred, "seconds_eigvalsh": w_eig, "cpu_seconds_eigvalsh": c_eig,
            "ratio": w_pred / w_eig, "cpu_ratio": c_pred / c_eig, "method": spec.method,
            "w1_prediction_vs_one_network": w1_sorted(spec.eigenvalues, lam),
            "w1_limit_vs_one_network": w1_sorted(spec.limit_eigenvalues, lam)}


def readout_table(n: int, widths: list[int], families: list[str], lam: float, seeds: int) -> list[dict]:
    """What δ costs at a given width: ridge readouts of one-layer ReLU networks, dense and compressed.

    2-class GMM (p = 2n/3, ±1 labels), n training and n test samples (independent draws);
    ridge readout without intercept on the layer's features (``readout.ridge_fit``).
    ``dense`` is the ReLU network centered by the theory's constant; the compressed
    networks are its NTK-LC compressions (``compress_network(["relu"], τ0, family=...)``)
    with Gaussian weights and their own centering.  Predicted: ``ridge_readout_errors``;
    measured: mean ± s.e. over ``seeds`` networks; limit: kernel ridge with the exact kernel.
    """
    from ntk_theory.finite_width import ridge_readout_errors
    from ntk_theory.readout import ridge_fit

    p = 2 * n // 3
    g = gmm(p, 2, seed=0)
    tr, te = sample(g, n, seed=1), sample(g, n, seed=2)
    tau0 = population_statistics(tr).tau0
    y = np.where(tr.labels == 0, 1.0, -1.0)
    yt = np.where(te.labels == 0, 1.0, -1.0)
    rows = []
    for fam in families:
        if fam == "dense":
            acts, cen, delta = ["relu"], True, 0.0
        else:
            res = compress_network(["relu"], tau0, family=fam)
            acts, cen, delta = compressed_activations(res), compressed_centering(res), float(res.delta)
        for d in widths:
            t = time.process_time()
            r = ridge_readout_errors(acts, tr.X, y, te.X, yt, [d], lam, centered=cen, tau0=tau0)
            cpu = time.process_time() - t
            mse, acc = [], []
            for s in range(seeds):
                net = MLP(acts, [d], p, seed=200 + s, centering=list(r.centering))
                F, Ft = net.forward(tr.X)[-1], net.forward(te.X)[-1]
                yh = ridge_fit(F, y[:, None], lam, fit_intercept=False).predict(Ft)[:, 0]
                mse.append(float(np.mean((yt - yh) ** 2)))
                acc.append(float(np.mean(np.sign(yh) == yt)))
            def se(a):
                return float(np.std(a, ddof=1) / np.sqrt(len(a)))
            rows.append({"network": fam, "delta": delta, "d": d, "lam": lam,
                         "test_mse_predicted": r.test_mse, "test_mse_measured": float(np.mean(mse)),
                         "test_mse_se": se(mse), "test_mse_limit": r.limit_test_mse,
                         "accuracy_predicted": r.test_accuracy, "accuracy_measured": float(np.mean(acc)),
                         "accuracy_se": se(acc), "accuracy_limit": r.limit_test_accuracy,
                         "train_mse_predicted": r.train_mse, "cpu_seconds_prediction": cpu})
            q = rows[-1]
            print(f"| {fam} | {delta:.3g} | {d} | {q['test_mse_predicted']:.3f} | {q['test_mse_measured']:.3f} ± "
                  f"{q['test_mse_se']:.3f} | {q['test_mse_limit']:.3f} | {q['accuracy_predicted']:.3f} | "
                  f"{q['accuracy_measured']:.3f} ± {q['accuracy_se']:.3f} | {q['accuracy_limit']:.3f} | {cpu:.1f} |",
                  flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=800)
    ap.add_argument("--ratios", default="0.5,1,2,4,8")
    ap.add_argument("--families", default="relu,tanh,erf,sigma_T")
    ap.add_argument("--depths", default="1,3")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ternary", default="0.9,0.99", help="sparsities of the ternary σ_T rows ('' to skip)")
    ap.add_argument("--large", type=int, default=0, help="also time the prediction at this n (e.g. 8000)")
    ap.add_argument("--only-large", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads for --large (default: all)")
    ap.add_argument("--exclude-top", type=int, default=0,
                    help="also report W1 over the n − K smallest eigenvalues (the bulk without the top K)")
    ap.add_argument("--readout", action="store_true",
                    help="instead: the ridge-readout table (what δ costs at a given width), one layer")
    ap.add_argument("--readout-widths", default="100,400,1600")
    ap.add_argument("--readout-families", default="dense,sigma_T,staircase:4,staircase:8")
    ap.add_argument("--lam", type=float, default=0.05, help="ridge parameter of --readout")
    ap.add_argument("--json", default=None, help="write all rows to this JSON file")
    args = ap.parse_args()
    print(f"$ python3 {' '.join(sys.argv)}")
    print(f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, python "
          f"{platform.python_version()}, numpy {np.__version__}, cores {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    rows = []
    if args.readout:
        print(f"\nn = {args.n} train + {args.n} test, λ = {args.lam:g}, {args.seeds} networks per row")
        print("\n| network | δ | d | test MSE pred | measured | limit "
              "| accuracy pred | measured | limit | pred CPU s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        rows = readout_table(args.n, [int(w) for w in args.readout_widths.split(",")],
                             args.readout_families.split(","), args.lam, args.seeds)
    elif not args.only_large:
        n, p = args.n, 2 * args.n // 3
        data = sample(gmm(p, 2, seed=0), n, seed=1)
        tau0 = population_statistics(data).tau0
        X = data.X
        ratios = [float(r) for r in args.ratios.split(",")]
        K = args.exclude_top
        extra = f" bulk ratio (top {K} excluded) |" if K else ""
        print("\n| network | L | n/d | d | W1(pred, emp) | W1(limit, emp) | ratio | top emp / pred / limit "
              "| pred s |" + extra)
        print("|---|---|---|---|---|---|---|---|---|" + ("---|" if K else ""))
        configs = [(f, int(L), None) for f in args.families.split(",") for L in args.depths.split(",")]
        if args.ternary:
            configs += [("sigma_T", int(L), float(e)) for L in args.depths.split(",")
                        for e in args.ternary.split(",")]
        for fam, L, eps in configs:
            acts, cen = network_spec(fam, L, tau0)
            for r in ratios:
                d = int(round(n / r))
                ws = [d] * L
                emp = empirical(acts, cen, X, ws, args.seeds, eps)
                t = time.perf_counter()
                spec = predict_spectrum(acts, X, ws, centered=cen)
                secs = time.perf_counter() - t
                wp, wl = w1_sorted(spec.eigenvalues, emp), w1_sorted(spec.limit_eigenvalues, emp)
                name = fam if eps is None else f"{fam}, ternary ε={eps:g}"
                row = {"network": name, "L": L, "n_over_d": r, "d": d, "w1_prediction": wp, "w1_limit": wl,
                       "ratio": wp / wl, "top_empirical": float(emp[-1]), "top_predicted": float(spec.eigenvalues[-1]),
                       "top_limit": float(spec.limit_eigenvalues[-1]), "seconds_prediction": secs,
                       "method": spec.method}
                col = ""
                if K:
                    wpb = w1_sorted(spec.eigenvalues[:-K], emp[:-K])
                    wlb = w1_sorted(spec.limit_eigenvalues[:-K], emp[:-K])
                    row["bulk_ratio"] = wpb / wlb
                    col = f" {wpb / wlb:.3f} |"
                rows.append(row)
                print(f"| {name} | {L} | {r:g} | {d} | {wp:.4g} | {wl:.4g} | **{wp / wl:.3f}** | "
                      f"{emp[-1]:.4g} / {spec.eigenvalues[-1]:.4g} / {spec.limit_eigenvalues[-1]:.4g} | {secs:.1f} |"
                      + col, flush=True)
    if args.large:
        lt = large_timing(args.large, args.threads)
        rows.append(lt)
        print(f"\nn = {lt['n']}, d = {lt['d']} (one ReLU layer, BLAS threads: {lt['threads']}): prediction "
              f"{lt['seconds_prediction']:.1f} s wall / {lt['cpu_seconds_prediction']:.1f} s CPU ({lt['method']}); "
              f"one float64 eigvalsh of the {lt['n']}² CK {lt['seconds_eigvalsh']:.1f} s wall / "
              f"{lt['cpu_seconds_eigvalsh']:.1f} s CPU; ratio {lt['ratio']:.3f} wall, {lt['cpu_ratio']:.3f} CPU; "
              f"W1 to one network: prediction {lt['w1_prediction_vs_one_network']:.4g}, "
              f"limit {lt['w1_limit_vs_one_network']:.4g}; load average {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
