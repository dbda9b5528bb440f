"""Peer baseline: neural-tangents' structured empirical NTK of the benchmark network.

Run in a separate virtual environment with ``neural-tangents`` (0.6.5, jax 0.4.23,
numpy < 2): the package itself never imports JAX.  Network as in
``benchmarks/bench_empirical_ntk.py``: 3 ReLU layers 2000/2000/1000 on p = 784 inputs and
a one-unit linear readout (the NTK of ``f(x) = wᵀ Σ_3(x)``), float32.  Each repeat times,
back to back, two 4000×4000 float32 matmuls in NumPy (into a preallocated result: the
BLAS rate alone; ``a @ a``: with a fresh result), then the jitted
``empirical_ntk_fn(..., implementation=STRUCTURED_DERIVATIVES)`` (compiled before timing),
then — with ``--ours`` and ``ntk_theory`` importable in that environment — our
``MLP.kernels(X, ck=False)`` on the same parameters.

Same parameters, same kernel: neural-tangents' ``Dense`` (NTK parameterisation, no bias)
computes ``z_ℓ = W_ℓᵀ a_{ℓ−1}/√d_{ℓ−1}``; our MLP with ``centering="none"`` computes
``H_1 = W_1 X`` and ``H_ℓ = W_ℓ σ(H_{ℓ−1})/√d_{ℓ−1}``, so with ``X = x/√p`` and the
transposed weight matrices the two networks are one function with one parameter vector,
and the two NTKs agree to float32 rounding — except where a pre-activation lies within
rounding of zero, so that one computation sees ReLU' = 1 and the other 0: each such flip
moves one sample's gradient by about 1/d of a layer and the whole row and column of the
kernel by about 1e-3 relative.  The largest and the Frobenius relative differences are
printed.

Usage (prints one JSON line)::

    /path/to/nt-venv/bin/python benchmarks/bench_ntk_neural_tangents.py --n 2000 --repeats 3 [--ours]
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
    ap.add_argument("--ours", action="store_true", help="also time ntk_theory's MLP on the same parameters")
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
    ours = None
    if args.ours:
        from ntk_theory.network import MLP

        mats = [np.asarray(leaf, dtype=np.float32) for leaf in jax.tree_util.tree_leaves(params)]
        assert [m.shape for m in mats] == [(784, 2000), (2000, 2000), (2000, 1000), (1000, 1)], \
            "expected bias-free Dense layers"
        ours = MLP(["relu"] * 3, (2000, 2000, 1000), p=784, dtype=np.float32, centering="none",
                   weights=[m.T.copy() for m in mats[:3]], readout=mats[3][:, 0].copy())
        X = (np.asarray(x, dtype=np.float32) / np.float32(np.sqrt(784))).T.copy()
    a = np.random.default_rng(0).standard_normal((4000, 4000)).astype(np.float32)
    c = np.ones_like(a)
    runs = []
    agreement = None
    for _ in range(args.repeats):
        run = {}
        t = time.perf_counter()
        np.matmul(a, a, out=c)
        run["gemm_out_s"] = time.perf_counter() - t
        t = time.perf_counter()
        a @ a
        run["gemm_s"] = time.perf_counter() - t
        t = time.perf_counter()
        K_nt = ntk(x, None, params).block_until_ready()
        run["nt_s"] = time.perf_counter() - t
        if ours is not None:
            res = ours.kernels(X, ck=False)
            run["ours_s"] = res.seconds
            run["flops"] = res.flops
            K_nt = np.asarray(K_nt, dtype=np.float64).reshape(args.n, args.n)
            agreement = {"max_rel": float(np.max(np.abs(K_nt - res.ntk)) / np.max(np.abs(K_nt))),
                         "frobenius_rel": float(np.linalg.norm(K_nt - res.ntk) / np.linalg.norm(K_nt))}
            del res
        runs.append(run)
    print(json.dumps({"n": args.n, "runs": runs, "nt_vs_ours": agreement,
                      "load": os.getloadavg(), "jax": jax.__version__, "numpy": np.__version__,
                      "neural_tangents": nt.__version__ if hasattr(nt, "__version__") else "?"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
