"""Tests of ntk_theory.exact: closed forms vs quadrature vs Monte Carlo, exact vs wide networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from ntk_theory.activations import parse_activation
from ntk_theory.errors import ResourceError
from ntk_theory.exact import (
    MEMORY_LIMIT_BYTES,
    bivariate_normal_cdf,
    exact_kernels,
    exact_memory_bytes,
    gauss_hermite_expectation,
    gaussian_mean,
    layer_scales,
    pair_expectation,
)
from ntk_theory.network import MLP

CLOSED = ["relu", "leaky_relu:slope=0.2", "abs", "erf", "quadratic", "linear:slope=1.5", "sign",
          "step:threshold=0.3", "sigma_T:s1=-1,s2=0.5,a=2", "ternary:s=0.7",
          "sigma_Q:r1=-2,r2=-0.5,r3=0.5,r4=2,b1=1,b2=-1",
          "staircase:thresholds=[-1.5,-0.5,0.5,1.5],levels=[-2,-1,0,1,2]"]
PAIRS = [(1.3, 0.7, 0.4), (0.8, 1.1, -0.6), (1.0, 1.0, 0.97)]


def test_bivariate_cdf_against_scipy_and_limits():
    rng = np.random.default_rng(0)
    pts = [(0.0, 0.0, 0.3), (0.0, 1.2, -0.5), (-0.7, 0.0, 0.9), (1.0, 2.0, 0.999), (0.5, -0.3, -0.99),
           (-5.0, -5.0, 0.95), (3.0, -3.0, 0.5)]
    pts += [(*rng.normal(size=2) * 1.5, rng.uniform(-0.999, 0.999)) for _ in range(40)]
    for h, k, r in pts:
        ref = multivariate_normal(mean=[0, 0], cov=[[1, r], [r, 1]], abseps=1e-12, releps=1e-12).cdf([h, k])
        # scipy's Genz integration at abseps 1e-12 vs Owen's T in double precision
        assert bivariate_normal_cdf(h, k, r) == pytest.approx(ref, abs=1e-9)
    assert bivariate_normal_cdf(0.3, 0.5, 1.0) == pytest.approx(0.6179114221889527, abs=1e-15)  # Φ(0.3)
    assert bivariate_normal_cdf(0.3, 0.5, -1.0) == pytest.approx(0.6179114221889527 + 0.6914624612740131 - 1)
    assert bivariate_normal_cdf(np.inf, 0.5, 0.4) == pytest.approx(0.6914624612740131)
    assert bivariate_normal_cdf(-np.inf, 0.5, 0.4) == 0.0
    assert bivariate_normal_cdf(0.0, 0.0, 0.5) == pytest.approx(0.25 + math.asin(0.5) / (2 * math.pi))


def _mc(fn, a, b, c, m, seed):
    rng = np.random.default_rng(seed)
    L = np.linalg.cholesky(np.array([[a, c], [c, b]]))
    uv = L @ rng.standard_normal((2, m))
    vals = fn(uv[0]) * fn(uv[1])
    return vals.mean(), vals.std() / math.sqrt(m)


@pytest.mark.parametrize("spec", CLOSED)
@pytest.mark.parametrize("abc", PAIRS)
def test_closed_forms_against_monte_carlo(spec, abc):
    act = parse_activation(spec)
    a, b, c = abc
    val = float(pair_expectation(act, a, b, c))
    mean, se = _mc(act, a, b, c, 400_000, seed=hash((spec, abc)) % 2**32)
    # Monte Carlo CLT: 5 standard errors (false-failure probability ≈ 6e-7 per case)
    assert abs(val - mean) < 5 * se + 1e-12
    mu = float(gaussian_mean(act, a))
    rng = np.random.default_rng(1)
    s = act(math.sqrt(a) * rng.standard_normal(400_000))
    assert abs(mu - s.mean()) < 5 * s.std() / math.sqrt(s.size) + 1e-12
    if act.staircase is None:
        dval = float(pair_expectation(act, a, b, c, derivative=True))
        dmean, dse = _mc(act.derivative, a, b, c, 400_000, seed=7)
        assert abs(dval - dmean) < 5 * dse + 1e-12


@pytest.mark.parametrize("abc", PAIRS[:2])
def test_smooth_closed_form_against_gauss_hermite(abc):
    # erf is entire: the 2-D Gauss–Hermite rule with 64 nodes converges to ~1e-13 at these
    # variances (≤ 1.3; measured), so the closed form must agree to 1e-11.
    act = parse_activation("erf")
    a, b, c = abc
    assert float(pair_expectation(act, a, b, c)) == pytest.approx(
        float(gauss_hermite_expectation(act, act, a, b, c, 64)), abs=1e-11)
    assert float(pair_expectation(act, a, b, c, derivative=True)) == pytest.approx(
        float(gauss_hermite_expectation(act.derivative, act.derivative, a, b, c, 64)), abs=1e-11)


@pytest.mark.parametrize("spec", ["sigma_T:s1=-1,s2=0.5,a=2",
                                  "staircase:thresholds=[-1.5,-0.5,0.5,1.5],levels=[-2,-1,0,1,2]"])
def test_staircase_dirac_derivative_is_mixed_derivative_of_orthant_formula(spec):
    # E[σ'(u)σ'(v)] = ∂²/∂e1∂e2 E[σ(u+e1)σ(v+e2)]; shifting σ by e moves its thresholds by −e.
    # Central mixed difference with h = 1e-3: truncation O(h²) ≈ 1e-6 relative, rounding
    # O(ε/h²) ≈ 2e-10; tolerance 1e-5 relative.
    act = parse_activation(spec)
    st = act.staircase
    a, b, c = 1.2, 0.9, 0.5
    h = 1e-3

    def shifted(e1, e2):
        # E[σ(u+e1) σ(v+e2)] written out independently from orthant probabilities
        from ntk_theory.activations import Staircase
        s1 = Staircase(tuple(t - e1 for t in st.thresholds), st.levels)
        s2 = Staircase(tuple(t - e2 for t in st.thresholds), st.levels)
        # P(u > t_j − e1, v > t_k − e2) for different shifts per coordinate
        tot = st.levels[0] ** 2
        tot += st.levels[0] * sum(d * (1 - _phi_cdf((t) / math.sqrt(a))) for d, t in zip(s1.jumps, s1.thresholds))
        tot += st.levels[0] * sum(d * (1 - _phi_cdf((t) / math.sqrt(b))) for d, t in zip(s2.jumps, s2.thresholds))
        r = c / math.sqrt(a * b)
        for dj, tj in zip(s1.jumps, s1.thresholds):
            for dk, tk in zip(s2.jumps, s2.thresholds):
                tot += dj * dk * float(bivariate_normal_cdf(-tj / math.sqrt(a), -tk / math.sqrt(b), r))
        return tot

    mixed = (shifted(h, h) - shifted(h, -h) - shifted(-h, h) + shifted(-h, -h)) / (4 * h * h)
    val = float(pair_expectation(act, a, b, c, derivative=True))
    assert val == pytest.approx(mixed, rel=1e-5)
    assert float(pair_expectation(act, a, a, a, derivative=True)) == math.inf
    assert float(pair_expectation(act, a, b, c, derivative=True, staircase_derivative="ae")) == 0.0


def _phi_cdf(z):
    return 0.5 * math.erfc(-z / math.sqrt(2))


def _correlated_data(p, n, seed, mean_scale=1.0):
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((p, 2)) * mean_scale
    lab = rng.integers(0, 2, n)
    return (mu[:, lab] + rng.standard_normal((p, n))) / math.sqrt(p) / math.sqrt(1 + mean_scale**2)


@pytest.mark.slow  # 601 s in the default tier's timed run (docs/BENCHMARKS.md, test suite tiers)
def test_quadrature_fallback_matches_closed_form():
    # "erf(x)" as a user expression has no closed form here, so it takes the certified
    # quadrature path: Mehler's series with a Parseval-tail bound at every correlation and the
    # certified 1-D rule on the diagonal (budgets 1e-12 and 1e-14), so 1e-9 of the scale is
    # loose by design — it also absorbs the closed forms' own float64 rounding at two layers.
    X = _correlated_data(60, 80, seed=2, mean_scale=3.0)  # many pairs with |ρ| > 0.8
    K0 = X.T @ X
    d = np.sqrt(np.diag(K0))
    R = np.abs(K0 / np.outer(d, d))[~np.eye(80, dtype=bool)]
    assert (R > 0.8).mean() > 0.2 and (R < 0.8).mean() > 0.2  # both branches are exercised
    e_closed = exact_kernels(X, ["erf", "erf"], tau0=1.0)
    e_quad = exact_kernels(X, ["erf(x)", "erf(x)"], tau0=1.0)
    assert e_quad.methods[0].startswith("mehler")
    for A, B in zip(e_closed.K[1:] + e_closed.Theta[1:], e_quad.K[1:] + e_quad.Theta[1:]):
        np.testing.assert_allclose(B, A, rtol=0, atol=1e-9 * np.abs(A).max())


def test_layer_scales_against_moment_engine():
    moments = pytest.importorskip("ntk_theory.moments")
    for acts in (["relu", "tanh", "erf"], ["sigma_T:s1=-1,s2=0.5,a=2", "gelu"]):
        sc = layer_scales(acts, 1.3)
        tau = 1.3
        for l, act in enumerate(acts):
            gm = moments.gaussian_moments(act, tau)
            # the engine certifies 15 digits; our 48-node Gauss–Hermite for tanh/gelu is ≲ 1e-12
            assert sc.centering[l] == pytest.approx(gm.m0, rel=1e-9, abs=1e-12)
            assert sc.taus[l + 1] ** 2 == pytest.approx(gm.variance, rel=1e-9)
            tau = math.sqrt(gm.variance)


@pytest.mark.parametrize("acts", [("relu", "relu"), ("tanh", "erf"), ("sigma_T:s1=-1,s2=0.5,a=2", "relu")])
def test_exact_ck_and_ntk_match_wide_network(acts):
    # Finite width d: ‖CK − K_∞‖/‖K_∞‖ = O(√(n/d)) (docs/reference.rst §3).  Measured constants
    # (4 seeds, d ∈ {300, 3000}, these data): 0.4–1.3 for the CK, 0.2–1.0 for the NTK, the same
    # at both widths.  We require the 3-seed mean to be ≤ 2·√(n/d) at both widths, and the
    # error to shrink by at least 1.4 when d grows tenfold (the rate predicts √10 ≈ 3.2; the
    # slack covers the seed-to-seed spread of the constant seen above).
    p, n = 40, 30
    X = _correlated_data(p, n, seed=3)
    ek = exact_kernels(X, acts, tau0=1.0, staircase_derivative="ae")
    mean_err = {}
    for d in (300, 3000):
        errs = []
        for seed in range(3):
            emp = MLP(acts, (d, d), p=p, seed=seed, tau0=1.0).kernels(X)
            errs.append((np.linalg.norm(emp.ck[-1] - ek.K[-1], 2) / np.linalg.norm(ek.K[-1], 2),
                         np.linalg.norm(emp.ntk - ek.ntk, 2) / np.linalg.norm(ek.ntk, 2)))
        mean_err[d] = np.mean(errs, axis=0)
        assert np.all(mean_err[d] <= 2.0 * math.sqrt(n / d))
    assert np.all(mean_err[300] / mean_err[3000] > 1.4)


def test_staircase_ntk_has_infinite_diagonal():
    X = _correlated_data(20, 10, seed=4)
    ek = exact_kernels(X, ["relu", "sigma_T:s1=-1,s2=0.5,a=2"], tau0=1.0)
    assert np.all(np.isinf(np.diag(ek.ntk)))
    off = ek.ntk[~np.eye(10, dtype=bool)]
    assert np.all(np.isfinite(off))
    ae = exact_kernels(X, ["relu", "sigma_T:s1=-1,s2=0.5,a=2"], tau0=1.0, staircase_derivative="ae")
    np.testing.assert_array_equal(ae.ntk, ae.K[-1])


def test_n4000_fits_and_refusal():
    assert exact_memory_bytes(4000, 3) < MEMORY_LIMIT_BYTES
    X = np.random.default_rng(5).standard_normal((30, 4000)) / math.sqrt(30)
    ek = exact_kernels(X, ["relu"], centering="none")
    assert ek.ntk.shape == (4000, 4000) and np.all(np.isfinite(ek.ntk))
    np.testing.assert_array_equal(ek.ntk, ek.ntk.T)
    with pytest.raises(ResourceError, match="GiB"):
        exact_kernels(np.ones((2, 30000)), ["relu", "relu", "relu"])


# --------------------------------------------------------------------------- #
# Kinked expressions: piecewise-linear detection, split rules, accurate scales
# --------------------------------------------------------------------------- #
def _kinked(expr_text: str):
    return parse_activation(expr_text)


@pytest.mark.parametrize("text, slopes", [("Abs(x)/2", (0.5, -0.5)), ("Max(x, x/4)", (1.0, 0.25)),
                                          ("x*Heaviside(x)", (1.0, 0.0)), ("3*x", (3.0, 3.0))])
def test_piecewise_linear_expressions_are_detected(text, slopes):
    from ntk_theory.exact import closed_form_name, piecewise_linear_slopes

    act = _kinked(text)
    assert piecewise_linear_slopes(act) == pytest.approx(slopes, abs=0)  # exact rationals → floats
    assert closed_form_name(act) == "piecewise_linear"


@pytest.mark.parametrize("text", ["Max(0, x - 1/2)", "Abs(x) + x**2", "Min(x, 1)", "tanh(x)"])
def test_other_expressions_are_not_piecewise_linear(text):
    from ntk_theory.exact import closed_form_name, piecewise_linear_slopes

    act = _kinked(text)
    assert piecewise_linear_slopes(act) is None and closed_form_name(act) is None


def test_piecewise_linear_closed_form_equals_leaky_relu_and_abs():
    """Max(x, x/4) is leaky ReLU with slope 1/4 and Abs(x)/2 is abs/2: same kernels."""
    leaky, mx = parse_activation("leaky_relu:slope=0.25"), _kinked("Max(x, x/4)")
    ab, half = parse_activation("abs"), _kinked("Abs(x)/2")
    for a, b, c in PAIRS:
        for deriv in (False, True):
            np.testing.assert_allclose(pair_expectation(mx, a, b, c, derivative=deriv),
                                       pair_expectation(leaky, a, b, c, derivative=deriv), rtol=1e-14)
        # the same formula with other slopes: scale 1/2 multiplies E[σσ] by 1/4 (rounding only)
        np.testing.assert_allclose(pair_expectation(half, a, b, c), pair_expectation(ab, a, b, c) / 4, rtol=1e-14)
    assert float(gaussian_mean(half, 1.7)) == pytest.approx(float(gaussian_mean(ab, 1.7)) / 2, rel=1e-15)


def _quad_mean_var(act, tau: float, cuts) -> tuple[float, float]:
    """Independent reference: mpmath tanh-sinh at 30 digits, split at the given kinks."""
    import mpmath as mp
    import sympy as sp

    from ntk_theory.activations import X

    f = sp.lambdify(X, act.expr, "mpmath")
    with mp.workdps(30):
        pts = [-mp.inf, *sorted({0, *(mp.mpf(c) / tau for c in cuts)}), mp.inf]
        m = mp.quad(lambda x: f(tau * x) * mp.npdf(x), pts)
        v = mp.quad(lambda x: (f(tau * x) - m) ** 2 * mp.npdf(x), pts)
    return float(m), float(v)


@pytest.mark.parametrize("text, cuts", [("Abs(x)/2", (0,)), ("Max(x, x**2)", (0, 1)), ("Min(x, 1)", (1,)),
                                        ("Max(0, x - 1/2)", (0.5,)), ("tanh(x)", ())])
@pytest.mark.parametrize("tau", [0.5, 2.0])
def test_layer_scales_of_kinked_and_smooth_expressions(text, cuts, tau):
    """Centering and scale to rounding: a 48-node Gauss–Hermite rule was off by 1% for
    Abs(x)/2 (issue 5's scale-gauge test) and by 4e−4 in the variance of tanh(2ξ)."""
    act = _kinked(text)
    m, v = _quad_mean_var(act, tau, cuts)
    sc = layer_scales([act], tau)
    # QUADPACK at epsrel 1e-13 per piece vs a 30-digit reference: 1e-12 leaves a margin
    assert sc.centering[0] == pytest.approx(m, rel=1e-12, abs=1e-14)
    assert sc.taus[1] ** 2 == pytest.approx(v, rel=1e-12)


def test_split_rule_kernel_map_of_kinked_expression():
    """Mehler part and diagonal of a kinked expression vs adaptive 2-D quadrature split at the kinks."""
    from scipy.integrate import quad

    from ntk_theory.exact import layer_map

    act = _kinked("Min(x, 1)")
    K = np.array([[1.0, 0.5, 0.2], [0.5, 2.0, 0.3], [0.2, 0.3, 1.2]])  # every |ρ| ≤ 0.8: Mehler
    c = layer_scales([act], 1.0).centering[0]
    Kn, _ = layer_map(act, K, c, derivative=False)

    def f(t):
        return min(t, 1.0) - c

    def phi(x):
        return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)

    for i, j in [(0, 1), (1, 2), (0, 2), (1, 1)]:
        a, b, cc = K[i, i], K[j, j], K[i, j]
        rho = cc / math.sqrt(a * b)
        if i == j:
            ref = sum(quad(lambda x: f(math.sqrt(a) * x) ** 2 * phi(x), lo, hi, epsabs=1e-14)[0]
                      for lo, hi in [(-np.inf, 1 / math.sqrt(a)), (1 / math.sqrt(a), np.inf)])
        else:
            s = math.sqrt(1 - rho * rho)

            def inner(x):
                cut = (1 / math.sqrt(b) - rho * x) / s
                g = lambda y: f(math.sqrt(b) * (rho * x + s * y)) * phi(y)  # noqa: E731
                return quad(g, -np.inf, cut, epsabs=1e-13)[0] + quad(g, cut, np.inf, epsabs=1e-13)[0]

            ref = sum(quad(lambda x: f(math.sqrt(a) * x) * inner(x) * phi(x), lo, hi, epsabs=1e-12, limit=100)[0]
                      for lo, hi in [(-np.inf, 1 / math.sqrt(a)), (1 / math.sqrt(a), np.inf)])
        # Mehler truncation bound 1e-10 relative (module docstring) + quadrature 1e-12
        assert Kn[i, j] == pytest.approx(ref, rel=2e-10, abs=1e-12)


