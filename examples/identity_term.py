"""The identity term of the equivalence theorems, settled by measurement
=====================================================================

The identity-term question of docs/reference.rst §5.  For ReLU (α3, β3 > 0) and erf (odd:
α3 = β3 = 0) networks with 1 and 3 layers, on two-class GMM data at several sizes
(p = 2n/3), compare both identity conventions of the theory kernels against the exact
limiting kernels (docs/reference.rst §3):

* ``diagonal`` (the toolkit's default): ``τ_ℓ² − τ_0² α_{ℓ,1}`` (resp. κ, β);
* ``printed`` (NTK-LC's formula): ``τ_ℓ² − τ_0² α_{ℓ,1} − τ_0⁴ α_{ℓ,3}``.

Outputs the relative operator-norm error and the mean diagonal mismatch
``mean_i (K̃ − K)_ii`` for the CK and the NTK, as an RST table, and the figure
``identity_term.png`` (error vs n, log–log) in ``--out`` (default: current directory).
With ``--update-docs`` the table in ``docs/identity_term.rst`` is replaced (between its
``GENERATED`` markers).

The docs figure and table, from the repository root::

    python3 examples/identity_term.py --out docs/figures --update-docs

Quick settings for CI (n = 150, 300; seconds; these run in the docs gallery)::

    python3 examples/identity_term.py --quick --out /tmp/identity
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np

from ntk_theory.data import gmm, population_statistics, sample
from ntk_theory.exact import exact_kernels
from ntk_theory.spectral import relative_errors
from ntk_theory.theory import theory_kernels

QUICK_SIZES = "150,300"
NETWORKS = (("relu",), ("relu", "relu", "relu"), ("erf",), ("erf", "erf", "erf"))
CONVENTIONS = ("diagonal", "printed")


def measure(sizes: list[int], seed: int) -> list[dict]:
    rows = []
    for n in sizes:
        p = 2 * n // 3
        data = sample(gmm(p, 2, seed=seed), n, seed=seed + 1)
        stats = population_statistics(data)
        for acts in NETWORKS:
            t0 = time.perf_counter()
            ex = exact_kernels(data.X, list(acts), tau0=stats.tau0)
            for ident in CONVENTIONS:
                th = theory_kernels(data.X, stats, list(acts), identity=ident)
                row = {"n": n, "p": p, "network": f"{acts[0]}, L={len(acts)}", "layers": len(acts),
                       "act": acts[0], "identity": ident}
                for kind, A, B in (("CK", th.ck, ex.ck), ("NTK", th.ntk, ex.ntk)):
                    row[f"err_{kind}"] = relative_errors(A, B)[0]
                    row[f"diag_{kind}"] = float(np.mean(np.diag(A - B)))
                c = th.coefficients.last
                row["shift_CK"] = stats.tau0**4 * c.alpha[2]
                row["shift_NTK"] = stats.tau0**4 * c.beta[2]
                rows.append(row)
            print(f"n={n:5d} {acts}: {time.perf_counter() - t0:.1f} s", flush=True)
    return rows


def rst_table(rows: list[dict]) -> str:
    head = ["network", "n", "p", "convention", "CK error", "CK mean diag. mismatch",
            "NTK error", "NTK mean diag. mismatch", "τ0⁴α3 / τ0⁴β3"]
    lines = [".. list-table::", "   :header-rows: 1", ""]
    lines.append("   * - " + "\n     - ".join(head))
    for r in rows:
        cells = [r["network"], str(r["n"]), str(r["p"]), f"``{r['identity']}``",
                 f"{r['err_CK']:.4f}", f"{r['diag_CK']:+.5f}", f"{r['err_NTK']:.4f}",
                 f"{r['diag_NTK']:+.5f}", f"{r['shift_CK']:.4f} / {r['shift_NTK']:.4f}"]
        lines.append("   * - " + "\n     - ".join(cells))
    return "\n".join(lines)


def figure(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    colors = dict(zip(sorted({r["network"] for r in rows}), ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    for ax, kind in zip(axes, ("CK", "NTK")):
        for net, col in colors.items():
            for ident, ls, mk in (("diagonal", "-", "o"), ("printed", "--", "s")):
                sel = sorted((r["n"], r[f"err_{kind}"]) for r in rows if r["network"] == net and r["identity"] == ident)
                if net.startswith("erf") and ident == "printed":
                    continue  # identical to "diagonal" for odd activations (α3 = β3 = 0)
                ax.loglog(*zip(*sel), ls=ls, marker=mk, color=col, label=f"{net}, {ident}")
        ns = np.array(sorted({r["n"] for r in rows}), dtype=float)
        ref = min(r[f"err_{kind}"] for r in rows if r["n"] == ns[0])
        ax.loglog(ns, ref * np.sqrt(ns[0] / ns), ":", color="0.4", label="∝ n^(-1/2)")
        ax.set_title(f"{kind}: ‖K̃ − K‖ / ‖K‖ (p = 2n/3)")
        ax.set_xlabel("n")
    axes[0].set_ylabel("relative operator-norm error")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description="The identity term of the equivalence theorems (docs/reference.rst §5)")
    ap.add_argument("--sizes", default="300,600,1200", help="comma-separated n (default 300,600,1200)")
    ap.add_argument("--quick", action="store_true", help=f"CI settings: --sizes {QUICK_SIZES}")
    ap.add_argument("--seed", type=int, default=1, help="GMM seed (samples use seed+1)")
    ap.add_argument("--out", default=".", help="directory for identity_term.png (default: current directory)")
    ap.add_argument("--figure", default=None, help="explicit figure path (overrides --out)")
    ap.add_argument("--update-docs", action="store_true", help="rewrite the table in docs/identity_term.rst")
    args = ap.parse_args()
    sizes = [int(s) for s in (QUICK_SIZES if args.quick else args.sizes).split(",")]
    rows = measure(sizes, args.seed)
    table = rst_table(rows)
    print(table)
    path = Path(args.figure) if args.figure else Path(args.out) / "identity_term.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure(rows, path)
    print(f"figure: {path}")
    if args.update_docs:
        # only here: the docs gallery runs this file without __file__ (and without --update-docs)
        page = Path(__file__).resolve().parent.parent / "docs" / "identity_term.rst"
        text = page.read_text(encoding="utf-8")
        new, k = re.subn(r"(\.\. GENERATED-TABLE-BEGIN\n).*?(\n\.\. GENERATED-TABLE-END)",
                         lambda m: m.group(1) + "\n" + table + "\n" + m.group(2), text, flags=re.S)
        if k != 1:
            raise SystemExit(f"{page} lacks the GENERATED-TABLE markers")
        page.write_text(new, encoding="utf-8")
        print(f"updated {page}")


if __name__ == "__main__":
    main()
