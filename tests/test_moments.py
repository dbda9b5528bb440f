"""The moment engine against independent computations (docs/reference.rst §1).

* every registry activation: engine vs a 45-digit mpmath quadrature reference
  (tests/reference.py, written separately) to ≥ 12 digits, and vs Monte Carlo
  within 5 standard errors;
* thresholds 35 standard deviations into the tail and τ from 1e-4 to 1e4:
  relative error ≤ 1e-10 against 40-digit analytic or quadrature references;
* centering identities, closed-form flags, LaTeX, 30-digit requests.
"""

from __future__ import annotations

import math
import os
import time

import mpmath as mp
import pytest
from reference import reference_moments, rel_err

from ntk_theory.activations import example_activations, parse_activation
from ntk_theory.errors import DivergenceError, DomainError, ParameterError, ParseError
from ntk_theory.moments import MOMENT_KEYS, gaussian_moments
from ntk_theory.montecarlo import monte_carlo_moments

EXAMPLES = example_activations()
IDS = [a.spec for a in EXAMPLES]
NUMERIC_ONLY = {"tanh", "sigmoid", "swish", "softplus"}  # no elementary Gaussian integral


@pytest.mark.parametrize("act", EXAMPLES, ids=IDS)
def test_registry_against_reference_quadrature(act):
    g = gaussian_moments(act, 1.0)
    ref = reference_moments(act, 1.0)
    for key in MOMENT_KEYS:
        m = g[key]
        # closed forms are certified by precision doubling to 18 digits (digits + 3);
        # quadrature results by tanh-sinh at 25 digits: 12 digits is the floor
        assert rel_err(m.value, ref[key]) < 1e-12, (key, m, ref[key])
        if not m.is_infinite and m.method == "quadrature":
            # the reported error estimate must cover the actual error
            assert abs(float(m.value - ref[key])) <= max(10 * m.abs_error, 1e-30)
    assert g.closed_form == (act.name not in NUMERIC_ONLY)


@pytest.mark.parametrize("act", EXAMPLES, ids=IDS)
def test_registry_against_monte_carlo(act):
    g = gaussian_moments(act, 0.8)
    mc = monte_carlo_moments(act, 0.8, n=400_000, seed=12345)
    for key in MOMENT_KEYS:
        est = mc[key]
        # CLT: the estimate is within 5 standard errors with probability 1 − 6e-7
        assert est.within(float(g[key]), 5.0), (key, float(g[key]), est)
        if not math.isinf(est.mean):
            lo, hi = est.interval(0.9999994)
            assert lo <= float(g[key]) <= hi


def test_step_function_derivative_square_is_infinite_not_error():
    for spec in ("step", "sign", "sigma_T:s1=-1,s2=0.5", "Heaviside(x-1)", "Piecewise((1, x > 2), (0, True))"):
        g = gaussian_moments(spec, 1.0)
        assert math.isinf(g.v1) and g.v1 > 0
        assert g.to_dict()["moments"]["E[s'^2]"] == math.inf
        assert g.closed_form  # inf does not spoil the closed-form flag


# ---- tails and the τ range ------------------------------------------------------- #
def _tail_references(t: float, tau: float) -> dict[str, mp.mpf]:
    """Analytic 60-digit moments of the step 1_{x>t}: P = Φ(−z), z = t/τ."""
    with mp.workdps(60):
        z = mp.mpf(t) / tau
        P = mp.erfc(z / mp.sqrt(2)) / 2
        phi = mp.npdf(z)
        return {"E[s]": P, "E[s']": phi / tau, "E[s'']": z * phi / tau**2, "E[s^2]": P,
                "E[(s^2)'']": z * phi / tau**2}


@pytest.mark.parametrize("t", [5.0, 20.0, 35.0, -35.0])
def test_step_far_in_the_tail(t):
    g = gaussian_moments(f"step:threshold={t}", 1.0)
    ref = _tail_references(t, 1.0)
    for key, r in ref.items():
        assert rel_err(g[key].value, r, floor=mp.mpf(0)) < 1e-10, (key, g[key].value, r)
        assert math.isfinite(float(g[key]))


