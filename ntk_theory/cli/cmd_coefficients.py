"""``ntk-theory coefficients``: τ_ℓ, α_ℓ, β_ℓ, κ_ℓ of a network (docs/reference.rst §4).

JSON layout (issue 3)::

    {"tau0": T, "layers": [{"layer": 1, "activation": "...", "tau": τ_1,
                            "alpha": [α1, α2, α3, α4], "beta": [β1, β2, β3], "kappa": κ_1}, ...]}

τ and κ are positive roots; κ is ``"inf"`` after a staircase layer (E[σ'²] = ∞).
"""

from __future__ import annotations

import argparse
import math

# light imports only: the parser is built for every command (see ntk_theory.cli)
from ._common import dump_json, positive_float, positive_int

HELP = "per-layer coefficients tau, alpha_1..4, beta_1..3, kappa of the NTK equivalence theorems"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("activations", nargs="+", metavar="ACT",
                   help="activation of each layer, first layer first (same syntax as 'moments')")
    p.add_argument("--tau0", type=positive_float, required=True,
                   help="input scale τ0 > 0 (τ0² = tr(C°)/p, about the mean squared norm of the data)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the issue-3 JSON layout")
    out.add_argument("--latex", action="store_true",
                     help="print a booktabs table (ntk-theory table coefficients has more options)")
    p.add_argument("--digits", type=positive_int, default=6,
                   help="significant digits, each correct, of the printed numbers (default 6, "
                        "at most 15: the coefficients are float64)")


def _text(res, digits: int) -> str:
    w = digits + 7
    names = ["tau"] + [f"alpha{k}" for k in range(1, 5)] + [f"beta{k}" for k in range(1, 4)] + ["kappa"]
    act_w = max(10, *(len(lay.activation.spec) for lay in res.layers))
    lines = [f"tau0 = {res.tau0:g}",
             f"{'layer':>5}  {'activation':<{act_w}}  " + "  ".join(f"{n:>{w}}" for n in names)]
    for lay in res.layers:
        vals = [lay.tau, *lay.alpha, *lay.beta, lay.kappa]
        cells = ["inf" if math.isinf(v) else f"{v:.{digits}g}" for v in vals]
        lines.append(f"{lay.layer:>5}  {lay.activation.spec:<{act_w}}  " + "  ".join(f"{c:>{w}}" for c in cells))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.digits > 15:  # --digits means correct digits in every subcommand (docs/cli.rst)
        from ..errors import ParameterError

        raise ParameterError(f"--digits must be at most 15 (float64 coefficients), got {args.digits}")
    from ..coefficients import coefficients
    from ..latex import coefficients_table

    res = coefficients(args.activations, args.tau0)
    if args.json:
        dump_json(res.to_dict())
    elif args.latex:
        print(coefficients_table(res, args.digits).to_latex())
    else:
        print(_text(res, args.digits))
    return 0
