"""Activation library: a SymPy expression plus a vectorized NumPy function.

This is the first stage of the data flow (docs/reference.rst §1): an :class:`Activation`
carries the exact expression in the real symbol :data:`X` (used by the Gaussian
expectation engine for closed forms), a vectorized NumPy implementation (used by
Monte Carlo, networks and kernels), its almost-everywhere derivative, and — for
piecewise-constant activations — the :class:`Staircase` description that the
jump formula and the compression solvers work with (docs/reference.rst §6).

Activations are built from a registry name with parameters, from a SymPy
expression, or from a textual specification::

    >>> parse_activation("leaky_relu:slope=0.1")
    >>> parse_activation("sigma_T:s1=-1,s2=0.5,a=2")
    >>> parse_activation("x*erf(x)")
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import scipy.special as sps
import sympy as sp

from .errors import ParameterError, ParseError, UnknownActivationError
from .safe_parse import FUNCTIONS, NAMES, check_supported, parse_expression, real_rewrites, suggest

__all__ = [
    "X",
    "Activation",
    "Staircase",
    "ActivationFamily",
    "REGISTRY",
    "activation",
    "from_expr",
    "parse_activation",
    "lambdify_numpy",
    "staircase",
    "list_activations",
    "EXAMPLE_PARAMS",
    "example_activations",
]

#: The real symbol in which every activation expression is written.
X = sp.Symbol("x", real=True)

NumpyFn = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- #
# Staircases (piecewise-constant activations)
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Staircase:
    """A piecewise-constant function ``t -> levels[k]`` for ``thresholds[k-1] < t < thresholds[k]``.

    Parameters
    ----------
    thresholds : tuple of float
        Strictly increasing jump locations ``t_1 < ... < t_m``.
    levels : tuple of float
        ``m + 1`` values: ``levels[0]`` below ``t_1`` ... ``levels[m]`` above ``t_m``.

    Notes
    -----
    Values at the thresholds themselves are irrelevant for Gaussian expectations.
    The jumps ``Δ_j = levels[j] - levels[j-1]`` drive the jump formula of
    docs/reference.rst §1.
    """

    thresholds: tuple[float, ...]
    levels: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.levels) != len(self.thresholds) + 1:
            raise ParameterError(
                f"a staircase with {len(self.thresholds)} thresholds needs "
                f"{len(self.thresholds) + 1} levels, got {len(self.levels)}"
            )
        for v in (*self.thresholds, *self.levels):
            if not math.isfinite(v):
                raise ParameterError("staircase thresholds and levels must be finite")
        if any(b <= a for a, b in zip(self.thresholds, self.thresholds[1:])):
            raise ParameterError(
                f"staircase thresholds must be strictly increasing, got {list(self.thresholds)}"
            )

    @classmethod
    def from_pieces(cls, thresholds: Sequence[float], levels: Sequence[float]) -> Staircase:
        """Build a staircase, merging repeated thresholds and dropping zero jumps.

        Thresholds may be non-decreasing here (e.g. ``sigma_Q`` with ``r1 == r2``);
        an empty interval between equal thresholds is removed.
        """
        ts = [float(t) for t in thresholds]
        vs = [float(v) for v in levels]
        if len(vs) != len(ts) + 1:
            raise ParameterError(
                f"a staircase with {len(ts)} thresholds needs {len(ts) + 1} levels, got {len(vs)}"
            )
        if any(b < a for a, b in zip(ts, ts[1:])):
            raise ParameterError(f"staircase thresholds must be non-decreasing, got {ts}")
        out_t: list[float] = []
        out_v: list[float] = [vs[0]]
        for t, v in zip(ts, vs[1:]):
            if out_t and t == out_t[-1]:
                # the interval (t_prev, t) is empty: the level after it replaces it
                out_v[-1] = v
            else:
                out_t.append(t)
                out_v.append(v)
        # drop thresholds without a jump
        keep_t: list[float] = []
        keep_v: list[float] = [out_v[0]]
        for t, v in zip(out_t, out_v[1:]):
            if v != keep_v[-1]:
                keep_t.append(t)
                keep_v.append(v)
        return cls(tuple(keep_t), tuple(keep_v))

    @property
    def jumps(self) -> tuple[float, ...]:
        """Jump sizes ``Δ_j = σ(t_j⁺) − σ(t_j⁻)``."""
        return tuple(b - a for a, b in zip(self.levels, self.levels[1:]))

    @property
    def square_jumps(self) -> tuple[float, ...]:
        """Jump sizes of σ², used for ``E[(σ²)'']``."""
        return tuple(b * b - a * a for a, b in zip(self.levels, self.levels[1:]))

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        idx = np.searchsorted(np.asarray(self.thresholds, dtype=float), t, side="right")
        return np.asarray(self.levels, dtype=float)[idx]

    def expr(self, exact: bool = True) -> sp.Expr:
        """The staircase as a SymPy ``Piecewise`` in :data:`X`."""
        conv = _exact if exact else sp.Float
        pieces = []
        for t, v in zip(self.thresholds, self.levels):
            pieces.append((conv(v), X < conv(t)))
        pieces.append((conv(self.levels[-1]), True))
        return sp.Piecewise(*pieces)


def _exact(v: float | int | str | sp.Expr) -> sp.Expr:
    """Convert a user number to an exact SymPy number (0.1 -> 1/10)."""
    if isinstance(v, sp.Expr):
        return v
    if isinstance(v, (int, np.integer)):
        return sp.Integer(int(v))
    if isinstance(v, str):
        return sp.Rational(v)
    # repr gives the shortest decimal that round-trips: 0.1 -> "0.1" -> 1/10
    return sp.Rational(repr(float(v)))


# --------------------------------------------------------------------------- #
# Activation
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Activation:
    """An activation function σ, exact and vectorized.

    Attributes
    ----------
    name : str
        Registry name (``"relu"``, ``"sigma_T"``, ...) or ``"expr"`` for a user expression.
    params : tuple of (str, value)
        Parameters in canonical order; values are floats or tuples of floats.
    expr : sympy.Expr
        σ as an expression in the real symbol :data:`X`.
    func : callable
        Vectorized NumPy implementation of σ.
    staircase : Staircase or None
        Set when σ is piecewise constant (jump formula applies).
    """

    name: str
    params: tuple[tuple[str, Any], ...]
    expr: sp.Expr
    func: NumpyFn = field(repr=False, compare=False)
    staircase: Staircase | None = None
    _deriv: NumpyFn | None = field(default=None, repr=False, compare=False)

    # -- evaluation -------------------------------------------------------- #
    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        out = np.asarray(self.func(t), dtype=float)
        return np.broadcast_to(out, t.shape).copy() if out.shape != t.shape else out

    @cached_property
    def _derivative_fn(self) -> NumpyFn:
        # compiled once per activation (lambdify is far slower than evaluating)
        return self._deriv if self._deriv is not None else _lambdify(derivative_expr(self.expr))

    def derivative(self, t: np.ndarray | float) -> np.ndarray:
        """Almost-everywhere derivative σ'(t) (Dirac parts at jumps omitted)."""
        t = np.asarray(t, dtype=float)
        out = np.asarray(self._derivative_fn(t), dtype=float)
        return np.broadcast_to(out, t.shape).copy() if out.shape != t.shape else out

    # -- description ------------------------------------------------------- #
    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def spec(self) -> str:
        """Canonical textual specification, parseable by :func:`parse_activation`."""
        if self.name == "expr":
            return sp.sstr(self.expr)
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={_fmt_value(v)}" for k, v in self.params)

    @property
    def is_staircase(self) -> bool:
        return self.staircase is not None

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.spec

    def _repr_latex_(self) -> str:
        return "$\\sigma(x) = " + sp.latex(self.expr) + "$"


