"""Parse activation expressions as data: a whitelist grammar, no ``eval``, bounded work.

An expression such as ``"x*erf(x/2) + Max(0, x)**2"`` is turned into a SymPy
expression in the real symbol :data:`~ntk_theory.activations.X` without running any
user code:

1. **Lexing** with a small regular grammar (numbers, names, the operators
   ``+ - * / ** ^ ( ) , < <= > >= == != & | ~``).  Anything else — quotes, dots
   outside numbers, brackets, ``=``, ``:``, ``;``, ``@``, backslashes — is refused, so
   strings, attribute access, subscripts, keyword arguments and lambdas cannot even
   be written.  ``^`` means power and implicit products (``2x``, ``3(x+1)``) are made
   explicit here.
2. **Size limits before any work**: text length, token count, bracket depth, digits
   of every numeric literal.
3. **Python's** :func:`ast.parse` in ``"eval"`` mode only *builds a tree*; the tree is
   walked by :func:`_Builder.build`, which accepts ``Expression``, ``BinOp``,
   ``UnaryOp``, ``Compare``, ``BoolOp``, ``Call`` of a whitelisted name with
   positional arguments, ``Name`` from the whitelist, numeric ``Constant`` and (inside
   ``Piecewise`` only) ``Tuple``.  Every other node type is refused.  The SymPy
   expression is built by calling the whitelisted SymPy constructors directly:
   nothing is compiled or evaluated by Python (SymPy's own ``parse_expr`` ends in
   ``eval`` of generated code and resolves names through ``from sympy import *``,
   which is why it is not used).
4. **Bounded arithmetic while building**: tree depth, arguments per call, total
   polynomial degree, digits of every exact number produced by constant arithmetic
   (``10**10**8`` is refused before the power is computed) and the size of constant
   arguments of special functions (``gamma(10**8)`` would compute a factorial).

Every refusal is a :class:`~ntk_theory.errors.ParseError` with a one-line message;
unknown names get "did you mean" suggestions from :mod:`difflib`.

:func:`check_supported` applies the same whitelist to SymPy expressions built in
Python code (``from_expr(sympy_expr)``) and is called by the expectation engine, so
a function without an mpmath evaluation path (``DiracDelta``, ``airyai``,
``factorial``) is a typed error before any symbolic or numeric work.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from collections.abc import Callable, Iterable
from functools import lru_cache

import sympy as sp

from .errors import ParseError

__all__ = [
    "parse_expression",
    "check_supported",
    "suggest",
    "FUNCTIONS",
    "CONSTANTS",
    "MAX_LENGTH",
    "MAX_TOKENS",
    "MAX_DEPTH",
    "MAX_ARGS",
    "MAX_DEGREE",
    "MAX_LITERAL_DIGITS",
    "MAX_NUMBER_DIGITS",
    "MAX_CONSTANT_ARGUMENT",
]

#: Longest accepted expression text (characters).
MAX_LENGTH = 1000
#: Most lexical tokens (numbers, names, operators) in one expression.
MAX_TOKENS = 400
#: Deepest nesting of brackets, and of the syntax tree.
MAX_BRACKETS = 16
MAX_DEPTH = 40
#: Most arguments of one call (``Max``/``Min``/``Piecewise``).
MAX_ARGS = 16
#: Largest total polynomial degree in x (``x**40``, ``(x**2+1)**20``), and the largest
#: absolute exponent of any power of an x-dependent base.
MAX_DEGREE = 40
#: Most significant digits in one numeric literal, and largest decimal exponent in one.
MAX_LITERAL_DIGITS = 30
MAX_LITERAL_EXPONENT = 400
#: Most digits in the numerator or denominator of an exact constant produced while
#: building (``10**400`` is fine, ``10**10**8`` is not).
MAX_NUMBER_DIGITS = 1000
#: Largest constant argument of a special function (``gamma(10**8)`` is refused:
#: SymPy would compute the factorial exactly).
MAX_CONSTANT_ARGUMENT = 10**6

_x = sp.Symbol("x", real=True)  # the same symbol as activations.X (SymPy caches symbols)

# --------------------------------------------------------------------------- #
# Whitelist
# --------------------------------------------------------------------------- #
#: name -> (SymPy constructor, min args, max args).  Every entry has an mpmath
#: evaluation path through ``sympy.lambdify(..., "mpmath")`` fast enough for
#: quadrature (``besselk``/``besseli`` are left out: mpmath needs ~0.1–0.3 s per value
#: at moderate arguments, so a certified quadrature would run for hours).
FUNCTIONS: dict[str, tuple[Callable[..., sp.Expr], int, int]] = {
    "Heaviside": (sp.Heaviside, 1, 2),
    "Piecewise": (sp.Piecewise, 1, MAX_ARGS),
    "Max": (sp.Max, 1, MAX_ARGS),
    "Min": (sp.Min, 1, MAX_ARGS),
    "max": (sp.Max, 1, MAX_ARGS),
    "min": (sp.Min, 1, MAX_ARGS),
    "Abs": (sp.Abs, 1, 1),
    "abs": (sp.Abs, 1, 1),
    "sign": (sp.sign, 1, 1),
    "exp": (sp.exp, 1, 1),
    "log": (sp.log, 1, 1),
    "sqrt": (sp.sqrt, 1, 1),
    "erf": (sp.erf, 1, 1),
    "erfc": (sp.erfc, 1, 1),
    "erfinv": (sp.erfinv, 1, 1),
    "sin": (sp.sin, 1, 1),
    "cos": (sp.cos, 1, 1),
    "tan": (sp.tan, 1, 1),
    "cot": (sp.cot, 1, 1),
    "sec": (sp.sec, 1, 1),
    "csc": (sp.csc, 1, 1),
    "sinh": (sp.sinh, 1, 1),
    "cosh": (sp.cosh, 1, 1),
    "tanh": (sp.tanh, 1, 1),
    "sech": (sp.sech, 1, 1),
    "asin": (sp.asin, 1, 1),
    "acos": (sp.acos, 1, 1),
    "atan": (sp.atan, 1, 1),
    "asinh": (sp.asinh, 1, 1),
    "atanh": (sp.atanh, 1, 1),
    "LambertW": (sp.LambertW, 1, 1),
    "besselj": (sp.besselj, 2, 2),
    "gamma": (sp.gamma, 1, 1),
    "floor": (sp.floor, 1, 1),
    "ceiling": (sp.ceiling, 1, 1),
    "frac": (sp.frac, 1, 1),
    "re": (sp.re, 1, 1),
    "im": (sp.im, 1, 1),
    "arg": (lambda u: real_rewrites(sp.arg(u)), 1, 1),
    "Rational": (sp.Rational, 1, 2),
    "Integer": (sp.Integer, 1, 1),
    "Float": (lambda v: v, 1, 1),  # literals are exact already
}

#: Names of values.  ``x`` is the variable; ``True``/``False`` appear in Piecewise conditions.
CONSTANTS: dict[str, sp.Basic] = {"x": _x, "pi": sp.pi, "E": sp.E, "True": sp.true, "False": sp.false}

#: Names SymPy users may try that are refused with a specific reason.
_NOT_REAL = {"oo": "infinity", "zoo": "complex infinity", "nan": "not a number", "I": "the imaginary unit",
             "inf": "infinity", "infinity": "infinity", "j": "the imaginary unit"}

#: SymPy function classes allowed in expressions (for :func:`check_supported`).
_ALLOWED_CLASSES: tuple[type, ...] = tuple({
    sp.Heaviside, sp.Piecewise, sp.Max, sp.Min, sp.Abs, sp.sign, sp.exp, sp.log, sp.erf, sp.erfc,
    sp.erfinv, sp.sin, sp.cos, sp.tan, sp.cot, sp.sec, sp.csc, sp.sinh, sp.cosh, sp.tanh, sp.sech,
    sp.csch, sp.coth, sp.asin, sp.acos, sp.atan, sp.asinh, sp.acosh, sp.atanh, sp.LambertW,
    sp.besselj, sp.gamma, sp.floor, sp.ceiling, sp.frac, sp.re, sp.im,
    sp.arg,
})


def suggest(name: str, candidates: Iterable[str]) -> str:
    """``" (did you mean: a, b?)"`` for the closest ``candidates`` to ``name``, or ``""``."""
    cands = list(candidates)
    close = difflib.get_close_matches(name, cands, n=3, cutoff=0.6)
    if not close:
        lower = {c.lower(): c for c in cands}
        close = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.6)]
    return f" (did you mean: {', '.join(close)}?)" if close else ""


# --------------------------------------------------------------------------- #
# Lexing
# --------------------------------------------------------------------------- #
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|<=|>=|==|!=|[-+*/^(),<>&|~])
""", re.VERBOSE)


