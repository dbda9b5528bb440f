"""The expression parser treats text as data (issue 11, Build 1).

* No user code runs: payloads that would create a file if evaluated leave no file and
  raise a typed :class:`~ntk_theory.errors.ParseError`; while parsing, Python's
  ``eval``/``exec`` are never called and ``compile`` is called only to build a syntax
  tree (``ast.PyCF_ONLY_AST``), never bytecode.
* Size limits are checked before any work: huge literals, exponent towers, deep
  nesting, long argument lists and long polynomials are refused at once.
* Unknown names get "did you mean" suggestions.
"""

from __future__ import annotations

import ast
import builtins
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from ntk_theory.activations import X, from_expr, parse_activation
from ntk_theory.errors import NTKTheoryError, ParseError, UnknownActivationError
from ntk_theory.safe_parse import MAX_DEGREE, parse_expression

ROOT = Path(__file__).resolve().parent.parent


def _chr_payload(code: str) -> str:
    return "+".join(f"chr({ord(c)})" for c in code)


def _payloads(target: Path) -> list[str]:
    code = f"open({str(target)!r}, 'w').write('pwned')"
    chrs = _chr_payload(code)
    return [
        f"x*eval({chrs})",                                  # the reported exploit's shape
        f"eval({chrs})",
        f"exec({chrs})",
        f"x + 0*eval({chrs})",
        f"Piecewise((eval({chrs}), x > 0), (0, True))",
        f"open('{target}', 'w')",
        f"__import__('os').system('touch {target}')",
        f"getattr(__builtins__, 'open')('{target}', 'w')",
        "x.__class__.__base__.__subclasses__()",
        f"(lambda: open('{target}', 'w'))()",
        "[c for c in ().__class__.__bases__[0].__subclasses__()]",
        f"sympify({chrs})",
        f"S({chrs})",
        f"parse_expr({chrs})",
        f"Lambda(x, eval({chrs}))(1)",
        "x*len(input())",
        f"x if open('{target}', 'w') else x",
        "exp(x)._eval_evalf",
        f"x; open('{target}', 'w')",
        f"x\nopen('{target}', 'w')",
    ]


def test_code_execution_is_impossible(tmp_path):
    target = tmp_path / "pwned"
    for text in _payloads(target):
        with pytest.raises(ParseError):
            parse_activation(text)
        assert not target.exists(), text