# --------------------------------------------------------------------------- #
# issue 15: the fused, in-place arc-cosine path equals the element-wise closed forms
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("spec", ["relu", "leaky_relu:slope=0.1", "abs", "Max(x, x/4)"])
def test_fused_arccos_layer_equals_pair_expectation(spec):
    """layer_map's fused block (one arccos for K and K̇, written in place, upper triangle
    mirrored tile by tile) against pair_expectation/gaussian_mean on the full matrix; both
    evaluate the same formula, so they agree to rounding (≤ 1e-14 relative; the fused path
    takes √(ab) the same way, so the diagonal's ρ = 1 and K̇(x,x) are reproduced exactly)."""
    from ntk_theory.exact import gaussian_mean, layer_map, pair_expectation

    act = parse_activation(spec)
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((40, 700)) / math.sqrt(40)
    Z[:, 5] = Z[:, 4]  # a duplicated sample: ρ = 1 off the diagonal
    K0 = Z.T @ Z
    center = 0.37
    K, Kd = layer_map(act, K0, center, block_bytes=8 * 700 * 12 * 64)  # several row blocks
    d = np.diag(K0)
    a, b = d[:, None], d[None, :]
    want = (pair_expectation(act, a, b, K0) - center * (gaussian_mean(act, a) + gaussian_mean(act, b))
            + center**2)
    want_d = pair_expectation(act, a, b, K0, derivative=True)
    np.testing.assert_allclose(K, want, rtol=0, atol=1e-14 * np.abs(want).max())
    np.testing.assert_allclose(Kd, want_d, rtol=0, atol=1e-14 * np.abs(want_d).max())
    assert (K == K.T).all() and (Kd == Kd.T).all()
    np.testing.assert_array_equal(np.diag(Kd), np.diag(want_d))
