"""Gaussian expectation engine: ``E[f^{(k)}(τξ)]`` exactly when possible, certified otherwise.

docs/reference.rst §1.  Weak derivatives of order ``k ≤ 2`` are handled by Gaussian
integration by parts (Stein's lemma)::

    E[f^{(k)}(τξ)] = E[f(τξ) He_k(ξ)] / τ^k,   He_0 = 1, He_1 = ξ, He_2 = ξ² − 1,

so Heaviside steps, kinks and indicator activations never produce Dirac deltas.

The engine tries, in order:

1. **Parity**: odd ``f`` ⇒ zero for even ``k``; even ``f`` ⇒ zero for odd ``k``.
2. **Splitting** ``Piecewise``/``Heaviside``/``Max``/``Min``/``Abs``/``sign`` at their
   breakpoints ``t_j`` (in ξ-coordinates ``t_j/τ``).  Conditions on monotone functions
   (``erf(x/4 + 3/2) < −3/4``) are inverted first (``x < 4 erfinv(−3/4) − 6``); conditions
   that are rational in x are split at their real roots; whatever is left goes to SymPy's
   set algebra under its own CPU budget.
3. A **table of Gaussian integrals** on each piece: ``ξ^n exp(Aξ² + Bξ)`` over any
   interval (incomplete moments by recursion, tail-safe ``erfc`` forms),
   ``sin``/``cos`` through complex exponentials, and up to two ``erf`` factors of
   linear arguments over the whole line by Stein recursion down to
   ``E[erf(aξ+b)] = erf(b/√(1+2a²))`` and
   ``E[erf(aξ)erf(bξ)] = (2/π) arcsin(2ab/√((1+2a²)(1+2b²)))``.
4. Plain ``sympy.integrate`` on a piece the table does not cover, accepted only when it
   agrees with a quick quadrature at two scales.
5. **mpmath quadrature** (tanh-sinh) split at the breakpoints, cross-checked by
   Gauss–Legendre at higher precision; the error estimate is reported.

Every symbolic step runs under a **deterministic work budget**: the budget in
"seconds" is converted to a number of Python function calls
(:data:`CALLS_PER_SECOND` per second) and counted by a :func:`sys.settrace` hook
that raises :class:`BudgetExceeded` when the count passes the limit.  A time-based
budget (the CPU timer used before) gave different ``closed_form``/``latex``/``method``
fields for the same call depending on machine load whenever the derivation time was
near the budget; a call count does not depend on load.  Derivations are cached
together with the work they counted, and a cache hit is charged that work, so the
budget shared by the six moments of one activation runs out at the same place whether
or not earlier derivations were cached.  (SymPy's internal set orderings depend on
``PYTHONHASHSEED``, and SymPy's own cache saves calls when an earlier computation in
the same process built the same subexpressions: the count is exactly reproducible for
a fresh process such as one CLI call.  Within a long session SymPy's caches can also
change the route ``integrate`` takes: after a long run of unrelated derivations,
``E[J₀(τξ)]`` was once not found within a budget that suffices in a fresh process, and
the value came from certified quadrature instead — equally correct, with a different
``method``.)  A CPU-time timer at :data:`SAFETY_FACTOR` times the budget remains as a
safety net only.  No garbage-collector callback is used, and Ctrl-C always
propagates (see :func:`time_budget`).  Quadrature is not budgeted in time either:
its work is bounded up front (:data:`_MAX_QUAD_WORK`) and refused when too large.

Numbers are certified or refused: closed forms are evaluated with mpmath at
increasing precision until two evaluations agree (which certifies the digits even
where terms cancel, at small τ, or beyond float64, ``e^{τ²/2}`` at τ = 10⁴);
quadratures are certified by two independent rules (tanh-sinh and Gauss–Legendre on a
different subdivision, with a singularity-removing substitution next to singular
points), with precision raised when the integrand's size exceeds the value
(cancellation), and refused with :class:`~ntk_theory.errors.NumericalError` when the
rules disagree.  Singular points are located exactly (any rational or algebraic
root of a denominator, ``log`` argument or Bessel-K argument) and classified by
their local exponent: ``|x|^(−0.9)`` and ``log|x|`` are integrable, poles are not.
τ must lie in [:data:`TAU_MIN`, :data:`TAU_MAX`].
"""

from __future__ import annotations

import gc
import importlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import mpmath as mp
import sympy as sp

from .activations import X, to_piecewise
from .errors import (
    DivergenceError,
    DomainError,
    NTKTheoryError,
    NumericalError,
    ParseError,
    ResourceError,
)
from .jump import interval_probability_expr
from .safe_parse import check_supported, real_rewrites

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
        ``"parity"``, ``"closed form"``, ``"jump formula"``, ``"quadrature"``, ``"jump sum"``
        (exact sum over the intervals between the jumps of floor/ceiling/frac) or
        ``"infinite"``.
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
# Work budget (deterministic)
# --------------------------------------------------------------------------- #
#: Python function calls per budget second.  A budget of ``b`` seconds allows
#: ``b * CALLS_PER_SECOND`` calls (about ``b`` CPU seconds of SymPy on an idle
#: 2020s core: 2–6·10⁵ calls/s were measured for the derivations of x·erf(x), GELU
#: and Piecewise activations).
CALLS_PER_SECOND = 500_000

#: The CPU-time safety net: ``SAFETY_FACTOR × budget + SAFETY_SECONDS`` CPU seconds.
#: It only fires if the call counter is defeated (a C extension looping without Python
#: calls, or library code swallowing :class:`BudgetExceeded`).
SAFETY_FACTOR = 10.0
SAFETY_SECONDS = 5.0


class _WorkState(threading.local):
    def __init__(self) -> None:
        self.count = 0            # calls counted in this thread (monotone)
        self.limits: list[int] = []  # active budgets' limits on ``count`` (innermost last)
        self.interrupted = False  # Ctrl-C seen while a budget was active
        self.derived = 0          # work charged by symbolic derivations (cache hits included)
        self.exceeded = False     # a budget ran out and its BudgetExceeded may be repeated
        self.armed = False        # the SIGPROF timer and SIGINT handler are ours
        self.safety_end = 0.0     # process time at which the safety net fires
        self.importing = False    # inside an uncounted call tree (an import, SymPy's assumptions)


_WORK = _WorkState()


def work_done() -> int:
    """Python calls counted so far in this thread inside work budgets (monotone)."""
    return _WORK.count


def derivation_work() -> int:
    """Work (calls) charged so far in this thread by closed-form derivations; a cached
    derivation is charged what it cost when it was computed."""
    return _WORK.derived


def _tracer(frame, event, arg):  # noqa: ARG001 - sys.settrace signature
    # called for each new Python frame ("call" events); returning None skips line events
    st = _WORK
    if st.importing:
        return None
    code = frame.f_code
    if code in _UNCOUNTED or code.co_name in _UNCOUNTED_NAMES or (
            code.co_name == "_find_and_load" and code.co_filename == _BOOTSTRAP):
        # Not counted (their call trees are skipped whole):
        # * a first import (the module is not in sys.modules yet): whether it happens inside
        #   this budget depends on what ran before in the process, not on the computation;
        # * SymPy's assumption deduction: it walks sets of fact names, so its number of calls
        #   depends on the string hash seed (±1 % of a derivation) although its answers do
        #   not; what it deduces is cached on the objects, so the work outside it is the same;
        # * comparisons: dict and set look-ups call ``__eq__`` only on hash collisions, and
        #   sorting a set compares its elements (and takes the truth value of each result)
        #   in an order, both of which depend on the hash seed.
        st.importing = True
        return _import_done
    st.count += 1
    if st.limits and st.count > min(st.limits) and not (
            frame.f_code.co_flags & _RESUMABLE or frame.f_code.co_name == "__del__"):
        # (never inside a generator being resumed or closed, or a finalizer: Python would
        # print the exception as "Exception ignored" and drop it; the next call raises)
        # Python drops an exception raised inside a gc callback or a finalizer (and unsets
        # the tracer): the timer repeats the interrupt every 20 ms until it lands
        st.exceeded = True
        _rearm(0.02)
        raise BudgetExceeded()
    return None


_BOOTSTRAP = "<frozen importlib._bootstrap>"


