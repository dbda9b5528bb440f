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
import time
from collections import Counter

import mpmath as mp
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from ntk_theory.activations import X, from_expr, parse_activation
from ntk_theory.expectation import clear_caches, gaussian_expectation
from ntk_theory.testing import HOSTILE, EngineOutcome, check_expectation, expressions, taus, watchdog

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


@settings(max_examples=FUZZ_EXAMPLES)
@given(f=expressions(max_depth=1, special=False, hostile=CI_HOSTILE), **_ARGS)
def test_engine_contract(f, tau, order, square):
    """Elementary grammar (polynomials, sin/cos, |·|, max, Heaviside, Piecewise) plus hostile
    leaves: mostly closed forms and typed errors, ~0.1 s per example."""
    _contract(f, tau, order, square)


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
    from ntk_theory.expectation import BudgetExceeded, time_budget

    def busy(phase, info):  # 0.2 s of CPU inside a gc callback: the 0.05 s budget fires here
        if phase == "start":
            t = time.process_time()
            while time.process_time() - t < 0.2:
                pass

    raised = False
    gc.callbacks.append(busy)
    try:
        with time_budget(0.05):
            gc.collect()
            gc.callbacks.remove(busy)
            t = time.process_time()
            while time.process_time() - t < 1.0:  # symbolic work after the gc: must be interrupted
                pass
    except BudgetExceeded:
        raised = True
    finally:
        if busy in gc.callbacks:
            gc.callbacks.remove(busy)
    assert raised, "the budget expired during a gc callback and was never enforced"


# --------------------------------------------------------------------------- #
# Engine bugs found by benchmarks/bench_fuzz.py at depth 2 (two fixed: regression tests;
# the hang is open: strict xfail)
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


@pytest.mark.xfail(strict=True, reason="a sum of two Heavisides of erf(x/4 + 3/2) runs > 15 s (no answer "
                   "within the watchdog; each term alone is a quick typed NumericalError)")
def test_bug_sum_of_heavisides_of_erf_hangs():
    f = sp.Heaviside(_R(3, 2) - sp.erf(X / 4 + _R(3, 2))) + sp.Heaviside(-sp.erf(X / 4 + _R(3, 2)) - _R(3, 4))
    out = check_expectation(f, 1.0, 0, timeout=15.0)
    assert out.ok, out
