"""NN-BCD hyperparameters on digits: the validation grid behind the defaults (docs/bcd.rst).

The digits training split of ``ntk-theory bcd`` (1347 samples, ``load_split`` seed 0) is
cut into 1077 fitting and 270 validation samples; the 450 test samples are never
touched.  Network 64-300-100-10 at sparsity 0.9, 40 sweeps, seed 0, for the authors'
published settings and the grid γ, ρ ∈ {1, 5, 10}, τ ∈ {0.1, 1, 5}, α = 1 (a subset
of the authors' own hyperparameter study).  Prints a Markdown table.

    python3 benchmarks/bench_bcd_grid.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ntk_theory.bcd import BCDHyperparameters, train_bcd  # noqa: E402
from ntk_theory.experiment2 import load_split  # noqa: E402

PUBLISHED = [(100, 1, 1, 200, "authors' LeNet-300-100 pruning"), (0.5, 0.5, 1, 5, "authors' HAR MLP (TT)"),
             (5, 5, 1, 0.1, "authors' MNIST CNN (TT) — the default")]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the published settings only")
    a = ap.parse_args()
    print(f"$ python3 {' '.join(sys.argv)}")
    Xtr, ytr, _Xte, _yte = load_split("digits", 1347, 450, seed=0)
    Xf, yf, Xv, yv = Xtr[:, :1077], ytr[:1077], Xtr[:, 1077:], ytr[1077:]
    rows = list(PUBLISHED)
    if not a.quick:
        rows += [(g, r, 1, t, "") for g in (1, 5, 10) for r in (1, 5, 10) for t in (0.1, 1, 5)]
    print("| γ | ρ | α | τ | fit accuracy | validation accuracy | final objective | note |")
    print("|---|---|---|---|---|---|---|---|")
    for g, r, al, t, note in rows:
        res = train_bcd(Xf, yf, [300, 100], sparsity=0.9, iterations=40, seed=0, X_test=Xv, labels_test=yv,
                        hyper=BCDHyperparameters(g, r, al, t), progress=False)
        F = np.array((res.objective_initial,) + res.objective)
        assert np.all(np.diff(F) <= 0)
        print(f"| {g:g} | {r:g} | {al:g} | {t:g} | {res.train_accuracy:.3f} | {res.test_accuracy:.3f} | "
              f"{F[-1]:.4g} | {note} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
