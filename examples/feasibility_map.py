"""Compression feasibility map: which family can match which activation
====================================================================

docs/reference.rst §6 lists bounds that stop a quantized family from α-matching a dense
layer: σ_T cannot match odd activations (E[σ''] = 0 forces E[(σ̄²)''] = 0), an odd
ternary cannot match a non-odd one, and δ = 0 at the last layer (σ_Q) fails once
Cauchy–Schwarz (τ'²m1² > τ_L²) or the two-term Hermite budget
(τ'²m1² + τ'⁴m2²/2 > τ_L²) is violated.  This script runs the solvers of
:mod:`ntk_theory.compress` on a grid — activations × families × input scale τ (log
grid) — and records, for every failure, the bound the solver names:

* ``feasibility_alpha.png``: one panel per family (σ_T, ternary, three_level,
  staircase:4, staircase:6), activations × τ, green where α-matching is exact
  (residual ≤ 1e−12), otherwise coloured by the bound;
* ``feasibility_delta0.png``: a two-layer network ``[σ, σ]`` at τ_0 = τ, first
  layer compressed with the cheapest exact family (``auto``), last layer ``sigma_Q``
  asked for δ = 0;
* a printed table: per activation and family, the τ where matching works and the
  bound that rules out the rest; then the Hermite-budget supremum of K-level
  staircases (K = 2 … 8) against ReLU's 0.967.  α-matching fixes ``τ²m1²`` and
  ``τ⁴m2²`` but not the variance, so a K-level staircase matched to ReLU has
  ``Var' ≥ (τ²m1² + τ⁴m2²/2)/sup_K``: the table's last column is that minimal
  scale inflation ``0.967/sup_K`` per layer (δ = 0 needs it to be 1).

The grid runs on dask.distributed through :func:`ntk_theory.sweep.sweep` (job
``feasibility``: one point per activation × τ, all families of that row; see
``docs/sweep.rst``): an embedded local cluster with ``--workers`` processes, or an
existing scheduler with ``--scheduler tcp://HOST:PORT``.  With ``--store FILE.sqlite``
the cells are kept, so an interrupted run resumes and a rerun only draws the figures.

The docs figures, from the repository root (a few minutes)::

    python3 examples/feasibility_map.py --out docs/figures

Quick settings for CI (6 activations, 3 scales, K ≤ 4)::

    python3 examples/feasibility_map.py --quick --out /tmp/feasibility
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ntk_theory.compress.feasibility import (
    FeasibilityCell,
    residual_lower_bound,
    scale_free_triple,
    staircase_hermite_sup,
    two_term_fraction,
)
from ntk_theory.sweep import add_target_arguments, sweep, sweep_results, sweep_target

FAMILIES = ("sigma_T", "ternary", "three_level", "staircase:4", "staircase:6")
ACTIVATIONS = ("relu", "leaky_relu", "abs", "gelu", "swish", "softplus", "elu",
               "tanh", "erf", "sigmoid")
QUICK_ACTIVATIONS = ("relu", "leaky_relu", "abs", "gelu", "elu", "erf")


def _cell(d: dict) -> FeasibilityCell:
    return FeasibilityCell(**{**d, "residual": float(d["residual"])})  # NaN is stored as "nan"


def run_maps(acts: tuple[str, ...], taus: np.ndarray, store: str | Path, *, workers: int | None = None,
             client=None) -> tuple[dict, dict]:
    """α-matching cells ``{(act, family, tau): cell}`` and δ = 0 cells ``{(act, tau): cell}``.

    One sweep point per (activation, τ) — the dense moments are computed once per row —
    on a local cluster of ``workers`` processes (or ``client``'s), results in ``store``.
    """
    spec = {"job": "feasibility",
            "grid": {"activation": list(acts), "tau": [float(t) for t in taus], "families": [list(FAMILIES)],
                     "delta0_family": "auto"}}
    summary = sweep(spec, store, client, workers=workers)
    print(f"sweep: {summary.done} rows computed, {summary.skipped} from {store}, {summary.seconds:.1f} s")
    alpha, delta0 = {}, {}
    for point, status, row in sweep_results(spec, store):
        if status != "ok":
            raise RuntimeError(f"feasibility row {point} failed: {row}")
        a, tau = point["activation"], float(point["tau"])
        for fam in FAMILIES:
            alpha[a, fam, tau] = _cell(row["alpha"][fam])
        delta0[a, tau] = _cell(row["delta0"])
    return alpha, delta0


def _categories(cells) -> list[str]:
    cats = sorted({c.bound for c in cells if not c.feasible})
    return ["exact"] + cats


def plot_maps(alpha: dict, delta0: dict, acts, taus, out: Path) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    paths = []
    palette = ["#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf", "#1f77b4"]
    for name, cells_by_panel in (
        ("feasibility_alpha.png", {fam: {(a, t): alpha[a, fam, t] for a in acts for t in taus}
                                   for fam in FAMILIES}),
        ("feasibility_delta0.png", {"auto + sigma_Q (δ = 0), [σ, σ]":
                                    {(a, t): delta0[a, t] for a in acts for t in taus}}),
    ):
        allcells = [c for panel in cells_by_panel.values() for c in panel.values()]
        cats = _categories(allcells)
        cmap = ListedColormap(palette[:len(cats)])
        n = len(cells_by_panel)
        fig = Figure(figsize=(2.6 * n + 3.2, 0.36 * len(acts) + 2.2))
        FigureCanvasAgg(fig)  # an explicit Agg canvas: no pyplot global state
        axes = fig.subplots(1, n, squeeze=False, sharey=True)
        for ax, (title, cells) in zip(axes[0], cells_by_panel.items()):
            img = np.array([[cats.index("exact" if cells[a, t].feasible else cells[a, t].bound)
                             for t in taus] for a in acts])
            ax.imshow(img, cmap=cmap, vmin=-0.5, vmax=len(cats) - 0.5, aspect="auto")
            ax.set_title(title, fontsize=9)
            ax.set_xticks(range(len(taus)), [f"{t:.2g}" for t in taus], fontsize=7, rotation=90)
            ax.set_yticks(range(len(acts)), acts, fontsize=8)
            ax.set_xlabel("τ", fontsize=8)
        fig.legend(handles=[Patch(color=palette[i], label=c) for i, c in enumerate(cats)],
                   loc="lower center", ncol=min(3, len(cats)), fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0.08 + 0.03 * (len(cats) // 3), 1, 1))
        path = out / name
        fig.savefig(path, dpi=120)
        paths.append(path)
    return paths


def table(alpha: dict, delta0: dict, acts, taus) -> str:
    """Per activation: for every family the τ range where it is exact, or the bound."""
    lines = ["| activation | " + " | ".join(FAMILIES) + " | δ = 0 after auto |",
             "|---|" + "---|" * (len(FAMILIES) + 1)]

    def summary(cells) -> str:
        ok = [c.tau for c in cells if c.feasible]
        bounds = sorted({c.bound for c in cells if not c.feasible})
        if len(ok) == len(cells):
            return "all τ"
        if not ok:
            return "none: " + "; ".join(bounds)
        return f"τ ∈ {{{', '.join(f'{t:.2g}' for t in ok)}}}; else " + "; ".join(bounds)

    for a in acts:
        row = [summary([alpha[a, f, t] for t in taus]) for f in FAMILIES]
        row.append(summary([delta0[a, t] for t in taus]))
        lines.append(f"| {a} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def hermite_table(Ks) -> str:
    T = scale_free_triple("relu", 1.0)
    H = two_term_fraction(T)
    lines = [f"ReLU's scale-free triple {tuple(round(x, 4) for x in T)}, two-term fraction {H:.5f}",
             "| K | sup two-term fraction | < ReLU's? | lower bound on ‖(t − T)/T‖₂ | "
             "min Var'/Var when α-matched |",
             "|---|---|---|---|---|"]
    for K in Ks:
        s = staircase_hermite_sup(K)
        lines.append(f"| {K} | {s.sup:.6f} | {'yes: exact match impossible' if s.sup < H else 'no'} | "
                     f"{residual_lower_bound(T, s.sup):.4f} | {max(H / s.sup, 1.0):.4f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description="Compression feasibility map (docs/reference.rst §6)")
    ap.add_argument("--quick", action="store_true", help="CI settings: 6 activations, 3 scales")
    ap.add_argument("--out", default=".", help="directory for the PNG figures (default: current directory)")
    add_target_arguments(ap, what="cells")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.quick:
        acts, taus, Ks = QUICK_ACTIVATIONS, np.array([0.25, 1.0, 4.0]), range(2, 5)
    else:
        acts, taus, Ks = ACTIVATIONS, np.geomspace(0.25, 4.0, 9), range(2, 9)
    with sweep_target(args.store, args.scheduler, name="feasibility.sqlite") as (store, client):
        alpha, delta0 = run_maps(acts, taus, store, workers=args.workers, client=client)
    for p in plot_maps(alpha, delta0, acts, [float(t) for t in taus], out):
        print(f"wrote {p}")
    print(table(alpha, delta0, acts, [float(t) for t in taus]))
    print()
    print(hermite_table(Ks))
    print(f"\n{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
