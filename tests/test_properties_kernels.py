"""Property tests of the theory kernels K̃ (docs/reference.rst §5).

* **K̃ is symmetric positive semi-definite** for every network and every data set, in
  both identity conventions.  Why: ``K̃ = α_1 XᵀX + V A Vᵀ + c I`` with
  ``A = α_2 [t;1][t;1]ᵀ + α_3 [[T, 0], [0, 0]]``; ``XᵀX`` is a Gram matrix,
  ``T_ab = tr(C_a C_b)/p`` is a Gram matrix of the covariances (Frobenius inner
  product), ``α_2, α_3 ≥ 0`` and both identity coefficients ``τ_ℓ² − τ_0²α_1`` and
  ``τ_ℓ² − τ_0²α_1 − τ_0⁴α_3`` are ≥ 0 (``tests/test_properties_coefficients.py``); the
  same with β, κ for K̃_NTK.  Tested up to rounding: symmetric to a few ulps of ‖K̃‖
  and ``λ_min ≥ −10·(n + p + (K+1)²)·ε·‖K̃‖`` — the rounding of forming the matrix
  (sums of ≤ p + (K+1)² products per entry) plus LAPACK's backward error for ``eigvalsh``
  (a perturbation of norm ``O(n ε ‖K̃‖)``), with a constant 10.
* **Theory vs exact limiting kernels at moderate n** for random smooth activations,
  through :func:`ntk_theory.testing.assert_spectrally_equivalent` (relative operator-norm
  error ≤ ``C_THEORY/√p``).  The documented constant ``C_THEORY = 3`` holds when every
  layer's variance is mostly *linear* — the first Hermite term's share
  ``τ_{ℓ−1}² m1² / τ_ℓ² ≥ 1/2`` (erf, tanh, sigmoid, GELU, swish, softplus, sin at
  moderate scales, linear).  For activations whose variance sits in higher Hermite
  orders (even σ: x², cos, Gaussian bumps; polynomials dominated by x⁴) the theorem's
  O(p^{−1/2}) rate has a much larger constant: at n = 240, p = 160 we measured relative
  errors 0.27–0.34 (x², cos(x/2), Gaussian bump) and 0.65–0.98 (a degree-4 polynomial)
  against 3/√160 = 0.24.  The strict xfail :func:`test_even_activation_exceeds_default_constant`
  keeps that counterexample visible.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import assume, given, note, reject, settings
from hypothesis import strategies as st

from ntk_theory.coefficients import coefficients
from ntk_theory.data import gmm, population_statistics, sample
from ntk_theory.errors import DomainError
from ntk_theory.exact import exact_kernels
from ntk_theory.testing import activations, assert_spectrally_equivalent, gmm_specs, smooth_activations
from ntk_theory.theory import IDENTITY_CONVENTIONS, theory_kernels

QUADRATURE = ("tanh", "sigmoid", "swish", "softplus", "elu", "selu", "gelu")
EPS = np.finfo(float).eps


def _assert_symmetric_psd(K: np.ndarray, n: int, p: int, k: int, what: str) -> None:
    norm = float(np.linalg.norm(K, 2))
    # each entry is formed by ≤ p + (k+1)² products: rounding ≤ that many ulps of ‖K‖
    assert np.max(np.abs(K - K.T)) <= (p + (k + 1) ** 2) * EPS * max(norm, 1e-300), f"{what} not symmetric"
    lam_min = float(np.linalg.eigvalsh((K + K.T) / 2)[0])
    tol = 10 * (n + p + (k + 1) ** 2) * EPS * norm
    assert lam_min >= -tol, f"{what}: lambda_min = {lam_min:.3g} < -{tol:.3g} (norm {norm:.3g})"


@given(spec=gmm_specs(p=(4, 40), K=(1, 3)), seed=st.integers(0, 2**31 - 1),
       acts=st.lists(activations(kinds=("registry", "staircase"), exclude=QUADRATURE), min_size=1, max_size=3),
       ratio=st.sampled_from([0.5, 1.0, 2.0]))
def test_theory_kernels_are_symmetric_psd(spec, seed, acts, ratio):
    # every class needs a sample: n ≥ 2/min(c_a) gives each class ≥ 1 after rounding
    n = max(2 * spec.K, int(ratio * spec.p), math.ceil(2 / float(np.min(spec.proportions))))
    data = sample(spec, n, seed=seed)
    stats = population_statistics(data)
    try:
        coefs = coefficients(acts, stats.tau0, digits=10, budget=1.0)
    except DomainError as exc:
        assert "zero variance" in str(exc)  # documented: a constant layer has no coefficients
        reject()
    note(f"{[a.spec for a in acts]} tau0={stats.tau0!r}")
    finite_ntk = math.isfinite(coefs.last.kappa)
    for identity in IDENTITY_CONVENTIONS:
        th = theory_kernels(data.X, stats, coefs, ntk=finite_ntk, identity=identity, layers="all")
        for ell, K in enumerate(th.CK, start=1):
            _assert_symmetric_psd(K, n, spec.p, spec.K, f"CK layer {ell} ({identity})")
        for ell, K in enumerate(th.NTK, start=1):
            _assert_symmetric_psd(K, n, spec.p, spec.K, f"NTK layer {ell} ({identity})")


# --------------------------------------------------------------------------- #
# Theory vs exact
# --------------------------------------------------------------------------- #
N, P = 180, 120


@functools.cache
def _data(n: int, p: int):
    d = sample(gmm(p, 2, seed=1), n, seed=2)
    return d, population_statistics(d)


#: Smooth activations without an even-only shape (x², cos, Gaussian bumps have no linear
#: Hermite term at all); the linear-share condition below decides the rest.
LINEARISH = smooth_activations(families=("linear", "polynomial", "erf", "gelu", "tanh", "sigmoid",
                                         "swish", "softplus", "sin"), scale=(0.5, 1.5))
LINEAR_SHARE = 0.5


@pytest.mark.slow  # 6–8 s of a default-tier worker: a slow property tier (CI runs it)
@settings(max_examples=max(4, settings.default.max_examples // 5))
@given(acts=st.lists(LINEARISH, min_size=1, max_size=2))
def test_theory_matches_exact_for_random_smooth_activations(acts):
    d, stats = _data(N, P)
    try:
        coefs = coefficients(acts, stats.tau0, digits=10, budget=1.0)
    except DomainError as exc:
        assert "zero variance" in str(exc)
        reject()
    shares = [lay.tau_in**2 * lay.moments.m1**2 / lay.tau**2 for lay in coefs.layers]
    note(f"{[a.spec for a in acts]}: linear shares {shares}")
    # the documented domain of C_THEORY (module docstring): mostly-linear layers
    assume(min(shares) >= LINEAR_SHARE)
    ex = exact_kernels(d.X, acts, tau0=stats.tau0, ntk=True)
    th = theory_kernels(d.X, stats, coefs, ntk=True)
    cmp_ck = assert_spectrally_equivalent(th.ck, ex.ck, N, P)
    cmp_ntk = assert_spectrally_equivalent(th.ntk, ex.ntk, N, P)
    note(f"rel. op-norm errors CK {cmp_ck.rel_opnorm:.4f}, NTK {cmp_ntk.rel_opnorm:.4f}")


@pytest.mark.xfail(strict=True, reason=(
    "issue 5 finding: C_THEORY = 3 is not uniform over activations; for x² (no linear "
    "Hermite term) the theory-vs-exact error at n=240, p=160 is 0.34 > 3/√160 = 0.24"))
def test_even_activation_exceeds_default_constant():
    d, stats = _data(240, 160)
    ex = exact_kernels(d.X, ["quadratic"], tau0=stats.tau0, ntk=False)
    th = theory_kernels(d.X, stats, ["quadratic"], ntk=False)
    assert_spectrally_equivalent(th.ck, ex.ck, 240, 160)


def test_softplus_expression_centering():
    """Regression test of an issue-5 finding (thorough run, theory vs exact): an intermediate
    version of ``exact.layer_scales`` raised NumericalError "quadrature did not converge
    (value nan)" for softplus written as the expression log(exp(x) + 1) (exp overflowed at
    the far nodes); fixed in 9230113."""
    import sympy as sp

    from ntk_theory.activations import X, from_expr
    from ntk_theory.exact import layer_scales
    from ntk_theory.moments import gaussian_moments

    act = from_expr(sp.log(sp.exp(X) + 1))
    got = layer_scales([act], 1.0).centering[0]
    # the moment engine's certified E[softplus(ξ)] (digits=10) as the independent value
    assert got == pytest.approx(gaussian_moments("softplus", 1.0, digits=10).m0, rel=1e-9, abs=0)