def _uncounted_codes() -> frozenset:
    try:
        assumptions = importlib.import_module("sympy.core.assumptions")
    except ImportError:  # pragma: no cover
        return frozenset()
    try:
        facts = importlib.import_module("sympy.core.facts")
    except ImportError:  # pragma: no cover
        facts = None
    fns = (getattr(assumptions, "_ask", None),
           getattr(getattr(facts, "FactKB", None), "deduce_all_facts", None))
    return frozenset(fn.__code__ for fn in fns if fn is not None)


_UNCOUNTED = _uncounted_codes()
_UNCOUNTED_NAMES = frozenset({"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__"})


def _import_done(frame, event, arg):  # noqa: ARG001 - local trace function of an import
    if event == "return":
        _WORK.importing = False
    return _import_done


#: Code flags of generators and coroutines (CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR).
_RESUMABLE = 0x20 | 0x80 | 0x200


def _quiet_unraisable(unraisable) -> None:
    """``sys.unraisablehook`` while a budget is active: a :class:`BudgetExceeded` or
    :class:`KeyboardInterrupt` dropped inside a finalizer or gc callback is not printed
    (the timer re-delivers it); anything else goes to the previous hook."""
    if isinstance(unraisable.exc_value, (BudgetExceeded, KeyboardInterrupt)):
        return
    _PREV_UNRAISABLE[-1](unraisable)


_PREV_UNRAISABLE: list = []


def _rearm(seconds: float) -> None:
    if _WORK.armed and threading.current_thread() is threading.main_thread():
        signal.setitimer(_TIMER, seconds, 0.02)


def _can_alarm() -> bool:
    return (hasattr(signal, "setitimer") and hasattr(signal, "ITIMER_PROF")
            and threading.current_thread() is threading.main_thread())


_TIMER = getattr(signal, "ITIMER_PROF", None)
_SIGNAL = getattr(signal, "SIGPROF", None)


def _pin_sympy_rng() -> None:
    """Seed SymPy's own random generators (used by some polynomial algorithms) with a
    constant, so that a derivation takes the same path in every process."""
    try:
        from sympy.core.random import seed
    except ImportError:  # pragma: no cover - a SymPy without sympy.core.random
        return
    seed(0)


def _deterministic_assumptions() -> None:
    """Make SymPy's assumption queries try related facts in sorted order.

    SymPy shuffles the facts it tries next (a list built from a set of fact names, so
    its order also depends on the string hash seed), with a generator seeded from the
    OS.  The answer does not depend on the order (SymPy shuffles only to expose
    inconsistent handlers), but the number of calls does — ±1 % for GELU's derivation,
    enough to flip a budget verdict.  Sorting is one of the orders SymPy allows and is
    the same in every process, whatever ``PYTHONHASHSEED``.
    """
    try:
        assumptions = importlib.import_module("sympy.core.assumptions")
    except ImportError:  # pragma: no cover
        return
    if callable(getattr(assumptions, "shuffle", None)):
        assumptions.shuffle = list.sort  # type: ignore[attr-defined]


_deterministic_assumptions()
# also before any budget: assumptions computed while parsing are cached on the objects and
# change the derivation's later path, so they must not depend on the OS seed either
_pin_sympy_rng()


@contextmanager
def time_budget(seconds: float) -> Iterator[bool]:
    """Raise :class:`BudgetExceeded` inside the block after ``seconds`` of *counted work*.

    The budget is counted in Python function calls (``seconds × CALLS_PER_SECOND``,
    through :func:`sys.settrace`), not in time: the same computation gets the same
    verdict on an idle and on a loaded machine, so results (closed form or quadrature)
    do not depend on the load.  A CPU-time timer at ``SAFETY_FACTOR`` times the budget
    is kept as a safety net in the main thread (it re-fires every 50 ms, so an
    interrupt dropped inside a finalizer is repeated).

    Ctrl-C: while a budget is active in the main thread, SIGINT sets a flag before
    raising :class:`KeyboardInterrupt`; if library code or a garbage-collector callback
    swallows that exception, the call counter raises it again at the next Python call,
    and leaving the block raises it at the latest.  No gc callback is installed.

    Yields True (the budget is enforced in every thread).  Nested budgets keep the
    tighter limit.
    """
    if seconds <= 0:
        seconds = 0.0
    st = _WORK
    limit = st.count + int(seconds * CALLS_PER_SECOND)
    outer = bool(st.limits)
    prev_trace = sys.gettrace()
    st.limits.append(limit)
    main = _can_alarm()
    if main and not outer:
        old_int = signal.getsignal(signal.SIGINT)

        def _on_sigint(signum, frame):
            st.interrupted = True
            _rearm(0.02)  # repeat it until it lands outside a gc callback or a finalizer
            if callable(old_int) and old_int not in (signal.default_int_handler, _on_sigint):
                old_int(signum, frame)
            raise KeyboardInterrupt

        def _fire(signum, frame):  # noqa: ARG001
            if st.interrupted:
                raise KeyboardInterrupt
            st.exceeded = True
            raise BudgetExceeded()

        old_prof = signal.getsignal(_SIGNAL)
        signal.signal(signal.SIGINT, _on_sigint)
        signal.signal(_SIGNAL, _fire)
        safety = SAFETY_FACTOR * seconds + SAFETY_SECONDS
        st.safety_end = time.process_time() + safety
        st.armed = True
        signal.setitimer(_TIMER, safety, 0.05)
    if not outer:
        _PREV_UNRAISABLE.append(sys.unraisablehook)
        sys.unraisablehook = _quiet_unraisable
        # automatic garbage collection runs finalizers and weakref callbacks (counted calls) at
        # moments that depend on the whole heap and on other threads' allocations: off inside
        # the budget, so that the count depends only on the computation itself
        gc_was_enabled = gc.isenabled()
        gc.disable()
        # SymPy's random generators are seeded from the OS: a fixed seed at the start of
        # each outermost budget makes the path, and the count, a function of the
        # computation alone (see also _deterministic_assumptions)
        _pin_sympy_rng()
    sys.settrace(_tracer)
    try:
        yield True
    except KeyboardInterrupt:
        if not outer:
            st.interrupted = False
        raise
    finally:
        st.limits.pop()
        # an inner budget's BudgetExceeded unset the tracer: the outer one needs it back
        sys.settrace(_tracer if st.limits else (prev_trace if prev_trace is not _tracer else None))
        if not outer and _PREV_UNRAISABLE:
            sys.unraisablehook = _PREV_UNRAISABLE.pop()
        if not outer and gc_was_enabled:
            gc.enable()
        if main and not outer:
            signal.setitimer(_TIMER, 0)
            st.armed = False
            st.exceeded = False
            signal.signal(_SIGNAL, old_prof)
            signal.signal(signal.SIGINT, old_int)
        elif st.exceeded and not st.interrupted:
            # our (inner) budget ran out and was handled: back to the outer safety net
            st.exceeded = False
            if st.armed and main:
                signal.setitimer(_TIMER, max(st.safety_end - time.process_time(), 1e-3), 0.05)
    if st.interrupted and not outer:  # a Ctrl-C that something swallowed: deliver it now
        st.interrupted = False
        raise KeyboardInterrupt


def _bounded(seconds: float, fn: Callable[..., object], *args: object,
             unbounded_ok: bool = False) -> tuple[bool, object]:  # noqa: ARG001 - kept for callers
    """``(True, fn(*args))``, or ``(False, None)`` when ``fn`` ran out of its own work budget.

    A tighter budget that was already running when we started is not ours: its
    :class:`BudgetExceeded` propagates.
    """
    st = _WORK
    mine = st.count + int(seconds * CALLS_PER_SECOND)
    outer_first = bool(st.limits) and min(st.limits) <= mine
    try:
        with time_budget(seconds):
            return True, fn(*args)
    except BudgetExceeded:
        if outer_first and st.count > min(st.limits):  # an outer budget ran out, not ours
            raise
        return False, None


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


#: CPU seconds SymPy's set algebra may spend on branch conditions that are not
#: polynomial in x after :func:`_invert_conditions`.  Without a bound, intersecting the
#: ``ConditionSet``\ s of two erf conditions ran for minutes.
_SPLIT_BUDGET = 1.0

