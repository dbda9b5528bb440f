"""Lattice effects of quantized activations feeding sparse ternary weights (issue 12, item 4)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ntk_theory.compress import compress_network
from ntk_theory.compress.lattice import (
    DiscreteLaw,
    lattice_layer_moments,
    lattice_preactivation,
    lattice_window,
    staircase_on_law,
)
from ntk_theory.data import gmm, population_statistics, sample
from ntk_theory.errors import ParameterError
from ntk_theory.verify import compressed_network, verify_lattice


def brute_force_law(levels, probs, center, d, eps):
    """All (1 + 2K)^d outcomes of d independent steps η_j (v_k − c), enumerated."""
    outcomes = [(0.0, eps)] + [(s * (v - center), (1 - eps) * p / 2)
                               for v, p in zip(levels, probs) for s in (1, -1)]
    vals, prs = [], []
    for combo in itertools.product(outcomes, repeat=d):
        vals.append(sum(c[0] for c in combo))
        prs.append(math.prod(c[1] for c in combo))
    return np.array(vals) / math.sqrt(d * (1 - eps)), np.array(prs)


@pytest.mark.parametrize("levels, probs, center", [
    ((-0.8, 0.0, 0.8), (0.3, 0.4, 0.3), 0.0),          # odd ternary: 1-D lattice
    ((2.0, 0.0), (0.35, 0.65), 0.7),                   # σ_T: 2-D (S, T) lattice
    ((-0.5, 0.0, 1.5), (0.2, 0.5, 0.3), 0.35),         # commensurate three levels
    ((-0.3, 0.0, 1.0 / math.sqrt(2)), (0.2, 0.5, 0.3), 0.1),  # incommensurate: one coordinate per level
])
def test_lattice_law_equals_brute_force_enumeration(levels, probs, center):
    d, eps = 5, 0.6
    law = lattice_preactivation(levels, probs, center, d, eps)
    vals, prs = brute_force_law(levels, probs, center, d, eps)
    assert abs(law.probs.sum() - 1) < 1e-12 and abs(prs.sum() - 1) < 1e-12
    # distribution functions agree everywhere (FFT rounding: ~1e-16 per cell, a few
    # thousand cells -> 1e-12 is a generous bound on the accumulated error)
    grid = np.linspace(vals.min() - 1, vals.max() + 1, 301)
    F_law = np.array([law.probs[law.values <= g + 1e-12].sum() for g in grid])
    F_bf = np.array([prs[vals <= g + 1e-12].sum() for g in grid])
    assert np.max(np.abs(F_law - F_bf)) < 1e-12
    # and the variance is E y² exactly (Σ of d i.i.d. centred steps, scaled)
    Ey2 = float(np.dot(probs, (np.asarray(levels) - center) ** 2))
    assert law.variance == pytest.approx(Ey2, rel=1e-12)


def test_window_bound_and_bad_input():
    # Bernstein half-width: beyond it the tail is below 1e-15; a ±1 walk of 200 steps with
    # variance 0.1 per step has standard deviation 4.5, so the window is a few dozen
    m = lattice_window(0.1, 1.0, 200)
    assert 20 < m < 60
    with pytest.raises(ParameterError):
        lattice_preactivation((1.0,), (0.5,), 0.0, 10, 0.5)
    with pytest.raises(ParameterError):
        lattice_preactivation((1.0, 0.0), (0.5, 0.5), 0.0, 10, 1.0)


def test_points_on_a_threshold_split_evenly():
    law = DiscreteLaw(np.array([-1.0, 0.0, 1.0]), np.array([0.25, 0.5, 0.25]))
    p = staircase_on_law([0.0], [-1.0, 1.0], law)  # sign at 0: h = 0 lands on either side
    assert p == pytest.approx([0.5, 0.5])


@pytest.mark.slow
def test_lattice_prediction_matches_monte_carlo_networks():
    """Two tanh layers compressed with odd ternary activations, width 500, ε = 0.9.

    The second layer's pre-activation is a sum of ~50 non-zero ternary terms times one of
    three levels: a 1-D lattice.  The exact lattice law predicts its realised scale
    11.9 % above the plan; a Gaussian pre-activation of the same variance predicts 0.
    Monte Carlo: real NumPy networks (exact-sparsity ternary weights) on 200 GMM points
    with p = 2000 (the first layer sees ~200 continuous terms: Gaussian to O(1/200)).
    Across seeds the realised deviation has standard deviation ≈ 0.003 (measured:
    0.116 … 0.124 over 5 seeds), so the mean of 4 seeds has s.e. ≈ 0.0015; the
    tolerance 0.01 is ~6 s.e., while the Gaussian prediction is 80 s.e. away.
    """
    p, d, eps = 2000, 500, 0.9
    data = sample(gmm(p, 2, seed=1), 200, seed=2)
    st = population_statistics(data)
    res = compress_network(["tanh", "tanh"], st.tau0, family="ternary")
    rep = verify_lattice(res, [p, d, d], eps)
    pred = rep.last_deviation
    assert rep.layers[1].atoms > 10
    assert abs(rep.layers[1].gaussian_scale2 / rep.layers[1].planned_scale2 - 1) < 1e-3
    assert 0.10 < pred < 0.14  # the lattice effect is large here
    mc = []
    for seed in range(4):
        net = compressed_network(res, p, [d, d], sparsity=eps, seed=seed)
        S = net.forward(data.X)[-1]
        mc.append(float(np.mean(np.sum(S**2, axis=0))) / rep.layers[-1].planned_scale2 - 1)
    assert abs(np.mean(mc) - pred) < 0.01, (mc, pred)
    assert all(m > 0.08 for m in mc)  # every seed far from the Gaussian prediction (≈ 0)


def test_sigma_t_lattice_small_at_wide_layers_and_cli_reports_it():
    res = compress_network(["relu"] * 3, 1.0, family="sigma_T")
    rep = lattice_layer_moments(res, [784, 1000, 1000, 1000], 0.9)
    # layer 1 is Gaussian: float64 interval probabilities reproduce the mpmath plan
    assert abs(rep.layers[0].deviation) < 1e-12 and rep.layers[0].atoms == 0
    assert all(l.atoms > 1000 for l in rep.layers[1:])
    # σ_T's two levels minus an irrational centre spread the 2-D lattice finely: < 2 %
    assert all(abs(l.deviation) < 0.02 for l in rep.layers)
    d = rep.to_dict()
    assert d["last_deviation"] == rep.layers[-1].deviation
