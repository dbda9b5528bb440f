"""Benchmark: theory vs exact vs empirical CK/NTK at the paper's size (docs/reference.rst §7.1).

NTK-LC's Experiment 1 setting: 2-class Gaussian mixture, n = 8000, p = 4000, a 3-layer
ReLU network of widths (2000, 2000, 1000).  Kernels are built in float64; every stage is
timed (wall and CPU) and the peak resident memory recorded:

1. data (:func:`ntk_theory.data.gmm`, :func:`~ntk_theory.data.sample`) and its population
   statistics (docs/reference.rst §2);
2. theory kernels K̃_CK,L and K̃_NTK,L (§5, :func:`ntk_theory.theory.theory_kernels`);
3. exact limiting kernels K_L and Θ_L (§3, arc-cosine closed forms,
   :func:`ntk_theory.exact.exact_kernels`);
4. empirical CK_L and NTK of one network (:class:`ntk_theory.network.MLP`);
5. the comparison, computing only the eigen-information it uses
   (:mod:`ntk_theory.spectral`): the leading eigenpairs of the six matrices by Lanczos
   (:func:`~ntk_theory.spectral.top_eigenpairs`: top eigenvalues, eigenvectors for the
   alignments, isolated counts), their spectral distributions by stochastic Lanczos
   quadrature with those pairs deflated (:func:`~ntk_theory.spectral.slq_density`:
   Wasserstein-1 distances, quartiles, histograms), operator norms of the differences by
   Lanczos and Frobenius norms.  The Lanczos work runs on float32 copies: its rounding
   (≈ 1e-7·‖K‖) is four orders below the reported precision (4 digits) and the SLQ
   sampling error (≈ 1e-2 relative in W1); the kernels themselves stay float64.

Reference, timed in the same run: one full ``scipy.linalg.eigvalsh`` of the 8000×8000 float64
exact NTK (what the previous version ran six times, plus vectors).  Its spectrum also gives
the SLQ density's error at the paper's size (``slq_check``).  ``--check`` additionally
computes every metric from full eigendecompositions of all six matrices and reports the
differences (affordable at n ≲ 3000; see docs/BENCHMARKS.md).

Usage::

    python3 benchmarks/bench_paper_size.py [--n 8000] [--p 4000] [--json FILE] [--out DIR]
                                           [--check] [--quiet] [--no-finite-width]

``--json FILE`` writes ``{"total_seconds", "eigvalsh_seconds", "ratio", "stages", ...}``;
``--out`` also writes the two comparison figures (SLQ histograms, leading eigenvectors).
After the reference, the finite-width prediction of the empirical CK spectrum
(:func:`ntk_theory.finite_width.paper_size_report`) is compared with the network and the
limit (W1 of both; ``--no-finite-width`` skips it).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg as sla
from tqdm.auto import tqdm

from ntk_theory.data import gmm, population_statistics, sample
from ntk_theory.exact import exact_kernels
from ntk_theory.network import MLP
from ntk_theory.spectral import (
    SpectralDensity,
    density_w1,
    isolated_count,
    operator_norm,
    slq_density,
    top_eigenpairs,
)

WIDTHS = (2000, 2000, 1000)
KINDS = ("theory", "exact", "empirical")


def peak_gib() -> float:
    """Peak resident memory of this process so far (GiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def cpu_seconds() -> float:
    """CPU time of this process, all threads (user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def stage_done(name: str, sec: dict, cpu: dict, mem: dict) -> None:
    """One line on stderr as each stage ends."""
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {sec[name]:.1f} s wall, {cpu[name]:.1f} s CPU, "
          f"peak RSS {mem[name]:.1f} GiB, load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)


def to_float32(A: np.ndarray, B: np.ndarray | None = None, rows: int = 512) -> tuple[np.ndarray, float]:
    """``float32(A − B)`` built row block by row block (no n×n float64 temporary) and the
    float64 Frobenius norm of ``A − B``."""
    n = A.shape[0]
    out = np.empty(A.shape, dtype=np.float32)
    fro2 = 0.0
    for i in range(0, n, rows):
        blk = A[i:i + rows] if B is None else A[i:i + rows] - B[i:i + rows]
        fro2 += float(np.einsum("ij,ij->", blk, blk))
        out[i:i + rows] = blk
    return out, float(np.sqrt(fro2))


def parallel(fns, workers: int = 2) -> list:
    """Independent jobs on ``workers`` threads, each with single-threaded BLAS."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=workers) as ex:
        futures = [ex.submit(fn) for fn in fns]
        return [f.result() for f in futures]


def metrics(spec: dict, vec: dict, dens: dict, op: dict, fro: dict, n: int, n_vec: int) -> dict:
    """The comparison row of one kernel (CK or NTK) from the partial eigen-information."""
    row: dict = {}
    for k in ("theory", "empirical"):
        row[f"op_{k}"] = op[k] / op["exact"]
        row[f"fro_{k}"] = fro[k] / fro["exact"]
    row["w1_th_emp"] = density_w1(dens["theory"], dens["empirical"]) / dens["empirical"].mean_abs()
    iso, capped = {}, {}
    for k in KINDS:
        iqr = float(np.subtract(*dens[k].quantile([0.75, 0.25])))
        iso[k] = isolated_count(spec[k], iqr=iqr, n=n)
        capped[k] = iso[k] >= min(50, n // 10, spec[k].size - 1)
    row["iso"] = "/".join(f"{'≥' if capped[k] else ''}{iso[k]}" for k in KINDS)
    row["isolated"] = iso
    # subspace alignment ‖U_aᵀU_b‖_F²/k of the exact kernel's isolated eigenvectors
    k = max(1, min(iso["exact"], n_vec))
    row["k"] = k
    U = vec
    row["align_th"] = float(np.sum((U["theory"][:, :k].T @ U["exact"][:, :k]) ** 2) / k)
    row["align_emp"] = float(np.sum((U["empirical"][:, :k].T @ U["exact"][:, :k]) ** 2) / k)
    row["top"] = {kk: spec[kk][:3].tolist() for kk in KINDS}
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8000)
    ap.add_argument("--p", type=int, default=4000)
    ap.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    ap.add_argument("--act", default="relu", help="activation of every layer (default relu)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vectors", type=int, default=4, help="eigenvectors kept for alignments/figures")
    ap.add_argument("--top", type=int, default=12,
                    help="leading eigenpairs per matrix (Lanczos); caps the isolated count at top-1")
    ap.add_argument("--probes", type=int, default=8, help="SLQ probe vectors (default 8)")
    ap.add_argument("--steps", type=int, default=80, help="SLQ Lanczos steps (default 80)")
    ap.add_argument("--check", action="store_true",
                    help="also compute every metric from full eigendecompositions (slow)")
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON to FILE")
    ap.add_argument("--out", type=Path, default=None, help="directory for the two figures")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--no-finite-width", action="store_true",
                    help="skip the finite-width prediction of the CK spectrum (ntk_theory.finite_width)")
    args = ap.parse_args(argv)
    acts = [args.act] * len(args.widths)
    n = args.n
    show = not args.quiet and sys.stderr.isatty()
    loads = [os.getloadavg()]
    sec: dict[str, float] = {}
    cpu: dict[str, float] = {}
    mem: dict[str, float] = {}
    t_all, c_all = time.perf_counter(), cpu_seconds()
    bar = tqdm(total=5, desc="paper size", disable=not show)

    def timed(name: str, t: float, c: float) -> None:
        sec[name], cpu[name], mem[name] = time.perf_counter() - t, cpu_seconds() - c, peak_gib()
        stage_done(name, sec, cpu, mem)
        bar.update()

    t, c = time.perf_counter(), cpu_seconds()
    data = sample(gmm(args.p, 2, seed=args.seed), n, seed=args.seed + 1)
    stats = population_statistics(data)
    timed("data", t, c)

    t, c = time.perf_counter(), cpu_seconds()
    from ntk_theory.theory import theory_kernels

    th = theory_kernels(data.X, stats, acts, ntk=True)
    mats = {"ck": {"theory": th.ck}, "ntk": {"theory": th.ntk}}
    del th
    timed("theory", t, c)

    t, c = time.perf_counter(), cpu_seconds()
    ex = exact_kernels(data.X, acts, tau0=stats.tau0)
    mats["ck"]["exact"], mats["ntk"]["exact"] = ex.ck, ex.ntk
    del ex
    gc.collect()
    timed("exact", t, c)

    t, c = time.perf_counter(), cpu_seconds()
    net = MLP(acts, args.widths, p=args.p, seed=args.seed, tau0=stats.tau0)
    em = net.kernels(data.X, progress=show)
    mats["ck"]["empirical"], mats["ntk"]["empirical"] = em.ck[-1], em.ntk
    t_net = em.seconds
    del em, net
    gc.collect()
    timed("empirical", t, c)
    loads.append(os.getloadavg())

    t, c = time.perf_counter(), cpu_seconds()

    def analyse(kern: str, k: str) -> tuple:
        A32, fro = to_float32(mats[kern][k])
        spec, U = top_eigenpairs(A32, args.top + 1, tol=1e-6, seed=args.seed)
        dens = slq_density(A32, probes=args.probes, steps=args.steps, deflate=(spec, U), seed=args.seed)
        op = operator_norm(A32, tol=1e-6) if k == "exact" else None
        return spec, U[:, :args.vectors].astype(float), dens, fro, op

    def difference(kern: str, k: str) -> tuple:
        D32, fro = to_float32(mats[kern][k], mats[kern]["exact"])
        return fro, operator_norm(D32, tol=1e-6)

    jobs = [(kern, k) for kern in ("ck", "ntk") for k in KINDS]
    diff_jobs = [(kern, k) for kern in ("ck", "ntk") for k in ("theory", "empirical")]
    # one job per thread with single-threaded BLAS: Lanczos is a chain of small matrix products,
    # and multi-threaded BLAS synchronises its threads at every one of them (10–80× slower on the
    # loaded shared machine); two independent jobs use the two cores without any synchronisation
    res = parallel([lambda j=j: analyse(*j) for j in jobs] + [lambda j=j: difference(*j) for j in diff_jobs])
    rows, dens_all, vec_all, spec_all = [], {}, {}, {}
    for kern in ("ck", "ntk"):
        spec, vec, dens, op, fro = {}, {}, {}, {}, {}
        for k in KINDS:
            spec[k], vec[k], dens[k], fro[k], o = res[jobs.index((kern, k))]
            if o is not None:
                op[k] = o
        for k in ("theory", "empirical"):
            fro[k], op[k] = res[len(jobs) + diff_jobs.index((kern, k))]
        row = metrics(spec, vec, dens, op, fro, n, args.vectors)
        row["kernel"] = kern.upper()
        rows.append(row)
        dens_all[kern], vec_all[kern], spec_all[kern] = dens, vec, spec
    timed("spectra", t, c)
    bar.close()
    total, total_cpu = time.perf_counter() - t_all, cpu_seconds() - c_all
    loads.append(os.getloadavg())

    # the reference: one full float64 eigvalsh at the same size, in the same run
    t, c = time.perf_counter(), cpu_seconds()
    lam_ref = sla.eigvalsh(mats["ntk"]["exact"], check_finite=False)
    eig_sec, eig_cpu = time.perf_counter() - t, cpu_seconds() - c
    loads.append(os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')}] reference eigvalsh: {eig_sec:.1f} s wall, {eig_cpu:.1f} s CPU",
          file=sys.stderr, flush=True)
    ref = SpectralDensity.from_eigenvalues(lam_ref)
    d_ntk = dens_all["ntk"]["exact"]
    iqr_ref = float(np.subtract(*np.quantile(lam_ref, [0.75, 0.25])))
    slq_check = {
        "matrix": "exact NTK",
        "w1_relative": density_w1(d_ntk, ref) / ref.mean_abs(),
        "quartile_error_over_iqr": float(np.max(np.abs(d_ntk.quantile([0.25, 0.5, 0.75])
                                                       - np.quantile(lam_ref, [0.25, 0.5, 0.75])))
                                         / iqr_ref),
        "top_eigenvalue_max_relative_error": float(np.max(np.abs(
            spec_all["ntk"]["exact"] - lam_ref[::-1][:spec_all["ntk"]["exact"].size])) / lam_ref[-1]),
        "isolated_full": isolated_count(lam_ref),
        "isolated_partial": rows[1]["isolated"]["exact"],
    }

    # the finite-width prediction of the empirical CK spectrum (one more exact-kernel pass):
    # how far is the network from it, and how far from the infinite-width limit (W1 of both,
    # empirical and limit spectra as the SLQ quantile points used above)
    finite = None
    if not args.no_finite_width:
        from ntk_theory.finite_width import paper_size_report

        t, c = time.perf_counter(), cpu_seconds()
        finite = paper_size_report(acts, data.X, args.widths, dens_all["ck"]["empirical"].sample(n),
                                   centered=True, tau0=stats.tau0, limit=dens_all["ck"]["exact"].sample(n))
        finite["cpu_seconds"] = cpu_seconds() - c
        finite["wall_seconds"] = time.perf_counter() - t
        print(f"[{time.strftime('%H:%M:%S')}] finite-width prediction: {finite['wall_seconds']:.1f} s wall, "
              f"{finite['cpu_seconds']:.1f} s CPU", file=sys.stderr, flush=True)

    check_rows = None
    if args.check:
        check_rows = full_check(mats, rows, args.vectors)

    figures = []
    if args.out is not None:
        from ntk_theory.plotting import comparison_figure, save_figure

        args.out.mkdir(parents=True, exist_ok=True)
        for kern in ("ck", "ntk"):
            title = (f"{kern.upper()}, 2-class GMM, n={n}, p={args.p}, {'-'.join(acts)}, "
                     f"widths {'/'.join(map(str, args.widths))} (paper size; SLQ histograms)")
            hist = {k: d.sample(n) for k, d in dens_all[kern].items()}
            fig = comparison_figure(hist, vec_all[kern], k=min(3, args.vectors),
                                    labels=data.labels, title=title)
            figures.append(str(save_figure(fig, args.out / f"experiment1_paper_gmm_{kern}.png")))

    command = "python3 benchmarks/bench_paper_size.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    result = {
        "total_seconds": total,
        "total_cpu_seconds": total_cpu,
        "eigvalsh_seconds": eig_sec,
        "eigvalsh_cpu_seconds": eig_cpu,
        "ratio": total / eig_sec,
        "ratio_cpu": total_cpu / eig_cpu,
        "stages": {k: {"seconds": sec[k], "cpu_seconds": cpu[k], "peak_rss_gib": mem[k]} for k in sec},
        "network_kernel_seconds": t_net,
        "peak_rss_gib": peak_gib(),
        "load_average": {"start": loads[0], "after_kernels": loads[1], "after_spectra": loads[2],
                         "after_eigvalsh": loads[3]},
        "n": n, "p": args.p, "widths": list(args.widths), "activation": args.act,
        "top": args.top, "probes": args.probes, "steps": args.steps,
        "rows": [{k: v for k, v in r.items() if k != "isolated"} for r in rows],
        "slq_check": slq_check,
        "finite_width": finite,
        "full_check": check_rows,
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "NUMPY_MADVISE_HUGEPAGE": os.environ.get("NUMPY_MADVISE_HUGEPAGE"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": command,
    }
    if args.json is not None:
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, args.json)  # atomic

    print(f"Theory vs exact vs empirical at the paper's size: n={n}, p={args.p}, "
          f"{'-'.join(acts)}, widths {list(args.widths)}, kernels float64, Lanczos/SLQ float32")
    print(f"{result['date']}, {os.cpu_count()} CPUs, numpy {np.__version__} "
          f"(NUMPY_MADVISE_HUGEPAGE={result['NUMPY_MADVISE_HUGEPAGE'] or '(unset)'}); load average "
          "(1/5/15 min) at start / after the kernels / after the spectra / after the reference: "
          + "; ".join("/".join(f"{v:.1f}" for v in la) for la in loads) + "\n")
    print("| stage | wall s | CPU s | peak RSS so far (GiB) |")
    print("|---|---:|---:|---:|")
    for k in sec:
        note = f" (network kernels {t_net:.1f} s)" if k == "empirical" else ""
        print(f"| {k}{note} | {sec[k]:.1f} | {cpu[k]:.1f} | {mem[k]:.1f} |")
    print(f"| **total** | **{total:.1f}** | **{total_cpu:.1f}** | **{peak_gib():.1f}** |")
    print(f"| reference: one {n}² float64 eigvalsh | {eig_sec:.1f} | {eig_cpu:.1f} | |")
    print(f"| **ratio total / eigvalsh** | **{total / eig_sec:.2f}** | **{total_cpu / eig_cpu:.2f}** | |\n")
    print("| kernel | ‖K̃−K‖/‖K‖ theory | ‖·‖ empirical | Frobenius theory | Frobenius empirical | "
          "W1 theory/empirical | isolated th/ex/emp | k | subspace th·ex | subspace emp·ex |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['kernel']} | {r['op_theory']:.4f} | {r['op_empirical']:.4f} | {r['fro_theory']:.4f} | "
              f"{r['fro_empirical']:.4f} | {r['w1_th_emp']:.4f} | {r['iso']} | {r['k']} | {r['align_th']:.4f} | "
              f"{r['align_emp']:.4f} |")
    for r in rows:
        print(f"\n{r['kernel']} top eigenvalues: " + "; ".join(
            f"{k} " + ", ".join(f"{v:.4f}" for v in r["top"][k]) for k in KINDS))
    print(f"\nSLQ vs the reference's full spectrum (exact NTK): W1 {slq_check['w1_relative']:.2e} of the "
          f"mean |λ|, quartiles within {slq_check['quartile_error_over_iqr']:.3f} IQR, top eigenvalues "
          f"within {slq_check['top_eigenvalue_max_relative_error']:.1e}·λ_max, isolated "
          f"{slq_check['isolated_partial']} (full spectrum: {slq_check['isolated_full']})")
    if finite is not None:
        print(f"\nFinite-width prediction of the empirical CK spectrum ({finite['method']}; "
              f"{finite['wall_seconds']:.1f} s wall, {finite['cpu_seconds']:.1f} s CPU): "
              f"W1(prediction, empirical) {finite['w1_prediction_vs_empirical']:.4g}, "
              f"W1(limit, empirical) {finite['w1_limit_vs_empirical']:.4g}, ratio {finite['w1_ratio']:.3f}; "
              "top eigenvalues empirical " + ", ".join(f"{v:.4g}" for v in finite["top_empirical"][:3])
              + " / predicted " + ", ".join(f"{v:.4g}" for v in finite["top_predicted"][:3])
              + " / limit " + ", ".join(f"{v:.4g}" for v in finite["top_limit"][:3]))
    if check_rows is not None:
        print("\nfull-decomposition check (|partial − full| per metric): "
              + json.dumps(check_rows["max_abs_difference"]))
    for f in figures:
        print(f"figure: {f}")
    print(f"\ncommand: {command}")
    return 0