#: Strictly monotone functions, real on the whole line, inverted in branch conditions:
#: ``F ↦ (direction, inf F, sup F, F⁻¹)`` (the range is open: neither end is attained).
_MONOTONE: dict[type, tuple[int, sp.Expr, sp.Expr, Callable[[sp.Expr], sp.Expr]]] = {
    sp.erf: (1, sp.S.NegativeOne, sp.S.One, sp.erfinv),
    sp.erfc: (-1, sp.S.Zero, sp.S(2), lambda c: sp.erfinv(1 - c)),
    sp.tanh: (1, sp.S.NegativeOne, sp.S.One, sp.atanh),
    sp.atan: (1, -sp.pi / 2, sp.pi / 2, sp.tan),
    sp.exp: (1, sp.S.Zero, sp.oo, sp.log),
    sp.sinh: (1, -sp.oo, sp.oo, sp.asinh),
    sp.asinh: (1, -sp.oo, sp.oo, sp.sinh),
}
_FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}


def _compare(c: sp.Expr, v: sp.Expr) -> int | None:
    """Sign of ``c − v`` for real numbers (``v`` may be ±oo); None when undecided."""
    if v in (sp.oo, -sp.oo):
        return -1 if v == sp.oo else 1
    d = sp.N(c - v, 40)
    if d.is_zero or (c - v).is_zero:
        return 0
    if not d.is_real or abs(d) < sp.Float("1e-30"):
        return None  # equal to 40 digits but not provably: leave the condition to SymPy
    return 1 if d > 0 else -1


def _invert_relational(rel: sp.Expr, depth: int = 0) -> sp.Expr:
    """Rewrite ``a·F(u) + b ⋚ 0`` as ``u ⋚ F⁻¹(−b/a)`` (or True/False) for monotone ``F``.

    Applied repeatedly, a condition such as ``erf(x/4 + 3/2) < −3/4`` becomes the
    linear ``x < 4 erfinv(−3/4) − 6``, which SymPy turns into an interval at once.
    Conditions of any other shape are returned unchanged.
    """
    op = rel.rel_op
    if op not in _FLIP or depth > 8:
        return rel
    g = rel.lhs - rel.rhs
    b, rest = g.as_independent(X, as_Add=True)
    a, core = rest.as_independent(X, as_Add=False)
    info = _MONOTONE.get(type(core))
    if info is None or len(core.args) != 1 or not (a.is_number and b.is_number) \
            or not (a.is_extended_real and b.is_extended_real) or a.is_zero is not False:
        return rel
    direction, lo, hi, inverse = info
    c = -b / a
    sign_a = _compare(a, sp.S.Zero)
    if sign_a is None:
        return rel
    if sign_a < 0:
        op = _FLIP[op]
    above, below = _compare(c, lo), _compare(c, hi)
    if above is None or below is None:
        return rel
    if above <= 0:  # F(u) > inf F ≥ c everywhere
        return sp.true if op in (">", ">=", "!=") else sp.false
    if below >= 0:  # F(u) < sup F ≤ c everywhere
        return sp.true if op in ("<", "<=", "!=") else sp.false
    new = sp.Rel(core.args[0], inverse(c), op if direction > 0 else _FLIP[op])
    if isinstance(new, sp.core.relational.Relational):
        return _invert_relational(new, depth + 1)
    return new


def _drop_null_condition(rel: sp.Expr) -> sp.Expr:
    """``Eq(p, 0)`` → False and ``Ne(p, 0)`` → True for a non-constant polynomial ``p`` in x.

    Such a condition changes the function on finitely many points only, which no
    Gaussian expectation sees; SymPy's set algebra, on the other hand, cannot always
    remove a point such as ``erfinv(1/2)`` from an interval.
    """
    if isinstance(rel, sp.core.relational.Relational) and rel.rel_op in ("==", "!="):
        g = rel.lhs - rel.rhs
        if g.is_polynomial(X) and sp.degree(g, X) > 0:
            return sp.false if rel.rel_op == "==" else sp.true
    return rel


def _invert_conditions(pw: sp.Expr) -> sp.Expr:
    """Apply :func:`_invert_relational` and :func:`_drop_null_condition` to every branch
    condition of ``pw``."""
    if not pw.has(sp.Piecewise):
        return pw
    def rewrite(rel: sp.Expr) -> sp.Expr:
        try:
            return _drop_null_condition(_invert_relational(rel))
        except Exception:  # noqa: BLE001 - an optimisation: odd conditions stay as they are
            return rel

    return pw.replace(lambda e: isinstance(e, sp.core.relational.Relational) and e.has(X), rewrite)


def _polynomial_conditions(pw: sp.Expr) -> bool:
    """Whether every branch condition compares rational functions of x."""
    return all((r.lhs - r.rhs).is_rational_function(X)
               for r in pw.atoms(sp.core.relational.Relational) if r.has(X))


def _condition_roots(pw: sp.Piecewise) -> list[sp.Expr] | None:
    """Real roots of every branch condition's ``lhs − rhs`` (numerator and denominator).

    None when a condition is not a rational function of x or its roots are not
    available in closed form (then SymPy's set algebra decides).
    """
    roots: list[sp.Expr] = []
    for rel in pw.atoms(sp.core.relational.Relational):
        if not rel.has(X):
            continue
        g = rel.lhs - rel.rhs
        if not g.is_rational_function(X):
            return None
        for part in sp.fraction(sp.together(g)):
            if not part.has(X):
                continue
            poly = sp.Poly(part, X)
            coeffs = poly.all_coeffs()
            if poly.degree() == 1:
                roots.append(-coeffs[1] / coeffs[0])
            elif all(c.is_Rational for c in coeffs):
                roots.extend(r for r in poly.real_roots())
            else:
                return None
    return roots


def _split_at_roots(pw: sp.Piecewise) -> list[Piece] | None:
    """Pieces of ``pw`` when its conditions change truth value only at known points.

    The finite roots of the conditions (:func:`_condition_roots`) cut the line into
    open intervals on each of which every condition is constant; the branch taken at
    a rational point inside an interval is the branch on the whole interval.
    Adjacent intervals with the same branch are merged.  None when the roots are not
    available or a condition cannot be decided at a test point.
    """
    roots = _condition_roots(pw)
    if roots is None:
        return None
    with mp.workdps(50):
        keyed: dict[str, tuple[mp.mpf, sp.Expr]] = {}
        for r in roots:
            v = r.evalf(50)
            if not v.is_real:
                return None
            keyed.setdefault(mp.nstr(mp.mpf(str(v)), 35), (mp.mpf(str(v)), r))
        cuts = sorted(keyed.values(), key=lambda t: t[0])
        bounds: list[tuple[mp.mpf | None, sp.Expr]] = [(None, -sp.oo), *cuts, (None, sp.oo)]
        out: list[Piece] = []
        for (va, a), (vb, b) in zip(bounds, bounds[1:]):
            if va is None and vb is None:
                t = sp.S.Zero
            elif va is None:
                t = sp.Integer(int(mp.floor(vb)) - 1)
            elif vb is None:
                t = sp.Integer(int(mp.ceil(va)) + 1)
            else:
                t = sp.Rational(mp.nstr((va + vb) / 2, 45))
            branch = None
            for g, cond in pw.args:
                truth = cond.subs(X, t)
                if truth not in (sp.true, sp.false):
                    return None
                if truth is sp.true:
                    branch = g
                    break
            if branch is None:
                raise _NotCovered("a piecewise function undefined on an interval")
            if branch.has(sp.Piecewise):
                raise _NotCovered("nested piecewise")
            if out and out[-1][0] == branch:
                out[-1] = (branch, out[-1][1], b)
            else:
                out.append((branch, a, b))
    return out


def _pieces(f: sp.Expr) -> list[Piece]:
    """Split ``f`` into smooth pieces on intervals of the real line.

    Returns a list of ``(g, a, b)`` with ``f = g`` on ``(a, b)``; points and other
    null sets are dropped (they do not change Gaussian expectations).  Conditions on
    monotone functions (erf, erfc, tanh, atan, exp, sinh, asinh) of x are first
    inverted (:func:`_invert_conditions`); SymPy's set algebra then gets at most
    :data:`_SPLIT_BUDGET` CPU seconds for whatever is not polynomial in x.

    Raises
    ------
    _NotCovered
        If the conditions cannot be reduced to intervals in ``x`` (in time).
    """
    pw = to_piecewise(_invert_conditions(f.rewrite(sp.Piecewise)) if f.has(
        sp.Heaviside, sp.Abs, sp.Max, sp.Min, sp.sign, sp.Piecewise) else f)
    if not isinstance(pw, sp.Piecewise):
        if pw.has(sp.Piecewise):
            raise _NotCovered("nested piecewise")
        return [(pw, -sp.oo, sp.oo)]
    try:
        direct = _split_at_roots(pw)
    except _NotCovered:
        raise
    except Exception:  # noqa: BLE001 - an odd condition (complex, nan): SymPy's set algebra decides
        direct = None
    if direct is not None:
        return direct
    try:
        if _polynomial_conditions(pw):
            pairs = pw.as_expr_set_pairs(sp.Reals)
        else:
            done, pairs = _bounded(_SPLIT_BUDGET, pw.as_expr_set_pairs, sp.Reals)
            if not done:
                raise _NotCovered("conditions not reducible to intervals within the time budget")
    except _NotCovered:
        raise
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
    calls: int = 0                 # work counted by the derivation (Python calls)


