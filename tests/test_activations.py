"""The activation registry: SymPy expression and NumPy function agree, parsing and validation."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

from ntk_theory.activations import (
    Staircase,
    X,
    activation,
    example_activations,
    from_expr,
    list_activations,
    parse_activation,
    staircase,
    to_piecewise,
)
from ntk_theory.errors import NTKTheoryError, ParameterError, ParseError, UnknownActivationError

EXAMPLES = example_activations()
REQUIRED = {"relu", "leaky_relu", "abs", "sign", "step", "linear", "quadratic", "polynomial", "erf",
            "gelu", "tanh", "sigmoid", "swish", "softplus", "elu", "selu", "sin", "cos", "gaussian",
            "hard_tanh", "relu6", "sigma_T", "sigma_Q", "ternary", "three_level", "staircase"}


def test_registry_has_every_required_family():
    assert REQUIRED <= set(list_activations())
    assert parse_activation("silu").name == "swish" and parse_activation("heaviside").name == "step"


# points avoiding every breakpoint of the examples (values at jumps are immaterial)
_PTS = np.array([-7.3, -3.1, -1.7, -1.2, -0.9, -0.61, -0.33, -0.07, 0.13, 0.42, 0.77, 1.05, 1.33,
                 1.77, 2.6, 5.9, 6.4, 11.0])


@pytest.mark.parametrize("act", EXAMPLES, ids=[a.spec for a in EXAMPLES])
def test_numpy_function_matches_sympy_expression(act):
    f = sp.lambdify(X, to_piecewise(act.expr), "mpmath")
    got = act(_PTS)
    assert got.shape == _PTS.shape and got.dtype == np.float64
    for t, v in zip(_PTS, got):
        ref = float(mp.re(f(mp.mpf(float(t)))))
        # float64 evaluation of an elementary function: a few ulps
        assert v == pytest.approx(ref, rel=1e-13, abs=1e-15), (act.spec, t)


@pytest.mark.parametrize("act", EXAMPLES, ids=[a.spec for a in EXAMPLES])
def test_derivative_matches_central_differences(act):
    h = 1e-6
    fd = (act(_PTS + h) - act(_PTS - h)) / (2 * h)
    # central difference error O(h² f''') + O(eps/h): 1e-6 relative is ample
    np.testing.assert_allclose(act.derivative(_PTS), fd, rtol=1e-6, atol=1e-6)


def test_staircases_evaluate_levels():
    a = parse_activation("sigma_Q:r1=-2,r2=-0.5,r3=0.5,r4=2,b1=1,b2=-1")
    np.testing.assert_array_equal(a(np.array([-3, -1, 0, 1, 3.0])), [1, 0, -1, 0, 1])
    assert a.staircase.thresholds == (-2.0, -0.5, 0.5, 2.0)
    # r1 == r2 merges the empty interval
    b = parse_activation("sigma_Q:r1=-1,r2=-1,r3=1,r4=1,b1=2,b2=-1")
    assert b.staircase.thresholds == (-1.0, 1.0) and b.staircase.levels == (2.0, -1.0, 2.0)
    s = staircase([-1, 0, 1], [-2, -1, 1, 2])
    assert s.staircase.jumps == (1.0, 2.0, 1.0)
    assert s.staircase.square_jumps == (-3.0, 0.0, 3.0)


def test_parse_round_trip_of_specs():
    for a in EXAMPLES:
        b = parse_activation(a.spec)
        assert b == a, a.spec


def test_user_floats_become_exact_rationals():
    a = parse_activation("leaky_relu:slope=0.1")
    assert sp.Rational(1, 10) in a.expr.atoms(sp.Rational)
    e = from_expr("Max(x, 0.1*x)")
    assert not e.expr.has(sp.Float)


@pytest.mark.parametrize("spec,exc", [
    ("foo", UnknownActivationError),
    ("foo:a=1", UnknownActivationError),
    ("", ParseError),
    ("x +", ParseError),
    ("y*x", ParseError),
    ("exp", ParseError),
    ("__import__('os')", ParseError),
    ("x < 1", ParseError),
    ("relu:slope=1", ParameterError),
    ("leaky_relu:slope", ParameterError),
    ("leaky_relu:slope=inf", ParameterError),
    ("leaky_relu:slope=1,slope=2", ParameterError),
    ("sigma_T:s1=0.5,s2=0.5", ParameterError),
    ("sigma_T:s2=1", ParameterError),
    ("sigma_T:s1=-1,s2=1,a=0", ParameterError),
    ("ternary:s=-1", ParameterError),
    ("three_level:s1=1,s2=0,a1=1,a2=1", ParameterError),
    ("staircase:thresholds=[1,0],levels=[0,1,2]", ParameterError),
    ("staircase:thresholds=[0],levels=[0,1,2]", ParameterError),
    ("softplus:beta=0", ParameterError),
    ("polynomial:coeffs=[]", ParameterError),
])
def test_bad_specs(spec, exc):
    with pytest.raises(exc):
        parse_activation(spec)


def test_every_error_is_in_the_hierarchy():
    for exc in (ParseError, ParameterError, UnknownActivationError):
        assert issubclass(exc, NTKTheoryError)
    with pytest.raises(NTKTheoryError):
        Staircase((1.0, 0.0), (0.0, 1.0, 2.0))
    with pytest.raises(ParameterError):
        activation("sigma_T", s1=math.nan, s2=1)
