"""The ``ntk-theory`` command line: a thin layer over the public API.

Every module ``cmd_<name>.py`` in this package is a subcommand ``<name>``; it defines
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.  Errors of the
:class:`~ntk_theory.errors.NTKTheoryError` hierarchy, argparse usage errors and
interrupts become one line on stderr and exit status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import Sequence

from .. import __version__
from ..errors import NTKTheoryError

__all__ = ["main", "build_parser"]


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (no usage dump) and exit 2."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
        prog = self.prog
        self.exit(2, f"{prog}: error: {message}\n")


def _subcommands() -> list[str]:
    return sorted(
        m.name[4:] for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_")
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="ntk-theory",
        description="Gaussian moments, NTK theory kernels and NTK-LC compression.",
    )
    parser.add_argument("--version", action="version", version=f"ntk-theory {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)
    for name in _subcommands():
        mod = importlib.import_module(f"{__name__}.cmd_{name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ntk-theory`` and ``python -m ntk_theory``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        sys.stderr.write("ntk-theory: error: a COMMAND is required (see ntk-theory --help)\n")
        return 2
    try:
        return int(args._run(args) or 0)
    except NTKTheoryError as exc:
        msg = " ".join(str(exc).split())
        sys.stderr.write(f"ntk-theory {args.command}: error: {msg}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"ntk-theory {args.command}: interrupted\n")
        return 2
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug, not bad input: still one line, no traceback
        if os.environ.get("NTK_THEORY_DEBUG"):
            raise
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())
        sys.stderr.write(f"ntk-theory {args.command}: internal error (please report; "
                         f"NTK_THEORY_DEBUG=1 shows the traceback): {msg}\n")
        return 2