def _fmt_value(v: Any) -> str:
    if isinstance(v, tuple):
        return "[" + ",".join(_fmt_value(u) for u in v) + "]"
    fv = float(v)
    return repr(int(fv)) if fv.is_integer() and abs(fv) < 1e15 else repr(fv)


def derivative_expr(expr: sp.Expr) -> sp.Expr:
    """Almost-everywhere derivative of ``expr`` in :data:`X` (Dirac deltas dropped)."""
    pw = to_piecewise(expr)
    d = sp.diff(pw, X)
    d = d.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
    return sp.piecewise_fold(d)


def to_piecewise(expr: sp.Expr) -> sp.Expr:
    """Rewrite Heaviside/Abs/Max/Min/sign as ``Piecewise`` and fold."""
    e = expr
    if e.has(sp.Heaviside, sp.Abs, sp.Max, sp.Min, sp.sign, sp.Piecewise):
        e = e.rewrite(sp.Piecewise)
        e = sp.piecewise_fold(e)
    return e


def _lambdify(expr: sp.Expr) -> NumpyFn:
    f = sp.lambdify(X, to_piecewise(expr), modules=["scipy", "numpy"])

    def fn(t: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(f(t), dtype=float)

    return fn


def lambdify_numpy(expr: sp.Expr) -> NumpyFn:
    """A vectorized float64 function of an expression in :data:`X` (SciPy/NumPy special
    functions; piecewise parts as ``Piecewise``; floating-point warnings silenced)."""
    return _lambdify(expr)


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #
ParamSpec = Mapping[str, Any]


@dataclass(frozen=True)
class ActivationFamily:
    """A registry entry: defaults, validation and builders for one activation family."""

    name: str
    description: str
    defaults: Mapping[str, Any]
    build_expr: Callable[[dict[str, sp.Expr]], sp.Expr]
    build_numpy: Callable[[dict[str, Any]], NumpyFn] | None = None
    build_deriv: Callable[[dict[str, Any]], NumpyFn] | None = None
    build_staircase: Callable[[dict[str, Any]], Staircase] | None = None
    validate: Callable[[dict[str, Any]], None] | None = None
    list_params: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def make(self, **params: Any) -> Activation:
        unknown = set(params) - set(self.defaults)
        if unknown:
            allowed = ", ".join(self.defaults) or "none"
            raise ParameterError(
                f"{self.name}: unknown parameter(s) {', '.join(sorted(unknown))}; allowed: {allowed}"
            )
        values: dict[str, Any] = {}
        for k, default in self.defaults.items():
            v = params.get(k, default)
            if v is None:
                raise ParameterError(f"{self.name}: parameter '{k}' is required")
            values[k] = _check_value(self.name, k, v, k in self.list_params)
        if self.validate is not None:
            self.validate(values)
        exact = {
            k: (tuple(_exact(u) for u in v) if isinstance(v, tuple) else _exact(v))
            for k, v in values.items()
        }
        expr = self.build_expr(exact)
        stair = self.build_staircase(values) if self.build_staircase else None
        if self.build_numpy is not None:
            func = self.build_numpy(values)
        elif stair is not None:
            func = stair
        else:
            func = _lambdify(expr)
        deriv = self.build_deriv(values) if self.build_deriv else None
        if deriv is None and stair is not None:
            deriv = _zeros_like
        return Activation(
            name=self.name,
            params=tuple(values.items()),
            expr=expr,
            func=func,
            staircase=stair,
            _deriv=deriv,
        )


def _zeros_like(t: np.ndarray) -> np.ndarray:
    return np.zeros_like(np.asarray(t, dtype=float))


def _check_value(fam: str, key: str, v: Any, is_list: bool) -> Any:
    if is_list:
        if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) and not isinstance(v, np.ndarray):
            raise ParameterError(f"{fam}: parameter '{key}' must be a list of numbers")
        return tuple(_check_value(fam, key, u, False) for u in v)
    try:
        fv = float(v)
    except (TypeError, ValueError):
        raise ParameterError(f"{fam}: parameter '{key}' must be a number, got {v!r}") from None
    if not math.isfinite(fv):
        raise ParameterError(f"{fam}: parameter '{key}' must be finite, got {v!r}")
    if abs(fv) > MAX_PARAMETER:
        raise ParameterError(f"{fam}: parameter '{key}' = {v!r} is beyond ±{MAX_PARAMETER:g}")
    return fv


