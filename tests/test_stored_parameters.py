"""One count of a compressed activation's stored parameters for every bit count
(docs/reference.rst §6, memory accounting): ``ntk-theory compress``, the demo and
Experiment 2 agree."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from ntk_theory.activations import activation
from ntk_theory.cli import main
from ntk_theory.compress import bit_accounting, compress_network, stored_parameter_count, ternary_weights

#: What a decoder needs, given the family name, to rebuild each compressed activation
#: (restated here independently of the family table).
EXPECTED = {"ternary": 2, "sigma_T": 3, "three_level": 3, "staircase:4": 3, "staircase:6": 3,
            "sigma_Q": 6}


@pytest.mark.parametrize("family,acts", [
    ("ternary", ["tanh", "tanh"]),
    ("sigma_T", ["relu", "relu"]),
    ("three_level", ["relu", "relu"]),
    ("staircase:4", ["relu", "relu"]),
    ("staircase:6", ["relu"]),
])
def test_count_per_family(family, acts):
    plan = compress_network(acts, 1.0, family=family)
    assert [f.family for f in plan.layers] == [family] * len(acts)
    assert stored_parameter_count(plan.layers) == EXPECTED[family] * len(acts)


def test_sigma_q_last_layer_counts_six():
    # a σ_Q layer on the solver's first slice: δ = 0 is feasible for its own targets
    r1, r4 = -2.4376967234799816, 0.5734232082990407
    act = activation("sigma_Q", r1=r1, r2=r1 + (r4 - r1) / 3, r3=r1 + 2 * (r4 - r1) / 3, r4=r4,
                     b1=1.5059366220404455, b2=1.4230776672218808)
    plan = compress_network([act], 1.0, last_family="sigma_Q")
    assert [f.family for f in plan.layers] == ["sigma_Q"]
    assert stored_parameter_count(plan.layers) == EXPECTED["sigma_Q"]


def test_cli_compress_bits_use_the_count():
    """The seed form is 64 (seed) + 32 (ε) + 32 per width + 32 per stored float, with one
    centering constant per layer on top of the activations' parameters."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["compress", "relu", "relu", "--tau0", "1", "--family", "staircase:4",
                     "--widths", "20", "30", "10", "--json"])
    assert code == 0
    out = json.loads(buf.getvalue())
    L = 2
    assert out["bits"]["seed"] == 64 + 32 + 32 * (L + 1) + 32 * (EXPECTED["staircase:4"] * L + L)
    w = ternary_weights([20, 30, 10], out["sparsity"], out["seed"])
    assert out["bits"] == bit_accounting(w, EXPECTED["staircase:4"] * L)
