"""``ntk-theory spectrum``: theory vs exact vs empirical kernels (docs/reference.rst §3, §5, §7 Experiment 1).

Pipeline: data (GMM with population statistics, or a real data set with plug-in
estimates, docs/reference.rst §2) → coefficients at ``τ_0`` (§4) → theory kernel K̃ (§5) →
exact limiting kernel (§3) → empirical kernel of a NumPy MLP with Gaussian weights →
spectral comparison (:func:`ntk_theory.spectral.compare_kernels`) and, with
``--plot``, the Experiment-1 figure (histograms and leading eigenvectors).

Everything random derives from ``--seed`` (GMM means: ``seed``, samples: ``seed+1``,
weights: ``seed+2``), so the same command prints the same numbers; only the keys
containing ``seconds`` change between runs.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

# light imports only: the parser is built for every command (see ntk_theory.cli); NumPy and the
# kernel modules are imported by run()
from ..errors import DomainError, ParameterError, ResourceError
from ._common import dump_json, nonnegative_int, positive_int

# ntk_theory.theory.IDENTITY_CONVENTIONS, spelled out so that building the parser does not import
# NumPy (tests/test_cli_startup.py checks they agree)
IDENTITY_CONVENTIONS: tuple[str, ...] = ("diagonal", "printed")

HELP = "theory vs exact vs empirical CK/NTK spectra on GMM or real data (Experiment 1 of NTK-LC)"

_TOP = 10


def _widths(text: str) -> list[int]:
    try:
        ws = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a width or a comma-separated list of widths") from None
    if not ws or any(w < 1 for w in ws):
        raise argparse.ArgumentTypeError(f"widths must be positive integers, got '{text}'")
    return ws


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("activations", nargs="+", metavar="ACT", help="activation of each layer, first layer first")
    p.add_argument("--n", type=positive_int, default=800, help="number of samples (default 800)")
    p.add_argument("--p", type=positive_int, default=None,
                   help="dimension of GMM data (default 2n/3; fixed by the data set for digits/mnist)")
    p.add_argument("--classes", type=positive_int, default=2, help="number of classes K (default 2)")
    p.add_argument("--width", type=_widths, default=[2000], metavar="D[,D...]",
                   help="hidden width of every layer, or one width per layer (default 2000)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of data and weights (default 0)")
    p.add_argument("--kernel", choices=("ck", "ntk"), default="ck", help="conjugate kernel or NTK (default ck)")
    p.add_argument("--data", choices=("gmm", "digits", "mnist"), default="gmm",
                   help="two-moment GMM (population statistics) or a shipped data set (plug-in estimates)")
    p.add_argument("--identity", choices=IDENTITY_CONVENTIONS, default="diagonal",
                   help="identity term of the theory kernel (default 'diagonal', see the docs' identity page)")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="write spectral histograms and leading eigenvectors to this image")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def memory_estimate(n: int, p: int, widths: list[int], L: int) -> int:
    """Peak bytes of the run: exact kernels (the largest stage), the network's kernels, and
    the three kept n×n kernels plus one eigendecomposition work space."""
    import numpy as np

    from ..exact import exact_memory_bytes
    from ..network import ntk_memory_bytes

    kept = 4 * 8 * n * n + 8 * p * n
    return int(max(exact_memory_bytes(n, L), ntk_memory_bytes(n, p, widths, np.float64)) + kept)


def _data(args: argparse.Namespace):
    if args.data == "gmm":
        p = args.p if args.p is not None else max(1, 2 * args.n // 3)
        if args.classes > p:
            raise ParameterError(f"--classes {args.classes} exceeds the dimension p={p}")
        if args.n < 2 * args.classes:
            raise ParameterError(f"--n {args.n} is too small for {args.classes} classes (need >= {2 * args.classes})")
        return None, p
    p = {"digits": 64, "mnist": 784}[args.data]
    if args.p is not None and args.p != p:
        raise ParameterError(f"--p is fixed to {p} by the {args.data} data set (got {args.p})")
    if not 1 <= args.classes <= 10:
        raise ParameterError(f"--classes must be between 1 and 10 for {args.data}, got {args.classes}")
    return list(range(args.classes)), p


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ..activations import parse_activation
    from ..data import estimate_statistics, gmm, load_dataset, population_statistics, sample
    from ..exact import MEMORY_LIMIT_BYTES, exact_kernels
    from ..network import MLP
    from ..spectral import compare_kernels, spectrum
    from ..theory import theory_kernels

    t_start = time.perf_counter()
    acts = [parse_activation(a) for a in args.activations]
    L = len(acts)
    widths = args.width * L if len(args.width) == 1 else args.width
    if len(widths) != L:
        raise ParameterError(f"--width needs one width or {L} (one per layer), got {len(args.width)}")
    if args.kernel == "ntk" and any(a.staircase is not None for a in acts):
        raise DomainError("the NTK of a network with a staircase layer has an infinite diagonal "
                          "(E[s'^2] = inf); use --kernel ck")
    classes, p = _data(args)
    n = args.n
    need = memory_estimate(n, p, widths, L)
    if need > MEMORY_LIMIT_BYTES:
        raise ResourceError.memory(f"spectra for n={n}, p={p}, widths={widths}", need, MEMORY_LIMIT_BYTES)
    if args.plot is not None:  # refused before the computation, not after it
        from ..io import check_output_path

        check_output_path(args.plot, (".png", ".pdf", ".svg"), what="--plot")

    show = (not args.quiet) and sys.stderr.isatty()
    stages = ["data", "theory", "exact", "empirical", "spectra", "prediction"] + (["plot"] if args.plot else [])
    bar = tqdm(total=len(stages), desc="spectrum", disable=not show, leave=False, file=sys.stderr)
    seconds: dict[str, float] = {}

    def done(stage: str, t0: float) -> None:
        seconds[f"seconds_{stage}"] = time.perf_counter() - t0
        bar.set_postfix_str(stage)
        bar.update(1)

    t0 = time.perf_counter()
    if classes is None:
        spec = gmm(p, args.classes, seed=args.seed)
        data = sample(spec, n, seed=args.seed + 1)
        stats = population_statistics(data)
    else:
        data = load_dataset(args.data, n=n, classes=classes, seed=args.seed + 1)
        stats = estimate_statistics(data.X, data.labels)
    done("data", t0)

    want_ntk = args.kernel == "ntk"
    t0 = time.perf_counter()
    th = theory_kernels(data.X, stats, acts, ntk=want_ntk, identity=args.identity)
    K_theory = th.ntk if want_ntk else th.ck
    done("theory", t0)

    t0 = time.perf_counter()
    ex = exact_kernels(data.X, acts, tau0=stats.tau0, ntk=want_ntk)
    K_exact = ex.ntk if want_ntk else ex.ck
    done("exact", t0)

    t0 = time.perf_counter()
    net = MLP(acts, widths, p, seed=args.seed + 2, tau0=stats.tau0)
    em = net.kernels(data.X, ntk=want_ntk, ck=not want_ntk, progress=show)
    K_emp = em.ntk if want_ntk else em.ck[-1]
    done("empirical", t0)

    t0 = time.perf_counter()
    specs = {name: spectrum(K, _TOP) for name, K in
             (("theory", K_theory), ("exact", K_exact), ("empirical", K_emp))}
    th_ex = compare_kernels(K_theory, K_exact, names=("theory", "exact"), n_top=_TOP,
                            spectra=(specs["theory"], specs["exact"]))
    em_ex = compare_kernels(K_emp, K_exact, names=("empirical", "exact"), n_top=_TOP,
                            spectra=(specs["empirical"], specs["exact"]))
    th_em = compare_kernels(K_theory, K_emp, names=("theory", "empirical"), n_top=_TOP,
                            spectra=(specs["theory"], specs["empirical"]))
    done("spectra", t0)

    t0 = time.perf_counter()
    fw = _finite_width(acts, data.X, widths, args.kernel, stats.tau0, specs["empirical"].eigenvalues,
                       specs["exact"].eigenvalues)
    if fw.get("warning"):
        print(fw["warning"], file=sys.stderr)
    done("prediction", t0)

    if args.plot:
        import numpy as np

        from ..plotting import comparison_figure, save_figure

        t0 = time.perf_counter()
        hists = {k: s.eigenvalues for k, s in specs.items()}
        if fw["available"]:
            hists["finite-width prediction"] = np.asarray(fw.pop("_eigenvalues"))
        fig = comparison_figure(hists,
                                {k: s.top_vectors for k, s in specs.items()}, k=2, labels=data.labels,
                                title=f"{args.kernel.upper()}: {', '.join(a.spec for a in acts)} "
                                      f"({args.data}, n={n}, p={p})")
        save_figure(fig, args.plot)
        done("plot", t0)
    bar.close()
    seconds["seconds_total"] = time.perf_counter() - t_start

    out: dict[str, Any] = {
        "activations": [a.spec for a in acts],
        "kernel": args.kernel,
        "data": args.data,
        "identity": args.identity,
        "seed": args.seed,
        "n": n,
        "p": p,
        "classes": int(data.K),
        "widths": widths,
        "tau0": stats.tau0,
        "statistics": stats.kind,
        "rel_opnorm_theory_vs_exact": th_ex.rel_opnorm,
        "rel_frobenius_theory_vs_exact": th_ex.rel_frobenius,
        "rel_opnorm_empirical_vs_exact": em_ex.rel_opnorm,
        "rel_frobenius_empirical_vs_exact": em_ex.rel_frobenius,
        "rel_opnorm_theory_vs_empirical": th_em.rel_opnorm,
        "w1_spectrum_theory_vs_empirical": th_em.w1,
        "w1_spectrum_theory_vs_exact": th_ex.w1,
        "w1_spectrum_empirical_vs_exact": em_ex.w1,
        "top_eigenvalues": {"theory": list(th_ex.top_a), "exact": list(th_ex.top_b),
                            "empirical": list(em_ex.top_a)},
        "isolated_eigenvalues": {"theory": th_ex.isolated_a, "exact": th_ex.isolated_b,
                                 "empirical": em_ex.isolated_a},
        "eigenvector_alignment": {"theory_vs_exact": list(th_ex.alignment),
                                  "empirical_vs_exact": list(em_ex.alignment)},
        "finite_width": {k: v for k, v in fw.items() if not k.startswith("_")},
        **seconds,
    }
    if args.plot:
        out["plot"] = args.plot
    if args.json:
        dump_json(out)
    else:
        _print_text(out)
    return 0


def _finite_width(acts, X, widths, kernel: str, tau0: float, emp, exact) -> dict[str, Any]:
    """Finite-width prediction of the empirical spectrum (same centering as the network), its
    W1 distance to the empirical spectrum next to the limit's, and the width warning."""
    from ..errors import NTKTheoryError
    from ..finite_width import bulk_warning, predict_spectrum, w1_sorted

    n = X.shape[1]
    try:
        spec = predict_spectrum(acts, X, widths, kernel=kernel, centered=True, tau0=tau0)
    except NTKTheoryError as exc:  # outside the theory (deep NTK, staircase NTK) or a failed solve
        out: dict[str, Any] = {"available": False, "reason": str(exc)}
        warn = bulk_warning(n, widths)
        if warn:
            out["warning"] = warn
        return out
    w_pred, w_lim = w1_sorted(spec.eigenvalues, emp), w1_sorted(exact, emp)
    out = {"available": True, **spec.to_dict(),
           "w1_prediction_vs_empirical": w_pred, "w1_exact_vs_empirical": w_lim,
           "w1_ratio": w_pred / w_lim if w_lim > 0 else None, "_eigenvalues": spec.eigenvalues}
    warn = bulk_warning(n, widths, spec)
    if warn:
        out["warning"] = warn
    return out


