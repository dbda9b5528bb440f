"""Property-based tests of the Gaussian-moment engine (docs/reference.rst §1, issue 5).

Random activations come from :mod:`ntk_theory.testing` (registry entries with random
valid parameters, random staircases, random expressions).  Every property compares
the engine with an *independent* computation or with a second, differently built
engine call:

* Stein identities against SciPy QUADPACK (:func:`ntk_theory.testing.reference_expectation`)
  in double precision, and the classical-derivative forms ``E[σ']``, ``E[σ'²]``,
  ``E[ξσ']/τ``, ``(2/τ)E[ξσσ']`` for activations without jumps;
* parity, the scaling law σ(c·x) at τ ↔ σ at |c|τ, the shift law σ + b, centering;
* Jensen / Cauchy–Schwarz / Hermite-budget / Poincaré inequalities;
* closed forms against the engine's own quadrature (``symbolic=False``) and against
  Monte Carlo.

Engine calls use ``digits=10`` (certified relative accuracy 1e-10 of each moment)
and a 1-second symbolic budget to keep the CI profile fast.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, note, settings
from hypothesis import strategies as st

from ntk_theory.activations import X, derivative_expr, from_expr, to_piecewise
from ntk_theory.expectation import breakpoints
from ntk_theory.moments import gaussian_moments
from ntk_theory.montecarlo import monte_carlo_moments
from ntk_theory.testing import (
    activations,
    assert_moments_close,
    expressions,
    gmm_specs,
    network_specs,
    reference_expectation,
    staircases,
    taus,
)

#: Engine calls cost 0.05–10 s each (quadrature for activations without closed
#: forms), so each property runs a quarter of the profile's examples: 5 in "ci",
#: 100 in "thorough".
FEW = settings(max_examples=max(5, settings.default.max_examples // 4))

DIGITS = 10
BUDGET = 1.0
#: Relative accuracy of the QUADPACK reference: epsrel = 1e-12 per subinterval in
#: double precision over ~40 subintervals; the engine is certified to 1e-10.  Errors
#: are measured against the natural scale of the integral (see ``_scale``), so 1e-8
#: leaves two orders of magnitude for QUADPACK's estimates near kinks and jumps.
REL = 1e-8


def _moments(act, tau, **kw):
    return gaussian_moments(act, tau, digits=DIGITS, budget=BUDGET, **kw)


def _bps(act) -> list[float]:
    if act.staircase is not None:
        return list(act.staircase.thresholds)
    return breakpoints(to_piecewise(act.expr))


def _scale(v0: float, tau: float, k: int) -> float:
    """Cauchy–Schwarz bound |E[g(ξ)σ(τξ)]|/τ^k ≤ √(E g²)·√E[σ²]/τ^k (E g² ≤ 2 for our weights)."""
    return math.sqrt(2.0 * max(v0, 1e-300)) / tau**k


def _close(engine_value: float, engine_err: float, ref: float, ref_err: float, scale: float) -> bool:
    # 10× the reported error estimates (they are estimates), plus REL of the natural scale
    return abs(engine_value - ref) <= 10 * (engine_err + ref_err) + REL * scale


# --------------------------------------------------------------------------- #
# Stein identities against QUADPACK
# --------------------------------------------------------------------------- #
@FEW
@given(act=activations(max_depth=0), tau=taus(0.25, 4.0))
def test_stein_identities_against_quadpack(act, tau):
    """E[s'] = E[ξσ]/τ, E[s''] = E[(ξ²−1)σ]/τ², E[(s²)''] = E[(ξ²−1)σ²]/τ²; E[s], E[s²] directly."""
    g = _moments(act, tau)
    bps = _bps(act)
    f, f2 = act.expr, to_piecewise(act.expr) ** 2
    v4, _ = reference_expectation(f2**2, tau, breakpoints=bps)  # E[σ⁴], scale of the σ² integrals
    checks = [("E[s]", f, "1", 0), ("E[s']", f, "xi", 1), ("E[s'']", f, "he2", 2),
              ("E[s^2]", f2, "1", 0), ("E[(s^2)'']", f2, "he2", 2)]
    for key, integrand, weight, k in checks:
        ref, ref_err = reference_expectation(integrand, tau, weight, breakpoints=bps)
        ref, ref_err = ref / tau**k, ref_err / tau**k
        m = g[key]
        scale = _scale(g.v0 if key in ("E[s]", "E[s']", "E[s'']") else v4, tau, k)
        note(f"{key}: engine {float(m)!r} ± {m.abs_error:.2g} ({m.method}), QUADPACK {ref!r} ± {ref_err:.2g}")
        assert _close(float(m), m.abs_error, ref, ref_err, scale), key


@FEW
@given(act=activations(continuous=True, max_depth=0), tau=taus(0.25, 4.0))
def test_classical_derivative_forms_for_continuous_activations(act, tau):
    """Without jumps the weak derivatives are classical a.e.:

    E[s'] = E[σ'(τξ)], E[s'^2] = E[σ'(τξ)²], E[s''] = E[ξσ'(τξ)]/τ (Stein on σ'),
    E[(s²)''] = (2/τ) E[ξ σσ'(τξ)] (Stein on (σ²)' = 2σσ').
    """
    g = _moments(act, tau)
    d = derivative_expr(act.expr)
    bps = sorted(set(_bps(act)) | set(breakpoints(to_piecewise(d))))
    sig = to_piecewise(act.expr)
    # E[σ'²] ≤ ... scale: √(2 E[σ'²]) bounds the first three; E[σ²]+E[σ'²] bounds the last
    v1 = g.v1
    checks = [("E[s']", d, "1", 0, math.sqrt(2 * v1)),
              ("E[s'^2]", sp.piecewise_fold(to_piecewise(d) ** 2), "1", 0, v1),
              ("E[s'']", d, "xi", 1, math.sqrt(2 * v1) / tau),
              ("E[(s^2)'']", 2 * sig * d, "xi", 1, 2 * math.sqrt(2 * g.v0 * v1 + 1e-300) * 3 / tau)]
    for key, integrand, weight, k, scale in checks:
        ref, ref_err = reference_expectation(sp.piecewise_fold(integrand), tau, weight, breakpoints=bps)
        ref, ref_err = ref / tau**k, ref_err / tau**k
        m = g[key]
        note(f"{key}: engine {float(m)!r} ± {m.abs_error:.2g}, classical {ref!r} ± {ref_err:.2g}")
        assert _close(float(m), m.abs_error, ref, ref_err, scale), key


# --------------------------------------------------------------------------- #
# Parity, scaling, shift, centering
# --------------------------------------------------------------------------- #
@FEW
@given(f=expressions(parity="odd", max_depth=0), tau=taus(0.25, 4.0))
def test_odd_expressions_have_vanishing_even_order_moments(f, tau):
    """Odd σ ⇒ E[s] = E[s''] = 0 (docs/reference.rst §1, parity)."""
    g = _moments(from_expr(f), tau)
    for key, k in (("E[s]", 0), ("E[s'']", 2)):
        m = g[key]
        # exact zero from the parity proof, else quadrature noise below the certified digits
        assert abs(float(m)) <= 10 * m.abs_error + 1e-10 * _scale(g.v0, tau, k), (key, m)


@FEW
@given(f=expressions(parity="even", max_depth=0), tau=taus(0.25, 4.0))
def test_even_expressions_have_vanishing_first_derivative_moment(f, tau):
    """Even σ ⇒ σ' odd ⇒ E[s'] = 0."""
    g = _moments(from_expr(f), tau)
    m = g["E[s']"]
    assert abs(float(m)) <= 10 * m.abs_error + 1e-10 * _scale(g.v0, tau, 1), m


@FEW
@given(act=staircases(odd=True), tau=taus(0.25, 4.0))
def test_odd_staircases_jump_formula_parity(act, tau):
    g = _moments(act, tau)
    assert abs(g.m0) <= 1e-12 * math.sqrt(g.v0) and abs(g.m2) <= 1e-12 * math.sqrt(g.v0) / tau**2
    # E[(σ²)''] need not vanish (σ² is even) but E[s'^2] is infinite: a jump
    assert math.isinf(g.v1)


_SCALES = st.integers(-10, 10).filter(lambda k: k not in (-1, 0, 1)).map(lambda k: sp.Rational(k, 4))


@FEW
# numeric-only families are left out: σ(c·x) of them is two quadratures per moment
@given(act=activations(max_depth=0, exclude=("tanh", "sigmoid", "swish", "softplus")), c=_SCALES,
       tau=taus(0.25, 2.0))
def test_scaling_law(act, c, tau):
    """σ_c(x) = σ(c x) at τ vs σ at |c|τ: E[s], E[s²] equal; E[s'] × c; E[s''], E[s'²], E[(s²)''] × c²."""
    scaled = from_expr(act.expr.subs(X, c * X))
    a = _moments(scaled, tau)
    b = _moments(act, abs(float(c)) * tau)
    cf = float(c)
    factor = {"E[s]": 1.0, "E[s']": cf, "E[s'']": cf**2, "E[s^2]": 1.0, "E[s'^2]": cf**2, "E[(s^2)'']": cf**2}
    predicted = {m.key: _Scaled(float(m) * factor[m.key], m.abs_error * abs(factor[m.key])) for m in b.moments}
    # both sides certified to 1e-10 relative; 1e-8 absolute-in-scale covers cancellations
    assert_moments_close(a, predicted, rtol=1e-8, atol=1e-8 * _scale(b.v0, 1.0, 0) * (1 + cf**2) / min(tau, 1) ** 2)


class _Scaled:
    """A predicted moment with its propagated error estimate."""

    def __init__(self, value: float, abs_error: float) -> None:
        self.value = value
        self.abs_error = abs_error


@FEW
@given(act=activations(max_depth=0), b=st.integers(-8, 8).map(lambda k: sp.Rational(k, 4)), tau=taus(0.25, 4.0))
def test_shift_law(act, b, tau):
    """σ + b: E[s] + b, E[s²] + 2b E[s] + b², E[(s²)''] + 2b E[s''], other moments unchanged."""
    g = _moments(act, tau)
    h = _moments(from_expr(act.expr + b), tau)
    bf = float(b)
    pred = {
        "E[s]": g.m0 + bf, "E[s']": g.m1, "E[s'']": g.m2,
        "E[s^2]": g.v0 + 2 * bf * g.m0 + bf * bf, "E[s'^2]": g.v1, "E[(s^2)'']": g.w2 + 2 * bf * g.m2,
    }
    err = max(m.abs_error for m in g.moments)
    scale = (1 + abs(bf)) ** 2 * (1 + g.v0) / min(tau, 1) ** 2
    # certified digits (1e-10) of both calls, amplified by |b| ≤ 2 in the combinations
    assert_moments_close(h, {k: _Scaled(v, 3 * err) for k, v in pred.items()}, rtol=1e-8, atol=1e-9 * scale)


@FEW
@given(act=activations(max_depth=0), tau=taus(0.25, 4.0))
def test_centered_moments(act, tau):
    """centered=True: E[s̄] = 0, Var = E[s²] − E[s]², E[(σ̄²)''] = E[(s²)''] − 2E[s]E[s''] (docs/reference.rst §1)."""
    u = _moments(act, tau)
    c = _moments(act, tau, centered=True)
    assert c.m0 == 0.0
    pred = {"E[s]": 0.0, "E[s']": u.m1, "E[s'']": u.m2, "E[s^2]": u.variance, "E[s'^2]": u.v1,
            "E[(s^2)'']": u.w2_bar}
    assert_moments_close(c, pred, rtol=1e-9, atol=1e-10 * (1 + u.v0) / min(tau, 1) ** 2)
    assert math.isclose(c.variance, u.variance, rel_tol=1e-9, abs_tol=1e-12)


# --------------------------------------------------------------------------- #
# Inequalities
# --------------------------------------------------------------------------- #
@FEW
@given(act=activations(max_depth=0), tau=taus(0.25, 4.0))
def test_jensen_hermite_and_poincare_inequalities(act, tau):
    """E[s²] ≥ E[s]², E[s'²] ≥ E[s']² (Jensen); Var ≥ τ²m1² + τ⁴m2²/2 (first two Hermite
    terms of Var = Σ_k τ^{2k} E[σ^{(k)}]²/k!, docs/reference.rst §6); Var ≤ τ² E[σ'²] (Gaussian Poincaré)."""
    g = _moments(act, tau)
    slack = 1e-9 * (1 + g.v0)  # certified to 1e-10 relative; products of two moments
    assert g.v0 >= g.m0**2 - slack
    assert g.v1 >= g.m1**2 - slack * (1 + g.m1**2)
    var = g.variance
    assert var >= tau**2 * g.m1**2 + tau**4 * g.m2**2 / 2 - slack
    if math.isfinite(g.v1):
        assert var <= tau**2 * g.v1 + slack * (1 + tau**2 * g.v1)


# --------------------------------------------------------------------------- #
# Closed forms vs quadrature vs Monte Carlo
# --------------------------------------------------------------------------- #
@settings(max_examples=max(3, settings.default.max_examples // 8))  # six quadratures: ~10-60 s each example
@given(act=activations(max_depth=0, exclude=("tanh", "sigmoid", "swish", "softplus")), tau=taus(0.25, 4.0))
def test_closed_forms_against_engine_quadrature(act, tau):
    """Closed forms (or the jump formula) against ``symbolic=False`` quadrature of the same σ."""
    g = _moments(act, tau)
    as_expr = from_expr(act.expr)  # a staircase becomes a Piecewise: quadrature, not the jump formula
    q = _moments(as_expr, tau, symbolic=False)
    if act.expr.has(X):  # E of a constant needs no integral: exact even with symbolic=False
        assert not any(m.closed_form for m in q.moments if m.key != "E[s'^2]" and not m.is_infinite)
    # both certified to 1e-10 relative; absolute floor for moments that vanish by cancellation
    assert_moments_close(g, q, rtol=1e-8, atol=1e-9 * (1 + g.v0) / min(tau, 1) ** 2)


@settings(max_examples=max(3, settings.default.max_examples // 6))
@given(act=activations(max_depth=0), tau=taus(0.25, 4.0), seed=st.integers(0, 2**32 - 1))
def test_against_monte_carlo(act, tau, seed):
    g = _moments(act, tau)
    mc = monte_carlo_moments(act, tau, n=200_000, seed=seed)
    # CLT: each of 6 keys × 10 examples is within 5 standard errors with probability
    # 1 − 6e-7; the engine's own error is far below a standard error
    assert_moments_close(g, mc, rtol=0.0, atol=1e-12, n_se=5.0)


# --------------------------------------------------------------------------- #
# The other helpers of ntk_theory.testing
# --------------------------------------------------------------------------- #
@given(n=st.integers(20, 60), ratio=st.integers(4, 16), seed=st.integers(0, 2**32 - 1))
def test_spectral_helper_on_linear_conjugate_kernels(n, ratio, seed):
    """X^T W^T W X / d → X^T X at the √(n/d) rate (Bai–Yin: ‖W^T W/d − I‖ → 2√(p/d) + p/d)."""

    from ntk_theory.testing import assert_spectrally_equivalent, spectral_tolerance

    rng = np.random.default_rng(seed)
    p, d = n, ratio * n
    Xm = rng.standard_normal((p, n)) / np.sqrt(p)
    W = rng.standard_normal((d, p))
    ck = Xm.T @ (W.T @ W / d) @ Xm
    K = Xm.T @ Xm
    cmp = assert_spectrally_equivalent(ck, K, n, p, d=d, c_theory=0.0)
    assert cmp.rel_opnorm <= spectral_tolerance(n, p, d, c_theory=0.0)
    # a rank-one spike of twice ‖K‖ moves the top eigenvalue by ≥ 2‖K‖: relative error ≥ 2 > 3√(1/4)
    u = rng.standard_normal(n)
    u /= np.linalg.norm(u)
    spiked = K + 2 * np.linalg.norm(K, 2) * np.outer(u, u)
    with pytest.raises(AssertionError, match="not spectrally equivalent"):
        assert_spectrally_equivalent(spiked, K, n, p, d=d, c_theory=0.0)


@given(spec=gmm_specs(), net=network_specs())
def test_data_and_network_strategies_are_valid(spec, net):
    from ntk_theory.data import population_statistics, sample

    assert 1 <= spec.K <= spec.p and abs(float(spec.proportions.sum()) - 1) < 1e-12
    data = sample(spec, 4 * spec.K + 8, seed=0)
    stats = population_statistics(data)
    assert stats.tau0 > 0
    assert 1 <= len(net) <= 3 and all(8 <= d <= 256 for _, d in net)
    assert all(a.staircase is None for a, _ in net)  # default: no jumps, finite NTK