#: Largest parameter magnitude (thresholds, levels, slopes): beyond it exact
#: conversions and the jump formula's Gaussian tails leave float64.
MAX_PARAMETER = 1e15


REGISTRY: dict[str, ActivationFamily] = {}
_ALIASES: dict[str, str] = {}


def _register(fam: ActivationFamily) -> None:
    REGISTRY[fam.name] = fam
    for a in fam.aliases:
        _ALIASES[a] = fam.name


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ParameterError(msg)


x = X
_SQRT2 = math.sqrt(2.0)
# SELU's self-normalizing constants (Klambauer et al. 2017), to 32 digits
_SELU_ALPHA_STR = "1.6732632423543772848170429916717"
_SELU_LAMBDA_STR = "1.0507009873554804934193349852946"
_SELU_ALPHA = float(_SELU_ALPHA_STR)
_SELU_LAMBDA = float(_SELU_LAMBDA_STR)

# ---- piecewise linear ------------------------------------------------------ #
_register(ActivationFamily(
    "relu", "max(x, 0)", {},
    lambda p: sp.Max(x, 0),
    lambda p: (lambda t: np.maximum(t, 0.0)),
    lambda p: (lambda t: (t > 0).astype(float)),
))
_register(ActivationFamily(
    "leaky_relu", "max(x, slope*x) for slope in [0, 1]", {"slope": 0.01},
    lambda p: sp.Piecewise((p["slope"] * x, x < 0), (x, True)),
    lambda p: (lambda t, s=p["slope"]: np.where(t < 0, s * t, t)),
    lambda p: (lambda t, s=p["slope"]: np.where(t < 0, s, 1.0)),
))
_register(ActivationFamily(
    "abs", "|x|", {},
    lambda p: sp.Abs(x),
    lambda p: np.abs,
    lambda p: np.sign,
))
_register(ActivationFamily(
    "linear", "slope*x", {"slope": 1.0},
    lambda p: p["slope"] * x,
    lambda p: (lambda t, s=p["slope"]: s * t),
    lambda p: (lambda t, s=p["slope"]: np.full_like(t, s)),
))
_register(ActivationFamily(
    "hard_tanh", "clip(x, -1, 1)", {},
    lambda p: sp.Piecewise((-1, x < -1), (1, x > 1), (x, True)),
    lambda p: (lambda t: np.clip(t, -1.0, 1.0)),
    lambda p: (lambda t: (np.abs(t) < 1).astype(float)),
))
_register(ActivationFamily(
    "relu6", "min(max(x, 0), 6)", {},
    lambda p: sp.Piecewise((0, x < 0), (6, x > 6), (x, True)),
    lambda p: (lambda t: np.clip(t, 0.0, 6.0)),
    lambda p: (lambda t: ((t > 0) & (t < 6)).astype(float)),
))

