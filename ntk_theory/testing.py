"""Building blocks for property-based tests of NTK equivalence results.

This module is public: users of ntk-theory write their own property tests with it,
and the toolkit's own test-suite uses the same pieces.  It offers

* `Hypothesis <https://hypothesis.readthedocs.io>`_ **strategies**, each callable with
  no arguments and narrowed by keyword arguments:

  - :func:`activations` — registry entries with random valid parameters
    (docs/reference.rst §1, §6), random staircases and random expressions;
  - :func:`staircases` — random K-level piecewise-constant activations (docs/reference.rst §6);
  - :func:`expressions` — random SymPy expressions in ``x`` from a grammar of sums,
    products and compositions of elementary and special functions;
  - :func:`taus` — input scales τ > 0 (log-uniform);
  - :func:`gmm_specs` — Gaussian-mixture specifications (docs/reference.rst §2);
  - :func:`network_specs` — networks as lists of ``(activation, width)`` (docs/reference.rst §3);
  - :func:`smooth_activations` — C^∞ registry activations, optionally with a random
    input scale ``σ(c·x)``, for theory-vs-exact checks (docs/reference.rst §3, §5);
  - :func:`family_members` — random members of a compression family in scale-free
    coordinates, with the input scale they are drawn at (docs/reference.rst §6);
  - :func:`compressible_networks` — dense networks that a compression family can
    α-match at every layer, by construction (docs/reference.rst §6);

* **assertion helpers** whose tolerances follow the theory's rates:

  - :func:`assert_moments_close` — six Gaussian moments against another computation
    (engine, quadrature, Monte Carlo with its CLT standard errors);
  - :func:`assert_spectrally_equivalent` — two kernel matrices that the equivalence
    theorems (docs/reference.rst §5) or the finite-width fluctuations (docs/reference.rst §3) say are
    close, with a relative operator-norm tolerance ``c_theory/√p + c_width·√(n/d)``;

* **engine contract checks** used by the fuzzer (:func:`check_expectation`), and the
  settings profiles ``"ci"`` and ``"thorough"`` (:func:`register_profiles`).

It needs the ``hypothesis`` package (``pip install "ntk-theory[test]"``).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import mpmath as mp
import numpy as np
import sympy as sp

try:
    from hypothesis import assume, settings
    from hypothesis import strategies as st
except ImportError as _exc:  # pragma: no cover - exercised only without the test extra
    raise ImportError(
        "ntk_theory.testing needs the 'hypothesis' package: pip install \"ntk-theory[test]\""
    ) from _exc

from .activations import REGISTRY, Activation, X, from_expr, staircase
from .data import COVARIANCE_KINDS, GMMSpec, gmm
from .errors import NTKTheoryError, ParameterError
from .jump import MOMENT_KEYS

__all__ = [
    "activations",
    "staircases",
    "expressions",
    "hostile_texts",
    "check_text",
    "TextOutcome",
    "HOSTILE_TEXT_CLASSES",
    "taus",
    "gmm_specs",
    "network_specs",
    "smooth_activations",
    "SMOOTH_FAMILIES",
    "FamilyMember",
    "family_members",
    "CompressibleNetwork",
    "compressible_networks",
    "COMPRESSION_FAMILIES",
    "ODD_GROWING_FAMILIES",
    "registry_params",
    "assert_moments_close",
    "assert_spectrally_equivalent",
    "spectral_tolerance",
    "EngineOutcome",
    "check_expectation",
    "Hang",
    "watchdog",
    "register_profiles",
    "HOSTILE",
    "reference_expectation",
    "C_THEORY",
    "C_WIDTH",
]


# --------------------------------------------------------------------------- #
# Numbers
# --------------------------------------------------------------------------- #
def _decimals(lo: float, hi: float, places: int = 3) -> st.SearchStrategy[float]:
    """Floats in ``[lo, hi]`` with at most ``places`` decimals.

    Short decimals become small exact rationals in the activation's SymPy
    expression (``0.125 -> 1/8``), which keeps closed forms short; they shrink
    towards 0 (or the end of the range nearest 0).
    """
    k = 10**places
    return st.integers(math.ceil(lo * k), math.floor(hi * k)).map(lambda i: i / k)


def _nonzero(s: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    return s.filter(lambda v: v != 0)


def _increasing(n: int, lo: float, hi: float, places: int = 3) -> st.SearchStrategy[tuple[float, ...]]:
    """``n`` strictly increasing decimals in ``[lo, hi]``."""
    return st.lists(_decimals(lo, hi, places), min_size=n, max_size=n, unique=True).map(
        lambda v: tuple(sorted(v)))


def _rational(max_num: int = 8, den: int = 4, nonzero: bool = False) -> st.SearchStrategy[sp.Rational]:
    s = st.integers(-max_num, max_num)
    if nonzero:
        s = s.filter(lambda k: k != 0)
    return s.map(lambda k: sp.Rational(k, den))


def _positive_rational(max_num: int = 8, den: int = 4) -> st.SearchStrategy[sp.Rational]:
    return st.integers(1, max_num).map(lambda k: sp.Rational(k, den))


# --------------------------------------------------------------------------- #
# Scales
# --------------------------------------------------------------------------- #
def taus(min_value: float = 0.1, max_value: float = 10.0) -> st.SearchStrategy[float]:
    """Input scales τ, log-uniform in ``[min_value, max_value]`` (docs/reference.rst §1).

    Log-uniform because every moment depends on τ through ``t/τ`` and powers of τ:
    a decade near 0.1 matters as much as a decade near 10.
    """
    if not (0 < min_value <= max_value and math.isfinite(max_value)):
        raise ParameterError(f"need 0 < min_value <= max_value < inf, got {min_value}, {max_value}")
    if min_value == max_value:
        return st.just(float(min_value))
    lo, hi = math.log(min_value), math.log(max_value)
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False).map(
        lambda u: float(min(max(math.exp(u), min_value), max_value)))


# --------------------------------------------------------------------------- #
# Activations
# --------------------------------------------------------------------------- #
def staircases(
    *,
    min_levels: int = 2,
    max_levels: int = 6,
    threshold_range: float = 3.0,
    level_range: float = 3.0,
    odd: bool | None = None,
) -> st.SearchStrategy[Activation]:
    """Random K-level staircases (``staircase`` registry family, docs/reference.rst §6).

    Parameters
    ----------
    min_levels, max_levels : int
        Number of levels K (K − 1 thresholds).
    threshold_range, level_range : float
        Thresholds in ``[−threshold_range, threshold_range]``, levels in
        ``[−level_range, level_range]`` (three decimals).
    odd : bool, optional
        True: antisymmetric staircases (``σ(−x) = −σ(x)`` a.e.), whose ``E[s]`` and
        ``E[s'']`` vanish; False or None: unconstrained.
    """
    if not 2 <= min_levels <= max_levels:
        raise ParameterError(f"need 2 <= min_levels <= max_levels, got {min_levels}, {max_levels}")

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> Activation:
        if odd:
            # thresholds ±t_1..±t_m (and possibly 0); levels antisymmetric
            m = draw(st.integers(max(1, (min_levels - 1) // 2), max(1, (max_levels - 1) // 2)))
            pos = draw(_increasing(m, 0.05, threshold_range))
            with_zero = draw(st.booleans())
            ups = draw(st.lists(_decimals(-level_range, level_range), min_size=m + 1, max_size=m + 1))
            # levels on (t_k, t_{k+1}) for k = 0..m with t_0 = 0 (the last one beyond t_m)
            if with_zero:
                thresholds = tuple(-t for t in reversed(pos)) + (0.0,) + pos
                levels = tuple(-v for v in reversed(ups)) + tuple(ups)
            else:
                thresholds = tuple(-t for t in reversed(pos)) + pos
                levels = tuple(-v for v in reversed(ups[1:])) + (0.0,) + tuple(ups[1:])
        else:
            K = draw(st.integers(min_levels, max_levels))
            thresholds = draw(_increasing(K - 1, -threshold_range, threshold_range))
            levels = tuple(draw(st.lists(_decimals(-level_range, level_range), min_size=K, max_size=K)))
        assume(any(a != b for a, b in zip(levels, levels[1:])))  # at least one jump
        return staircase(thresholds, levels)

    return build()


def _family_params(name: str) -> st.SearchStrategy[dict[str, Any]] | None:
    """Parameter strategies of the registry families with constraints (valid by construction)."""
    d = _decimals
    if name == "leaky_relu":
        return st.fixed_dictionaries({"slope": d(0.0, 1.0)})
    if name == "linear":
        return st.fixed_dictionaries({"slope": d(-3.0, 3.0)})
    if name == "elu":
        return st.fixed_dictionaries({"alpha": d(0.0, 3.0)})
    if name in ("swish", "softplus"):
        return st.fixed_dictionaries({"beta": d(0.25, 4.0)})
    if name == "polynomial":
        return st.fixed_dictionaries({"coeffs": st.lists(d(-2.0, 2.0), min_size=1, max_size=5).map(tuple)})
    if name == "step":
        return st.fixed_dictionaries({"threshold": d(-3.0, 3.0)})
    if name == "sigma_T":
        return st.tuples(_increasing(2, -3.0, 3.0), _nonzero(d(-3.0, 3.0))).map(
            lambda v: {"s1": v[0][0], "s2": v[0][1], "a": v[1]})
    if name == "sigma_Q":
        return st.tuples(
            st.lists(d(-3.0, 3.0), min_size=4, max_size=4).map(sorted).filter(lambda r: r[0] < r[3]),
            d(-3.0, 3.0), d(-3.0, 3.0),
        ).map(lambda v: {"r1": v[0][0], "r2": v[0][1], "r3": v[0][2], "r4": v[0][3],
                         "b1": v[1], "b2": v[2]})
    if name == "ternary":
        return st.fixed_dictionaries({"s": d(0.05, 3.0), "b": _nonzero(d(-3.0, 3.0))})
    if name == "three_level":
        return st.tuples(_increasing(2, -3.0, 3.0), d(-3.0, 3.0), d(-3.0, 3.0)).map(
            lambda v: {"s1": v[0][0], "s2": v[0][1], "a1": v[1], "a2": v[2]})
    if name == "staircase":
        return staircases().map(lambda a: a.param_dict)
    return None


def registry_params(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Random valid parameters of the registry family ``name``.

    Families with constraints (``sigma_T``'s ``s1 < s2``, ``ternary``'s ``s > 0`` …)
    have dedicated strategies that are valid by construction.  Any other family —
    including families registered later — gets three-decimal numbers in ``[−3, 3]``
    for scalar parameters and 1–4 of them for list parameters, filtered by the
    family's own validation (:attr:`ActivationFamily.validate`).
    """
    if name not in REGISTRY:
        raise ParameterError(f"unknown activation family '{name}'")
    special = _family_params(name)
    if special is not None:
        return special
    fam = REGISTRY[name]
    if not fam.defaults:
        return st.just({})
    parts = {
        k: (st.lists(_decimals(-3.0, 3.0), min_size=1, max_size=4).map(tuple) if k in fam.list_params
            else _decimals(-3.0, 3.0))
        for k in fam.defaults
    }

    def valid(p: dict[str, Any]) -> bool:
        try:
            fam.make(**p)
        except ParameterError:
            return False
        return True

    return st.fixed_dictionaries(parts).filter(valid)


