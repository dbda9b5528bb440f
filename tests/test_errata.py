"""The original code's errata (docs/errata.rst): every qualitative claim, at quick sizes.

Runs ``benchmarks/errata.py``'s measurements (n = 300 instead of 1200, 100 SLSQP starts
instead of 1000); the page's numbers come from the full settings.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
errata = pytest.importorskip("errata")


@pytest.mark.slow
def test_original_ntk_recursion_and_identity_term():
    rows = {r.variant.split(" ")[0]: r for r in errata.measure_ntk(["relu"] * 3, 300, 200)}
    ours, orig = rows["project"], rows["original:"]
    # the project's theory kernel is the better approximation of the exact NTK ...
    assert ours.rel_error < 0.2 and orig.rel_error > 3 * ours.rel_error
    # ... and the original's is not even positive semi-definite (a Gram matrix must be)
    assert orig.identity < 0 and orig.min_eigenvalue < 0 and orig.min_diagonal < 0
    assert ours.min_eigenvalue > 0
    # each deviation alone already costs accuracy
    for key in ("(b)", "(c)"):
        assert rows[key].rel_error > 1.5 * ours.rel_error


def test_original_v1_of_staircases_is_zero_but_is_infinite():
    for r in errata.measure_staircase_v1():
        assert r["finite_difference_quad"] == 0.0
        assert r["engine"] == math.inf


@pytest.mark.slow
def test_original_sigma_q_fit_is_accepted_although_infeasible():
    r = errata.measure_sigma_q(starts=100, b_scale="tau_L")
    # Cauchy–Schwarz rules δ = 0 out ...
    assert r["cauchy_schwarz_lhs"] > r["cauchy_schwarz_rhs"]
    # ... and the best of 100 starts misses the equations by far: the original uses it anyway
    assert r["max_relative_residual"] > 0.5
    from ntk_theory.compress import compress_network
    from ntk_theory.errors import InfeasibleError

    with pytest.raises(InfeasibleError):
        compress_network(["relu"] * 3, 1.0, family="sigma_T", last_family="sigma_Q")