# ---- polynomials ------------------------------------------------------------ #
_register(ActivationFamily(
    "quadratic", "x**2", {},
    lambda p: x**2,
    lambda p: np.square,
    lambda p: (lambda t: 2.0 * t),
))


def _poly_validate(p: dict[str, Any]) -> None:
    _require(len(p["coeffs"]) >= 1, "polynomial: 'coeffs' needs at least one coefficient")


_register(ActivationFamily(
    "polynomial", "sum_k coeffs[k] * x**k", {"coeffs": None},
    lambda p: sp.Add(*[c * x**k for k, c in enumerate(p["coeffs"])]),
    lambda p: (lambda t, c=np.asarray(p["coeffs"])[::-1]: np.polyval(c, t)),
    lambda p: (lambda t, c=np.polyder(np.asarray(p["coeffs"])[::-1]) if len(p["coeffs"]) > 1
               else np.zeros(1): np.polyval(c, t)),
    validate=_poly_validate,
    list_params=("coeffs",),
))

# ---- smooth special functions ---------------------------------------------- #
_register(ActivationFamily(
    "erf", "erf(x)", {},
    lambda p: sp.erf(x),
    lambda p: sps.erf,
    lambda p: (lambda t: 2.0 / math.sqrt(math.pi) * np.exp(-t * t)),
))
_register(ActivationFamily(
    "gelu", "x * Phi(x) (exact GELU)", {},
    lambda p: x * (1 + sp.erf(x / sp.sqrt(2))) / 2,
    lambda p: (lambda t: t * sps.ndtr(t)),
    lambda p: (lambda t: sps.ndtr(t) + t * np.exp(-t * t / 2) / math.sqrt(2 * math.pi)),
))
_register(ActivationFamily(
    "tanh", "tanh(x)", {},
    lambda p: sp.tanh(x),
    lambda p: np.tanh,
    lambda p: (lambda t: 1.0 / np.cosh(t) ** 2),
))
_register(ActivationFamily(
    "sigmoid", "1 / (1 + exp(-x))", {},
    lambda p: 1 / (1 + sp.exp(-x)),
    lambda p: sps.expit,
    lambda p: (lambda t: sps.expit(t) * sps.expit(-t)),
))
_register(ActivationFamily(
    "swish", "x * sigmoid(beta*x) (SiLU for beta = 1)", {"beta": 1.0},
    lambda p: x / (1 + sp.exp(-p["beta"] * x)),
    lambda p: (lambda t, b=p["beta"]: t * sps.expit(b * t)),
    lambda p: (lambda t, b=p["beta"]: sps.expit(b * t) + b * t * sps.expit(b * t) * sps.expit(-b * t)),
    aliases=("silu",),
))
_register(ActivationFamily(
    "softplus", "log(1 + exp(beta*x)) / beta", {"beta": 1.0},
    lambda p: sp.log(1 + sp.exp(p["beta"] * x)) / p["beta"],
    lambda p: (lambda t, b=p["beta"]: np.logaddexp(0.0, b * t) / b),
    lambda p: (lambda t, b=p["beta"]: sps.expit(b * t)),
    validate=lambda p: _require(p["beta"] > 0, "softplus: beta must be > 0"),
))
_register(ActivationFamily(
    "elu", "x for x > 0, alpha*(exp(x) - 1) otherwise", {"alpha": 1.0},
    lambda p: sp.Piecewise((p["alpha"] * (sp.exp(x) - 1), x < 0), (x, True)),
    lambda p: (lambda t, a=p["alpha"]: np.where(t > 0, t, a * np.expm1(np.minimum(t, 0.0)))),
    lambda p: (lambda t, a=p["alpha"]: np.where(t > 0, 1.0, a * np.exp(np.minimum(t, 0.0)))),
))
_register(ActivationFamily(
    "selu", "lambda * elu_alpha(x) with the self-normalizing constants", {},
    lambda p: sp.Rational(_SELU_LAMBDA_STR) * sp.Piecewise(
        (sp.Rational(_SELU_ALPHA_STR) * (sp.exp(x) - 1), x < 0), (x, True)),
    lambda p: (lambda t: _SELU_LAMBDA * np.where(t > 0, t, _SELU_ALPHA * np.expm1(np.minimum(t, 0.0)))),
    lambda p: (lambda t: _SELU_LAMBDA * np.where(t > 0, 1.0, _SELU_ALPHA * np.exp(np.minimum(t, 0.0)))),
))
_register(ActivationFamily(
    "sin", "sin(x)", {},
    lambda p: sp.sin(x), lambda p: np.sin, lambda p: np.cos,
))
_register(ActivationFamily(
    "cos", "cos(x)", {},
    lambda p: sp.cos(x), lambda p: np.cos, lambda p: (lambda t: -np.sin(t)),
))
_register(ActivationFamily(
    "gaussian", "exp(-x**2/2)", {},
    lambda p: sp.exp(-x**2 / 2),
    lambda p: (lambda t: np.exp(-t * t / 2)),
    lambda p: (lambda t: -t * np.exp(-t * t / 2)),
))

