"""Tests of ntk_theory.spectral and ntk_theory.plotting."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from ntk_theory.errors import DomainError, ParameterError
from ntk_theory.plotting import comparison_figure, eigenvector_figure, save_figure, spectra_figure
from ntk_theory.spectral import compare_kernels, isolated_count, relative_errors, spectrum


def _spiked(n, p, spikes, seed):
    """Wishart bulk (Marchenko–Pastur, ratio n/p) plus rank-k spikes along known unit vectors."""
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((p, n)) / math.sqrt(p)
    Q, _ = np.linalg.qr(rng.standard_normal((n, len(spikes))))
    return Z.T @ Z + (Q * np.asarray(spikes)) @ Q.T, Q


def test_relative_errors_by_hand():
    B = np.diag([4.0, 1.0, 1.0])
    A = B + np.diag([0.0, 0.5, -1.0])
    op, fro = relative_errors(A, B)
    assert op == pytest.approx(1.0 / 4.0)
    assert fro == pytest.approx(math.sqrt(1.25) / math.sqrt(18.0))


def test_isolated_count_finds_planted_spikes():
    # MP bulk with ratio n/p = 0.5 spans [0.09, 2.9]; spikes 8 and 15 sit far outside
    # (BBP threshold √0.5 ≈ 0.7), the bulk edge spacing is O(n^{-2/3}) ≈ 0.01 ≪ 0.25·IQR.
    K, _ = _spiked(500, 1000, [8.0, 15.0], seed=0)
    lam = np.linalg.eigvalsh(K)
    assert isolated_count(lam) == 2
    K0, _ = _spiked(500, 1000, [], seed=1)
    assert isolated_count(np.linalg.eigvalsh(K0)) == 0


def test_compare_kernels_against_direct_computation():
    A, Q = _spiked(300, 600, [6.0, 10.0], seed=2)
    B, _ = _spiked(300, 600, [6.0, 10.0], seed=3)
    cmp = compare_kernels(A, B, names=("emp", "ref"), n_top=5)
    la, lb = np.linalg.eigvalsh(A), np.linalg.eigvalsh(B)
    assert cmp.w1 == pytest.approx(wasserstein_distance(la, lb), rel=1e-10)
    assert cmp.rel_opnorm == pytest.approx(np.linalg.norm(A - B, 2) / np.linalg.norm(B, 2), rel=1e-10)
    assert cmp.rel_frobenius == pytest.approx(np.linalg.norm(A - B) / np.linalg.norm(B), rel=1e-12)
    np.testing.assert_allclose(cmp.top_a, np.sort(la)[::-1][:5], rtol=1e-10)
    np.testing.assert_allclose(cmp.quantiles_b, np.quantile(lb, cmp.quantiles), rtol=1e-12)
    assert cmp.isolated_a == cmp.isolated_b == 2
    # A and B have independently drawn spike directions, so the alignment is checked on A
    # against a small symmetric perturbation of itself
    E = np.random.default_rng(4).standard_normal(A.shape) * 1e-3
    cmp2 = compare_kernels(A + (E + E.T) / 2, A)
    # eigenvector perturbation ≈ ‖E‖/gap ≈ 2e-3·√300/4 ≈ 0.01 ⇒ |⟨u,v⟩| ≥ 1 − O(1e-3)
    assert min(cmp2.alignment) > 0.99 and cmp2.subspace_alignment > 0.99
    # spike eigenvectors of A are close to the planted Q (BBP: |⟨u,q⟩|² = 1 − c/θ² ≈ 0.99, 0.995)
    s = spectrum(A, 2)
    assert abs(s.top_vectors[:, 0] @ Q[:, 1]) > 0.95
    d = cmp.to_dict()
    json.dumps(d)
    assert set(d) >= {"rel_opnorm", "w1", "alignment", "isolated_a", "top_b"}
    assert "eigenvalues_a" in cmp.to_dict(spectra=True)


def test_bad_inputs():
    with pytest.raises(DomainError):
        compare_kernels(np.diag([np.inf, 1.0]), np.eye(2))
    with pytest.raises(ParameterError):
        compare_kernels(np.eye(2), np.eye(3))
    with pytest.raises(ParameterError):
        compare_kernels(np.ones((2, 3)), np.ones((2, 3)))


def test_figures_are_written(tmp_path):
    A, _ = _spiked(200, 400, [5.0], seed=5)
    B, _ = _spiked(200, 400, [5.0], seed=6)
    sa, sb = spectrum(A, 2), spectrum(B, 2)
    labels = np.repeat([0, 1], 100)
    f1 = spectra_figure({"theory": sa.eigenvalues, "empirical": sb.eigenvalues}, title="t")
    f2 = eigenvector_figure({"theory": sa.top_vectors, "empirical": sb.top_vectors}, labels=labels)
    f3 = comparison_figure({"a": sa.eigenvalues, "b": sb.eigenvalues},
                           {"a": sa.top_vectors, "b": sb.top_vectors}, labels=labels)
    for i, f in enumerate((f1, f2, f3)):
        path = save_figure(f, tmp_path / f"fig{i}.png")
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(ParameterError):
        save_figure(f1, tmp_path / "fig.txt")
    with pytest.raises(ParameterError):
        save_figure(f1, tmp_path / "missing" / "fig.png")


# --------------------------------------------------------------------------- #
# partial spectra (issue 15): Lanczos pairs, operator norm, SLQ densities
# --------------------------------------------------------------------------- #
from ntk_theory.spectral import (  # noqa: E402
    SpectralDensity,
    density_w1,
    operator_norm,
    slq_density,
    top_eigenpairs,
)


@pytest.fixture(scope="module")
def spiked_1000():
    K, _ = _spiked(1000, 2000, [4.0, 7.0, 12.0], seed=11)
    lam, U = np.linalg.eigh(K)
    return K, lam, U


def test_top_eigenpairs_match_full_decomposition(spiked_1000):
    K, lam, U = spiked_1000
    vals, vecs = top_eigenpairs(K, 6, tol=1e-10)
    # residual ≤ tol·‖A‖ ⇒ eigenvalue error ≤ 1e-10·‖A‖ (≈ 1e-9 here)
    np.testing.assert_allclose(vals, lam[::-1][:6], rtol=0, atol=1e-9 * lam[-1])
    # vector angle ≤ residual/gap: the three spikes have O(1) gaps, so |⟨u, v⟩| = 1 − O(1e-18)
    for i in range(3):
        assert abs(vecs[:, i] @ U[:, -1 - i]) > 1 - 1e-9
    with pytest.raises(ParameterError):
        top_eigenpairs(K, 0)


def test_operator_norm_of_an_indefinite_difference(spiked_1000):
    K, _, _ = spiked_1000
    K2, _ = _spiked(1000, 2000, [4.0, 7.0, 12.0], seed=12)
    D = K - K2
    full = np.max(np.abs(np.linalg.eigvalsh(D)))
    assert operator_norm(D) == pytest.approx(full, rel=1e-7)
    # tol=0 (machine precision) is what relative_errors uses for n >= 600
    assert operator_norm(D, tol=0.0) == pytest.approx(full, rel=1e-12)
    op, _ = relative_errors(K, K2)
    assert op == pytest.approx(full / np.max(np.abs(np.linalg.eigvalsh(K2))), rel=1e-12)
    assert operator_norm(np.diag([1.0, -3.0])) == pytest.approx(3.0)


def test_slq_gauss_rule_is_exact_for_low_degree_polynomials(spiked_1000):
    """Σ_j w_j θ_j^d equals the probes' average of qᵀA^d q for d < 2·steps (the Gauss property),
    in float64 to rounding; this checks the Lanczos recurrence and the weights, not statistics."""
    K, _, _ = spiked_1000
    probes, steps = 3, 12
    D = slq_density(K, probes=probes, steps=steps, dtype=np.float64, seed=5)
    rng = np.random.default_rng(5)
    Z = (rng.integers(0, 2, size=(1000, probes)) * 2 - 1).astype(float)
    Q = Z / np.linalg.norm(Z, axis=0)
    V = Q.copy()
    for d in range(1, 2 * steps):
        V = K @ V
        want = np.mean(np.einsum("ij,ij->j", Q, V))
        got = np.sum(D.weights * D.nodes**d)
        assert got == pytest.approx(want, rel=1e-9), d


def test_slq_recovers_the_spectrum_of_a_small_matrix():
    """steps ≥ n: each probe's Krylov space is the whole space, every node is an eigenvalue."""
    A, _ = _spiked(30, 60, [5.0], seed=13)
    lam = np.linalg.eigvalsh(A)
    D = slq_density(A, probes=2, steps=80, dtype=np.float64)
    assert np.max(np.min(np.abs(D.nodes[:, None] - lam[None, :]), axis=1)) < 1e-8 * lam[-1]
    assert D.weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_slq_density_against_full_spectrum(spiked_1000, seed):
    """Accuracy statement of slq_density, checked on a spiked Wishart matrix at n = 1000.

    Sampling error of the distribution function ≈ √(2/(n·probes)) = 0.016 at 8 probes; the
    bulk (Marchenko–Pastur, ratio 1/2) is ≈ 2.8 wide and its mean ≈ 1, so W1 ≲ 0.016·2.8/√3
    ≈ 0.025 relative (the √3: the error of F integrates like a Brownian bridge); the
    quartiles move by ≈ 0.016/density ≈ 0.03 of the IQR (1.1).  Tolerances are ~2× those.
    """
    K, lam, U = spiked_1000
    exact = SpectralDensity.from_eigenvalues(lam)
    top = (lam[::-1][:4], U[:, ::-1][:, :4])
    D = slq_density(K, probes=8, steps=80, deflate=top, seed=seed)
    assert D.weights.sum() == pytest.approx(1.0)
    assert density_w1(D, exact) / exact.mean_abs() < 0.05
    qs = [0.25, 0.5, 0.75]
    iqr = np.subtract(*np.quantile(lam, [0.75, 0.25]))
    assert np.max(np.abs(D.quantile(qs) - np.quantile(lam, qs))) < 0.06 * iqr
    # deflated spikes appear exactly, with weight 1/n each
    for v in lam[-3:]:
        assert D.weights[np.argmin(np.abs(D.nodes - v))] == pytest.approx(1e-3, rel=1e-12)
    # the isolated count from the leading eigenvalues and the SLQ interquartile range
    iqr_slq = float(np.subtract(*D.quantile([0.75, 0.25])))
    assert isolated_count(lam[::-1][:12], iqr=iqr_slq, n=1000) == isolated_count(lam) == 3


def test_density_helpers():
    D = SpectralDensity.from_eigenvalues(np.array([3.0, 1.0, 2.0, 4.0]))
    np.testing.assert_allclose(D.cdf([0.5, 1.0, 2.5, 4.0]), [0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(D.quantile([0.25, 0.5, 1.0]), [1.0, 2.0, 4.0])
    E = SpectralDensity.from_eigenvalues(np.array([1.0, 2.0, 3.0, 5.0]))
    assert density_w1(D, E) == pytest.approx(wasserstein_distance([1, 2, 3, 4], [1, 2, 3, 5]))
    assert D.mean_abs() == pytest.approx(2.5)
    with pytest.raises(ParameterError):
        isolated_count([3.0, 2.0], iqr=1.0)
