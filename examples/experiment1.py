"""Experiment 1: spectra of theory, exact and empirical CK/NTK
===========================================================

Reproduces the first experiment of NTK-LC (docs/reference.rst §7.1): for Gaussian-mixture data
and an MNIST subset, compare the spectra and leading eigenvectors of

* the **theory** kernels K̃_CK,L and K̃_NTK,L of the equivalence theorems (docs/reference.rst §5,
  :func:`ntk_theory.theory.theory_kernels`, identity convention ``"diagonal"``),
* the **exact** limiting kernels K_L and Θ_L of the infinitely wide network (§3,
  :func:`ntk_theory.exact.exact_kernels`), and
* the **empirical** kernels CK_L and the NTK of one random NumPy network of finite
  widths (§3, :class:`ntk_theory.network.MLP`),

for the same data.  Data statistics (§2): population values for the mixture
(:func:`ntk_theory.data.population_statistics`), plug-in estimates for MNIST
(:func:`ntk_theory.data.estimate_statistics`).  All three kernels use the same τ_0
(the statistics' ``tau0``), so the network's centering constants are the theory's.

Reported per data set and kernel (CK, NTK): relative operator-norm and Frobenius errors
of theory and empirical against exact, the Wasserstein-1 distance between the theory
and empirical spectra (relative to the mean absolute eigenvalue of the empirical one),
isolated eigenvalue counts and the alignment of the leading eigenvectors
(:func:`ntk_theory.spectral.compare_kernels`); figures are overlaid eigenvalue
histograms and the leading eigenvectors (:func:`ntk_theory.plotting.comparison_figure`).

Usage (the docs figures, ``docs/experiment1.rst``)::

    python3 examples/experiment1.py --out docs/figures

Quick settings for CI (n = 300, widths 1500/1500/1000; about 10 s; these run in the
docs gallery)::

    python3 examples/experiment1.py --quick --out /tmp/exp1

The result is a Markdown table on stdout and, with ``--json FILE``, the same numbers as
JSON.  Same arguments and seed ⇒ identical numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg as sla
from scipy.sparse.linalg import eigsh
from scipy.stats import wasserstein_distance
from threadpoolctl import threadpool_limits

from ntk_theory.data import Dataset, estimate_statistics, gmm, load_dataset, population_statistics, sample
from ntk_theory.errors import NTKTheoryError, ParameterError
from ntk_theory.exact import exact_kernels
from ntk_theory.network import MLP
from ntk_theory.plotting import comparison_figure, save_figure
from ntk_theory.spectral import Spectrum, compare_kernels
from ntk_theory.theory import theory_kernels

__all__ = ["Settings", "DatasetResult", "run_dataset", "run", "main", "top_spectrum", "parallel"]

KINDS = ("theory", "exact", "empirical")
KERNELS = ("ck", "ntk")


@dataclass(frozen=True)
class Settings:
    """Sizes and seeds of one run.

    Attributes
    ----------
    acts : tuple of str
        Activations ``σ_1..σ_L``.
    widths : tuple of int
        Widths ``d_1..d_L`` of the empirical network.
    n_gmm, p_gmm, classes_gmm : int
        Mixture: samples, dimension, classes.
    n_mnist : int
        MNIST samples (p = 784).
    mnist_classes : tuple of int or None
        Digits kept (None: all ten).
    seed : int
        Seed of the mixture, the samples and the network.
    n_vectors : int
        Leading eigenvectors computed (and ``min(n_vectors, 3)`` plotted).
    mnist_tau0 : {"norm", "statistics"}
        τ_0 for MNIST: ``"norm"`` (default) ``τ_0² = mean_i ‖x_i‖²``, the scale the network
        actually sees (= 1 after :func:`ntk_theory.data.load_dataset`'s normalisation);
        ``"statistics"`` the plug-in ``tr(Ĉ°)/p``, which leaves out ``‖μ̂_a‖²/p``.  The
        two agree in docs/reference.rst §2's regime (``‖μ_a‖ = O(1)``); for MNIST the class means
        carry a sizeable share of the energy (``‖μ̂_a‖²/p = O(1)``) and the plug-in value
        (≈ 0.88) misplaces the diagonal of K̃ (see ``docs/experiment1.rst``).
    """

    acts: tuple[str, ...] = ("relu", "relu", "relu")
    widths: tuple[int, ...] = (2000, 2000, 1000)
    n_gmm: int = 3200
    p_gmm: int = 1600
    classes_gmm: int = 2
    n_mnist: int = 3200
    mnist_classes: tuple[int, ...] | None = None
    seed: int = 0
    n_vectors: int = 4
    mnist_tau0: str = "norm"


#: Quick settings used by the tests and CI (a few seconds).
QUICK = Settings(widths=(1500, 1500, 1000), n_gmm=300, p_gmm=150, n_mnist=300)


@dataclass(frozen=True, eq=False)
class DatasetResult:
    """Everything measured on one data set.

    Attributes
    ----------
    name : str
        ``"gmm"`` or ``"mnist"``.
    n, p, K : int
    tau0 : float
    statistics : str
        ``"population"`` or ``"estimate"``.
    metrics : dict
        ``metrics[kernel]`` for ``kernel`` in ``("ck", "ntk")``: JSON-ready numbers.
    seconds : dict
        Wall time of each stage.
    figures : tuple of str
        Paths of the written figures.
    """

    name: str
    n: int
    p: int
    K: int
    tau0: float
    statistics: str
    metrics: dict[str, dict[str, Any]]
    seconds: dict[str, float]
    figures: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.name, "n": self.n, "p": self.p, "K": self.K, "tau0": self.tau0,
                "statistics": self.statistics, "metrics": self.metrics,
                "seconds": self.seconds, "figures": list(self.figures)}


def top_spectrum(A: np.ndarray, k: int) -> Spectrum:
    """All eigenvalues of the symmetric ``A`` (LAPACK) and its ``k`` leading eigenvectors.

    The eigenvectors come from Lanczos (:func:`scipy.sparse.linalg.eigsh`, start vector
    fixed for reproducibility) rather than a second dense decomposition; they are sorted
    by decreasing eigenvalue.
    """
    A = np.asarray(A, dtype=float)
    n = A.shape[0]
    lam = sla.eigvalsh(A)
    k = max(1, min(int(k), n - 2))
    if n <= 200:
        _, U = sla.eigh(A, subset_by_index=[n - k, n - 1])
    else:
        v0 = np.ones(n) / np.sqrt(n)
        _, U = eigsh(A, k=k, which="LA", v0=v0, tol=1e-10)
    return Spectrum(eigenvalues=lam, top_vectors=U[:, ::-1])


def parallel(fns: Sequence[Callable[[], Any]], workers: int | None = None) -> list[Any]:
    """Run independent dense linear-algebra jobs on ``workers`` threads, BLAS single-threaded.

    LAPACK's symmetric eigensolvers are dominated by many small, synchronising BLAS-2
    calls; with multi-threaded BLAS on a shared 2-core machine they were measured 10–80×
    slower than single-threaded (``eigvalsh`` of an 800×800 matrix: 7–13 s vs 0.15 s at
    load average 11).  One job per thread avoids that and still uses every core.
    """
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
        futures = [ex.submit(fn) for fn in fns]
        return [f.result() for f in futures]


def _load(name: str, s: Settings) -> tuple[Dataset, Any]:
    if name == "gmm":
        spec = gmm(s.p_gmm, s.classes_gmm, seed=s.seed)
        data = sample(spec, s.n_gmm, seed=s.seed + 1)
        return data, population_statistics(data)
    if name == "mnist":
        data = load_dataset("mnist", n=s.n_mnist, classes=s.mnist_classes, seed=s.seed)
        stats = estimate_statistics(data.X, data.labels)
        if s.mnist_tau0 == "norm":
            stats = replace(stats, tau0=float(np.sqrt(np.mean(np.sum(data.X**2, axis=0)))))
        elif s.mnist_tau0 != "statistics":
            raise ParameterError(f"mnist_tau0 must be 'norm' or 'statistics', got '{s.mnist_tau0}'")
        return data, stats
    raise ParameterError(f"unknown data set '{name}' (use gmm or mnist)")


def run_dataset(name: str, s: Settings, out: Path | None = None, *, quiet: bool = True) -> DatasetResult:
    """Theory, exact and empirical CK/NTK on one data set, compared and (optionally) plotted."""
    sec: dict[str, float] = {}
    t = time.perf_counter()
    data, stats = _load(name, s)
    sec["data_seconds"] = time.perf_counter() - t

    t = time.perf_counter()
    th = theory_kernels(data.X, stats, s.acts, ntk=True)
    sec["theory_seconds"] = time.perf_counter() - t

    t = time.perf_counter()
    ex = exact_kernels(data.X, s.acts, tau0=stats.tau0)
    sec["exact_seconds"] = time.perf_counter() - t

    t = time.perf_counter()
    net = MLP(s.acts, s.widths, p=data.p, seed=s.seed, tau0=stats.tau0)
    em = net.kernels(data.X, progress=False if quiet else None)
    sec["empirical_seconds"] = time.perf_counter() - t

    mats = {"ck": {"theory": th.ck, "exact": ex.ck, "empirical": em.ck[-1]},
            "ntk": {"theory": th.ntk, "exact": ex.ntk, "empirical": em.ntk}}
    metrics: dict[str, dict[str, Any]] = {}
    figures = []
    t = time.perf_counter()
    jobs = [(kern, kind) for kern in KERNELS for kind in KINDS]
    done = parallel([lambda kk=kk: top_spectrum(mats[kk[0]][kk[1]], s.n_vectors) for kk in jobs])
    all_spectra = {kern: {} for kern in KERNELS}
    for (kern, kind), sp in zip(jobs, done):
        all_spectra[kern][kind] = sp
    pairs = [(kern, kind) for kern in KERNELS for kind in ("theory", "empirical")]
    comps = parallel([lambda kk=kk: compare_kernels(
        mats[kk[0]][kk[1]], mats[kk[0]]["exact"], names=(kk[1], "exact"), n_top=s.n_vectors,
        spectra=(all_spectra[kk[0]][kk[1]], all_spectra[kk[0]]["exact"])) for kk in pairs])
    comp = dict(zip(pairs, comps))
    for kern in KERNELS:
        spectra = all_spectra[kern]
        c_th, c_em = comp[(kern, "theory")], comp[(kern, "empirical")]
        lt, le = spectra["theory"].eigenvalues, spectra["empirical"].eigenvalues
        w1 = float(wasserstein_distance(lt, le))
        Ut, Ue = spectra["theory"].top_vectors, spectra["empirical"].top_vectors
        k = max(1, min(c_th.isolated_b, Ut.shape[1]))
        metrics[kern] = {
            "rel_opnorm_theory_vs_exact": c_th.rel_opnorm,
            "rel_frobenius_theory_vs_exact": c_th.rel_frobenius,
            "rel_opnorm_empirical_vs_exact": c_em.rel_opnorm,
            "rel_frobenius_empirical_vs_exact": c_em.rel_frobenius,
            "w1_spectrum_theory_vs_exact": c_th.w1_relative,
            "w1_spectrum_empirical_vs_exact": c_em.w1_relative,
            "w1_spectrum_theory_vs_empirical": w1 / float(np.mean(np.abs(le))),
            "isolated": {"theory": c_th.isolated_a, "exact": c_th.isolated_b, "empirical": c_em.isolated_a},
            "alignment_theory_vs_exact": list(c_th.alignment),
            "alignment_empirical_vs_exact": list(c_em.alignment),
            "alignment_theory_vs_empirical": [float(abs(Ut[:, i] @ Ue[:, i])) for i in range(k)],
            "subspace_alignment_theory_vs_exact": c_th.subspace_alignment,
            "subspace_alignment_empirical_vs_exact": c_em.subspace_alignment,
            "top_eigenvalues": {kind: [float(v) for v in spectra[kind].eigenvalues[::-1][:s.n_vectors]]
                                for kind in KINDS},
        }
        if out is not None:
            label = "MNIST subset" if name == "mnist" else f"{s.classes_gmm}-class GMM"
            title = (f"{kern.upper()}, {label}, n={data.n}, p={data.p}, "
                     f"{'-'.join(s.acts)}, widths {'/'.join(map(str, s.widths))}")
            fig = comparison_figure({kind: spectra[kind].eigenvalues for kind in KINDS},
                                    {kind: spectra[kind].top_vectors for kind in KINDS},
                                    k=min(3, s.n_vectors), labels=data.labels, title=title)
            figures.append(str(save_figure(fig, out / f"experiment1_{name}_{kern}.png")))
    sec["spectra_seconds"] = time.perf_counter() - t
    return DatasetResult(name=name, n=data.n, p=data.p, K=data.K, tau0=float(stats.tau0),
                         statistics=stats.kind, metrics=metrics, seconds=sec, figures=tuple(figures))


def run(datasets: Sequence[str], s: Settings, out: Path | None = None, *, quiet: bool = True) -> list[DatasetResult]:
    """:func:`run_dataset` for every name in ``datasets``."""
    return [run_dataset(name, s, out, quiet=quiet) for name in datasets]


def markdown_table(results: Sequence[DatasetResult]) -> str:
    """The error table of ``docs/experiment1.rst`` (Markdown pipe table)."""
    head = ("| data | n | p | kernel | ‖K̃−K‖/‖K‖ theory | ‖·‖ empirical | Frobenius theory | "
            "Frobenius empirical | W1 theory/empirical | isolated th/ex/emp | subspace th·ex | subspace emp·ex |")
    lines = [head, "|" + "---|" * 12]
    for r in results:
        for kern in KERNELS:
            m = r.metrics[kern]
            iso = m["isolated"]
            lines.append(
                f"| {r.name} | {r.n} | {r.p} | {kern.upper()} | {m['rel_opnorm_theory_vs_exact']:.3f} | "
                f"{m['rel_opnorm_empirical_vs_exact']:.3f} | {m['rel_frobenius_theory_vs_exact']:.3f} | "
                f"{m['rel_frobenius_empirical_vs_exact']:.3f} | {m['w1_spectrum_theory_vs_empirical']:.3f} | "
                f"{iso['theory']}/{iso['exact']}/{iso['empirical']} | "
                f"{m['subspace_alignment_theory_vs_exact']:.3f} | {m['subspace_alignment_empirical_vs_exact']:.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="NTK-LC Experiment 1: spectra of theory, exact and "
                                 "empirical CK/NTK (docs/reference.rst §7.1)")
    ap.add_argument("--quick", action="store_true", help="small sizes for CI (overrides the size options)")
    ap.add_argument("--data", default="gmm,mnist", help="comma-separated: gmm, mnist (default both)")
    ap.add_argument("--acts", nargs="+", default=list(Settings.acts), metavar="ACT")
    ap.add_argument("--widths", nargs="+", type=int, default=list(Settings.widths), metavar="D")
    ap.add_argument("--n-gmm", type=int, default=Settings.n_gmm)
    ap.add_argument("--p-gmm", type=int, default=Settings.p_gmm)
    ap.add_argument("--classes-gmm", type=int, default=Settings.classes_gmm)
    ap.add_argument("--n-mnist", type=int, default=Settings.n_mnist)
    ap.add_argument("--mnist-classes", type=int, nargs="+", default=None, metavar="DIGIT")
    ap.add_argument("--mnist-tau0", choices=("norm", "statistics"), default="norm",
                    help="tau0 for MNIST: mean squared norm (default) or the plug-in tr(C)/p")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("."),
                    help="directory for the PNG figures (created; default: current directory)")
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    names = [d.strip() for d in args.data.split(",") if d.strip()]
    if args.quick:
        s = Settings(acts=tuple(args.acts), widths=QUICK.widths, n_gmm=QUICK.n_gmm, p_gmm=QUICK.p_gmm,
                     classes_gmm=args.classes_gmm, n_mnist=QUICK.n_mnist,
                     mnist_classes=tuple(args.mnist_classes) if args.mnist_classes else None, seed=args.seed,
                     mnist_tau0=args.mnist_tau0)
    else:
        s = Settings(acts=tuple(args.acts), widths=tuple(args.widths), n_gmm=args.n_gmm, p_gmm=args.p_gmm,
                     classes_gmm=args.classes_gmm, n_mnist=args.n_mnist,
                     mnist_classes=tuple(args.mnist_classes) if args.mnist_classes else None, seed=args.seed,
                     mnist_tau0=args.mnist_tau0)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        results = run(names, s, args.out, quiet=args.quiet)
    except NTKTheoryError as exc:
        print(f"experiment1: error: {exc}", file=sys.stderr)
        return 2
    total = time.perf_counter() - t0
    print(f"NTK-LC Experiment 1 — {'-'.join(s.acts)}, widths {list(s.widths)}, seed {s.seed}, "
          f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, total {total:.0f} s\n")
    print(markdown_table(results))
    for r in results:
        print(f"\n{r.name}: tau0={r.tau0:.4f} ({r.statistics} statistics); "
              + ", ".join(f"{k} {v:.1f}" for k, v in r.seconds.items()))
        for f in r.figures:
            print(f"  figure: {f}")
    cmd = "python3 examples/experiment1.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"\ncommand: {cmd.strip()}")
    if args.json is not None:
        args.json.write_text(json.dumps({"settings": {**s.__dict__}, "command": cmd.strip(),
                                         "results": [r.to_dict() for r in results],
                                         "total_seconds": total}, indent=2, default=list))
    return 0


if __name__ == "__main__":
    # exit status only on failure: the docs gallery runs this file in-process (no SystemExit)
    status = main()
    if status:
        if "sphinx_gallery" in sys.modules:  # in the docs build a SystemExit would end it silently
            raise RuntimeError(f"example experiment1.py failed with exit status {status} "
                               "(its error message is on stderr above)")
        raise SystemExit(status)