def _print_text(o: dict[str, Any]) -> None:
    print(f"{o['kernel'].upper()} of {' -> '.join(o['activations'])}  |  {o['data']}: n={o['n']}, p={o['p']}, "
          f"K={o['classes']}, widths={o['widths']}, tau0={o['tau0']:.6g}, identity={o['identity']}")
    print(f"relative operator-norm error  theory vs exact    : {o['rel_opnorm_theory_vs_exact']:.4g}")
    print(f"relative operator-norm error  empirical vs exact : {o['rel_opnorm_empirical_vs_exact']:.4g}")
    print(f"W1 between spectra            theory vs empirical: {o['w1_spectrum_theory_vs_empirical']:.4g}")
    for name in ("theory", "exact", "empirical"):
        top = ", ".join(f"{v:.4g}" for v in o["top_eigenvalues"][name][:5])
        print(f"top eigenvalues {name:<9}: {top}  ({o['isolated_eigenvalues'][name]} isolated)")
    fw = o["finite_width"]
    if fw["available"]:
        top = ", ".join(f"{v:.4g}" for v in fw["top_eigenvalues"][:5])
        print(f"top eigenvalues predicted: {top}  (finite width, {len(fw['outliers'])} outliers, bulk edge "
              f"{fw['bulk_edge']:.4g})")
        print(f"W1 to the empirical spectrum  finite-width prediction: {fw['w1_prediction_vs_empirical']:.4g}, "
              f"exact limit: {fw['w1_exact_vs_empirical']:.4g}")
    else:
        print(f"finite-width prediction not available: {fw['reason']}")
    print(f"time: {o['seconds_total']:.2f} s" + (f"; figure: {o['plot']}" if "plot" in o else ""))
    if not all(math.isfinite(v) for v in (o["rel_opnorm_theory_vs_exact"], o["rel_opnorm_empirical_vs_exact"])):
        print("warning: a kernel has non-finite entries", file=sys.stderr)