# ---- piecewise constant ---------------------------------------------------- #
def _stair_family(
    name: str,
    description: str,
    defaults: Mapping[str, Any],
    stair: Callable[[dict[str, Any]], Staircase],
    validate: Callable[[dict[str, Any]], None] | None = None,
    list_params: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
) -> ActivationFamily:
    def build_expr(p: dict[str, sp.Expr]) -> sp.Expr:
        return stair({k: (tuple(float(u) for u in v) if isinstance(v, tuple) else float(v))
                      for k, v in p.items()}).expr(exact=True)

    return ActivationFamily(name, description, defaults, build_expr, None, None, stair,
                            validate, list_params, aliases)


_register(_stair_family(
    "sign", "sign(x)", {},
    lambda p: Staircase((0.0,), (-1.0, 1.0)),
))
_register(_stair_family(
    "step", "Heaviside step 1_{x > threshold}", {"threshold": 0.0},
    lambda p: Staircase((p["threshold"],), (0.0, 1.0)),
    aliases=("heaviside",),
))


def _sigma_t_validate(p: dict[str, Any]) -> None:
    _require(p["s1"] < p["s2"], f"sigma_T needs s1 < s2, got s1={p['s1']}, s2={p['s2']}")
    _require(p["a"] != 0, "sigma_T needs a != 0")


