"""Ctrl-C at any moment (issue 11): exit status 130, one line on stderr, no traceback.

The CLI is started as a real child process (``python -m ntk_theory``) and sent SIGINT
after delays that fall into start-up (the imports done while the parser is built),
argument checking and the computation.  The very first ~0.1 s belong to the Python
interpreter's own start-up, before any ntk-theory code runs; nothing in the package can
handle a signal there, and under load it can take longer than any fixed delay.  So the
child reports the end of that start-up (see ENTRIES) and the delays, from 0.3 s, count
from there: the shortest lands inside the imports of the parser (about 2 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from reference import default_sigint

from ntk_theory.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))



#: ``python -m ntk_theory`` (what ``-m`` runs, through runpy) and what the ``ntk-theory``
#: console script runs.  Each first writes one byte to the file descriptor in
#: NTK_STARTED_FD: the interpreter's own start-up (``site`` and its imports, before any
#: command code) is over.  Under load that start-up alone can outlast the shortest delay,
#: and a SIGINT there kills the interpreter before the command exists; the delays count
#: from the byte, so that each one lands in the command.
_STARTED = "import os, sys; os.write(int(os.environ['NTK_STARTED_FD']), b'.'); "
ENTRIES = {"module": ["-c", _STARTED + "import runpy; runpy.run_module('ntk_theory', run_name='__main__', "
                                       "alter_sys=True)"],
           "console-script": ["-c", _STARTED + "from ntk_theory.cli import main; sys.exit(main())"]}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("delay", [0.3, 0.6, 1.0, 2.0, 4.0])
def test_sigint_exits_130_with_one_line(delay, entry):
    # a run of well over 4 s on any machine: a signal that arrives after the command has
    # finished lands in the interpreter's teardown, where Python has restored the default
    # SIGINT action (status −2, no message) — that is not a Ctrl-C during the command
    argv = ["spectrum", "tanh", "--n", "2000", "--width", "2000", "--quiet"]
    r, w = os.pipe()
    try:
        p = subprocess.Popen([sys.executable, *ENTRIES[entry], *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**ENV, "NTK_STARTED_FD": str(w)},
                             cwd=ROOT, preexec_fn=default_sigint, pass_fds=(w,))
        os.close(w)
        w = -1
        assert os.read(r, 1) == b".", "the interpreter did not start"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    # the workload takes tens of seconds, so status 0 means the signal was ignored
    assert p.returncode != 0, "the command ran to completion: SIGINT was ignored"
    assert p.returncode == 130, (p.returncode, err)
    assert err.splitlines() in (["ntk-theory spectrum: interrupted"],), err
    assert "Traceback" not in err


def test_interrupt_in_process(monkeypatch, capsys):
    import ntk_theory.cli.cmd_moments as cm

    def boom(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cm, "run", boom)
    assert main(["moments", "relu"]) == 130
    assert capsys.readouterr().err == "ntk-theory moments: interrupted\n"


def test_interrupt_while_building_the_parser(monkeypatch, capsys):
    import ntk_theory.cli as cli

    def boom():
        raise KeyboardInterrupt  # as if Ctrl-C arrived during the imports of build_parser

    monkeypatch.setattr(cli, "build_parser", boom)
    assert cli.main(["spectrum", "relu"]) == 130
    assert capsys.readouterr().err == "ntk-theory spectrum: interrupted\n"



# ---------------------------------------------------------------------------------------
# A Ctrl-C that library code drops on its way (ntk_theory.cli._ctrl_c).  Python runs the
# handler between two steps of whatever code runs then; a bare ``except:`` (mpmath's
# back-end selection around ``import gmpy2``) or a finalizer drops the KeyboardInterrupt.
# Left to chance, SIGINT during the start-up of ``python -m ntk_theory spectrum …`` ends in
# status 0 about once in a hundred runs under load (benchmarks/stress_ctrl_c.py); these tests
# drop the interrupt on purpose, one mechanism each.

SWALLOW = """\
import signal
try:
    signal.raise_signal(signal.SIGINT)
except:  # noqa: E722 — as mpmath's back-end selection does around its optional imports
    pass
"""


def _dropped_in_bare_except() -> None:
    try:
        signal.raise_signal(signal.SIGINT)
    except:  # noqa: E722
        pass


class _DropsInFinalizer:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # Python prints "Exception ignored" and drops it


def _busy(seconds: float) -> bool:
    """Pure-Python work for ``seconds`` (a re-raised interrupt lands in it); True if it ran out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sum(range(1000))
    return True