def _is_stair_family(name: str) -> bool:
    """Whether the registry family is piecewise constant (the jump formula applies)."""
    return REGISTRY[name].build_staircase is not None


def activations(
    *,
    families: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    kinds: Sequence[str] = ("registry", "staircase", "expression"),
    staircase_only: bool = False,
    continuous: bool = False,
    max_depth: int = 2,
) -> st.SearchStrategy[Activation]:
    """Random activations.

    Parameters
    ----------
    families : sequence of str, optional
        Registry families to draw from (default: all of :data:`~ntk_theory.activations.REGISTRY`).
    exclude : sequence of str
        Registry families never drawn.
    kinds : sequence of {"registry", "staircase", "expression"}
        ``registry``: a registry family with random valid parameters
        (:func:`registry_params`); ``staircase``: a random K-level staircase
        (:func:`staircases`); ``expression``: :func:`expressions` wrapped by
        :func:`~ntk_theory.activations.from_expr`.
    staircase_only : bool
        Only piecewise-constant activations (registry staircase families and
        random staircases).
    continuous : bool
        Only activations without jumps (no staircase families, expressions without
        ``Heaviside`` or discontinuous ``Piecewise``), so that ``E[s'^2]`` is finite
        and classical derivatives exist almost everywhere.
    max_depth : int
        Grammar depth of random expressions (see :func:`expressions`).
    """
    unknown = [k for k in kinds if k not in ("registry", "staircase", "expression")]
    if unknown or not kinds:
        raise ParameterError(f"kinds must be a non-empty subset of registry/staircase/expression, got {kinds}")
    names = sorted(REGISTRY) if families is None else list(families)
    bad = [n for n in names if n not in REGISTRY]
    if bad:
        raise ParameterError(f"unknown activation families {bad}")
    names = [n for n in names if n not in set(exclude)]
    if staircase_only:
        names = [n for n in names if _is_stair_family(n)]
    if continuous:
        names = [n for n in names if not _is_stair_family(n)]
    options: list[st.SearchStrategy[Activation]] = []
    if "registry" in kinds and names:
        options.append(st.sampled_from(names).flatmap(
            lambda n: registry_params(n).map(lambda p, n=n: REGISTRY[n].make(**p))))
    if "staircase" in kinds and not continuous:
        options.append(staircases())
    if "expression" in kinds and not staircase_only:
        options.append(expressions(continuous=continuous, max_depth=max_depth).map(from_expr))
    if not options:
        raise ParameterError("no activation matches these restrictions")
    return st.one_of(*options)


# --------------------------------------------------------------------------- #
# Expressions
# --------------------------------------------------------------------------- #
def _polynomial(max_degree: int = 3) -> st.SearchStrategy[sp.Expr]:
    return st.lists(_rational(), min_size=1, max_size=max_degree + 1).map(
        lambda cs: sp.Add(*[c * X**k for k, c in enumerate(cs)]))


def _leaves(hostile: Sequence[sp.Expr]) -> st.SearchStrategy[sp.Expr]:
    a, pos = _rational(nonzero=True), _positive_rational()
    leaves = [
        st.just(X),
        _rational(),
        _polynomial(),
        # exp of a quadratic with negative leading coefficient: -a x² + b x
        st.tuples(pos, _rational()).map(lambda v: sp.exp(-v[0] * X**2 + v[1] * X)),
        st.tuples(a, _rational()).map(lambda v: sp.erf(v[0] * X + v[1])),
    ]
    if hostile:
        leaves.append(st.sampled_from(tuple(hostile)))
    return st.one_of(*leaves)


#: Expressions outside the engine's comfort zone: super-Gaussian growth, poles,
#: integrable singularities, complex values, non-polynomial exponents.  Each must
#: either give a certified value or raise a documented NTKTheoryError.
HOSTILE: tuple[sp.Expr, ...] = (
    sp.exp(X**2 / 4),                 # diverges for τ ≥ √2
    sp.exp(X**2),                     # diverges for τ ≥ 1/√2
    sp.exp(X**3 / 10),                # non-polynomial tail: diverges at every τ
    1 / X,                            # pole: no principal values
    1 / (X - 1) ** 2,                 # non-integrable double pole
    1 / sp.sqrt(sp.Abs(X)),           # integrable singularity at 0
    sp.log(sp.Abs(X)),                # integrable log singularity
    sp.sqrt(X),                       # complex for x < 0
    sp.log(X),                        # complex for x < 0
    sp.tan(X),                        # poles on the real line
    sp.Abs(X) ** sp.Rational(1, 3),   # cusp
    sp.exp(sp.Abs(X)),                # fast but integrable growth
    sp.sign(X) * X**2,                # odd, C¹
    sp.floor(X),                      # infinitely many jumps
    sp.besselj(0, X),                 # special function outside the table
    1 / (1 + X**2),                   # Cauchy-type rational
)


def _compose(inner: sp.Expr, kind: str, a: sp.Rational, b: sp.Rational) -> sp.Expr:
    """Outer function applied to ``inner``; every outer map keeps polynomial growth."""
    if kind == "erf":
        return sp.erf(a * inner + b)
    if kind == "sin":
        return sp.sin(a * inner + b)
    if kind == "cos":
        return sp.cos(a * inner + b)
    if kind == "tanh":
        return sp.tanh(a * inner + b)
    if kind == "gauss":
        return sp.exp(-abs(a) * (inner - b) ** 2)
    if kind == "abs":
        return sp.Abs(inner - b)
    if kind == "max":
        return sp.Max(inner - b, a)
    if kind == "heaviside":
        return sp.Heaviside(inner - b)
    if kind == "square":
        return (inner - b) ** 2
    raise ValueError(kind)  # unreachable: kinds come from _OUTER