def test_code_execution_is_impossible_from_the_cli(tmp_path):
    target = tmp_path / "pwned_cli"
    for text in _payloads(target)[:4]:
        r = subprocess.run([sys.executable, "-c",
                            "import sys; from ntk_theory.cli import main; sys.exit(main(sys.argv[1:]))",
                            "moments", text], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 2, (text, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert not target.exists()


VALID = ["x*erf(x)", "Max(x, 0.1*x)", "Piecewise((x, x > 0), (x/10, True))", "Heaviside(x - 1/3)",
         "besselj(0, x)*exp(-x**2/3) + x", "abs(x)**(-0.9)", "2x^2 + 3(x-1)", "tanh(x) & 1" * 0 + "tanh(x)",
         "Piecewise((1, (x > 0) & (x < 1)), (0, True))", "floor(3*x)/3", "log(1 + exp(x))"]


def test_no_eval_exec_or_bytecode_while_parsing(monkeypatch):
    for text in VALID:  # warm up: SymPy imports some modules lazily (the import system execs them)
        parse_expression(text)
    calls = []
    real = {"eval": builtins.eval, "exec": builtins.exec, "compile": builtins.compile}

    def from_text(obj) -> bool:  # module code run by the import system comes from a file
        return isinstance(obj, (str, bytes)) or (hasattr(obj, "co_filename")
                                                 and not Path(obj.co_filename).is_file())

    def guard(name):
        def wrapper(*a, **k):
            if name == "compile":
                flags = a[3] if len(a) > 3 else k.get("flags", 0)
                if not flags & ast.PyCF_ONLY_AST:
                    calls.append((name, a[0]))
            elif a and from_text(a[0]):
                calls.append((name, a[0]))
            return real[name](*a, **k)
        return wrapper

    for name in real:
        monkeypatch.setattr(builtins, name, guard(name))
    for text in VALID:
        parse_expression(text)
    for text in _payloads(Path("/nonexistent/never")):
        with pytest.raises(ParseError):
            parse_expression(text)
    assert calls == []


def test_valid_expressions_parse_to_the_expected_sympy():
    assert parse_expression("2x^2 + 3(x-1)") == 2 * X**2 + 3 * X - 3
    assert parse_expression("abs(x)**(-0.9)") == sp.Abs(X) ** sp.Rational(-9, 10)
    assert parse_expression("0.1*x") == X / 10  # decimal literals are exact
    assert parse_expression("1e400*x") == sp.Integer(10) ** 400 * X
    assert parse_expression("Piecewise((x, x > 0), (0, True))") == sp.Piecewise((X, X > 0), (0, True))


@pytest.mark.parametrize("text", [
    "x*factorial(10**8)", "x*10**10**8", "x*N(pi, 10**6)", "x*gamma(10**8)", "x*(3/2)**(10**999)",
    "x*" + "9" * 40, "x*1e99999", "(" * 40 + "x" + ")" * 40, "-" * 900 + "x",
    "Max(" + ",".join(f"x-{i}" for i in range(200)) + ")",
    "Max(" + ",".join(f"x-{i}" for i in range(20)) + ")",
    "+".join(f"{i}*x**{i}" for i in range(300)),
    "+".join(f"x**{i}" for i in range(60)),
    f"x**{MAX_DEGREE + 1}", f"(x**2+1)**{MAX_DEGREE}", "x**(10**30)", "exp(x)**(2**64)",
    "sin(" * 30 + "x" + ")" * 30,
])
def test_size_limits_refuse_at_once(text):
    t = time.process_time()
    with pytest.raises(ParseError):
        parse_activation(text)
    # refused before any work: the whole check is lexing plus a bounded walk
    assert time.process_time() - t < 1.0


@pytest.mark.parametrize("text,why", [
    ("oo", "finite real"), ("zoo", "finite real"), ("nan", "finite real"), ("I", "finite real"),
    ("x*I", "finite real"), ("x + oo", "finite real"), ("DiracDelta(x)", "unknown function"),
    ("airyai(x)", "unknown function"), ("factorial(x)", "unknown function"),
    ("tahn(x)", "did you mean: tan, tanh"), ("x.real", "not allowed"), ("x[0]", "not allowed"),
    ("lambda: x", "not allowed"), ("sin(x=1)", "not allowed"), ("y*x", "unknown name 'y'"),
    ("exp", "is a function"), ("x < 1", "not a real-valued"), ("x*(x<1)", "condition"),
])
def test_typed_refusals_with_reasons(text, why):
    with pytest.raises(ParseError, match=None) as info:
        parse_activation(text)
    assert why in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_did_you_mean_for_registry_names():
    with pytest.raises(UnknownActivationError, match="did you mean: relu"):
        parse_activation("reluu")
    with pytest.raises(UnknownActivationError, match="did you mean: softplus"):
        parse_activation("softplsu:beta=2")


def test_sympy_input_is_checked_too():
    with pytest.raises(ParseError, match="not supported"):
        from_expr(sp.DiracDelta(X))
    with pytest.raises(ParseError, match="not supported"):
        from_expr(sp.airyai(X))
    with pytest.raises(ParseError):
        from_expr(X + sp.oo)
    with pytest.raises(ParseError, match="not supported"):
        from_expr(sp.Function("f")(X))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="x0123456789.eE+-*/^()<>=&|~ ,_abcdefghijklmnopqrstuvwz'\"[]{}:;@!", max_size=80))
def test_random_text_is_parsed_or_refused_typed(text):
    try:
        parse_activation(text)
    except NTKTheoryError:
        pass