@pytest.fixture
def python_sigint():
    """The interpreter's own SIGINT handler, as in a process started from a shell."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield sys.unraisablehook  # pytest's own; main() must put it back
    signal.signal(signal.SIGINT, old)


@pytest.fixture
def fresh_modules(tmp_path, monkeypatch):
    """Write modules into a directory on sys.path; names unique to this test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made = []

    def make(source: str) -> str:
        name = f"ntk_ctrl_c_probe_{os.getpid()}_{len(made)}_{time.monotonic_ns()}"
        (tmp_path / f"{name}.py").write_text(source)
        made.append(name)
        return name

    yield make
    for name in made:
        sys.modules.pop(name, None)


def _assert_clean_after(capsys, hook, line="ntk-theory moments: interrupted\n"):
    assert capsys.readouterr().err == line
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert sys.unraisablehook is hook
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_dropped_inside_an_import_is_raised_at_the_next_import(monkeypatch, capsys, python_sigint,
                                                               fresh_modules):
    import ntk_theory.cli.cmd_moments as cm

    swallower, after = fresh_modules(SWALLOW), fresh_modules("X = 1\n")
    ran = []

    def run(args):
        # (``__import__`` is what an import statement runs; importlib.import_module raises
        # no "import" audit event, and the repeat then waits for the end of the run)
        __import__(swallower)  # completes: the interrupt was dropped inside it
        __import__(after)      # the next import raises it again
        ran.append(_busy(20.0))
        return 0

    monkeypatch.setattr(cm, "run", run)
    assert main(["moments", "relu"]) == 130
    assert not ran and after not in sys.modules
    _assert_clean_after(capsys, python_sigint)


def test_dropped_in_a_finalizer_is_raised_again_at_once(monkeypatch, capsys, python_sigint):
    import ntk_theory.cli.cmd_moments as cm

    ran = []

    def run(args):
        _DropsInFinalizer()  # collected at once: its __del__ drops the interrupt
        ran.append(_busy(20.0))
        return 0

    monkeypatch.setattr(cm, "run", run)
    t0 = time.monotonic()
    assert main(["moments", "relu"]) == 130
    # raised again 0.02 s later; 5 s leaves room for a loaded machine and is far below the
    # 20 s that a lost interrupt would take
    assert time.monotonic() - t0 < 5.0 and not ran
    _assert_clean_after(capsys, python_sigint)  # nor "Exception ignored" on stderr


def test_dropped_in_a_finalizer_waits_for_a_section_shielded_from_ctrl_c(monkeypatch, capsys,
                                                                         python_sigint):
    import ntk_theory.cli.cmd_moments as cm

    shielded, ran = [], []

    def run(args):
        _DropsInFinalizer()
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as the sweep spawning its workers
        try:
            shielded.append(_busy(0.5))                    # 25 periods of the re-raise
        finally:
            signal.signal(signal.SIGINT, old)
        ran.append(_busy(20.0))
        return 0

    monkeypatch.setattr(cm, "run", run)
    t0 = time.monotonic()
    assert main(["moments", "relu"]) == 130
    assert shielded and not ran and time.monotonic() - t0 < 5.0
    _assert_clean_after(capsys, python_sigint)


def test_dropped_while_building_the_parser(monkeypatch, capsys, python_sigint):
    import ntk_theory.cli as cli

    real = cli.build_parser

    def build():
        _dropped_in_bare_except()  # e.g. mpmath's optional import of gmpy2
        return real()

    monkeypatch.setattr(cli, "build_parser", build)
    assert cli.main(["moments", "relu"]) == 130
    _assert_clean_after(capsys, python_sigint)


@pytest.mark.parametrize("outcome", ["success", "bad input"])
def test_dropped_in_the_run_is_reported_at_its_end(monkeypatch, capsys, python_sigint, outcome):
    import ntk_theory.cli.cmd_moments as cm
    from ntk_theory.errors import NTKTheoryError

    def run(args):
        _dropped_in_bare_except()  # in ordinary code: no sign of it until the run ends
        if outcome == "bad input":
            raise NTKTheoryError("an error raised after the Ctrl-C")
        return 0

    monkeypatch.setattr(cm, "run", run)
    assert main(["moments", "relu"]) == 130
    _assert_clean_after(capsys, python_sigint)


