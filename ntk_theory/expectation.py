"""Gaussian expectation engine: ``E[f^{(k)}(τξ)]`` exactly when possible, certified otherwise.

THEORY.md §1.  Weak derivatives of order ``k ≤ 2`` are handled by Gaussian
integration by parts (Stein's lemma)::

    E[f^{(k)}(τξ)] = E[f(τξ) He_k(ξ)] / τ^k,   He_0 = 1, He_1 = ξ, He_2 = ξ² − 1,

so Heaviside steps, kinks and indicator activations never produce Dirac deltas.

The engine tries, in order:

1. **Parity**: odd ``f`` ⇒ zero for even ``k``; even ``f`` ⇒ zero for odd ``k``.
2. **Splitting** ``Piecewise``/``Heaviside``/``Max``/``Min``/``Abs``/``sign`` at their
   breakpoints ``t_j`` (in ξ-coordinates ``t_j/τ``).
3. A **table of Gaussian integrals** on each piece: ``ξ^n exp(Aξ² + Bξ)`` over any
   interval (incomplete moments by recursion, tail-safe ``erfc`` forms),
   ``sin``/``cos`` through complex exponentials, and up to two ``erf`` factors of
   linear arguments over the whole line by Stein recursion down to
   ``E[erf(aξ+b)] = erf(b/√(1+2a²))`` and
   ``E[erf(aξ)erf(bξ)] = (2/π) arcsin(2ab/√((1+2a²)(1+2b²)))``.
4. Plain ``sympy.integrate`` on a piece the table does not cover.
5. **mpmath quadrature** (tanh-sinh) split at the breakpoints, cross-checked by
   Gauss–Legendre at higher precision; the error estimate is reported.

Every symbolic step runs under a hard time budget (a ``SIGPROF`` CPU-time timer in the main
thread; elsewhere the unbounded steps 4 and simplification are skipped), so no
call hangs and no unevaluated ``Integral`` ever leaks out.  Closed forms are
evaluated with mpmath at increasing precision until two evaluations agree, which
certifies the digits even where terms cancel (small τ) or overflow float64
(``e^{τ²/2}`` at τ = 10⁴).
"""

from __future__ import annotations

import gc
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterator, Sequence

import mpmath as mp
import sympy as sp

from .activations import X, to_piecewise
from .errors import DivergenceError, DomainError, NumericalError, ParseError
from .jump import interval_probability_expr

__all__ = [
    "TAU",
    "Expectation",
    "gaussian_expectation",
    "pieces",
    "clear_caches",
    "time_budget",
    "BudgetExceeded",
]

#: The positive symbol closed forms are written in.
TAU = sp.Symbol("tau", positive=True)
_Z = sp.Symbol("z", real=True)
_SQRT2 = sp.sqrt(2)
_SQRT_PI = sp.sqrt(sp.pi)


# --------------------------------------------------------------------------- #
# Results
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Expectation:
    """``E[f^{(order)}(τξ)]`` at one τ.

    Attributes
    ----------
    value : mpmath.mpf
        The value (``mp.inf`` for a divergent non-negative integrand such as ``E[σ'²]``
        of a step).
    abs_error : float
        Estimated absolute error of ``value`` (0 for exact zeros).
    expr : sympy.Expr or None
        Closed form in :data:`TAU`, or None when the value is numeric.
    method : str
        ``"parity"``, ``"closed form"``, ``"jump formula"``, ``"quadrature"`` or ``"infinite"``.
    """

    value: mp.mpf
    abs_error: float
    expr: sp.Expr | None
    method: str

    @property
    def closed_form(self) -> bool:
        return self.expr is not None

    @property
    def is_infinite(self) -> bool:
        return self.value == mp.inf

    def __float__(self) -> float:
        return float(self.value)  # mp.inf -> inf


class BudgetExceeded(BaseException):
    """A symbolic step ran out of its time budget.

    Derives from ``BaseException`` so that SymPy's and our own generic
    ``except Exception`` handlers cannot swallow it.
    """


class _NotCovered(Exception):
    """Internal: the Gaussian table does not cover a term."""


# --------------------------------------------------------------------------- #
# Time budget
# --------------------------------------------------------------------------- #
def _can_alarm() -> bool:
    return (hasattr(signal, "setitimer") and hasattr(signal, "ITIMER_PROF")
            and threading.current_thread() is threading.main_thread())


# The budget counts this process's CPU time (ITIMER_PROF), not wall time: on a shared,
# loaded machine the same derivation then succeeds or fails the same way every run.
_TIMER = getattr(signal, "ITIMER_PROF", None)
_SIGNAL = getattr(signal, "SIGPROF", None)


