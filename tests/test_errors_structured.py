"""Structured errors: fields, messages built from them, CLI flag hints (docs/reference.rst §6).

Library messages name keyword arguments, never command-line flags; the CLI renders the
same error with its flags.  Callers (the feasibility maps) read fields, not messages.
"""

from __future__ import annotations

import ast
import contextlib
import io
import math
import pickle
import re
from pathlib import Path

import pytest

from ntk_theory.compress import AlphaTargets, compress_network, solve_alpha, solve_auto
from ntk_theory.compress.feasibility import BOUND_LABELS, bound_label
from ntk_theory.errors import (
    INFEASIBILITY_BOUNDS,
    DomainError,
    InfeasibleError,
    NTKTheoryError,
    ParameterError,
)

PACKAGE = Path(__file__).resolve().parent.parent / "ntk_theory"
FLAG = re.compile(r"(?<![\w-])--[a-z]")

#: relu at τ = 1: m1 = 1/2, m2 = φ(0), w̄2 = 1 − 2 φ(0)² (docs/reference.rst §1)
PHI0 = 1 / math.sqrt(2 * math.pi)
RELU = AlphaTargets(0.5, PHI0, 1 - 2 * PHI0**2)


def test_plain_messages_keep_working():
    exc = ParameterError("a plain message")
    assert str(exc) == exc.cli_message() == "a plain message"
    assert exc.option is None and exc.hint is None
    assert isinstance(exc, ValueError) and isinstance(exc, NTKTheoryError)


def test_option_is_the_subject_and_the_cli_names_its_flag():
    exc = ParameterError("must be none or sigma_Q, got 'x'", option="last_family")
    assert str(exc) == "last_family must be none or sigma_Q, got 'x'"
    assert exc.cli_message() == "--last-family must be none or sigma_Q, got 'x'"
    assert exc.cli_message({"last_family": "--last"}) == "--last must be none or sigma_Q, got 'x'"
    hinted = DomainError("no NTK", hint=("kernel", "ck"))
    assert str(hinted) == "no NTK (kernel='ck')"
    assert hinted.cli_message() == "no NTK (--kernel ck)"


def test_ternary_refusal_carries_its_fields():
    with pytest.raises(InfeasibleError) as info:
        solve_alpha("ternary", RELU, 1.0)
    exc = info.value
    assert (exc.family, exc.bound, exc.suggestion, exc.option) == ("ternary", "not_odd", "sigma_T or three_level",
                                                                  None)
    # best residual: A2/D with A2 = m2², D = max(m1², m2², |w̄2|) at τ = 1
    assert exc.residual == pytest.approx(PHI0**2 / max(0.25, PHI0**2, abs(RELU.w2_bar)), rel=1e-12)
    msg = str(exc)
    assert msg.startswith("ternary infeasible: an odd ternary has E[σ''] = 0")
    assert f"best residual {exc.residual:.3g}" in msg and msg.endswith("would work: sigma_T or three_level")
    assert exc.cli_message() == msg  # nothing to translate: a family suggestion
    assert bound_label(exc) == BOUND_LABELS["not_odd"]


def test_sigma_q_names_the_option_in_library_terms_and_the_flag_in_the_cli():
    with pytest.raises(InfeasibleError) as info:
        compress_network(["relu", "tanh"], 1.0, family="sigma_T", last_family="sigma_Q")
    exc = info.value
    assert (exc.layer, exc.activation, exc.family, exc.bound) == (2, "tanh", "sigma_Q", "cauchy_schwarz")
    assert exc.option == "last_family" and exc.suggestion == "none"
    assert exc.residual > 0
    msg, cli = str(exc), exc.cli_message()
    assert msg.startswith("layer 2 (tanh): sigma_Q infeasible: δ = 0 violates Cauchy–Schwarz")
    assert not FLAG.search(msg), msg
    assert msg.endswith("would work: last_family='none' (δ reported as a ridge shift)")
    assert cli.endswith("would work: --last-family none (δ reported as a ridge shift)")
    assert cli.replace("--last-family none", "last_family='none'") == msg


