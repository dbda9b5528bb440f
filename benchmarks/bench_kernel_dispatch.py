"""Registry dispatch of the closed-form kernel maps and fast paths: no cost against a baseline.

The exact kernels (:func:`ntk_theory.exact.exact_kernels`) and the networks
(:class:`ntk_theory.network.MLP`) find an activation's closed forms and fast NumPy paths
on its registry entry (:class:`ntk_theory.activations.KernelMaps`) instead of by name.
This benchmark times the same workloads on this tree and on a baseline tree (another
checkout of the package, ``--baseline DIR`` holding ``ntk_theory/``), alternating the
two in fresh interpreters (ABAB…) and reporting the median CPU time of each and their
same-run ratio, and checks that both trees give identical numbers.

Workloads (n = 1500 inputs, p = 200):

* ``exact relu×3`` — three fused arc-cosine layers with centering;
* ``exact gelu,erf,cos`` — three registry closed forms (pair and derivative-pair maps);
* ``mlp forward relu/leaky`` — a width-2000 float32 network's forward pass (in-place fast paths);
* ``mlp ntk relu,leaky`` — the empirical NTK, which uses the derivative paths.

Usage::

    python benchmarks/bench_kernel_dispatch.py --baseline /path/to/baseline/checkout [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import hashlib, json, sys, time
import numpy as np
from ntk_theory.exact import exact_kernels
from ntk_theory.network import MLP

rng = np.random.default_rng(0)
X = rng.standard_normal((200, 1500)) / np.sqrt(200)
out = {}

def timed(name, fn):
    t0 = time.process_time()
    val = fn()
    out[name] = [time.process_time() - t0, hashlib.sha256(np.ascontiguousarray(val).tobytes()).hexdigest()[:16]]

timed("exact relu x3", lambda: exact_kernels(X, ["relu"] * 3).ntk)
timed("exact gelu,erf,cos", lambda: exact_kernels(X, ["gelu", "erf", "cos"]).ntk)
net = MLP(["relu", "leaky_relu:slope=0.1"], [2000, 2000], 200, seed=1, dtype="float32")
timed("mlp forward relu/leaky", lambda: net.forward(X)[-1])
net2 = MLP(["relu", "leaky_relu:slope=0.1"], [500, 500], 200, seed=1)
timed("mlp ntk relu,leaky", lambda: net2.ntk(X[:, :300]))
print(json.dumps(out))
"""


def run_once(root: Path) -> dict[str, list]:
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, type=Path, help="directory holding the baseline ntk_theory/")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    here = Path(__file__).resolve().parent.parent
    runs: dict[str, list[dict]] = {"branch": [], "baseline": []}
    for _ in range(args.repeats):
        runs["branch"].append(run_once(here))
        runs["baseline"].append(run_once(args.baseline))
    print(f"load average at end: {os.getloadavg()}")
    print(f"{'workload':<26} {'branch CPU s':>13} {'baseline CPU s':>15} {'ratio':>7}  same numbers")
    for key in runs["branch"][0]:
        b = statistics.median(r[key][0] for r in runs["branch"])
        a = statistics.median(r[key][0] for r in runs["baseline"])
        same = {r[key][1] for r in runs["branch"]} == {r[key][1] for r in runs["baseline"]}
        print(f"{key:<26} {b:>13.3f} {a:>15.3f} {b / a:>7.3f}  {'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
