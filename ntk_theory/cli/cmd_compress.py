"""``ntk-theory compress``: NTK-LC compression plan of a dense network (docs/reference.rst §6)."""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

# light imports only: the parser is built for every command (see ntk_theory.cli)
from ..errors import ParameterError, ResourceError
from ._common import dump_json, nonnegative_int, positive_float, positive_int, probability

HELP = ("compress a dense network into sparse ternary weights and quantized activations "
        "with the same kernel coefficients (NTK-LC)")


def _family(text: str) -> str:
    """argparse type of ``--family``: the name checks of
    :func:`ntk_theory.compress.parse_family`, repeated here so that a typo is reported without
    importing the solver stack (tests/test_cli_startup.py checks both agree)."""
    if text == "auto":
        return text
    t = text.strip()
    if t == "sigma_Q":
        raise argparse.ArgumentTypeError("sigma_Q is a last-layer family: use --last-family sigma_Q")
    if t in ("ternary", "odd_ternary", "sigma_T", "three_level"):
        return text
    if t.startswith("staircase:"):
        try:
            K = int(t.split(":", 1)[1])
        except ValueError:
            raise argparse.ArgumentTypeError(f"staircase:K needs an integer K, got '{t}'") from None
        if not 3 <= K <= 64:
            raise argparse.ArgumentTypeError(f"staircase:K needs 3 <= K <= 64, got {K}")
        return text
    raise argparse.ArgumentTypeError(
        f"unknown compression family '{t}' (known: auto, ternary, sigma_T, three_level, "
        "staircase:K, sigma_Q)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("activations", nargs="+", metavar="ACT",
                        help="dense activations of layers 1..L (e.g. relu, 'leaky_relu:slope=0.1')")
    parser.add_argument("--tau0", type=positive_float, required=True,
                        help="input scale τ_0 (τ_0² = tr C°/p)")
    parser.add_argument("--family", type=_family, default="auto",
                        help="auto|ternary|sigma_T|three_level|staircase:K (default auto: "
                             "cheapest family that solves exactly)")
    parser.add_argument("--last-family", choices=("none", "sigma_Q"), default="none",
                        help="sigma_Q also asks the last layer for δ = 0 (default none)")
    parser.add_argument("--sparsity", type=probability, default=0.9,
                        help="fraction ε of zero weights, in [0, 1) (default 0.9)")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="weight seed (default 0)")
    parser.add_argument("--widths", type=positive_int, nargs="+", default=None, metavar="D",
                        help="d_0 d_1 ... d_L for the bit accounting and --out "
                             "(default 784 then 1000 per layer)")
    parser.add_argument("--digits", type=positive_int, default=15,
                        help="15: float64, residual <= 1e-12; e.g. 30: residual <= 1e-25")
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
    if args.digits < 15:
        raise ParameterError(f"--digits must be >= 15, got {args.digits}")
    _check_weight_memory(widths)
    if args.out:  # an unwritable or misnamed --out is refused before the computation
        from ..io import check_output_path

        check_output_path(args.out, (".npz",), what="--out")
    t0 = time.perf_counter()
    res = compress_network(args.activations, args.tau0, family=args.family,
                           last_family=args.last_family, digits=args.digits)
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
    print(f"{'layer':>5} {'family':<12} {'tau_in':>9} {'variance':>10} {'max rel res':>12}  params")
    for i, f in enumerate(res.layers, start=1):
        ps = ", ".join(f"{k}={_fmt(v)}" for k, v in f.params.items())
        print(f"{i:>5} {f.family:<12} {f.tau_in:>9.5f} {f.variance:>10.5f} {f.max_rel_residual:>12.2e}  {ps}")
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
        raise ResourceError(f"{sum(sizes):.3g} ternary weights need about {need / 2**30:.1f} GiB to "
                            f"draw (limit {_WEIGHT_MEMORY_LIMIT / 2**30:.0f} GiB): use smaller --widths")


def _fmt(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        return "[" + ",".join(f"{x:.6g}" for x in v) + "]"
    return f"{v:.6g}" if math.isfinite(v) else str(v)