_DERIVATIONS: dict[tuple[str, int, bool], _Derivation] = {}


def clear_caches() -> None:
    """Forget every cached derivation and compiled evaluator (for cold timings)."""
    _DERIVATIONS.clear()
    _compile.cache_clear()
    _parity.cache_clear()
    _numeric_integrand.cache_clear()
    _numeric_branches.cache_clear()
    _pieces_cached.cache_clear()
    _singularity_verdict.cache_clear()


#: Odd functions whose ``f(−u) = −f(u)`` SymPy does not always apply by itself.
_ODD_FUNCTIONS = (sp.erf, sp.erfinv, sp.sin, sp.tan, sp.sinh, sp.tanh, sp.atan, sp.asin, sp.asinh,
                  sp.atanh, sp.sign)


def _pull_signs(e: sp.Expr) -> sp.Expr:
    """``erfinv(−tanh(x)) → −erfinv(tanh(x))`` and the like, innermost first."""
    return e.replace(lambda a: isinstance(a, _ODD_FUNCTIONS) and len(a.args) == 1
                     and a.args[0].could_extract_minus_sign(),
                     lambda a: -type(a)(-a.args[0]))


def _is_zero(e: sp.Expr, may_simplify: bool) -> bool:
    if e == 0:
        return True
    if e.has(*_ODD_FUNCTIONS):
        e = _pull_signs(e)
        if e == 0:
            return True
    e2 = sp.expand(e)
    if e2 == 0:
        return True
    return bool(may_simplify and sp.count_ops(e2) < 200 and sp.simplify(e2) == 0)


@lru_cache(maxsize=512)
def _parity(f: sp.Expr, up_to_constant: bool = False, may_simplify: bool = True) -> int:
    """+1 if ``f`` is even, −1 if odd, 0 otherwise (proved symbolically, never guessed).

    With ``up_to_constant`` a smooth function that is odd after subtracting a constant
    (``sigmoid = 1/2 + odd``) counts as odd: derivatives do not see the constant.
    A piecewise function is compared piece by piece (:func:`pieces`): its pieces must
    be mirror images of each other, compared with expansion only (cheap); ``simplify``
    is used for smooth expressions when the time budget is enforced.
    """
    try:
        try:
            ps = pieces(f)
        except _NotCovered:
            return 0
        if len(ps) > 1:
            return _piecewise_parity(ps)
        g = ps[0][0]
        if not g.has(X):
            return 1
        # cheap numeric screen: a symbolic proof is only attempted when the
        # function looks even or odd (up to a constant) at a few points
        fn = _lambdify_guarded(g)
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
        if looks_odd_c and not looks_odd:
            c = sp.expand(gm + g)
            if may_simplify and c.has(X) and sp.count_ops(c) < 200:
                c = sp.simplify(c)
            if c.is_number and c != 0:
                g = g - c / 2
                gm = gm - c / 2
        # try only what the screen suggests: a failed proof costs a simplify
        for sign in ([1] if looks_odd or looks_odd_c else []) + ([-1] if looks_even else []):
            if _is_zero(gm + sign * g, may_simplify):
                return -sign  # gm == -g: odd (sign=+1 -> −1); gm == g: even (+1)
    except BudgetExceeded:
        raise
    except Exception:  # noqa: BLE001 - parity is an optimisation; any failure means "unknown"
        return 0
    return 0


def _piecewise_parity(ps: Sequence[Piece]) -> int:
    """Parity of a function given by its (merged, sorted) pieces: +1, −1 or 0 (unknown)."""
    n = len(ps)
    for i in range(n):  # the partition itself must be symmetric about 0
        _g, a, b = ps[i]
        _gm, am, bm = ps[n - 1 - i]
        if not (sp.expand(a + bm) == 0 and sp.expand(b + am) == 0):
            return 0
    for sign in (-1, 1):
        if all(_is_zero(ps[n - 1 - i][0].subs(X, -X) + sign * ps[i][0], False) for i in range(n)):
            return -sign
    return 0


