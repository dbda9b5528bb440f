"""``ntk-theory moments``: the six Gaussian moments of activations (docs/reference.rst §1)."""

from __future__ import annotations

import argparse
import sys

# light imports only: the parser is built for every command (see ntk_theory.cli)
from ._common import dump_json, positive_float, positive_int

HELP = "Gaussian moments E[s], E[s'], E[s''], E[s^2], E[s'^2], E[(s^2)''] of activations"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("activations", nargs="+", metavar="ACT",
                   help="registry name (relu), name:k=v,... (leaky_relu:slope=0.1) or expression in x; "
                        "'ntk-theory activations' lists every name with its parameters")
    p.add_argument("--tau", type=positive_float, default=1.0, help="input scale τ > 0 (default 1)")
    p.add_argument("--centered", action="store_true", help="moments of σ − E[σ(τξ)]")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print a JSON list, one object per ACT")
    out.add_argument("--latex", action="store_true",
                     help="print a booktabs table (ntk-theory table moments has more options)")
    p.add_argument("--labels", default=None, metavar="L1,L2,...",
                   help="--latex: row labels instead of the activation specifications, one per ACT")
    p.add_argument("--digits", type=positive_int, default=15,
                   help="significant digits, each certified correct, of the moments (default 15, at most "
                        "200; the plain table prints at most 12, --latex at most 10)")
    p.add_argument("--budget", type=positive_float, default=2.0,
                   help="seconds of symbolic work per activation before quadrature (default 2)")


def run(args: argparse.Namespace) -> int:
    if args.labels is not None and not args.latex:
        from ..errors import ParameterError

        raise ParameterError("--labels applies to --latex output only")
    from tqdm import tqdm

    from ..latex import moments_table
    from ..moments import gaussian_moments

    # a progress bar on a terminal only (never in pipes, files or tests)
    acts = tqdm(args.activations, desc="moments", leave=False, file=sys.stderr,
                disable=len(args.activations) < 2 or not sys.stderr.isatty())
    results = [gaussian_moments(a, args.tau, centered=args.centered, digits=args.digits,
                                budget=args.budget) for a in acts]
    if args.json:
        dump_json([r.to_dict() for r in results])
    elif args.latex:
        table = moments_table(results, min(args.digits, 10))
        if args.labels is not None:
            from .cmd_table import split_labels

            table = table.with_row_labels(split_labels(args.labels))
        print(table.to_latex())
    else:  # the table model as plain text, at most 12 digits; rows without a closed form flagged
        shown = min(args.digits, 12)
        text = moments_table(results, shown).to_text(caption=False, number_width=shown + 7)
        head, *rows = text.split("\n")
        print(f"tau = {args.tau:g}" + (" (centered)" if args.centered else ""))
        print(head)
        for r, row in zip(results, rows):
            print(row + ("" if r.closed_form else "   (numeric)"))
    return 0
