"""Property tests of the coefficient recursions (docs/reference.rst §4) and the scale gauge (§6).

**Invariants, derived from the recursion** (``ntk_theory.coefficients.coefficient_recursion``)
with ``α_0 = (1, 0, 0, 1)``, ``β_0 = (1, 0, 0)``, ``κ_0² = τ_0²``:

* ``α_{ℓ,1}, α_{ℓ,2}, α_{ℓ,3} ≥ 0``: each is a sum of products of squares (``m1²``,
  ``m2²``, ``α_{ℓ−1,4}²``, ``α_{ℓ−1,1}²``) and earlier ``α_{·,1..3} ≥ 0`` (induction).
* ``α_{ℓ,4} = ½ w̄2 α_{ℓ−1,4}`` has **no sign**: ``½ w̄2 = d Var σ(τξ)/d(τ²)`` is negative
  whenever the layer's variance decreases with its input scale (a Gaussian bump at
  τ > 1.3, σ_T with thresholds straddling 0).  "α ≥ 0" holds for k = 1, 2, 3 only;
  :func:`test_alpha4_has_no_sign` shows the counterexamples against closed forms.
* ``β_{ℓ,k} ≥ α_{ℓ,k}`` for k = 1, 2, 3 (β has three components): ``β_{ℓ,k} − α_{ℓ,k}`` is
  ``m1² β_{ℓ−1,k}`` (plus ``m2² α_{ℓ−1,1} β_{ℓ−1,1}`` for k = 3), non-negative by induction.
* ``κ_ℓ ≥ τ_ℓ``: ``κ_ℓ² − τ_ℓ² = E[σ'²] κ_{ℓ−1}² ≥ 0`` (``+∞`` after a staircase).

These three hold exactly in floating point too (``fl(a + x) ≥ a`` for ``x ≥ 0`` and
products of non-negative numbers are non-negative), so they are tested without tolerance.

Two sharper invariants follow from the Hermite expansion
``Var σ(τξ) = Σ_k (τ^k E[σ^{(k)}])²/k! ≥ τ²m1² + τ⁴m2²/2`` and
``E[σ'²] ≥ m1² + τ²m2²`` (the same expansion for σ'): by induction

* ``τ_ℓ² ≥ τ_0² α_{ℓ,1} + τ_0⁴ α_{ℓ,3}`` and
* ``κ_ℓ² ≥ τ_0² β_{ℓ,1} + τ_0⁴ β_{ℓ,3}``,

i.e. the identity coefficients of K̃_CK and K̃_NTK (docs/reference.rst §5) are non-negative in
*both* conventions ("diagonal" and the paper's "printed" one), which makes K̃ positive
semi-definite (``tests/test_properties_kernels.py``).  These compare differently
computed quantities and can be equalities (σ(x) = x²), so they get a tolerance.

**Scale gauge** (docs/reference.rst §6): replacing σ_ℓ by c·σ_ℓ and σ_{ℓ+1}(t) by σ_{ℓ+1}(t/c)
multiplies τ_ℓ, κ_ℓ by |c| and α_ℓ, β_ℓ by c², and leaves every other layer's
coefficients — and the empirical network's outputs — unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, note, reject, settings
from hypothesis import strategies as st

from ntk_theory.activations import X, from_expr, staircase
from ntk_theory.coefficients import coefficients
from ntk_theory.errors import DomainError
from ntk_theory.network import MLP
from ntk_theory.testing import activations, taus

#: Families whose moments need quadrature (≈1 s per layer): drawn by a separate,
#: smaller property so the CI profile stays fast.
QUADRATURE = ("tanh", "sigmoid", "swish", "softplus", "elu", "selu", "gelu")
DIGITS = 10  # certified relative accuracy 1e-10 of every moment
#: Relative slack of the Hermite-budget invariants: every moment is certified to 1e-10,
#: and a layer-ℓ coefficient is a product/sum of ≤ 3ℓ ≤ 9 of them, so the two sides
#: carry relative errors ≤ 1e-9; 1e-8 leaves a factor 10 (they can be equalities).
HERMITE_SLACK = 1e-8

FAST_ACTS = activations(kinds=("registry", "staircase"), exclude=QUADRATURE)
SLOW_ACTS = activations(families=QUADRATURE, kinds=("registry",))
FEW = settings(max_examples=max(4, settings.default.max_examples // 5))


def _coefs(acts, tau0):
    try:
        return coefficients(acts, tau0, digits=DIGITS, budget=1.0)
    except DomainError as exc:
        # a layer with zero variance (constant polynomial, slope 0, flat staircase) has no
        # coefficients by design (documented DomainError): not an instance of the property
        assert "zero variance" in str(exc)
        reject()


def _check_invariants(acts, tau0):
    c = _coefs(acts, tau0)
    note(f"{[a.spec for a in acts]} tau0={tau0}")
    t0sq = tau0 * tau0
    for lay in c.layers:
        a, b = lay.alpha, lay.beta
        # exact in floating point (see the module docstring): no tolerance
        assert a[0] >= 0 and a[1] >= 0 and a[2] >= 0, f"layer {lay.layer}: alpha {a}"
        assert all(bk >= ak for ak, bk in zip(a[:3], b)), f"layer {lay.layer}: beta {b} < alpha {a}"
        assert lay.kappa >= lay.tau, f"layer {lay.layer}: kappa {lay.kappa} < tau {lay.tau}"
        # identity coefficients of both conventions are >= 0 (Hermite budget, by induction)
        g = lay.moments
        scale = lay.tau**2 + g.m0**2 + t0sq * a[0] + t0sq**2 * a[2]
        assert lay.tau**2 >= t0sq * a[0] + t0sq**2 * a[2] - HERMITE_SLACK * scale, (
            f"layer {lay.layer}: tau^2 = {lay.tau**2!r} < tau0^2 a1 + tau0^4 a3 = "
            f"{t0sq * a[0] + t0sq**2 * a[2]!r}")
        if math.isfinite(lay.kappa):
            k2 = lay.kappa**2
            rhs = t0sq * b[0] + t0sq**2 * b[2]
            assert k2 >= rhs - HERMITE_SLACK * (k2 + rhs + scale), (
                f"layer {lay.layer}: kappa^2 = {k2!r} < tau0^2 b1 + tau0^4 b3 = {rhs!r}")


@given(acts=st.lists(FAST_ACTS, min_size=1, max_size=3), tau0=taus(0.25, 4.0))
def test_recursion_invariants(acts, tau0):
    _check_invariants(acts, tau0)


@FEW
@given(acts=st.lists(SLOW_ACTS, min_size=1, max_size=2), tau0=taus(0.25, 4.0))
def test_recursion_invariants_quadrature_families(acts, tau0):
    _check_invariants(acts, tau0)


def test_alpha4_has_no_sign():
    """Counterexamples to "α_{ℓ,4} ≥ 0", checked against closed forms (docs/reference.rst §1, §6).

    Gaussian bump exp(−x²/2): Var(τ) = (1+2τ²)^{−1/2} − (1+τ²)^{−1}, so
    α_{1,4} = ½w̄2 = dVar/dτ² = (1+τ²)^{−2} − (1+2τ²)^{−3/2}, negative for τ = 3.
    σ_T with z = (−0.1, 0.1): τ²w̄2 = a²(1−2P)(z2φ(z2) − z1φ(z1)) with P = Φ(z1)+Φ(−z2) > ½.
    """
    tau = 3.0
    c = coefficients(["gaussian"], tau)
    expected = (1 + tau**2) ** -2 - (1 + 2 * tau**2) ** -1.5
    assert expected < 0
    # the engine's closed form vs this one: both exact, rounding only (1e-12 relative)
    assert c.last.alpha[3] == pytest.approx(expected, rel=1e-12, abs=0)

    from scipy.stats import norm

    z1, z2, a, tau = -0.1, 0.1, 1.0, 1.0
    P = norm.cdf(z1) + norm.cdf(-z2)
    w2 = a * a * (1 - 2 * P) * (z2 * norm.pdf(z2) - z1 * norm.pdf(z1)) / tau**2
    assert w2 < 0
    c = coefficients([f"sigma_T:s1={z1 * tau},s2={z2 * tau},a={a}"], tau)
    assert c.last.alpha[3] == pytest.approx(w2 / 2, rel=1e-12, abs=0)  # jump formula, exact
    # ... and a negative α_{ℓ,4} propagates: the next layer's α_4 = ½ w̄2 α_{ℓ−1,4}
    c2 = coefficients(["gaussian", "linear:slope=2"], 3.0)
    assert c2.layers[1].alpha[3] == pytest.approx(c2.layers[0].alpha[3] * 4, rel=1e-12, abs=0)  # w̄2 = 2·slope²


# --------------------------------------------------------------------------- #
# Scale gauge
# --------------------------------------------------------------------------- #
_GAUGE_C = st.sampled_from([sp.Rational(1, 2), sp.Rational(-1, 2), sp.Integer(2), sp.Integer(-3),
                            sp.Rational(3, 2)])


def _times(act, c):
    """c·σ (a staircase stays a staircase)."""
    if act.staircase is not None and act.staircase.thresholds:
        s = act.staircase
        return staircase(s.thresholds, [float(c) * v for v in s.levels])
    return from_expr(c * act.expr)


def _dilated(act, c):
    """t ↦ σ(t/c) (a staircase stays a staircase: thresholds times c, reversed if c < 0)."""
    if act.staircase is not None and act.staircase.thresholds:
        s = act.staircase
        th, lv = [float(c) * t for t in s.thresholds], list(s.levels)
        if c < 0:
            th, lv = th[::-1], lv[::-1]
        return staircase(th, lv)
    return from_expr(act.expr.subs(X, X / c))


def _gauge(acts, ell, c):
    out = list(acts)
    out[ell] = _times(acts[ell], c)
    out[ell + 1] = _dilated(acts[ell + 1], c)
    return out


GAUGE_ACTS = activations(kinds=("registry", "staircase"), exclude=QUADRATURE + ("polynomial",))
#: Coefficients of the two networks come from different expressions (c·σ, σ(x/c)) through
#: the engine at 1e-10 certified relative accuracy per moment; products of ≤ 9 moments.
GAUGE_REL = 1e-8


@pytest.mark.slow  # 6–8 s of a default-tier worker: a slow property tier (CI runs it)
@given(acts=st.lists(GAUGE_ACTS, min_size=2, max_size=3), tau0=taus(0.25, 4.0), c=_GAUGE_C,
       data=st.data())
def test_scale_gauge_on_coefficients(acts, tau0, c, data):
    ell = data.draw(st.integers(0, len(acts) - 2), label="layer index (0-based)")
    ref = _coefs(acts, tau0)
    gauged = _coefs(_gauge(acts, ell, c), tau0)
    note(f"{[a.spec for a in acts]} -> {[a.spec for a in _gauge(acts, ell, c)]}; taus {ref.taus} vs {gauged.taus}")
    cf = float(c)
    for k, (r, g) in enumerate(zip(ref.layers, gauged.layers)):
        f2, f1 = (cf * cf, abs(cf)) if k == ell else (1.0, 1.0)
        scale = max(map(abs, r.alpha + r.beta))
        for x, y in zip(r.alpha + r.beta, g.alpha + g.beta):
            assert y == pytest.approx(f2 * x, rel=GAUGE_REL, abs=GAUGE_REL * f2 * scale), f"layer {k + 1}"
        assert g.tau == pytest.approx(f1 * r.tau, rel=GAUGE_REL, abs=0)
        if math.isfinite(r.kappa):
            assert g.kappa == pytest.approx(f1 * r.kappa, rel=GAUGE_REL, abs=0)
        else:
            assert math.isinf(g.kappa)


EMP_ACTS = activations(kinds=("registry", "staircase"), exclude=QUADRATURE + ("polynomial",))


@pytest.mark.slow  # 6–8 s of a default-tier worker: a slow property tier (CI runs it)
@given(acts=st.lists(EMP_ACTS, min_size=2, max_size=3), c=_GAUGE_C, seed=st.integers(0, 2**32 - 1),
       data=st.data())
def test_scale_gauge_on_empirical_network(acts, c, seed, data):
    """Same weights, gauged activations: Σ_k unchanged for k ≠ ℓ, Σ_ℓ multiplied by c.

    Each network is centred by its own theory constants ``E[σ_k(τ_{k−1}ξ)]`` from the
    moment engine (certified), computed independently for the two networks.
    """
    ell = data.draw(st.integers(0, len(acts) - 2), label="layer index (0-based)")
    rng = np.random.default_rng(seed)
    p, n, width = 12, 16, 40
    Xd = rng.standard_normal((p, n)) / math.sqrt(p)
    tau0 = float(np.sqrt(np.mean(np.sum(Xd**2, axis=0))))
    gauged = _gauge(acts, ell, c)
    cA = [lay.centering for lay in _coefs(acts, tau0).layers]
    cB = [lay.centering for lay in _coefs(gauged, tau0).layers]
    A = MLP(acts, [width] * len(acts), p, seed=seed % 2**31, centering=cA)
    B = MLP(gauged, [width] * len(acts), p, seed=seed % 2**31, centering=cB)
    FA, FB = A.forward(Xd), B.forward(Xd)
    for k in range(1, len(acts) + 1):
        factor = float(c) if k == ell + 1 else 1.0
        # float64 forward passes (products of length ≤ 40, ~1e-15 relative) and centering
        # constants certified to 1e-10 relative: 1e-8 of the layer's scale.  (A threshold
        # crossed because of a rounding-level difference would be an O(1) jump: measure zero.)
        scale = max(1e-300, float(np.max(np.abs(FA[k]))))
        np.testing.assert_allclose(FB[k], factor * FA[k], rtol=0, atol=1e-8 * abs(factor) * scale)
    out = A.output(Xd)
    np.testing.assert_allclose(B.output(Xd), out, rtol=0, atol=1e-8 * max(1e-300, float(np.max(np.abs(out)))))


def test_default_centering_of_kinked_expression():
    """Regression test of an issue-5 finding: with the networks' default centering the
    empirical scale gauge failed because ``layer_scales`` integrated c·|x| (a generic
    expression, c = 1/2) by 48-node Gauss–Hermite across the kink: 0.40239 instead of
    (1/2)·E|ξ| = 0.39894.  Fixed by splitting the rule at kinks (ntk_theory/exact.py)."""
    from ntk_theory.exact import layer_scales

    got = layer_scales([from_expr(sp.Abs(X) / 2)], 1.0).centering[0]
    # exact value 0.5·√(2/π); a correct quadrature is good to 1e-10
    assert got == pytest.approx(0.5 * math.sqrt(2 / math.pi), rel=1e-10)


# issue 5 finding (thorough profile, scale gauge), fixed: GaussianMoments.variance now evaluates
# the closed form of E[s^2] - E[s]^2 instead of subtracting the values (relative error was 0.25)
def test_variance_of_cos_at_small_tau():
    """Found by the thorough scale-gauge run: in [x², 0.001·1_{x<0.312}, cos] at τ_0 = 0.2528 the
    step shrinks the scale to τ_2 = 1.67e-5, where cos's τ_3 comes out 4.32e-9 instead of
    τ_2²/√2 = 1.97e-10 (and differently for the gauged network, so the gauge "fails")."""
    from ntk_theory.moments import gaussian_moments

    tau = 1.3028683317232767e-4
    # Var cos(τξ) = (1 + e^{−2τ²})/2 − e^{−τ²} = ½(1 − e^{−τ²})², evaluated without cancellation
    exact = 0.5 * math.expm1(-tau * tau) ** 2
    got = gaussian_moments("cos", tau, digits=10, budget=1.0).variance
    assert got == pytest.approx(exact, rel=1e-9, abs=0)  # digits=10: certified relative 1e-10 per moment
