"""Readouts (ntk_theory.readout): ridge primal = dual = scikit-learn, the ridge-shift identity,
softmax regression against scikit-learn's L-BFGS optimum."""

from __future__ import annotations

import numpy as np
import pytest

from ntk_theory.errors import ParameterError
from ntk_theory.readout import (
    accuracy,
    kernel_ridge_fit,
    one_hot,
    ridge_fit,
    softmax_fit,
)


def _toy(d, n, C=3, seed=0):
    rng = np.random.default_rng(seed)
    means = 1.5 * rng.standard_normal((d, C))
    y = np.arange(n) % C
    Phi = means[:, y] + rng.standard_normal((d, n))
    return Phi, y


@pytest.mark.parametrize("d, n", [(20, 80), (80, 20)])
def test_ridge_matches_sklearn_in_primal_and_dual(d, n):
    from sklearn.linear_model import Ridge

    Phi, y = _toy(d, n)
    Y = one_hot(y)
    r = ridge_fit(Phi, y, 0.7)
    assert r.form == ("primal" if d <= n else "dual")
    sk = Ridge(alpha=0.7, fit_intercept=True, solver="svd").fit(Phi.T, Y)
    Phi_test, _ = _toy(d, 30, seed=1)
    # both are direct solves of a well-conditioned (λ = 0.7) system: agreement to rounding
    np.testing.assert_allclose(r.predict(Phi_test), sk.predict(Phi_test.T), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(r.W, sk.coef_.T, rtol=1e-9, atol=1e-10)


def test_kernel_ridge_shift_is_an_exact_identity():
    """docs/reference.rst §6: kernel ridge on K + δI with λ equals kernel ridge on K with λ + δ."""
    Phi, y = _toy(30, 60)
    K = Phi.T @ Phi
    delta, lam = 0.37, 0.05
    a = kernel_ridge_fit(K + delta * np.eye(60), y, lam)
    b = kernel_ridge_fit(K, y, lam + delta)
    # the two solve the same matrix up to the rounding of K + δI (one ulp per entry)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-10, atol=1e-12)
    Kx = np.random.default_rng(5).standard_normal((7, 60))
    np.testing.assert_allclose(a.predict(Kx), b.predict(Kx), rtol=1e-10, atol=1e-12)
    # without the shift the readouts differ at order δ/λ: the identity is not vacuous
    c = kernel_ridge_fit(K, y, lam)
    assert np.max(np.abs(a.coef - c.coef)) > 1e-3 * np.max(np.abs(c.coef))


def test_kernel_ridge_equals_feature_ridge_without_intercept():
    Phi, y = _toy(15, 40)
    r = ridge_fit(Phi, y, 0.3, fit_intercept=False)
    k = kernel_ridge_fit(Phi.T @ Phi, y, 0.3)
    Pt, _ = _toy(15, 9, seed=3)
    # primal (15×15) and dual (40×40) solves of the same problem: rounding-level agreement
    np.testing.assert_allclose(r.predict(Pt), k.predict(Pt.T @ Phi), rtol=1e-9, atol=1e-10)


def test_softmax_reaches_the_sklearn_optimum():
    from sklearn.linear_model import LogisticRegression

    Phi, y = _toy(10, 120, C=3, seed=2)
    lam = 1e-2
    s = softmax_fit(Phi, y, lam, steps=3000, tol=1e-9)
    n = Phi.shape[1]
    # sklearn minimizes ½‖W‖² + C Σ CE with an unpenalized intercept: C = 1/(nλ) is our objective × 1/λ
    sk = LogisticRegression(C=1.0 / (n * lam), tol=1e-12, max_iter=10_000).fit(Phi.T, y)
    Y = one_hot(y)

    def obj(W, b):
        Z = Phi.T @ W + b
        Z = Z - Z.max(axis=1, keepdims=True)
        return np.mean(np.log(np.exp(Z).sum(1)) - (Z * Y).sum(1)) + 0.5 * lam * np.sum(W * W)

    f_ours, f_sk = obj(s.W, s.b), obj(sk.coef_.T, sk.intercept_)
    assert s.loss == pytest.approx(f_ours, rel=1e-12)
    # both solvers converged (ours to ‖∇‖ ≤ 1e-9‖∇_0‖, sklearn to tol 1e-12): the optimal
    # values agree far below 1e-7 relative; a non-converged run is off at 1e-3 or more
    assert s.grad_ratio <= 1e-9
    assert abs(f_ours - f_sk) <= 1e-7 * abs(f_sk)
    assert accuracy(s.predict(Phi), y) == accuracy(sk.decision_function(Phi.T), y)


def test_softmax_is_deterministic_and_learns():
    Phi, y = _toy(20, 90, C=3, seed=4)
    a = softmax_fit(Phi, y, 1e-3, steps=200)
    b = softmax_fit(Phi, y, 1e-3, steps=200)
    assert np.array_equal(a.W, b.W)
    assert a.grad_ratio < 1e-2  # accelerated GD on a strongly convex problem
    # separated classes (mean norm 1.5√20 vs unit noise): far above chance 1/3
    assert accuracy(a.predict(Phi), y) > 0.9


def test_errors():
    Phi, y = _toy(5, 10)
    with pytest.raises(ParameterError):
        ridge_fit(Phi, y, 0.0)
    with pytest.raises(ParameterError):
        ridge_fit(Phi, y[:-1], 1.0)
    with pytest.raises(ParameterError):
        softmax_fit(Phi, y.astype(float), 1.0)
    with pytest.raises(ParameterError):
        kernel_ridge_fit(np.ones((3, 4)), np.zeros(3, dtype=int), 1.0)
    with pytest.raises(ParameterError):
        accuracy(np.zeros((3, 2)), np.array([0, 1]))


@pytest.mark.parametrize("d, n", [(15, 90), (150, 90)])
def test_ridge_cv_matches_brute_force_ridge_fit(d, n):
    """CV by one eigendecomposition per fold (primal when d ≤ n_fold, dual otherwise) vs the
    direct ridge_fit on every fold and λ, and vs the kernel-form CV on ΦᵀΦ."""
    from ntk_theory.readout import _folds, kernel_ridge_accuracy, kernel_ridge_cv, ridge_cv

    Phi, y = _toy(d, n)
    Phi = Phi * 2.0  # noisier classes so the CV curve is not flat
    Phi += 2.0 * np.random.default_rng(3).standard_normal(Phi.shape)
    cv = ridge_cv(Phi, y, folds=4, seed=1)
    acc = np.zeros(cv.grid.size)
    for f in _folds(np.arange(n), 4, 1):
        t = np.setdiff1d(np.arange(n), f)
        for k, lam in enumerate(cv.grid):
            acc[k] += accuracy(ridge_fit(Phi[:, t], y[t], lam).predict(Phi[:, f]), y[f]) / 4
    # same λ, same folds, exact solves both ways: accuracies are fractions of the fold sizes and
    # agree exactly unless a score ties to rounding (1e-12 leaves room for that only)
    np.testing.assert_allclose(cv.cv_accuracy, acc, atol=1e-12)
    assert cv.lam in cv.grid and cv.cv_accuracy[list(cv.grid).index(cv.lam)] == cv.cv_accuracy.max()
    kcv = kernel_ridge_cv(Phi.T @ Phi, y, np.arange(n), lams=cv.grid, folds=4, seed=1)
    np.testing.assert_allclose(kcv.cv_mse, cv.cv_mse, rtol=1e-8)  # eigh of two different systems
    tr, te = np.arange(60), np.arange(60, n)
    assert kernel_ridge_accuracy(Phi.T @ Phi, y, tr, te, 0.5) == accuracy(
        ridge_fit(Phi[:, tr], y[tr], 0.5).predict(Phi[:, te]), y[te])


def test_ridge_cv_errors():
    from ntk_theory.readout import ridge_cv, ridge_grid

    Phi, y = _toy(5, 10)
    with pytest.raises(ParameterError):
        ridge_cv(Phi, y, folds=1)
    with pytest.raises(ParameterError):
        ridge_grid(0.0)