_OUTER = ("erf", "sin", "cos", "tanh", "gauss", "abs", "max", "heaviside", "square")
_DISCONTINUOUS = ("heaviside",)


def expressions(
    *,
    max_depth: int = 2,
    continuous: bool = False,
    special: bool = True,
    hostile: bool | Sequence[sp.Expr] = False,
    parity: str | None = None,
) -> st.SearchStrategy[sp.Expr]:
    """Random SymPy expressions in the real symbol :data:`~ntk_theory.activations.X`.

    Grammar (small rational constants ``a ≠ 0``, ``b``, ``c > 0``, quarters up to ±2)::

        leaf  := x | b | polynomial of degree ≤ 3 | exp(−c x² + b x) | erf(a x + b)
        expr  := leaf
               | expr + expr | expr · expr
               | erf(a·expr + b) | sin(a·expr + b) | cos(a·expr + b) | tanh(a·expr + b)
               | exp(−|a|(expr − b)²) | |expr − b| | max(expr − b, a) | (expr − b)²
               | Heaviside(expr − b)
               | Piecewise((expr, x < b), (expr, True))

    Every production keeps polynomial growth, so all Gaussian moments exist at
    every τ (except with ``hostile``).

    Parameters
    ----------
    max_depth : int
        Nesting depth of the grammar (0: leaves only).  Keep it small (≤ 2) for
        fast engine calls.
    continuous : bool
        Leave out ``Heaviside`` and ``Piecewise`` (which may jump).
    special : bool
        Allow ``erf``, ``tanh`` and Gaussian bumps (False: polynomials, ``sin``/``cos``,
        ``|·|`` and ``max`` only).
    hostile : bool or sequence of sympy.Expr
        True: also draw leaves from :data:`HOSTILE`, which the engine must refuse or
        treat with care (super-Gaussian growth, poles, complex values, cusps,
        ``floor``, Bessel functions) — for fuzzing.  A sequence: draw those leaves instead.
    parity : {"odd", "even"}, optional
        Return the odd part ``(f(x) − f(−x))/2`` or the even part ``(f(x) + f(−x))/2``.
    """
    if max_depth < 0:
        raise ParameterError(f"max_depth must be >= 0, got {max_depth}")
    if parity not in (None, "odd", "even"):
        raise ParameterError(f"parity must be 'odd', 'even' or None, got {parity!r}")
    outer = tuple(k for k in _OUTER
                  if not (continuous and k in _DISCONTINUOUS)
                  and (special or k not in ("erf", "tanh", "gauss")))
    extra: tuple[sp.Expr, ...] = HOSTILE if hostile is True else tuple(hostile or ())
    leaves = _leaves(extra) if special else st.one_of(st.just(X), _rational(), _polynomial())

    pw_ok = not continuous
    unary_arg = st.tuples(st.sampled_from(outer), _rational(nonzero=True), _rational())

    @st.composite
    def grow(draw: Callable[[st.SearchStrategy[Any]], Any], depth: int) -> sp.Expr:
        if depth == 0:
            return draw(leaves)
        kinds = ["leaf", "sum", "product", "compose"] + (["piecewise"] if pw_ok else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "leaf":
            return draw(leaves)
        if kind == "compose":
            return _compose(draw(grow(depth - 1)), *draw(unary_arg))
        left, right = draw(grow(depth - 1)), draw(grow(depth - 1))
        if kind == "sum":
            return left + right
        if kind == "product":
            return left * right
        return sp.Piecewise((left, X < draw(_rational())), (right, True))

    base = grow(max_depth)
    if parity == "odd":
        return base.map(lambda e: (e - e.subs(X, -X)) / 2)
    if parity == "even":
        return base.map(lambda e: (e + e.subs(X, -X)) / 2)
    return base


# --------------------------------------------------------------------------- #
# Data and networks
# --------------------------------------------------------------------------- #
def gmm_specs(
    *,
    p: tuple[int, int] = (2, 64),
    K: tuple[int, int] = (1, 3),
    cov_kinds: Sequence[str] = COVARIANCE_KINDS,
    mean_norm: tuple[float, float] = (0.0, 3.0),
) -> st.SearchStrategy[GMMSpec]:
    """Random K-class Gaussian mixtures (docs/reference.rst §2), built by :func:`ntk_theory.data.gmm`.

    Covariance scales are ``s_a = 1 + u_a/√p`` with ``u_a ∈ [−0.5, 2]`` (so
    ``t_a = O(1)`` as the regime requires) and class proportions are random positive
    weights normalised to one.

    Parameters
    ----------
    p, K : (int, int)
        Inclusive ranges of the dimension and the number of classes (``K ≤ p`` is enforced).
    cov_kinds : sequence of str
        Allowed covariance structures (see :class:`ntk_theory.data.GMMSpec`).
    mean_norm : (float, float)
        Range of ``‖μ_a‖``.
    """
    if not (1 <= p[0] <= p[1] and 1 <= K[0] <= K[1] and K[0] <= p[1]):
        raise ParameterError(f"invalid ranges p={p}, K={K}")
    bad = [k for k in cov_kinds if k not in COVARIANCE_KINDS]
    if bad or not cov_kinds:
        raise ParameterError(f"cov_kinds must be a non-empty subset of {COVARIANCE_KINDS}, got {cov_kinds}")

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> GMMSpec:
        pp = draw(st.integers(max(p[0], K[0]), p[1]))
        KK = draw(st.integers(K[0], min(K[1], pp)))
        kind = draw(st.sampled_from(tuple(cov_kinds)))
        norm = draw(_decimals(mean_norm[0], mean_norm[1], 2))
        u = draw(st.lists(_decimals(-0.5, 2.0, 2), min_size=KK, max_size=KK))
        w = draw(st.lists(st.integers(1, 6), min_size=KK, max_size=KK))
        seed = draw(st.integers(0, 2**31 - 1))
        props = [Fraction(v, sum(w)) for v in w]
        return gmm(pp, KK, mean_norm=norm, cov=kind,
                   cov_scales=[1.0 + v / math.sqrt(pp) for v in u],
                   proportions=[float(c) for c in props], seed=seed)

    return build()


def network_specs(
    *,
    layers: tuple[int, int] = (1, 3),
    widths: tuple[int, int] = (8, 256),
    activation: st.SearchStrategy[Activation] | None = None,
) -> st.SearchStrategy[list[tuple[Activation, int]]]:
    """Random fully connected networks as lists ``[(σ_1, d_1), …, (σ_L, d_L)]`` (docs/reference.rst §3).

    Parameters
    ----------
    layers : (int, int)
        Inclusive range of the depth L.
    widths : (int, int)
        Inclusive range of each width ``d_ℓ``.
    activation : strategy, optional
        Strategy for each layer's activation; default registry activations without
        jumps (``activations(kinds=("registry",), continuous=True)``), whose NTK is finite.
    """
    if not (1 <= layers[0] <= layers[1] and 1 <= widths[0] <= widths[1]):
        raise ParameterError(f"invalid ranges layers={layers}, widths={widths}")
    act = activation if activation is not None else activations(kinds=("registry",), continuous=True)
    layer = st.tuples(act, st.integers(widths[0], widths[1]))
    return st.lists(layer, min_size=layers[0], max_size=layers[1])


# --------------------------------------------------------------------------- #
# Smooth activations (theory vs exact kernels)
# --------------------------------------------------------------------------- #
#: Registry families that are C^∞ (no kinks, no jumps): every Hermite coefficient
#: exists classically and the exact kernels of docs/reference.rst §3 are finite for the NTK.
SMOOTH_FAMILIES: tuple[str, ...] = ("linear", "quadratic", "polynomial", "erf", "gelu", "tanh",
                                    "sigmoid", "swish", "softplus", "sin", "cos", "gaussian")


def smooth_activations(
    *,
    families: Sequence[str] = SMOOTH_FAMILIES,
    scale: tuple[float, float] | None = None,
) -> st.SearchStrategy[Activation]:
    """Random C^∞ activations: registry families of :data:`SMOOTH_FAMILIES` with random parameters.

    Parameters
    ----------
    families : sequence of str
        Subset of :data:`SMOOTH_FAMILIES` to draw from.
    scale : (float, float), optional
        Also draw an input scale ``c`` (a multiple of 1/8 in the range, ``c ≠ 0``) and return
        ``σ(c·x)`` (via :func:`~ntk_theory.activations.from_expr`).  By the scaling law
        (docs/reference.rst §1) this is σ seen at ``|c|τ``: a cheap way to vary the effective input
        scale of a network whose data has ``τ_0 ≈ 1``.
    """
    bad = [f for f in families if f not in SMOOTH_FAMILIES]
    if bad or not families:
        raise ParameterError(f"families must be a non-empty subset of {SMOOTH_FAMILIES}, got {list(families)}")
    base = activations(families=tuple(families), kinds=("registry",))
    if scale is None:
        return base
    lo, hi = scale
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise ParameterError(f"scale must satisfy 0 < lo <= hi < inf, got {scale}")
    cs = st.integers(math.ceil(8 * lo), math.floor(8 * hi)).map(lambda k: sp.Rational(k, 8))
    if not math.ceil(8 * lo) <= math.floor(8 * hi):
        raise ParameterError(f"scale range {scale} contains no multiple of 1/8")
    return st.tuples(base, cs).map(
        lambda v: v[0] if v[1] == 1 else from_expr(v[0].expr.subs(X, v[1] * X)))


# --------------------------------------------------------------------------- #
# Compression families (docs/reference.rst §6)
# --------------------------------------------------------------------------- #
#: Families of :func:`ntk_theory.compress.solve_alpha` (hidden layers) plus ``sigma_Q``
#: (the last-layer family of :func:`ntk_theory.compress.network.solve_last_layer_sigma_q`).
COMPRESSION_FAMILIES: tuple[str, ...] = ("ternary", "sigma_T", "three_level", "staircase:4",
                                         "staircase:5", "staircase:6", "sigma_Q")


@dataclass(frozen=True)
class FamilyMember:
    """A random member of a compression family, drawn at an input scale.

    Attributes
    ----------
    family : str
        Compression family name (:data:`COMPRESSION_FAMILIES`).
    activation : Activation
        The registry activation (uncentered), parameters in absolute units.
    tau : float
        The input scale τ it was drawn at: its thresholds are ``s = z·τ``.
    shape : tuple of float
        The scale-free thresholds ``z = s/τ`` (docs/reference.rst §6).
    """

    family: str
    activation: Activation
    tau: float
    shape: tuple[float, ...]


def family_members(
    *,
    families: Sequence[str] = COMPRESSION_FAMILIES,
    tau: st.SearchStrategy[float] | None = None,
    threshold_range: float = 4.0,
    amplitude_range: float = 3.0,
) -> st.SearchStrategy[FamilyMember]:
    """Random members of the compression families, in scale-free coordinates (docs/reference.rst §6).

    Each member is drawn the way the solvers of :mod:`ntk_theory.compress` parametrize
    the family, so that α-matching its own moments at its own ``tau`` has a solution:

    * ``ternary`` — ``b(1_{t>s} − 1_{t<−s})``, ``z = s/τ ∈ [0.05, R]``, ``b ≠ 0``;
    * ``sigma_T`` — ``a(1_{t<s1} + 1_{t>s2})``, ``z1 < z2`` in ``[−R, R]``, ``a ≠ 0``;
    * ``three_level`` and ``staircase:K`` — the solvers' symmetric slice: thresholds
      ``z·c_j`` (``c_j`` symmetric about 0) and jumps ``u + v·sign(c_j)``,
      ``(u, v) ≠ 0``, outermost threshold ``z·max|c_j| ≤ R``;
    * ``sigma_Q`` — ``b1(1_{t<r1} + 1_{t>r4}) + b2·1_{r2≤t≤r3}`` on the solver's
      middle-third slice (``r2, r3`` at a third and two thirds of ``[r1, r4]``).

    Parameters
    ----------
    families : sequence of str
        Subset of :data:`COMPRESSION_FAMILIES`.
    tau : strategy, optional
        Input scales (default :func:`taus` in ``[0.25, 4]``).
    threshold_range : float
        ``R``: the largest ``|z|`` of a threshold, in standard deviations of the input.
    amplitude_range : float
        Amplitudes ``a, b, u, v, b1, b2`` in ``[−amplitude_range, amplitude_range]``.
    """
    from .compress.families import parse_family

    bad = [f for f in families if f not in COMPRESSION_FAMILIES]
    if bad or not families:
        raise ParameterError(f"families must be a non-empty subset of {COMPRESSION_FAMILIES}, got {list(families)}")
    if not (threshold_range > 0.1 and math.isfinite(threshold_range) and amplitude_range > 0.01):
        raise ParameterError("threshold_range must be > 0.1 and finite, amplitude_range > 0.01")
    R, A = float(threshold_range), float(amplitude_range)
    tau_s = tau if tau is not None else taus(0.25, 4.0)
    amp = _nonzero(_decimals(-A, A))

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> FamilyMember:
        name = draw(st.sampled_from(tuple(families)))
        t = float(draw(tau_s))
        fam = parse_family(name)
        if name == "ternary":
            z = draw(_decimals(0.05, R))
            params: dict[str, Any] = {"s": z * t, "b": draw(amp)}
            shape: tuple[float, ...] = (-z, z)
        elif name == "sigma_T":
            z1, z2 = draw(_increasing(2, -R, R))
            params = {"s1": z1 * t, "s2": z2 * t, "a": draw(amp)}
            shape = (z1, z2)
        elif name == "sigma_Q":
            z1, z4 = draw(_increasing(2, -R, R))
            assume(z4 - z1 >= 0.03)  # the solver's grid resolves r4 − r1 ≥ 1e-3·τ; keep a margin
            r = (z1, z1 + (z4 - z1) / 3, z1 + 2 * (z4 - z1) / 3, z4)
            params = {"r1": r[0] * t, "r2": r[1] * t, "r3": r[2] * t, "r4": r[3] * t,
                      "b1": draw(amp), "b2": draw(_decimals(-A, A))}
            shape = r
        else:  # three_level, staircase:K: the symmetric slice of SymmetricQuantizer
            q = fam.quantizer
            cmax = max(abs(c) for c in q.offsets)
            z = draw(_decimals(0.05, R / cmax))
            u, v = draw(_decimals(-A, A)), draw(_decimals(-A, A))
            assume(u != 0 or v != 0)
            params = {k: (tuple(float(x) for x in w) if isinstance(w, (tuple, list)) else float(w))
                      for k, w in fam.params_from(z, u, v, t).items()}
            shape = tuple(z * c for c in q.offsets)
        return FamilyMember(name, fam.params_to_activation(params), t, tuple(float(x) for x in shape))

    return build()


@dataclass(frozen=True)
class CompressibleNetwork:
    """A dense network that ``family`` can α-match at every layer (docs/reference.rst §6).

    Attributes
    ----------
    activations : tuple of Activation
        The dense σ_1 … σ_L.
    tau0 : float
        The input scale τ_0.
    family : str
        The compression family to use at every layer.
    construction : {"odd", "canonical"}
        Why a solution exists (see :func:`compressible_networks`).
    """

    activations: tuple[Activation, ...]
    tau0: float
    family: str
    construction: str

    @property
    def L(self) -> int:
        return len(self.activations)

    def compress(self, **kwargs: Any) -> Any:
        """:func:`ntk_theory.compress.compress_network` of this network with its family."""
        from .compress import compress_network

        return compress_network(list(self.activations), self.tau0, family=self.family, **kwargs)


#: Odd registry families whose variance grows with τ (``w̄2 > 0``) and with ``E[σ'] ≠ 0``
#: at every τ: the ``odd`` construction of :func:`compressible_networks`.
ODD_GROWING_FAMILIES: tuple[str, ...] = ("linear", "tanh", "erf", "sin", "ternary")


def compressible_networks(
    *,
    families: Sequence[str] = ("ternary", "sigma_T", "three_level", "staircase:4"),
    layers: tuple[int, int] = (1, 3),
    tau0: st.SearchStrategy[float] | None = None,
    threshold_range: float = 2.5,
    constructions: Sequence[str] = ("odd", "canonical"),
) -> st.SearchStrategy[CompressibleNetwork]:
    """Dense networks that a compression family can α-match at every layer, by construction.

    α-matching layer ℓ happens at the *compressed* network's input scale τ'_{ℓ−1}, which
    differs from the dense τ_{ℓ−1} as soon as an earlier layer's solution has a different
    variance (docs/reference.rst §6), so a network is compressible only if every layer's targets
    stay reachable after that drift.  Two constructions guarantee it:

    ``odd`` (family ``ternary`` only)
        Every layer from :data:`ODD_GROWING_FAMILIES` with random parameters.  For an
        odd σ, ``E[σ] = E[σ''] = 0``, so the targets at any τ' are ``(τ'²m1², 0, τ'²w̄2)``
        and the one equation left is ``w̄2/m1² = z/(2φ(z))`` in the ternary's shape
        ``z = s/τ'`` — independent of τ'.  Its right side increases from 0 to ∞, so it has
        exactly one root whenever ``m1 ≠ 0`` and ``w̄2 > 0`` (the variance grows with τ,
        as it does for these families), at every layer and every depth.
    ``canonical`` (every family)
        Layer ℓ is a random member of the family (:func:`family_members`, thresholds
        within ``±threshold_range`` input standard deviations) drawn at the dense scale
        τ_{ℓ−1}, replaced by the solution :func:`~ntk_theory.compress.solve_alpha`
        returns for its own moments at τ_{ℓ−1} (the least-variance one).  The
        compressor then meets, at every layer, the same targets at the same scale
        (τ'_{ℓ−1} = τ_{ℓ−1} by induction) and the same solution exists; δ = 0 up to
        rounding.  Building it calls the solver: an ``InfeasibleError`` while drawing
        is a solver failure on a problem with a known solution, and is not filtered.

    Parameters
    ----------
    families : sequence of str
        Hidden-layer families (``ternary``, ``sigma_T``, ``three_level``, ``staircase:K``).
    layers : (int, int)
        Inclusive range of the depth L.
    tau0 : strategy, optional
        Input scales (default :func:`taus` in ``[0.5, 2]``).
    threshold_range : float
        Largest ``|z|`` of a drawn threshold for the canonical construction.
    constructions : sequence of {"odd", "canonical"}
        Allowed constructions (``odd`` applies to ``ternary`` only).
    """
    fams = [f for f in families if f != "sigma_Q"]
    bad = [f for f in fams if f not in COMPRESSION_FAMILIES]
    if bad or not fams or len(fams) != len(families):
        raise ParameterError(f"families must be a non-empty subset of {COMPRESSION_FAMILIES[:-1]}, "
                             f"got {list(families)}")
    if not (1 <= layers[0] <= layers[1]):
        raise ParameterError(f"invalid layers range {layers}")
    cons = tuple(constructions)
    if not cons or any(c not in ("odd", "canonical") for c in cons):
        raise ParameterError(f"constructions must be a non-empty subset of ('odd', 'canonical'), got {cons}")
    if cons == ("odd",) and "ternary" not in fams:
        raise ParameterError("the 'odd' construction needs the ternary family")
    tau0_s = tau0 if tau0 is not None else taus(0.5, 2.0)
    odd_layer = activations(families=ODD_GROWING_FAMILIES, kinds=("registry",)).filter(
        lambda a: a.name != "linear" or a.param_dict["slope"] != 0)

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> CompressibleNetwork:
        from .compress import dense_layer_moments, solve_alpha

        family = draw(st.sampled_from(tuple(fams)))
        options = [c for c in cons if c == "canonical" or family == "ternary"]
        construction = draw(st.sampled_from(options))
        L = draw(st.integers(layers[0], layers[1]))
        t0 = float(draw(tau0_s))
        if construction == "odd":
            acts = tuple(draw(odd_layer) for _ in range(L))
            return CompressibleNetwork(acts, t0, family, "odd")
        acts_l: list[Activation] = []
        t = t0
        for _ in range(L):
            m = draw(family_members(families=(family,), tau=st.just(t), threshold_range=threshold_range))
            d = dense_layer_moments(m.activation, t)
            fit = solve_alpha(family, d.targets, t)
            acts_l.append(fit.activation)
            t = math.sqrt(fit.variance)
        return CompressibleNetwork(tuple(acts_l), t0, family, "canonical")

    return build()


# --------------------------------------------------------------------------- #
# Assertion helpers
# --------------------------------------------------------------------------- #
def _moment_table(obj: Any) -> dict[str, tuple[float, float, bool]]:
    """``{key: (value, error, is_mc)}`` from GaussianMoments, MC estimates or a plain mapping.

    ``error`` is the absolute error estimate (engine) or the standard error (Monte Carlo).
    """
    out: dict[str, tuple[float, float, bool]] = {}
    if hasattr(obj, "moments") and hasattr(obj, "values"):  # GaussianMoments
        for m in obj.moments:
            out[m.key] = (float(m), float(m.abs_error), False)
        return out
    if not isinstance(obj, Mapping):
        raise ParameterError(f"cannot read moments from {type(obj).__name__}")
    for key, v in obj.items():
        if hasattr(v, "stderr") and hasattr(v, "mean"):  # MonteCarloEstimate
            out[str(key)] = (float(v.mean), float(v.stderr), True)
        elif hasattr(v, "abs_error") and hasattr(v, "value"):  # Moment / Expectation
            out[str(key)] = (float(v.value), float(v.abs_error), False)
        else:
            out[str(key)] = (float(v), 0.0, False)
    return out


def assert_moments_close(
    a: Any,
    b: Any,
    *,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    n_se: float = 5.0,
    error_factor: float = 10.0,
    keys: Sequence[str] | None = None,
) -> None:
    """Assert that two sets of Gaussian moments agree (docs/reference.rst §1).

    ``a`` and ``b`` may each be a :class:`~ntk_theory.moments.GaussianMoments`, a
    mapping of :class:`~ntk_theory.montecarlo.MonteCarloEstimate` (from
    :func:`~ntk_theory.montecarlo.monte_carlo_moments`), a mapping of ``Moment`` /
    ``Expectation`` objects or a mapping of plain numbers, keyed by
    :data:`~ntk_theory.jump.MOMENT_KEYS`.

    For each key the test is ::

        |a − b| ≤ atol + rtol·max(|a|, |b|) + error_factor·(err_a + err_b) + n_se·(se_a + se_b)

    where ``err`` is a reported absolute error estimate (engine results: the
    precision-doubling difference or the quadrature estimate, which are estimates,
    hence the safety ``error_factor``) and ``se`` a Monte Carlo standard error
    (a Gaussian CLT error beyond ``n_se = 5`` standard errors has probability 6e-7).
    Infinite moments (``E[s'^2]`` of a step) must be infinite on both sides with the
    same sign; NaN never passes.

    Raises
    ------
    AssertionError
        Listing every key that differs, with both values and the tolerance.
    """
    ta, tb = _moment_table(a), _moment_table(b)
    use = list(keys) if keys is not None else [k for k in MOMENT_KEYS if k in ta and k in tb]
    if not use:
        raise ParameterError("no common moment keys to compare")
    problems: list[str] = []
    for key in use:
        if key not in ta or key not in tb:
            problems.append(f"{key}: missing on one side")
            continue
        va, ea, mca = ta[key]
        vb, eb, mcb = tb[key]
        if math.isnan(va) or math.isnan(vb):
            problems.append(f"{key}: NaN ({va} vs {vb})")
            continue
        if math.isinf(va) or math.isinf(vb):
            if va != vb:
                problems.append(f"{key}: {va} vs {vb} (infinite on one side only)")
            continue
        se = (ea if mca else 0.0) + (eb if mcb else 0.0)
        err = (0.0 if mca else ea) + (0.0 if mcb else eb)
        tol = atol + rtol * max(abs(va), abs(vb)) + error_factor * err + n_se * se
        if not abs(va - vb) <= tol:
            problems.append(f"{key}: {va!r} vs {vb!r} differ by {abs(va - vb):.3g} > tolerance {tol:.3g}")
    if problems:
        raise AssertionError("moments differ: " + "; ".join(problems))


#: Default constant of the theory-vs-limit rate ``c_theory/√p`` (docs/reference.rst §5).  The
#: identity-term check (docs/identity_term.rst) measures a relative operator-norm error
#: 0.017 at n = 1200, p = 800 for one centered ReLU layer, i.e. a constant 0.48; the default leaves a factor ~4 for
#: deeper networks and other activations **whose variance is mostly linear** (first
#: Hermite share ``τ_{ℓ−1}²m1²/τ_ℓ² ≥ 1/2`` at every layer).  It is not uniform over
#: activations: for even σ (x², cos, Gaussian bumps) the measured constant at n = 240,
#: p = 160 is 3.5–4.3, and 8–12 for a polynomial dominated by x⁴
#: (``tests/test_properties_kernels.py``); pass a larger ``c_theory`` for those.
C_THEORY: float = 3.0

#: Default constant of the finite-width rate ``c_width·√(n/d)`` (docs/reference.rst §3).  For a
#: linear layer ``‖WᵀW/d − I‖ → 2√(n/d) + n/d ≤ 3√(n/d)`` when ``d ≥ n`` (Bai–Yin);
#: the width sweep of examples/ck_convergence.py measures about 0.72·√(n/d) relative
#: (‖CK − K_∞‖ ≈ 1.22·√(n/d) against ‖K_∞‖ ≈ 1.70) for a ReLU conjugate kernel.
C_WIDTH: float = 3.0


def spectral_tolerance(n: int, p: int, d: int | None = None, *,
                       c_theory: float = C_THEORY, c_width: float = C_WIDTH) -> float:
    """Relative operator-norm tolerance ``c_theory/√p + c_width·√(n/d)`` (second term only with ``d``).

    ``c_theory/√p`` is the rate of the equivalence theorems (docs/reference.rst §5,
    ``‖K − K̃‖ = O(p^{−1/2})`` in the regime ``n ~ p``); ``√(n/d)`` is the finite-width
    fluctuation of an empirical kernel of width ``d`` around its limit (docs/reference.rst §3).
    """
    for name, v in (("n", n), ("p", p)):
        if not (isinstance(v, (int, np.integer)) and v >= 1):
            raise ParameterError(f"{name} must be a positive integer, got {v!r}")
    if d is not None and not (isinstance(d, (int, np.integer)) and d >= 1):
        raise ParameterError(f"d must be a positive integer, got {d!r}")
    if not (c_theory >= 0 and c_width >= 0 and math.isfinite(c_theory) and math.isfinite(c_width)):
        raise ParameterError("c_theory and c_width must be finite and >= 0")
    tol = c_theory / math.sqrt(p)
    if d is not None:
        tol += c_width * math.sqrt(n / d)
    return tol


def assert_spectrally_equivalent(
    K1: np.ndarray,
    K2: np.ndarray,
    n: int,
    p: int,
    *,
    d: int | None = None,
    c_theory: float = C_THEORY,
    c_width: float = C_WIDTH,
    check_isolated: bool = False,
) -> Any:
    """Assert that ``K1`` is spectrally equivalent to the reference ``K2``.

    The relative operator-norm error ``‖K1 − K2‖/‖K2‖`` (from
    :func:`ntk_theory.spectral.compare_kernels`) must not exceed
    :func:`spectral_tolerance` ``(n, p, d)``.  By Weyl's inequality every eigenvalue
    then moves by at most that fraction of ``‖K2‖``, so histograms, quantiles and
    isolated eigenvalues agree to the same accuracy.

    Parameters
    ----------
    K1, K2 : ndarray, shape (n, n)
        Symmetric kernels; ``K2`` is the reference (e.g. the exact limiting kernel).
    n, p : int
        Sample size and data dimension (docs/reference.rst §2).  ``n`` must match the matrices.
    d : int, optional
        Width of the network when ``K1`` is an empirical kernel (adds ``c_width·√(n/d)``).
    c_theory, c_width : float
        Rate constants (defaults :data:`C_THEORY`, :data:`C_WIDTH`).
    check_isolated : bool
        Also require the same number of isolated eigenvalues
        (:func:`ntk_theory.spectral.isolated_count`).

    Returns
    -------
    ntk_theory.spectral.SpectralComparison
        The full comparison, for further checks.

    Raises
    ------
    AssertionError
        With the measured error and the tolerance.
    """
    from .spectral import compare_kernels

    A, B = np.asarray(K1, dtype=float), np.asarray(K2, dtype=float)
    if A.shape != (n, n) or B.shape != (n, n):
        raise ParameterError(f"kernels must be {n}×{n}, got {A.shape} and {B.shape}")
    for name, M in (("K1", A), ("K2", B)):
        if np.all(np.isfinite(M)) and not np.allclose(M, M.T, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(M).max())):
            raise AssertionError(f"{name} is not symmetric")
    tol = spectral_tolerance(n, p, d, c_theory=c_theory, c_width=c_width)
    cmp = compare_kernels(A, B, names=("K1", "K2"))
    msgs = []
    if not cmp.rel_opnorm <= tol:
        rate = f"{c_theory:g}/√p" + (f" + {c_width:g}·√(n/d)" if d is not None else "")
        msgs.append(f"relative operator-norm error {cmp.rel_opnorm:.4g} > tolerance {tol:.4g} "
                    f"({rate} at n={n}, p={p}" + (f", d={d}" if d is not None else "") + ")")
    if check_isolated and cmp.isolated_a != cmp.isolated_b:
        msgs.append(f"{cmp.isolated_a} isolated eigenvalues vs {cmp.isolated_b} in the reference")
    if msgs:
        raise AssertionError("kernels are not spectrally equivalent: " + "; ".join(msgs))
    return cmp


