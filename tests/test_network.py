"""Tests of ntk_theory.network: forward pass, CK, and the structured NTK formula (docs/reference.rst §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ntk_theory.activations import parse_activation
from ntk_theory.errors import ParameterError, ResourceError
from ntk_theory.network import MLP, ntk_flops, ntk_memory_bytes, per_sample_jacobian


def _data(p=7, n=5, seed=0):
    return np.random.default_rng(seed).standard_normal((p, n)) / math.sqrt(p)


ACTS = [
    ("relu", "tanh", "erf"),
    ("leaky_relu:slope=0.2", "relu", "linear:slope=1.5"),
    ("gelu", "swish", "sigmoid"),
]


@pytest.mark.parametrize("acts", ACTS)
def test_structured_ntk_equals_per_sample_jacobian_gram(acts):
    X = _data()
    net = MLP(acts, (9, 8, 6), p=7, seed=3, tau0=1.0)
    K = net.ntk(X)
    J = per_sample_jacobian(net, X)
    # same float64 arithmetic in a different order: agreement to rounding (≈ 1e-15 · ‖K‖)
    np.testing.assert_allclose(K, J @ J.T, rtol=1e-12, atol=1e-12 * np.abs(K).max())
    np.testing.assert_allclose(K, K.T, rtol=0, atol=1e-13 * np.abs(K).max())


def _flat_params(net):
    return np.concatenate([W.ravel() for W in net.weights] + [net.readout])


def _net_from_flat(net, theta):
    mats, off = [], 0
    for W in net.weights:
        mats.append(theta[off:off + W.size].reshape(W.shape))
        off += W.size
    return MLP(net.activations, net.widths, net.p, weights=mats, readout=theta[off:],
               centering=net.centering_for(np.ones((net.p, 1))))  # fixed constants (tau0 given)


@pytest.mark.parametrize("acts", [("tanh", "erf", "gelu"), ("relu", "softplus", "tanh")])
def test_jacobian_matches_central_finite_differences(acts):
    X = _data(p=6, n=3, seed=1)
    net = MLP(acts, (5, 4, 3), p=6, seed=2, tau0=1.0)
    J = per_sample_jacobian(net, X)
    theta = _flat_params(net)
    h = 1e-5
    fd = np.empty_like(J)
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = h
        fp = _net_from_flat(net, theta + e).output(X)
        fm = _net_from_flat(net, theta - e).output(X)
        fd[:, k] = (fp - fm) / (2 * h)
    # central differences: truncation O(h² f''') ≈ 1e-10 and rounding O(ε f / h) ≈ 1e-11; the
    # ReLU kink is never within h of a pre-activation for these draws (checked: min |H| > 1e-3).
    H1 = net.weights[0] @ X
    assert np.min(np.abs(H1)) > 1e-3
    np.testing.assert_allclose(J, fd, rtol=0, atol=1e-8)


def test_float32_matches_float64_and_chunking_is_exact():
    X = _data(p=30, n=40, seed=4)
    n64 = MLP(("relu", "tanh"), (50, 40), p=30, seed=5, tau0=1.0)
    n32 = MLP(("relu", "tanh"), (50, 40), p=30, seed=5, tau0=1.0, dtype=np.float32,
              weights=[W.astype(np.float32) for W in n64.weights], readout=n64.readout)
    K64 = n64.ntk(X)
    K32 = n32.ntk(X)
    assert K32.dtype == np.float32
    # float32 rounding ε ≈ 6e-8 accumulated over sums of length ≤ 50 per product: ≤ 1e-5 relative
    np.testing.assert_allclose(K32, K64, rtol=0, atol=1e-5 * np.abs(K64).max())
    Kc = n64.kernels(X, chunk=7)
    np.testing.assert_allclose(Kc.ntk, K64, rtol=1e-13, atol=1e-14)
    assert len(Kc.ck) == 3
    np.testing.assert_allclose(Kc.ck[0], X.T @ X, rtol=1e-13)


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_tiled_kernels_are_complete_symmetric_and_match_one_task(workers):
    """Tiles of every size (n = 37 is split unevenly), diagonal tiles included: each matrix
    comes back exactly symmetric (the lower triangles are copies, never left unset) and
    equal, to rounding, to the single-task computation."""
    X = _data(p=11, n=37, seed=6)
    net = MLP(("relu", "tanh", "gelu"), (23, 19, 13), p=11, seed=7, tau0=1.0)
    one = net.kernels(X, workers=1)
    many = net.kernels(X, workers=workers, chunk=5)
    for A, B in zip((*one.ck, one.ntk), (*many.ck, many.ntk)):
        assert np.array_equal(B, B.T)
        # same products, different BLAS blocking: rounding of sums of ≤ 23 terms (≈ 1e-15 rel.)
        np.testing.assert_allclose(B, A, rtol=0, atol=1e-13 * np.abs(A).max())
    np.testing.assert_allclose(many.ck[0], X.T @ X, rtol=0, atol=1e-13 * np.abs(many.ck[0]).max())


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_ntk_without_conjugate_kernels_is_the_same_matrix(workers):
    """``ck=False`` forms each CK tile in scratch instead of in the returned CK matrices:
    the same BLAS calls on the same operands in the same order, so the NTK is bit-identical,
    and only the NTK comes back."""
    import pickle

    X = _data(p=11, n=37, seed=8)
    net = MLP(("relu", "tanh", "gelu"), (23, 19, 13), p=11, seed=9, tau0=1.0)
    full = net.kernels(X, workers=workers, chunk=6)
    only = net.kernels(X, workers=workers, chunk=6, ck=False)
    assert only.ck == () and only.flops == full.flops
    assert only.ntk is not None and np.array_equal(only.ntk, full.ntk)
    # the result is an ordinary array: writable, C-ordered, outlives the network, pickles
    K = only.ntk
    assert K.flags.writeable and K.flags.c_contiguous and K.dtype == np.float64
    del net, only, full
    K[0, 0] += 1.0
    assert np.array_equal(pickle.loads(pickle.dumps(K)), K)


def test_ntk_only_needs_less_memory_and_nothing_is_refused():
    args = (8000, 784, (2000, 2000, 1000))
    full, only = ntk_memory_bytes(*args, workers=2), ntk_memory_bytes(*args, workers=2, ck=False)
    # four 8000² float64 CKs (2 GB) are not stored; two 2000² scratch tiles per worker are
    assert full - only == 4 * 8000**2 * 8 - 2 * 2000**2 * 8
    with pytest.raises(ParameterError, match="nothing"):
        MLP(("relu",), (3,), p=2, seed=0).kernels(np.ones((2, 4)), ntk=False, ck=False)


def test_forward_structure_and_centering():
    X = _data(p=10, n=6, seed=6)
    net = MLP(("relu",), (12,), p=10, seed=1, centering=[0.25])
    S = net.forward(X)
    direct = (np.maximum(net.weights[0] @ X, 0) - 0.25) / math.sqrt(12)
    np.testing.assert_allclose(S[1], direct, rtol=1e-14)
    np.testing.assert_allclose(net.output(X), net.readout @ direct, rtol=1e-13)
    net2 = MLP(("relu",), (12,), p=10, seed=1, centering="none")
    np.testing.assert_allclose(net2.forward(X)[1], np.maximum(net.weights[0] @ X, 0) / math.sqrt(12))
    # default centering: c_1 = E[relu(τ_0 ξ)] = τ_0/√(2π) with τ_0² = mean ‖x_i‖²
    tau0 = math.sqrt(np.mean(np.sum(X**2, axis=0)))
    net3 = MLP(("relu",), (12,), p=10, seed=1)
    assert net3.centering_for(X)[0] == pytest.approx(tau0 / math.sqrt(2 * math.pi), rel=1e-12)


def test_staircase_layers_have_zero_backprop_signal():
    X = _data(p=8, n=5, seed=7)
    net = MLP(("tanh", "sigma_T:s1=-1,s2=0.5,a=2"), (10, 9), p=8, seed=0, tau0=1.0)
    K = net.kernels(X)
    # σ_T' = 0 a.e.: G_2 = 0 and hence G_1 = 0, the NTK is CK_2 alone
    np.testing.assert_allclose(K.ntk, K.ck[-1], rtol=0, atol=0)


def test_ck_concentrates_on_expected_value_for_wide_layer():
    # One ReLU layer, uncentered: E[CK_1] = arc-cosine kernel (independent closed form written
    # out here); entries fluctuate with sd ≈ √(E[σ(u)²σ(v)²]/d) ≲ 1/√d = 0.007 at d = 20000.
    p, n, d = 20, 6, 20000
    X = _data(p=p, n=n, seed=8)
    net = MLP(("relu",), (d,), p=p, seed=9, centering="none")
    CK = net.conjugate_kernels(X)[1]
    K0 = X.T @ X
    nrm = np.sqrt(np.diag(K0))
    rho = np.clip(K0 / np.outer(nrm, nrm), -1, 1)
    th = np.arccos(rho)
    ref = np.outer(nrm, nrm) * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi)
    np.testing.assert_allclose(CK, ref, atol=5 / math.sqrt(d))


def test_memory_estimate_refuses_up_front():
    assert ntk_memory_bytes(8000, 784, (2000, 2000, 1000)) < 8 * 2**30
    with pytest.raises(ResourceError, match="GiB"):
        MLP(("relu",), (10,), p=5, seed=0, centering="none").kernels(np.zeros((5, 60000)))
    f = ntk_flops(2, 3, (4,))
    assert f["forward"] == 2 * 2 * 3 * 4 and f["backward"] == 0
    assert f["gram"] == 2 * 3 * 3 + 2 * 3 * 4 + 2 * 3 * 4


def test_bad_arguments():
    with pytest.raises(ParameterError):
        MLP(("relu", "relu"), (3,), p=2)
    with pytest.raises(ParameterError):
        MLP(("relu",), (3,), p=2, weights=[np.zeros((2, 3))])
    with pytest.raises(ParameterError):
        MLP(("relu",), (3,), p=2, dtype=np.int64)
    with pytest.raises(ParameterError):
        MLP(("relu",), (3,), p=2, centering="none").ntk(np.zeros((3, 4)))
    assert parse_activation("relu").name == "relu"