# Issue 11: certified exact kernels at large input norms (closed forms and quadrature)
# --------------------------------------------------------------------------- #
def _norm_grid():
    """Four inputs with squared norms 50, 40, 50, 0.01 and correlations 0.95, −0.999, 0, ~0.31:
    the strongly correlated pairs take the certified tensor rule, the others Mehler's series."""
    x = np.zeros((3, 4))
    x[:, 0] = [math.sqrt(50), 0, 0]
    x[:, 1] = math.sqrt(40) * np.array([0.95, math.sqrt(1 - 0.95**2), 0])
    x[:, 2] = math.sqrt(50) * np.array([-0.999, 0, math.sqrt(1 - 0.999**2)])
    x[:, 3] = [0, 0.1, 0]
    return x


def _phi(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _quadpack_pair(f, g, a, b, c):
    """E[f(u) g(v)] by nested adaptive QUADPACK (split where the arguments cross 0):
    an independent method (adaptive Gauss–Kronrod), accurate to ~1e-14 here."""
    from scipy.integrate import quad

    if a == b == c or (abs(c) >= math.sqrt(a * b) * (1 - 1e-15)):
        sgn = 1.0 if c > 0 else -1.0
        return sum(quad(lambda x: f(math.sqrt(a) * x) * g(sgn * math.sqrt(b) * x) * _phi(x), lo, hi,
                        epsabs=1e-15, epsrel=1e-14, limit=400)[0] for lo, hi in [(-40, 0), (0, 40)])
    rho = c / math.sqrt(a * b)
    s = math.sqrt(1 - rho * rho)

    def inner(x):
        cut = -rho * x / s
        h = lambda y: g(math.sqrt(b) * (rho * x + s * y)) * _phi(y)  # noqa: E731
        return (quad(h, -40, cut, epsabs=1e-15, epsrel=1e-14, limit=400)[0]
                + quad(h, cut, 40, epsabs=1e-15, epsrel=1e-14, limit=400)[0])

    return sum(quad(lambda x: f(math.sqrt(a) * x) * inner(x) * _phi(x), lo, hi,
                    epsabs=1e-14, epsrel=1e-13, limit=400)[0] for lo, hi in [(-40, 0), (0, 40)])


def _check_against(ek, f, df, tol=1e-10):
    """Every entry of K_1, K̇_1 and Θ_1 = K_1 + K_0 ⊙ K̇_1 against the reference pairs.

    1e-10 is the accuracy the issue asks for; the methods' own budgets are far below it
    (Mehler truncation 0.8^{M+1} ≤ 1e-12 relative, quadratures 1e-14).  Θ is compared with
    1e-10 relative to its scale (its entries reach 50 = ‖x‖², so an absolute 1e-10 on K̇
    already allows 5e-9 on Θ)."""
    import warnings

    from scipy.integrate import IntegrationWarning

    K0 = ek.K[0]
    n = K0.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)  # roundoff notes at 1e-15 requests
        for i in range(n):
            for j in range(i, n):
                a, b, c = K0[i, i], K0[j, j], K0[i, j]
                k_ref = _quadpack_pair(f, f, a, b, c)
                kd_ref = _quadpack_pair(df, df, a, b, c)
                assert abs(ek.K[1][i, j] - k_ref) <= tol, (i, j, ek.K[1][i, j], k_ref)
                assert abs(ek.Kdot[0][i, j] - kd_ref) <= tol, (i, j, ek.Kdot[0][i, j], kd_ref)
                th_ref = k_ref + c * kd_ref
                assert abs(ek.Theta[1][i, j] - th_ref) <= tol * max(1.0, abs(th_ref)), (i, j)