def _derive(f: sp.Expr, order: int, budget: float, allow_integrate: bool) -> _Derivation:
    """The closed form of ``E[f^{(order)}(τξ)]`` within ``budget`` (work-counted seconds).

    Cached; a cache hit charges the work the derivation originally counted (so that a
    caller sharing one budget among several derivations, like
    :func:`~ntk_theory.moments.gaussian_moments`, sees the same remaining budget whether
    or not the derivation was cached), and a derivation that ran out of budget is
    retried when a larger budget is offered.  Deterministic: the same call always gives
    the same answer, whatever the machine load.
    """
    key = (sp.srepr(f), order, allow_integrate)
    limit = int(max(budget, 0.0) * CALLS_PER_SECOND)
    hit = _DERIVATIONS.get(key)
    if hit is not None and not (hit.note == "time budget exceeded" and limit > hit.calls):
        if hit.note == "time budget exceeded" or hit.calls > limit:
            # the cached answer needed more work than is offered now: a fresh run would
            # have run out, so answer that way and charge the whole budget
            _WORK.derived += limit
            return _Derivation(None, (), "time budget exceeded", limit)
        _WORK.derived += hit.calls
        return hit
    start = _WORK.count
    try:
        with time_budget(budget) as enforced:
            res = _derive_uncached(f, order, allow_integrate and enforced, enforced)
        res = _Derivation(res.expr, res.conditions, res.note, _WORK.count - start)
    except BudgetExceeded:
        res = _Derivation(None, (), "time budget exceeded", limit)
    _WORK.derived += res.calls
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
    if any(v.has(sp.CRootOf) for _g, a, b in ps for v in (a, b)):
        # a breakpoint that is a root of a quintic (or a casus irreducibilis SymPy keeps as
        # CRootOf) has no mpmath evaluator: quadrature, which takes it at working precision
        return _Derivation(None, (), "pieces: breakpoint without a closed form")
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
    """Integrands plain ``sympy.integrate`` is known not to finish (docs/reference.rst §1).

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
    return r if _agrees_with_quadrature(r, h, lo, hi) else None


def _agrees_with_quadrature(r: sp.Expr, h: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> bool:
    """Whether SymPy's ``r = ∫_lo^hi h φ`` matches a quick quadrature at τ = 0.7 and 1.3.

    ``sympy.integrate`` is not trusted blindly: it returned 0 for
    ``∫_c^∞ (erf(τz) + 1) φ(z) dz``, a wrong closed form the
    engine would otherwise have certified.
    """
    try:
        for t in ("0.7", "1.3"):
            with mp.workdps(25):
                tv = mp.mpf(t)
                rv = _to_real(_lambdify_guarded(r, TAU)(tv))
                # the integrand is sampled far into the tails (tanh-sinh nodes at |z| ≫ 1): a
                # tower there must be cut by the guards, not built by mpmath
                hv = _lambdify_guarded(h.subs(TAU, sp.Rational(t)), _Z)
                ends = [mp.mpf(str(sp.N(e.subs(TAU, sp.Rational(t)), 30))) if e.is_finite is not False
                        else (mp.inf if e == sp.oo else -mp.inf) for e in (lo, hi)]
                q = mp.quad(lambda z: hv(z) * mp.npdf(z), [ends[0], 0, ends[1]] if ends[0] < 0 < ends[1]
                            else ends)
                if not abs(rv - _to_real(q)) <= mp.mpf("1e-12") * (1 + abs(q)):
                    return False
    except BudgetExceeded:
        raise
    except Exception:  # noqa: BLE001 - anything that cannot be checked is not trusted
        return False
    return True


def _tidy(expr: sp.Expr) -> sp.Expr:
    """Cheap simplifications that keep tail-safe erfc forms intact."""
    e = sp.expand_power_exp(expr)
    e = sp.powsimp(e, combine="exp")
    if e.has(sp.I):
        # sin/cos went through complex exponentials: the value is real, so keep the real
        # part (cheap), and polish it with simplify only while it is small (simplify's
        # cost grows fast with size; it was most of the fuzz run's symbolic time)
        e = sp.re(sp.expand_complex(e))
        if sp.count_ops(e) <= 30:
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
    return _lambdify_guarded(expr, TAU)


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
            try:
                v = _to_real(fn(mp.mpf(t)))
            except _Unevaluable as exc:  # sin of an astronomically large argument
                raise NumericalError(f"the closed form cannot be evaluated at tau={tau:g}: {exc}") from None
        if not mp.isfinite(v):
            # erfinv(±1) inside a closed form, inf − inf, or an exp tower cut by the guard
            raise NumericalError(f"the closed form does not evaluate to a finite number at tau={tau:g}")
        if prev is not None:
            diff = abs(v - prev)
            if diff <= abs(v) * mp.mpf(10) ** (-(digits + 3)) or v == prev:
                # beyond float64 the error stays an mpf (a float would say "inf")
                return v, (float(diff) if math.isfinite(float(diff)) else diff)
        prev = v
        dps *= 2
    raise NumericalError(f"closed form did not stabilise at τ={tau} (cancellation beyond 1200 digits)")


class _Unevaluable(ValueError):
    """Internal: an argument so large that mpmath would need astronomically many digits."""


#: ``exp(a)`` for ``a`` above this is taken as ``+inf``: 10^434294 already exceeds any value
#: a Gaussian weight at the sampled points (|ξ| ≤ 640) can compensate, and feeding such a
#: number to a further ``exp`` (a tower ``exp(exp(exp(x)))``) would make mpmath build
#: integers with that many digits (minutes, then MemoryError).
_EXP_ARGUMENT_CAP = mp.mpf(10) ** 6
#: The same cap for a closed form in τ, whose value is the expectation itself (no Gaussian
#: weight follows): ``e^{τ²/2}`` at τ = 10⁴ (argument 5·10⁷) and ``e^{2a²τ²}`` of a large
#: slope are legitimate values mpmath computes in microseconds (an argument of 10^k costs
#: it about 3.3·k extra bits).  Beyond 10^100 only a tower (``exp(exp(exp(τ)))`` at τ = 10)
#: reaches, whose next ``exp`` would need more digits than memory holds.
_CLOSED_FORM_EXP_CAP = mp.mpf(10) ** 100
#: Periodic and Bessel functions of an argument beyond this need as many bits of precision
#: as the argument has to reduce it: refused (:class:`_Unevaluable`).
_OSCILLATORY_ARGUMENT_CAP = mp.mpf(10) ** 100


#: ``exp(a)`` for ``a`` below this is taken as 0 (it is below 10^(−4·10^29)); mpmath would
#: reduce such an argument with as many bits of log 2 as the argument has digits.
_EXP_UNDERFLOW = -mp.mpf(10) ** 30


def _guarded_exp(cap: mp.mpf) -> Callable:
    def g(a):
        if isinstance(a, mp.mpf):
            if a > cap:
                return mp.inf
            if a < _EXP_UNDERFLOW:
                return mp.mpf(0)
        return mp.exp(a)
    return g


def _guarded_hyperbolic(fn: Callable, even: bool, cap: mp.mpf) -> Callable:
    def g(a):
        if isinstance(a, mp.mpf) and abs(a) > cap:
            return mp.inf if (even or a > 0) else -mp.inf
        return fn(a)
    return g


def _guarded_oscillatory(fn: Callable) -> Callable:
    def g(*args):
        if any(isinstance(a, (mp.mpf, mp.mpc)) and (not mp.isfinite(a) or abs(a) > _OSCILLATORY_ARGUMENT_CAP)
               for a in args):
            raise _Unevaluable("argument beyond the range where an oscillatory function can be evaluated")
        return fn(*args)
    return g


def _guarded_mpmath(exp_cap: mp.mpf) -> dict[str, Callable]:
    """mpmath's functions with growth guards, ``exp``/``cosh``/``sinh`` capped at ``exp_cap``."""
    return {
        "exp": _guarded_exp(exp_cap),
        "cosh": _guarded_hyperbolic(mp.cosh, True, exp_cap),
        "sinh": _guarded_hyperbolic(mp.sinh, False, exp_cap),
        **{name: _guarded_oscillatory(getattr(mp, name)) for name in ("sin", "cos", "tan", "cot", "sec",
                                                                        "csc", "besselj", "bessely")},
    }


#: The guards for a function of x or of the Gaussian variable z (an integrand, multiplied
#: by a Gaussian weight afterwards) and for a closed form in τ (the value itself).
_GUARDED_MPMATH = _guarded_mpmath(_EXP_ARGUMENT_CAP)
_GUARDED_MPMATH_CLOSED = _guarded_mpmath(_CLOSED_FORM_EXP_CAP)


def _lambdify_guarded(expr: sp.Expr, var: sp.Symbol = X) -> Callable[[mp.mpf], mp.mpf]:
    """``expr`` as an mpmath function of ``var`` whose ``exp``, ``cosh``, ``sinh`` and
    periodic/Bessel functions are growth-guarded, so a tower (``exp(exp(exp(x)))`` in the
    Gaussian tail, ``exp(exp(exp(τ)))`` at τ = 10) gives ``±inf`` or a typed refusal at
    once instead of mpmath building a number with astronomically many digits (minutes,
    then ``MemoryError``).

    Every numeric lambdify of the engine goes through here.  ``var`` is :data:`X` or the
    Gaussian variable (an integrand: exp beyond :data:`_EXP_ARGUMENT_CAP` is ``+inf``, as
    no Gaussian weight at the sampled points compensates it) or :data:`TAU` (a closed
    form, whose value may legitimately exceed that, up to :data:`_CLOSED_FORM_EXP_CAP`).
    """
    guards = _GUARDED_MPMATH_CLOSED if var == TAU else _GUARDED_MPMATH
    return sp.lambdify(var, expr, modules=[guards, "mpmath"])


@lru_cache(maxsize=256)
def _numeric_integrand(f: sp.Expr, order: int) -> Callable[[mp.mpf], mp.mpf]:
    return _lambdify_guarded(to_piecewise(f))


def _is_real_valued(fn: Callable, pts: Sequence[mp.mpf]) -> None:
    for t in pts:
        try:
            v = fn(t)
        except (ZeroDivisionError, ValueError):
            continue
        if isinstance(v, mp.mpc) and abs(v.imag) > 1e-20 * max(1, abs(v.real)):
            raise DomainError(f"the activation is not real-valued at x = {mp.nstr(t, 6)}")


def _singular_points(f: sp.Expr) -> list[sp.Expr]:
    """Real points where ``f`` may be singular, exact and sorted.

    Zeros of denominators (at any location: ``1/(x − 1/3)``, ``1/(x² − 2)``), of
    logarithm arguments and of Bessel-K arguments.  The points are kept exact
    (rationals, radicals, ``CRootOf``) so that they can be evaluated at any
    precision: a pole rounded to float64 is 1e−17 away from the true one, where
    the integrand is bounded and a pole looks integrable.
    """
    return list(_singular_points_cached(f))


