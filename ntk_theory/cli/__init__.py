"""The ``ntk-theory`` command line: a thin layer over the public API.

Every module ``cmd_<name>.py`` in this package is a subcommand ``<name>``; it defines
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.  Errors of the
:class:`~ntk_theory.errors.NTKTheoryError` hierarchy and argparse usage errors become one line on stderr
and exit status 2; Ctrl-C (at any moment,
start-up included) one line and exit status 130 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import NTKTheoryError
from . import _ctrl_c

__all__ = ["main", "build_parser"]


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (no usage dump) and exit 2."""

    def error(self, message: str) -> NoReturn:  # type: ignore[name-defined]  # noqa: F821
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


def _command_name(argv: Sequence[str] | None) -> str:
    """``"ntk-theory <cmd>"`` for messages before the arguments are parsed (first non-option)."""
    args = sys.argv[1:] if argv is None else list(argv)
    cmd = next((a for a in args if a and not a.startswith("-")), None)
    return f"ntk-theory {cmd}" if cmd else "ntk-theory"


def _interrupted(prog: str) -> int:
    """One line on stderr and exit status 130 (128 + SIGINT), as shells report Ctrl-C."""
    import signal
    import threading

    _ctrl_c.settle()
    if threading.current_thread() is threading.main_thread():
        # the run is over: a further Ctrl-C must not raise a second KeyboardInterrupt
        # while the process exits; restored by main()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 — a closed or broken stdout must not hide the message
        pass
    sys.stderr.write(f"{prog}: interrupted\n")
    sys.stderr.flush()
    return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ntk-theory`` and ``python -m ntk_theory``.

    Exit status: 0 on success, 2 on bad input (one line on stderr), 130 on Ctrl-C at any
    moment — including the imports done while the parser is built — with the single line
    ``ntk-theory <cmd>: interrupted`` (or the command's own) and no traceback.  An
    interrupt that library code drops on its way is raised again (see
    :mod:`ntk_theory.cli._ctrl_c`).
    """
    if "numpy" not in sys.modules:
        # NumPy advises the kernel to back every array of 4 MiB or more with transparent
        # huge pages, and reads this switch once, when it is imported (lazily, below).  On
        # virtual machines that hand freed memory back to their host, first-touching fresh
        # huge pages costs far more than the arithmetic on them (the paper-size benchmark
        # at n = 4000 here: 10.5 s of system time with the advice, 2.8 s without; see
        # docs/BENCHMARKS.md).  The command line therefore runs without it unless the user
        # set NUMPY_MADVISE_HUGEPAGE; library users choose for their own process.
        os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    prog = _command_name(argv)
    owner = _ctrl_c.begin(main, _interrupted)
    try:
        try:
            rc = _main(argv)
        except KeyboardInterrupt:  # start-up (imports in build_parser), parsing, or the run
            rc = _interrupted(prog)
        except Exception:
            if not _ctrl_c.seen():
                raise
            rc = _interrupted(prog)  # an error raised by the Ctrl-C itself
        # from here on a Ctrl-C is recorded or held back, never raised: main()'s own frame
        # has no handler left to catch it
        _ctrl_c.finish(owner)
        if _ctrl_c.seen() and rc != 130:
            # dropped on its way (see _ctrl_c), or arrived as the run ended
            rc = _interrupted(prog)
        if rc == 130 and argv is None:
            # the process entry point after Ctrl-C: leave now.  A normal interpreter exit
            # can still turn into death by SIGINT (status −2 instead of 130) when the
            # interrupt passed through C extension code that records an "unhandled"
            # KeyboardInterrupt; the message is written and flushed already.
            os._exit(130)
        return rc
    finally:
        # called as a function (tests): SIGINT back as it was; a process keeps its handler
        _ctrl_c.end(owner, restore_sigint=argv is not None)


def _report_warnings(prog: str, caught: list) -> None:
    """One line on stderr for the warnings of a successful run (none: nothing)."""
    if not caught:
        return
    first = caught[0]
    msg = " ".join(f"{first.category.__name__}: {first.message}".split())
    more = f" (and {len(caught) - 1} more)" if len(caught) > 1 else ""
    sys.stderr.write(f"{prog}: warning: {msg}{more}\n")


def _main(argv: Sequence[str] | None) -> int:
    import warnings  # (already loaded by the interpreter: costs nothing)

    _ctrl_c.checkpoint()  # a Ctrl-C recorded in main()'s own frame, before this call
    parser = build_parser()
    _ctrl_c.checkpoint()  # no start-up code handles Ctrl-C: a seen one was dropped
    args = parser.parse_args(argv)
    _ctrl_c.checkpoint()
    if getattr(args, "_run", None) is None:
        sys.stderr.write("ntk-theory: error: a COMMAND is required (see ntk-theory --help)\n")
        return 2
    try:
        with warnings.catch_warnings(record=True) as caught:
            # library warnings (NumPy RuntimeWarnings …) are not printed as they come: an
            # error supersedes them (one line), a success reports them in one line below;
            # the filters in force (DeprecationWarning ignored …) still apply
            rc = int(args._run(args) or 0)
        _report_warnings(f"ntk-theory {args.command}", caught)
        return rc
    except NTKTheoryError as exc:
        if _ctrl_c.seen():  # raised by, or after, a Ctrl-C (e.g. a failed optional import)
            return _interrupted(f"ntk-theory {args.command}")
        # the library names keyword arguments; the command line names its flags
        msg = " ".join(exc.cli_message(getattr(args, "_flags", None)).split())
        sys.stderr.write(f"ntk-theory {args.command}: error: {msg}\n")
        return 2
    except KeyboardInterrupt:
        return _interrupted(f"ntk-theory {args.command}")
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug, not bad input: still one line, no traceback
        if _ctrl_c.seen():  # an error raised by the Ctrl-C itself (e.g. inside an import)
            return _interrupted(f"ntk-theory {args.command}")
        if os.environ.get("NTK_THEORY_DEBUG"):
            raise
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())
        sys.stderr.write(f"ntk-theory {args.command}: internal error (please report; "
                         f"NTK_THEORY_DEBUG=1 shows the traceback): {msg}\n")
        return 2