_register(_stair_family(
    "sigma_T", "a*(1_{x<s1} + 1_{x>s2}), s1 < s2 (NTK-LC hidden layers)",
    {"s1": None, "s2": None, "a": 1.0},
    lambda p: Staircase((p["s1"], p["s2"]), (p["a"], 0.0, p["a"])),
    validate=_sigma_t_validate,
))


def _sigma_q_validate(p: dict[str, Any]) -> None:
    r = [p["r1"], p["r2"], p["r3"], p["r4"]]
    _require(all(a <= b for a, b in zip(r, r[1:])) and r[0] < r[3],
             f"sigma_Q needs r1 <= r2 <= r3 <= r4 with r1 < r4, got {r}")


_register(_stair_family(
    "sigma_Q", "b1*(1_{x<r1} + 1_{x>r4}) + b2*1_{r2<=x<=r3} (NTK-LC last layer)",
    {"r1": None, "r2": None, "r3": None, "r4": None, "b1": 1.0, "b2": 0.0},
    lambda p: Staircase.from_pieces(
        (p["r1"], p["r2"], p["r3"], p["r4"]), (p["b1"], 0.0, p["b2"], 0.0, p["b1"])),
    validate=_sigma_q_validate,
))


def _ternary_validate(p: dict[str, Any]) -> None:
    _require(p["s"] > 0, f"ternary needs s > 0, got s={p['s']}")
    _require(p["b"] != 0, "ternary needs b != 0")


_register(_stair_family(
    "ternary", "odd ternary b*(1_{x>s} - 1_{x<-s}), s > 0",
    {"s": None, "b": 1.0},
    lambda p: Staircase((-p["s"], p["s"]), (-p["b"], 0.0, p["b"])),
    validate=_ternary_validate,
    aliases=("odd_ternary",),
))


def _three_level_validate(p: dict[str, Any]) -> None:
    _require(p["s1"] < p["s2"], f"three_level needs s1 < s2, got s1={p['s1']}, s2={p['s2']}")


_register(_stair_family(
    "three_level", "a1*1_{x<s1} + a2*1_{x>s2}, s1 < s2",
    {"s1": None, "s2": None, "a1": None, "a2": None},
    lambda p: Staircase.from_pieces((p["s1"], p["s2"]), (p["a1"], 0.0, p["a2"])),
    validate=_three_level_validate,
))