@lru_cache(maxsize=512)
def _singular_points_cached(f: sp.Expr) -> tuple[sp.Expr, ...]:
    pts: dict[str, sp.Expr] = {}
    cands: list[sp.Expr] = []
    for sub in sp.preorder_traversal(to_piecewise(f)):
        if isinstance(sub, sp.Pow) and sub.exp.is_negative:
            cands.append(sub.base)
        elif isinstance(sub, sp.log):
            cands.append(sub.args[0])
        elif isinstance(sub, sp.besselk) and sub.args[1].has(X):
            cands.append(sub.args[1])
        elif isinstance(sub, (sp.tan, sp.cot, sp.sec, sp.csc)) and sub.args[0].has(X):
            raise DivergenceError(f"{sub} has poles on the real line")
        elif isinstance(sub, sp.gamma) and sub.args[0].has(X):
            _check_gamma_argument(sub.args[0])
    for c in cands:
        if not c.has(X):
            continue
        try:
            done, sol = _bounded(_SPLIT_BUDGET, sp.solveset, c, X, sp.Reals, unbounded_ok=True)
        except Exception:  # noqa: BLE001
            done, sol = False, None
        if not done or sol is None or isinstance(sol, sp.ConditionSet):
            # a pole or a branch point may or may not be there: neither a value nor
            # "divergent" can be certified
            raise NumericalError(f"cannot locate the real zeros of {c}, where the activation may "
                                 "be singular; quadrature would be unreliable")
        if isinstance(sol, sp.FiniteSet):
            for r in sol:
                if r.is_real is False:
                    continue
                v = sp.N(r, 40)
                if v.is_real:
                    pts.setdefault(sp.sstr(v), r)
        elif sol is not sp.S.EmptySet:
            raise DivergenceError(f"{c} vanishes at infinitely many points of the real line, where "
                                  "the activation is singular")
    return tuple(sorted(pts.values(), key=lambda r: float(sp.N(r, 30))))


def _check_gamma_argument(u: sp.Expr) -> None:
    """``gamma(u)`` has poles at u = 0, −1, −2, …: refuse unless ``u`` provably avoids them."""
    if u.is_positive:
        return
    if u.is_polynomial(X):
        p = sp.Poly(u, X)
        if p.degree() % 2 == 1 or p.LC().is_negative:
            raise DivergenceError(f"gamma({u}) has poles on the real line (gamma is infinite at "
                                  "0, -1, -2, ..., which the argument reaches)")
    raise NumericalError(f"cannot certify that gamma({u}) has no poles on the real line")


#: Local exponent ``a`` of a singularity ``|f| ~ |x − s|^(−a)``: integrable below
#: :data:`_INTEGRABLE_BELOW`, not integrable from :data:`_DIVERGENT_FROM` on, refused
#: in between (``1/(x log|x|)`` has ``a → 1`` from below and is not integrable).
_INTEGRABLE_BELOW = 0.95
_DIVERGENT_FROM = 0.999


def _local_exponent(fn: Callable, s: sp.Expr) -> float:
    """The exponent ``a`` with ``|fn(s ± h)| ≈ h^(−a)`` as h → 0 (worse side), from the
    values at h = 1e−40 and 1e−80 at 140 digits around the exact point ``s``."""
    worst = -math.inf
    with mp.workdps(140):
        sv = mp.mpf(sp.N(s, 140).__str__()) if not s.is_Rational else mp.mpf(s.p) / s.q
        for side in (-1, 1):
            vals = []
            for k in (40, 80):
                h = mp.mpf(10) ** (-k)
                try:
                    v = fn(sv + side * h)
                    v = abs(v.real if isinstance(v, mp.mpc) else v)
                except (ZeroDivisionError, ValueError, OverflowError):
                    v = mp.inf
                vals.append(v)
            if vals[1] == mp.inf or mp.isnan(vals[1]):
                return math.inf
            if vals[0] == 0 or vals[1] == 0:
                continue
            worst = max(worst, float(mp.log(vals[1] / vals[0]) / mp.log(mp.mpf(10) ** 40)))
    return worst


def _check_singularity(fn: Callable, s: sp.Expr, tau: float, order: int, squared: bool) -> float:
    """Raise :class:`DivergenceError` at a non-integrable singularity (a pole of order ≥ 1,
    ``exp(1/x)``), :class:`NumericalError` when the local exponent is too close to 1 to
    tell; integrable singularities (``|x|^(−0.9)``, ``log|x|``) pass."""
    a = _local_exponent(fn, s)
    where = sp.sstr(s) if len(sp.sstr(s)) < 30 else f"{float(sp.N(s, 20)):.10g}"
    if a >= _DIVERGENT_FROM:
        raise DivergenceError(
            f"the expectation diverges: the activation has a non-integrable singularity at x = {where}"
        )
    if a >= _INTEGRABLE_BELOW:
        raise NumericalError(f"the singularity at x = {where} behaves like |x - s|^(-{a:.4f}): too close "
                             "to non-integrable to certify a value")
    return a


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


@lru_cache(maxsize=256)
def _numeric_branches(f: sp.Expr) -> tuple[tuple[Callable[[mp.mpf], mp.mpf], sp.Expr, sp.Expr], ...] | None:
    """Each piece's own expression compiled for mpmath, with its exact ends; None if ``f``
    cannot be split."""
    try:
        ps = pieces(f)
    except _NotCovered:
        return None
    return tuple((_lambdify_guarded(g), a, b) for g, a, b in ps)


#: Cap on quadrature work, in units of one subinterval at 25 digits (the cost of an
#: mpmath evaluation grows like the square of the precision and the number of nodes
#: the rules need grows with it too: cube); 400 units are
#: about 10 CPU seconds (two rules, ~10–25 ms per subinterval each).  Beyond it a
#: request is refused up front instead of running for minutes (``floor(100*x)`` with
#: ``digits=200``).
_MAX_QUAD_WORK = 400
#: Most extra digits the cancellation loop of :func:`_numeric` may add.
_MAX_EXTRA_DIGITS = 60


def _tail_magnitude(integrand: Callable[[mp.mpf], mp.mpf], z: mp.mpf) -> mp.mpf:
    """``|integrand(z)|`` far in a tail, raising the precision when the value is not
    representable at the working one (``erfinv(tanh(x))`` at x = 640: ``tanh`` rounds
    to 1 below ~560 digits and ``erfinv(1) = inf``)."""
    dps = mp.mp.dps
    while True:
        try:
            with mp.workdps(dps):
                v = abs(integrand(z))
        except _Unevaluable:
            raise NumericalError(
                f"the activation cannot be evaluated in the Gaussian tail (x = {mp.nstr(z, 4)}·tau): an "
                "oscillatory function of an astronomically large argument; no certified value") from None
        except (OverflowError, ZeroDivisionError, ValueError, mp.libmp.libhyper.NoConvergence):
            v = mp.inf
        if mp.isfinite(v) or dps >= 1200:
            return v if not mp.isnan(v) else mp.inf
        dps = min(1200, max(2 * dps, int(abs(z) * abs(z) / 2.3) + 30))


def _plain_magnitude(integrand: Callable[[mp.mpf], mp.mpf], z: mp.mpf) -> mp.mpf:
    try:
        v = abs(integrand(z))
    except (OverflowError, ZeroDivisionError, ValueError, mp.libmp.libhyper.NoConvergence):
        return mp.inf
    return mp.inf if mp.isnan(v) else v