def test_tanh_exact_kernels_at_squared_norm_50():
    ek = exact_kernels(_norm_grid(), ["tanh"], centering="none")
    assert ek.methods[0].startswith("mehler")
    _check_against(ek, math.tanh, lambda t: 0.0 if abs(t) > 350 else 1.0 / math.cosh(t) ** 2)


@pytest.mark.slow  # 89 s in the default tier's timed run (docs/BENCHMARKS.md, test suite tiers)
def test_swish_exact_kernels_at_squared_norm_50():
    ek = exact_kernels(_norm_grid(), ["swish"], centering="none")

    def sig(t):
        return 0.5 * (1.0 + math.tanh(0.5 * t))

    _check_against(ek, lambda t: t * sig(t), lambda t: sig(t) + t * sig(t) * (1 - sig(t)))


# sin and cos need the longest nested-QUADPACK references (oscillating integrands at squared
# norm 50: 11–13 s each in the default tier's timed run); they run in the slow tier
@pytest.mark.parametrize("name", ["gelu", pytest.param("sin", marks=pytest.mark.slow),
                                  pytest.param("cos", marks=pytest.mark.slow), "gaussian"])
def test_new_closed_forms_against_quadrature(name):
    ek = exact_kernels(_norm_grid(), [name], centering="none")
    assert ek.methods[0] == f"closed:{name}"
    Phi = lambda t: 0.5 * math.erfc(-t / math.sqrt(2))  # noqa: E731
    f, df = {"gelu": (lambda t: t * Phi(t), lambda t: Phi(t) + t * _phi(t)),
             "sin": (math.sin, math.cos), "cos": (math.cos, lambda t: -math.sin(t)),
             "gaussian": (lambda t: math.exp(-t * t / 2), lambda t: -t * math.exp(-t * t / 2))}[name]
    _check_against(ek, f, df)