# --------------------------------------------------------------------------- #
# Independent reference
# --------------------------------------------------------------------------- #
def reference_expectation(
    f: sp.Expr | Callable[[np.ndarray], np.ndarray],
    tau: float,
    weight: str = "1",
    *,
    breakpoints: Sequence[float] = (),
    width: float = 20.0,
) -> tuple[float, float]:
    """``E[g(ξ) f(τξ)]`` by SciPy's QUADPACK in double precision: an independent check.

    Shares nothing with the engine (no SymPy integration, no mpmath): ``f`` is
    evaluated by a NumPy/SciPy ``lambdify`` (or is a NumPy callable) and integrated
    with :func:`scipy.integrate.quad` against the standard normal density on
    ``[−width, width]`` (the mass beyond ``|ξ| = 20`` is below ``10⁻⁸⁸`` times any
    polynomial of degree ≤ 50), split at ``breakpoints/τ`` and at the integers.

    Parameters
    ----------
    f : sympy.Expr or callable
        The integrand in :data:`~ntk_theory.activations.X`, or a vectorized function.
    tau : float
        Scale τ > 0.
    weight : {"1", "xi", "he2"}
        ``g(ξ) = 1``, ``ξ`` or ``ξ² − 1`` — the Stein weights of
        ``E[f]``, ``τ E[f']`` and ``τ² E[f'']`` (docs/reference.rst §1).
    breakpoints : sequence of float
        Points (in x) where ``f`` jumps or kinks.

    Returns
    -------
    (value, abs_error)
        QUADPACK's value and the sum of its error estimates.
    """
    from scipy import integrate

    from .activations import to_piecewise

    if callable(f) and not isinstance(f, sp.Basic):
        fn = f
    else:
        lam = sp.lambdify(X, to_piecewise(sp.sympify(f)), modules=["scipy", "numpy"])

        def fn(t: np.ndarray) -> np.ndarray:
            with np.errstate(all="ignore"):
                return np.asarray(lam(t), dtype=float)

    g = {"1": lambda z: 1.0, "xi": lambda z: z, "he2": lambda z: z * z - 1.0}[weight]
    c = 1.0 / math.sqrt(2.0 * math.pi)

    def integrand(z: float) -> float:
        return float(fn(np.asarray(tau * z))) * g(z) * c * math.exp(-z * z / 2.0)

    cuts = {float(-width), float(width)} | {float(k) for k in range(-int(width) + 1, int(width))}
    cuts |= {b / tau for b in breakpoints if -width < b / tau < width}
    nodes = sorted(cuts)
    total, err = 0.0, 0.0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        for lo, hi in zip(nodes, nodes[1:]):
            v, e = integrate.quad(integrand, lo, hi, epsabs=1e-14, epsrel=1e-12, limit=200)
            total += v
            err += e
    return total, err


