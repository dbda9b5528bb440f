"""``ntk-theory coefficients``: τ_ℓ, α_ℓ, β_ℓ, κ_ℓ of a network (docs/reference.rst §4).

JSON layout (schema ``coefficients.json``)::

    {"tau0": T, "layers": [{"layer": 1, "activation": "...", "tau": τ_1,
                            "alpha": [α1, α2, α3, α4], "beta": [β1, β2, β3], "kappa": κ_1}, ...]}

τ and κ are positive roots; κ is ``"inf"`` after a staircase layer (E[σ'²] = ∞).
"""

from __future__ import annotations

import argparse

# light imports only: the parser is built for every command (see ntk_theory.cli)
from ._common import dump_json, positive_float, positive_int

HELP = "per-layer coefficients tau, alpha_1..4, beta_1..3, kappa of the NTK equivalence theorems"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("activations", nargs="+", metavar="ACT",
                   help="activation of each layer, first layer first (same syntax as 'moments')")
    p.add_argument("--tau0", type=positive_float, required=True,
                   help="input scale τ0 > 0 (τ0² = tr(C°)/p, about the mean squared norm of the data)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON (schema: coefficients.json)")
    out.add_argument("--latex", action="store_true",
                     help="print a booktabs table (ntk-theory table coefficients has more options)")
    p.add_argument("--digits", type=positive_int, default=6,
                   help="significant digits, each correct, of the printed numbers (default 6, "
                        "at most 15: the coefficients are float64)")


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
    else:  # the same table as plain text: numbers in columns digits + 7 wide
        print(f"tau0 = {res.tau0:g}")
        print(coefficients_table(res, args.digits).to_text(caption=False, number_width=args.digits + 7))
    return 0
