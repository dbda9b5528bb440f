"""Per-network compression (docs/reference.rst §4, §6): verification items 4(a)/(b), weights, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ntk_theory.cli import main
from ntk_theory.compress import (
    bit_accounting,
    compress_network,
    load_npz,
    pack_ternary,
    save_npz,
    ternary_entropy_bits,
    ternary_weights,
    unpack_ternary,
)
from ntk_theory.compress.families import stair_moments_mp
from ntk_theory.errors import ParameterError


def _alpha_beta(moments):
    """docs/reference.rst §4 recursion from per-layer (m1, m2, w̄2); α_0 = (1,0,0,1), β_0 = (1,0,0)."""
    a = [1.0, 0.0, 0.0, 1.0]
    b = [1.0, 0.0, 0.0]
    for m1, m2, w2b in moments:
        a_new = [m1**2 * a[0],
                 m1**2 * a[1] + 0.25 * m2**2 * a[3] ** 2,
                 m1**2 * a[2] + 0.5 * m2**2 * a[0] ** 2,
                 0.5 * w2b * a[3]]
        b = [a_new[0] + m1**2 * b[0], a_new[1] + m1**2 * b[1],
             a_new[2] + m1**2 * b[2] + m2**2 * a[0] * b[0]]
        a = a_new
    return a, b


@pytest.mark.parametrize("acts, family", [
    (["relu", "relu", "relu"], "sigma_T"),
    (["relu", "gelu", "tanh"], "auto"),
    (["leaky_relu:slope=0.1", "erf"], "three_level"),
])
def test_alpha_beta_recomputed_from_compressed_moments_equal_dense(acts, family):
    """Issue 4(a): α, β from the compressed net's *own* moments equal the dense net's to 1e-10."""
    res = compress_network(acts, 1.2, family=family)
    dense = [(d.m1, d.m2, d.w2_bar) for d in res.dense]
    comp = []
    for fit in res.layers:  # recompute from the solved staircase at the compressed scale
        m = stair_moments_mp(fit.activation.staircase, fit.tau_in)
        comp.append((float(m.m1), float(m.m2), float(m.w2_bar)))
    (ad, bd), (ac, bc) = _alpha_beta(dense), _alpha_beta(comp)
    scale = max(map(abs, ad + bd))
    for x, y in zip(ad + bd, ac + bc):
        assert abs(x - y) <= 1e-10 * scale  # issue's tolerance (solver polishes to 1e-12)


def test_delta_and_ridge_shift_reported_and_checked_by_monte_carlo():
    """Issue 4(b): δ = τ'_L² − τ_L², ridge shift = −δ; τ'_L² confirmed by a finite ternary net."""
    res = compress_network(["relu", "relu"], 1.0, family="sigma_T")
    assert res.delta == pytest.approx(res.tau_compressed[-1] ** 2 - res.tau_dense[-1] ** 2, rel=1e-15)
    assert res.ridge_shift == -res.delta
    assert res.tau_dense[1] ** 2 == pytest.approx(0.5 - 0.5 / math.pi, rel=1e-12)  # ReLU Var
    # A wide compressed network on n points of norm τ_0: mean squared feature norm = τ'_ℓ².
    rng = np.random.default_rng(0)
    p, d, n = 400, 4000, 40
    X = rng.standard_normal((p, n))
    X /= np.linalg.norm(X, axis=0) / res.tau_compressed[0]
    W = ternary_weights([p, d, d], 0.9, seed=1).matrices()
    H = X
    for ell, (Wl, sig) in enumerate(zip(W, res.centered_activations()), start=1):
        H = sig(Wl @ H) / math.sqrt(d)
        sq = np.sum(H * H, axis=0)
        # d·n = 1.6e5 bounded-level samples: 5 standard errors of the mean, plus the
        # O(1/sqrt(p)) fluctuation of the pre-activation scale between layers
        se = np.std(sq) / math.sqrt(n) + res.tau_compressed[ell] ** 2 * 5 / math.sqrt(d)
        assert abs(sq.mean() - res.tau_compressed[ell] ** 2) <= 5 * se


def test_exact_sparsity_unit_variance_seeded():
    w = ternary_weights([300, 200, 100], 0.9, seed=7)
    for layer in w.layers:
        assert np.count_nonzero(layer.signs == 0) == round(0.9 * layer.signs.size)  # exact
        assert np.mean(layer.dense() ** 2) == pytest.approx(1.0, rel=1e-12)  # exact by the scale
        nz = layer.signs[layer.signs != 0]
        # fair signs: mean of ±1 over 6000/2000 entries within 5 standard errors
        assert abs(nz.mean()) <= 5 / math.sqrt(nz.size)
    w2 = ternary_weights([300, 200, 100], 0.9, seed=7)
    assert all(np.array_equal(a.signs, b.signs) for a, b in zip(w.layers, w2.layers))
    w3 = ternary_weights([300, 200, 100], 0.9, seed=8)
    assert not np.array_equal(w.layers[0].signs, w3.layers[0].signs)
    with pytest.raises(ParameterError):
        ternary_weights([3, 2], 1.0, seed=0)


def test_packing_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    s = rng.integers(-1, 2, size=(17, 13)).astype(np.int8)
    packed = pack_ternary(s)
    assert packed.nbytes == math.ceil(s.size / 4)  # 2 bits per weight
    assert np.array_equal(unpack_ternary(packed, s.shape), s)
    w = ternary_weights([31, 17, 5], 0.5, seed=11)
    save_npz(tmp_path / "m.npz", w, note=np.array("x"))
    w2, extra = load_npz(tmp_path / "m.npz")
    assert w2.widths == w.widths and w2.seed == 11 and w2.epsilon == 0.5
    assert all(np.array_equal(a.dense(), b.dense()) for a, b in zip(w.layers, w2.layers))
    assert str(extra["note"]) == "x"


def test_bit_accounting():
    w = ternary_weights([100, 100], 0.9, seed=0)
    bits = bit_accounting(w, n_activation_params=3)
    N = 10_000
    assert bits["dense_float32"] == 32 * N
    assert bits["packed"] == 2 * N + 32 * (1 + 3 + 1)
    # the entropy formula against the empirical entropy of the realized symbols
    sym, cnt = np.unique(w.layers[0].signs, return_counts=True)
    freq = cnt / cnt.sum()
    emp = -np.sum(freq * np.log2(freq))
    assert ternary_entropy_bits(0.9) == pytest.approx(emp, abs=5e-3)  # sign counts: CLT ~ 1/sqrt(1000)
    assert ternary_entropy_bits(0.0) == 1.0 and ternary_entropy_bits(0.5) == 1.5
    assert bits["ratio_packed"] == pytest.approx(32 * N / bits["packed"])


def test_cli_json_layout(capsys, tmp_path):
    out = tmp_path / "model.npz"
    rc = main(["compress", "relu", "tanh", "--tau0", "1", "--sparsity", "0.9", "--seed", "3",
               "--widths", "20", "30", "10", "--json", "--out", str(out)])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) >= {"layers", "delta", "ridge_shift", "bits", "solve_seconds"}
    assert set(data["bits"]) >= {"dense_float32", "packed", "entropy", "seed"}
    l1, l2 = data["layers"]
    assert l1["family"] == "sigma_T" and set(l1["params"]) == {"s1", "s2", "a"}
    assert l2["family"] == "ternary"
    assert max(l1["max_rel_residual"], l2["max_rel_residual"]) <= 1e-12
    w, extra = load_npz(out)
    assert w.widths == (20, 30, 10) and list(extra["activations"])[0].startswith("sigma_T:")


def test_cli_infeasible_exits_2_with_the_bound(capsys):
    rc = main(["compress", "tanh", "--tau0", "1", "--family", "sigma_T"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "infeasible" in err and "odd activation vs sigma_T" in err
    rc = main(["compress", "relu", "relu", "relu", "--tau0", "1", "--family", "sigma_T",
               "--last-family", "sigma_Q"])
    err = capsys.readouterr().err
    assert rc == 2 and "infeasible" in err and "Cauchy–Schwarz" in err


def test_empirical_ntk_of_a_staircase_network_is_its_last_ck():
    """docs/reference.rst §1/§3: a staircase has σ' = 0 a.e., so every back-propagated δ_ℓ vanishes
    and the empirical NTK is exactly CK_L (the readout term), whereas the limiting
    κ² = τ² + E[σ'²] κ² is infinite (E[σ'²] = +∞, a squared Dirac delta)."""
    from ntk_theory.compress.network import dense_layer_moments as dlm
    from ntk_theory.network import MLP

    res = compress_network(["relu"] * 2, 1.0, family="sigma_T")
    rng = np.random.default_rng(0)
    p, n = 60, 40
    X = rng.normal(size=(p, n)) / np.sqrt(p)
    net = MLP([f.activation for f in res.layers], [400, 400], p, seed=1,
              centering=[f.mean for f in res.layers])
    k = net.kernels(X, workers=1)
    # exact zero: the a.e. derivative of a staircase is 0, no rounding involved
    assert np.array_equal(k.ntk, k.ck[-1])
    dense = MLP(["relu"] * 2, [400, 400], p, seed=1).kernels(X, workers=1)
    assert np.max(np.abs(dense.ntk - dense.ck[-1])) > 0.5 * np.max(np.abs(dense.ck[-1]))
    assert dlm(res.layers[0].activation, 1.0).v1 == float("inf")
