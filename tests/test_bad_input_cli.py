"""Bad input at the command line (issue 5 §4): exit 2, exactly one line on stderr, no traceback.

Cases come from two sources:

* **introspection** of every subcommand that exists (``ntk_theory/cli/cmd_*.py``):
  every option with a value type gets the values ``nan``, ``inf``, ``-inf``, ``1e999``,
  ``-1``, ``0``, ``1.5`` and ``abc`` — each one the option's own type function
  refuses is a case — plus an unknown option, a missing argument and no argument;
* **hand-written semantic cases** per subcommand (unknown activations, divergent
  moments, infeasible compressions, sparsity outside [0, 1), sizes that do not fit
  in memory …), and unknown subcommands.

Every case must give exit status 2 and exactly one line on stderr that is a
documented error (not the dispatcher's "internal error" line for a bug).  Cases that
currently fail because of a bug elsewhere are ``xfail(strict=True)`` with the reason.

The table of every case with the message it gets is ``docs/bad_input.md``;
regenerate it with ``python tests/test_bad_input_cli.py`` (a test checks that it is
current).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from ntk_theory.cli import _subcommands, build_parser, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join(ROOT, "docs", "bad_input.md")
PROBE_VALUES = ("nan", "inf", "-inf", "1e999", "-1", "0", "1.5", "abc")


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    what: str
    xfail: str = ""        # reason, when a known bug makes the case fail
    subprocess: bool = False  # run in a child process with a memory limit


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _introspected_cases() -> list[Case]:
    cases: list[Case] = []
    for name, p in sorted(_subparsers().items()):
        cases.append(Case((name, "--no-such-option"), "unknown option"))
        required = [a for a in p._actions if a.required or (not a.option_strings and a.nargs in (None, "+"))]
        if required:
            cases.append(Case((name,), "no arguments"))
        for act in p._actions:
            if not act.option_strings or act.type is None or act.type is str or act.nargs == 0:
                continue
            opt = next(s for s in act.option_strings if s.startswith("--"))
            cases.append(Case((name, opt), "option without its value"))
            for v in PROBE_VALUES:
                try:
                    act.type(v)
                except (argparse.ArgumentTypeError, ValueError, TypeError):
                    cases.append(Case((name, f"{opt}={v}"), f"{opt} {v}"))
    return cases


_SEMANTIC: dict[str, list[Case]] = {
    "moments": [
        Case(("moments", "nosuch"), "unknown activation"),
        Case(("moments", "relu:slope=1"), "parameter of a family without parameters"),
        Case(("moments", "sigma_T:s1=1,s2=0"), "violated constraint s1 < s2"),
        Case(("moments", "leaky_relu:slope=nan"), "non-finite activation parameter"),
        Case(("moments", "staircase:thresholds=[1,0],levels=[0,1,2]"), "thresholds not increasing"),
        Case(("moments", "x +"), "unparsable expression"),
        Case(("moments", "x*y"), "second free symbol"),
        Case(("moments", "exp(x**2)"), "divergent moment"),
        Case(("moments", "1/x"), "pole (no principal values)"),
        Case(("moments", "sqrt(x)"), "complex-valued activation"),
        Case(("moments", "tan(x)"), "poles on the real line"),
        Case(("moments", "relu", "--tau", "1e-400"), "tau underflows to 0"),
        Case(("moments", "relu", "--digits", "500"), "too many digits"),
        Case(("moments", "relu", "--json", "--latex"), "exclusive output formats"),
    ],
    "compress": [
        Case(("compress", "relu"), "missing --tau0"),
        Case(("compress", "relu", "--tau0", "1", "--sparsity", "1"), "sparsity 1 (outside [0, 1))"),
        Case(("compress", "relu", "--tau0", "1", "--sparsity", "-0.1"), "negative sparsity"),
        Case(("compress", "relu", "--tau0", "1", "--sparsity", "nan"), "sparsity nan"),
        Case(("compress", "relu", "--tau0", "-1"), "negative tau0"),
        Case(("compress", "relu", "--tau0", "1", "--widths", "-5", "10"), "negative width"),
        Case(("compress", "relu", "--tau0", "1", "--widths", "10"), "wrong number of widths"),
        Case(("compress", "relu", "--tau0", "1", "--digits", "10"), "digits below float64"),
        Case(("compress", "relu", "--tau0", "1", "--family", "bogus"), "unknown family"),
        Case(("compress", "relu", "--tau0", "1", "--family", "sigma_Q"), "last-layer family as hidden"),
        Case(("compress", "tanh", "--tau0", "1", "--family", "sigma_T"), "infeasible: sigma_T for an odd activation"),
        Case(("compress", "nosuch", "--tau0", "1"), "unknown activation"),
        Case(("compress", "relu", "--tau0", "1", "--seed", "-3"), "negative seed"),
        Case(("compress", "relu", "--tau0", "1", "--widths", "100000000", "100000000"),
             "10^16 weights (does not fit in memory)", subprocess=True),
        Case(("compress", "relu", "--tau0", "1", "--widths", "40000", "40000"),
             "1.6·10^9 weights (about 13 GB of int64 indices)", subprocess=True),
        Case(("compress", "relu", "--tau0", "1", "--json", "--latex"), "exclusive output formats"),
        Case(("compress", "relu", "--tau0", "1", "--out", "/proc/model.npz"), "unwritable --out directory"),
        Case(("compress", "relu", "--tau0", "1", "--out", "/nonexistent-dir/model.npz"),
             "--out in a missing directory"),
        Case(("compress", "relu", "--tau0", "1", "--out", "model"), "--out without .npz (never appended silently)"),
        Case(("compress", "relu", "--tau0", "1", "--out", "/tmp"), "--out is a directory"),
    ],
    "spectrum": [
        Case(("spectrum", "relu", "--seed", "-1"), "negative seed"),
        Case(("spectrum", "floor(x)", "--kernel", "ntk", "--n", "40", "--width", "50"),
             "NTK of floor(x) (derivative is a train of Dirac deltas)"),
        Case(("spectrum", "relu", "--plot", "/proc/f.png"), "unwritable --plot directory"),
        Case(("spectrum", "relu", "--plot", "f.jpg"), "--plot with an unsupported extension"),
        Case(("spectrum", "exp(x)", "exp(x)", "--n", "40", "--width", "50"),
             "exact kernel overflows float64 (no RuntimeWarning lines)"),
    ],
    "demo": [
        Case(("demo", "--outdir", "/proc"), "unwritable --outdir"),
    ],
    "bcd": [
        Case(("bcd",), "missing --hidden"),
        Case(("bcd", "--hidden", "5", "--sparsity", "1"), "sparsity 1 (outside [0, 1))"),
        Case(("bcd", "--hidden", "5", "--sparsity", "0.5", "--tt-rank", "2"), "both --sparsity and --tt-rank"),
        Case(("bcd", "--hidden", "5", "--n-train", "1700"), "more samples than digits has"),
        Case(("bcd", "--hidden", "5", "--data", "gmm", "--gmm-classes", "1"), "one GMM class"),
        Case(("bcd", "--hidden", "5", "--out", "/nonexistent-dir/m.npz"), "--out in a missing directory"),
        Case(("bcd", "--hidden", "5", "--out", "/"), "--out is a directory"),
        Case(("bcd", "--hidden", "100000000", "100000000"), "10^16 weights (does not fit in memory)",
             subprocess=True),
        Case(("bcd", "--hidden", "5", "--data", "imagenet"), "unknown data set"),
    ],
    "table": [
        Case(("table", "relu"), "missing KIND (relu is not a table kind)"),
        Case(("table", "moments"), "no activation"),
        Case(("table", "spectrum", "relu"), "unknown table kind"),
        Case(("table", "moments", "relu", "--columns", "m0,bogus"), "unknown column"),
        Case(("table", "moments", "relu", "--columns", "m0,m0"), "column selected twice"),
        Case(("table", "moments", "relu", "--columns", ","), "no column selected"),
        Case(("table", "coefficients", "relu", "--tau0", "1", "--columns", "alpha5"), "unknown coefficients column"),
        Case(("table", "compression", "relu", "--tau0", "1", "--columns", "residual"), "unknown compression column"),
        Case(("table", "coefficients", "relu"), "coefficients without --tau0"),
        Case(("table", "compression", "relu"), "compression without --tau0"),
        Case(("table", "moments", "relu", "--tau", "1", "--tau0", "1"), "both --tau and --tau0"),
        Case(("table", "moments", "relu", "--digits", "51"), "more than 50 digits"),
        Case(("table", "moments", "relu", "--format", "eng"), "unknown number format"),
        Case(("table", "moments", "relu", "--output", "html"), "unknown output format"),
        Case(("table", "moments", "relu", "--output", "text", "--standalone"), "--standalone without LaTeX"),
        Case(("table", "moments", "relu", "--label", "tab:a b"), "label with a space"),
        Case(("table", "moments", "relu", "--label", "tab:{x}"), "label with braces"),
        Case(("table", "moments", "relu", "--family", "sigma_T"), "--family outside compression"),
        Case(("table", "coefficients", "relu", "--tau0", "1", "--centered"), "--centered outside moments"),
        Case(("table", "moments", "nosuch"), "unknown activation"),
        Case(("table", "moments", "exp(x**2)"), "divergent moment"),
        Case(("table", "coefficients", "relu", "x*y", "--tau0", "1"), "second free symbol in a layer"),
        Case(("table", "compression", "tanh", "--tau0", "1", "--family", "sigma_T"),
             "infeasible: sigma_T for an odd activation"),
        Case(("table", "compression", "relu", "--tau0", "1", "--family", "sigma_Q"), "last-layer family as hidden"),
    ],
}

_GLOBAL = [
    Case((), "no subcommand"),
    Case(("frobnicate",), "unknown subcommand"),
    Case(("frobnicate", "--tau", "1"), "unknown subcommand with options"),
    Case(("--no-such-option",), "unknown global option"),
]


def all_cases() -> list[Case]:
    cases = list(_GLOBAL) + _introspected_cases()
    for name in _subcommands():
        cases += _SEMANTIC.get(name, [])
    seen, out = set(), []
    for c in cases:
        if c.argv not in seen:
            seen.add(c.argv)
            out.append(c)
    return out


def run_case(case: Case) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``ntk-theory ARGV``."""
    if case.subprocess:
        # a child with a 6 GiB address-space limit: a size check that is missing
        # cannot take the machine's memory, and the time limit catches a hang
        code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30)); "
                "from ntk_theory.cli import main; sys.exit(main(sys.argv[1:]))")
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        r = subprocess.run([sys.executable, "-c", code, *case.argv], capture_output=True, text=True,
                           timeout=120, env=env, cwd=ROOT)
        return r.returncode, r.stdout, r.stderr
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(case.argv))
        except SystemExit as exc:  # argparse exits through SystemExit
            rc = exc.code if isinstance(exc.code, int) else 2
    return rc, out.getvalue(), err.getvalue()