# --------------------------------------------------------------------------- #
# Engine contract (fuzzing)
# --------------------------------------------------------------------------- #
class Hang(BaseException):
    """Raised by :func:`watchdog` when a call exceeds its wall-clock limit.

    A ``BaseException`` so that generic ``except Exception`` handlers inside the
    code under test cannot swallow it.
    """


@contextmanager
def watchdog(seconds: float) -> Iterator[bool]:
    """Raise :class:`Hang` in the block after ``seconds`` of wall-clock time.

    Uses ``SIGALRM``/``ITIMER_REAL``, independent of the engine's CPU-time budget
    (``ITIMER_PROF``), and fires again every 0.5 s until the block is left, since an
    exception raised while Python runs a gc callback or a finalizer is dropped.  Yields False
    (no watchdog) outside the main thread or on platforms without ``setitimer``.
    """
    if not (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()):
        yield False
        return

    def _fire(signum: int, frame: Any) -> None:  # noqa: ARG001
        raise Hang()

    old = signal.signal(signal.SIGALRM, _fire)
    # re-fire every 0.5 s: an exception raised inside a gc callback or a finalizer is
    # printed and dropped by Python, so a single shot could be lost
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.5)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


#: Outcome kinds that satisfy the engine's contract.
OK_KINDS = ("closed form", "numeric", "infinite", "typed error")