def _lex(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            raise ParseError(f"cannot parse expression: character {ch!r} at position {pos + 1} is not "
                             "allowed (only numbers, names, + - * / ** ^ ( ) , and comparisons)")
        kind = m.lastgroup or ""
        tok = m.group()
        pos = m.end()
        if kind == "space":
            continue
        if kind == "number":
            _check_literal(tok)
        if kind == "name" and "__" in tok:
            raise ParseError(f"cannot parse expression: name '{tok}' is not allowed")
        out.append((kind, "**" if tok == "^" else tok))
        if len(out) > MAX_TOKENS:
            raise ParseError(f"expression too long: more than {MAX_TOKENS} tokens")
    return out


def _check_literal(tok: str) -> None:
    mant, _, expo = tok.replace("_", "").lower().partition("e")
    digits = mant.replace(".", "").lstrip("0")
    if len(digits) > MAX_LITERAL_DIGITS:
        raise ParseError(f"numeric literal with {len(digits)} digits: at most {MAX_LITERAL_DIGITS} "
                         "significant digits are accepted")
    if expo and abs(int(expo)) > MAX_LITERAL_EXPONENT:
        raise ParseError(f"numeric literal {tok}: decimal exponent beyond ±{MAX_LITERAL_EXPONENT}")


def _implicit_products(tokens: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Insert ``*`` in ``2x``, ``2(x+1)``, ``(x+1)(x-1)``, ``x(x+1)``, ``2 pi``."""
    out: list[tuple[str, str]] = []
    for kind, tok in tokens:
        if out:
            pk, pt = out[-1]
            left_value = pk == "number" or pt == ")" or (pk == "name" and pt in CONSTANTS)
            right_value = kind in ("number", "name") or tok == "("
            if left_value and right_value and not (pk == "number" and kind == "number"):
                out.append(("op", "*"))
        out.append((kind, tok))
    return out


# --------------------------------------------------------------------------- #
# Building
# --------------------------------------------------------------------------- #
def _digits(n: int) -> int:
    n = abs(n)
    return 1 if n == 0 else int(n.bit_length() * 0.30103) + 1


def _check_number(v: sp.Basic) -> sp.Basic:
    if isinstance(v, sp.Rational) and max(_digits(int(v.p)), _digits(int(v.q))) > MAX_NUMBER_DIGITS:
        raise ParseError(f"a constant in the expression has more than {MAX_NUMBER_DIGITS} digits")
    return v


def _log10_abs(v: sp.Expr) -> float | None:
    """log10|v| for an exact number, cheaply (None when not a plain number)."""
    if isinstance(v, sp.Rational):
        if v == 0:
            return -math.inf
        return (int(abs(v.p)).bit_length() - int(v.q).bit_length()) * 0.30103
    if v in (sp.pi, sp.E):
        return 0.5
    return None


class _Builder:
    def __init__(self, text: str) -> None:
        self.text = text

    def fail(self, msg: str) -> ParseError:
        return ParseError(f"cannot parse expression '{_clip(self.text)}': {msg}")

    def build(self, node: ast.AST, depth: int = 0, in_piecewise: bool = False) -> tuple[sp.Basic, int]:
        """(SymPy object, bound on its polynomial degree in x)."""
        if depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} levels deep")
        d = depth + 1
        if isinstance(node, ast.Expression):
            return self.build(node.body, d)
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool):
                return (sp.true if v else sp.false), 0
            if not isinstance(v, (int, float)):
                raise self.fail(f"unsupported constant {v!r}")
            seg = ast.get_source_segment(self.src, node) or repr(v)
            return sp.Rational(seg.replace("_", "")), 0
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                c = CONSTANTS[node.id]
                return c, int(c == _x)
            if node.id in _NOT_REAL:
                raise self.fail(f"'{node.id}' ({_NOT_REAL[node.id]}) is not a finite real number")
            if node.id in FUNCTIONS:
                raise self.fail(f"'{node.id}' is a function, not an expression in x "
                                f"(write e.g. '{node.id}(x)')")
            raise self.fail(f"unknown name '{node.id}'; the only variable is x"
                            + suggest(node.id, [*CONSTANTS, *FUNCTIONS]))
        if isinstance(node, ast.UnaryOp):
            v, deg = self.build(node.operand, d, in_piecewise)
            if isinstance(node.op, ast.USub):
                return self._arith(-v), deg
            if isinstance(node.op, ast.UAdd):
                return v, deg
            if isinstance(node.op, (ast.Invert, ast.Not)):
                return self._bool(v, node), 0
            raise self.fail("unsupported unary operator")
        if isinstance(node, ast.BinOp):
            return self._binop(node, d, in_piecewise)
        if isinstance(node, ast.Compare):
            left, _ = self.build(node.left, d, in_piecewise)
            out = []
            for op, comp in zip(node.ops, node.comparators):
                right, _ = self.build(comp, d, in_piecewise)
                rel = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge,
                       ast.Eq: sp.Eq, ast.NotEq: sp.Ne}.get(type(op))
                if rel is None:
                    raise self.fail("unsupported comparison")
                if not (isinstance(left, sp.Expr) and isinstance(right, sp.Expr)):
                    raise self.fail("comparisons need numbers or expressions on both sides")
                out.append(rel(left, right))
                left = right
            return (out[0] if len(out) == 1 else sp.And(*out)), 0
        if isinstance(node, ast.BoolOp):
            vals = [self._bool(self.build(v, d, in_piecewise)[0], node) for v in node.values]
            return (sp.And(*vals) if isinstance(node.op, ast.And) else sp.Or(*vals)), 0
        if isinstance(node, ast.Call):
            return self._call(node, d)
        if isinstance(node, ast.Tuple) and in_piecewise:
            raise self.fail("a tuple is only allowed as a (value, condition) argument of Piecewise")
        raise self.fail(f"{_describe(node)} is not allowed in an expression")

    # -- pieces ----------------------------------------------------------------- #
    def _bool(self, v: sp.Basic, node: ast.AST) -> sp.Basic:
        if not isinstance(v, sp.logic.boolalg.Boolean) or isinstance(v, sp.Symbol):
            raise self.fail("logical operators need conditions (comparisons) on both sides")
        return v

    def _arith(self, v: sp.Basic) -> sp.Basic:
        if not isinstance(v, sp.Expr):
            raise self.fail("arithmetic on a condition (use Piecewise or Heaviside)")
        return _check_number(v)

    def _binop(self, node: ast.BinOp, d: int, in_pw: bool) -> tuple[sp.Basic, int]:
        a, da = self.build(node.left, d, in_pw)
        b, db = self.build(node.right, d, in_pw)
        op = node.op
        if isinstance(op, (ast.BitAnd, ast.BitOr)):
            a, b = self._bool(a, node), self._bool(b, node)
            return (sp.And(a, b) if isinstance(op, ast.BitAnd) else sp.Or(a, b)), 0
        if not (isinstance(a, sp.Expr) and isinstance(b, sp.Expr)):
            raise self.fail("arithmetic on a condition (use Piecewise or Heaviside)")
        if isinstance(op, ast.Add):
            return self._arith(a + b), max(da, db)
        if isinstance(op, ast.Sub):
            return self._arith(a - b), max(da, db)
        if isinstance(op, ast.Mult):
            deg = da + db
            self._degree(deg)
            return self._arith(a * b), deg
        if isinstance(op, ast.Div):
            if b == 0:
                raise self.fail("division by zero")
            return self._arith(a / b), max(da, db)
        if isinstance(op, ast.Pow):
            return self._pow(a, da, b, db)
        raise self.fail(f"operator {type(op).__name__} is not allowed")

    def _degree(self, deg: int) -> None:
        if deg > MAX_DEGREE:
            raise self.fail(f"polynomial degree above {MAX_DEGREE}")

    def _pow(self, a: sp.Expr, da: int, b: sp.Expr, db: int) -> tuple[sp.Basic, int]:
        if b.has(_x):
            if a.has(_x) or not a.is_number:
                raise self.fail("x in an exponent of an x-dependent base is not supported")
            return self._arith(a ** b), db  # c**f(x) = exp(f(x) log c)
        if not b.is_number:
            raise self.fail("unsupported exponent")
        try:
            fb = float(b)
        except (TypeError, ValueError):
            raise self.fail(f"exponent {_short(b)} is not a real number") from None
        if a.has(_x):
            if not abs(fb) <= MAX_DEGREE:
                raise self.fail(f"exponent {_short(b)} of an x-dependent base is beyond ±{MAX_DEGREE}")
            deg = da * int(abs(b)) if b.is_Integer else da
            self._degree(deg)
            return self._arith(a ** b), deg
        # constant ** constant: bound the size of the exact result before computing it
        if a == 0 and fb < 0:
            raise self.fail("division by zero (0 to a negative power)")
        if isinstance(b, sp.Rational) and not b.is_Integer and max(_digits(int(b.p)), _digits(int(b.q))) > 6:
            raise self.fail("rational exponent with a numerator or denominator above 10**6")
        if a not in (0, 1, -1):
            # log10 of the larger of numerator and denominator: digits per unit of exponent
            size = (max(int(abs(a.p)).bit_length() - 1, int(a.q).bit_length() - 1, 1) * 0.30103
                    if isinstance(a, sp.Rational) else 1.0)
            if not abs(fb) * size <= MAX_NUMBER_DIGITS:
                raise self.fail(f"constant power {_short(a)}**{_short(b)} would have more than "
                                f"{MAX_NUMBER_DIGITS} digits")
        try:
            return self._arith(sp.Pow(a, b)), 0
        except ParseError:
            raise
        except Exception as exc:  # noqa: BLE001 - SymPy refusing an odd power
            raise self.fail(f"cannot form the power: {type(exc).__name__}") from None

    def _call(self, node: ast.Call, d: int) -> tuple[sp.Basic, int]:
        if not isinstance(node.func, ast.Name):
            raise self.fail(f"only calls of named functions are allowed, not of {_describe(node.func)}")
        name = node.func.id
        if name not in FUNCTIONS:
            if name in CONSTANTS or name in _NOT_REAL:
                raise self.fail(f"'{name}' is not a function")
            raise self.fail(f"unknown function '{name}'" + suggest(name, FUNCTIONS))
        if node.keywords:
            raise self.fail(f"{name}: keyword arguments are not allowed")
        fn, lo, hi = FUNCTIONS[name]
        if not lo <= len(node.args) <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise self.fail(f"{name} takes {want} argument(s), got {len(node.args)}")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail("starred arguments are not allowed")
        if name == "Piecewise":
            return self._piecewise(node, d)
        args, degs = [], []
        for a in node.args:
            v, dg = self.build(a, d)
            if not isinstance(v, sp.Expr):
                raise self.fail(f"{name}: arguments must be numbers or expressions in x, not conditions")
            args.append(v)
            degs.append(dg)
        if name in ("Rational", "Integer", "Float"):
            if not all(isinstance(v, sp.Rational) for v in args):
                raise self.fail(f"{name} takes exact numbers")
            if name == "Rational" and len(args) == 2 and args[1] == 0:
                raise self.fail("division by zero")
            val = args[0] / args[1] if len(args) == 2 else args[0]
            if name == "Integer" and not val.is_Integer:
                val = sp.Integer(int(val))
            return self._arith(val), 0
        for v in args:
            if not v.has(_x):
                lv = _log10_abs(v)
                if lv is None:
                    try:
                        fv = v.evalf(20)
                        lv = math.log10(abs(float(fv))) if fv.is_real and fv != 0 else 0.0
                    except Exception:  # noqa: BLE001 - not a real constant
                        lv = 0.0
                limit = 1000 if name == "gamma" else MAX_CONSTANT_ARGUMENT  # gamma(n) = (n-1)! exactly
                if lv > math.log10(limit):
                    raise self.fail(f"{name}: constant argument {_short(v)} beyond ±{limit:g}")
        try:
            out = fn(*args)
        except ParseError:
            raise
        except Exception as exc:  # noqa: BLE001 - SymPy argument validation
            raise self.fail(f"{name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if name in ("Max", "Min"):
            deg = max(degs)
        elif name in ("Abs", "re", "Heaviside", "sign", "floor", "ceiling", "frac", "im", "arg"):
            deg = degs[0] if name in ("Abs", "re") else 0
        else:
            deg = max(degs)  # growth of exp(x**k) etc. is still bounded by the argument's size
        return self._arith(out) if isinstance(out, sp.Expr) else out, deg

    def _piecewise(self, node: ast.Call, d: int) -> tuple[sp.Basic, int]:
        pairs, deg = [], 0
        for a in node.args:
            if not (isinstance(a, ast.Tuple) and len(a.elts) == 2):
                raise self.fail("Piecewise takes (value, condition) pairs")
            val, dv = self.build(a.elts[0], d + 1)
            cond, _ = self.build(a.elts[1], d + 1)
            if not isinstance(val, sp.Expr):
                raise self.fail("Piecewise: a value must be a number or an expression in x")
            if not isinstance(cond, sp.logic.boolalg.Boolean) or isinstance(cond, sp.Symbol):
                raise self.fail("Piecewise: a condition must be a comparison, True or False")
            pairs.append((val, cond))
            deg = max(deg, dv)
        try:
            return sp.Piecewise(*pairs), deg
        except Exception as exc:  # noqa: BLE001
            raise self.fail(f"Piecewise: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
                from None


def _describe(node: ast.AST) -> str:
    names = {ast.Attribute: "attribute access", ast.Subscript: "subscripting", ast.Lambda: "a lambda",
             ast.Str if hasattr(ast, "Str") else ast.Constant: "a string", ast.List: "a list",
             ast.Dict: "a dict", ast.Tuple: "a tuple", ast.IfExp: "a conditional expression",
             ast.NamedExpr: "an assignment"}
    return names.get(type(node), type(node).__name__)


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _short(v: sp.Basic) -> str:
    s = str(v)
    return s if len(s) <= 20 else s[:17] + "..."


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #
def parse_expression(text: str) -> sp.Expr:
    """Parse ``text`` into a SymPy expression in the real symbol ``x``, as data.

    Raises
    ------
    ParseError
        Unsupported syntax or names, limits exceeded, or not a real-valued expression.
    """
    if not isinstance(text, str):
        raise ParseError(f"expected an expression string, got {type(text).__name__}")
    s = text.strip()
    if not s:
        raise ParseError("empty activation expression")
    if len(s) > MAX_LENGTH:
        raise ParseError(f"expression too long: {len(s)} characters (at most {MAX_LENGTH})")
    tokens = _implicit_products(_lex(s))
    depth = 0
    for _kind, tok in tokens:
        if tok == "(":
            depth += 1
            if depth > MAX_BRACKETS:
                raise ParseError(f"expression nested more than {MAX_BRACKETS} brackets deep")
        elif tok == ")":
            depth -= 1
            if depth < 0:
                raise ParseError(f"cannot parse expression '{_clip(s)}': unbalanced ')'")
    if depth:
        raise ParseError(f"cannot parse expression '{_clip(s)}': unbalanced '('")
    src = " ".join(tok for _k, tok in tokens)
    try:
        tree = ast.parse(src, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        msg = getattr(exc, "msg", None) or type(exc).__name__
        raise ParseError(f"cannot parse expression '{_clip(s)}': {msg}") from None
    b = _Builder(s)
    b.src = src  # type: ignore[attr-defined]
    try:
        e, _deg = b.build(tree)
    except RecursionError:
        raise ParseError(f"cannot parse expression '{_clip(s)}': nested too deeply") from None
    if not isinstance(e, sp.Expr):
        raise ParseError(f"'{_clip(s)}' is not a real-valued expression in x")
    check_supported(e)
    return e


@lru_cache(maxsize=1024)
def _unsupported(e: sp.Basic) -> str:
    for sub in sp.preorder_traversal(e):
        if sub in (sp.oo, -sp.oo, sp.zoo, sp.nan) or isinstance(sub, (sp.core.numbers.Infinity,
                                                                        sp.core.numbers.NegativeInfinity,
                                                                        sp.core.numbers.ComplexInfinity,
                                                                        sp.core.numbers.NaN)):
            return f"{sub} is not a finite real number"
        if sub is sp.I:
            return "the imaginary unit I is not allowed: activations are real"
        if isinstance(sub, sp.Function) and not isinstance(sub, _ALLOWED_CLASSES):
            name = type(sub).__name__
            return (f"function '{name}' is not supported (no certified numerical evaluation)"
                    + suggest(name, FUNCTIONS))
    return ""


def real_rewrites(e: sp.Basic) -> sp.Basic:
    """Rewrite ``arg(u)`` of a real ``u`` as the step ``π·Heaviside(−u)`` (SymPy keeps it
    as ``arg``, which the engine would treat as smooth: ``E[σ'²] = 0`` instead of ∞)."""
    if not e.has(sp.arg):
        return e
    return e.replace(lambda a: isinstance(a, sp.arg) and a.args[0].is_extended_real,
                     lambda a: sp.pi * sp.Heaviside(-a.args[0]))


def check_supported(e: sp.Basic) -> None:
    """Refuse expressions with functions outside the whitelist, infinities, NaN or ``I``."""
    try:
        msg = _unsupported(e)
    except TypeError:  # unhashable: walk without the cache
        msg = _unsupported.__wrapped__(e)
    if msg:
        raise ParseError(msg)


#: Every name the parser knows as a value (including refused non-real ones such as ``oo``).
NAMES: frozenset[str] = frozenset(CONSTANTS) | frozenset(_NOT_REAL)
