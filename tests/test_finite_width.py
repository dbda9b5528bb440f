"""Finite-width spectra (ntk_theory.finite_width) against independent computations.

* the classical Marchenko–Pastur law (identity population): closed-form density and
  quantiles (angle substitution + Gauss–Legendre, no Stieltjes transform involved);
* the Baik–Ben Arous–Péché / Baik–Silverstein spike formula for an identity bulk;
* Monte Carlo networks (small n, three seeds): the prediction is much closer (W1) to
  the empirical spectrum than the infinite-width limit is;
* block Lanczos quadrature against exact traces ``tr(Pᵏ)/n``.

Larger checks (n = 800, all families, n/d from 0.5 to 8, n = 8000 timing) are in
``benchmarks/bench_finite_width.py`` and docs/BENCHMARKS.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ntk_theory.data import gmm, sample
from ntk_theory.errors import DomainError, ParameterError
from ntk_theory.finite_width import (
    PopulationMeasure,
    bulk_warning,
    generalized_mp,
    marchenko_pastur_density,
    marchenko_pastur_quantiles,
    population_measure,
    predict_spectrum,
    predicted_eigenvalues,
    w1_sorted,
)
from ntk_theory.network import MLP

GRID = 600


def _identity_pop(n: int, spikes: tuple[float, ...] = ()) -> PopulationMeasure:
    k = len(spikes)
    return PopulationMeasure(atoms=np.ones(n - k), weights=np.full(n - k, 1.0 / n),
                             top=np.array(sorted(spikes, reverse=True), dtype=float), n=n, method="test")


@pytest.mark.parametrize("n,d", [(300, 600), (300, 300), (300, 75)])
def test_identity_population_is_marchenko_pastur(n, d):
    law = generalized_mp(_identity_pop(n), d, grid_points=GRID)
    ref = marchenko_pastur_quantiles(n, d)
    # quantiles: the density is evaluated at Im z = η = half the grid spacing h = edge/GRID and
    # the CDF is interpolated linearly between grid points, so each quantile is off by O(h);
    # W1 ≤ h/2 with h = (1 + √(n/d))²/GRID (measured: ≈ h/10)
    h = (1 + math.sqrt(n / d)) ** 2 / GRID
    assert w1_sorted(law.eigenvalues, ref) <= 0.5 * h
    assert law.edge == pytest.approx((1 + math.sqrt(n / d)) ** 2, rel=1e-9)  # critical point, Brent to 1e-13
    assert np.sum(law.eigenvalues == 0) == max(0, n - d)
    assert law.mass_error < 0.01  # Poisson smoothing + grid ends, before renormalization
    # density inside the bulk, away from the edges (Poisson smoothing at η = h/2 is O(η) there)
    a, b = (1 - math.sqrt(n / d)) ** 2, (1 + math.sqrt(n / d)) ** 2
    sel = (law.grid > a + 0.1 * (b - a)) & (law.grid < b - 0.1 * (b - a))
    exact = marchenko_pastur_density(law.grid[sel], n / d)
    assert np.max(np.abs(law.density[sel] - exact)) <= 0.02 * exact.max()


def test_marchenko_pastur_reference_matches_monte_carlo():
    """The closed-form reference itself against sampled Wishart matrices (n = 400, d = 200)."""
    n, d = 400, 200
    rng = np.random.default_rng(0)
    emp = np.mean([np.linalg.eigvalsh(Z @ Z.T / d) for Z in (rng.standard_normal((n, d)) for _ in range(4))], 0)
    # finite-n deviation of the mean sorted eigenvalues from the quantiles: O(1/n) in the bulk,
    # O(n^{-2/3}) at the edge; W1 ≈ 0.005 measured, mean eigenvalue 1
    assert w1_sorted(marchenko_pastur_quantiles(n, d), emp) < 0.02


@pytest.mark.parametrize("t_s,c,separates", [(5.0, 1.0, True), (1.5, 1.0, False), (3.0, 0.25, True)])
def test_spike_against_bbp(t_s, c, separates):
    n = 400
    d = int(n / c)
    law = generalized_mp(_identity_pop(n, (t_s,)), d, grid_points=GRID)
    # identity bulk: separation iff t_s > 1 + √c, outlier at t_s (1 + c/(t_s − 1)) (Baik–Silverstein);
    # at finite n the bulk holds n − 1 of the n population eigenvalues: c → c (1 − 1/n)
    assert separates == (t_s > 1 + math.sqrt(c))
    if separates:
        assert law.outliers.size == 1
        assert law.outliers[0] == pytest.approx(t_s * (1 + c * (1 - 1 / n) / (t_s - 1)), rel=1e-12)
        assert law.eigenvalues[-1] == law.outliers[0]
    else:
        assert law.outliers.size == 0 and law.absorbed == 1
        assert law.eigenvalues[-1] <= law.edge


def test_spike_monte_carlo():
    """Outlier of a spiked Wishart matrix against sampling (n = 400, d = 400, t_s = 4)."""
    n = d = 400
    rng = np.random.default_rng(1)
    top = []
    for _ in range(6):
        Z = rng.standard_normal((n, d))
        Z[0] *= 2.0  # population diag(4, 1, …, 1)
        top.append(np.linalg.eigvalsh(Z @ Z.T / d)[-1])
    law = generalized_mp(_identity_pop(n, (4.0,)), d, grid_points=GRID)
    # outlier fluctuations are Gaussian of order t_s √(2/d) ≈ 0.28; mean of 6 → s.e. ≈ 0.12; 4 s.e.
    assert abs(np.mean(top) - law.outliers[0]) < 0.5


@pytest.fixture(scope="module")
def small_gmm():
    return sample(gmm(150, 2, seed=3), 200, seed=4).X


def _empirical(acts, X, d, seeds=3, kernel="ck"):
    out = []
    for s in range(seeds):
        net = MLP(acts, [d] * len(acts), X.shape[0], seed=s, centering="none")
        out.append(np.linalg.eigvalsh(net.ntk(X) if kernel == "ntk" else net.conjugate_kernels(X)[-1]))
    return np.mean(out, axis=0)


@pytest.mark.parametrize("acts,d,bound", [(["relu"], 100, 0.15), (["tanh", "tanh"], 100, 0.15)])
def test_network_monte_carlo(small_gmm, acts, d, bound):
    """n = 200, p = 150: W1(prediction, empirical) ≪ W1(limit, empirical) (three seeds).

    Measured ratios 0.044 (ReLU, n/d = 2) and 0.021 (two tanh layers); at n = 800 the
    benchmark gives ≤ 0.02.  The bound leaves room for the n = 200 fluctuations of the
    uncentered mean spike (one eigenvalue ≈ 30 whose seed-to-seed spread is ≈ 1, i.e.
    ≈ 0.005 of W1) while a prediction no better than the limit scores 1.
    """
    spec = predict_spectrum(acts, small_gmm, [d] * len(acts), grid_points=GRID)
    emp = _empirical(acts, small_gmm, d)
    ratio = w1_sorted(spec.eigenvalues, emp) / w1_sorted(spec.limit_eigenvalues, emp)
    assert ratio < bound
    assert spec.eigenvalues.shape == (200,) and np.all(np.diff(spec.eigenvalues) >= 0)
    # the pinned interface returns the same values
    np.testing.assert_array_equal(predicted_eigenvalues(acts, small_gmm, [d] * len(acts), grid_points=GRID),
                                  spec.eigenvalues)


def test_rank_deficient_width(small_gmm):
    spec = predict_spectrum(["relu"], small_gmm, [50], grid_points=GRID)
    assert np.sum(spec.eigenvalues == 0) == 150 and spec.zero_mass == pytest.approx(0.75)
    msg = bulk_warning(200, [50], spec)
    assert msg is not None and "150 zero eigenvalues" in msg and "\n" not in msg
    assert bulk_warning(200, [200, 400]) is None


def _wishart_spike(n: int = 600) -> np.ndarray:
    rng = np.random.default_rng(2)
    A = rng.standard_normal((n, 300))
    return A @ A.T / 300 + np.outer(np.ones(n), np.ones(n)) * 0.05


def test_block_lanczos_population_moments():
    """Block Lanczos quadrature (forced by dense_limit) against exact traces tr(Pᵏ)/n."""
    n = 600
    P = _wishart_spike(n)
    exact = np.linalg.eigvalsh(P)
    pm = population_measure(P, dense_limit=100, probes=16, steps=18, top=8)
    k = pm.top.size
    assert 1 <= k <= 8 and pm.method.startswith("block-lanczos(16x18, float32")
    # converged Ritz values of the float32 copy: residual ≤ 1e-6 θ_max, plus the copy's
    # rounding ‖P − P32‖ ≲ 6e-8·max|P_ij|·2√n ≈ 1e-5·θ_max here, bound the distance to an eigenvalue
    np.testing.assert_allclose(np.sort(pm.top), exact[n - k:], rtol=0, atol=1e-5 * exact[-1])
    pm64 = population_measure(P, dense_limit=100, probes=16, steps=18, top=8, single=False)
    np.testing.assert_allclose(np.sort(pm64.top), exact[n - pm64.top.size:], rtol=0, atol=1e-8 * exact[-1])
    assert np.sum(pm.weights) + k / n == pytest.approx(1.0, abs=1e-12)
    for j in (1, 2, 3):
        approx = np.sum(pm.weights * pm.atoms ** j) + np.sum(pm.top ** j) / n
        ref = np.mean(exact ** j)
        # Gauss rule exact for degree < 36; the random start block of 16 columns is a
        # Hutchinson-type estimate with relative s.e. ≈ √(2/(16 n)) · (spread of λʲ)/mean ≲ 2%
        assert approx == pytest.approx(ref, rel=0.03)


@pytest.mark.slow
def test_block_lanczos_law():
    """The law from the block Lanczos measure against the law from the full spectrum (≈ 5 s CPU)."""
    P = _wishart_spike(600)
    pm = population_measure(P, dense_limit=100, probes=16, steps=18, top=8)
    # the law from the quadrature measure is close to the law from the exact spectrum (measured
    # 0.3–0.5% of the mean over seeds 0–2; the probes' sampling error dominates)
    dense = population_measure(P, top=8)
    w_bl = generalized_mp(pm, 300, grid_points=GRID).eigenvalues
    w_ex = generalized_mp(dense, 300, grid_points=GRID).eigenvalues
    assert w1_sorted(w_bl, w_ex) < 0.02 * np.mean(w_ex)


def test_bad_input(small_gmm):
    with pytest.raises(DomainError):
        predict_spectrum(["relu", "relu"], small_gmm, [100, 100], kernel="ntk")
    with pytest.raises(ParameterError):
        predict_spectrum(["relu"], small_gmm, [0])
    with pytest.raises(ParameterError):
        predict_spectrum(["relu"], small_gmm, [10, 10])
    bad = small_gmm.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ParameterError):
        predict_spectrum(["relu"], bad, [10])
    with pytest.raises(ParameterError):
        predict_spectrum(["relu"], small_gmm, [10], kernel="cka")
    with pytest.raises(DomainError):
        predict_spectrum(["sign"], small_gmm, [10], kernel="ntk")


def test_ridge_training_error_monte_carlo(small_gmm):
    """Training MSE of the ridge readout: deterministic equivalent vs 6 networks (n = 200, d = 100)."""
    from ntk_theory.finite_width import ridge_training_error

    X = small_gmm
    y = np.where(np.arange(X.shape[1]) < X.shape[1] // 2, 1.0, -1.0)  # samples are sorted by class
    lam, d = 0.1, 100
    r = ridge_training_error(["relu"], X, y, [d], lam)
    mses = []
    for s in range(6):
        CK = MLP(["relu"], [d], X.shape[0], seed=s, centering="none").conjugate_kernels(X)[-1]
        mses.append(np.mean((lam * np.linalg.solve(CK + lam * np.eye(X.shape[1]), y)) ** 2))
    se = np.std(mses, ddof=1) / np.sqrt(len(mses))
    # measured: 0.323 predicted vs 0.315 ± 0.013; the limit kernel gives 0.05.  4 s.e. + the
    # O(1/√n) bias of a deterministic equivalent at n = 200 (≈ 3% of the value)
    assert abs(r.train_mse - np.mean(mses)) < 4 * se + 0.03 * r.train_mse
    assert abs(r.limit_mse - np.mean(mses)) > 10 * se  # the limit is no answer at this width
    with pytest.raises(DomainError):
        ridge_training_error(["relu", "relu"], X, y, [d, d], lam)
    with pytest.raises(ParameterError):
        ridge_training_error(["relu"], X, y[:-1], [d], lam)


def test_ridge_readout_errors_monte_carlo():
    """Train/test MSE and accuracy of the ridge readout: deterministic equivalents vs 12 networks.

    2-class GMM, n = n̂ = 200 (independent test draw), one ReLU layer, d = 100, λ = 0.1;
    readout by :func:`ntk_theory.readout.ridge_fit` (no intercept) on the network's features.
    Measured: train 0.303 vs 0.289 ± 0.008, test 0.879 vs 0.918 ± 0.024, accuracy 0.702 vs
    0.693 ± 0.011; the infinite-width kernel gives 0.048 / 0.596 / 0.805.
    """
    from ntk_theory.finite_width import ridge_readout_errors, ridge_training_error
    from ntk_theory.readout import ridge_fit

    n, p, d, lam = 200, 133, 100, 0.1
    g = gmm(p, 2, seed=0)
    X, Xt = sample(g, n, seed=1).X, sample(g, n, seed=2).X
    y = np.where(np.arange(n) < n // 2, 1.0, -1.0)  # samples are sorted by class
    r = ridge_readout_errors(["relu"], X, y, Xt, y, [d], lam)
    assert r.train_mse == pytest.approx(ridge_training_error(["relu"], X, y, [d], lam).train_mse, rel=1e-12)
    # independent form of the training error: yᵀ(CK + λ)^{-2}y = −d/dλ yᵀ(CK + λ)^{-1}y applied to
    # the first-order equivalent Σ_k (u_kᵀy)²/(t_k/e(λ) + λ) (central differences, step 1e-4 λ:
    # truncation error ~1e-8 relative)
    from scipy.optimize import brentq

    from ntk_theory.exact import exact_kernels

    t, U = np.linalg.eigh(exact_kernels(X, ["relu"], centering="none", ntk=False).K[1])
    t, yk2 = np.clip(t, 0.0, None), (U.T @ y) ** 2

    def quad(lm: float) -> float:
        e = brentq(lambda ee: ee - 1.0 - np.sum(t * ee / (t + lm * ee)) / d, 1.0, 2.0 + np.sum(t) / (d * lm),
                   xtol=1e-15, rtol=1e-14)
        return float(np.sum(yk2 / (t / e + lm)))

    h = 1e-4 * lam
    deriv_form = -lam * lam * (quad(lam + h) - quad(lam - h)) / (2 * h) / n
    assert r.train_mse == pytest.approx(deriv_form, rel=1e-6)
    assert r.test_mse == pytest.approx(r.test_bias + r.test_variance)
    trs, tes, acc = [], [], []
    for s in range(12):
        net = MLP(["relu"], [d], p, seed=s, centering="none")
        F, Ft = net.forward(X)[-1], net.forward(Xt)[-1]
        rd = ridge_fit(F, y[:, None], lam, fit_intercept=False)
        yh = rd.predict(Ft)[:, 0]
        trs.append(np.mean((y - rd.predict(F)[:, 0]) ** 2))
        tes.append(np.mean((y - yh) ** 2))
        acc.append(np.mean(np.sign(yh) == y))
    for pred, lim, mc in ((r.train_mse, r.limit_train_mse, trs), (r.test_mse, r.limit_test_mse, tes),
                          (r.test_accuracy, r.limit_test_accuracy, acc)):
        mean, se = np.mean(mc), np.std(mc, ddof=1) / np.sqrt(len(mc))
        # 4 CLT standard errors + the O(1/√n) bias of a deterministic equivalent at n = 200 (≈ 3%)
        assert abs(pred - mean) < 4 * se + 0.03 * abs(pred)
        assert abs(lim - mean) > 5 * se  # the infinite-width answer is not the finite network's
    with pytest.raises(DomainError):
        ridge_readout_errors(["relu", "relu"], X, y, Xt, y, [d, d], lam)
    with pytest.raises(ParameterError):
        ridge_readout_errors(["relu"], X, y, Xt[:-1], y, [d], lam)
    with pytest.raises(ParameterError):
        ridge_readout_errors(["relu"], X, y, Xt, y, [d], -1.0)


def test_one_layer_ntk_monte_carlo(small_gmm):
    """One-layer NTK conditioned on the readout norm, single networks (n = 200, n/d = 2).

    Measured ratios 0.29, 0.12, 0.13 (seeds 0–2); the limit scores 1 by definition.  Without
    ``readout_scale`` the ±√(2/d) = ±14% fluctuation of ‖w‖²/d rescales the gradient term.
    """
    ratios = []
    for s in range(3):
        net = MLP(["erf"], [100], small_gmm.shape[0], seed=s, centering="none")
        emp = np.linalg.eigvalsh(net.ntk(small_gmm))
        spec = predict_spectrum(["erf"], small_gmm, [100], kernel="ntk",
                                readout_scale=float(np.mean(net.readout ** 2)), grid_points=GRID)
        ratios.append(w1_sorted(spec.eigenvalues, emp) / w1_sorted(spec.limit_eigenvalues, emp))
    assert max(ratios) < 0.5 and np.mean(ratios) < 0.3
    with pytest.raises(ParameterError):
        predict_spectrum(["erf"], small_gmm, [100], kernel="ntk", readout_scale=-1.0)
