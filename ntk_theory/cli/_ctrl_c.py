"""Ctrl-C on the command line: delivered to the command once, never lost.

Python runs a signal handler between two steps of whatever code runs at that moment, so
the :class:`KeyboardInterrupt` it raises can be dropped before it reaches the command:

* by a bare ``except:`` that does not re-raise — mpmath's back-end selection wraps its
  optional ``import gmpy2`` in one, and the CLI imports mpmath while it builds its parser;
* by a finalizer or garbage-collector callback, where Python prints "Exception ignored"
  and drops it (importlib's module-lock callback is one).

Without this module, ``benchmarks/stress_ctrl_c.py`` (Ctrl-C at random moments of the
start-up, next to busy processes) saw about one run in a hundred end in status 0, the
command run to completion (docs/BENCHMARKS.md).

This module notices a dropped interrupt and raises it again — and only a dropped one: a
command that handles Ctrl-C itself (the sweep cancels its tasks, closes its cluster and
commits its results) is never interrupted again while it cleans up.

* **Start-up checkpoints.**  No start-up code handles Ctrl-C, so an interrupt that was
  seen while the parser was built or the arguments parsed, yet did not propagate, was
  dropped: :func:`checkpoint` raises it again.
* **Imports.**  When the handler fires inside an import, the modules being imported are
  recorded.  An interrupt that propagates aborts those imports; if one of them completes
  anyway, the interrupt was dropped inside it, and it is raised again at the next import
  (an audit hook) or checkpoint.
* **Finalizers.**  The unraisable hook sees the dropped interrupt (and keeps it off
  stderr); a one-shot ``SIGALRM`` raises it again :data:`AGAIN_SECONDS` later, after any
  section that ignores Ctrl-C on purpose (such as the sweep starting its worker processes).
* **End of the run.**  A command that ends with any status but 130 after a Ctrl-C was
  seen did not handle it: :func:`ntk_theory.cli.main` reports the interrupt instead.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, ModuleType
from typing import Any

#: delay of the repeated interrupt after a finalizer dropped one (seconds)
AGAIN_SECONDS = 0.02

_UNSET: Any = object()


class _State:
    def __init__(self) -> None:
        self.active = False       # our SIGINT handler is installed (inside main())
        self.seen = False         # a Ctrl-C arrived during this main() call
        #: (name, module) imports in progress when an interrupt was raised
        self.watch: list[tuple[str, ModuleType]] = []
        self.old_sigint: Any = _UNSET
        self.old_alarm: Any = _UNSET
        self.old_unraisable: Any = _UNSET
        self.entry: Any = None    # code of main(): its handlers run in its own frame
        self.reporter: Any = None  # code of the function reporting a delivered interrupt
        self.blocked = False      # SIGINT blocked by finish() until end()


_STATE = _State()
_AUDIT_INSTALLED = False
#: the process entry point's main() has returned: the process exits, a Ctrl-C is ignored
_EXITING = False


def begin(entry: Any, reporter: Any) -> bool:
    """Take over SIGINT for one :func:`~ntk_theory.cli.main` call (main thread, and only
    when Python's own handler is in place: an ignored SIGINT stays ignored, and a nested
    call leaves the outer call's state alone).

    No interrupt is raised in ``entry``'s own frame (``main``, whose handlers are there;
    the Ctrl-C is recorded for its end-of-run check) nor anywhere below ``reporter``
    (which reports a delivered interrupt) or :func:`finish` and :func:`end`.  Returns
    whether this call took over; pass it to :func:`end`.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return False
    _STATE.__init__()  # type: ignore[misc]
    _STATE.entry, _STATE.reporter = entry.__code__, reporter.__code__
    _STATE.old_sigint = signal.signal(signal.SIGINT, _on_sigint)
    _STATE.active = True
    return True


def seen() -> bool:
    """A Ctrl-C arrived during this call."""
    return _STATE.seen


def checkpoint() -> None:
    """Raise the interrupt again if one was seen (call where nothing handles Ctrl-C)."""
    if _STATE.seen:
        _raise_again(sys._getframe(1))


def settle() -> None:
    """The interrupt reached its handler: nothing more to raise again."""
    _STATE.watch = []
    if _STATE.old_alarm is not _UNSET:
        signal.setitimer(signal.ITIMER_REAL, 0)


def finish(owner: bool) -> None:
    """The run is over: hold back a further Ctrl-C until :func:`end`.  One that arrived
    before is recorded, and main()'s end-of-run check reports it."""
    if owner and _STATE.active:
        _mask(signal.SIG_BLOCK)
        _STATE.blocked = True
        if _pending():
            _STATE.seen = True