@dataclass(frozen=True)
class EngineOutcome:
    """What one call of the expectation engine did.

    Attributes
    ----------
    kind : str
        ``"closed form"``, ``"numeric"`` (quadrature), ``"infinite"`` (a divergent
        non-negative integrand reported as +inf), ``"typed error"`` (an
        :class:`~ntk_theory.errors.NTKTheoryError`) — the four allowed outcomes — or a
        contract violation: ``"nan"`` (NaN value or error estimate), ``"bad inf"``
        (infinite value where the integrand may change sign), ``"untyped error"``,
        ``"hang"`` (the watchdog fired).
    value : float
        The value (NaN when there is none).
    abs_error : float
        The reported error estimate.
    error : str
        Exception class name and message for errors, else "".
    seconds : float
        Wall-clock time of the call.
    """

    kind: str
    value: float
    abs_error: float
    error: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.kind in OK_KINDS


def check_expectation(
    f: sp.Expr,
    tau: float,
    order: int = 0,
    *,
    digits: int = 8,
    budget: float = 0.2,
    nonnegative: bool = False,
    timeout: float = 30.0,
) -> EngineOutcome:
    """Call :func:`ntk_theory.expectation.gaussian_expectation` and classify what happened.

    The contract: a result with its closed-form flag and a finite error
    estimate — never NaN, and ``+inf`` only for integrands declared non-negative —
    or a documented :class:`~ntk_theory.errors.NTKTheoryError`, within ``timeout``
    seconds of wall-clock time.
    """
    from .expectation import gaussian_expectation

    start = time.perf_counter()
    try:
        with watchdog(timeout):
            r = gaussian_expectation(f, tau, order, digits=digits, budget=budget, nonnegative=nonnegative)
    except Hang:
        return EngineOutcome("hang", math.nan, math.nan, f"no answer within {timeout:g} s",
                             time.perf_counter() - start)
    except NTKTheoryError as exc:
        return EngineOutcome("typed error", math.nan, math.nan, f"{type(exc).__name__}: {exc}",
                             time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer is looking for
        return EngineOutcome("untyped error", math.nan, math.nan, f"{type(exc).__name__}: {exc}",
                             time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if isinstance(r.value, mp.mpc):  # a complex "expectation" is a contract violation, not a crash
        return EngineOutcome("nan", math.nan, math.nan, f"complex value {r.value} ({r.method})", seconds)
    value = float(r.value) if not mp.isinf(r.value) else (math.inf if r.value > 0 else -math.inf)
    err = float(r.abs_error)
    if math.isnan(value) or math.isnan(err) or (math.isinf(err) and not math.isinf(value)):
        return EngineOutcome("nan", value, err, f"method {r.method}", seconds)
    if math.isinf(value):
        kind = "infinite" if (nonnegative and value > 0) else "bad inf"
        return EngineOutcome(kind, value, err, "", seconds)
    if r.closed_form != (r.expr is not None):  # pragma: no cover - dataclass invariant
        return EngineOutcome("untyped error", value, err, "closed_form flag inconsistent", seconds)
    return EngineOutcome("closed form" if r.closed_form else "numeric", value, err, "", seconds)


# --------------------------------------------------------------------------- #
# Hostile expression texts: parsing, size limits, certification
# --------------------------------------------------------------------------- #
#: The classes of :func:`hostile_texts`.
HOSTILE_TEXT_CLASSES = ("huge literal", "nested special", "non-dyadic pole", "incomplete piecewise",
                        "step high frequency", "big digits", "code execution")

_SPECIAL_1 = ("erf", "tanh", "sin", "cos", "exp", "atan", "asinh", "erfinv", "log", "sqrt", "abs",
              "LambertW", "gamma", "floor", "sign", "erfc", "sech", "cosh")


def _chr_text(code: str) -> str:
    return "+".join(f"chr({ord(c)})" for c in code)


def hostile_texts(canary: str = "/tmp/ntk_theory_fuzz_canary") -> st.SearchStrategy[tuple[str, str, int]]:
    """``(class, expression text, digits)`` drawn from :data:`HOSTILE_TEXT_CLASSES`.

    The expressions are *text*, so that the whole path — parser, size limits, engine —
    is exercised.  ``"code execution"`` payloads would create the file ``canary`` if any
    of them were evaluated as Python (the fuzz test and benchmark check that it never
    appears).  Digits are 8, except for the ``"big digits"`` class (50–200).
    """
    ints = st.integers
    p_q = st.tuples(ints(-9, 9), ints(3, 97).filter(lambda q: q & (q - 1) != 0))

    huge = st.one_of(
        ints(31, 400).map(lambda n: f"x*{'9' * n}"),
        ints(2, 12).map(lambda k: f"x*10**10**{k}"),
        ints(300, 100000).map(lambda e: f"x*1e{e}"),
        ints(20, 5000).map(lambda e: f"x*10**{e} + 1"),
        ints(2, 9).map(lambda k: f"x*factorial(10**{k})"),
        ints(2, 9).map(lambda k: f"x*N(pi, 10**{k})"),
        ints(2, 9).map(lambda k: f"x*gamma(10**{k})"),
        ints(10, 300).map(lambda n: "Max(" + ",".join(f"x-{i}" for i in range(n)) + ")"),
        ints(20, 300).map(lambda n: "+".join(f"{i + 1}*x**{i}" for i in range(n))),
        ints(10, 80).map(lambda n: "(" * n + "x" + ")" * n),
        ints(10, 80).map(lambda n: "sin(" * n + "x" + ")" * n),
        ints(41, 10**9).map(lambda n: f"x**{n}"),
        ints(2, 30).map(lambda n: "exp(" * n + "x" + ")" * n),
    )

    def nest(fs: list[str], a: int, b: int) -> str:
        e = f"({a}*x/4 + {b}/3)"
        for name in fs:
            e = f"besselj(0, {e})" if name == "besselj" else f"{name}({e})"
        return e

    special = st.builds(nest, st.lists(st.sampled_from(_SPECIAL_1 + ("besselj",)), min_size=2, max_size=4),
                        ints(-8, 8), ints(-3, 3))

    pole = st.one_of(
        p_q.map(lambda t: f"1/(x - {t[0]}/{t[1]})"),
        p_q.map(lambda t: f"x/(x**2 - {abs(t[0]) + 1}/{t[1]})"),
        p_q.map(lambda t: f"1/(x**3 - {t[0]}/{t[1]})"),
        st.tuples(p_q, st.sampled_from(("0.3", "0.5", "0.9", "1", "1.2", "2"))).map(
            lambda t: f"abs(x - {t[0][0]}/{t[0][1]})**(-{t[1]})"),
        p_q.map(lambda t: f"log(abs(x - {t[0]}/{t[1]}))"),
        p_q.map(lambda t: f"sin(1/(x - {t[0]}/{t[1]}))"),
        p_q.map(lambda t: f"exp(-1/(x - {t[0]}/{t[1]})**2)"),
    )

    cond = st.sampled_from(("x < 0", "x > 1/3", "(x > -1) & (x < 2/7)", "x**2 < 2", "erf(x) > 1/5"))
    val = st.sampled_from(("x", "x**2", "1", "sin(x)", "exp(x)", "erf(x)"))
    piecewise = st.lists(st.tuples(val, cond), min_size=1, max_size=3).map(
        lambda prs: "Piecewise(" + ", ".join(f"({v}, {c})" for v, c in prs) + ")")

    steps = st.tuples(st.sampled_from(("floor", "ceiling", "frac")), ints(1, 10**7), ints(-5, 5)).map(
        lambda t: f"{t[0]}({t[1]}*x + {t[2]}/7)")

    big = st.sampled_from(("sin(x)", "tanh(x)", "x*erf(x)", "sin(1/x)", "floor(3*x)", "sin(20*x)",
                           "log(1 + exp(x))", "abs(x)**(-0.5)", "cos(x**2)", "x/(1+x**2)"))

    target = canary
    code = st.sampled_from((
        f"x*eval({_chr_text(f'open({target!r}, chr(119))')})",
        f"eval({_chr_text(f'open({target!r}, chr(119))')})",
        f"exec({_chr_text(f'open({target!r}, chr(119))')})",
        f"__import__('os').system('touch {target}')",
        f"open('{target}', 'w')",
        "x.__class__.__mro__[1].__subclasses__()",
        f"(lambda: open('{target}', 'w'))()",
        f"getattr(__builtins__, 'open')('{target}', 'w')",
        "x*len(input())",
        f"x + 0*sympify({_chr_text(f'open({target!r}, chr(119))')})",
        f"S({_chr_text(f'open({target!r}, chr(119))')})",
        "x.func(x)",
        "Lambda(x, x)(x)",
        f"f'{{open({target!r})}}'",
        "x if x else x",
        "[x for x in x]",
        f"x; open('{target}', 'w')",
        f"Symbol('{target}')",
        "x\\nimport os",
        "x.evalf(10**9)",
    ))

    def tag(name: str, strat: st.SearchStrategy[str], digits: st.SearchStrategy[int] = st.just(8)):
        return st.tuples(st.just(name), strat, digits)

    return st.one_of(
        tag("huge literal", huge),
        tag("nested special", special),
        tag("non-dyadic pole", pole),
        tag("incomplete piecewise", piecewise),
        tag("step high frequency", steps),
        tag("big digits", big, st.sampled_from((50, 100, 200))),
        tag("code execution", code),
    )


@dataclass(frozen=True)
class TextOutcome:
    """What parsing a hostile text and computing one moment did (:func:`check_text`).

    ``kind`` is an :data:`OK_KINDS` outcome, or ``"code execution"`` (the canary file
    appeared), ``"nan"``, ``"bad inf"``, ``"untyped error"``, ``"hang"``.
    """

    kind: str
    value: float
    abs_error: float
    error: str
    seconds: float
    expr: sp.Expr | None = None

    @property
    def ok(self) -> bool:
        return self.kind in OK_KINDS


def check_text(text: str, tau: float = 1.0, order: int = 0, *, square: bool = False, digits: int = 8,
               budget: float = 0.2, timeout: float = 60.0,
               canary: str = "/tmp/ntk_theory_fuzz_canary") -> TextOutcome:
    """Parse ``text`` (:func:`ntk_theory.activations.parse_activation`) and compute one
    moment, ``E[σ^{(order)}(τξ)]`` or (``square``) ``E[σ(τξ)²]``, classifying the outcome.

    Parsing counts against the same wall-clock ``timeout``; a ``canary`` file created
    during the call is a ``"code execution"``.
    """
    import os

    from .activations import parse_activation

    start = time.perf_counter()
    existed = os.path.exists(canary)
    expr = None
    try:
        with watchdog(timeout):
            expr = parse_activation(text).expr
    except Hang:
        return TextOutcome("hang", math.nan, math.nan, f"parsing took more than {timeout:g} s",
                           time.perf_counter() - start)
    except NTKTheoryError as exc:
        kind = "typed error"
        if not existed and os.path.exists(canary):
            kind = "code execution"
        return TextOutcome(kind, math.nan, math.nan, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001
        return TextOutcome("untyped error", math.nan, math.nan, f"{type(exc).__name__}: {exc}",
                           time.perf_counter() - start)
    if not existed and os.path.exists(canary):
        return TextOutcome("code execution", math.nan, math.nan, text, time.perf_counter() - start)
    f, nonneg = (sp.piecewise_fold(expr**2), True) if square else (expr, False)
    left = max(timeout - (time.perf_counter() - start), 0.1)
    out = check_expectation(f, tau, 0 if square else order, digits=digits, budget=budget,
                            nonnegative=nonneg, timeout=left)
    kind = out.kind
    if not existed and os.path.exists(canary):
        kind = "code execution"
    return TextOutcome(kind, out.value, out.abs_error, out.error, time.perf_counter() - start, f)


# --------------------------------------------------------------------------- #
# Settings profiles
# --------------------------------------------------------------------------- #
def register_profiles() -> None:
    """Register the Hypothesis profiles ``"ci"`` and ``"thorough"``.

    ``ci``: 20 examples per property, derandomized (the same examples every run, so
    CI never flakes), no per-example deadline (engine calls take from microseconds to
    the symbolic budget; the fuzzer uses its own :func:`watchdog`).
    ``thorough``: 400 examples, random seeds, for nightly-style runs
    (``pytest --hypothesis-profile thorough``).
    """
    from hypothesis import HealthCheck

    common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    settings.register_profile("ci", max_examples=20, derandomize=True, print_blob=True, **common)
    settings.register_profile("thorough", max_examples=400, print_blob=True, **common)


# --------------------------------------------------------------------------- #
# NN-BCD (ntk_theory.bcd): tiny training problems, hyperparameters, weight matrices
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, eq=False)
class BCDProblem:
    """A tiny NN-BCD training problem: inputs ``X`` (``p × n``), integer ``labels``
    (every class ``0..K−1`` present), hidden widths and an initialization seed."""

    X: np.ndarray
    labels: np.ndarray
    hidden: tuple[int, ...]
    seed: int

    @property
    def K(self) -> int:
        return int(self.labels.max()) + 1

    @property
    def widths(self) -> tuple[int, ...]:
        return (int(self.X.shape[0]),) + self.hidden + (self.K,)


def bcd_hyperparameters(lo: float = 0.05, hi: float = 50.0) -> st.SearchStrategy[Any]:
    """NN-BCD's ``(γ, ρ, α, τ)``, each log-uniform in ``[lo, hi]`` (every positive
    value is valid: the method's monotone decrease holds for all of them)."""
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise ParameterError(f"need 0 < lo <= hi < inf, got {lo}, {hi}")
    from .bcd import BCDHyperparameters

    logs = st.integers(0, 1000).map(lambda k: lo * (hi / lo) ** (k / 1000))
    return st.builds(BCDHyperparameters, logs, logs, logs, logs)


def bcd_problems(
    *,
    p: tuple[int, int] = (2, 6),
    n: tuple[int, int] = (3, 12),
    K: tuple[int, int] = (2, 3),
    depth: tuple[int, int] = (0, 2),
    widths: tuple[int, int] = (2, 6),
) -> st.SearchStrategy[BCDProblem]:
    """Tiny NN-BCD problems: Gaussian inputs (seeded), balanced-ish random labels
    covering every class, ``depth`` hidden ReLU layers (0 = a linear model).

    All ranges are inclusive; ``n ≥ K`` is enforced.
    """
    if not (1 <= p[0] <= p[1] and 1 <= n[0] <= n[1] and 1 <= K[0] <= K[1] and 0 <= depth[0] <= depth[1]
            and 1 <= widths[0] <= widths[1] and K[0] <= n[1]):
        raise ParameterError(f"invalid ranges p={p}, n={n}, K={K}, depth={depth}, widths={widths}")

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> BCDProblem:
        pp = draw(st.integers(*p))
        KK = draw(st.integers(K[0], min(K[1], n[1])))
        nn = draw(st.integers(max(n[0], KK), n[1]))
        hidden = tuple(draw(st.lists(st.integers(*widths), min_size=depth[0], max_size=depth[1])))
        seed = draw(st.integers(0, 2**31 - 1))
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((pp, nn)) / math.sqrt(pp)
        labels = np.concatenate([np.arange(KK), rng.integers(0, KK, size=nn - KK)]).astype(np.int64)
        return BCDProblem(X=X, labels=labels, hidden=hidden, seed=int(draw(st.integers(0, 1000))))

    return build()


def weight_matrices(
    *,
    rows: tuple[int, int] = (1, 8),
    cols: tuple[int, int] = (1, 8),
    distinct: bool = False,
) -> st.SearchStrategy[np.ndarray]:
    """Float64 matrices with entries in ``[−10, 10]`` (multiples of 1/64, so ties and
    zeros occur unless ``distinct=True``, which also excludes zero)."""
    if not (1 <= rows[0] <= rows[1] and 1 <= cols[0] <= cols[1]):
        raise ParameterError(f"invalid ranges rows={rows}, cols={cols}")

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> np.ndarray:
        m = draw(st.integers(*rows))
        c = draw(st.integers(*cols))
        ints = st.integers(-640, 640)
        if distinct:
            vals = draw(st.lists(ints.filter(lambda v: v != 0), min_size=m * c, max_size=m * c,
                                 unique_by=abs))
        else:
            vals = draw(st.lists(ints, min_size=m * c, max_size=m * c))
        return np.asarray(vals, dtype=float).reshape(m, c) / 64.0

    return build()


def sparsities(max_value: float = 0.99) -> st.SearchStrategy[float]:
    """Pruning sparsities ε in ``[0, max_value]`` (three decimals)."""
    if not 0 <= max_value < 1:
        raise ParameterError(f"max_value must lie in [0, 1), got {max_value}")
    return _decimals(0.0, max_value, 3)


__all__ += ["BCDProblem", "bcd_hyperparameters", "bcd_problems", "weight_matrices", "sparsities"]