def _staircase_validate(p: dict[str, Any]) -> None:
    t, v = p["thresholds"], p["levels"]
    _require(len(t) >= 1, "staircase needs at least one threshold")
    _require(len(v) == len(t) + 1,
             f"staircase with {len(t)} thresholds needs {len(t) + 1} levels, got {len(v)}")
    _require(all(a < b for a, b in zip(t, t[1:])),
             f"staircase thresholds must be strictly increasing, got {list(t)}")


_register(_stair_family(
    "staircase", "general K-level staircase: levels[k] between thresholds[k-1] and thresholds[k]",
    {"thresholds": None, "levels": None},
    lambda p: Staircase.from_pieces(p["thresholds"], p["levels"]),
    validate=_staircase_validate,
    list_params=("thresholds", "levels"),
))


# --------------------------------------------------------------------------- #
# Constructors and parsing
# --------------------------------------------------------------------------- #
def list_activations() -> list[str]:
    """Names of every registry family, sorted."""
    return sorted(REGISTRY)


def activation(name: str, **params: Any) -> Activation:
    """Build a registry activation, e.g. ``activation("leaky_relu", slope=0.1)``."""
    key = _ALIASES.get(name, name)
    fam = REGISTRY.get(key)
    if fam is None:
        raise UnknownActivationError(f"unknown activation '{name}'"
                                     + (suggest(name, [*REGISTRY, *_ALIASES]) or "; see list_activations()"))
    return fam.make(**params)


def staircase(thresholds: Sequence[float], levels: Sequence[float]) -> Activation:
    """A general K-level staircase activation."""
    return activation("staircase", thresholds=tuple(thresholds), levels=tuple(levels))


def from_expr(expr: sp.Expr | str) -> Activation:
    """An activation from a SymPy expression (or a string) in the single real variable ``x``.

    Floats in the expression are converted to exact rationals so that closed forms
    stay exact.

    Raises
    ------
    ParseError
        If the string cannot be parsed, or the expression has a free symbol other than ``x``.
    """
    if isinstance(expr, str):
        e = _parse_string(expr)
    else:
        try:
            e = sp.sympify(expr)
        except (sp.SympifyError, TypeError) as exc:
            raise ParseError(f"cannot convert {expr!r} to a SymPy expression: {exc}") from None
        # accept a plain (non-real) Symbol named x from user code
        e = e.subs({s: X for s in e.free_symbols if isinstance(s, sp.Symbol) and s.name == "x"})
        if isinstance(e, sp.Basic):
            check_supported(e)
            e = real_rewrites(e)
    # (a Symbol is also a SymPy Boolean, so test for Expr only: relations are not Expr)
    if not isinstance(e, sp.Expr):
        raise ParseError(f"'{expr}' is not a real-valued expression in x")
    others = sorted(str(s) for s in e.free_symbols if s != X)
    if others:
        raise ParseError(f"expression '{expr}' has symbol(s) {', '.join(others)}; only x is allowed")
    if e.has(sp.zoo, sp.nan, sp.oo, -sp.oo) or e.has(sp.I):
        raise ParseError(f"expression '{expr}' is not real-valued")
    if e.has(sp.Integral, sp.Derivative, sp.Sum):
        raise ParseError(f"expression '{expr}' contains an unevaluated integral, derivative or sum")
    e = sp.nsimplify(e, rational=True) if e.has(sp.Float) else e
    try:
        func = _lambdify(e)
    except (KeyError, NameError, TypeError, ValueError, AttributeError) as exc:
        # e.g. gamma(sign(x)): SymPy folds a pole to zoo, which has no NumPy/SciPy name
        raise ParseError(f"expression '{expr}' cannot be evaluated numerically "
                         f"({type(exc).__name__}: {str(exc)[:60]})") from None
    return Activation(name="expr", params=(), expr=e, func=func)


def _parse_string(text: str) -> sp.Expr:
    """Parse an expression string as data (:mod:`ntk_theory.safe_parse`: whitelist, no eval)."""
    return parse_expression(text)