def test_a_command_that_handles_ctrl_c_is_not_interrupted_again(monkeypatch, capsys, python_sigint):
    # what the sweep does: cancel, close the cluster, commit, say so, exit 130; an interrupt
    # raised again on a timer, whether dropped or not, would break into that clean-up
    import ntk_theory.cli.cmd_moments as cm

    cleaned = []

    def run(args):
        try:
            signal.raise_signal(signal.SIGINT)
            _busy(20.0)
        except KeyboardInterrupt:
            pass
        cleaned.append(_busy(0.5))  # clean-up after the handler, outside any except block
        sys.stderr.write("ntk-theory moments: interrupted; 3 results committed\n")
        return 130

    monkeypatch.setattr(cm, "run", run)
    assert main(["moments", "relu"]) == 130
    assert cleaned == [True]
    _assert_clean_after(capsys, python_sigint, "ntk-theory moments: interrupted; 3 results committed\n")


# ---------------------------------------------------------------------------------------
# A Ctrl-C whose handler runs in main()'s own frame, in the report, or in main()'s final
# clean-up.  ``_ctrl_c._on_sigint(SIGINT, frame)`` is called exactly as Python calls the
# handler when the signal is handled while ``frame`` runs.

def _fire_in_caller():
    from ntk_theory.cli import _ctrl_c

    _ctrl_c._on_sigint(signal.SIGINT, sys._getframe(2))


def _main_no_escape(argv):
    try:
        return main(argv)
    except KeyboardInterrupt:  # would end the test session: report it as a failure
        pytest.fail("KeyboardInterrupt escaped main() (a traceback from the command line)")


def test_ctrl_c_in_mains_own_frame_after_the_run(monkeypatch, capsys, python_sigint):
    # the run has returned 0; the handler fires between two steps of main() itself
    import ntk_theory.cli.cmd_moments as cm
    from ntk_theory.cli import _ctrl_c

    monkeypatch.setattr(cm, "run", lambda args: 0)
    real, calls = _ctrl_c.seen, []

    def seen():
        if not calls:
            calls.append(1)
            _fire_in_caller()  # frame: main()
        return real()

    monkeypatch.setattr(_ctrl_c, "seen", seen)
    assert _main_no_escape(["moments", "relu"]) == 130
    _assert_clean_after(capsys, python_sigint)


def test_second_ctrl_c_while_the_first_is_reported(monkeypatch, capsys, python_sigint):
    # double Ctrl-C: the second one lands in the report of the first (before it ignores SIGINT)
    import ntk_theory.cli.cmd_moments as cm
    from ntk_theory.cli import _ctrl_c

    def boom(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cm, "run", boom)
    real = _ctrl_c.settle

    def settle():
        _fire_in_caller()  # frame: the report, _interrupted()
        real()

    monkeypatch.setattr(_ctrl_c, "settle", settle)
    assert _main_no_escape(["moments", "relu"]) == 130
    _assert_clean_after(capsys, python_sigint)


def test_nested_main_keeps_the_outer_state(monkeypatch, capsys, python_sigint):
    # a command that calls main() again (in-process): the outer call still restores SIGINT
    import ntk_theory.cli.cmd_moments as cm

    real, depth = cm.run, []

    def run(args):
        if not depth:
            depth.append(1)
            assert main(["moments", "relu"]) == 0
            signal.raise_signal(signal.SIGINT)  # a Ctrl-C in the outer run, after the inner
            _busy(20.0)
        return real(args)

    monkeypatch.setattr(cm, "run", run)
    t0 = time.monotonic()
    assert _main_no_escape(["moments", "relu"]) == 130
    # raised at once; 5 s leaves room for a loaded machine, far below the 20 s of a lost one
    assert time.monotonic() - t0 < 5.0
    err = capsys.readouterr().err
    assert err.endswith("ntk-theory moments: interrupted\n") and err.count("interrupted") == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert sys.unraisablehook is python_sigint


def test_ctrl_c_after_the_process_entry_point_returned(monkeypatch, python_sigint):
    # main() of a process (no argv) keeps its handler: a Ctrl-C that reaches it after
    # main() returned (held back by the run's end, or tripped by another thread) would raise
    # in ``sys.exit(main())`` — a traceback from the console script
    from ntk_theory.cli import _ctrl_c

    monkeypatch.setattr(_ctrl_c, "_EXITING", False, raising=False)
    owner = _ctrl_c.begin(main, _main_no_escape)
    try:
        assert owner
        _ctrl_c.finish(owner)
    finally:
        _ctrl_c.end(owner, restore_sigint=False)
        try:
            _ctrl_c._on_sigint(signal.SIGINT, sys._getframe())
        except KeyboardInterrupt:
            pytest.fail("a Ctrl-C after the process's main() returned raised KeyboardInterrupt")
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
