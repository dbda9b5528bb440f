"""Experiment 2 machinery (ntk_theory.experiment2) on small sizes: memory matching of
pruning, magnitude pruning, the table and the run on GMM data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ntk_theory.compress import ternary_entropy_bits
from ntk_theory.experiment2 import (
    accuracy_bits_figure,
    load_split,
    magnitude_prune,
    markdown_table,
    pruning_density,
    run_experiment2,
)
from ntk_theory.errors import ParameterError


@pytest.mark.parametrize("eps", [0.0, 0.5, 0.9, 0.99])
def test_pruning_density_costs_the_same_bits(eps):
    rho = pruning_density(eps)
    h = -rho * math.log2(rho) - (1 - rho) * math.log2(1 - rho)
    assert h + 32 * rho == pytest.approx(ternary_entropy_bits(eps), rel=1e-12)  # brentq xtol 1e-15
    assert 0 < rho < 1 - eps or eps == 0  # pruning at equal memory keeps fewer weights


def test_magnitude_prune_keeps_the_largest_entries():
    W = np.random.default_rng(0).standard_normal((40, 50))
    P = magnitude_prune(W, 0.1)
    keep = P != 0
    assert keep.sum() == 200
    assert np.abs(W[keep]).min() >= np.abs(W[~keep]).max()
    assert np.mean(P**2) == pytest.approx(1.0, rel=1e-12)  # rescaled to unit mean square
    assert np.all(np.sign(P[keep]) == np.sign(W[keep]))


def test_run_on_gmm_small():
    data = load_split("gmm", 300, 150, seed=0, p_gmm=120, classes_gmm=3)
    r = run_experiment2(widths=(300, 300), activations=("relu", "relu"), epsilons=(0.0, 0.9),
                        softmax_steps=100, data=data)
    assert [x.method for x in r.rows] == ["dense", "ntk-lc", "pruned", "ntk-lc", "pruned"]
    dense = r.rows[0]
    N = 120 * 300 + 300 * 300
    assert dense.bits == 32 * N
    for lc, pr in zip(r.rows[1::2], r.rows[2::2]):
        # equal memory up to the per-layer constants (scales, activation parameters)
        assert pr.bits == pytest.approx(lc.bits, rel=0.01)
        assert lc.bits < dense.bits / 10
    # λ ↔ λ − δ (THEORY.md §6) when λ = 1 exceeds δ
    assert r.rows[1].ridge_lambda == pytest.approx(1.0 - r.delta) if r.delta < 1 else True
    # the dense readout learns the 3-class mixture: binomial sd on 150 points ≈ 0.04 around
    # chance 1/3, so 0.5 is far outside chance
    assert dense.ridge_accuracy > 0.5 and dense.softmax_accuracy > 0.5
    assert "| ntk-lc | 0.9 |" in markdown_table(r)
    fig = accuracy_bits_figure([r])
    assert len(fig.axes) == 1


def test_errors():
    with pytest.raises(ParameterError):
        load_split("cifar", 10, 10)
    data = load_split("gmm", 60, 30, p_gmm=20, classes_gmm=2)
    with pytest.raises(ParameterError):
        run_experiment2(widths=(10,), activations=("relu", "relu"), data=data)