def test_sigma_t_with_a_threshold_35_sd_out():
    a = parse_activation("sigma_T:s1=-35,s2=34.5,a=1.5")
    g = gaussian_moments(a, 1.0)
    with mp.workdps(60):
        z1, z2 = mp.mpf(-35), mp.mpf("34.5")
        P = mp.erfc(-z1 / mp.sqrt(2)) / 2 + mp.erfc(z2 / mp.sqrt(2)) / 2
        ref = {"E[s]": mp.mpf("1.5") * P,
               "E[s']": mp.mpf("1.5") * (mp.npdf(z2) - mp.npdf(z1)),
               "E[s'']": mp.mpf("1.5") * (z2 * mp.npdf(z2) - z1 * mp.npdf(z1))}
    for key, r in ref.items():
        assert rel_err(g[key].value, r, floor=mp.mpf(0)) < 1e-10


def test_shifted_relu_deep_in_the_tail_keeps_relative_accuracy():
    # E[max(x − 30, 0)] = φ(30) − 30 Φ(−30): two terms of size 1e-196 cancel to 1e-199
    g = gaussian_moments("Max(x - 30, 0)", 1.0)
    with mp.workdps(80):
        ref = mp.npdf(30) - 30 * mp.erfc(30 / mp.sqrt(2)) / 2
    assert rel_err(g.moments[0].value, ref, floor=mp.mpf(0)) < 1e-10


TAUS = [1e-4, 1e-2, 1.0, 1e2, 1e4]


@pytest.mark.parametrize("spec", ["relu", "elu", "gelu", "erf", "leaky_relu:slope=0.2",
                                  "sigma_T:s1=-1,s2=0.5,a=2", "gaussian", "abs"])
@pytest.mark.parametrize("tau", TAUS)
def test_tau_range_closed_forms(spec, tau):
    act = parse_activation(spec)
    g = gaussian_moments(act, tau)
    ref = reference_moments(act, tau, dps=60)
    for key in MOMENT_KEYS:
        v = float(g[key])
        assert not math.isnan(v)
        assert rel_err(g[key].value, ref[key]) < 1e-10, (key, g[key].value, ref[key])


@pytest.mark.parametrize("tau", TAUS)
def test_tau_range_trigonometric_against_exact_formulas(tau):
    # E[sin(τξ)ξ]/τ = e^{−τ²/2}, E[cos(τξ)] = e^{−τ²/2}, E[sin²] = (1 − e^{−2τ²})/2: exact references
    s, c = gaussian_moments("sin", tau), gaussian_moments("cos", tau)
    with mp.workdps(50):
        e = mp.exp(-mp.mpf(tau) ** 2 / 2)
        e4 = mp.exp(-2 * mp.mpf(tau) ** 2)
        assert rel_err(s["E[s']"].value, e, floor=mp.mpf(0)) < 1e-10
        assert rel_err(c["E[s]"].value, e, floor=mp.mpf(0)) < 1e-10
        assert rel_err(s["E[s^2]"].value, (1 - e4) / 2, floor=mp.mpf(0)) < 1e-10


@pytest.mark.parametrize("spec", ["tanh", "softplus"])
@pytest.mark.parametrize("tau", [1e-4, 1e-2, 1.0, 1e2])
def test_tau_range_numeric(spec, tau):
    act = parse_activation(spec)
    g = gaussian_moments(act, tau)
    ref = reference_moments(act, tau, dps=60)
    for key in MOMENT_KEYS:
        assert not math.isnan(float(g[key]))
        assert rel_err(g[key].value, ref[key]) < 1e-10, (key, g[key].value, ref[key])


# ---- centering, precision, output ----------------------------------------------- #
@pytest.mark.parametrize("spec", ["relu", "gelu", "sigma_T:s1=-1,s2=0.5,a=2", "tanh", "elu"])
def test_centered_identities(spec):
    g = gaussian_moments(spec, 1.3)
    c = gaussian_moments(spec, 1.3, centered=True)
    assert c.m0 == 0.0
    assert c.v0 == pytest.approx(g.v0 - g.m0**2, rel=1e-13)
    assert c.w2 == pytest.approx(g.w2 - 2 * g.m0 * g.m2, rel=1e-12, abs=1e-14)
    assert (c.m1, c.m2) == (g.m1, g.m2)
    assert c.variance == pytest.approx(g.variance, rel=1e-13)
    assert c.w2_bar == pytest.approx(g.w2_bar, rel=1e-12, abs=1e-14)
    mc = monte_carlo_moments(spec, 1.3, n=400_000, seed=7, centered=True)
    for key in ("E[s^2]", "E[(s^2)'']"):
        assert mc[key].within(float(c[key]), 5.0), key  # CLT, 5 standard errors


