"""``ntk-theory demo``: the toolkit's main job end to end on an embedded default.

GMM data (docs/reference.rst §2, 3 classes, n = 360, p = 240, population statistics) and a
3-layer centered ReLU network:

1. coefficients α, β, τ, κ per layer (docs/reference.rst §4);
2. NTK-LC compression (docs/reference.rst §6) at the data's τ_0, sparse ternary weights at
   ε = 0.9, with two activation families side by side: the paper's ``sigma_T`` (one
   bit per activation) and a 4-level ``staircase:4`` (two bits); per layer the solved
   parameters and residuals, δ = τ'_L² − τ_L² and the ridge shift;
3. verification (:mod:`ntk_theory.verify`): (a) α, β recomputed from the compressed
   activations' own moments; (c) exact compressed CK − δI vs the dense exact CK, and
   the CK spectra of wide dense/compressed NumPy networks (figure);
4. readouts (:mod:`ntk_theory.readout`) with the ridge λ chosen by 5-fold
   cross-validation **for each network separately** (the fair comparison), averaged over
   random train/test splits: on the exact limiting kernels (infinite width, where the
   theory is exact) and on the wide networks' features; softmax regression on one split;
   the exact ridge-shift identity on the theory kernels (docs/reference.rst §5);
5. bit accounting of the compressed weights.

**What the numbers show** (docs/compression.rst has the measurements).  α-matching
makes the compressed kernel the dense one plus δI.  At infinite width that costs
only a ridge floor (the compressed readout with λ is the dense one with λ + δ, so
when the dense optimum λ* is below δ some accuracy is lost).  At finite width d the
empirical CK fluctuates around its limit by O(‖K'‖√(n/d)) (docs/reference.rst §3) and
‖K'‖ ≥ δ: with ``sigma_T`` δ ≈ 10 τ_L² and the informative spikes drown in the
fluctuation, so its readouts are near chance at widths 2000, whereas ``staircase:4``
(δ ≈ 1.3 τ_L²) stays close to the dense network.  The demo prints both.

Everything is computed on the spot (nothing is hard-coded); a run takes well under a
minute of CPU on 2 cores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .coefficients import coefficients
from .compress import CompressionResult, bit_accounting, compress_network, ternary_weights
from .data import gmm, population_statistics, sample
from .errors import ParameterError
from .io import check_output_path
from .plotting import save_figure, spectra_figure
from .readout import accuracy, kernel_ridge_accuracy, kernel_ridge_cv, softmax_fit
from .spectral import relative_errors
from .verify import (
    compressed_network,
    dense_network,
    verify_coefficients,
    verify_kernels,
    verify_ridge_shift,
)

__all__ = ["DemoSettings", "DemoResult", "run_demo"]

#: the figures :func:`run_demo` writes into its output directory
FIGURE_NAMES = ("demo_spectra.png", "demo_readouts.png")


@dataclass(frozen=True)
class DemoSettings:
    """The embedded default (change only for experiments; the CLI uses these values).

    ``families[0]`` is the headline compression (``compression`` in the result); every
    family gets its own compressed network, verification and readouts.
    """

    n: int = 360
    p: int = 240
    classes: int = 3
    activations: tuple[str, ...] = ("relu", "relu", "relu")
    widths: tuple[int, ...] = (2000, 2000, 2000)
    sparsity: float = 0.9
    families: tuple[str, ...] = ("sigma_T", "staircase:4")
    lam: float = 1.0
    splits: int = 8
    folds: int = 5
    test_fraction: float = 0.25
    seed: int = 0


@dataclass(frozen=True)
class DemoResult:
    settings: DemoSettings
    tau0: float
    coefficients: dict
    compression: dict
    verification: dict
    readouts: dict
    bits: dict
    figures: tuple[str, ...]
    seconds: float
    families: dict = field(default_factory=dict)
    lines: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("tau0", "coefficients", "compression", "verification",
                                               "readouts", "bits", "figures", "seconds", "families")}


def _splits(n: int, s: DemoSettings) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    m = max(1, int(round(s.test_fraction * n)))
    for k in range(s.splits):
        perm = np.random.default_rng(s.seed + 100 + k).permutation(n)
        out.append((np.sort(perm[m:]), np.sort(perm[:m])))
    return out


def _ridge_summary(G: np.ndarray, y: np.ndarray, splits: list, s: DemoSettings) -> dict[str, float]:
    """Mean ± standard error of the test accuracy of ridge with λ chosen by CV per split."""
    accs, lams = [], []
    for k, (tr, te) in enumerate(splits):
        cv = kernel_ridge_cv(G, y, tr, folds=s.folds, seed=s.seed + k)
        lams.append(cv.lam)
        accs.append(kernel_ridge_accuracy(G, y, tr, te, cv.lam))
    a = np.asarray(accs)
    return {"ridge": float(a.mean()), "ridge_se": float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else 0.0,
            "ridge_lambda_median": float(np.median(lams))}


def _single_threaded_blas():
    """One BLAS thread for the many small eigendecompositions: on the shared 2-core machine
    multi-threaded LAPACK on 300×300 matrices burns ~80× the CPU time (measured: 0.95 s vs
    0.012 s CPU per 270×270 ``eigh`` under load).  A no-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def run_demo(outdir: str | Path = ".", settings: DemoSettings = DemoSettings()) -> DemoResult:
    """Run the demo, write its PNG figures to ``outdir`` and return the numbers and summary lines."""
    with _single_threaded_blas():
        return _run_demo(outdir, settings)