def _split_top(s: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets."""
    out, depth, cur = [], 0, []
    for ch in s:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == sep and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _parse_number(fam: str, key: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ParameterError(f"{fam}: parameter '{key}' must be a number, got '{text}'") from None
    if not math.isfinite(v):
        raise ParameterError(f"{fam}: parameter '{key}' must be finite, got '{text}'")
    return v


def parse_activation(spec: str | Activation | sp.Expr) -> Activation:
    """Parse ``NAME``, ``NAME:k=v,k=v`` (lists as ``[a,b,c]`` or ``a;b;c``) or an expression in x.

    Examples
    --------
    >>> parse_activation("relu").name
    'relu'
    >>> parse_activation("staircase:thresholds=[-1,0,1],levels=[-2,-1,1,2]").staircase.jumps
    (1.0, 2.0, 1.0)
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, sp.Basic):
        return from_expr(spec)
    if not isinstance(spec, str):
        raise ParseError(f"cannot interpret {spec!r} as an activation")
    s = spec.strip()
    head, sep, tail = s.partition(":")
    key = _ALIASES.get(head.strip(), head.strip())
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", head.strip() or "-") and key in REGISTRY:
        fam = REGISTRY[key]
        params: dict[str, Any] = {}
        if sep and tail.strip():
            for item in _split_top(tail, ","):
                k, eq, v = item.partition("=")
                k, v = k.strip(), v.strip()
                if not eq or not k:
                    raise ParameterError(f"{key}: expected key=value, got '{item.strip()}'")
                if k in params:
                    raise ParameterError(f"{key}: parameter '{k}' given twice")
                if k in fam.list_params:
                    body = v[1:-1] if v.startswith("[") and v.endswith("]") else v
                    parts = [u for u in re.split(r"[;,]", body) if u.strip()]
                    params[k] = tuple(_parse_number(key, k, u.strip()) for u in parts)
                else:
                    params[k] = _parse_number(key, k, v)
        elif sep:
            raise ParameterError(f"{key}: empty parameter list after ':'")
        return fam.make(**params)
    if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", head.strip()) and "=" in tail:
        raise UnknownActivationError(
            f"unknown activation '{head.strip()}'" + (suggest(head.strip(), [*REGISTRY, *_ALIASES])
                                                      or f" (known: {', '.join(list_activations())})")
        )
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s) and s not in FUNCTIONS and s not in NAMES:
        hint = suggest(s, [*REGISTRY, *_ALIASES, *FUNCTIONS])
        raise UnknownActivationError(
            f"unknown activation '{s}'" + (hint or f" (known: {', '.join(list_activations())}; "
                                           "or give an expression in x)")
        )
    return from_expr(s)


#: A representative, valid parameter set for every family that needs parameters;
#: tests and benchmarks use :func:`example_activations` to cover the whole registry.
EXAMPLE_PARAMS: dict[str, dict[str, Any]] = {
    "polynomial": {"coeffs": (0.5, -1.0, 0.25, 0.125)},
    "sigma_T": {"s1": -1.0, "s2": 0.5, "a": 2.0},
    "sigma_Q": {"r1": -2.0, "r2": -0.5, "r3": 0.5, "r4": 2.0, "b1": 1.0, "b2": -1.0},
    "ternary": {"s": 0.7, "b": 1.0},
    "three_level": {"s1": -0.3, "s2": 0.8, "a1": -1.0, "a2": 2.0},
    "staircase": {"thresholds": (-1.5, -0.5, 0.5, 1.5), "levels": (-2.0, -1.0, 0.0, 1.0, 2.0)},
    "leaky_relu": {"slope": 0.1},
}


def example_activations() -> list[Activation]:
    """One instance of every registry family (parameters from :data:`EXAMPLE_PARAMS`)."""
    return [REGISTRY[n].make(**EXAMPLE_PARAMS.get(n, {})) for n in list_activations()]