@pytest.mark.parametrize("spec", ["softplus", "swish", "sigmoid"])
def test_centered_error_estimate_bounds_the_true_error(spec):
    """Numeric-only moments: Var and E[(σ̄²)''] carry the propagated error estimate
    (moments._center), which must cover the distance to the 45-digit reference."""
    act = parse_activation(spec)
    c = gaussian_moments(act, 1.3, centered=True, digits=8)
    ref = reference_moments(act, 1.3)
    with mp.workdps(45):
        exact = {"E[s^2]": ref["E[s^2]"] - ref["E[s]"] ** 2,
                 "E[(s^2)'']": ref["E[(s^2)'']"] - 2 * ref["E[s]"] * ref["E[s'']"]}
    for key, want in exact.items():
        m = c[key]
        assert m.method == "quadrature", m
        with mp.workdps(45):
            assert abs(m.value - want) <= m.abs_error, (key, m, want)
        # and it is an estimate, not a blanket: within the 8 digits asked for
        assert 0 < m.abs_error <= 1e-8 * max(1.0, abs(float(want))), (key, m)


def test_centered_error_propagation_is_sharp():
    """The worst case of the bound is attained: inputs off by exactly their estimates, in the
    directions that add up, give exactly the propagated estimate (δv0 + 2|m0|δm0 + δm0², and
    δw2 + 2|m2|δm0 + 2|m0|δm2 + 2δm0δm2)."""
    from ntk_theory.moments import Moment, _center

    m0, m1, m2, v0, v1, w2 = (mp.mpf(v) for v in ("0.7", "0.4", "0.3", "0.9", "0.25", "0.6"))
    d0, d2, dv, dw = (mp.mpf(v) for v in ("1e-3", "2e-3", "3e-3", "4e-3"))
    # computed m0, m2 below the truth and v0, w2 above it: every term of both errors adds up
    given = [Moment(m0 - d0, float(d0), None, "quadrature", key="E[s]"),
             Moment(m1, 0.0, None, "quadrature", key="E[s']"),
             Moment(m2 - d2, float(d2), None, "quadrature", key="E[s'']"),
             Moment(v0 + dv, float(dv), None, "quadrature", key="E[s^2]"),
             Moment(v1, 0.0, None, "quadrature", key="E[s'^2]"),
             Moment(w2 + dw, float(dw), None, "quadrature", key="E[(s^2)'']")]
    out = {m.key: m for m in _center(given, 1.0, 15)}
    with mp.workdps(30):
        for key, truth in (("E[s^2]", v0 - m0**2), ("E[(s^2)'']", w2 - 2 * m0 * m2)):
            err = abs(out[key].value - truth)
            # attained up to the float64 rounding of the inputs' abs_error fields (~1e-19 here)
            assert err <= out[key].abs_error * (1 + 1e-12), (key, err, out[key].abs_error)
            assert err >= out[key].abs_error * (1 - 1e-12), (key, err, out[key].abs_error)


def test_thirty_digits_on_request():
    for spec in ("relu", "gelu", "tanh", "sigma_T:s1=-1,s2=0.5"):
        act = parse_activation(spec)
        g = gaussian_moments(act, 1.1, digits=30)
        ref = reference_moments(act, 1.1, dps=50)
        for key in MOMENT_KEYS:
            assert rel_err(g[key].value, ref[key], floor=mp.mpf("1e-45")) < 1e-28, (spec, key)


def test_relu_closed_forms_are_the_textbook_ones():
    g = gaussian_moments("relu", 2.0)
    # E[relu(τξ)] = τ/√(2π), E[relu²] = τ²/2, E[relu'] = 1/2, E[relu''] = φ(0)/τ
    assert g.m0 == pytest.approx(2.0 / math.sqrt(2 * math.pi), rel=1e-15)
    assert g.v0 == pytest.approx(2.0, rel=1e-15)
    assert g.m1 == 0.5 and g.v1 == 0.5
    assert g.m2 == pytest.approx(1 / math.sqrt(2 * math.pi) / 2.0, rel=1e-15)
    assert g.latex["E[s^2]"] == r"\frac{\tau^{2}}{2}"