@contextmanager
def time_budget(seconds: float) -> Iterator[bool]:
    """Raise :class:`BudgetExceeded` inside the block after ``seconds`` of CPU time.

    Yields True when the budget is enforced (main thread on POSIX).  Elsewhere it
    yields False and callers must restrict themselves to bounded work.
    Nested budgets keep the tighter deadline.
    """
    if not _can_alarm() or seconds <= 0:
        yield False
        return
    old_handler = signal.getsignal(_SIGNAL)
    old_delay, _ = signal.getitimer(_TIMER)
    if 0 < old_delay < seconds:  # an outer, tighter budget is running: keep it
        yield True
        return

    # An exception raised inside a gc callback or a finalizer is dropped by Python
    # ("Exception ignored"), so a budget that fires during a collection would be lost.
    # A watcher placed first in gc.callbacks defers the interrupt while a collection
    # runs and re-arms the timer to fire as soon as it ends.
    state = {"in_gc": False, "pending": False}

    def _gc_watch(phase: str, info: dict) -> None:  # noqa: ARG001
        if phase == "start":
            state["in_gc"] = True
        else:
            state["in_gc"] = False
            if state["pending"]:
                signal.setitimer(_TIMER, 0.001, 0.05)

    def _fire(signum, frame):  # noqa: ARG001
        if state["in_gc"]:
            state["pending"] = True
            return
        raise BudgetExceeded()

    gc.callbacks.insert(0, _gc_watch)
    start = time.process_time()
    signal.signal(_SIGNAL, _fire)
    # keep firing every 50 ms after the deadline: Python drops an exception raised
    # inside a gc callback or a finalizer ("Exception ignored"), so one shot could be
    # lost and leave SymPy running unbounded
    signal.setitimer(_TIMER, seconds, 0.05)
    try:
        yield True
    finally:
        signal.setitimer(_TIMER, 0)
        signal.signal(_SIGNAL, old_handler)
        if _gc_watch in gc.callbacks:
            gc.callbacks.remove(_gc_watch)
        if old_delay > 0:  # restore the outer timer, less the time we used
            signal.setitimer(_TIMER, max(old_delay - (time.process_time() - start), 1e-3))


# --------------------------------------------------------------------------- #
# Pieces
# --------------------------------------------------------------------------- #
Piece = tuple[sp.Expr, sp.Expr, sp.Expr]  # (expression in X, lower, upper) in x-coordinates


def pieces(f: sp.Expr) -> list[Piece]:
    res = _pieces_cached(f)
    if isinstance(res, str):
        raise _NotCovered(res)
    return list(res)


@lru_cache(maxsize=512)
def _pieces_cached(f: sp.Expr) -> tuple[Piece, ...] | str:
    try:
        return tuple(_pieces(f))
    except _NotCovered as exc:
        return str(exc) or "not covered"


def _pieces(f: sp.Expr) -> list[Piece]:
    """Split ``f`` into smooth pieces on intervals of the real line.

    Returns a list of ``(g, a, b)`` with ``f = g`` on ``(a, b)``; points and other
    null sets are dropped (they do not change Gaussian expectations).

    Raises
    ------
    _NotCovered
        If the conditions cannot be reduced to intervals in ``x``.
    """
    pw = to_piecewise(f)
    if not isinstance(pw, sp.Piecewise):
        if pw.has(sp.Piecewise):
            raise _NotCovered("nested piecewise")
        return [(pw, -sp.oo, sp.oo)]
    try:
        pairs = pw.as_expr_set_pairs(sp.Reals)
    except Exception as exc:  # SymPy raises NotImplementedError/TypeError for odd conditions
        raise _NotCovered(str(exc)) from None
    out: list[Piece] = []
    for g, s in pairs:
        if g.has(sp.Piecewise):
            raise _NotCovered("nested piecewise")
        for iv in (s.args if isinstance(s, sp.Union) else (s,)):
            if isinstance(iv, sp.Interval):
                if iv.measure == 0:
                    continue
                if not (iv.start.is_number and iv.end.is_number):
                    raise _NotCovered("symbolic breakpoint")
                out.append((g, iv.start, iv.end))
            elif isinstance(iv, sp.FiniteSet) or iv is sp.S.EmptySet:
                continue
            else:
                raise _NotCovered(f"set {iv}")
    out.sort(key=lambda p: float(p[1]) if p[1] != -sp.oo else -math.inf)
    return out


def breakpoints(f: sp.Expr) -> list[float]:
    """Finite breakpoints of ``f`` (boundaries of its pieces), sorted."""
    try:
        ps = pieces(f)
    except _NotCovered:
        return []
    pts = {float(v) for g, a, b in ps for v in (a, b) if v.is_finite}
    return sorted(pts)


# --------------------------------------------------------------------------- #
# The Gaussian table
# --------------------------------------------------------------------------- #
def _phi(v: sp.Expr) -> sp.Expr:
    if v in (sp.oo, -sp.oo):
        return sp.S.Zero
    return sp.exp(-v**2 / 2) / sp.sqrt(2 * sp.pi)


def _sign_of(v: sp.Expr) -> int:
    if v == sp.oo or v.is_positive:
        return 1
    if v == -sp.oo or v.is_negative:
        return -1
    if v.is_zero:
        return 0
    return 2  # unknown: generic form