def end(owner: bool, restore_sigint: bool) -> None:
    """Undo :func:`begin` when ``owner``.  The SIGINT handler is put back only when
    ``restore_sigint`` (an in-process call): a Ctrl-C held back by :func:`finish` then
    reaches the caller's handler.  A process about to exit drops it (its status is
    decided) and keeps its handler."""
    global _EXITING
    if not owner:
        return
    _EXITING = not restore_sigint
    if _STATE.active and not _STATE.blocked:  # main() left early (an error propagates)
        _mask(signal.SIG_BLOCK)
    settle()
    if _STATE.old_alarm is not _UNSET:
        signal.signal(signal.SIGALRM, signal.SIG_DFL if _STATE.old_alarm is None else _STATE.old_alarm)
    if _STATE.old_unraisable is not _UNSET:
        sys.unraisablehook = _STATE.old_unraisable
    if restore_sigint and _STATE.old_sigint is not _UNSET:
        signal.signal(signal.SIGINT, _STATE.old_sigint)
    elif _pending():
        # ignoring a pending signal discards it (POSIX); then the handler is put back
        signal.signal(signal.SIGINT, signal.signal(signal.SIGINT, signal.SIG_IGN))
    active = _STATE.active
    _STATE.__init__()  # type: ignore[misc]
    if active:
        _mask(signal.SIG_UNBLOCK)


def _mask(how: Any) -> None:
    if hasattr(signal, "pthread_sigmask"):  # POSIX
        signal.pthread_sigmask(how, {signal.SIGINT})


def _pending() -> bool:
    return hasattr(signal, "sigpending") and signal.SIGINT in signal.sigpending()


def _on_sigint(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    global _AUDIT_INSTALLED
    if _EXITING:
        return  # after main() of the process: its status is decided and reported
    _STATE.seen = True
    if _STATE.old_unraisable is _UNSET:
        _STATE.old_unraisable = sys.unraisablehook
        sys.unraisablehook = _on_unraisable
    if not _AUDIT_INSTALLED:
        # only once a Ctrl-C came: an audit hook cannot be removed (one per process, idle
        # outside main(); Python runs audit hooks untraced, so the derivation engine's
        # count of Python calls does not see it)
        sys.addaudithook(_on_audit)
        _AUDIT_INSTALLED = True
    if _STATE.active and _quiet(frame):
        return  # recorded: main()'s end-of-run check reports it (or a report is under way)
    _raise_here(frame)


def _quiet(frame: FrameType | None) -> bool:
    """No KeyboardInterrupt may be raised in this frame: main()'s own (between its
    handlers), or below the report of an interrupt, :func:`finish` or :func:`end`."""
    if frame is not None and frame.f_code is _STATE.entry:
        return True
    f = frame
    while f is not None:
        if f.f_code is _STATE.reporter or f.f_code in _CLOSING:
            return True
        f = f.f_back
    return False


def _raise_again(frame: FrameType | None) -> None:
    """Raise a dropped interrupt again here, unless this is a section shielded from
    Ctrl-C (then the next import, checkpoint or the run's end) or a quiet frame."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN or _quiet(frame):
        return
    _raise_here(frame)


def _raise_here(frame: FrameType | None) -> None:
    """Raise KeyboardInterrupt, remembering the imports it is raised inside."""
    _STATE.watch = _imports_in_progress(frame)
    raise KeyboardInterrupt


def _imports_in_progress(frame: FrameType | None) -> list[tuple[str, ModuleType]]:
    out = []
    f = frame
    while f is not None:
        code = f.f_code
        if code.co_name == "_load_unlocked" and code.co_filename.startswith("<frozen importlib"):
            name = getattr(f.f_locals.get("spec"), "name", None)
            if isinstance(name, str) and (mod := sys.modules.get(name)) is not None:
                out.append((name, mod))  # a Python module executing (extensions: their importer)
        f = f.f_back
    return out


def _dropped() -> bool:
    """An import that an interrupt was raised inside has completed: it was dropped there
    (one that propagates aborts the import and removes the module)."""
    for name, mod in _STATE.watch:
        if sys.modules.get(name) is mod and not getattr(getattr(mod, "__spec__", None), "_initializing", False):
            return True
    return False


def _on_audit(event: str, args: tuple) -> None:  # noqa: ARG001
    if event != "import" or not _STATE.watch or not _STATE.active:
        return
    if threading.current_thread() is not threading.main_thread():
        return
    if _dropped():
        _raise_again(sys._getframe(1))


def _on_unraisable(unraisable: Any) -> None:
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _STATE.active:
        _again_soon()
        return
    old = _STATE.old_unraisable
    (sys.__unraisablehook__ if old is _UNSET else old)(unraisable)


def _again_soon() -> None:
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return
    if _STATE.old_alarm is _UNSET:
        _STATE.old_alarm = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, AGAIN_SECONDS)


def _on_alarm(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    if not _STATE.active:
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.setitimer(signal.ITIMER_REAL, AGAIN_SECONDS)  # after the shielded section
        return
    _raise_again(frame)


#: main()'s closing steps: a Ctrl-C there is recorded, not raised
_CLOSING = frozenset({finish.__code__, end.__code__})