def _numeric(f: sp.Expr, tau: float, order: int, digits: int, nonneg: bool) -> tuple[mp.mpf, float]:
    """mpmath quadrature of ``E[f(τξ) He_k(ξ)]/τ^k``, piece by piece, certified or refused.

    Each piece ``(g, a, b)`` is integrated with its own analytic expression ``g`` over
    ``(a/τ, b/τ)``, the ends taken at working precision from their exact values:
    no branch condition is evaluated inside the quadrature, so a jump can never sit
    between a node and the true breakpoint.  Singular points (exact, any algebraic
    location) and jumps of ``floor``/``ceiling`` are nodes.

    Certification: two independent rules — tanh-sinh (with its own error estimate) and
    Gauss–Legendre on a finer subdivision — must agree.  The error reported is the
    larger of tanh-sinh's estimate and the difference of the two rules, and it must be
    below ``10^−digits`` relative to the value; otherwise, when the integrand's size
    exceeds the value by many orders (cancellation: ``(σ²)''`` of softplus with
    β = 1e−20), the precision is raised by that many digits and the pair is repeated.
    A value below its own error is reported as 0 ± error when the error is below
    ``10^−digits`` of the integrand's size.  Anything else is a :class:`NumericalError`
    (``sin(1/x)``: infinitely many oscillations that neither rule resolves).
    """
    fn = _numeric_integrand(f, order)
    sing = _singular_points(f)
    branches = _numeric_branches(f)
    if branches is None:
        if f.has(sp.Piecewise, sp.Heaviside, sp.sign) and not f.has(*_STEP_FUNCTIONS):
            raise NumericalError(f"cannot locate the discontinuities of {f} (conditions that "
                                 "are not intervals in x); quadrature would be unreliable")
        branches = ((fn, -sp.oo, sp.oo),)
    extra = 10 + (order * max(0, int(math.ceil(-math.log10(tau)))) if tau < 1 else 0)
    dps = digits + extra
    # jumps beyond |ξ| = w, where φ(w) < 10^−(dps+20), do not change the value at this precision
    window = min(40.0, math.sqrt(2 * math.log(10) * (dps + 20)))
    jumps = _step_function_jumps(f, tau, window) if f.has(*_STEP_FUNCTIONS) else []
    work = (len(jumps) + len(sing) + 2 * len(branches)) * max(1.0, dps / 25) ** 3
    if work > _MAX_QUAD_WORK:
        raise ResourceError(f"quadrature of {_clip(f)} at {digits} digits would need "
                            f"{len(jumps) + len(sing) + len(branches)} subintervals at {dps} digits, "
                            "beyond the work limit; ask for fewer digits")
    with mp.workdps(dps + 10):
        t = mp.mpf(tau)
        _is_real_valued(fn, [t * z for z in (-3, -1, -0.5, 0.5, 1, 3)])
    expo: dict[sp.Expr, float] = {}
    for s in sing:
        try:
            expo[s] = _check_singularity(fn, s, tau, order, nonneg)
        except DivergenceError:
            if nonneg:
                return mp.inf, 0.0
            raise
    He = {0: lambda z: 1, 1: lambda z: z, 2: lambda z: z * z - 1}[order]

    def setup(dps: int):
        """Pieces with their ends in z = x/τ at ``dps`` digits, and the integrand's size."""
        with mp.workdps(dps + 10):
            t = mp.mpf(tau)
            inv_sqrt_2pi = 1 / mp.sqrt(2 * mp.pi)

            def weighted(g: Callable[[mp.mpf], mp.mpf]) -> Callable[[mp.mpf], mp.mpf]:
                def integrand(z: mp.mpf) -> mp.mpf:
                    try:
                        v = g(t * z)
                    except ZeroDivisionError:
                        return mp.mpf(0)
                    if isinstance(v, mp.mpc):
                        v = v.real
                    return v * He(z) * mp.exp(-z * z / 2) * inv_sqrt_2pi
                return integrand

            def z_of(v: sp.Expr) -> mp.mpf:
                if v in (sp.oo, -sp.oo):
                    return mp.inf if v == sp.oo else -mp.inf
                return mp.mpf(str(sp.N(v, dps + 15))) / t

            parts = [(weighted(g), z_of(a), z_of(b)) for g, a, b in branches]

            def integrand(z: mp.mpf) -> mp.mpf:
                for h, _za, zb in parts:
                    if z < zb:
                        return h(z)
                return parts[-1][0](z)

            sing_z = {z_of(s): s for s in sing}
            zs = sorted(set(sing_z) | {mp.mpf(j) / t for j in jumps} | {mp.mpf(0)})
            size = mp.mpf(0)
            for v in (-2, -1, -0.5, 0.5, 1, 2, "-1.37", "0.73"):
                try:
                    a = abs(integrand(mp.mpf(v)))
                except (ZeroDivisionError, ValueError):
                    continue
                if mp.isfinite(a):  # a sample point may sit on a singularity
                    size = max(size, a)
            size = size or mp.mpf(1)
            tiny = size * mp.mpf(10) ** (-(dps + 8))
            lo_edge, hi_edge = -mp.inf, mp.inf
            for cut in (8, 12, 16, 24, 32, 48, 64, 96):
                c = mp.mpf(cut)
                if all(_plain_magnitude(integrand, side * c * k) < tiny for side in (-1, 1) for k in (1, 1.5, 2)):
                    lo_edge, hi_edge = -c, c
                    break
            spans = []
            for h, za, zb in parts:
                lo, hi = max(za, lo_edge), min(zb, hi_edge)
                if lo < hi:
                    spans.append((h, lo, hi, [z for z in zs if lo < z < hi], sing_z))
            return integrand, spans, size

    integrand, spans, size = setup(dps)
    # divergence: the integrand must decay in both tails
    with mp.workdps(dps + 10):
        for side in (-1, 1):
            mags = [_tail_magnitude(integrand, mp.mpf(side * z)) for z in (10, 40, 160, 640)]
            if not (mags[-1] < mp.mpf("1e-40") * max(mags[0], mp.mpf("1e-300")) or mags[-1] == 0):
                if nonneg:
                    return mp.inf, 0.0
                raise DivergenceError(
                    "the expectation diverges: the activation grows too fast for a Gaussian at this scale"
                )
    used = dps
    for attempt in range(3):
        v1, e1, v2 = _quadrature_pair(spans, used, tau, expo)
        with mp.workdps(used + 5):
            # the two rules' difference estimates the error of either; doubled, plus the
            # rounding of ~1000 nodes at the working precision (1000 ulps of the integrand), it bounds it
            err = 2 * max(abs(e1), abs(v2 - v1)) + size * mp.mpf(10) ** (3 - used)
            value = v1
            if not (mp.isfinite(value) and mp.isfinite(err) and mp.isfinite(size)):
                raise NumericalError(f"quadrature of {_clip(f)} at tau={tau:g} met a non-finite value "
                                     "(an unresolved singularity); no certified result")
            target = mp.mpf(10) ** (-digits)
            if abs(value) > err and err <= target * abs(value):
                break
            # digits eaten by cancellation (the integrand ≫ the value): raise the precision
            lost = int(mp.ceil(mp.log10(size / max(abs(value), err, size * mp.mpf(10) ** (-used - 10)))))
            if lost > 3 and attempt < 2 and used - dps < _MAX_EXTRA_DIGITS:
                used = min(dps + _MAX_EXTRA_DIGITS, used + lost + 10)
                integrand, spans, size = setup(used)
                continue
            if abs(value) <= err and err <= target * size * mp.mpf(10) ** (-(used - dps)):
                value = mp.mpf(0)  # zero to the working precision: 0 ± err
                break
        raise NumericalError(
            f"quadrature could not certify {digits} digits for {_clip(f)} at tau={tau:g}: two "
            f"independent rules differ by {mp.nstr(err, 3)} (value {mp.nstr(value, 6)})")
    else:  # pragma: no cover - the loop always breaks or raises
        raise NumericalError("quadrature did not converge")
    with mp.workdps(used + 5):
        scale = mp.mpf(tau) ** order  # at the working precision: τ² rounded to double cost 1e-17
        value = value / scale  # keep the working precision: no rounding to double here
        err_f = float(err / scale)
    if nonneg and value < 0 and abs(value) <= err_f:
        value = mp.mpf(0)
    return value, err_f


#: Power of the substitution ``z = s ± u^m`` next to a singular point ``s``: it turns
#: ``|z − s|^(−a)`` into ``m·u^(m(1−a)−1)``, bounded for every a ≤ 0.95 (the refusal limit).
_SING_POWER = 20


def _near_singularity(h: Callable, s: sp.Expr, side: int, tau: float, dps: int, a: float) -> Callable:
    """``u ↦ h(s/τ + side·u^m)·m·u^(m−1)``, evaluated at the precision that resolves
    ``s + side·u^m`` (``s`` exact, taken to as many digits as the offset needs)."""
    m = _SING_POWER
    cache: dict[int, mp.mpf] = {}

    def point(prec: int) -> mp.mpf:
        if prec not in cache:
            with mp.workdps(prec):
                cache[prec] = mp.mpf(str(sp.N(s, prec + 5))) / mp.mpf(tau)
        return cache[prec]

    with mp.workdps(30):
        mag = max(0, int(mp.ceil(mp.log10(abs(point(30)))))) if s != 0 else 0
    # |h| ≲ |z − s|^(−a): the part within δ of s is ≲ δ^(1−a)/(1−a); drop it below 10^−(dps+5)
    cutoff = mp.mpf(10) ** (-min(dps + 690, int((dps + 5) / (1 - min(max(a, 0.0), _INTEGRABLE_BELOW))) + 1))

    def g(u: mp.mpf) -> mp.mpf:
        if u == 0:
            return mp.mpf(0)
        off = u ** m
        if off < cutoff:  # ∫ over |z − s| < cutoff is below 10^−(dps+5) for this exponent
            return mp.mpf(0)
        if s == 0:  # s + u^m is exact in floating point: no extra digits needed
            with mp.workdps(dps):
                return +(h(side * off) * m * u ** (m - 1))
        need = dps + 10 + mag + max(0, int(-mp.log10(off)))
        if need > dps + 700:  # ∫ over |z − s| < 10^−690 is below 10^−30 for a ≤ 0.95
            return mp.mpf(0)
        with mp.workdps(need):
            z = point(need) + side * off
            v = h(z) * m * u ** (m - 1)
        return +v

    return g