def _mp_gelu_pair(a, b, c, derivative):
    """mpmath reference of the GELU pair expectation: the inner Gaussian expectation over
    v | u is closed (E[wΦ(w)] = mΦ(m/k) + σ²φ(m/k)/k, E[Φ(w)] = Φ(m/k),
    E[wφ(w)] = mφ(m/k)/k³ for w ~ N(m, σ²), k = √(1+σ²)), the outer one is mp.quad."""
    import mpmath as mp

    mp.mp.dps = 30
    a, b, c = mp.mpf(a), mp.mpf(b), mp.mpf(c)
    rho = c / mp.sqrt(a * b)
    s2 = b * (1 - rho**2)
    k = mp.sqrt(1 + s2)

    def inner(x):
        m = mp.sqrt(b) * rho * x
        z = m / k
        if derivative:
            return mp.ncdf(z) + m * mp.npdf(z) / k**3
        return m * mp.ncdf(z) + s2 * mp.npdf(z) / k

    def outer(x):
        u = mp.sqrt(a) * x
        fu = (mp.ncdf(u) + u * mp.npdf(u)) if derivative else u * mp.ncdf(u)
        return fu * inner(x) * mp.npdf(x)

    return float(mp.quad(outer, [-40, -5, 0, 5, 40]))


@pytest.mark.parametrize("abc", [(50.0, 40.0, 0.95 * math.sqrt(2000.0)), (50.0, 50.0, -49.95), (50.0, 0.01, 0.3),
                                 (0.01, 0.02, 0.9 * math.sqrt(2e-4)), (1.0, 2.0, 0.7), (50.0, 50.0, 50.0)])