def test_erf_identities_from_theory_md():
    # E[erf(aξ)²] = (2/π) arcsin(2a²/(1+2a²)) (docs/reference.rst §1)
    a = 1.7
    g = gaussian_moments("erf", a)
    assert g.v0 == pytest.approx(2 / math.pi * math.asin(2 * a * a / (1 + 2 * a * a)), rel=1e-14)
    assert g["E[s^2]"].closed_form


def test_repr_latex_and_dict():
    g = gaussian_moments("relu", 1.0)
    assert g._repr_latex_().startswith("$$")
    d = g.to_dict()
    assert set(d["moments"]) == set(MOMENT_KEYS) and d["closed_form"] is True
    assert d["latex"]["E[s']"] == r"\frac{1}{2}"


# ---- bad input --------------------------------------------------------------------- #
@pytest.mark.parametrize("tau", [0.0, -1.0, math.inf, math.nan, "abc"])
def test_bad_tau(tau):
    with pytest.raises(DomainError):
        gaussian_moments("relu", tau)


@pytest.mark.parametrize("spec,exc", [
    ("exp(x**2)", DivergenceError),
    ("1/x", DivergenceError),
    ("1/(x-1)**2", DivergenceError),
    ("tan(x)", DivergenceError),
    ("exp(x**2/4)", DivergenceError),   # E[s] exists at τ=1, E[s^2] = E[exp(ξ²/2)] does not
    ("y + x", ParseError),
    ("x +", ParseError),
    ("nosuchact", ParseError),
    ("leaky_relu:slope=abc", ParameterError),
    ("sigma_T:s1=1,s2=0", ParameterError),
    ("sigma_Q:r1=1,r2=0,r3=2,r4=3", ParameterError),
    ("staircase:thresholds=[0,1],levels=[1,2]", ParameterError),
])
def test_bad_input_raises_typed_errors(spec, exc):
    with pytest.raises(exc):
        gaussian_moments(spec, 1.0)


def test_divergence_depends_on_tau():
    # exp(x²/8): E[σ²] = E[exp(τ²ξ²/4)] exists iff τ² < 2
    assert math.isfinite(gaussian_moments("exp(x**2/8)", 1.0).v0)
    with pytest.raises(DivergenceError):
        gaussian_moments("exp(x**2/8)", 1.5)


def test_bad_digits_and_budget():
    with pytest.raises(ParameterError):
        gaussian_moments("relu", 1.0, digits=0)
    with pytest.raises(ParameterError):
        gaussian_moments("relu", 1.0, budget=-1)


def test_budget_bounds_symbolic_work_and_falls_back():
    # SymPy cannot integrate besselj against a Gaussian quickly; with a 0.3 s budget
    # the engine must give up on symbolics and return a certified number instead.
    start = time.perf_counter()
    g = gaussian_moments("besselj(0, x)*exp(-x**2/3) + x", 1.0, budget=0.3)
    elapsed = time.perf_counter() - start
    assert not math.isnan(g.m0)
    # no-hang guard, not a speed target: budget plus quadrature of six moments
    assert elapsed < 60
    mc = monte_carlo_moments(g.activation, 1.0, n=400_000, seed=3)
    assert mc["E[s]"].within(g.m0, 5.0)


def test_variance_has_no_cancellation_for_closed_forms():
    """cos at τ = 1.3e−4: Var = (1 − e^{−τ²})²/2 ≈ 1.4e−16 against E[σ]² ≈ 1; the closed
    form of v0 − m0² is certified like any closed form (float64 relative rounding)."""
    import math

    for tau in (1.3e-4, 1e-3):
        m = gaussian_moments(parse_activation("cos"), tau)
        assert m.variance == pytest.approx(math.expm1(-tau * tau) ** 2 / 2, rel=1e-14)


def test_notebook_html_of_moments_and_coefficients():
    """_repr_html_ delegates to ntk_theory.display: a table with one row per moment/layer."""
    from ntk_theory.coefficients import coefficients

    html = gaussian_moments(parse_activation("relu"), 1.0)._repr_html_()
    assert html.startswith("<table") and html.count("<tr>") >= 2
    html = coefficients(["relu", "relu"], 1.0)._repr_html_()
    assert html.startswith("<table") and html.count("<tr>") >= 3  # header + 2 layers


