"""Hermite-budget bounds, best staircase matches and feasibility cells (docs/reference.rst §6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, special

from ntk_theory.compress.families import stair_moments_np
from ntk_theory.compress.feasibility import (
    best_staircase_match,
    bound_label,
    delta_zero_cell,
    feasibility_cell,
    hermite_capture,
    hermite_capture_mp,
    residual_lower_bound,
    scale_free_triple,
    staircase_hermite_sup,
    two_term_fraction,
)
from ntk_theory.errors import ParameterError

#: ReLU's two-term Hermite fraction in closed form: (1/4 + 1/(4π)) / (1/2 − 1/(2π)).
RELU_FRACTION = (math.pi + 1) / (2 * (math.pi - 1))


# quad flags round-off on the oscillating He_k integrands for large k; the values are
# checked against closed forms below, so the flag carries no information here
@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def test_relu_puts_96_7_percent_of_its_variance_in_two_hermite_terms():
    """docs/reference.rst §6, checked three ways: engine triple, closed form, Hermite quadrature."""
    t = scale_free_triple("relu", 1.0)
    assert two_term_fraction(t) == pytest.approx(RELU_FRACTION, rel=1e-12)  # float64 engine
    assert round(RELU_FRACTION, 3) == 0.967

    # independent: c_k = E[relu(ξ) He_k(ξ)]/√k! by quadrature; Var = Σ_{k≥1} c_k²
    def ck(k):
        he = special.hermitenorm(k)
        val = integrate.quad(lambda x: x * he(x) * math.exp(-x * x / 2) / math.sqrt(2 * math.pi),
                             0, 40, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
        return val / math.sqrt(math.factorial(k))

    c = [ck(k) for k in range(1, 21)]
    var = 0.5 - 1 / (2 * math.pi)
    assert (c[0] ** 2 + c[1] ** 2) / var == pytest.approx(RELU_FRACTION, rel=1e-10)  # quad 1e-13
    # Var = Σ_k c_k² (docs/reference.rst §6): ReLU's even coefficients decay like c_2j² ~ j^{-5/2},
    # so the tail beyond k = 20 is a few 1e-3 of Var (measured 1.4e-3): 3e-3 bounds it
    assert sum(x * x for x in c) == pytest.approx(var, rel=3e-3)
    assert sum(x * x for x in c) < var  # a partial sum of positive terms


def test_hermite_capture_is_the_best_over_levels():
    rng = np.random.default_rng(5)
    for K in (2, 3, 5):
        z = np.sort(rng.uniform(-2, 2, K - 1))
        frac, levels = hermite_capture(z)
        # the returned levels attain it (jump formula, float64)
        m = stair_moments_np(z[None], levels[None])
        got = (m["m1"][0] ** 2 + m["m2"][0] ** 2 / 2) / m["var"][0]
        assert got == pytest.approx(frac, rel=1e-10)  # float64 sums of O(1) terms
        # and no random level vector beats it (Rayleigh quotient)
        lv = rng.normal(size=(2000, K))
        mm = stair_moments_np(np.broadcast_to(z, (2000, K - 1)), lv)
        fr = (mm["m1"] ** 2 + mm["m2"] ** 2 / 2) / mm["var"]
        # float64 Var = v0 − m0² cancels for random levels far from their mean (up to
        # ~1e-9 relative here); 1e-8 is that error bound, not a loosened optimum check
        assert np.max(fr) <= frac * (1 + 1e-8)
        # mpmath recomputation of the eigenvalue agrees
        assert float(hermite_capture_mp(z)) == pytest.approx(frac, rel=1e-12)


def test_two_level_supremum_matches_its_closed_form():
    """K = 2 (one step at z): fraction φ(z)²(1 + z²/2)/(Φ(z)(1 − Φ(z))), maximized in 1-D."""
    def neg(z):
        p = special.ndtr(z)
        return -math.exp(-z * z) / (2 * math.pi) * (1 + z * z / 2) / (p * (1 - p))

    r = optimize.minimize_scalar(neg, bounds=(-3, 0), method="bounded", options={"xatol": 1e-10})
    s = staircase_hermite_sup(2)
    assert s.sup == pytest.approx(-r.fun, rel=1e-9)  # both optimizers converge to ~1e-10
    assert s.sup > 2 / math.pi  # a tilted step beats the median step's 2/π (docs/reference.rst §6)


def test_three_level_staircases_cannot_match_relu_exactly():
    """sup over ALL 3-level staircases of the two-term fraction < ReLU's 0.967.

    Two independent global searches (deterministic multistart L-BFGS-B, seeded
    differential evolution) agree; the exact-match residual is bounded below.
    """
    ms = staircase_hermite_sup(3)
    de = staircase_hermite_sup(3, method="de", seed=1)
    assert ms.sup == pytest.approx(de.sup, abs=1e-9)  # both polish to ~1e-12
    assert ms.sup == pytest.approx(ms.sup_mp, rel=1e-12)
    assert ms.sup < RELU_FRACTION - 0.1  # 0.831 vs 0.967: far from a near-miss
    # a dense grid over the two thresholds never exceeds it
    zs = np.linspace(-4, 4, 161)
    grid = max(hermite_capture([a, b])[0] for a in zs for b in zs if b > a)
    assert grid <= ms.sup + 1e-12
    T = scale_free_triple("relu")
    lb = residual_lower_bound(T, ms.sup)
    best = best_staircase_match(T, 3, starts=6)
    assert best.residual >= lb - 1e-12  # the bound holds for the search's best
    assert lb > 0.15


def test_residual_lower_bound_formula():
    T = (0.7, 0.4, 2.0)
    assert residual_lower_bound(T, 0.95) == 0.0  # 0.9 ≤ 0.95: no obstruction
    r = residual_lower_bound(T, 0.8)
    assert r == pytest.approx(0.1 / math.hypot(0.7, 0.2), rel=1e-15)
    # the bound is attained by r ∝ (T1, T2/2): t1 + t2/2 drops by exactly the gap
    d = r / math.hypot(0.7, 0.2)
    t = (0.7 * (1 - d * 0.7), 0.4 * (1 - d * 0.2))
    assert t[0] + t[1] / 2 == pytest.approx(0.8, rel=1e-12)


def test_feasibility_cells_name_the_bound():
    c = feasibility_cell("relu", "ternary", 1.0)
    assert not c.feasible and c.bound == "ternary is odd, target is not"
    c = feasibility_cell("tanh", "sigma_T", 1.0)
    assert not c.feasible and c.bound.startswith("odd target")
    c = feasibility_cell("relu", "sigma_T", 1.0)
    assert c.feasible and c.residual <= 1e-12
    assert bound_label("something else") == "no root"


def test_delta_zero_after_one_relu_layer():
    """[relu, relu] at τ0 = 1: δ = 0 is reachable after σ_T and checked by its residual."""
    c = delta_zero_cell("relu", "sigma_T", 1.0)
    assert c.family == "sigma_T+sigma_Q"
    if c.feasible:
        assert c.residual <= 1e-12
    else:
        assert c.bound  # a named bound, never silent


def test_bad_input():
    with pytest.raises(ParameterError):
        staircase_hermite_sup(1)
    with pytest.raises(ParameterError):
        best_staircase_match((0.5, 0.0, 1.0), 3)


def test_alpha_matched_staircases_inflate_relus_variance_by_at_least_the_budget_ratio():
    """α-matching fixes τ²m1², τ⁴m2² but not Var: Var' ≥ (τ²m1² + τ⁴m2²/2)/sup_K.

    Checked on the solver's three_level (K = 3) and staircase:4 fits to ReLU.
    """
    from ntk_theory.compress import AlphaTargets, solve_alpha

    relu = AlphaTargets(0.5, 1 / math.sqrt(2 * math.pi), 1 - 1 / math.pi)
    var_relu = 0.5 - 1 / (2 * math.pi)
    for fam, K in (("three_level", 3), ("staircase:4", 4)):
        fit = solve_alpha(fam, relu, 1.0)
        s = staircase_hermite_sup(K)
        assert fit.variance / var_relu >= RELU_FRACTION / s.sup * (1 - 1e-12)  # float64 sup