def _violations(rc: int, err: str) -> list[str]:
    lines = err.splitlines()
    problems = []
    if rc != 2:
        problems.append(f"exit status {rc}")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr")
    if "Traceback" in err:
        problems.append("traceback")
    if "internal error" in err:
        problems.append("internal error (an untyped exception)")
    return problems


CASES = all_cases()


def _param(c: Case):
    marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
    return pytest.param(c, id=" ".join(c.argv) or "<none>", marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input_exits_2_with_one_line(case):
    rc, _out, err = run_case(case)
    assert not _violations(rc, err), (case.argv, rc, err)


def test_every_subcommand_is_covered():
    covered = {c.argv[0] for c in CASES if c.argv}
    assert set(_subcommands()) <= covered
    # option values: every typed option got at least one refused probe
    for name, p in _subparsers().items():
        typed = [a for a in p._actions if a.option_strings and a.type not in (None, str) and a.nargs != 0]
        for act in typed:
            opt = next(s for s in act.option_strings if s.startswith("--"))
            assert any(c.argv[:2] == (name, opt) or (len(c.argv) > 1 and c.argv[1].startswith(opt + "="))
                       for c in CASES), (name, opt)


def test_subprocess_entry_point_prints_one_line():
    """End to end through ``python -m ntk_theory``: the real interpreter, no traceback."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for argv in (["moments", "relu", "--tau", "nan"], ["moments", "exp(x**2)"], ["frobnicate"]):
        r = subprocess.run([sys.executable, "-m", "ntk_theory", *argv], capture_output=True, text=True,
                           timeout=120, env=env, cwd=ROOT)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, (argv, r)


# --------------------------------------------------------------------------- #
# The table in docs/bad_input.md
# --------------------------------------------------------------------------- #
def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def _cmd(c: Case) -> str:
    quoted = [f"'{a}'" if (" " in a or "*" in a or "(" in a or "[" in a or not a) else a for a in c.argv]
    return " ".join(["ntk-theory", *quoted])


def render_table() -> str:
    rows = ["# Bad input at the command line", "",
            "Every case below is run by `tests/test_bad_input_cli.py`; each must exit with status 2",
            "and print exactly one line on stderr, without a traceback.  Generated by",
            "`python tests/test_bad_input_cli.py` — do not edit by hand.", "",
            f"{len(CASES)} cases; cases marked *known bug* are strict expected failures in the test-suite.", "",
            "| command | case | exit | stderr |", "|---|---|---|---|"]
    for c in CASES:
        rc, _out, err = run_case(c)
        line = " / ".join(err.splitlines()) if err else "(nothing)"
        status = f"{rc}" + (" *known bug*" if c.xfail else "")
        rows.append(f"| `{_md(_cmd(c))}` | {_md(c.what)} | {status} | {_md(line)} |")
    return "\n".join(rows) + "\n"


def test_docs_table_is_current():
    assert os.path.exists(TABLE), "docs/bad_input.md is missing: run python tests/test_bad_input_cli.py"
    with open(TABLE, encoding="utf-8") as fh:
        text = fh.read()
    missing = [c.argv for c in CASES if f"`{_md(_cmd(c))}`" not in text]
    assert not missing, f"docs/bad_input.md lacks {len(missing)} case(s), e.g. {missing[:3]}; regenerate it"


if __name__ == "__main__":
    with open(TABLE, "w", encoding="utf-8") as fh:
        fh.write(render_table())
    print(f"wrote {TABLE} ({len(CASES)} cases)")
