"""The six Gaussian moments of an activation at input scale τ (docs/reference.rst §1).

=================  ==========================  =========
key                definition                  attribute
=================  ==========================  =========
``E[s]``           E[σ(τξ)]                    ``m0``
``E[s']``          E[σ'(τξ)]                   ``m1``
``E[s'']``         E[σ''(τξ)]                  ``m2``
``E[s^2]``         E[σ(τξ)²]                   ``v0``
``E[s'^2]``        E[σ'(τξ)²]                  ``v1``
``E[(s^2)'']``     E[(σ²)''(τξ)]               ``w2``
=================  ==========================  =========

Derivatives are weak: ``E[s']``, ``E[s'']`` and ``E[(s^2)'']`` come from Stein's
lemma (no Dirac deltas), staircases use the jump formula, and ``E[s'^2]`` of an
activation with a jump is ``+inf``.  With ``centered=True`` the moments are those
of σ̄ = σ − E[σ(τξ)]: ``E[s̄] = 0``, ``E[s̄²] = Var``, ``E[(s̄²)''] = w2 − 2 m0 m2``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import mpmath as mp
import sympy as sp

from .activations import Activation, X, derivative_expr, parse_activation, to_piecewise
from .errors import DivergenceError, NTKTheoryError, NumericalError, ParameterError
from .expectation import (
    CALLS_PER_SECOND,
    TAU,
    Expectation,
    NotCovered,
    derivation_work,
    derive_closed_form,
    evaluate_closed_form,
    gaussian_expectation,
    pieces,
    validate_tau,
)
from .jump import MOMENT_KEYS, staircase_moment_exprs

__all__ = ["MOMENT_KEYS", "Moment", "GaussianMoments", "gaussian_moments", "moment_closed_forms", "has_jump"]

_LATEX_NAMES = {
    "E[s]": r"\mathbb{E}[\sigma]",
    "E[s']": r"\mathbb{E}[\sigma']",
    "E[s'']": r"\mathbb{E}[\sigma'']",
    "E[s^2]": r"\mathbb{E}[\sigma^2]",
    "E[s'^2]": r"\mathbb{E}[\sigma'^2]",
    "E[(s^2)'']": r"\mathbb{E}[(\sigma^2)'']",
}


@dataclass(frozen=True)
class Moment(Expectation):
    """One Gaussian moment: an :class:`~ntk_theory.expectation.Expectation` with its name.

    Attributes
    ----------
    key : str
        One of :data:`MOMENT_KEYS`.
    value, abs_error, expr, method
        As in :class:`~ntk_theory.expectation.Expectation`: the value at the requested
        precision (``mp.inf`` for an infinite ``E[s'^2]``), its estimated absolute
        error, the closed form in ``tau`` or None, and how it was obtained.
    """

    key: str = ""

    @property
    def latex(self) -> str | None:
        """The closed form in τ as LaTeX (``\\infty`` for an infinite moment), or None."""
        if self.is_infinite:
            return r"\infty"
        return sp.latex(self.expr) if self.expr is not None else None


@dataclass(frozen=True)
class GaussianMoments:
    """The six moments of one activation at one scale.

    Use the attributes ``m0, m1, m2, v0, v1, w2`` (floats) in numerical code, and
    :attr:`moments` for values at full precision, error estimates and closed forms.
    """

    activation: Activation
    tau: float
    centered: bool
    digits: int
    moments: tuple[Moment, ...]
    seconds: float

    # -- access --------------------------------------------------------------- #
    def __getitem__(self, key: str) -> Moment:
        for m in self.moments:
            if m.key == key:
                return m
        raise KeyError(key)

    @property
    def m0(self) -> float:
        """``E[σ(τξ)]`` as a float."""
        return float(self["E[s]"])

    @property
    def m1(self) -> float:
        """``E[σ'(τξ)]`` as a float."""
        return float(self["E[s']"])

    @property
    def m2(self) -> float:
        """``E[σ''(τξ)]`` as a float."""
        return float(self["E[s'']"])

    @property
    def v0(self) -> float:
        """``E[σ(τξ)²]`` as a float."""
        return float(self["E[s^2]"])

    @property
    def v1(self) -> float:
        """``E[σ'(τξ)²]`` as a float (``inf`` when σ jumps)."""
        return float(self["E[s'^2]"])

    @property
    def w2(self) -> float:
        """``E[(σ²)''(τξ)]`` as a float."""
        return float(self["E[(s^2)'']"])

    @property
    def values(self) -> dict[str, float]:
        """Moments as floats keyed by :data:`MOMENT_KEYS` (``inf`` where infinite)."""
        return {m.key: float(m) for m in self.moments}

    @cached_property
    def centered_moments(self) -> dict[str, Moment]:
        """The moments of ``σ̄ = σ − E[σ(τξ)]`` at full precision, keyed by :data:`MOMENT_KEYS`.

        Closed forms of ``v0 − m0²`` and ``w2 − 2 m0 m2`` are evaluated and certified as
        closed forms: subtracting the values cancels catastrophically when
        ``Var ≪ E[σ]²`` (cos at τ = 1e−4: Var ≈ τ⁴/2 against E[σ]² ≈ 1).  The
        result's own moments when it is already centered.
        """
        ms = self.moments if self.centered else _center(list(self.moments), self.tau, self.digits)
        return {m.key: m for m in ms}

    @property
    def variance(self) -> float:
        """``Var σ(τξ) = E[s^2] − E[s]²`` (equals ``E[s^2]`` when centered), without cancellation
        when both are closed forms."""
        return float(self.centered_moments["E[s^2]"].value)

    @property
    def w2_bar(self) -> float:
        """``E[(σ̄²)''] = E[(s^2)''] − 2 E[s] E[s'']`` (docs/reference.rst §1, Centering)."""
        return float(self.centered_moments["E[(s^2)'']"].value)

    @property
    def closed_form(self) -> bool:
        """True when every finite moment came from a closed form."""
        return all(m.closed_form for m in self.moments if not m.is_infinite)

    @property
    def latex(self) -> dict[str, str | None]:
        return {m.key: m.latex for m in self.moments}

    # -- output --------------------------------------------------------------- #
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (``inf`` stays a float; the CLI writes it as ``"inf"``; a
        finite value beyond float64 is a string such as ``"1.2345678901234567e+400"``)."""
        from .io import huge_number

        d: dict[str, Any] = {
            "activation": self.activation.spec,
            "tau": self.tau,
            "centered": self.centered,
            "closed_form": self.closed_form,
            # float64, or a decimal string for a finite value beyond float64's range
            "moments": {m.key: huge_number(m.value) for m in self.moments},
            "latex": self.latex,
            "abs_error": {m.key: huge_number(m.abs_error) for m in self.moments},
            "method": {m.key: m.method for m in self.moments},
        }
        if self.digits > 15:
            d["moments_text"] = {m.key: (mp.nstr(m.value, self.digits) if not m.is_infinite else "inf")
                                 for m in self.moments}
        return d

    def _repr_html_(self) -> str:
        """Notebook display as an HTML table (:func:`ntk_theory.display.moments_html`)."""
        from .display import moments_html

        return moments_html(self)

    def _repr_latex_(self) -> str:
        rows = []
        for m in self.moments:
            val = r"\infty" if m.is_infinite else mp.nstr(m.value, min(self.digits, 15))
            form = m.latex if m.closed_form and not m.is_infinite else r"\text{numeric}"
            rows.append(f"{_LATEX_NAMES[m.key]} & {form} & {val} \\\\")
        head = (rf"\text{{{self.activation.spec}}},\ \tau = {self.tau:g}"
                + (r"\ (\text{centered})" if self.centered else ""))
        return ("$$" + head + r"\qquad\begin{array}{lll}" + " ".join(rows) + r"\end{array}$$")

    def __repr__(self) -> str:
        vals = ", ".join(f"{k}={_short(float(self[k]))}" for k in MOMENT_KEYS)
        return (f"GaussianMoments({self.activation.spec!r}, tau={self.tau:g}, "
                f"centered={self.centered}, closed_form={self.closed_form}, {vals})")


def _short(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.10g}"


# --------------------------------------------------------------------------- #
def has_jump(f: sp.Expr) -> bool:
    """Whether ``f`` has a jump discontinuity on the real line (then ``E[σ'²] = +∞``)."""
    for atom in f.atoms(sp.floor, sp.ceiling, sp.frac):
        if atom.args[0].has(X):
            return True  # integer-valued steps of a non-constant argument
    try:
        ps = pieces(f)
    except NotCovered:
        return False
    for (g1, _a1, b1), (g2, a2, _b2) in zip(ps, ps[1:]):
        if b1 != a2 or not b1.is_finite:
            continue
        try:
            left = sp.limit(g1, X, b1, "-") if g1.has(X) else g1
            right = sp.limit(g2, X, b1, "+") if g2.has(X) else g2
        except Exception:  # noqa: BLE001 - SymPy limit failures: leave it to quadrature
            continue
        if not (left.is_finite and right.is_finite):
            continue  # a singularity, not a jump: E[σ'²] is decided by quadrature
        diff = sp.N(left - right, 30)
        if diff.is_number and diff.is_finite and abs(diff) > sp.Float("1e-25"):
            return True
    return False


#: Largest symbolic budget accepted (one day): far beyond any derivation, and inside
#: what the work counter and the safety timer can represent.
MAX_BUDGET = 86400.0


def _validate_digits(digits: int) -> int:
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 200:
        raise ParameterError(f"digits must be an integer between 1 and 200, got {digits!r}")
    return digits


def _moment(key: str, e: Expectation) -> Moment:
    return Moment(e.value, e.abs_error, e.expr, e.method, key=key)


def gaussian_moments(
    act: Activation | str | sp.Expr,
    tau: float = 1.0,
    *,
    centered: bool = False,
    digits: int = 15,
    budget: float = 2.0,
    symbolic: bool = True,
) -> GaussianMoments:
    """The six Gaussian moments of ``act`` at input scale ``tau`` (docs/reference.rst §1).

    Parameters
    ----------
    act : Activation, str or sympy.Expr
        A registry activation, a specification such as ``"sigma_T:s1=-1,s2=0.5"`` or an
        expression in ``x``.
    tau : float
        Input scale, finite and > 0 (tested from 1e-4 to 1e4).
    centered : bool
        Moments of σ̄ = σ − E[σ(τξ)] instead of σ.
    digits : int
        Significant digits to certify (1–200).
    budget : float
        Symbolic work allowed for this activation (shared by the six moments) before
        falling back to quadrature, in work-counted seconds (Python calls divided by
        :data:`~ntk_theory.expectation.CALLS_PER_SECOND`: deterministic, independent
        of the machine's load); at most :data:`MAX_BUDGET`.
    symbolic : bool
        False skips closed forms (quadrature only).

    Returns
    -------
    GaussianMoments

    Raises
    ------
    ParseError, ParameterError
        Bad activation specification.
    DomainError
        ``tau`` not finite or not > 0.
    DivergenceError
        A moment other than ``E[s'^2]`` does not exist.
    """
    a = parse_activation(act)
    tau = validate_tau(tau)
    digits = _validate_digits(digits)
    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and 0 <= budget <= MAX_BUDGET):
        raise ParameterError(f"budget must be a number of seconds in [0, {MAX_BUDGET:g}], got {budget!r}")
    start = time.perf_counter()
    if a.staircase is not None:
        exprs = staircase_moment_exprs(a.staircase, TAU)
        ms = []
        for key in MOMENT_KEYS:
            e = exprs[key]
            if e == sp.oo:
                ms.append(Moment(mp.inf, 0.0, None, "infinite (jump)", key=key))
            else:
                v, err = evaluate_closed_form(e, tau, digits) if e.has(TAU) else (mp.mpf(sp.N(e, digits + 10)), 0.0)
                ms.append(Moment(v, err, e, "jump formula", key=key))
    else:
        # the budget is work counted by the derivations (deterministic, load-independent)
        work_start = derivation_work()

        def E(key: str, g: sp.Expr, order: int, nonneg: bool = False) -> Moment:
            remaining = budget - (derivation_work() - work_start) / CALLS_PER_SECOND
            try:
                e = gaussian_expectation(g, tau, order, digits=digits, budget=max(remaining, 0.0),
                                         nonnegative=nonneg, symbolic=symbolic and remaining > 0)
            except DivergenceError as exc:
                raise DivergenceError(f"{key} of {a.spec} does not exist: {exc}") from None
            return _moment(key, e)

        ms = [Moment(mp.inf, 0.0, None, "infinite (jump)", key=key) if g == sp.oo else E(key, g, order, nonneg)
              for key, g, order, nonneg in _moment_integrands(a.expr)]
    if centered:
        ms = _center(ms, tau, digits)
    return GaussianMoments(a, tau, bool(centered), digits, tuple(ms), time.perf_counter() - start)


def _moment_integrands(f: sp.Expr) -> list[tuple[str, sp.Expr, int, bool]]:
    """``(key, integrand, order, non-negative)`` for the six moments of ``f``; ``E[s'^2]`` is
    ``(key, oo, 0, True)`` when ``f`` jumps."""
    f2 = sp.piecewise_fold(to_piecewise(f) ** 2)
    jobs = [("E[s]", f, 0, False), ("E[s']", f, 1, False), ("E[s'']", f, 2, False), ("E[s^2]", f2, 0, False)]
    if has_jump(f):
        jobs.append(("E[s'^2]", sp.oo, 0, True))
    else:
        d = derivative_expr(f)
        if d.has(sp.Derivative):
            raise NumericalError(f"E[s'^2] of {f}: SymPy cannot differentiate {d}")
        jobs.append(("E[s'^2]", sp.piecewise_fold(to_piecewise(d) ** 2), 0, True))
    jobs.append(("E[(s^2)'']", f2, 2, False))
    return jobs


def moment_closed_forms(act: Activation | str | sp.Expr, *, budget: float = 2.0) -> dict[str, sp.Expr] | None:
    """Closed forms in :data:`~ntk_theory.expectation.TAU` of the six moments, or None.

    Symbolic work only, under ``budget`` CPU seconds for the activation: the answer
    is None as soon as one moment has no closed form, without the quadrature that
    :func:`gaussian_moments` would run for it.  An infinite ``E[s'^2]`` (a jump) is
    ``sympy.oo``.  A closed form valid only on a range of τ (a growing integrand)
    counts when it holds at τ = 1, as in :func:`gaussian_moments` at τ = 1.
    """
    a = parse_activation(act)
    if a.staircase is not None:
        return dict(staircase_moment_exprs(a.staircase, TAU))
    work_start = derivation_work()
    out: dict[str, sp.Expr] = {}
    try:
        for key, g, order, nonneg in _moment_integrands(a.expr):
            if g == sp.oo:
                out[key] = sp.oo
                continue
            if not g.has(sp.Symbol):
                out[key] = g if order == 0 else sp.S.Zero
                continue
            remaining = budget - (derivation_work() - work_start) / CALLS_PER_SECOND
            if remaining <= 0:
                return None
            expr = derive_closed_form(g, order, remaining, nonnegative=nonneg)
            if expr is None:
                return None
            out[key] = expr
    except NTKTheoryError:
        return None
    return out


def _center(ms: list[Moment], tau: float, digits: int) -> list[Moment]:
    """Moments of σ̄ = σ − E[σ(τξ)] from those of σ (docs/reference.rst §1, Centering).

    ``E[s̄^2] = Var = v0 − m0²`` and ``E[(s̄²)''] = w2 − 2 m0 m2``; ``E[s']``, ``E[s'']`` and
    ``E[s'^2]`` do not see the constant.  When every input is a closed form the
    result is one too (evaluated and certified like any closed form).  Otherwise
    the value comes from the inputs' values and its error from theirs, δ denoting
    an input's ``abs_error``:

    * ``δVar = δv0 + 2|m0| δm0 + δm0²``,
    * ``δw̄2 = δw2 + 2|m2| δm0 + 2|m0| δm2 + 2 δm0 δm2``.

    These are the first-order (gradient) propagation plus the exact second-order
    terms of the bilinear maps, so they bound the error whenever the inputs'
    estimates bound theirs; the combination itself runs at ``digits + 20`` digits,
    whose rounding is far below them.
    """
    by = {m.key: m for m in ms}
    m0, m2, v0, w2 = by["E[s]"], by["E[s'']"], by["E[s^2]"], by["E[(s^2)'']"]

    def closed(key: str, e: sp.Expr) -> Moment:
        if e.has(TAU):
            v, err = evaluate_closed_form(e, tau, digits)
        else:
            v, err = mp.mpf(sp.N(e, digits + 10)), 0.0
        return Moment(v, err, e, "closed form", key=key)

    if all(p.expr is not None for p in (v0, m0)):
        var = closed("E[s^2]", v0.expr - m0.expr**2)
    else:
        with mp.workdps(digits + 20):
            value = v0.value - m0.value**2
        d0 = m0.abs_error
        var = Moment(value, v0.abs_error + 2 * abs(float(m0.value)) * d0 + d0 * d0, None, "quadrature",
                     key="E[s^2]")
    if all(p.expr is not None for p in (w2, m0, m2)):
        w2_bar = closed("E[(s^2)'']", w2.expr - 2 * m0.expr * m2.expr)
    else:
        with mp.workdps(digits + 20):
            value = w2.value - 2 * m0.value * m2.value
        d0, d2 = m0.abs_error, m2.abs_error
        w2_bar = Moment(value, w2.abs_error + 2 * abs(float(m2.value)) * d0 + 2 * abs(float(m0.value)) * d2
                        + 2 * d0 * d2, None, "quadrature", key="E[(s^2)'']")
    return [
        Moment(mp.mpf(0), 0.0, sp.S.Zero, "centered", key="E[s]"),
        by["E[s']"],
        m2,
        var,
        by["E[s'^2]"],
        w2_bar,
    ]
