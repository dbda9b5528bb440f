"""``ntk-theory demo``: the toolkit's main job end to end on an embedded default.

GMM data (THEORY.md §2, 3 classes, n = 360, p = 240, population statistics) and a
3-layer centered ReLU network:

1. coefficients α, β, τ, κ per layer (THEORY.md §4);
2. NTK-LC compression (THEORY.md §6) at the data's τ_0, sparse ternary weights at
   ε = 0.9, per-layer family, parameters and residuals, δ and the ridge shift;
3. verification (:mod:`ntk_theory.verify`): (a) α, β recomputed from the compressed
   activations' own moments; (c) exact compressed CK − δI vs the dense exact CK, and
   the CK spectra of wide dense/compressed NumPy networks (figure);
4. readouts (:mod:`ntk_theory.readout`) on the features of the wide networks (ridge
   with the λ ↔ λ − δ correspondence, softmax by gradient descent) and the exact
   ridge-shift identity on the theory kernels (THEORY.md §5);
5. bit accounting of the compressed weights.

Everything is computed on the spot (nothing is hard-coded); a run takes well under a
minute on 2 cores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .coefficients import coefficients
from .compress import bit_accounting, compress_network, ternary_weights
from .data import gmm, population_statistics, sample
from .errors import ParameterError
from .plotting import save_figure
from .readout import accuracy, ridge_fit, softmax_fit
from .spectral import relative_errors
from .verify import (
    EmpiricalSpectra,
    compressed_network,
    dense_network,
    spectra_overlay_figure,
    verify_coefficients,
    verify_kernels,
    verify_ridge_shift,
)

__all__ = ["DemoSettings", "DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoSettings:
    """The embedded default (change only for experiments; the CLI uses these values)."""

    n: int = 360
    p: int = 240
    classes: int = 3
    activations: tuple[str, ...] = ("relu", "relu", "relu")
    widths: tuple[int, ...] = (2000, 2000, 2000)
    sparsity: float = 0.9
    lam: float = 1.0
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
    lines: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("tau0", "coefficients", "compression", "verification",
                                               "readouts", "bits", "figures", "seconds")}


def run_demo(outdir: str | Path = ".", settings: DemoSettings = DemoSettings()) -> DemoResult:
    """Run the demo, write its PNG figures to ``outdir`` and return the numbers and summary lines."""
    t_start = time.perf_counter()
    out = Path(outdir)
    if not out.is_dir():
        raise ParameterError(f"output directory '{out}' does not exist")
    s = settings
    data = sample(gmm(s.p, s.classes, seed=s.seed + 1), s.n, seed=s.seed + 2)
    st = population_statistics(data)
    X, y = data.X, data.labels
    acts = list(s.activations)
    coefs = coefficients(acts, st.tau0)
    res = compress_network(acts, st.tau0)
    chk_a = verify_coefficients(res)
    chk_c = verify_kernels(X, res, keep=True)
    # one dense and one compressed wide network: their CK spectra (issue 4(c)) and readouts
    dn = dense_network(res, s.p, s.widths, seed=s.seed)
    cn = compressed_network(res, s.p, s.widths, sparsity=s.sparsity, seed=s.seed + 1)
    Fd = np.asarray(dn.forward(X)[-1], dtype=float)
    Fc = np.asarray(cn.forward(X)[-1], dtype=float)
    Kd = Fd.T @ Fd
    Kc = Fc.T @ Fc - res.delta * np.eye(s.n)
    spec = EmpiricalSpectra(dense=np.linalg.eigvalsh(Kd), compressed_shifted=np.linalg.eigvalsh(Kc),
                            exact=np.linalg.eigvalsh(chk_c.K_dense), widths=tuple(s.widths),
                            sparsity=s.sparsity, rel_opnorm=relative_errors(Kc, Kd)[0])
    figs = [str(save_figure(spectra_overlay_figure(
        spec, title=f"CK spectra: dense vs NTK-LC (ε={s.sparsity:g}) − δI, widths {list(s.widths)}"),
        out / "demo_spectra.png"))]
    # readouts on the wide networks' features, fixed train/test split
    rng = np.random.default_rng(s.seed)
    perm = rng.permutation(s.n)
    te, tr = np.sort(perm[: s.n // 4]), np.sort(perm[s.n // 4:])
    lam_c = s.lam - res.delta if s.lam > res.delta else s.lam
    acc = {}
    for name, F, lam in (("dense", Fd, s.lam), ("compressed", Fc, lam_c)):
        r = ridge_fit(F[:, tr], y[tr], lam)
        sm = softmax_fit(F[:, tr], y[tr], 1e-4, steps=200, tol=1e-5, n_classes=s.classes)
        acc[name] = {"ridge_lambda": lam, "ridge": accuracy(r.predict(F[:, te]), y[te]),
                     "softmax": accuracy(sm.predict(F[:, te]), y[te])}
    shift = verify_ridge_shift(X, y, st, res, s.lam, seed=s.seed)
    tw = ternary_weights((s.p,) + tuple(s.widths), s.sparsity, s.seed + 1)
    bits = bit_accounting(tw, sum(len(f.params) for f in res.layers))
    figs.append(str(save_figure(_accuracy_figure(acc, bits), out / "demo_readouts.png")))

    lines = [
        f"NTK-LC demo: GMM data n={s.n}, p={s.p}, {s.classes} classes, tau0={st.tau0:.4f}; "
        f"dense net {' -> '.join(acts)}, widths {list(s.widths)}",
        "",
        f"{'layer':>5} {'tau':>8} {'alpha1':>9} {'alpha2':>9} {'alpha3':>9} {'beta1':>9} "
        f"{'compressed family':<18} {'tau_c':>8} {'max res':>9}",
    ]
    for c, f in zip(coefs.layers, res.layers):
        lines.append(f"{c.layer:>5} {c.tau:>8.4f} {c.alpha[0]:>9.5f} {c.alpha[1]:>9.5f} {c.alpha[2]:>9.5f} "
                     f"{c.beta[0]:>9.5f} {f.family:<18} {f.variance ** 0.5:>8.4f} {f.max_rel_residual:>9.1e}")
    lines += [
        "",
        f"delta = tau'_L^2 - tau_L^2 = {res.delta:.5f}  (compressed ridge lambda - delta == dense lambda)",
        f"(a) alpha/beta recomputed from compressed moments: max rel diff {chk_a.max_rel_diff:.1e}",
        f"(c) exact kernels: ||K'-delta I-K||/||K|| = {chk_c.rel_opnorm:.4f} "
        f"(without removing delta I: {chk_c.rel_opnorm_unshifted:.2f})",
        f"    wide nets (eps={s.sparsity:g}): mean eigenvalue dense {spec.dense.mean():.4f}, "
        f"compressed-delta {spec.compressed_shifted.mean():.4f}, exact {spec.exact.mean():.4f}; "
        f"top eigenvalue {spec.dense[-1]:.3f} / {spec.compressed_shifted[-1]:.3f} / {spec.exact[-1]:.3f}",
        f"(d) theory kernels: ridge(K', lambda) vs ridge(K, lambda+delta): rel diff {shift.theory_rel_diff:.1e} "
        f"(unshifted {shift.theory_rel_diff_unshifted:.2f})",
        "",
        f"{'readout':<10} {'dense':>8} {'compressed':>11}",
        f"{'ridge':<10} {acc['dense']['ridge']:>8.3f} {acc['compressed']['ridge']:>11.3f}",
        f"{'softmax':<10} {acc['dense']['softmax']:>8.3f} {acc['compressed']['softmax']:>11.3f}",
        f"(test accuracy, {te.size} test points; chance {1 / s.classes:.3f})",
        "",
        f"bits: dense float32 {bits['dense_float32']:.3g}, packed 2-bit {bits['packed']:.3g} "
        f"({bits['ratio_packed']:.1f}x smaller), entropy {bits['entropy']:.3g} ({bits['ratio_entropy']:.1f}x), "
        f"seed {bits['seed']:.3g} ({bits['ratio_seed']:.3g}x)",
        "figures: " + ", ".join(figs),
    ]
    secs = time.perf_counter() - t_start
    lines.append(f"done in {secs:.1f} s")
    return DemoResult(
        settings=s, tau0=st.tau0, coefficients=coefs.to_dict(), compression=res.to_dict(),
        verification={"a": chk_a.to_dict(), "c": chk_c.to_dict(),
                      "c_empirical": {"rel_opnorm": spec.rel_opnorm,
                                      "mean_eig_dense": float(spec.dense.mean()),
                                      "mean_eig_compressed_shifted": float(spec.compressed_shifted.mean())},
                      "d": shift.to_dict()},
        readouts=acc, bits=bits, figures=tuple(figs), seconds=secs, lines=tuple(lines))


def _accuracy_figure(acc: dict, bits: dict):
    from .plotting import _figure

    fig = _figure(7.0, 3.2)
    ax = fig.add_subplot(1, 2, 1)
    xs = np.arange(2)
    for k, (name, col) in enumerate((("dense", "tab:blue"), ("compressed", "tab:orange"))):
        ax.bar(xs + 0.38 * k, [acc[name]["ridge"], acc[name]["softmax"]], 0.38, color=col, label=name)
    ax.set_xticks(xs + 0.19, ["ridge", "softmax"])
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    names = ["dense_float32", "packed", "entropy", "seed"]
    ax2.bar(range(4), [bits[n] for n in names], color="tab:green")
    ax2.set_yscale("log")
    ax2.set_xticks(range(4), ["float32", "2-bit", "entropy", "seed"])
    ax2.set_ylabel("weight memory (bits)")
    return fig
