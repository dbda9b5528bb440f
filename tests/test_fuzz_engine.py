"""Fuzzing the Gaussian expectation engine (issue 5 §3).

Random expressions from :func:`ntk_theory.testing.expressions` — including the
``HOSTILE`` leaves (super-Gaussian growth, poles, complex values, cusps, Bessel
functions) — go through :func:`ntk_theory.expectation.gaussian_expectation` one
moment at a time with ``digits=8`` and a 0.2 s symbolic budget.  Each call must
either return a result (closed-form flag, finite error estimate, never NaN, +inf only
for integrands declared non-negative) or raise a documented ``NTKTheoryError``
subclass, within a wall-clock watchdog.  The longer run with counts is
``benchmarks/bench_fuzz.py``.

Engine bugs found by fuzzing are kept below as minimal reproducers (they were
strict xfails until the engine was fixed; now they are regression tests).
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections import Counter

import mpmath as mp
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from ntk_theory.activations import X, from_expr, parse_activation
from ntk_theory.expectation import gaussian_expectation
from ntk_theory.testing import (
    HOSTILE,
    HOSTILE_TEXT_CLASSES,
    EngineOutcome,
    check_expectation,
    check_text,
    expressions,
    hostile_texts,
    taus,
)

#: Hostile leaves used in CI.  Left out here (and covered by the benchmark):
#: floor(x) — infinitely many jumps, ~8 s of quadrature per call — and the
#: integrable singularity 1/√|x| (5–15 s per call): together they would take
#: the CI run over its 4-minute budget.
CI_HOSTILE = tuple(h for h in HOSTILE if not (h.has(sp.floor) or h == 1 / sp.sqrt(sp.Abs(X))))

#: ≥ 2000 generated examples in CI (issue 5); the thorough profile multiplies the
#: ci profile's example count by 20 (8000 examples).
FUZZ_EXAMPLES = max(2000, 20 * settings.default.max_examples)
#: A call that takes longer than this is a hang: the symbolic budget is 0.2 s CPU and
#: the slowest certified quadratures in the benchmark take ~15 s.
WATCHDOG_SECONDS = 60.0

@pytest.fixture(autouse=True, scope="module")
def _without_hypothesis_gc_callback():
    """Hypothesis times garbage collection with a gc callback; an engine budget signal that
    lands inside it is dropped (see test_bug_budget_lost_in_gc_callback) and the call then
    runs unbounded.  Until the engine's timer re-fires, fuzz without that callback."""
    try:  # Hypothesis installs its callback lazily: install it now so that it can be removed
        from hypothesis.internal.conjecture.junkdrawer import gc_cumulative_time

        gc_cumulative_time()
    except ImportError:  # pragma: no cover - other Hypothesis versions
        pass
    saved = list(gc.callbacks)
    gc.callbacks[:] = [cb for cb in saved if "gc_cumulative_time" not in getattr(cb, "__qualname__", "")]
    yield
    gc.callbacks[:] = saved


_stats: Counter = Counter()
_slowest: list[tuple[float, str]] = []


def _contract(f, tau, order, square):
    if square:  # E[f²] with nonnegative=True exercises the "+inf" path for divergent squares
        f, order, nonneg = sp.piecewise_fold(f**2), 0, True
    else:
        nonneg = False
    out: EngineOutcome = check_expectation(f, tau, order, digits=8, budget=0.2,
                                           nonnegative=nonneg, timeout=WATCHDOG_SECONDS)
    _stats[out.kind] += 1
    _slowest.append((out.seconds, f"{f} tau={tau:g} order={order}"))
    assert out.ok, (out, f, tau, order)
    if out.kind in ("closed form", "numeric"):
        assert math.isfinite(out.value) and math.isfinite(out.abs_error) and out.abs_error >= 0


_ARGS = dict(tau=taus(0.25, 4.0), order=st.sampled_from((0, 1, 2)), square=st.booleans())


