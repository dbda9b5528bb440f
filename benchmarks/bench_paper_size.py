"""Benchmark: theory vs exact vs empirical CK/NTK at the paper's size (THEORY.md §7.1).

NTK-LC's Experiment 1 setting: 2-class Gaussian mixture, n = 8000, p = 4000, a 3-layer
ReLU network of widths (2000, 2000, 1000), float64.  Every stage is timed and the peak
resident memory recorded:

1. data (:func:`ntk_theory.data.gmm`, :func:`~ntk_theory.data.sample`) and its population
   statistics (THEORY.md §2);
2. theory kernels K̃_CK,L and K̃_NTK,L (§5, :func:`ntk_theory.theory.theory_kernels`);
3. exact limiting kernels K_L and Θ_L (§3, closed-form arc-cosine recursion,
   :func:`ntk_theory.exact.exact_kernels`);
4. empirical CK_L and NTK of one network (:class:`ntk_theory.network.MLP`);
5. spectra: all eigenvalues of the six matrices (LAPACK ``eigvalsh``), leading
   eigenvectors and the operator norms of differences by Lanczos
   (:func:`scipy.sparse.linalg.eigsh`; a dense decomposition per difference would
   triple the cost at n = 8000), Frobenius norms, Wasserstein-1 distances between
   spectra, eigenvector alignments.

Usage::

    python3 benchmarks/bench_paper_size.py [--n 8000] [--p 4000] [--out docs/figures]

``--out`` also writes the two comparison figures (histograms and leading eigenvectors).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg as sla
from scipy.sparse.linalg import eigsh
from scipy.stats import wasserstein_distance
from tqdm.auto import tqdm

from ntk_theory.data import gmm, population_statistics, sample
from ntk_theory.exact import exact_kernels
from ntk_theory.network import MLP
from ntk_theory.spectral import isolated_count

WIDTHS = (2000, 2000, 1000)


def peak_gib() -> float:
    """Peak resident memory of this process so far (GiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def parallel(fns, workers: int = 2) -> list:
    """Independent dense jobs on ``workers`` threads with single-threaded BLAS: LAPACK's
    eigensolvers run 10–80× slower with multi-threaded BLAS on the loaded shared machine
    (many small synchronising BLAS-2 calls), see examples/experiment1.py."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=workers) as ex:
        futures = [ex.submit(fn) for fn in fns]
        return [f.result() for f in futures]


def stage_done(name: str, sec: dict, mem: dict) -> None:
    """One line on stderr as each stage ends (the run takes many minutes on a loaded machine)."""
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {sec[name]:.1f} s, peak RSS {mem[name]:.1f} GiB, "
          f"load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)


def opnorm(A: np.ndarray) -> float:
    """Spectral norm of a symmetric matrix by Lanczos (largest magnitude eigenvalue)."""
    v0 = np.ones(A.shape[0]) / np.sqrt(A.shape[0])
    return float(abs(eigsh(A, k=1, which="LM", v0=v0, tol=1e-6, return_eigenvectors=False)[0]))


def top_vectors(A: np.ndarray, k: int) -> np.ndarray:
    v0 = np.ones(A.shape[0]) / np.sqrt(A.shape[0])
    _, U = eigsh(A, k=k, which="LA", v0=v0, tol=1e-10)
    return U[:, ::-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8000)
    ap.add_argument("--p", type=int, default=4000)
    ap.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    ap.add_argument("--act", default="relu", help="activation of every layer (default relu)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vectors", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None, help="directory for the two figures")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    acts = [args.act] * len(args.widths)
    show = not args.quiet and sys.stderr.isatty()
    loads = [os.getloadavg()]
    sec: dict[str, float] = {}
    mem: dict[str, float] = {}
    t_all = time.perf_counter()
    bar = tqdm(total=5, desc="paper size", disable=not show)

    t = time.perf_counter()
    data = sample(gmm(args.p, 2, seed=args.seed), args.n, seed=args.seed + 1)
    stats = population_statistics(data)
    sec["data"], mem["data"] = time.perf_counter() - t, peak_gib()
    stage_done("data", sec, mem)
    bar.update()

    t = time.perf_counter()
    from ntk_theory.theory import theory_kernels

    th = theory_kernels(data.X, stats, acts, ntk=True)
    mats = {"ck": {"theory": th.ck}, "ntk": {"theory": th.ntk}}
    del th
    sec["theory"], mem["theory"] = time.perf_counter() - t, peak_gib()
    stage_done("theory", sec, mem)
    bar.update()

    t = time.perf_counter()
    ex = exact_kernels(data.X, acts, tau0=stats.tau0)
    mats["ck"]["exact"], mats["ntk"]["exact"] = ex.ck, ex.ntk
    del ex
    gc.collect()
    sec["exact"], mem["exact"] = time.perf_counter() - t, peak_gib()
    stage_done("exact", sec, mem)
    bar.update()

    t = time.perf_counter()
    net = MLP(acts, args.widths, p=args.p, seed=args.seed, tau0=stats.tau0)
    em = net.kernels(data.X, progress=show)
    mats["ck"]["empirical"], mats["ntk"]["empirical"] = em.ck[-1], em.ntk
    t_net = em.seconds
    del em, net
    gc.collect()
    sec["empirical"], mem["empirical"] = time.perf_counter() - t, peak_gib()
    stage_done("empirical", sec, mem)
    bar.update()
    loads.append(os.getloadavg())

    t = time.perf_counter()
    kinds = ("theory", "exact", "empirical")
    rows = []
    spectra: dict[str, dict[str, np.ndarray]] = {}
    vectors: dict[str, dict[str, np.ndarray]] = {}
    jobs = [(kern, k) for kern in ("ck", "ntk") for k in kinds]
    # dense eigensolvers one per thread with single-threaded BLAS (see parallel())
    lams = parallel([lambda j=j: sla.eigvalsh(mats[j[0]][j[1]], check_finite=False) for j in jobs])
    vecs = parallel([lambda j=j: top_vectors(mats[j[0]][j[1]], args.vectors) for j in jobs])
    for kern in ("ck", "ntk"):
        spectra[kern] = {k: lams[jobs.index((kern, k))] for k in kinds}
        vectors[kern] = {k: vecs[jobs.index((kern, k))] for k in kinds}
    for kern in ("ck", "ntk"):
        M, lam, U = mats[kern], spectra[kern], vectors[kern]
        nb, fb = opnorm(M["exact"]), float(np.linalg.norm(M["exact"]))
        row = {"kernel": kern.upper()}
        for k in ("theory", "empirical"):
            D = M[k] - M["exact"]
            row[f"op_{k}"] = opnorm(D) / nb
            row[f"fro_{k}"] = float(np.linalg.norm(D)) / fb
            del D
        row["w1_th_emp"] = float(wasserstein_distance(lam["theory"], lam["empirical"])
                                 / np.mean(np.abs(lam["empirical"])))
        row["iso"] = "/".join(str(isolated_count(lam[k])) for k in kinds)
        # subspace alignment ‖U_aᵀU_b‖_F²/k of the exact kernel's isolated eigenvectors
        # (rotation-invariant inside near-degenerate spikes), k = isolated count of exact
        k = max(1, min(isolated_count(lam["exact"]), args.vectors))
        row["k"] = k
        row["align_th"] = float(np.sum((U["theory"][:, :k].T @ U["exact"][:, :k]) ** 2) / k)
        row["align_emp"] = float(np.sum((U["empirical"][:, :k].T @ U["exact"][:, :k]) ** 2) / k)
        row["top"] = {k: lam[k][::-1][:3].tolist() for k in kinds}
        rows.append(row)
    sec["spectra"], mem["spectra"] = time.perf_counter() - t, peak_gib()
    stage_done("spectra", sec, mem)
    bar.update()
    bar.close()
    total = time.perf_counter() - t_all
    loads.append(os.getloadavg())

    figures = []
    if args.out is not None:
        from ntk_theory.plotting import comparison_figure, save_figure

        args.out.mkdir(parents=True, exist_ok=True)
        for kern in ("ck", "ntk"):
            title = (f"{kern.upper()}, 2-class GMM, n={args.n}, p={args.p}, {'-'.join(acts)}, "
                     f"widths {'/'.join(map(str, args.widths))} (paper size)")
            fig = comparison_figure(spectra[kern], vectors[kern], k=min(3, args.vectors),
                                    labels=data.labels, title=title)
            figures.append(save_figure(fig, args.out / f"experiment1_paper_gmm_{kern}.png"))

    print(f"Theory vs exact vs empirical at the paper's size: n={args.n}, p={args.p}, "
          f"{'-'.join(acts)}, widths {list(args.widths)}, float64")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, numpy {np.__version__}; load average "
          "(1/5/15 min) at start / after the kernels / at the end: "
          + "; ".join("/".join(f"{v:.1f}" for v in la) for la in loads) + "\n")
    print("| stage | seconds | peak RSS so far (GiB) |")
    print("|---|---:|---:|")
    for k in sec:
        note = f" (network kernels {t_net:.1f} s)" if k == "empirical" else ""
        print(f"| {k}{note} | {sec[k]:.1f} | {mem[k]:.1f} |")
    print(f"| **total** | **{total:.1f}** | **{peak_gib():.1f}** |\n")
    print("| kernel | ‖K̃−K‖/‖K‖ theory | ‖·‖ empirical | Frobenius theory | Frobenius empirical | "
          "W1 theory/empirical | isolated th/ex/emp | k | subspace th·ex | subspace emp·ex |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['kernel']} | {r['op_theory']:.4f} | {r['op_empirical']:.4f} | {r['fro_theory']:.4f} | "
              f"{r['fro_empirical']:.4f} | {r['w1_th_emp']:.4f} | {r['iso']} | {r['k']} | {r['align_th']:.4f} | "
              f"{r['align_emp']:.4f} |")
    for r in rows:
        print(f"\n{r['kernel']} top eigenvalues: " + "; ".join(
            f"{k} " + ", ".join(f"{v:.4f}" for v in r["top"][k]) for k in kinds))
    for f in figures:
        print(f"figure: {f}")
    print("\ncommand: python3 benchmarks/bench_paper_size.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
