"""``ntk-theory demo``: coefficients, NTK-LC compression, verification and readouts on an
embedded default (GMM data, 3-layer ReLU network); see :mod:`ntk_theory.demo`."""

from __future__ import annotations

import argparse

# light imports only: the parser is built for every command (see ntk_theory.cli)
from ._common import dump_json

HELP = ("end-to-end demo on GMM data with a 3-layer ReLU network: coefficients, compression at "
        "eps = 0.9 (sigma_T and staircase:4), spectra, readouts with cross-validated ridge; "
        "writes PNG figures")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--outdir", default=".", help="directory for the PNG figures (default: .)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the names of the figures written")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")


def run_demo(outdir: str):
    """:func:`ntk_theory.demo.run_demo`, imported when the command runs."""
    from ..demo import run_demo as _run_demo

    return _run_demo(outdir)


def run(args: argparse.Namespace) -> int:
    res = run_demo(args.outdir)
    if args.json:
        dump_json(res.to_dict())
    elif args.quiet:
        for f in res.figures:
            print(f)
    else:
        print("\n".join(res.lines))
    return 0