@pytest.mark.slow  # the suite's longest property tier (issue 15): run by .ci/run, not by `pytest -q`
@settings(max_examples=FUZZ_EXAMPLES)
@given(f=expressions(max_depth=1, special=False, hostile=CI_HOSTILE), **_ARGS)
def test_engine_contract(f, tau, order, square):
    """Elementary grammar (polynomials, sin/cos, |·|, max, Heaviside, Piecewise) plus hostile
    leaves: mostly closed forms and typed errors, ~0.1 s per example."""
    _contract(f, tau, order, square)


@pytest.mark.slow  # issue 15: run by .ci/run (`pytest -m slow`)
@settings(max_examples=FUZZ_EXAMPLES // 10)
@given(f=expressions(max_depth=1, hostile=CI_HOSTILE), **_ARGS)
def test_engine_contract_special_functions(f, tau, order, square):
    """The full grammar (erf, tanh, Gaussian bumps): more quadrature, ~0.5 s per example."""
    _contract(f, tau, order, square)


def test_fuzz_ran_enough_examples():
    """Runs after the fuzz test in the same process (file order; xdist keeps a file on one worker
    only with --dist loadfile, so skip when the counts are not here)."""
    total = sum(_stats.values())
    if total == 0:
        pytest.skip("the fuzz test ran in another worker")
    assert total >= FUZZ_EXAMPLES, _stats
    assert _stats["closed form"] > 0 and _stats["numeric"] > 0 and _stats["typed error"] > 0, _stats


# --------------------------------------------------------------------------- #
# The contract on hand-picked hostile inputs
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("f", [h for h in CI_HOSTILE], ids=str)
@pytest.mark.parametrize("order", [0, 1, 2])
def test_hostile_leaves(f, order):
    out = check_expectation(f, 1.0, order, digits=8, budget=0.2, timeout=WATCHDOG_SECONDS)
    assert out.ok, out


def test_divergence_is_typed_and_squares_are_infinite():
    out = check_expectation(sp.exp(X**2), 1.0, 0)
    assert out.kind == "typed error" and out.error.startswith("DivergenceError"), out
    out = check_expectation(sp.exp(X**2), 1.0, 0, nonnegative=True)
    assert out.kind == "infinite" and out.value == math.inf, out
    out = check_expectation(sp.sqrt(X), 1.0, 0)
    assert out.kind == "typed error" and out.error.startswith("DomainError"), out


def test_check_expectation_flags_contract_violations(monkeypatch):
    """The classifier itself: NaN, a bad inf and an untyped exception are caught."""
    import ntk_theory.expectation as ex
    from ntk_theory.expectation import Expectation

    monkeypatch.setattr(ex, "gaussian_expectation",
                        lambda *a, **k: Expectation(mp.mpf("nan"), 0.0, None, "quadrature"))
    assert check_expectation(X, 1.0).kind == "nan"
    monkeypatch.setattr(ex, "gaussian_expectation",
                        lambda *a, **k: Expectation(mp.inf, 0.0, None, "infinite"))
    assert check_expectation(X, 1.0).kind == "bad inf"

    def boom(*a, **k):
        raise KeyError("x")

    monkeypatch.setattr(ex, "gaussian_expectation", boom)
    assert check_expectation(X, 1.0).kind == "untyped error"

    def slow(*a, **k):
        time.sleep(5)

    monkeypatch.setattr(ex, "gaussian_expectation", slow)
    t = time.perf_counter()
    assert check_expectation(X, 1.0, timeout=0.3).kind == "hang"
    assert time.perf_counter() - t < 3  # the watchdog interrupted the sleep


# --------------------------------------------------------------------------- #
# Engine bugs found by fuzzing, fixed in ff62e72: minimal reproducers kept as
# regression tests (bare x refused; floor's error estimate not covering its error;
# the CPU-time budget lost when it fired inside a gc callback or finalizer)
# --------------------------------------------------------------------------- #
def test_identity_expression_is_accepted():
    # regression: a Symbol is also a SymPy Boolean; from_expr used to refuse "x"
    a = parse_activation("x")
    assert a.expr == X and from_expr(X).expr == X


def test_floor_error_estimate_covers_error():
    # regression: floor's jumps were not quadrature nodes, and the error estimate missed it
    r = gaussian_expectation(sp.floor(X), 1.0, 1, digits=8, budget=0.2)
    # E[floor'(ξ)] = Σ_k φ(k) (a Dirac comb), summed to 30 digits
    with mp.workdps(30):
        exact = mp.nsum(lambda k: mp.npdf(k), [-mp.inf, mp.inf])
    assert abs(float(r.value - exact)) <= r.abs_error


def test_bug_budget_lost_in_gc_callback():
    """The budget counts Python calls; when it runs out inside a gc callback (where Python
    drops exceptions, and unsets the tracer), the timer re-delivers it until it lands."""
    from ntk_theory.expectation import CALLS_PER_SECOND, BudgetExceeded, time_budget

    def work():
        return None

    def busy(phase, info):  # 4× the budget's calls inside a gc callback: it runs out here
        if phase == "start":
            for _ in range(int(0.2 * CALLS_PER_SECOND)):
                work()

    raised = False
    gc.callbacks.append(busy)
    try:
        with time_budget(0.05):
            gc.collect()
            gc.callbacks.remove(busy)
            t = time.process_time()
            while time.process_time() - t < 2.0:  # symbolic work after the gc: must be interrupted
                work()
    except BudgetExceeded:
        raised = True
    finally:
        if busy in gc.callbacks:
            gc.callbacks.remove(busy)
    assert raised, "the budget expired during a gc callback and was never enforced"


# --------------------------------------------------------------------------- #
# Engine bugs found by benchmarks/bench_fuzz.py at depth 2 (regression tests)
# --------------------------------------------------------------------------- #
_R = sp.Rational


def test_max_of_log_abs_gives_a_typed_outcome():
    # regression: a lambdified branch condition went complex and raised an untyped TypeError
    out = check_expectation(sp.Max(_R(1, 4), sp.log(sp.Abs(X)) - _R(5, 4)), 1.0, 0, timeout=WATCHDOG_SECONDS)
    assert out.ok, out


def test_heaviside_of_complex_argument_gives_a_typed_outcome():
    # regression: Heaviside of a complex value (log(x), x < 0) raised an untyped TypeError
    out = check_expectation(sp.Heaviside((sp.log(X) + _R(1, 2)) ** 2 + _R(3, 2)), 1.0, 0,
                            timeout=WATCHDOG_SECONDS)
    assert out.ok, out


def test_sum_of_heavisides_of_erf_is_a_quick_closed_form():
    # regression: this ran > 15 s (a hang).  SymPy's set algebra intersected the ConditionSets
    # of the two erf conditions without end, in the quadrature fallback where no CPU-time
    # budget applied.  The conditions are now inverted first (erf(u) < c <=> u < erfinv(c)).
    f = sp.Heaviside(_R(3, 2) - sp.erf(X / 4 + _R(3, 2))) + sp.Heaviside(-sp.erf(X / 4 + _R(3, 2)) - _R(3, 4))
    out = check_expectation(f, 1.0, 0, digits=15, timeout=15.0)
    assert out.kind == "closed form", out
    # the first step is 1 everywhere (erf < 1 < 3/2), the second is 1 on x < 4 erfinv(-3/4) - 6,
    # whose end is found here by root-finding on the original condition
    with mp.workdps(40):
        end = mp.findroot(lambda x: mp.erf(x / 4 + mp.mpf(3) / 2) + mp.mpf(3) / 4, -9)
        exact = 1 + mp.ncdf(end)
    # 15 digits requested from a closed form; the reference carries 40
    assert abs(out.value - float(exact)) <= 1e-14, (out, exact)


def _root(g, x0):
    with mp.workdps(40):
        return mp.findroot(g, x0)


# Steps and kinks whose conditions are monotone special functions of x (issue 5: the class of
# the hang above).  Each case: f, the independent E[f(τξ)] at τ = 1.3 (mpmath root-finding on
# the original condition and 1-D quadrature), and the outcome kind the engine must give.
_TAU = 1.3
_MONOTONE_CASES = [
    ("Heaviside(erf(x) - 1/2)",
     lambda: mp.ncdf(-_root(lambda x: mp.erf(x) - 0.5, 0.5) / _TAU), "closed form"),
    ("Heaviside(erfc(x/2) - 1/2)",
     lambda: mp.ncdf(_root(lambda x: mp.erfc(x / 2) - 0.5, 1) / _TAU), "closed form"),
    ("Heaviside(tanh(x/2 + 1) - 1/3)",
     lambda: mp.ncdf(-_root(lambda x: mp.tanh(x / 2 + 1) - mp.mpf(1) / 3, -1) / _TAU), "closed form"),
    ("Heaviside(3 - exp(x))*Heaviside(exp(x) - 2)",
     lambda: mp.ncdf(mp.log(3) / _TAU) - mp.ncdf(mp.log(2) / _TAU), "closed form"),
    ("sign(sinh(x) - 1) + sign(atan(x) + 1/2)",
     lambda: (1 - 2 * mp.ncdf(mp.asinh(1) / _TAU)) + (1 - 2 * mp.ncdf(-mp.tan(0.5) / _TAU)), "closed form"),
    ("Piecewise((x, erfc(x) < 1/2), (0, True))",
     lambda: _TAU * mp.npdf(_root(lambda x: mp.erfc(x) - 0.5, 0.5) / _TAU), "closed form"),
    ("Heaviside(erf(x)) + Max(1/3, erf(x))",  # erf on a half line: quadrature
     lambda: (mp.mpf(1) / 2 + mp.ncdf(_root(lambda x: mp.erf(x) - mp.mpf(1) / 3, 0.3) / _TAU) / 3
              + mp.quad(lambda z: mp.erf(_TAU * z) * mp.npdf(z),
                        [_root(lambda x: mp.erf(x) - mp.mpf(1) / 3, 0.3) / _TAU, 10, mp.inf])), "numeric"),
]


@pytest.mark.parametrize("spec,exact,kind", _MONOTONE_CASES, ids=[c[0] for c in _MONOTONE_CASES])
def test_conditions_on_monotone_functions(spec, exact, kind):
    f = sp.sympify(spec, locals={"x": X})
    out = check_expectation(f, _TAU, 0, digits=12, timeout=30.0)
    assert out.kind == kind, out
    with mp.workdps(40):
        ref = exact()
    # 12 digits requested: the engine's own error estimate plus 1e-12 relative covers it;
    # the reference is good to ~40 digits (findroot and quadrature at 40 digits)
    assert abs(out.value - float(ref)) <= out.abs_error + 1e-12 * max(1.0, abs(float(ref))), (out, ref)
    # the jump formula needs the same breakpoints: E[f'] of a step is Σ Δ_j φ(t_j/τ)/τ
    if spec.startswith("Heaviside(erf(x) - 1/2)"):
        d = check_expectation(f, _TAU, 1, digits=12, timeout=30.0)
        with mp.workdps(40):
            ref1 = mp.npdf(_root(lambda x: mp.erf(x) - 0.5, 0.5) / _TAU) / _TAU
        assert d.kind == "closed form" and abs(d.value - float(ref1)) <= 1e-12, (d, ref1)


@pytest.mark.parametrize("spec", [
    "Heaviside(erf(x) - x/2)",          # a root no inversion finds
    "Heaviside(sin(x))",                # infinitely many jumps
    "Heaviside(erf(x)**2 - 1/4)",       # not monotone: SymPy's set algebra, bounded
    "Max(tanh(x), erf(x/3))",
    "1/(tanh(x)*erf(x) + 2)",           # zeros of a denominator SymPy cannot locate
    "Heaviside(log(Abs(x)) - 1)",       # a step of log|x|: bounded near its branch point
])
@pytest.mark.parametrize("order", [0, 1])
def test_transcendental_conditions_obey_the_contract(spec, order):
    """Conditions the engine cannot invert: a result or a typed error, quickly (each was either
    a hang, a multi-second wait or a wrong DivergenceError before)."""
    out = check_expectation(sp.sympify(spec, locals={"x": X}), 1.0, order, timeout=WATCHDOG_SECONDS)
    assert out.ok, out
    assert out.seconds < 20, out  # generous: ~2 s each on an idle machine, no hang
    assert not out.error.startswith("DivergenceError"), out  # all of these expectations exist


def test_breakpoint_at_a_root_without_radicals_goes_to_quadrature():
    # regression (bench_fuzz, seed 1): |3x³/2 − 5x²/4 + 3x/4 − 5/4| kinks at a cubic's only real
    # root, which SymPy keeps as CRootOf; the closed form then had no mpmath evaluator and raised
    # an untyped NameError.  Now: quadrature with that breakpoint taken at working precision.
    f = sp.Piecewise((-3 * X**3 / 2 + 5 * X**2 / 4 - 3 * X / 4 + 1, X < 1),
                     (sp.exp(-7 * X**2 / 4 + 5 * X / 4), True)) \
        + sp.Abs(3 * X**3 / 2 - 5 * X**2 / 4 + 3 * X / 4 - _R(5, 4))
    tau = 3.768283541315369
    out = check_expectation(f, tau, 0, digits=12, timeout=WATCHDOG_SECONDS)
    assert out.kind == "numeric", out
    # independent: 40-digit mpmath quadrature of the original function, split at 1 and at the
    # cubic's root found by findroot
    with mp.workdps(40):
        r = mp.findroot(lambda x: 3 * x**3 / 2 - 5 * x**2 / 4 + 3 * x / 4 - mp.mpf(5) / 4, 1.1)
        g = sp.lambdify(X, f, "mpmath")
        t = mp.mpf(tau)
        ref = mp.quad(lambda z: g(t * z) * mp.npdf(z), [-mp.inf, 0, 1 / t, r / t, mp.inf])
    # 12 digits asked: the engine's estimate plus 1e-12 relative (the reference has ~40)
    assert abs(out.value - float(ref)) <= out.abs_error + 1e-12 * abs(float(ref)), (out, ref)



# --------------------------------------------------------------------------- #
# Hostile expression texts (issue 11): parser + engine, code execution impossible
# --------------------------------------------------------------------------- #
#: CI size of the text fuzz: ~0.3 s per example on an idle core (most texts are refused
#: by the parser in milliseconds); the ≥ 2000-example run is benchmarks/bench_fuzz.py --texts.
TEXT_EXAMPLES = 150
_text_kinds: Counter = Counter()


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fuzz") / "canary")


def test_hostile_texts(canary):
    @settings(max_examples=TEXT_EXAMPLES, deadline=None)
    @given(c=hostile_texts(canary), tau=taus(0.25, 4.0), order=st.sampled_from((0, 1, 2)),
           square=st.booleans())
    def run(c, tau, order, square):
        cls, text, digits = c
        out = check_text(text, tau, order, square=square, digits=digits, budget=0.2,
                         timeout=WATCHDOG_SECONDS, canary=canary)
        _text_kinds[(cls, out.kind)] += 1
        assert out.ok, (cls, text, out)
        assert not os.path.exists(canary), text
        if out.kind in ("closed form", "numeric"):
            assert math.isfinite(out.value) and math.isfinite(out.abs_error) and out.abs_error >= 0

    run()
    seen = {cls for cls, _k in _text_kinds}
    assert len(seen) >= 5, _text_kinds  # the strategy reaches the classes


@pytest.mark.parametrize("cls", HOSTILE_TEXT_CLASSES)
def test_each_hostile_class_is_handled(cls, canary):
    @settings(max_examples=6, deadline=None)
    @given(c=hostile_texts(canary).filter(lambda c: c[0] == cls))
    def run(c):
        out = check_text(c[1], 1.0, 0, digits=c[2], budget=0.2, timeout=WATCHDOG_SECONDS, canary=canary)
        assert out.ok and out.kind != "code execution", (c, out)
        if cls == "code execution":
            assert out.kind == "typed error" and out.error.startswith("ParseError"), out

    run()
