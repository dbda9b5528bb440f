"""``ntk-theory compress``: NTK-LC compression plan of a dense network (docs/reference.rst §6)."""

from __future__ import annotations

import argparse
import time
from typing import Any

# light imports only: the parser is built for every command (see ntk_theory.cli)
from ..errors import ParameterError, ResourceError
from ._common import (
    FAMILY_CHOICES,
    LAST_FAMILY_CHOICES,
    dump_json,
    family_name,
    nonnegative_int,
    positive_float,
    positive_int,
    probability,
)

HELP = ("compress a dense network into sparse ternary weights and quantized activations "
        "with the same kernel coefficients (NTK-LC)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("activations", nargs="+", metavar="ACT",
                        help="dense activations of layers 1..L (e.g. relu, 'leaky_relu:slope=0.1')")
    parser.add_argument("--tau0", type=positive_float, required=True,
                        help="input scale τ_0 (τ_0² = tr C°/p)")
    parser.add_argument("--family", type=family_name, default="auto",
                        help=f"{FAMILY_CHOICES} (default auto: "
                             "cheapest family that solves exactly)")
    parser.add_argument("--last-family", choices=LAST_FAMILY_CHOICES, default="none",
                        help=f"{LAST_FAMILY_CHOICES[1]} also asks the last layer for δ = 0 (default none)")
    parser.add_argument("--sparsity", type=probability, default=0.9,
                        help="fraction ε of zero weights, in [0, 1) (default 0.9)")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="weight seed (default 0)")
    parser.add_argument("--widths", type=positive_int, nargs="+", default=None, metavar="D",
                        help="d_0 d_1 ... d_L for the bit accounting and --out "
                             "(default 784 then 1000 per layer)")
    parser.add_argument("--precision", "--digits", dest="precision", type=positive_int, default=15,
                        metavar="P",
                        help="working precision of the solvers in significant digits: 15 is float64 "
                             "(residual <= 1e-12), more runs in mpmath (e.g. 30: residual <= 1e-25); "
                             "--digits is an older name of this option")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON")
    out.add_argument("--latex", action="store_true",
                     help="print a booktabs table of the plan (ntk-theory table compression has more options)")
    parser.add_argument("--out", metavar="MODEL.npz", default=None,
                        help="save packed ternary weights and activation parameters to this .npz file "
                             "(name used as given; written atomically)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..compress import bit_accounting, compress_network, save_npz, stored_parameter_count, ternary_weights
    from ..latex import compression_table

    L = len(args.activations)
    widths = args.widths if args.widths is not None else [784] + [1000] * L
    if len(widths) != L + 1:
        raise ParameterError(f"--widths needs {L + 1} numbers (d_0 ... d_L) for {L} layer(s), "
                             f"got {len(widths)}")
    if args.precision < 15:
        raise ParameterError(f"--precision/--digits must be >= 15 (float64 or more), got {args.precision}")
    _check_weight_memory(widths)
    if args.out:  # an unwritable or misnamed --out is refused before the computation
        from ..io import check_output_path

        check_output_path(args.out, (".npz",), what="--out")
    t0 = time.perf_counter()
    res = compress_network(args.activations, args.tau0, family=args.family,
                           last_family=args.last_family, digits=args.precision)
    solve_seconds = time.perf_counter() - t0
    weights = ternary_weights(widths, args.sparsity, args.seed)
    bits = bit_accounting(weights, stored_parameter_count(res.layers))
    out: dict[str, Any] = res.to_dict()
    out["solve_seconds"] = solve_seconds
    out["bits"] = bits
    out["sparsity"] = args.sparsity
    out["seed"] = args.seed
    out["widths"] = list(widths)
    from ..compress.lattice import lattice_layer_moments  # realised scales on the lattice laws

    out["lattice"] = lattice_layer_moments(res, widths, args.sparsity).to_dict()
    if args.out:
        save_npz(args.out, weights,
                 activations=np.array([f.activation.spec for f in res.layers]),
                 dense_activations=np.array(res.activations),
                 means=np.array([f.mean for f in res.layers]),
                 tau_compressed=np.array(res.tau_compressed),
                 tau_dense=np.array(res.tau_dense),
                 delta=np.float64(res.delta))
        out["out"] = args.out
    if args.json:
        dump_json(out)
        return 0
    if args.latex:
        print(compression_table(res).to_latex())
        return 0
    print(f"NTK-LC compression of {' -> '.join(res.activations)} at tau0 = {args.tau0:g}")
    print(compression_table(res, columns=("layer", "family", "tau_in", "variance", "max_res", "params"))
          .to_text(caption=False))
    print(f"delta = tau'_L^2 - tau_L^2 = {res.delta:.6g}; ridge shift (compressed lambda = dense "
          f"lambda + shift) = {res.ridge_shift:.6g}")
    dev = out["lattice"]["last_deviation"]
    print("lattice (sparse ternary weights after quantized activations): realised tau'_L^2 "
          + (f"{dev:+.2%} vs plan" if dev is not None else "not computed")
          + f" at widths {' '.join(map(str, widths))}, sparsity {args.sparsity:g}")
    print(f"bits: dense float32 {bits['dense_float32']:.0f}, packed {bits['packed']:.0f} "
          f"({bits['ratio_packed']:.1f}x), entropy {bits['entropy']:.0f} ({bits['ratio_entropy']:.1f}x), "
          f"seed {bits['seed']:.0f} ({bits['ratio_seed']:.3g}x)")
    print(f"solved in {solve_seconds:.3f} s" + (f"; saved {args.out}" if args.out else ""))
    return 0


_WEIGHT_MEMORY_LIMIT = 20 * 2**30


def _check_weight_memory(widths: list[int]) -> None:
    """Refuse, before any allocation, weights that would not fit in memory.

    Drawing layer ℓ holds its int8 codes plus an int64 permutation and random signs
    of the same length (about 17 bytes per weight at the peak), on top of the int8
    codes of the layers already drawn.
    """
    sizes = [a * b for a, b in zip(widths, widths[1:])]
    need = sum(sizes) + 16 * max(sizes)
    if need > _WEIGHT_MEMORY_LIMIT:
        raise ResourceError.memory(f"drawing {sum(sizes):.3g} ternary weights", need, _WEIGHT_MEMORY_LIMIT,
                                   suggestion="use smaller --widths")