def _run_demo(outdir: str | Path, settings: DemoSettings) -> DemoResult:
    t_start = time.perf_counter()
    out = Path(outdir)
    if not out.is_dir():
        raise ParameterError(f"output directory '{out}' does not exist")
    for name in FIGURE_NAMES:  # writable? checked before the (long) computation
        check_output_path(out / name, (".png",), what="demo figure")
    s = settings
    if not s.families:
        raise ParameterError("the demo needs at least one compression family")
    data = sample(gmm(s.p, s.classes, seed=s.seed + 1), s.n, seed=s.seed + 2)
    st = population_statistics(data)
    X, y = data.X, data.labels
    acts = list(s.activations)
    coefs = coefficients(acts, st.tau0)
    splits = _splits(s.n, s)
    tr0, te0 = splits[0]
    eye = np.eye(s.n)

    def softmax_acc(F: np.ndarray) -> float:
        sm = softmax_fit(F[:, tr0], y[tr0], 1e-4, steps=200, tol=1e-5, n_classes=s.classes)
        return accuracy(sm.predict(F[:, te0]), y[te0])

    dn = dense_network(compress_network(acts, st.tau0, family=s.families[0]), s.p, s.widths, seed=s.seed)
    Fd = np.asarray(dn.forward(X)[-1], dtype=float)
    Gd = Fd.T @ Fd
    fam: dict[str, dict[str, Any]] = {}
    results: dict[str, CompressionResult] = {}
    K_exact_dense = None
    spectra = {}
    for f in s.families:
        res = compress_network(acts, st.tau0, family=f)
        results[f] = res
        chk_a = verify_coefficients(res)
        chk_c = verify_kernels(X, res, keep=True)
        if K_exact_dense is None:
            K_exact_dense = chk_c.K_dense
            Gd_exact_err = relative_errors(Gd, K_exact_dense)[0]
        cn = compressed_network(res, s.p, s.widths, sparsity=s.sparsity, seed=s.seed + 1)
        Fc = np.asarray(cn.forward(X)[-1], dtype=float)
        Gc = Fc.T @ Fc
        spectra[f] = np.linalg.eigvalsh(Gc - res.delta * eye)
        fam[f] = {
            "compression": res.to_dict(),
            "delta_over_tau_L2": res.delta / res.tau_dense[-1] ** 2,
            "verification": {"a": chk_a.to_dict(), "c": chk_c.to_dict()},
            # finite-width fluctuation of each net around its own limit, and the size of that limit
            "empirical_vs_own_limit": relative_errors(Gc, chk_c.K_compressed)[0],
            "opnorm_own_limit": float(np.linalg.norm(chk_c.K_compressed, 2)),
            "empirical_vs_dense_limit": relative_errors(Gc - res.delta * eye, chk_c.K_dense)[0],
            "top_eig_empirical_shifted": float(spectra[f][-1]),
            "readouts": {"exact": _ridge_summary(chk_c.K_compressed, y, splits, s),
                         "wide": {**_ridge_summary(Gc, y, splits, s), "softmax": softmax_acc(Fc)}},
        }
    head = s.families[0]
    res = results[head]
    readouts = {
        "dense": {**_ridge_summary(Gd, y, splits, s), "softmax": softmax_acc(Fd)},
        "dense_exact": _ridge_summary(K_exact_dense, y, splits, s),
        **{f: fam[f]["readouts"]["wide"] for f in s.families},
        **{f + "_exact": fam[f]["readouts"]["exact"] for f in s.families},
    }
    readouts["compressed"] = readouts[head]
    shift = verify_ridge_shift(X, y, st, res, s.lam, seed=s.seed)
    tw = ternary_weights((s.p,) + tuple(s.widths), s.sparsity, s.seed + 1)
    bits = bit_accounting(tw, sum(len(f.params) for f in res.layers))
    curves = {"dense, exact limit": np.linalg.eigvalsh(K_exact_dense),
              "dense, Gaussian weights": np.linalg.eigvalsh(Gd)}
    for f in s.families:
        curves[f"{f} (ε={s.sparsity:g}) − δI"] = spectra[f]
    figs = [str(save_figure(spectra_figure(
        curves, title=f"CK spectra (NTK-LC − δI), widths {list(s.widths)}"),
        out / FIGURE_NAMES[0]))]
    figs.append(str(save_figure(_accuracy_figure(readouts, s.families, bits), out / FIGURE_NAMES[1])))

    lines = [
        f"NTK-LC demo: GMM data n={s.n}, p={s.p}, {s.classes} classes, tau0={st.tau0:.4f}; "
        f"dense net {' -> '.join(acts)}, widths {list(s.widths)}; weights sparse ternary, eps={s.sparsity:g}",
        "",
        f"{'layer':>5} {'tau':>8} {'alpha1':>9} {'alpha2':>9} {'alpha3':>9} {'beta1':>9} "
        + " ".join(f"{'tau_c ' + f:>18}" for f in s.families),
    ]
    for i, c in enumerate(coefs.layers):
        lines.append(f"{c.layer:>5} {c.tau:>8.4f} {c.alpha[0]:>9.5f} {c.alpha[1]:>9.5f} {c.alpha[2]:>9.5f} "
                     f"{c.beta[0]:>9.5f} " + " ".join(f"{results[f].tau_compressed[i + 1]:>18.4f}"
                                                       for f in s.families))
    lines.append("")
    for f in s.families:
        r, v = results[f], fam[f]
        lines += [
            f"[{f}] delta = tau'_L^2 - tau_L^2 = {r.delta:.4f} = {v['delta_over_tau_L2']:.1f} tau_L^2; "
            f"max residual {max(l.max_rel_residual for l in r.layers):.1e}",
            f"  (a) alpha/beta from the compressed moments: max rel diff {v['verification']['a']['max_rel_diff']:.1e}",
            f"  (c) exact kernels: ||K'-delta I-K||/||K|| = {v['verification']['c']['rel_opnorm']:.3f} "
            f"(without -delta I: {v['verification']['c']['rel_opnorm_unshifted']:.2f})",
            f"      wide nets: ||CK'-delta I-K||/||K|| = {v['empirical_vs_dense_limit']:.2f} "
            f"(dense net: {Gd_exact_err:.2f}); own limit: ||CK'-K'||/||K'|| = {v['empirical_vs_own_limit']:.2f}"
            f" with ||K'|| = {v['opnorm_own_limit']:.3f} vs ||K|| = {np.linalg.norm(K_exact_dense, 2):.3f}",
        ]
    lines += [
        f"(d) theory kernels: ridge(K', lambda) vs ridge(K, lambda+delta): rel diff {shift.theory_rel_diff:.1e} "
        f"(unshifted {shift.theory_rel_diff_unshifted:.2f})",
        "",
        f"test accuracy, ridge lambda by {s.folds}-fold CV per network, mean +- s.e. over {s.splits} splits "
        f"({len(te0)} test points each); chance {1 / s.classes:.3f}",
        f"{'':<26} {'dense':>13} " + " ".join(f"{f:>13}" for f in s.families),
        f"{'exact kernel (d = inf)':<26} {_pm(readouts['dense_exact'])} "
        + " ".join(_pm(readouts[f + '_exact']) for f in s.families),
        f"{'wide nets: ridge':<26} {_pm(readouts['dense'])} " + " ".join(_pm(readouts[f]) for f in s.families),
        f"{'wide nets: softmax (1 split)':<26} {readouts['dense']['softmax']:>13.3f} "
        + " ".join(f"{readouts[f]['softmax']:>13.3f}" for f in s.families),
        f"{'median CV lambda (wide)':<26} {readouts['dense']['ridge_lambda_median']:>13.3g} "
        + " ".join(f"{readouts[f]['ridge_lambda_median']:>13.3g}" for f in s.families),
        "  at d = inf the compressed readout with lambda is the dense one with lambda + delta: a loss only "
        "when the dense optimum lambda* < delta;",
        "  at finite width the CK fluctuates by O(||K'|| sqrt(n/d)) with ||K'|| >= delta: large delta "
        "(sigma_T) needs far wider layers.",
        "",
        f"bits ({head}): dense float32 {bits['dense_float32']:.3g}, packed 2-bit {bits['packed']:.3g} "
        f"({bits['ratio_packed']:.1f}x smaller), entropy {bits['entropy']:.3g} ({bits['ratio_entropy']:.1f}x), "
        f"seed {bits['seed']:.3g} ({bits['ratio_seed']:.3g}x)",
        "figures: " + ", ".join(figs),
    ]
    secs = time.perf_counter() - t_start
    lines.append(f"done in {secs:.1f} s")
    head_v = fam[head]["verification"]
    return DemoResult(
        settings=s, tau0=st.tau0, coefficients=coefs.to_dict(), compression=res.to_dict(),
        verification={"a": head_v["a"], "c": head_v["c"],
                      "c_empirical": {"rel_opnorm": fam[head]["empirical_vs_dense_limit"],
                                      "dense_rel_opnorm": Gd_exact_err},
                      "d": shift.to_dict()},
        readouts=readouts, bits=bits, figures=tuple(figs), seconds=secs,
        families={f: {k: v for k, v in fam[f].items() if k != "readouts"} for f in s.families},
        lines=tuple(lines))


