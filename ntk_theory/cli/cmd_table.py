"""``ntk-theory table``: booktabs LaTeX tables of moments, coefficients and compression plans.

A thin layer over :func:`ntk_theory.latex.moments_table` (docs/reference.rst §1),
:func:`~ntk_theory.latex.coefficients_table` (docs/reference.rst §4) and
:func:`~ntk_theory.latex.compression_table` (docs/reference.rst §6); the ``--latex`` outputs
of ``moments``, ``coefficients`` and ``compress`` print the same tables.
"""

from __future__ import annotations

import argparse
import sys

# light imports only: the parser is built for every command (see ntk_theory.cli); ntk_theory.latex
# (mpmath, no NumPy) provides the column keys of the help text
from ..errors import ParameterError
from ..latex import (
    COEFFICIENTS_COLUMNS,
    COMPRESSION_COLUMNS,
    MOMENTS_COLUMNS,
    NUMBER_STYLES,
    Table,
    check_label,
    coefficients_table,
    compression_table,
    moments_table,
    select_columns,
)
from ._common import FAMILY_CHOICES, LAST_FAMILY_CHOICES, family_name, positive_float, positive_int

HELP = ("LaTeX (booktabs) tables of moments, per-layer coefficients or compression parameters, "
        "with a choice of columns, number format, caption and label")

KINDS = ("moments", "coefficients", "compression")
_AVAILABLE = {"moments": MOMENTS_COLUMNS, "coefficients": COEFFICIENTS_COLUMNS,
              "compression": COMPRESSION_COLUMNS}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=KINDS, metavar="KIND",
                   help="moments (one row per ACT), coefficients or compression (one row per layer)")
    p.add_argument("activations", nargs="+", metavar="ACT",
                   help="activations (same syntax as 'moments'); for coefficients and compression "
                        "the layers, first layer first")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--tau", type=positive_float, default=None, dest="scale",
                       help="input scale τ > 0 (moments: default 1)")
    scale.add_argument("--tau0", type=positive_float, default=None, dest="scale",
                       help="input scale τ0 > 0 of the network (required for coefficients and compression)")
    p.add_argument("--centered", action="store_true", help="moments of σ − E[σ(τξ)] (moments only)")
    p.add_argument("--family", type=family_name, default=None,
                   help=f"compression only: {FAMILY_CHOICES} (default auto)")
    p.add_argument("--last-family", choices=LAST_FAMILY_CHOICES, default=None,
                   help=f"compression only: {LAST_FAMILY_CHOICES[1]} also asks the last layer for δ = 0 "
                        "(default none)")
    p.add_argument("--columns", default=None, metavar="KEY,KEY,...",
                   help="columns by key, in order; moments: " + ",".join(MOMENTS_COLUMNS)
                        + "; coefficients: " + ",".join(COEFFICIENTS_COLUMNS)
                        + "; compression: " + ",".join(COMPRESSION_COLUMNS))
    p.add_argument("--digits", type=positive_int, default=6,
                   help="significant digits of every number (default 6, at most 50)")
    p.add_argument("--format", choices=NUMBER_STYLES, default="auto", dest="style",
                   help="auto (like %%g), fixed (never an exponent) or sci (always m×10^e); default auto")
    p.add_argument("--caption", default=None,
                   help="caption text (LaTeX specials are escaped; $...$ pairs are kept as math)")
    p.add_argument("--label", default=None, help="\\label{...} key (letters, digits and : _ . - + /)")
    p.add_argument("--labels", default=None, metavar="L1,L2,...",
                   help="row labels replacing the first column, one per row (text; $...$ kept as math)")
    p.add_argument("--standalone", action="store_true",
                   help="a complete document (article and exactly the packages the table declares) "
                        "that pdflatex compiles")
    p.add_argument("--output", choices=("latex", "markdown", "text"), default="latex",
                   help="latex (default), markdown (pipe table) or text (aligned columns)")


def build_table(args: argparse.Namespace) -> Table:
    """The :class:`~ntk_theory.latex.Table` that ``args`` ask for."""
    opts = dict(columns=args.columns, style=args.style, caption=args.caption, label=args.label)
    if args.digits > 50:
        raise ParameterError(f"--digits must be at most 50, got {args.digits}")
    if args.kind != "moments" and args.centered:
        raise ParameterError("--centered applies to 'table moments' only")
    if args.kind != "compression" and (args.family is not None or args.last_family is not None):
        raise ParameterError("--family and --last-family apply to 'table compression' only")
    if args.standalone and args.output != "latex":
        raise ParameterError("--standalone needs --output latex")
    # refuse bad columns and labels before any computation
    if args.columns is not None:
        select_columns(_AVAILABLE[args.kind], args.columns, (), args.kind)
    if args.label is not None:
        check_label(args.label)
    if args.kind == "moments":
        from tqdm import tqdm

        from ..moments import gaussian_moments

        tau = 1.0 if args.scale is None else args.scale
        # a progress bar on a terminal only (never in pipes, files or tests)
        acts = tqdm(args.activations, desc="moments", leave=False, file=sys.stderr,
                    disable=len(args.activations) < 2 or not sys.stderr.isatty())
        results = [gaussian_moments(a, tau, centered=args.centered, digits=max(15, args.digits))
                   for a in acts]
        return moments_table(results, args.digits, **opts)
    if args.scale is None:
        raise ParameterError(f"'table {args.kind}' needs the input scale --tau0")
    if args.kind == "coefficients":
        from ..coefficients import coefficients

        return coefficients_table(coefficients(args.activations, args.scale), args.digits, **opts)
    from ..compress import compress_network

    res = compress_network(args.activations, args.scale, family=args.family or "auto",
                           last_family=args.last_family or "none")
    return compression_table(res, args.digits, **opts)


def run(args: argparse.Namespace) -> int:
    table = build_table(args)
    if args.labels is not None:
        table = table.with_row_labels(split_labels(args.labels))
    if args.output == "markdown":
        print(table.to_markdown())
    elif args.output == "text":
        print(table.to_text())
    else:
        print(table.to_latex(standalone=args.standalone))
    return 0


def split_labels(text: str) -> list[str]:
    """``--labels`` value → labels: split at commas outside ``$...$`` math."""
    out, cur, math_mode = [], "", False
    for ch in text:
        if ch == "$":
            math_mode = not math_mode
        if ch == "," and not math_mode:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out
