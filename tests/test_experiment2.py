"""Experiment 2 machinery (ntk_theory.experiment2) on small sizes: memory matching of
pruning, magnitude pruning, the table and the run on GMM data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ntk_theory.cli._common import to_jsonable
from ntk_theory.compress import ternary_entropy_bits
from ntk_theory.errors import ParameterError
from ntk_theory.experiment2 import (
    Experiment2Result,
    Experiment2Row,
    accuracy_bits_figure,
    load_split,
    magnitude_prune,
    markdown_table,
    pruning_density,
    run_experiment2,
)


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
                        softmax_steps=100, data=data, lam=1.0, families=("sigma_T", "staircase:4"))
    assert [(x.method, x.family) for x in r.rows] == [("dense", None)] + [
        ("ntk-lc", "sigma_T"), ("ntk-lc", "staircase:4"), ("pruned", None)] * 2
    dense = r.rows[0]
    N = 120 * 300 + 300 * 300
    assert dense.bits == 32 * N
    for lc, pr in zip(r.rows[1::3], r.rows[3::3]):
        # equal memory up to the per-layer constants (scales, activation parameters)
        assert pr.bits == pytest.approx(lc.bits, rel=0.01)
        assert lc.bits < dense.bits / 10
    # fixed λ: λ ↔ λ − δ per family (docs/reference.rst §6) when λ = 1 exceeds δ
    for x in r.rows:
        if x.method == "ntk-lc":
            d = r.deltas[x.family]
            assert x.ridge_lambda == (pytest.approx(1.0 - d) if d < 1 else 1.0)
    assert r.deltas["staircase:4"] < r.deltas["sigma_T"] == r.delta
    # the dense readout learns the 3-class mixture: binomial sd on 150 points ≈ 0.04 around
    # chance 1/3, so 0.5 is far outside chance
    assert dense.ridge_accuracy > 0.5 and dense.softmax_accuracy > 0.5
    assert "| ntk-lc sigma_T | 0.9 |" in markdown_table(r)
    fig = accuracy_bits_figure([r])
    assert len(fig.axes) == 1
    # the stored form (a sweep store, experiment2_<name>.json) gives the same result back
    assert Experiment2Result.from_dict(json.loads(json.dumps(to_jsonable(r.to_dict())))) == r


def test_run_with_cross_validated_lambda():
    from ntk_theory.readout import ridge_cv

    data = load_split("gmm", 200, 100, seed=1, p_gmm=80, classes_gmm=2)
    r = run_experiment2(widths=(200,), activations=("relu",), epsilons=(0.5,), softmax_steps=50,
                        data=data, pruning=False)
    assert [x.method for x in r.rows] == ["dense", "ntk-lc"]
    # each network's λ is its own CV choice: recompute the dense one independently
    from ntk_theory.network import MLP

    Xtr, ytr = data[0], data[1]
    tau0 = r.settings["tau0"]
    F = MLP(["relu"], (200,), 80, seed=0, dtype=np.float32, tau0=tau0).forward(Xtr)[-1]
    # the grid scales with the float32 features' mean squared norm: a different BLAS thread
    # count changes the float32 sums in the last bits (measured 1.4e-9 relative), the chosen
    # grid point is the same
    assert r.rows[0].ridge_lambda == pytest.approx(ridge_cv(np.asarray(F, float), ytr).lam, rel=1e-6)
    assert r.settings["cv_folds"] == 5


def _json_round_trip(r: Experiment2Result) -> Experiment2Result:
    return Experiment2Result.from_dict(json.loads(json.dumps(to_jsonable(r.to_dict()))))


def test_from_dict_round_trip():
    rows = (
        Experiment2Row("dense", None, 1.0, 32.0 * 500, None, 0.5, 0.9, 0.88, 1.25),
        Experiment2Row("ntk-lc", 0.9, 0.1, 700.5, 1000.0, 0.25, 0.85, 0.8, 0.5, family="staircase:4"),
        Experiment2Row("nn-bcd", 0.9, 0.05, 690.0, 800.0, 0.5, 0.7, 0.75, 3.0, family="tt:3",
                       network_accuracy=0.77),
    )
    r = Experiment2Result("gmm", 60, 30, 20, 2, (10, 10), ("relu", "relu"), ("sigma_T", "sigma_Q"),
                          0.125, rows, settings={"lam": "cv", "families": ["staircase:4"], "seed": 3},
                          deltas={"staircase:4": 0.125})
    back = _json_round_trip(r)
    assert back == r
    assert isinstance(back.widths, tuple) and isinstance(back.rows, tuple)
    assert isinstance(back.rows[0], Experiment2Row) and back.rows[0].epsilon is None
    assert back.rows[2].network_accuracy == 0.77 and back.rows[2].family == "tt:3"
    # a NaN (a result converted from a printed log has no timings) is stored as "nan"
    nan_row = Experiment2Row("pruned", 0.5, 0.01, 1.0, None, 1.0, 0.5, 0.5, float("nan"))
    back = _json_round_trip(Experiment2Result(**{**r.__dict__, "rows": (nan_row,)}))
    assert isinstance(back.rows[0].seconds, float) and math.isnan(back.rows[0].seconds)
    with pytest.raises(ParameterError):
        Experiment2Result.from_dict({"dataset": "gmm"})
    with pytest.raises(ParameterError):
        Experiment2Result.from_dict({**r.to_dict(), "rows": [{"method": "dense", "colour": 1}]})


def test_errors():
    with pytest.raises(ParameterError):
        load_split("cifar", 10, 10)
    data = load_split("gmm", 60, 30, p_gmm=20, classes_gmm=2)
    with pytest.raises(ParameterError):
        run_experiment2(widths=(10,), activations=("relu", "relu"), data=data)
    with pytest.raises(ParameterError):
        run_experiment2(widths=(10,), activations=("relu",), data=data, lam="best")


def test_classes_keeps_the_first_classes():
    """``classes=k``: digits 0 … k−1 of a real data set, a k-component mixture for GMM."""
    Xtr, ytr, Xte, yte = load_split("digits", 300, 150, seed=0, classes=5)
    assert Xtr.shape == (64, 300) and Xte.shape == (64, 150)
    assert set(ytr) | set(yte) == set(range(5))
    _, ytr, _, yte = load_split("gmm", 120, 60, seed=0, p_gmm=20, classes=4)
    assert set(ytr) | set(yte) == set(range(4))
    for bad in (1, 2.5, True, "5"):
        with pytest.raises(ParameterError, match="classes must be an integer"):
            load_split("digits", 100, 50, classes=bad)
    with pytest.raises(ParameterError, match="between"):  # 901 images of digits 0–4
        load_split("digits", 900, 450, classes=5)
    r = run_experiment2("digits", n_train=200, n_test=100, widths=(100,), activations=("relu",),
                        epsilons=(0.9,), softmax_steps=20, classes=3, lam=1.0)
    assert r.n_classes == 3 and r.settings["classes"] == 3
