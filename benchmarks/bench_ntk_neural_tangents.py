"""Peer baseline: neural-tangents' structured empirical NTK of the benchmark network.

Run in a separate virtual environment with ``neural-tangents`` (0.6.5, jax 0.4.23,
numpy < 2): the package itself never imports JAX.  Network as in
``benchmarks/bench_empirical_ntk.py``: 3 ReLU layers 2000/2000/1000 on p = 784 inputs and
a one-unit linear readout (the NTK of ``f(x) = wᵀ Σ_3(x)``), float32.  Each repeat times
a 4000×4000 float32 matmul in NumPy (the same-run GEMM reference) and then the jitted
``empirical_ntk_fn(..., implementation=STRUCTURED_DERIVATIVES)`` (compiled before timing).

Usage (prints one JSON line)::

    /path/to/nt-venv/bin/python benchmarks/bench_ntk_neural_tangents.py --n 2000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import neural_tangents as nt
    from neural_tangents import stax

    layers = []
    for width in (2000, 2000, 1000):
        layers += [stax.Dense(width), stax.Relu()]
    init_fn, apply_fn, _ = stax.serial(*layers, stax.Dense(1))
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (args.n, 784), dtype=jnp.float32)
    _, params = init_fn(key, x.shape)
    ntk = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0,
                                      implementation=nt.NtkImplementation.STRUCTURED_DERIVATIVES))
    ntk(x, None, params).block_until_ready()  # compilation is not timed
    a = np.random.default_rng(0).standard_normal((4000, 4000)).astype(np.float32)
    runs = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        a @ a
        t_gemm = time.perf_counter() - t
        t = time.perf_counter()
        ntk(x, None, params).block_until_ready()
        runs.append({"gemm_s": t_gemm, "nt_s": time.perf_counter() - t})
    print(json.dumps({"n": args.n, "runs": runs, "load": os.getloadavg(), "jax": jax.__version__,
                      "neural_tangents": nt.__version__ if hasattr(nt, "__version__") else "?"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