# --------------------------------------------------------------------------- #
# Issue 11: numbers certified or refused, deterministic budget
# --------------------------------------------------------------------------- #
def test_pole_at_a_non_dyadic_point_is_found():
    # 1/3 is not a double: a pole rounded to float64 looked integrable (E[s^2] ≈ 6e18, exit 0)
    with pytest.raises(DivergenceError, match="1/3"):
        gaussian_moments("1/(x-1/3)", 1.0)
    with pytest.raises(DivergenceError):
        gaussian_moments("x/(x**2 - 2)", 1.0)  # poles at ±√2


def test_integrable_singularities_have_values():
    import sympy as sp

    from ntk_theory.activations import X
    from ntk_theory.expectation import gaussian_expectation

    # E|ξ|^(-0.9) = 2^(-0.45) Γ(0.05)/Γ(1/2) (Gaussian absolute moment of order -0.9)
    r = gaussian_expectation(sp.Abs(X) ** sp.Rational(-9, 10), 1.0, 0, digits=12)
    with mp.workdps(30):
        exact = mp.mpf(2) ** mp.mpf("-0.45") * mp.gamma(mp.mpf("0.05")) / mp.gamma(mp.mpf("0.5"))
    assert abs(r.value - exact) <= r.abs_error and r.abs_error < 1e-11 * exact
    # E log|ξ| = -(γ + log 2)/2
    r = gaussian_expectation(sp.log(sp.Abs(X)), 1.0, 0, digits=12)
    with mp.workdps(30):
        exact = -(mp.euler + mp.log(2)) / 2
    assert abs(r.value - exact) <= r.abs_error and r.abs_error < 1e-11
    # E[σ²] of |x|^(-0.9) diverges (|x|^(-1.8)): a true "does not exist"
    with pytest.raises(DivergenceError, match=r"E\[s\^2\]"):
        gaussian_moments("abs(x)**(-0.9)", 1.0)


@pytest.mark.slow  # 302 s in the default tier's timed run (docs/BENCHMARKS.md, test suite tiers)
def test_slowly_growing_tail_is_not_divergent():
    # erfinv(tanh(x)) ~ √(2x): tanh rounds to 1 at x = 640 unless the precision is raised
    g = gaussian_moments("erfinv(tanh(x))", 1.0, digits=10)
    with mp.workdps(30):
        # on [-14, 14]: beyond, |erfinv(tanh(z)) z φ(z)| < 5 z φ(z) integrates to < 1e-40
        ref = mp.quad(lambda z: mp.erfinv(mp.tanh(z)) * z * mp.npdf(z), [-14, 0, 14])
    assert abs(g["E[s']"].value - ref) <= max(g["E[s']"].abs_error, 1e-12)
    assert g.m0 == 0 and g.m2 == 0  # odd: proved by parity


@pytest.mark.slow  # 112 s in the default tier's timed run (docs/BENCHMARKS.md, test suite tiers)
def test_softplus_tiny_beta_cancellation():
    # σ = log(1+e^{βx})/β ≈ log2/β + x/2 + βx²/8: σ² is 4.8e39 while E[(σ²)''] ≈ 1/2 + log2/2
    g = gaussian_moments("softplus:beta=1e-20", 1.0, digits=12)
    w2 = g["E[(s^2)'']"]
    with mp.workdps(80):  # independent: (σ²)'' = 2σ'² + 2σσ'' written out, direct quadrature
        b = mp.mpf("1e-20")
        sig = lambda x: mp.log1p(mp.exp(b * x)) / b
        s1 = lambda x: 1 / (1 + mp.exp(-b * x))
        s2 = lambda x: b * s1(x) * (1 - s1(x))
        ref = mp.quad(lambda z: (2 * s1(z) ** 2 + 2 * sig(z) * s2(z)) * mp.npdf(z), [-mp.inf, 0, mp.inf])
    assert abs(w2.value - ref) <= w2.abs_error and w2.abs_error < 1e-11, (w2, ref)
    assert abs(float(ref) - 0.8465735902799727) < 1e-12