def full_check(mats: dict, rows: list, n_vec: int) -> dict:
    """Every metric again from full float64 eigendecompositions, and the largest differences."""
    diffs: dict[str, float] = {}
    full_rows = []
    for kern, row in zip(("ck", "ntk"), rows):
        M = mats[kern]
        lam, U = {}, {}
        for k in KINDS:
            w, V = np.linalg.eigh(M[k])
            lam[k], U[k] = w[::-1], V[:, ::-1][:, :n_vec]
        nb = float(np.max(np.abs(lam["exact"])))
        fb = float(np.linalg.norm(M["exact"]))
        full = {}
        for k in ("theory", "empirical"):
            D = M[k] - M["exact"]
            full[f"op_{k}"] = float(np.max(np.abs(sla.eigvalsh(D, check_finite=False)))) / nb
            full[f"fro_{k}"] = float(np.linalg.norm(D)) / fb
            del D
        dens = {k: SpectralDensity.from_eigenvalues(lam[k]) for k in KINDS}
        full["w1_th_emp"] = density_w1(dens["theory"], dens["empirical"]) / dens["empirical"].mean_abs()
        iso = {k: isolated_count(lam[k]) for k in KINDS}
        k = max(1, min(iso["exact"], n_vec))
        full["align_th"] = float(np.sum((U["theory"][:, :k].T @ U["exact"][:, :k]) ** 2) / k)
        full["align_emp"] = float(np.sum((U["empirical"][:, :k].T @ U["exact"][:, :k]) ** 2) / k)
        full["iso"] = "/".join(str(iso[k]) for k in KINDS)
        full["kernel"] = kern.upper()
        full_rows.append(full)
        for key, v in full.items():
            if isinstance(v, float):
                diffs[f"{kern}_{key}"] = abs(v - row[key])
        diffs[f"{kern}_top_relative"] = max(
            float(np.max(np.abs(np.asarray(row["top"][k]) - lam[k][:3]))) / float(lam[k][0]) for k in KINDS)
    return {"rows": full_rows, "max_abs_difference": diffs}


if __name__ == "__main__":
    raise SystemExit(main())
