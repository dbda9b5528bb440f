"""CLI start-up stays light (issue 15): building the parser imports no heavy library.

A structural check, not a timing: ``ntk-theory --help`` and argument errors must not pay for
NumPy, SciPy, SymPy or matplotlib, which every ``cmd_<name>.py`` imports inside ``run()``.
Each check runs in a fresh interpreter, because this test process has long imported them all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# mpmath is allowed (ntk_theory.latex, pure Python, provides the table column keys)
HEAVY = ("numpy", "scipy", "sympy", "matplotlib", "tqdm")


def _loaded_after(code: str) -> list[str]:
    """Heavy top-level packages present in ``sys.modules`` after ``code`` runs in a child."""
    probe = (code + "\nimport json, sys\n"
             f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_build_parser_imports_no_heavy_library():
    assert _loaded_after("import ntk_theory.cli as c\nc.build_parser()") == []


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["spectrum", "--help"],
    ["moments"],                                   # missing ACT
    ["nosuch"],                                    # unknown command
    ["compress", "relu", "--tau0", "1", "--family", "bogus"],
    ["spectrum", "relu", "--width", "0"],
    ["table", "moments", "relu", "--format", "nope"],
])
def test_help_and_usage_errors_import_no_heavy_library(argv):
    code = ("import ntk_theory.cli as c\n"
            "try:\n"
            f"    c.main({argv!r})\n"
            "except SystemExit as e:\n"
            "    assert e.code in (0, 2), e.code\n")
    assert _loaded_after(code) == []


def test_running_a_command_still_imports_what_it_needs():
    """The probe can see an import: a real run does load SymPy (a check that can fail)."""
    loaded = _loaded_after("import ntk_theory.cli as c\nc.main(['moments', 'relu', '--json'])")
    assert "sympy" in loaded and "numpy" in loaded


@pytest.mark.parametrize("preset", [None, "1"])
def test_command_line_runs_numpy_without_huge_page_advice_unless_asked(preset):
    """The CLI sets NUMPY_MADVISE_HUGEPAGE=0 before NumPy is first imported (NumPy reads it
    then), and leaves a value the user set alone.  NumPy's own switch is read back in the child."""
    code = ("import os, ntk_theory.cli as c\n"
            "c.main(['moments', 'relu', '--json'])\n"
            "import numpy\n"
            "try:\n"
            "    from numpy._core.multiarray import _get_madvise_hugepage\n"
            "except ImportError:  # NumPy < 2\n"
            "    from numpy.core.multiarray import _get_madvise_hugepage\n"
            "print(os.environ['NUMPY_MADVISE_HUGEPAGE'], _get_madvise_hugepage())\n")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("NUMPY_MADVISE_HUGEPAGE", None)
    if preset is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = preset
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == ("0 False" if preset is None else "1 True")


def test_identity_conventions_match_theory():
    from ntk_theory.cli import cmd_spectrum
    from ntk_theory.theory import IDENTITY_CONVENTIONS

    assert cmd_spectrum.IDENTITY_CONVENTIONS == IDENTITY_CONVENTIONS


@pytest.mark.parametrize("text", [
    "auto", "ternary", "odd_ternary", "sigma_T", "three_level", "sigma_Q", " sigma_T ",
    "staircase:3", "staircase:64", "staircase:2", "staircase:65", "staircase:x", "staircase:",
    "bogus", "", "Ternary",
])
def test_compress_family_type_agrees_with_parse_family(text):
    """cli._common.family_name repeats parse_family's name checks (to stay import-free)."""
    from ntk_theory.cli._common import family_name
    from ntk_theory.compress import parse_family
    from ntk_theory.errors import ParameterError

    try:
        family_name(text)
        light_ok, light_msg = True, ""
    except argparse.ArgumentTypeError as exc:
        light_ok, light_msg = False, str(exc)
    if text == "auto":
        assert light_ok
        return
    try:
        fam = parse_family(text)
        full_ok, full_msg = True, ""
    except ParameterError as exc:
        full_ok, full_msg = False, str(exc)
    if full_ok and text.strip() == "sigma_Q":  # accepted by parse_family, refused for --family
        assert not light_ok and "--last-family" in light_msg
        return
    assert light_ok == full_ok, (text, light_msg, full_msg)
    assert light_msg == full_msg
    if full_ok:
        assert fam is not None


def test_family_help_lists_each_accepted_family_once():
    """The --family help text is built from the names family_name accepts: every advertised
    name is accepted by family_name and by parse_family, none twice, and the unadvertised
    aliases are the same family as an advertised name."""
    from ntk_theory.cli import _common
    from ntk_theory.compress import parse_family

    advertised = _common.FAMILY_CHOICES.split("|")
    assert len(set(advertised)) == len(advertised) and advertised[0] == "auto"
    kinds = set()
    for name in advertised[1:]:
        text = "staircase:5" if name == "staircase:K" else name
        assert _common.family_name(text) == text
        kinds.add(type(parse_family(text)))
    assert len(kinds) == len(advertised) - 1  # each advertised name is its own family
    for alias in _common._FAMILY_ALIASES:
        assert alias not in advertised and _common.family_name(alias) == alias
        assert type(parse_family(alias)) in kinds