def test_oscillation_without_a_certificate_is_refused():
    from ntk_theory.errors import NumericalError

    with pytest.raises(NumericalError, match="could not certify"):
        gaussian_moments("sin(1/x)", 1.0, digits=12)


def test_arg_is_a_step():
    g = gaussian_moments("arg(x)", 1.0)
    assert math.isinf(g.v1) and abs(g.m0 - math.pi / 2) < 1e-14


@pytest.mark.parametrize("tau", [1e-5, 2e4, 1e16])
def test_tau_outside_the_certified_range_is_refused(tau):
    with pytest.raises(DomainError, match="outside the supported range"):
        gaussian_moments("relu", tau)


@pytest.mark.parametrize("spec,exc", [
    ("gamma(x)", DivergenceError), ("DiracDelta(x)", ParseError), ("airyai(x)", ParseError),
    ("factorial(x)", ParseError), ("oo", ParseError), ("step:threshold=1e200", ParameterError),
])
def test_special_functions_and_huge_parameters_are_typed(spec, exc):
    with pytest.raises(exc):
        gaussian_moments(spec, 1.0)


def test_budget_limits_are_typed():
    with pytest.raises(ParameterError):
        gaussian_moments("relu", 1.0, budget=9.3e9)


def test_finite_values_beyond_float64_are_numbers_in_json():
    import json

    from ntk_theory.cli._common import to_jsonable

    d = gaussian_moments("x*1e400", 1.0).to_dict()
    out = json.loads(json.dumps(to_jsonable(d), allow_nan=False))
    assert out["moments"]["E[s']"] == "1e+400" or out["moments"]["E[s']"].startswith("9.99999999999999")
    assert out["moments"]["E[s^2]"] == "1e+800" and out["moments"]["E[s'^2]"] != "inf"
    assert all(v != "inf" for v in out["abs_error"].values())


@pytest.mark.slow  # 130 s in the default tier's timed run (docs/BENCHMARKS.md, test suite tiers)
def test_budget_is_deterministic_under_load():
    """The symbolic budget counts Python calls: a busy thread (which inflates this process's
    CPU time, what the old timer measured) changes nothing, and a budget just above or just
    below a derivation's cost gives the same verdict every time.

    Run in fresh interpreters, as every CLI call is, with different ``PYTHONHASHSEED``
    values: the counted work of GELU's derivation must be *identical* in all of them (the
    count skips SymPy's assumption deduction, comparisons and first imports, whose call
    counts depend on the hash seed and on the process's history)."""
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    code = (f"import sys; sys.path.insert(0, {here!r}); import test_moments; "
            "print(test_moments._budget_determinism_check())")
    costs = []
    for hash_seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed,
               "PYTHONPATH": os.path.dirname(here) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        costs.append(int(r.stdout.split()[-1]))
    assert len(set(costs)) == 1, costs


def _budget_determinism_check():
    import threading

    from sympy.core.cache import clear_cache as clear_sympy_cache

    from ntk_theory.expectation import CALLS_PER_SECOND, clear_caches, derivation_work
    from ntk_theory.moments import moment_closed_forms

    def cold():  # SymPy's own cache also saves calls: start each run cold, like a fresh process
        clear_caches()
        clear_sympy_cache()

    cold()
    w0 = derivation_work()
    forms = moment_closed_forms("gelu", budget=10.0)
    cold_cost = derivation_work() - w0
    cost = cold_cost / CALLS_PER_SECOND
    assert forms is not None and cost > 0
    stop = threading.Event()

    def burn():
        while not stop.is_set():
            sum(i * i for i in range(1000))

    results = []
    th = threading.Thread(target=burn, daemon=True)
    for loaded in (False, True, False, True):
        if loaded and not th.is_alive():
            th.start()
        for b in (cost * 1.02, cost * 0.98):
            cold()
            g = gaussian_moments("gelu", 1.0, budget=b)
            results.append((loaded, b > cost, g.closed_form, tuple(m.method for m in g.moments),
                            tuple(g.latex.items())))
    stop.set()
    above = {r[2:] for r in results if r[1]}
    below = {r[2:] for r in results if not r[1]}
    assert len(above) == 1 and len(below) == 1, results
    assert next(iter(above))[0] is True and next(iter(below))[0] is False
    return cold_cost
