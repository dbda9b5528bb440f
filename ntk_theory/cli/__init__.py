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

    _STATE.pending = False  # a repeat still on its way finds nothing to do
    if _STATE.repeating:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if threading.current_thread() is threading.main_thread():
        # the run is over: a further Ctrl-C (or a still pending one) must not raise a
        # second KeyboardInterrupt while the process exits; restored by main()
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
    ``ntk-theory <cmd>: interrupted`` and no traceback.
    """
    import signal
    import threading

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
    previous = signal.getsignal(signal.SIGINT)
    _STATE.reset()
    if threading.current_thread() is threading.main_thread() and previous is signal.default_int_handler:
        # remember the Ctrl-C: a C extension being imported when it lands turns the
        # KeyboardInterrupt into "ImportError: initialization failed", which is still Ctrl-C
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        try:
            rc = _main(argv)
        except KeyboardInterrupt:  # start-up (imports in build_parser), parsing, or the run
            rc = _interrupted(prog)
        except Exception:
            if not _STATE.seen:
                raise
            rc = _interrupted(prog)
        if _STATE.pending:  # swallowed, and the run ended before a repeat landed
            rc = _interrupted(prog)
        if rc == 130 and argv is None:
            # the process entry point after Ctrl-C: leave now.  A normal interpreter exit
            # can still turn into death by SIGINT (status −2 instead of 130) when the
            # interrupt passed through C extension code that records an "unhandled"
            # KeyboardInterrupt; the message is written and flushed already.
            os._exit(130)
        return rc
    finally:
        _restore_after_repeating()
        if argv is not None and previous is not None:  # called as a function (tests): restore
            signal.signal(signal.SIGINT, previous)


class _SigintState:
    """What :func:`main` knows about Ctrl-C during one call.

    ``seen``: a Ctrl-C arrived.  ``pending``: it has not reached :func:`main`'s handler
    yet.  Python runs a signal handler between two bytecodes of whatever runs then, and
    the KeyboardInterrupt it raises can be swallowed before it reaches :func:`main`: by a
    finalizer or garbage-collector callback (printed as "Exception ignored" and dropped),
    or inside a C extension's initialisation, which turns it into an ImportError that an
    optional import (``try: import _decimal  except ImportError: …``) absorbs.  While
    ``pending``, a repeating SIGALRM raises it again until it lands, and the dropped
    ones are not printed.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seen = False
        self.pending = False
        self.repeating = False  # SIGALRM handler and sys.unraisablehook are ours
        self.old_alarm: object = None
        self.old_unraisable: object = None


_STATE = _SigintState()

#: period of the repeated KeyboardInterrupt while a Ctrl-C is pending (seconds)
_REPEAT_SECONDS = 0.05


def _on_sigint(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    import signal

    _STATE.seen = True
    _STATE.pending = True
    if not _STATE.repeating and hasattr(signal, "setitimer"):
        _STATE.repeating = True
        _STATE.old_alarm = signal.signal(signal.SIGALRM, _on_repeat)
        _STATE.old_unraisable = sys.unraisablehook
        sys.unraisablehook = _quiet_unraisable
        signal.setitimer(signal.ITIMER_REAL, _REPEAT_SECONDS, _REPEAT_SECONDS)
    raise KeyboardInterrupt


def _quiet_unraisable(unraisable) -> None:
    """A KeyboardInterrupt dropped in a finalizer or gc callback is not printed ("Exception
    ignored in …"): it is repeated until it lands.  Anything else is reported as before."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        return
    (_STATE.old_unraisable or sys.__unraisablehook__)(unraisable)  # type: ignore[operator]


def _on_repeat(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    import signal

    if not _STATE.pending:
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # a section shielded from Ctrl-C (e.g. the sweep spawning its worker processes):
        # the repeat lands after it, once the section restores the handler
        return
    # not in main()'s own frame (its handlers are there) nor anywhere below _interrupted
    # (which is reporting it): a second KeyboardInterrupt there would escape them
    if frame is not None and frame.f_code is main.__code__:
        return
    f = frame
    while f is not None:
        if f.f_code is _interrupted.__code__:
            return
        f = f.f_back
    raise KeyboardInterrupt


def _restore_after_repeating() -> None:
    """Timer off, the previous SIGALRM handler and unraisable hook back (end of main)."""
    import signal

    if not _STATE.repeating:
        return
    signal.setitimer(signal.ITIMER_REAL, 0)
    old = _STATE.old_alarm
    # None: the previous handler was not set from Python (then it was the default)
    signal.signal(signal.SIGALRM, signal.SIG_DFL if old is None else old)  # type: ignore[arg-type]
    sys.unraisablehook = _STATE.old_unraisable  # type: ignore[assignment]
    _STATE.repeating = False


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

    parser = build_parser()
    args = parser.parse_args(argv)
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
        if _STATE.pending:  # raised while a swallowed Ctrl-C was on its way
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
        if _STATE.seen:  # an error raised by the Ctrl-C itself (e.g. inside an import)
            return _interrupted(f"ntk-theory {args.command}")
        if os.environ.get("NTK_THEORY_DEBUG"):
            raise
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())
        sys.stderr.write(f"ntk-theory {args.command}: internal error (please report; "
                         f"NTK_THEORY_DEBUG=1 shows the traceback): {msg}\n")
        return 2