def test_gelu_closed_form_against_mpmath(abc):
    from ntk_theory.exact import pair_expectation

    act = parse_activation("gelu")
    a, b, c = abc
    for derivative in (False, True):
        v = float(pair_expectation(act, np.array(a), np.array(b), np.array(c), derivative=derivative))
        ref = _mp_gelu_pair(a, b, c, derivative)
        # closed form in float64: a few ulps of the O(10) terms
        assert v == pytest.approx(ref, rel=1e-13, abs=1e-14), (abc, derivative)


def test_tanh_pair_against_mpmath_two_dimensional():
    """One strongly correlated pair at squared norms 50 and 40 against nested mpmath quadrature."""
    import mpmath as mp

    from ntk_theory.exact import certified_pairs

    mp.mp.dps = 18
    a, b, c = 50.0, 40.0, 0.95 * math.sqrt(2000.0)
    rho, s = mp.mpf(c) / mp.sqrt(a * b), None
    s = mp.sqrt(1 - rho**2)

    def inner(x):
        cut = -rho * x / s
        return mp.quad(lambda y: mp.tanh(mp.sqrt(b) * (rho * x + s * y)) * mp.npdf(y),
                       [-12, cut, 12] if abs(cut) < 12 else [-12, 12])

    ref = mp.quad(lambda x: mp.tanh(mp.sqrt(a) * x) * inner(x) * mp.npdf(x), [-12, 0, 12])
    v, err = certified_pairs(np.tanh, np.array([a]), np.array([b]), np.array([c]))
    assert abs(v[0] - float(ref)) <= 1e-13 and err[0] <= 1e-13


