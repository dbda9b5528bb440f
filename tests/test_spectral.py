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