def test_a_search_reports_every_cause():
    # an odd target with E[(σ̄²)''] < 0: no family of a short search matches it
    targets = AlphaTargets(1.0, 0.0, -0.5)
    with pytest.raises(InfeasibleError) as info:
        solve_auto(targets, 1.0, order=("ternary", "sigma_T"))
    exc = info.value
    assert exc.family == "auto" and [c.family for c in exc.causes] == ["ternary", "sigma_T"]
    assert str(exc) == "auto infeasible: every family failed: " + " | ".join(str(c) for c in exc.causes)
    residuals = [c.residual for c in exc.causes]
    assert exc.residual is None and exc.best_residual == min(residuals)
    names = [c.bound for c in exc.causes]
    assert exc.bound_name == next(b for b in INFEASIBILITY_BOUNDS if b in names)


def test_fields_survive_pickling():
    """Errors cross process boundaries (sweep workers): fields and message must survive."""
    with pytest.raises(InfeasibleError) as info:
        compress_network(["relu", "tanh"], 1.0, family="sigma_T", last_family="sigma_Q")
    back = pickle.loads(pickle.dumps(info.value))
    assert vars(back) == vars(info.value) and str(back) == str(info.value)
    assert back.cli_message() == info.value.cli_message()
    opt = pickle.loads(pickle.dumps(ParameterError("must be > 0", option="tau0")))
    assert str(opt) == "tau0 must be > 0" and opt.cli_message() == "--tau0 must be > 0"


def test_cli_prints_the_flag_hint_on_one_line():
    from ntk_theory.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["compress", "relu", "tanh", "--tau0", "1", "--family", "sigma_T", "--last-family", "sigma_Q"])
    lines = err.getvalue().splitlines()
    assert rc == 2 and len(lines) == 1
    assert lines[0].startswith("ntk-theory compress: error: layer 2 (tanh): sigma_Q infeasible:")
    assert lines[0].endswith("would work: --last-family none (δ reported as a ridge shift)")


def _raise_texts(path: Path) -> list[tuple[int, str]]:
    """The literal text of every ``raise X(...)`` argument in a module."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            for arg in node.exc.args:
                parts = [n.value for n in ast.walk(arg) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                out.append((node.lineno, "".join(parts)))
    return out


#: Modules whose messages are about the command line itself: the CLI, and the sweep
#: runner, whose jobs are subcommands (it refuses a subcommand without ``--json``).
CLI_MODULES = ("cli/", "sweep.py")


def test_library_messages_name_no_cli_flags():
    bad = []
    files = [p for p in sorted(PACKAGE.rglob("*.py"))
             if not any(str(p.relative_to(PACKAGE)).startswith(m) for m in CLI_MODULES)]
    assert len(files) > 20
    for path in files:
        for line, text in _raise_texts(path):
            if FLAG.search(text):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text[:80]}")
    assert not bad, "library error messages naming CLI flags:\n" + "\n".join(bad)


def test_memory_refusals_carry_their_numbers():
    """A memory refusal exposes what was asked, the bytes it needs and the limit, and the
    message is built from them; the numbers are the library's own estimates."""
    import numpy as np

    from ntk_theory.errors import ResourceError
    from ntk_theory.exact import MEMORY_LIMIT_BYTES, exact_kernels, exact_memory_bytes
    with pytest.raises(ResourceError) as info:
        exact_kernels(np.ones((2, 30000)), ["relu", "relu", "relu"])
    err = info.value
    assert err.what == "exact kernels for n=30000, L=3"
    assert err.needed == exact_memory_bytes(30000, 3) > err.limit == MEMORY_LIMIT_BYTES
    assert str(err) == (f"exact kernels for n=30000, L=3 would need about {err.needed / 2**30:.1f} GiB "
                        f"(limit {MEMORY_LIMIT_BYTES / 2**30:.0f} GiB)")
    back = pickle.loads(pickle.dumps(err))
    assert (back.what, back.needed, back.limit, str(back)) == (err.what, err.needed, err.limit, str(err))
    plain = ResourceError.memory("x", 3 * 2**30, suggestion="use less")
    assert str(plain) == "x would need about 3.0 GiB: use less" and plain.limit is None