def _quadrature_pair(spans, dps: int, tau: float,
                     expo: dict | None = None) -> tuple[mp.mpf, mp.mpf, mp.mpf]:
    """``(tanh-sinh value, its error estimate, Gauss–Legendre value)`` over ``spans``.

    The Gauss–Legendre pass splits every subinterval once more (at its midpoint, or at
    ±1.5, ±4 on an infinite one) so that the two rules share no nodes.  A subinterval
    that ends at a singular point is integrated, by both rules, after the substitution
    ``z = s ± u^m`` (:func:`_near_singularity`).
    """
    expo = expo or {}
    v1 = e1 = v2 = mp.mpf(0)
    for h, lo, hi, inner, sing_z in spans:
        pts = [lo, *inner, hi]
        plain: list[list[mp.mpf]] = [[pts[0]]]
        singular: list[tuple[Callable, mp.mpf]] = []
        for a, b in zip(pts, pts[1:]):
            sa, sb = a in sing_z, b in sing_z
            if not (sa or sb):
                plain[-1].append(b)
                continue
            plain.append([b])
            if sa and sb:
                mids = [(a + b) / 2]
            elif not (mp.isfinite(a) and mp.isfinite(b)):
                mids = [a + 1 if sa else b - 1]
            else:
                mids = []
            cuts = [a, *mids, b]
            for c, d in zip(cuts, cuts[1:]):
                if c in sing_z:
                    if mp.isfinite(d):
                        singular.append((_near_singularity(h, sing_z[c], 1, tau, dps, expo.get(sing_z[c], 0.95)),
                                         (d - c) ** (mp.mpf(1) / _SING_POWER)))
                    else:
                        plain.append([c, d])
                elif d in sing_z:
                    if mp.isfinite(c):
                        singular.append((_near_singularity(h, sing_z[d], -1, tau, dps, expo.get(sing_z[d], 0.95)),
                                         (d - c) ** (mp.mpf(1) / _SING_POWER)))
                    else:
                        plain.append([c, d])
                else:
                    plain.append([c, d])
        plain = [p for p in plain if len(p) > 1]
        with mp.workdps(dps):
            for p in plain:
                v, e = mp.quad(h, p, error=True, maxdegree=10 if dps <= 60 else 8)
                v1 += v
                e1 += abs(e)
            for g, top in singular:
                v, e = mp.quad(g, [0, top], error=True, maxdegree=10 if dps <= 60 else 8)
                v1 += v
                e1 += abs(e)
        with mp.workdps(dps + 5):
            for p in plain:
                finer = set(p) | {mp.mpf(c) for c in (-4, -1.5, 1.5, 4) if p[0] < c < p[-1]}
                for a, b in zip(p, p[1:]):
                    if mp.isfinite(a) and mp.isfinite(b):
                        finer.add((a + b) / 2)
                v2 += mp.quad(h, sorted(finer), method="gauss-legendre", maxdegree=7 if dps <= 60 else 6)
            for g, top in singular:
                v2 += mp.quad(g, [0, top / 2, top], method="gauss-legendre", maxdegree=7 if dps <= 60 else 6)
    return v1, e1, v2


def _clip(e: sp.Expr, n: int = 60) -> str:
    s = sp.sstr(e)
    return s if len(s) <= n else s[: n - 3] + "..."


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
#: The range of τ the engine accepts (and its tests cover); outside it a typed
#: :class:`~ntk_theory.errors.DomainError` is raised rather than a value computed with
#: tolerances never checked there.
TAU_MIN = 1e-4
TAU_MAX = 1e4


def _validate_tau(tau: float) -> float:
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise DomainError(f"tau must be a number, got {tau!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise DomainError(f"tau must be finite and > 0, got {tau!r}")
    if not TAU_MIN <= t <= TAU_MAX:
        raise DomainError(f"tau={t:g} is outside the supported range [{TAU_MIN:g}, {TAU_MAX:g}] "
                          "where moments are tested and certified")
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
        r = _gaussian_expectation(f, tau, order, digits, budget, nonnegative, symbolic)
        if isinstance(r.value, mp.mpc) or (r.expr is not None and r.expr.has(sp.I)):
            v = r.value
            if isinstance(v, mp.mpc) and abs(v.imag) > mp.mpf(10) ** (-digits) * max(abs(v.real), 1):
                raise DomainError(f"{_clip(f)} is not real-valued on the real line (complex expectation "
                                  f"{mp.nstr(v, 6)})")
            if isinstance(v, mp.mpc):
                r = Expectation(v.real, r.abs_error, r.expr, r.method)
        return r
    except NTKTheoryError:
        raise
    except (KeyError, NameError, AttributeError, ValueError, ZeroDivisionError, OverflowError,
            mp.libmp.libhyper.NoConvergence) as exc:
        # a subexpression with no numerical value (gamma at a pole: SymPy's zoo has no mpmath
        # name), or mpmath giving up: no certified number
        raise NumericalError(f"{_clip(f)} cannot be evaluated numerically on the real line "
                             f"({type(exc).__name__}: {str(exc)[:80]})") from None
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
    check_supported(f)  # no function without an mpmath path, no oo/nan/I
    f = real_rewrites(f)
    if not f.has(X):
        if not f.is_real:
            raise DomainError(f"the constant {f} is not real")
        val = f if order == 0 else sp.S.Zero
        return Expectation(mp.mpf(sp.N(val, digits + 10)), 0.0, val, "closed form")
    _check_integrable_singularities(f, nonnegative)
    if f.has(*_STEP_FUNCTIONS):
        # polynomials in x and floor/ceiling/frac of linear arguments: exact sums over the
        # intervals between jumps (any number of jumps up to a cap, then a typed refusal),
        # instead of quadrature across hundreds of jumps
        from .jump import step_expectation_mp

        stepped = step_expectation_mp(f, X, tau, order, digits)
        if stepped is not None:
            return Expectation(stepped[0], stepped[1], None, "jump sum")
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


# --------------------------------------------------------------------------- #
# Public entry points for the modules built on the engine
# --------------------------------------------------------------------------- #
#: Raised by :func:`pieces` when an expression is not a sum of pieces the Gaussian
#: table covers (the engine then falls back to quadrature).
NotCovered = _NotCovered


def validate_tau(tau: float) -> float:
    """``tau`` as a float, or :class:`~ntk_theory.errors.DomainError` when it is not a number
    in the supported range ``[TAU_MIN, TAU_MAX]``."""
    return _validate_tau(tau)


def evaluate_closed_form(expr: sp.Expr, tau: float, digits: int) -> tuple[mp.mpf, float]:
    """``(value, abs_error)`` of a closed form in :data:`TAU` at ``tau``, certified to ``digits``.

    The precision doubles until two evaluations agree to ``digits + 3`` digits (up to
    1200 digits, then :class:`~ntk_theory.errors.NumericalError`); the error estimate is
    the difference of the last two.
    """
    return _evaluate_closed(expr, tau, digits)


def derive_closed_form(f: sp.Expr, order: int, budget: float, *,
                       nonnegative: bool = False) -> sp.Expr | None:
    """The closed form in :data:`TAU` of ``E[f^{(order)}(τξ)]`` valid at τ = 1, or None.

    Symbolic work only, within ``budget`` work-counted seconds (charged to
    :func:`derivation_work`): None when the derivation fails or runs out of budget, or
    when the closed form's validity conditions (a growing integrand) fail at τ = 1.

    Raises
    ------
    DivergenceError
        A non-integrable singularity of ``f`` (checked before any derivation).
    """
    _check_integrable_singularities(f, nonnegative)
    der = _derive(f, order, budget, allow_integrate=True)
    if der.expr is None:
        return None
    for cond in der.conditions:
        if cond.is_positive is not True:
            with mp.workdps(30):
                if not _to_real(_compile(cond)(mp.mpf(1))) > 0:
                    return None
    return der.expr


__all__ += ["NotCovered", "validate_tau", "evaluate_closed_form", "derive_closed_form",
            "derivation_work", "CALLS_PER_SECOND", "TAU_MIN", "TAU_MAX"]