def test_certified_diagonal_against_mpmath():
    """Diagonals E[tanh(√s ξ)²] and E[sech⁴(√s ξ)] for s from 1e-4 to 50 against mpmath."""
    import mpmath as mp

    from ntk_theory.exact import certified_coefficients

    mp.mp.dps = 25
    s = np.array([1e-4, 0.01, 1.0, 7.0, 39.0, 50.0])
    _, sec, err = certified_coefficients(np.tanh, s, 10)
    _, secd, _ = certified_coefficients(lambda t: 1 / np.cosh(t) ** 2, s, 10)
    for si, v, vd in zip(s, sec, secd):
        r = mp.sqrt(si)
        ref = mp.quad(lambda x: mp.tanh(r * x) ** 2 * mp.npdf(x), [-mp.inf, -1, 0, 1, mp.inf])
        refd = mp.quad(lambda x: mp.sech(r * x) ** 4 * mp.npdf(x), [-mp.inf, -1, 0, 1, mp.inf])
        assert abs(v - float(ref)) <= 1e-14 and abs(vd - float(refd)) <= 1e-14, si
    assert np.all(err <= 1e-13)


def test_overflowing_activation_is_a_typed_error():
    from ntk_theory.errors import NumericalError

    X = np.eye(3) * 30.0  # squared norms 900: E[exp(2u)] = e^{1800} overflows float64
    with pytest.raises(NumericalError, match="not finite"):
        exact_kernels(X, ["exp(x)"], centering="none", ntk=False)


