"""Property tests of NTK-LC compression (docs/reference.rst §6): round trips and the α-matching theorem.

* **Single-layer round trip**: a random member of a family (:func:`ntk_theory.testing.family_members`,
  thresholds up to ±4 input standard deviations) → its moments at its own τ (moment
  engine) → :func:`~ntk_theory.compress.solve_alpha` → a solution whose moments, recomputed
  by the engine from the returned registry activation, equal the targets to 1e-12
  relative; and, since the drawn member is itself a solution, the returned one has no
  larger variance (the solver's documented least-variance choice).  ``sigma_Q`` goes
  through :func:`~ntk_theory.compress.network.solve_last_layer_sigma_q` with the
  member's own variance as the δ = 0 target.
* **Network round trip**: :func:`ntk_theory.testing.compressible_networks` →
  :func:`~ntk_theory.compress.compress_network` → :func:`ntk_theory.verify.verify_coefficients`
  (α, β of the compressed net recomputed independently) to 1e-10.
* **The α-matching equivalence**: the compressed theory CK equals the dense one plus δI.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from ntk_theory.compress import AlphaTargets, solve_alpha
from ntk_theory.compress.network import solve_last_layer_sigma_q
from ntk_theory.data import population_statistics, sample
from ntk_theory.moments import gaussian_moments
from ntk_theory.testing import compressible_networks, family_members, gmm_specs
from ntk_theory.theory import theory_kernels
from ntk_theory.verify import compressed_activations, verify_coefficients

#: The solver's contract (``residual_tolerance(15)``): relative residual ≤ 1e-12 in the
#: scale-free units (τ²m1², τ⁴m2², τ²w̄2), each against its own target, or against the
#: largest one when the target is 0.  The engine recomputes the moments independently
#: (exact jump formula at 30 digits), so its own error is ≤ 1e-15.
ROUND_TRIP_REL = 1e-12


def _scaled(g, tau):
    return (tau**2 * g.m1**2, tau**4 * g.m2**2, tau**2 * g.w2_bar)


def _assert_same_targets(got, want, what):
    D = max(abs(w) for w in want)
    for name, a, b in zip(("tau^2 m1^2", "tau^4 m2^2", "tau^2 w2_bar"), got, want):
        den = abs(b) if abs(b) > 1e-20 * D else D
        assert abs(a - b) <= ROUND_TRIP_REL * den, f"{what}: {name} {a!r} vs target {b!r}"


@given(m=family_members(families=("ternary", "sigma_T", "three_level", "staircase:4",
                                  "staircase:5", "staircase:6")))
def test_solve_alpha_round_trip(m):
    note(f"member {m.activation.spec} at tau={m.tau!r} (z = {m.shape})")
    g = gaussian_moments(m.activation, m.tau)
    targets = AlphaTargets(g.m1, g.m2, g.w2_bar)
    fit = solve_alpha(m.family, targets, m.tau)
    h = gaussian_moments(fit.activation, m.tau)
    _assert_same_targets(_scaled(h, m.tau), _scaled(g, m.tau), fit.activation.spec)
    # the drawn member solves the same equations, so the least-variance choice is no larger
    # (both variances exact to ~1e-15 relative; 1e-9 allows the 1e-12 residual's effect)
    assert fit.variance <= g.variance * (1 + 1e-9), (
        f"solver returned variance {fit.variance!r} > the drawn member's {g.variance!r}")


@settings(max_examples=max(4, settings.default.max_examples // 4))
@given(m=family_members(families=("sigma_Q",)))
def test_sigma_q_round_trip(m):
    """α-matching plus Var = the member's own variance (δ = 0), which the member attains."""
    note(f"member {m.activation.spec} at tau={m.tau!r} (z = {m.shape})")
    g = gaussian_moments(m.activation, m.tau)
    fit = solve_last_layer_sigma_q(AlphaTargets(g.m1, g.m2, g.w2_bar), m.tau, g.variance)
    h = gaussian_moments(fit.activation, m.tau)
    _assert_same_targets(_scaled(h, m.tau), _scaled(g, m.tau), fit.activation.spec)
    # the solver checks Var to 10 × its residual tolerance (network.py); the engine agrees
    assert h.variance == pytest.approx(g.variance, rel=1e-11, abs=0)


FEW = settings(max_examples=max(5, settings.default.max_examples // 3))


@FEW
@given(net=compressible_networks())
def test_compress_network_round_trip(net):
    note(f"{net.construction} {net.family}: {[a.spec for a in net.activations]} tau0={net.tau0!r}")
    res = net.compress()
    assert all(f.max_rel_residual <= ROUND_TRIP_REL for f in res.layers)
    chk = verify_coefficients(res)
    # issue 4(a): α, β of the compressed net from its own moments (engine) vs the dense net's;
    # 1e-12 per equation, propagated through ≤ 3 layers of products: 1e-10
    assert chk.max_rel_diff <= 1e-10
    assert chk.delta == pytest.approx(res.delta, rel=1e-9, abs=1e-12 * res.tau_dense[-1] ** 2)
    if net.construction == "canonical":
        # the compressor meets the dense layer's own (least-variance) solution at the same
        # scale: τ' = τ at every layer up to the 1e-12 residuals (conditioning ≤ 1e3 here)
        np.testing.assert_allclose(res.tau_compressed, res.tau_dense, rtol=1e-9)


@FEW
@given(spec=gmm_specs(p=(8, 24), K=(1, 3)), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_alpha_matching_gives_identity_shift(spec, seed, data):
    """docs/reference.rst §6: K̃'_CK,L = K̃_CK,L + δ I exactly (up to the α-matching residuals)."""
    d = sample(spec, 2 * spec.p, seed=seed)
    stats = population_statistics(d)
    net = data.draw(compressible_networks(layers=(1, 2), tau0=st.just(stats.tau0)), label="network")
    res = net.compress()
    dense = theory_kernels(d.X, stats, list(net.activations), ntk=False).ck
    comp = theory_kernels(d.X, stats, compressed_activations(res), ntk=False).ck
    diff = comp - dense - res.delta * np.eye(d.n)
    # every α agrees to 1e-10 relative (previous test) and K̃ is linear in α and τ_L²: the
    # difference is ≤ 1e-10·‖K̃‖ plus the rounding of forming both matrices (~1e-14·‖K̃‖)
    scale = np.linalg.norm(dense, 2) + abs(res.delta)
    assert np.linalg.norm(diff, 2) <= 1e-9 * scale