def _pm(r: dict) -> str:
    return f"{r['ridge']:.3f}+-{r['ridge_se']:.3f}".rjust(13)


def _accuracy_figure(readouts: dict, families: tuple[str, ...], bits: dict):
    from .plotting import new_figure

    fig = new_figure(7.5, 3.2)
    ax = fig.add_subplot(1, 2, 1)
    nets = ("dense",) + tuple(families)
    groups = (("exact kernel\n(d = ∞)", "{}_exact", "ridge"), ("wide nets\nridge", "{}", "ridge"),
              ("wide nets\nsoftmax", "{}", "softmax"))
    xs = np.arange(len(groups))
    w = 0.8 / len(nets)
    for k, name in enumerate(nets):
        vals = [readouts[key.format(name)][m] for _, key, m in groups]
        ax.bar(xs + w * k, vals, w, label=name)
    ax.set_xticks(xs + 0.4 - w / 2, [g[0] for g in groups], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy (CV ridge λ)")
    ax.legend(fontsize=7)
    ax2 = fig.add_subplot(1, 2, 2)
    names = ["dense_float32", "packed", "entropy", "seed"]
    ax2.bar(range(4), [bits[n] for n in names], color="tab:green")
    ax2.set_yscale("log")
    ax2.set_xticks(range(4), ["float32", "2-bit", "entropy", "seed"])
    ax2.set_ylabel("weight memory (bits)")
    return fig