def _prob(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """P(a < ξ < b), tail-safe where the bounds' signs are known."""
    sa, sb = _sign_of(a), _sign_of(b)
    if sa == 2 or sb == 2:
        if a == -sp.oo:
            return sp.erfc(-b / _SQRT2) / 2
        if b == sp.oo:
            return sp.erfc(a / _SQRT2) / 2
        return (sp.erf(b / _SQRT2) - sp.erf(a / _SQRT2)) / 2
    return interval_probability_expr(a, b, sa, sb)


def _incomplete_moments(n: int, a: sp.Expr, b: sp.Expr) -> list[sp.Expr]:
    """``M_j = ∫_a^b w^j φ(w) dw`` for j = 0..n (recursion M_j = (j−1)M_{j−2} + [−w^{j−1}φ]_a^b)."""
    whole = a == -sp.oo and b == sp.oo
    M: list[sp.Expr] = []
    for j in range(n + 1):
        if whole:
            M.append(sp.S.Zero if j % 2 else sp.factorial2(j - 1) if j > 0 else sp.S.One)
            continue
        if j == 0:
            M.append(_prob(a, b))
        elif j == 1:
            M.append(_phi(a) - _phi(b))
        else:
            ta = a ** (j - 1) * _phi(a) if a != -sp.oo else sp.S.Zero
            tb = b ** (j - 1) * _phi(b) if b != sp.oo else sp.S.Zero
            M.append((j - 1) * M[j - 2] + ta - tb)
    return M


class _Gauss:
    """Integrals ``∫_lo^hi z^n exp(A z² + B z) Π erf(p_i z + q_i) φ(z) dz`` in closed form.

    ``conditions`` collects expressions that must be positive for the result to be
    valid (``1 − 2A > 0`` on unbounded intervals); the caller checks them at the
    numeric τ and reports divergence when one fails.
    """

    def __init__(self) -> None:
        self.conditions: list[sp.Expr] = []

    def integral(self, n: int, A: sp.Expr, B: sp.Expr, erfs: Sequence[tuple[sp.Expr, sp.Expr]],
                 lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
        whole = lo == -sp.oo and hi == sp.oo
        if erfs and not whole:
            raise _NotCovered("erf on a half line")
        if len(erfs) > 2:
            raise _NotCovered("more than two erf factors")
        if B.has(sp.I) and not whole:
            raise _NotCovered("oscillatory factor on a half line")
        if A == 0 and B == 0:
            return self._standard(n, list(erfs), lo, hi)
        # complete the square: φ(z) e^{Az²+Bz} = e^{B²/(2s²)} φ(s(z−μ)) / 1,  s² = 1 − 2A, μ = B/s²
        s2 = sp.cancel(1 - 2 * A) if A != 0 else sp.S.One  # rational in τ: cancel is enough
        if s2.is_number and not s2.is_positive:
            if lo.is_infinite or hi.is_infinite:
                raise DivergenceError("the integrand grows like exp(c·x²) with c ≥ 1/2 at this scale")
            raise _NotCovered("non-positive quadratic coefficient on a bounded interval")
        if not s2.is_number and (lo.is_infinite or hi.is_infinite):
            self.conditions.append(s2)
        s = sp.sqrt(s2)
        mu = B / s2
        pref = sp.exp(B**2 / (2 * s2)) / s
        wlo = -sp.oo if lo == -sp.oo else s * (lo - mu)
        whi = sp.oo if hi == sp.oo else s * (hi - mu)
        # z = w/s + μ
        w = sp.Dummy("w")
        new_erfs = []
        for p, q in erfs:
            new_erfs.append((sp.expand(p / s), sp.expand(p * mu + q)))
        poly = sp.Poly(sp.expand((w / s + mu) ** n), w)
        total = sp.S.Zero
        for (j,), c in poly.terms():
            total += c * self._standard(j, new_erfs, wlo, whi)
        return pref * total

    def _standard(self, n: int, erfs: list[tuple[sp.Expr, sp.Expr]], lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
        """``∫ z^n Π erf(p_i z + q_i) φ(z) dz`` (erfs only over the whole line)."""
        if not erfs:
            return _incomplete_moments(n, lo, hi)[n]
        if n == 0:
            if len(erfs) == 1:
                p, q = erfs[0]
                return sp.erf(q / sp.sqrt(1 + 2 * p**2))
            (p1, q1), (p2, q2) = erfs
            if q1 == 0 and q2 == 0:
                return 2 / sp.pi * sp.asin(2 * p1 * p2 / sp.sqrt((1 + 2 * p1**2) * (1 + 2 * p2**2)))
            raise _NotCovered("product of shifted erfs (Owen's T)")
        # Stein: E[ξ h(ξ)] = E[h'(ξ)] with h = ξ^{n−1} Π erf
        total = (n - 1) * self._standard(n - 2, erfs, lo, hi) if n >= 2 else sp.S.Zero
        for i, (p, q) in enumerate(erfs):
            rest = erfs[:i] + erfs[i + 1:]
            # d/dξ erf(pξ+q) = (2p/√π) exp(−(pξ+q)²) = (2p/√π) e^{−q²} exp(−p²ξ² − 2pqξ)
            coef = 2 * p / _SQRT_PI * sp.exp(-q**2)
            total += coef * self.integral(n - 1, -p**2, -2 * p * q, rest, lo, hi)
        return total


def _split_factor(term: sp.Expr) -> tuple[sp.Expr, int, sp.Expr, list[tuple[sp.Expr, sp.Expr]]]:
    """Write a product as ``c · z^n · exp(E) · Π erf(p z + q)``; E polynomial of degree ≤ 2."""
    coeff = sp.S.One
    n = 0
    expo = sp.S.Zero
    erfs: list[tuple[sp.Expr, sp.Expr]] = []
    for fac in sp.Mul.make_args(term):
        if not fac.has(_Z):
            coeff *= fac
            continue
        base, ex = fac.as_base_exp()
        if base == _Z and ex.is_Integer and ex >= 0:
            n += int(ex)
        elif isinstance(base, sp.exp) or base is sp.E:
            arg = base.args[0] * ex if isinstance(base, sp.exp) else ex
            expo += arg
        elif isinstance(base, sp.erf) and ex.is_Integer and ex > 0:
            arg = sp.expand(base.args[0])
            p = arg.coeff(_Z, 1)
            q = arg.coeff(_Z, 0)
            if sp.expand(arg - p * _Z - q) != 0 or p.has(_Z) or q.has(_Z):
                raise _NotCovered("erf of a non-linear argument")
            erfs.extend([(p, q)] * int(ex))
        else:
            raise _NotCovered(f"factor {fac}")
    expo = sp.expand(expo)
    try:
        P = sp.Poly(expo, _Z)
    except sp.PolynomialError:
        raise _NotCovered("exponent is not polynomial") from None
    if P.degree() > 2:
        raise _NotCovered("exponent of degree > 2")
    A = P.coeff_monomial(_Z**2)
    B = P.coeff_monomial(_Z)
    C = P.coeff_monomial(1)
    return coeff * sp.exp(C), n, (A, B), erfs  # type: ignore[return-value]


def _table_integral(h: sp.Expr, lo: sp.Expr, hi: sp.Expr, gauss: _Gauss) -> sp.Expr:
    """``∫_lo^hi h(z) φ(z) dz`` for ``h`` a sum of table terms in the symbol ``_Z``."""
    if h.has(sp.sin, sp.cos, sp.sinh, sp.cosh):
        h = h.rewrite([sp.sin, sp.cos, sp.sinh, sp.cosh], sp.exp)
    if h.has(sp.erfc):
        h = h.replace(lambda e: isinstance(e, sp.erfc), lambda e: 1 - sp.erf(e.args[0]))
    h = sp.expand(h, power_base=False, log=False)
    total = sp.S.Zero
    for term in sp.Add.make_args(h):
        c, n, (A, B), erfs = _split_factor(term)
        total += c * gauss.integral(n, A, B, erfs, lo, hi)
    return total


# --------------------------------------------------------------------------- #
# Symbolic derivation (cached, τ symbolic)
# --------------------------------------------------------------------------- #
_HERMITE = {0: sp.S.One, 1: _Z, 2: _Z**2 - 1}


@dataclass(frozen=True)
class _Derivation:
    expr: sp.Expr | None           # closed form in TAU, or None
    conditions: tuple[sp.Expr, ...] = ()  # must be > 0 at the numeric τ
    note: str = ""


_DERIVATIONS: dict[tuple[str, int, bool], _Derivation] = {}


def clear_caches() -> None:
    """Forget every cached derivation and compiled evaluator (for cold timings)."""
    _DERIVATIONS.clear()
    _compile.cache_clear()
    _parity.cache_clear()
    _numeric_integrand.cache_clear()
    _pieces_cached.cache_clear()
    _singularity_verdict.cache_clear()


def _is_zero(e: sp.Expr, may_simplify: bool) -> bool:
    if e == 0:
        return True
    e2 = sp.expand(e)
    if e2 == 0:
        return True
    return bool(may_simplify and sp.count_ops(e2) < 200 and sp.simplify(e2) == 0)


@lru_cache(maxsize=512)
def _parity(f: sp.Expr, up_to_constant: bool = False, may_simplify: bool = True) -> int:
    """+1 if ``f`` is even, −1 if odd, 0 otherwise (proved symbolically, never guessed).

    With ``up_to_constant`` a function that is odd after subtracting a constant
    (``sigmoid = 1/2 + odd``) counts as odd: derivatives do not see the constant.
    Piecewise functions are compared piece by piece with expansion only (cheap);
    ``simplify`` is used for smooth expressions when the time budget is enforced.
    """
    try:
        g = to_piecewise(f)
        # cheap numeric screen: a symbolic proof is only attempted when the
        # function looks even or odd (up to a constant) at a few points
        fn = sp.lambdify(X, g, modules="mpmath")
        with mp.workdps(30):
            pts = [mp.mpf(v) for v in ("0.37", "1.13", "2.71", "5.3")]
            s_vals = [fn(p) + fn(-p) for p in pts]
            d_vals = [fn(p) - fn(-p) for p in pts]
        tol = mp.mpf("1e-20")
        looks_even = all(abs(v) < tol * (1 + abs(fn(p))) for v, p in zip(d_vals, pts))
        looks_odd = all(abs(v) < tol * (1 + abs(fn(p))) for v, p in zip(s_vals, pts))
        looks_odd_c = up_to_constant and all(abs(v - s_vals[0]) < tol * (1 + abs(v)) for v in s_vals)
        if not (looks_even or looks_odd or looks_odd_c):
            return 0
        gm = g.subs(X, -X)
        if up_to_constant and not g.has(sp.Piecewise):
            c = sp.expand(gm + g)
            if may_simplify and c.has(X) and sp.count_ops(c) < 200:
                c = sp.simplify(c)
            if c.is_number and c != 0:
                g = g - c / 2
                gm = gm - c / 2
        for sign in (-1, 1):
            d = sp.piecewise_fold(gm + sign * g)
            if isinstance(d, sp.Piecewise):
                pairs = d.as_expr_set_pairs(sp.Reals)
                if all(_s.measure == 0 or _is_zero(e, False) for e, _s in pairs):
                    return -sign
            elif not d.has(sp.Piecewise) and _is_zero(d, may_simplify):
                return -sign  # gm == -g: odd (sign=+1 -> −1); gm == g: even (+1)
    except BudgetExceeded:
        raise
    except Exception:  # noqa: BLE001 - parity is an optimisation; any failure means "unknown"
        return 0
    return 0


def _derive(f: sp.Expr, order: int, budget: float, allow_integrate: bool) -> _Derivation:
    key = (sp.srepr(f), order, allow_integrate)
    hit = _DERIVATIONS.get(key)
    if hit is not None:
        return hit
    try:
        with time_budget(budget) as enforced:
            res = _derive_uncached(f, order, allow_integrate and enforced, enforced)
    except BudgetExceeded:
        res = _Derivation(None, (), "time budget exceeded")
    _DERIVATIONS[key] = res
    return res


def _derive_uncached(f: sp.Expr, order: int, allow_integrate: bool, may_simplify: bool) -> _Derivation:
    par = _parity(f, order > 0, may_simplify)
    if (par == -1 and order % 2 == 0) or (par == 1 and order % 2 == 1):
        return _Derivation(sp.S.Zero, (), "parity")
    try:
        ps = pieces(f)
    except _NotCovered as exc:
        return _Derivation(None, (), f"pieces: {exc}")
    gauss = _Gauss()
    total = sp.S.Zero
    for g, a, b in ps:
        lo = -sp.oo if a == -sp.oo else a / TAU
        hi = sp.oo if b == sp.oo else b / TAU
        h = g.subs(X, TAU * _Z) * _HERMITE[order]
        try:
            part = _table_integral(h, lo, hi, gauss)
        except _NotCovered as exc:
            if not allow_integrate:
                return _Derivation(None, (), f"table: {exc}")
            part = _sympy_integrate(h, lo, hi)
            if part is None:
                return _Derivation(None, (), f"table: {exc}; sympy.integrate failed")
        total += part
    expr = total / TAU**order
    if may_simplify:
        expr = _tidy(expr)
    return _Derivation(expr, tuple(gauss.conditions), "closed form")


def _hopeless_for_sympy(h: sp.Expr) -> bool:
    """Integrands plain ``sympy.integrate`` is known not to finish (THEORY.md §1).

    Rational functions of ``exp`` (sigmoid, swish, tanh), logarithms of them
    (softplus) and inverse hyperbolics have no elementary Gaussian integral; SymPy
    grinds on them for minutes.  Skipping them sends those pieces straight to
    quadrature instead of burning the time budget.
    """
    for sub in sp.preorder_traversal(h):
        if isinstance(sub, (sp.tanh, sp.coth, sp.sech, sp.csch, sp.log, sp.atan, sp.asinh,
                            sp.atanh, sp.LambertW, sp.gamma)) and sub.has(_Z):
            return True
        if isinstance(sub, sp.Pow) and sub.base.has(_Z) and not (sub.exp.is_Integer and sub.exp > 0):
            return True
    return False


def _sympy_integrate(h: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> sp.Expr | None:
    if _hopeless_for_sympy(h):
        return None
    try:
        r = sp.integrate(h * sp.exp(-_Z**2 / 2) / sp.sqrt(2 * sp.pi), (_Z, lo, hi), conds="none")
    except BudgetExceeded:
        raise
    except Exception:  # noqa: BLE001 - any SymPy failure means "not covered"
        return None
    if r.has(sp.Integral) or r.has(sp.nan) or r.has(sp.zoo) or r.has(sp.Piecewise):
        return None
    return r


def _tidy(expr: sp.Expr) -> sp.Expr:
    """Cheap simplifications that keep tail-safe erfc forms intact."""
    e = sp.expand_power_exp(expr)
    e = sp.powsimp(e, combine="exp")
    if e.has(sp.I):
        e = sp.expand_complex(e)
        e = sp.simplify(e)
    try:
        cand = sp.cancel(sp.together(e)) if not e.has(sp.erfc, sp.erf) else e
    except Exception:  # noqa: BLE001
        cand = e
    e = cand if sp.count_ops(cand) <= sp.count_ops(e) else e
    return e


# --------------------------------------------------------------------------- #
# Numeric evaluation
# --------------------------------------------------------------------------- #
@lru_cache(maxsize=1024)
def _compile(expr: sp.Expr) -> Callable[[mp.mpf], mp.mpf]:
    return sp.lambdify(TAU, expr, modules="mpmath")


def _to_real(v: mp.mpf | mp.mpc) -> mp.mpf:
    if isinstance(v, mp.mpc):
        if abs(v.imag) > mp.mpf(10) ** (-mp.mp.dps + 5) * max(abs(v.real), 1):
            raise NumericalError("closed form evaluated to a complex number")
        return v.real
    return mp.mpf(v)


def _evaluate_closed(expr: sp.Expr, tau: float, digits: int) -> tuple[mp.mpf, float]:
    """Evaluate a closed form at τ, doubling precision until two evaluations agree."""
    fn = _compile(expr)
    dps = digits + 15
    prev = None
    t = mp.mpf(tau)
    while dps <= 1200:
        with mp.workdps(dps):
            v = _to_real(fn(mp.mpf(t)))
        if prev is not None:
            diff = abs(v - prev)
            if diff <= abs(v) * mp.mpf(10) ** (-(digits + 3)) or v == prev:
                return v, float(diff)
        prev = v
        dps *= 2
    raise NumericalError(f"closed form did not stabilise at τ={tau} (cancellation beyond 1200 digits)")


@lru_cache(maxsize=256)
def _numeric_integrand(f: sp.Expr, order: int) -> Callable[[mp.mpf], mp.mpf]:
    return sp.lambdify(X, to_piecewise(f), modules="mpmath")


def _is_real_valued(fn: Callable, pts: Sequence[mp.mpf]) -> None:
    for t in pts:
        try:
            v = fn(t)
        except (ZeroDivisionError, ValueError):
            continue
        if isinstance(v, mp.mpc) and abs(v.imag) > 1e-20 * max(1, abs(v.real)):
            raise DomainError(f"the activation is not real-valued at x = {mp.nstr(t, 6)}")


def _singular_points(f: sp.Expr) -> list[float]:
    """Real points where ``f`` may be singular: zeros of denominators and of log/pow arguments."""
    pts: set[float] = set()
    cands: list[sp.Expr] = []
    for sub in sp.preorder_traversal(to_piecewise(f)):
        if isinstance(sub, sp.Pow) and sub.exp.is_negative:
            cands.append(sub.base)
        elif isinstance(sub, sp.log):
            cands.append(sub.args[0])
        elif isinstance(sub, (sp.tan, sp.cot, sp.sec, sp.csc)):
            raise DivergenceError(f"{sub} has poles on the real line")
    for c in cands:
        if not c.has(X):
            continue
        try:
            sol = sp.solveset(c, X, sp.Reals)
        except Exception:  # noqa: BLE001
            continue
        if isinstance(sol, sp.FiniteSet):
            pts.update(float(s) for s in sol if s.is_real)
        elif sol is not sp.S.EmptySet:
            raise DivergenceError(f"cannot locate the singularities of {c} on the real line")
    return sorted(pts)


def _check_singularity(fn: Callable, s: float, tau: float, order: int, squared: bool) -> None:
    """Non-integrable if |f(s±h)|·h does not vanish as h → 0 (a pole of order ≥ 1)."""
    for side in (-1, 1):
        vals = []
        for h in (mp.mpf("1e-8"), mp.mpf("1e-16"), mp.mpf("1e-32")):
            try:
                v = abs(fn(mp.mpf(s) + side * h * max(1, abs(s))))
            except (ZeroDivisionError, ValueError):
                v = mp.inf
            vals.append(v * h)
        if not vals[-1] < vals[0] * mp.mpf("1e-4"):
            raise DivergenceError(
                f"the expectation diverges: the activation has a non-integrable singularity at x = {s:g}"
            )


_STEP_FUNCTIONS = (sp.floor, sp.ceiling, sp.frac)
_MAX_JUMPS = 4000


def _step_function_jumps(f: sp.Expr, tau: float, window: float) -> list[float]:
    """Jump locations of ``floor``/``ceiling``/``frac`` of linear arguments within ``|x| ≤ τ·window``.

    Quadrature across an unknown jump loses digits while its error estimate does
    not notice, so every jump must be a node.  Raises :class:`NumericalError` when
    the jumps cannot be located (non-linear argument) or are too many to integrate.
    """
    pts: list[float] = []
    for atom in f.atoms(*_STEP_FUNCTIONS):
        arg = sp.expand(atom.args[0])
        a, b = arg.coeff(X, 1), arg.coeff(X, 0)
        if sp.expand(arg - a * X - b) != 0 or not (a.is_number and b.is_number) or a == 0:
            raise NumericalError(f"cannot locate the discontinuities of {atom}: only linear "
                                 "arguments of floor/ceiling/frac are supported")
        a, b = float(a), float(b)
        lo, hi = sorted((a * (-tau * window) + b, a * (tau * window) + b))
        count = math.floor(hi) - math.ceil(lo) + 1
        if count > _MAX_JUMPS:
            raise NumericalError(f"{atom} jumps {count} times where the Gaussian weight matters "
                                 f"at tau={tau:g}; more than the {_MAX_JUMPS} quadrature can resolve")
        pts.extend((k - b) / a for k in range(math.ceil(lo), math.floor(hi) + 1))
    return pts


def _numeric(f: sp.Expr, tau: float, order: int, digits: int, nonneg: bool) -> tuple[mp.mpf, float]:
    """mpmath quadrature of ``E[f(τξ) He_k(ξ)]/τ^k`` split at the breakpoints."""
    fn = _numeric_integrand(f, order)
    sing = _singular_points(f)
    bps = sorted(set(breakpoints(f)) | set(sing))
    if f.has(*_STEP_FUNCTIONS):
        bps = sorted(set(bps) | set(_step_function_jumps(f, tau, 40.0)))
    elif f.has(sp.Piecewise, sp.Heaviside, sp.sign) and not bps:
        try:
            pieces(f)
        except _NotCovered:
            raise NumericalError(f"cannot locate the discontinuities of {f} (conditions that "
                                 "are not intervals in x); quadrature would be unreliable") from None
    extra = 10 + (order * max(0, int(math.ceil(-math.log10(tau)))) if tau < 1 else 0)
    dps = digits + extra
    with mp.workdps(dps + 10):
        t = mp.mpf(tau)
        _is_real_valued(fn, [t * z for z in (-3, -1, -0.5, 0.5, 1, 3)])
        for s in sing:
            try:
                _check_singularity(fn, s, tau, order, nonneg)
            except DivergenceError:
                if nonneg:
                    return mp.inf, 0.0
                raise
        He = {0: lambda z: 1, 1: lambda z: z, 2: lambda z: z * z - 1}[order]

        def integrand(z: mp.mpf) -> mp.mpf:
            try:
                v = fn(t * z)
            except ZeroDivisionError:
                return mp.mpf(0)
            if isinstance(v, mp.mpc):
                v = v.real
            return v * He(z) * mp.npdf(z)

        # divergence: the integrand must decay in both tails
        for side in (-1, 1):
            mags = []
            for z in (10, 40, 160, 640):
                try:
                    mags.append(abs(integrand(mp.mpf(side * z))))
                except (OverflowError, mp.libmp.libhyper.NoConvergence):
                    mags.append(mp.inf)
            if not (mags[-1] < mp.mpf("1e-40") * max(mags[0], mp.mpf("1e-300")) or mags[-1] == 0):
                if nonneg:
                    return mp.inf, 0.0
                raise DivergenceError(
                    "the expectation diverges: the activation grows too fast for a Gaussian at this scale"
                )
        zs = [mp.mpf(b) / t for b in bps]
        if not any(z == 0 for z in zs):
            zs.append(mp.mpf(0))
        zs = sorted(zs)
        # truncate to a finite window once the integrand is negligible (relative to its
        # size near the origin) at the working precision on both sides, beyond the window too
        scale = max(abs(integrand(mp.mpf(v))) for v in (-2, -1, -0.5, 0.5, 1, 2)) or mp.mpf(1)
        tiny = scale * mp.mpf(10) ** (-(dps + 8))
        lo_edge, hi_edge = -mp.inf, mp.inf
        for cut in (8, 12, 16, 24, 32, 48, 64, 96):
            c = mp.mpf(cut)
            if all(abs(integrand(side * c * k)) < tiny for side in (-1, 1) for k in (1, 1.5, 2)):
                lo_edge, hi_edge = -c, c
                break
        nodes = [lo_edge] + [z for z in zs if lo_edge < z < hi_edge] + [hi_edge]
    with mp.workdps(dps):
        v1, e1 = mp.quad(integrand, nodes, error=True, maxdegree=10)
    # independent second estimate: a different subdivision at higher precision
    extra_nodes = sorted(set(nodes[1:-1]) | {mp.mpf(v) for v in (-4, -1.5, 1.5, 4)
                                             if lo_edge < v < hi_edge})
    with mp.workdps(dps + 5):
        v2 = mp.quad(integrand, [lo_edge, *extra_nodes, hi_edge], maxdegree=10)
    with mp.workdps(dps):
        err = max(float(abs(e1)), float(abs(v2 - v1)))
        scale = mp.mpf(tau) ** order
        value = v1 / scale  # keep the working precision: no rounding to double here
        err = float(mp.mpf(err) / scale)
    if nonneg and value < 0 and abs(value) <= err:
        value = mp.mpf(0)
    return value, err


@lru_cache(maxsize=512)
def _singularity_verdict(f: sp.Expr) -> str:
    """"" if ``f`` has no non-integrable real singularity, else the error message."""
    try:
        sing = _singular_points(f)
        if not sing:
            return ""
        fn = _numeric_integrand(f, 0)
        with mp.workdps(40):
            for s in sing:
                _check_singularity(fn, s, 1.0, 0, False)
    except DivergenceError as exc:
        return str(exc)
    return ""


def _check_integrable_singularities(f: sp.Expr, nonnegative: bool) -> None:
    """Refuse principal values: a pole makes the expectation undefined (E[1/x]).

    Runs before parity or any closed form, which would otherwise return the
    principal value 0 for an odd function with a pole.
    """
    if not f.has(sp.Pow, sp.log, sp.tan, sp.cot, sp.sec, sp.csc):
        return
    msg = _singularity_verdict(f)
    if msg and not nonnegative:
        raise DivergenceError(msg)


# --------------------------------------------------------------------------- #
# Public entry point
# --------------------------------------------------------------------------- #
def _validate_tau(tau: float) -> float:
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise DomainError(f"tau must be a number, got {tau!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise DomainError(f"tau must be finite and > 0, got {tau!r}")
    return t


def gaussian_expectation(
    f: sp.Expr,
    tau: float,
    order: int = 0,
    *,
    digits: int = 15,
    budget: float = 2.0,
    nonnegative: bool = False,
    symbolic: bool = True,
) -> Expectation:
    """``E[f^{(order)}(τξ)]`` for ξ ~ N(0,1) and a weak derivative of order 0, 1 or 2.

    Parameters
    ----------
    f : sympy.Expr
        Function of the real symbol :data:`~ntk_theory.activations.X`.
    tau : float
        Scale, finite and > 0.
    order : {0, 1, 2}
        Order of the (weak) derivative, handled by Stein's lemma.
    digits : int
        Significant digits requested (quadrature runs at ``digits + 10`` or more).
    budget : float
        Seconds allowed for the symbolic attempt before falling back to quadrature.
    nonnegative : bool
        The integrand is known to be ≥ 0 (e.g. ``σ'²``): divergence is reported as
        ``+inf`` instead of an error.
    symbolic : bool
        Try closed forms first (default).  False forces quadrature.

    Raises
    ------
    DomainError
        τ not finite or not > 0; ``f`` not real-valued.
    DivergenceError
        The expectation does not exist.
    """
    tau = _validate_tau(tau)
    if order not in (0, 1, 2):
        raise DomainError(f"order must be 0, 1 or 2, got {order}")
    try:
        return _gaussian_expectation(f, tau, order, digits, budget, nonnegative, symbolic)
    except TypeError as exc:
        # mpmath refuses to order complex numbers: a lambdified branch condition or a
        # Heaviside argument went complex (log(x) at x < 0, say)
        raise DomainError(f"{f} cannot be evaluated as a real function on the real line "
                          f"(complex intermediate values: {exc})") from None


def _gaussian_expectation(f: sp.Expr, tau: float, order: int, digits: int, budget: float,
                          nonnegative: bool, symbolic: bool) -> Expectation:
    if not isinstance(f, sp.Expr) or f.free_symbols - {X}:
        raise ParseError(f"{f} is not an expression in x alone")
    f = sp.sympify(f)
    if not f.has(X):
        if not f.is_real:
            raise DomainError(f"the constant {f} is not real")
        val = f if order == 0 else sp.S.Zero
        return Expectation(mp.mpf(sp.N(val, digits + 10)), 0.0, val, "closed form")
    _check_integrable_singularities(f, nonnegative)
    if symbolic:
        der = _derive(f, order, budget, allow_integrate=True)
        if der.expr is not None:
            for cond in der.conditions:
                c = _compile(cond)
                with mp.workdps(30):
                    if not _to_real(c(mp.mpf(tau))) > 0:
                        if nonnegative:
                            return Expectation(mp.inf, 0.0, None, "infinite")
                        raise DivergenceError(
                            f"the expectation diverges at tau={tau:g}: the integrand grows like "
                            "exp(c·x²) with c ≥ 1/(2τ²)"
                        )
            if der.expr == 0:
                return Expectation(mp.mpf(0), 0.0, sp.S.Zero, der.note or "parity")
            value, err = _evaluate_closed(der.expr, tau, digits)
            return Expectation(value, err, der.expr, "closed form")
    value, err = _numeric(f, tau, order, digits, nonnegative)
    if value == mp.inf:
        return Expectation(mp.inf, 0.0, None, "infinite")
    return Expectation(value, err, None, "quadrature")
