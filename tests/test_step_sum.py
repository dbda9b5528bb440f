"""Hostile classes that used to hang or crash the expectation engine, and the budget count.

* Step functions with many jumps (``floor``/``ceiling``/``frac`` of a high-frequency linear
  argument, alone, squared or times a polynomial) go through the exact interval sum of
  :func:`ntk_theory.jump.step_expectation_mp`; checked here against independent formulas:
  the Fourier series of ``frac`` (Poisson summation) and level-set sums with ``mp.ncdf``.
* Exponential towers are decided by a growth guard before mpmath builds numbers with
  astronomically many digits (they used to run for minutes and end in ``MemoryError``).
* The work budget does not count first imports, comparisons or SymPy's assumption
  deduction, whose call counts depend on the process history and the hash seed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import mpmath as mp
import pytest
import sympy as sp

from ntk_theory.activations import X
from ntk_theory.errors import DivergenceError, NTKTheoryError, NumericalError, ResourceError
from ntk_theory.expectation import gaussian_expectation, time_budget, work_done
from ntk_theory.jump import MAX_STEP_JUMPS, step_expectation_mp, step_polynomial


def _frac_fourier(beta, sigma, n: int) -> mp.mpf:
    """``E[frac(β + σξ) He_n(ξ)]`` from ``frac(y) = 1/2 − Σ_k sin(2πky)/(πk)`` and
    ``E[g(β + σξ) He_n(ξ)] = σ^n E[g^{(n)}(β + σξ)]``: each term is
    ``−(2πkσ)^n e^{−2π²k²σ²} sin(2πkβ + nπ/2)/(πk)``.  Converges for σ ≠ 0."""
    beta, sigma = mp.mpf(str(beta)), mp.mpf(sigma)
    head = mp.mpf(1) / 2 if n == 0 else mp.mpf(0)

    def term(k):
        c = 2 * mp.pi * k
        return (c * sigma) ** n * mp.exp(-(c * sigma) ** 2 / 2) * mp.sin(c * beta + n * mp.pi / 2) / (mp.pi * k)

    return head - mp.nsum(term, [1, mp.inf])


def _cpu(fn):
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


@pytest.mark.parametrize(("a", "b", "tau", "order"), [
    (40, sp.Rational(-2, 7), 0.01, 0),   # σ = aτ = 0.4: the Fourier terms are not negligible
    (40, sp.Rational(-2, 7), 0.01, 1),
    (40, sp.Rational(3, 7), 0.008, 2),
    (7, sp.Rational(1, 3), 0.05, 1),
])
def test_frac_matches_fourier_series(a, b, tau, order):
    with mp.workdps(30):  # β and σ = aτ exactly as the engine sees them (τ the double given)
        ref = _frac_fourier(sp.N(b, 40), a * mp.mpf(tau), order) / mp.mpf(tau) ** order
    r = gaussian_expectation(sp.frac(a * X + b), tau, order, digits=12)
    assert r.method == "jump sum"
    # certified: the reported error must cover the true one (plus 1e-25 for the reference's
    # own 30-digit rounding)
    assert abs(r.value - ref) <= r.abs_error + 1e-25, (r.value, ref, r.abs_error)
    assert abs(r.value - ref) <= 1e-12 * max(abs(ref), mp.mpf(1) / 1000)


def test_ceiling_high_frequency_second_derivative():
    # was: ~100 jumps × two quadrature rules, 51 CPU s, then refused
    f = sp.ceiling(2 * X + sp.Rational(2, 7))
    r, cpu = _cpu(lambda: gaussian_expectation(f, 3.0, 2, digits=8))
    # ceiling(y) = y + frac(−y): E[ceiling(2τξ + 2/7) He_2] = E[frac(−2/7 − 6ξ) He_2]
    with mp.workdps(30):
        ref = _frac_fourier(sp.N(sp.Rational(-2, 7), 40), -6, 2) / 9
    assert abs(r.value - ref) <= r.abs_error + 1e-25
    assert cpu < 5  # the exact sum visits ~100 intervals twice: ~0.05 s idle


@pytest.mark.parametrize(("f", "tau"), [
    (sp.floor(sp.Rational(5, 4) * X) ** 2, 3.4465937),
    (sp.ceiling(X - sp.Rational(5, 7)) ** 2, 1.6487213),
    (sp.floor(300 * X + sp.Rational(1, 7)) ** 2, 0.05),
])
def test_squared_staircase_matches_level_sets(f, tau):
    """E[step(aτξ + b)²] = Σ_k k² P(level k), the probabilities from ``mp.ncdf``."""
    (kind, a, b), = step_polynomial(f, X)[1]
    with mp.workdps(40):
        a, b = mp.mpf(sp.N(a, 45)), mp.mpf(sp.N(b, 45))
        s = a * mp.mpf(tau)
        lo = int(mp.floor(b - 12 * s)) - 1
        hi = int(mp.ceil(b + 12 * s)) + 1
        if kind is sp.floor:  # floor(Y) = k on [k, k+1)
            ref = mp.fsum(k**2 * (mp.ncdf(k + 1, b, s) - mp.ncdf(k, b, s)) for k in range(lo, hi))
        else:  # ceiling(Y) = k on (k−1, k]
            ref = mp.fsum(k**2 * (mp.ncdf(k, b, s) - mp.ncdf(k - 1, b, s)) for k in range(lo, hi))
    r = gaussian_expectation(f, tau, 0, digits=12, nonnegative=True)
    assert r.method == "jump sum"
    # 12σ truncation of the reference: its tail is below 1e-30 of the value
    assert abs(r.value - ref) <= r.abs_error + 1e-25 * abs(ref)
    assert abs(r.value - ref) <= 1e-12 * abs(ref)


def test_polynomial_times_step():
    # E[ξ·floor(ξ)] by mpmath quadrature with every jump as a node (only 24 in |ξ| ≤ 12)
    with mp.workdps(30):
        ref = mp.quad(lambda x: x * mp.floor(x) * mp.npdf(x), [-mp.inf, *range(-12, 13), mp.inf])
    r = gaussian_expectation(X * sp.floor(X), 1.0, 0, digits=15)
    assert r.method == "jump sum"
    assert abs(r.value - ref) <= r.abs_error + 1e-25 and r.abs_error < 1e-15


def test_too_many_jumps_is_a_fast_typed_refusal():
    f = sp.floor(10**6 * X + sp.Rational(1, 7))
    with pytest.raises(ResourceError, match="jumps about"), mp.workdps(15):
        t = time.process_time()
        try:
            gaussian_expectation(f, 1.0, 1, digits=8)
        finally:
            assert time.process_time() - t < 2
    assert MAX_STEP_JUMPS < 10**6


def test_step_polynomial_recognises_only_its_form():
    assert step_polynomial(sp.sin(sp.floor(X)), X) is None      # a function of a step
    assert step_polynomial(sp.floor(X**2), X) is None           # non-linear argument
    assert step_polynomial(sp.floor(X) ** 40, X) is None        # beyond MAX_STEP_DEGREE
    assert step_polynomial(X**2, X) is None                     # no step at all
    P, steps = step_polynomial(sp.frac(3 * X + 1) * X, X)       # frac(y) = y − floor(y)
    assert [k for k, _a, _b in steps] == [sp.floor] and P.total_degree() == 2
    assert step_expectation_mp(sp.exp(sp.floor(X)), X, 1.0, 0, 8) is None


# --------------------------------------------------------------------------- #
# exponential towers: decided by the growth guard, fast
# --------------------------------------------------------------------------- #
@pytest.mark.slow  # a few CPU seconds: tail tests at up to 1200 digits
def test_tower_squared_is_infinite_fast():
    # was: minutes, then MemoryError (mpmath building exp(exp(exp(160))))
    f = sp.exp(sp.exp(sp.exp(X))) ** 2
    r, cpu = _cpu(lambda: gaussian_expectation(f, 0.25, 0, digits=8, nonnegative=True))
    assert r.value == mp.inf and r.method == "infinite"
    assert cpu < 5


@pytest.mark.slow  # a few CPU seconds: tail tests at up to 1200 digits
def test_tower_that_may_change_sign_is_a_typed_error():
    f = sp.exp(sp.exp(sp.exp(sp.exp(X))))
    with pytest.raises(DivergenceError):
        gaussian_expectation(f, 0.25, 0, digits=8)


@pytest.mark.slow  # a few CPU seconds: tail tests at up to 1200 digits
def test_oscillation_of_a_tower_is_refused():
    # J0 of exp(exp(20)): an argument with 10^8 digits; no certified value, typed refusal
    with pytest.raises(NumericalError, match="astronomically large"):
        gaussian_expectation(sp.besselj(0, sp.exp(sp.exp(-2 * X))) ** 2, 1.0, 0, digits=8, nonnegative=True)


def test_decaying_tower_keeps_its_value():
    # sech(exp(exp(x))) → 0 super-exponentially; its tail needs exp of −10^43429 (100 s
    # before the guard).  Reference: SciPy QUADPACK, 0.19400305903330742 ± 3e-11.
    r, cpu = _cpu(lambda: gaussian_expectation(sp.sech(sp.exp(sp.exp(X))), 1.0, 0, digits=8))
    assert abs(float(r.value) - 0.19400305903330742) < 1e-9
    assert cpu < 10


# --------------------------------------------------------------------------- #
# the work budget's count
# --------------------------------------------------------------------------- #
def test_first_import_is_not_counted():
    sys.modules.pop("colorsys", None)
    with time_budget(1.0):
        start = work_done()
        import colorsys  # noqa: F401 - imported for the side effect being measured
        counted = work_done() - start
    assert counted <= 1  # the call of work_done itself


def test_comparisons_are_not_counted():
    class Noisy:
        def __init__(self, v):
            self.v = v

        def __lt__(self, other):  # a comparison that itself calls other functions
            return abs(self.v) < abs(other.v) and bool(self.v is not None)

    items = [Noisy(i) for i in range(200)]
    with time_budget(1.0):
        start = work_done()
        sorted(items)
        counted = work_done() - start
    assert counted <= 1  # the call of work_done itself


@pytest.mark.slow
def test_counted_work_is_independent_of_the_hash_seed():
    """The same derivation counts the same work in fresh interpreters with different hash
    seeds (it varied by ±1 % when SymPy's assumption deduction was counted)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("from ntk_theory.expectation import derivation_work; "
            "from ntk_theory.moments import moment_closed_forms; "
            "w = derivation_work(); moment_closed_forms('x*erf(x)', budget=10.0); "
            "print(derivation_work() - w)")
    counts = set()
    for hash_seed in ("0", "7", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed,
               "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        counts.add(int(r.stdout.split()[-1]))
    assert len(counts) == 1, counts


@pytest.mark.slow  # a few CPU seconds: tail tests at up to 1200 digits
def test_refusals_are_typed():
    # every hostile step/tower text ends in a value or an NTKTheoryError, never another exception
    for f in (sp.floor(10**7 * X), sp.frac(X) * sp.exp(sp.exp(X))):
        try:
            gaussian_expectation(f, 2.0, 2, digits=8)
        except NTKTheoryError:
            pass
