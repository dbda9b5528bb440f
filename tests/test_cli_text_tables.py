"""The CLI's plain-text tables are the table model's, and ``--digits`` means one thing.

``moments``, ``coefficients``, ``compress`` and ``activations`` print
:meth:`ntk_theory.latex.Table.to_text`; ``compress``'s solver precision is
``--precision`` (``--digits`` kept as its older name).
"""

from __future__ import annotations

import contextlib
import io
import math

import pytest

from ntk_theory.cli import build_parser, main


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def test_compress_precision_keeps_digits_as_an_alias():
    parser = build_parser()
    base = ["compress", "relu", "--tau0", "1"]
    assert parser.parse_args(base).precision == 15
    assert parser.parse_args(base + ["--precision", "30"]).precision == 30
    assert parser.parse_args(base + ["--digits", "30"]).precision == 30
    rc, out, err = _run(base + ["--digits", "10"])
    assert rc == 2 and out == ""
    assert err == "ntk-theory compress: error: --precision/--digits must be >= 15 (float64 or more), got 10\n"


def test_coefficients_text_is_the_coefficients_table():
    from ntk_theory.coefficients import coefficients
    from ntk_theory.latex import coefficients_table

    rc, out, _ = _run(["coefficients", "relu", "tanh", "--tau0", "1.5", "--digits", "5"])
    table = coefficients_table(coefficients(["relu", "tanh"], 1.5), 5)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "tau0 = 1.5"
    assert lines[1:] == table.to_text(caption=False, number_width=12).splitlines()
    # the numbers of the text are the LaTeX table's, digit for digit
    # τ_1 of relu: τ_1² = Var relu(τ0 ξ) = τ0² (1/2 − 1/(2π)) (docs/reference.rst §4)
    tau1 = 1.5 * math.sqrt(0.5 - 1 / (2 * math.pi))
    assert lines[2].split()[2] == table.cells("text")[0][2] == f"{tau1:.5g}" == "0.87573"


def test_moments_text_is_the_moments_table_and_flags_numeric_rows():
    rc, out, _ = _run(["moments", "relu", "tanh", "--digits", "8"])
    assert rc == 0
    tau, head, relu, tanh = out.splitlines()
    assert tau == "tau = 1"
    assert head.split() == ["activation", "E[s]", "E[s']", "E[s'']", "E[s^2]", "E[s'^2]", "E[(s^2)'']"]
    # relu's closed forms: E[s] = φ(0) = 0.39894228 (8 digits), E[s'] = 1/2, E[(s^2)''] = 1
    assert relu.split() == ["relu", "0.39894228", "0.5", "0.39894228", "0.5", "0.5", "1"]
    assert tanh.endswith("   (numeric)") and not relu.endswith("(numeric)")
    # columns line up: every cell ends where its header ends
    assert len(relu) == len(head)


@pytest.mark.parametrize("argv", [["activations"]])
def test_activations_listing_is_aligned(argv):
    rc, out, _ = _run(argv)
    assert rc == 0
    lines = out.splitlines()
    head = lines[1]
    start = head.index("description")
    relu = next(line for line in lines if line.startswith("relu "))
    assert relu[start - 2:start] == "  " and relu[start] != " "
