"""Coefficient recursions (docs/reference.rst §4) against computations that never touch ``moments.py``.

Three independent routes:

1. **Layer-by-layer mpmath quadrature.**  Every activation is written here again by
   hand as an mpmath function; each layer's scale, centering constant and the four
   per-layer factors are obtained from 1-D quadratures (split at the kinks/jumps) at
   the scale the previous quadrature produced, derivatives by numerical
   differentiation of those quadratures:

   * ``c_ℓ = E[σ(τ_{ℓ−1}ξ)]``, ``τ_ℓ² = E[(σ(τ_{ℓ−1}ξ) − c_ℓ)²]``;
   * ``m1 = ∂_b E[σ(τξ + b)]``, ``m2 = ∂_b² E[σ(τξ + b)]`` at ``b = 0`` (shift derivatives);
   * ``½ w̄2 = ∂_a E[(σ(√a ξ) − c_ℓ)²]`` at ``a = τ²`` (heat equation: ``∂_a E g(√a ξ) = ½ E g''``);
   * ``v1 = E[σ'(τξ)²]``.

   The recursion of docs/reference.rst §4 is then transcribed here in mpmath.

2. **Taylor coefficients of the exact limiting kernel maps** (:mod:`ntk_theory.exact`:
   arc-cosine, arcsine, Owen's T, Mehler/Gauss–Hermite — no moment engine).  For two
   inputs with ``‖x‖² = τ_0² + δ_1``, ``‖x'‖² = τ_0² + δ_2`` and ``xᵀx' = c``, the composed
   maps satisfy, at ``c = δ = 0`` (Mehler expansion and chain rule, centred layers so
   ``K_ℓ(0) = 0``):

   * ``∂_c K_L = α_{L,1}``, ``½ ∂_c² K_L = α_{L,3}``, ``∂_{δ1}∂_{δ2} K_L = α_{L,2}``,
     ``∂_δ K_L(x,x) = α_{L,4}``, ``K_L(x,x) = τ_L²``;
   * the same for ``Θ_L`` with β and ``Θ_L(x,x) = κ_L²``.

   This checks the recursion *formulas*, not only their inputs.

3. **Closed forms** (:func:`coefficient_closed_forms`) against the numbers, and against
   hand-derived one-layer closed forms for ReLU and erf.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

from ntk_theory.coefficients import TAU0, coefficient_closed_forms, coefficients
from ntk_theory.errors import DomainError, ParameterError
from ntk_theory.exact import exact_kernels

SIGMA_T = "sigma_T:s1=-1,s2=0.5,a=2"
TERNARY = "ternary:s=0.7,b=1"


# --------------------------------------------------------------------------- #
# Route 1: activations re-written in mpmath, layer maps by 1-D quadrature
# --------------------------------------------------------------------------- #
def _relu(t):
    return t if t > 0 else mp.mpf(0)


def _sigma_t(t):  # a(1_{t<s1} + 1_{t>s2}) with s1=-1, s2=0.5, a=2
    return mp.mpf(2) if (t < -1 or t > mp.mpf("0.5")) else mp.mpf(0)


def _ternary(t):  # b(1_{t>s} − 1_{t<−s}) with s=0.7, b=1
    s = mp.mpf("0.7")
    return mp.mpf(1) if t > s else (mp.mpf(-1) if t < -s else mp.mpf(0))


#: spec -> (σ, σ' (None: Dirac deltas, E[σ'²] = ∞), breakpoints of σ)
MP_ACTS = {
    "relu": (_relu, lambda t: mp.mpf(1) if t > 0 else mp.mpf(0), [0]),
    "tanh": (mp.tanh, lambda t: mp.sech(t) ** 2, []),
    "erf": (mp.erf, lambda t: 2 / mp.sqrt(mp.pi) * mp.exp(-t * t), []),
    SIGMA_T: (_sigma_t, None, [-1, mp.mpf("0.5")]),
    TERNARY: (_ternary, None, [mp.mpf("-0.7"), mp.mpf("0.7")]),
}


def _gauss(g, scale, shift, bps):
    """E[g(scale·ξ + shift)] by tanh–sinh quadrature, split where the argument crosses a
    breakpoint (so every piece is smooth and the rule converges exponentially)."""
    cuts = sorted((mp.mpf(b) - shift) / scale for b in bps)
    norm = 1 / mp.sqrt(2 * mp.pi)
    return mp.quad(lambda z: g(scale * z + shift) * mp.exp(-z * z / 2) * norm, [-mp.inf, *cuts, mp.inf])


#: step of the mpmath finite differences; at 30 digits the round-off of a second
#: difference is ~1e-30/H_MP² = 1e-12 of the O(1) values, the truncation H_MP² ≈ 1e-18.
H_MP = mp.mpf("1e-9")


def _layer_factors(spec, tau_in):
    """(c, τ², m1, m2, ½w̄2, v1) of one layer at input scale ``tau_in`` (mpmath)."""
    sig, dsig, bps = MP_ACTS[spec]
    c = _gauss(sig, tau_in, 0, bps)
    var = _gauss(lambda t: (sig(t) - c) ** 2, tau_in, 0, bps)
    # shift derivatives of b -> E[σ(τξ + b)]: E[σ'] and E[σ''] (weak derivatives)
    up, down = _gauss(sig, tau_in, H_MP, bps), _gauss(sig, tau_in, -H_MP, bps)
    m1 = (up - down) / (2 * H_MP)
    m2 = (up - 2 * c + down) / H_MP**2
    # a -> E[(σ(√a ξ) − c)²] at a = τ²: its derivative is ½ E[(σ̄²)''] (heat equation)
    sq = lambda a: _gauss(lambda t: (sig(t) - c) ** 2, mp.sqrt(a), 0, bps)  # noqa: E731
    half_w2 = (sq(tau_in**2 + H_MP) - sq(tau_in**2 - H_MP)) / (2 * H_MP)
    v1 = mp.inf if dsig is None else _gauss(lambda t: dsig(t) ** 2, tau_in, 0, bps)
    return c, var, m1, m2, half_w2, v1


def _mp_network(specs, tau0):
    """docs/reference.rst §4 transcribed independently, fed by the quadratures above."""
    tau = mp.mpf(tau0)
    a = [mp.mpf(1), mp.mpf(0), mp.mpf(0), mp.mpf(1)]
    b = [mp.mpf(1), mp.mpf(0), mp.mpf(0)]
    k2 = tau**2
    out = []
    for spec in specs:
        c, var, m1, m2, half_w2, v1 = _layer_factors(spec, tau)
        na = [m1**2 * a[0], m1**2 * a[1] + m2**2 * a[3] ** 2 / 4,
              m1**2 * a[2] + m2**2 * a[0] ** 2 / 2, half_w2 * a[3]]
        nb = [na[0] + m1**2 * b[0], na[1] + m1**2 * b[1],
              na[2] + m1**2 * b[2] + m2**2 * a[0] * b[0]]
        k2 = var + v1 * k2
        a, b, tau = na, nb, mp.sqrt(var)
        out.append({"center": c, "tau": tau, "alpha": a, "beta": b,
                    "kappa": mp.sqrt(k2) if k2 != mp.inf else mp.inf})
    return out


NETWORKS = [
    (["relu"], 1.0),
    (["erf"], 1.3),
    ([SIGMA_T], 1.0),
    (["relu", "relu", "relu"], 1.0),
    (["tanh", "erf"], 1.1),
    ([SIGMA_T, "relu"], 0.9),
    ([TERNARY, "tanh"], 1.2),
]


@pytest.mark.parametrize("specs,tau0", NETWORKS, ids=lambda v: "-".join(v) if isinstance(v, list) else str(v))
def test_recursion_matches_layerwise_quadrature(specs, tau0):
    with mp.workdps(30):
        ref = _mp_network(specs, tau0)
    got = coefficients(specs, tau0)
    # The engine certifies 15 significant digits per moment; the mpmath route is
    # accurate to ~1e-12 (30-digit quadrature; finite differences with H_MP = 1e-9 lose
    # 18 digits to round-off in m2).  A coefficient is a product/sum of ≤ 3L factors,
    # so 1e-11 relative covers both errors composed over three layers.  Absolute floor
    # 1e-13 for coefficients that vanish exactly (odd activations: α3 = α2 = 0).
    rel, floor = 1e-11, 1e-13
    for layer, r in zip(got.layers, ref):
        assert layer.centering == pytest.approx(float(r["center"]), rel=rel, abs=floor)
        assert layer.tau == pytest.approx(float(r["tau"]), rel=rel)
        for x, y in zip(layer.alpha, r["alpha"]):
            assert x == pytest.approx(float(y), rel=rel, abs=floor)
        for x, y in zip(layer.beta, r["beta"]):
            assert x == pytest.approx(float(y), rel=rel, abs=floor)
        if r["kappa"] == mp.inf:
            assert layer.kappa == math.inf
        else:
            assert layer.kappa == pytest.approx(float(r["kappa"]), rel=rel)


# --------------------------------------------------------------------------- #
# Route 2: Taylor coefficients of the exact kernel maps (ntk_theory.exact)
# --------------------------------------------------------------------------- #
H = 1e-3  # finite-difference step

#: (δ1, δ2, c) of the input pairs: ‖x‖² = τ0² + δ1, ‖x'‖² = τ0² + δ2, xᵀx' = c
_PAIRS = {
    "c+": (0, 0, H), "c-": (0, 0, -H), "0": (0, 0, 0),
    "++": (H, H, 0), "+-": (H, -H, 0), "-+": (-H, H, 0), "--": (-H, -H, 0),
}


def _taylor(specs, tau0):
    """Finite-difference Taylor coefficients of the composed exact maps at c = δ = 0.

    All pairs go through one :func:`exact_kernels` call: pair ``j`` occupies columns
    ``2j, 2j+1`` of a block-diagonal ``X`` (its own 2-D coordinate plane), so the pairs
    do not interact and only the entries ``[2j, 2j+1]`` and ``[2j, 2j]`` are read.
    """
    m = len(_PAIRS)
    X = np.zeros((2 * m, 2 * m))
    for j, (d1, d2, c) in enumerate(_PAIRS.values()):
        G = np.array([[tau0**2 + d1, c], [c, tau0**2 + d2]])
        X[2 * j:2 * j + 2, 2 * j:2 * j + 2] = np.linalg.cholesky(G).T  # Gram matrix G
    ex = exact_kernels(X, specs, tau0=tau0)
    out = {}
    for name, M in (("K", ex.ck), ("Theta", ex.ntk)):
        off = {k: M[2 * j, 2 * j + 1] for j, k in enumerate(_PAIRS)}
        diag = {k: M[2 * j, 2 * j] for j, k in enumerate(_PAIRS)}
        out[name] = {
            "d_c": (off["c+"] - off["c-"]) / (2 * H),
            "half_d_cc": (off["c+"] - 2 * off["0"] + off["c-"]) / (2 * H * H),
            "d_d1d2": (off["++"] - off["+-"] - off["-+"] + off["--"]) / (4 * H * H),
            "diag": diag["0"],
        }
        with np.errstate(invalid="ignore"):  # Θ(x,x) = ∞ after a staircase layer
            out[name]["d_diag"] = (diag["++"] - diag["--"]) / (2 * H)
    return out


@pytest.mark.parametrize("specs,tau0", NETWORKS, ids=lambda v: "-".join(v) if isinstance(v, list) else str(v))
def test_coefficients_are_taylor_coefficients_of_exact_maps(specs, tau0):
    got = coefficients(specs, tau0).last
    t = _taylor(specs, tau0)
    a1, a2, a3, a4 = got.alpha
    b1, b2, b3 = got.beta
    # Central differences with h = 1e-3 have truncation error h²/6·|f'''| (first
    # derivatives) and h²/12·|f''''| (second derivatives): ≈ 2e-7 times the size of the
    # higher Taylor coefficients, which are O(1/τ0^k) here.  Round-off: the closed-form
    # maps are accurate to ~1e-15 and the Mehler/Gauss–Hermite ones (tanh) to ~1e-10
    # relative but *smooth in c and δ* (fixed Hermite coefficients), so differencing does
    # not amplify them beyond ε/h² ≈ 1e-9.  Tolerance: 2e-5 relative to the coefficient,
    # with an absolute floor 2e-6 for coefficients that vanish (odd activations).
    rel, floor = 2e-5, 2e-6
    K, Th = t["K"], t["Theta"]
    assert K["diag"] == pytest.approx(got.tau**2, rel=1e-9)
    assert K["d_c"] == pytest.approx(a1, rel=rel, abs=floor)
    assert K["half_d_cc"] == pytest.approx(a3, rel=rel, abs=floor)
    assert K["d_d1d2"] == pytest.approx(a2, rel=rel, abs=floor)
    assert K["d_diag"] == pytest.approx(a4, rel=rel, abs=floor)
    assert Th["d_c"] == pytest.approx(b1, rel=rel, abs=floor)
    assert Th["half_d_cc"] == pytest.approx(b3, rel=rel, abs=floor)
    assert Th["d_d1d2"] == pytest.approx(b2, rel=rel, abs=floor)
    if math.isinf(got.kappa):
        # a staircase layer: E[σ'²] = ∞ and the exact Θ has an infinite diagonal
        assert math.isinf(Th["diag"])
    else:
        assert Th["diag"] == pytest.approx(got.kappa**2, rel=1e-9)


def test_mehler_first_two_terms_of_one_layer_map():
    """d/dc E[σ̄(u)σ̄(v)] = E[σ']² and d²/dc² = E[σ'']² at c = 0 (docs/reference.rst §4's footnote)."""
    for spec, tau0 in (("relu", 0.7), ("tanh", 1.5), (SIGMA_T, 1.1)):
        lay = coefficients([spec], tau0).last
        t = _taylor([spec], tau0)["K"]
        m1, m2 = lay.moments.m1, lay.moments.m2
        # same finite-difference error budget as above
        assert t["d_c"] == pytest.approx(m1 * m1, rel=2e-5, abs=2e-6)
        assert 2 * t["half_d_cc"] == pytest.approx(m2 * m2, rel=2e-5, abs=2e-6)


# --------------------------------------------------------------------------- #
# Route 3: closed forms
# --------------------------------------------------------------------------- #
def _eval(expr, tau0):
    return float(sp.N(sp.sympify(expr).subs(TAU0, tau0), 30))


@pytest.mark.parametrize("specs", [["relu"], ["relu", "relu", "relu"], ["erf", "erf"], [SIGMA_T],
                                   [SIGMA_T, "relu"], [TERNARY, "erf"]], ids="-".join)
def test_closed_forms_match_numbers(specs):
    forms = coefficient_closed_forms(specs)
    assert forms is not None and len(forms) == len(specs)
    for tau0 in (0.6, 1.0, 1.7):
        num = coefficients(specs, tau0)
        for f, lay in zip(forms, num.layers):
            # 30-digit evaluation of the closed form vs the 15-digit engine: agreement to
            # 1e-12 relative (a few ulps per factor, ≤ 3L factors); 1e-14 absolute for zeros.
            assert _eval(f["tau2"], tau0) == pytest.approx(lay.tau**2, rel=1e-12)
            for e, v in zip(f["alpha"], lay.alpha):
                assert _eval(e, tau0) == pytest.approx(v, rel=1e-12, abs=1e-14)
            for e, v in zip(f["beta"], lay.beta):
                assert _eval(e, tau0) == pytest.approx(v, rel=1e-12, abs=1e-14)
            k2 = sp.sympify(f["kappa2"]).subs(TAU0, tau0)
            if lay.kappa == math.inf:
                assert k2 == sp.oo
            else:
                assert float(sp.N(k2, 30)) == pytest.approx(lay.kappa**2, rel=1e-12)


def test_relu_and_erf_one_layer_closed_forms_by_hand():
    t = TAU0
    pi = sp.pi
    # ReLU at scale τ: m0 = τ/√(2π), m1 = 1/2, m2 = φ(0)/τ, v1 = 1/2, E[(σ²)''] = 1.
    relu = {
        "tau2": t**2 * (pi - 1) / (2 * pi),
        "alpha": (sp.Rational(1, 4), 1 / (8 * pi * t**2), 1 / (4 * pi * t**2), (1 - 1 / pi) / 2),
        "beta": (sp.Rational(1, 2), 1 / (8 * pi * t**2), 3 / (4 * pi * t**2)),
        "kappa2": t**2 * (pi - 1) / (2 * pi) + t**2 / 2,
    }
    # erf: m1 = (2/√π)/√(1+2τ²), E[erf²(τξ)] = (2/π) arcsin(2τ²/(1+2τ²)), odd ⇒ m2 = 0.
    erf_m1sq = 4 / (pi * (1 + 2 * t**2))
    erf = {
        "tau2": 2 / pi * sp.asin(2 * t**2 / (1 + 2 * t**2)),
        "alpha": (erf_m1sq, 0, 0, None),
        "beta": (2 * erf_m1sq, 0, 0),
        "kappa2": None,
    }
    for spec, ref in (("relu", relu), ("erf", erf)):
        (got,) = coefficient_closed_forms([spec])
        assert sp.simplify(got["tau2"] - ref["tau2"]) == 0
        for g, r in zip(got["alpha"], ref["alpha"]):
            if r is not None:
                assert sp.simplify(g - r) == 0
        for g, r in zip(got["beta"], ref["beta"]):
            assert sp.simplify(g - r) == 0
        if ref["kappa2"] is not None:
            assert sp.simplify(got["kappa2"] - ref["kappa2"]) == 0


def test_no_closed_form_for_tanh():
    assert coefficient_closed_forms(["relu", "tanh"], budget=2.0) is None


# --------------------------------------------------------------------------- #
# Errors and the JSON layout
# --------------------------------------------------------------------------- #
def test_bad_inputs():
    with pytest.raises(DomainError):
        coefficients(["relu"], 0.0)
    with pytest.raises(DomainError):
        coefficients(["relu"], math.inf)
    with pytest.raises(ParameterError):
        coefficients([], 1.0)
    # a layer with zero output variance: a step whose threshold sits far in the tail
    # still has positive variance, but a constant activation does not
    with pytest.raises(DomainError):
        coefficients(["x*0 + 1"], 1.0)


def test_to_dict_layout():
    d = coefficients(["relu", SIGMA_T], 1.0).to_dict()
    assert set(d) == {"tau0", "layers"} and d["tau0"] == 1.0
    for i, lay in enumerate(d["layers"], start=1):
        assert set(lay) == {"layer", "activation", "tau", "alpha", "beta", "kappa"}
        assert lay["layer"] == i and len(lay["alpha"]) == 4 and len(lay["beta"]) == 3
        assert lay["tau"] > 0
    assert d["layers"][1]["kappa"] == math.inf