# --------------------------------------------------------------------------- #
# Certified Mehler series at strong correlations (Parseval tail bound)
# --------------------------------------------------------------------------- #
def _near_duplicates(n, seed):
    """Inputs with squared norms in [0.3, 3] whose pairs reach |ρ| = 0.999 (both signs)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((5, 2))
    cols = [base[:, k % 2] * (1 if k % 4 < 2 else -1) + rng.uniform(0.005, 0.5) * rng.standard_normal(5)
            for k in range(n)]
    X = np.array(cols).T
    X *= np.sqrt(rng.uniform(0.3, 3.0, n) / np.sum(X * X, axis=0))
    return X


@pytest.mark.parametrize("name", ["tanh", "swish"])
def test_mehler_tail_certifies_strongly_correlated_pairs(name, monkeypatch):
    """At moderate variances the Hermite coefficients decay so fast that the Mehler series is
    certified at every correlation: no pair may take the 2-D tensor rule, and every entry must
    equal that independent rule (composite Gauss–Legendre in rotated coordinates) to within the
    two methods' budgets (Mehler tail 1e-12 and quadrature 1e-14 of √(E f(u)² E f(v)²))."""
    import ntk_theory.exact as ex

    X = _near_duplicates(14, seed=5)
    K0 = X.T @ X
    d = np.sqrt(np.diag(K0))
    R = np.abs(K0 / np.outer(d, d))[~np.eye(14, dtype=bool)]
    assert R.max() > 0.999 and (R > 0.9).mean() > 0.2  # the regime that used to be slow
    tensor_rule = ex.certified_pairs

    def refuse(*args, **kwargs):
        raise AssertionError("a pair took the tensor rule")

    monkeypatch.setattr(ex, "certified_pairs", refuse)
    ek = exact_kernels(X, [name], centering="none")
    monkeypatch.setattr(ex, "certified_pairs", tensor_rule)
    act = parse_activation(name)
    iu = np.triu_indices(14, 1)
    a, b, c = np.diag(K0)[iu[0]], np.diag(K0)[iu[1]], K0[iu]
    for fn, got in ((act, ek.K[1]), (ex.derivative_function(act), ek.Kdot[0])):
        ref, _ = tensor_rule(fn, a, b, c)
        scale = np.sqrt(np.diag(got)[iu[0]] * np.diag(got)[iu[1]])
        np.testing.assert_array_less(np.abs(got[iu] - ref), 2e-12 * scale + 2e-14)


def test_mehler_tail_against_adaptive_reference():
    """Tanh at ρ = 0.99, −0.995, 0.9999 and squared norms 0.5–5 (all on the Mehler path) against
    nested adaptive QUADPACK (itself checked against mpmath above), within the issue's 1e-10."""
    pairs = [(1.0, 1.2, 0.99), (0.5, 2.0, -0.995), (5.0, 4.0, 0.9999), (3.0, 3.0, 0.95)]
    X = np.zeros((2, 2 * len(pairs)))
    for k, (a, b, r) in enumerate(pairs):
        X[:, 2 * k] = [math.sqrt(a), 0.0]
        X[:, 2 * k + 1] = math.sqrt(b) * np.array([r, math.sqrt(1 - r * r)])
    import warnings

    from scipy.integrate import IntegrationWarning

    ek = exact_kernels(X, ["tanh"], centering="none")
    K0 = ek.K[0]
    for k in range(len(pairs)):
        i, j = 2 * k, 2 * k + 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IntegrationWarning)  # roundoff notes at 1e-15 requests
            ref = _quadpack_pair(math.tanh, math.tanh, K0[i, i], K0[j, j], K0[i, j])
        assert abs(ek.K[1][i, j] - ref) <= 1e-10, (pairs[k], ek.K[1][i, j], ref)


def test_shared_node_coefficients_equal_per_row_rule():
    """The kink-free path evaluates h_k once for all rows; it must equal the per-row rule."""
    from ntk_theory.exact import _one_dim

    sd = np.sqrt(np.array([0.2, 1.0, 3.0]))[:, None]
    A, sec = _one_dim(np.tanh, sd, (), 40, 20, 60)
    # a break far outside every row's range only adds an edge at ±L: the per-row path, same panels
    A_row, sec_row = _one_dim(np.tanh, np.full_like(sd, sd.max()), (1e6,), 40, 20, 60)
    np.testing.assert_allclose(A[:, -1], A_row[:, -1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(sec[-1], sec_row[-1], rtol=1e-15)


def test_exact_kernel_budget_and_progress(capsys):
    from ntk_theory.errors import ParameterError

    X = _norm_grid()
    with pytest.raises(ResourceError, match="time budget"):
        exact_kernels(np.repeat(X, 40, axis=1), ["tanh"], centering="none", budget=1e-9)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ParameterError, match="budget"):
            exact_kernels(X, ["tanh"], centering="none", budget=bad)
    exact_kernels(X, ["tanh"], centering="none", budget=600.0, progress=True)
    # the nearly collinear pairs at squared norm 50 (ρ = −0.999) still take the tensor rule
    assert "exact kernel pairs (tanh)" in capsys.readouterr().err
